"""Updates received from Telegram but not handled yet, so a crash does not lose them.

With several replicas on one database the inbox is also how they share the work: whichever
replica receives an update journals it with its chat, and the replica holding the chat's lease
(`chat_leases`) runs the chat's updates in update_id order, one replica per chat at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update

from storage.records import InboxEntry, WaitingChat, now_iso
from storage.sql.database import Database
from storage.sql.rows import run
from storage.sql.tables import chat_leases, inbox

MAX_ATTEMPTS = 3  # an update that crashed the process this often is given up

_DONE = delete(inbox).where(inbox.c.update_id == bindparam("update"))
_GIVE_UP = delete(inbox).where(inbox.c.attempts >= MAX_ATTEMPTS)
_COUNT_TRY = update(inbox).values(attempts=inbox.c.attempts + 1)
_PAYLOADS = select(inbox.c.payload).order_by(inbox.c.update_id)

_WAITING = (
    select(
        inbox.c.chat_id,
        func.count().label("updates"),
        func.min(inbox.c.update_id).label("first"),
        chat_leases.c.owner,
        chat_leases.c.expires_at,
    )
    .select_from(inbox.outerjoin(chat_leases, chat_leases.c.chat_id == inbox.c.chat_id))
    .group_by(inbox.c.chat_id, chat_leases.c.owner, chat_leases.c.expires_at)
    .order_by("first")
)
_OF_CHATS = (
    select(inbox.c.update_id, inbox.c.chat_id, inbox.c.payload, inbox.c.attempts)
    .where(inbox.c.chat_id.in_(bindparam("chats", expanding=True)))
    .order_by(inbox.c.update_id)
)
_TRIED = (
    update(inbox)
    .where(inbox.c.update_id.in_(bindparam("updates", expanding=True)))
    .values(attempts=inbox.c.attempts + 1)
)
_DROP = delete(inbox).where(inbox.c.update_id.in_(bindparam("updates", expanding=True)))
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

    async def keep(self, update_id: int, payload: str, chat_id: int | None = None) -> None:
        """Record a received update (a second copy of the same update is ignored)."""
        values = {
            "update_id": update_id,
            "payload": payload,
            "received_at": now_iso(),
            "attempts": 0,
            "chat_id": chat_id,
        }
        await self.db.write(run, self._keep, values)

    async def done(self, update_id: int) -> None:
        """The update was handled."""
        await self.db.write(run, _DONE, {"update": update_id})

    async def unfinished(self) -> list[str]:
        """Updates left unhandled by an earlier run, oldest first; each try is counted."""
        return await self.db.write(_unfinished)

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
        too often already (it crashed a replica each time) is given up instead."""
        return await self.db.write(_take, list(chat_ids), set(skip))


def _unfinished(conn: Connection) -> list[str]:
    conn.execute(_GIVE_UP)
    conn.execute(_COUNT_TRY)
    return [str(row.payload) for row in conn.execute(_PAYLOADS)]


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
    spent = [r.update_id for r in rows if r.attempts >= MAX_ATTEMPTS]
    fresh = [r for r in rows if r.attempts < MAX_ATTEMPTS]
    if spent:
        conn.execute(_DROP, {"updates": spent})
    if fresh:
        conn.execute(_TRIED, {"updates": [r.update_id for r in fresh]})
    return [InboxEntry(int(r.update_id), int(r.chat_id), str(r.payload)) for r in fresh]
