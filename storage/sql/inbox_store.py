"""Updates received from Telegram: journaled before Telegram is answered, handled once.

The inbox holds the pending updates' payloads, so a crash does not lose them;
`received_updates` remembers every update_id received for a day after it was handled, so a
second delivery of one (a webhook resent after a lost 200, a poll re-delivered after a crash
before its offset was confirmed) is recognised and not handled again. Times there are the
database's, not a process's: replicas whose clocks disagree still agree on what is a day old.

With several replicas on one database the inbox is also how they share the work: whichever
replica receives an update journals it with its chat, and the replica holding the chat's lease
(`chat_leases`) runs the chat's updates in update_id order, one replica per chat at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update

from storage.records import InboxEntry, WaitingChat, now_iso
from storage.sql.clock import db_now  # also imported from here by others
from storage.sql.database import Database
from storage.sql.rows import run
from storage.sql.tables import chat_leases, inbox, received_updates

MAX_ATTEMPTS = 3  # an update that crashed the process this often is given up
RETENTION_SECONDS = 24 * 3600.0  # Telegram keeps an unconfirmed update this long

_PENDING = inbox.c.attempts < MAX_ATTEMPTS  # the rest wait for `abandoned()` to report them
_DONE = delete(inbox).where(inbox.c.update_id == bindparam("update"))
_PURGE = delete(received_updates).where(
    received_updates.c.handled_at < db_now() - RETENTION_SECONDS
)
_SPENT = (
    delete(inbox)
    .where(inbox.c.attempts >= MAX_ATTEMPTS)
    .returning(inbox.c.update_id, inbox.c.chat_id, inbox.c.payload)
)
_TO_RETRY = select(inbox.c.update_id, inbox.c.payload).where(_PENDING).order_by(inbox.c.update_id)
_COUNT_TRIES = (
    update(inbox)
    .where(inbox.c.update_id.in_(bindparam("updates", expanding=True)))
    .values(attempts=inbox.c.attempts + 1)
)

_WAITING = (
    select(
        inbox.c.chat_id,
        func.count().label("updates"),
        func.min(inbox.c.update_id).label("first"),
        chat_leases.c.owner,
        chat_leases.c.expires_at,
    )
    .select_from(inbox.outerjoin(chat_leases, chat_leases.c.chat_id == inbox.c.chat_id))
    .where(_PENDING)
    .group_by(inbox.c.chat_id, chat_leases.c.owner, chat_leases.c.expires_at)
    .order_by("first")
)
_OF_CHATS = (
    select(inbox.c.update_id, inbox.c.chat_id, inbox.c.payload, inbox.c.attempts)
    .where(inbox.c.chat_id.in_(bindparam("chats", expanding=True)))
    .order_by(inbox.c.update_id)
)
_RENEW = (
    update(chat_leases)
    .where(chat_leases.c.owner == bindparam("me"))
    .values(expires_at=bindparam("until"))
    .returning(chat_leases.c.chat_id)
)
_RELEASE = delete(chat_leases).where(
    chat_leases.c.owner == bindparam("me"),
    chat_leases.c.chat_id.in_(bindparam("chats", expanding=True)),
)
# Stopping: lapsed rather than deleted, so a chat's waiting updates are taken at once (a chat
# nobody held is first left a moment to the replica that received its update).
_RELEASE_ALL = (
    update(chat_leases).where(chat_leases.c.owner == bindparam("me")).values(expires_at=0.0)
)


class SqlInboxStore:
    """A durable queue of raw updates, keyed by Telegram's update_id, and the chats' leases."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._keep = db.insert(inbox).on_conflict_do_nothing(index_elements=[inbox.c.update_id])
        self._receive = (
            db.insert(received_updates)
            .values(update_id=bindparam("update"), received_at=db_now())
            .on_conflict_do_nothing(index_elements=[received_updates.c.update_id])
            .returning(received_updates.c.update_id)
        )
        # Also for an update handled without being journaled (the database was away then).
        handled = db.insert(received_updates).values(
            update_id=bindparam("update"), received_at=db_now(), handled_at=db_now()
        )
        self._handled = handled.on_conflict_do_update(
            index_elements=[received_updates.c.update_id], set_={"handled_at": db_now()}
        )
        # Taken when free, expired or ours already. Two replicas claiming at once: the second
        # waits for the first's row and then finds it neither expired nor its own.
        lease = db.insert(chat_leases)
        self._claim = lease.on_conflict_do_update(
            index_elements=[chat_leases.c.chat_id],
            set_={"owner": lease.excluded.owner, "expires_at": lease.excluded.expires_at},
            where=or_(
                chat_leases.c.expires_at < bindparam("now"),
                chat_leases.c.owner == lease.excluded.owner,
            ),
        ).returning(chat_leases.c.owner)

    async def keep(self, update_id: int, payload: str, chat_id: int | None = None) -> bool:
        """Record a received update; False when it was received before (pending or handled
        within RETENTION_SECONDS): a second delivery, not to be handled again."""
        values = {
            "update_id": update_id,
            "payload": payload,
            "received_at": now_iso(),
            "attempts": 0,
            "chat_id": chat_id,
        }
        return await self.db.write(self._keep_new, values)

    def _keep_new(self, conn: Connection, values: dict[str, object]) -> bool:
        # The id first: a second copy meets its row there (or waits for the first copy's
        # transaction, then meets it), whether the first is pending or handled.
        if conn.execute(self._receive, {"update": values["update_id"]}).first() is None:
            return False
        conn.execute(self._keep, values)
        return True

    async def done(self, update_id: int) -> None:
        """The update was handled: its payload goes, its id stays marked handled for a day;
        ids handled longer ago are purged on the way (an indexed range, mostly empty)."""
        await self.db.write(self._mark_handled, update_id)

    def _mark_handled(self, conn: Connection, update_id: int) -> None:
        conn.execute(_DONE, {"update": update_id})
        conn.execute(self._handled, {"update": update_id})
        conn.execute(_PURGE)

    async def unfinished(self) -> list[str]:
        """Updates left unhandled by an earlier run, oldest first; each try is counted (one
        tried too often is left to `abandoned()`)."""
        return await self.db.write(_unfinished)

    async def abandoned(self) -> list[InboxEntry]:
        """Updates tried MAX_ATTEMPTS times without finishing (each crashed or stalled its
        process): marked handled and returned, once, for the user to be told."""
        return await self.db.write(self._abandon)

    def _abandon(self, conn: Connection) -> list[InboxEntry]:
        spent = list(conn.execute(_SPENT))
        for row in spent:
            conn.execute(self._handled, {"update": row.update_id})
        return [
            InboxEntry(int(r.update_id), int(r.chat_id or 0), str(r.payload))
            for r in sorted(spent, key=lambda r: int(r.update_id))
        ]

    async def waiting(self) -> list[WaitingChat]:
        """Every chat with updates not handled yet, with its lease (owner None when it has
        none), the chat with the oldest update first."""
        return await self.db.read(_waiting)

    async def claim(self, chat_id: int, owner: str, now: float, until: float) -> bool:
        """Take the chat's lease until `until` unless another replica holds a live one."""
        return await self.db.write(self._claim_one, chat_id, owner, now, until)

    def _claim_one(
        self, conn: Connection, chat_id: int, owner: str, now: float, until: float
    ) -> bool:
        params = {"chat_id": chat_id, "owner": owner, "expires_at": until, "now": now}
        return conn.execute(self._claim, params).first() is not None

    async def renew(self, owner: str, until: float) -> set[int]:
        """Extend every lease `owner` holds; the chats it still holds."""
        return await self.db.write(_renew, owner, until)

    async def release(self, owner: str, chat_ids: Collection[int] | None = None) -> None:
        """Let go of these chats, or of all (stopping: then they are marked lapsed, and any
        replica takes their waiting updates at once)."""
        if chat_ids is None:
            await self.db.write(run, _RELEASE_ALL, {"me": owner})
        elif chat_ids:
            await self.db.write(run, _RELEASE, {"me": owner, "chats": list(chat_ids)})

    async def take(self, chat_ids: Sequence[int], skip: Collection[int]) -> list[InboxEntry]:
        """The chats' updates not in `skip`, oldest first, each try counted; an update tried
        too often already (it crashed a replica each time) is left to `abandoned()`."""
        return await self.db.write(_take, list(chat_ids), set(skip))


def _unfinished(conn: Connection) -> list[str]:
    rows = list(conn.execute(_TO_RETRY))
    if rows:
        conn.execute(_COUNT_TRIES, {"updates": [r.update_id for r in rows]})
    return [str(r.payload) for r in rows]


def _waiting(conn: Connection) -> list[WaitingChat]:
    return [
        WaitingChat(r.chat_id, int(r.updates), r.owner, r.expires_at)
        for r in conn.execute(_WAITING)
    ]


def _renew(conn: Connection, owner: str, until: float) -> set[int]:
    return {int(r.chat_id) for r in conn.execute(_RENEW, {"me": owner, "until": until})}


def _take(conn: Connection, chat_ids: list[int], skip: set[int]) -> list[InboxEntry]:
    if not chat_ids:
        return []
    rows = [r for r in conn.execute(_OF_CHATS, {"chats": chat_ids}) if r.update_id not in skip]
    fresh = [r for r in rows if r.attempts < MAX_ATTEMPTS]
    if fresh:
        conn.execute(_COUNT_TRIES, {"updates": [r.update_id for r in fresh]})
    return [InboxEntry(int(r.update_id), int(r.chat_id), str(r.payload)) for r in fresh]
