"""Deleting everything a chat left behind, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database


@dataclass(frozen=True)
class ChatFootprint:
    """What the bot holds for one chat."""

    albums: int
    items: int
    notes: int
    exchanges: int
    usage_rows: int


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a chat removed, and the blobs no other chat uses any more."""

    footprint: ChatFootprint
    orphan_blobs: list[str]


class PrivacyStore:
    """A chat's footprint, and wiping it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def footprint(self, chat_id: int) -> ChatFootprint:
        """Counts of what the bot holds for the chat."""
        row = await self.db.fetchone(
            "SELECT"
            " (SELECT COUNT(*) FROM albums WHERE chat_id = :c) AS albums,"
            " (SELECT COUNT(*) FROM items i JOIN albums a ON a.id = i.album_id"
            "  WHERE a.chat_id = :c) AS items,"
            " (SELECT COUNT(*) FROM notes n JOIN albums a ON a.id = n.album_id"
            "  WHERE a.chat_id = :c) AS notes,"
            " (SELECT COUNT(*) FROM exchanges e JOIN albums a ON a.id = e.album_id"
            "  WHERE a.chat_id = :c) AS exchanges,"
            " (SELECT COUNT(*) FROM usage WHERE chat_id = :c) AS usage_rows",
            {"c": chat_id},
        )
        assert row is not None
        return ChatFootprint(*(int(row[k]) for k in row.keys()))

    async def forget(self, chat_id: int) -> Forgotten:
        """Delete the chat's albums, items, notes, conversation and usage detail."""
        footprint = await self.footprint(chat_id)
        async with self.db.transaction() as tx:
            shas = {
                sha
                for row in await tx.fetchall(
                    "SELECT i.source_sha256, i.model_sha256 FROM items i"
                    " JOIN albums a ON a.id = i.album_id WHERE a.chat_id = ?",
                    (chat_id,),
                )
                for sha in (row[0], row[1])
            }
            # Items, notes, batches and exchanges go with their albums (ON DELETE CASCADE).
            await tx.execute("DELETE FROM albums WHERE chat_id = ?", (chat_id,))
            await tx.execute("DELETE FROM chats WHERE chat_id = ?", (chat_id,))
            # Token counts stay for budgets and totals, but no longer say which chat, album or
            # kind of request they came from.
            await tx.execute(
                "UPDATE usage SET chat_id = 0, album_id = NULL, kind = 'forgotten',"
                " by_modality = NULL WHERE chat_id = ?",
                (chat_id,),
            )
            orphans = []
            for sha in sorted(shas):
                used = await tx.fetchone(
                    "SELECT 1 FROM items WHERE source_sha256 = ? OR model_sha256 = ? LIMIT 1",
                    (sha, sha),
                )
                if used is None:
                    await tx.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
                    orphans.append(sha)
        return Forgotten(footprint, orphans)
