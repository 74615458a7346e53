"""Files wait for a lull in the media messages of their process (bot/telegram/intake_first.py)."""

from __future__ import annotations

import asyncio

from bot.telegram.intake_first import IntakeFirst

WAIT = 20.0  # a limit far above any machine: the waits here are hundredths of a second


async def _until_done(task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(WAIT):
        await task


async def test_files_wait_while_a_media_message_is_taken_in_and_a_moment_after() -> None:
    intake = IntakeFirst(quiet=0.05, longest=WAIT * 2)
    taking = intake.taking()
    taking.__enter__()
    lull = asyncio.create_task(intake.lull())
    for _ in range(50):  # many turns of the loop: it does not go ahead while one is taken in
        await asyncio.sleep(0)
    assert not lull.done()
    taking.__exit__(None, None, None)
    await _until_done(lull)  # once the intake has been quiet for `quiet`


async def test_with_no_message_taken_in_files_go_ahead_at_once() -> None:
    intake = IntakeFirst(quiet=WAIT * 2, longest=WAIT * 2)
    await _until_done(asyncio.create_task(intake.lull()))  # never taken anything in


async def test_a_long_stream_of_messages_holds_files_up_no_longer_than_longest() -> None:
    intake = IntakeFirst(quiet=0.01, longest=0.05)
    with intake.taking():  # a message that never ends
        await _until_done(asyncio.create_task(intake.lull()))


async def test_messages_taken_in_side_by_side_all_count() -> None:
    intake = IntakeFirst(quiet=0.0, longest=WAIT * 2)
    first, second = intake.taking(), intake.taking()
    first.__enter__()
    second.__enter__()
    lull = asyncio.create_task(intake.lull())
    first.__exit__(None, None, None)
    for _ in range(50):
        await asyncio.sleep(0)
    assert not lull.done()  # the second is still being taken in
    second.__exit__(None, None, None)
    await _until_done(lull)
