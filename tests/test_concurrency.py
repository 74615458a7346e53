"""The per-chat update processor: order within a chat, and no chat stalled by a cancelled update."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.telegram.concurrency import PerChatUpdateProcessor


def _text(update_id: int, chat_id: int = 1) -> Update:
    update = Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": chat_id, "type": "private", "first_name": "Ana"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "Ana"},
                "text": f"message {update_id}",
            },
        },
        None,
    )
    assert update is not None
    return update


async def test_a_cancelled_waiting_update_does_not_stall_its_chat() -> None:
    processor = PerChatUpdateProcessor()
    ran: list[int] = []
    release = asyncio.Event()

    async def handler(n: int, wait: bool = False) -> None:
        if wait:
            await release.wait()
        ran.append(n)

    first = asyncio.create_task(processor.do_process_update(_text(1), handler(1, wait=True)))
    second = asyncio.create_task(processor.do_process_update(_text(2), handler(2)))
    third = asyncio.create_task(processor.do_process_update(_text(3), handler(3)))
    await asyncio.sleep(0)  # all three queued; the first runs, the others wait their turn
    release.set()  # the first ends and hands the turn on before the second sees its cancel
    second.cancel()
    await asyncio.wait_for(asyncio.gather(first, third), timeout=5)
    assert ran == [1, 3] and second.cancelled()
    assert processor._chats == {}  # nothing left behind for the chat
