"""Effects once (issue 21, item 6): a job run again posts nothing twice and asks Gemini once; an
attempt that lost its job posts nothing at all.

The real bot (PTB Application, google-genai) against the fakes; a job's attempt is made by hand
(tests/attempts.py) and made current around the calls, as a runner does around a task.
"""

from __future__ import annotations

import sqlite3

import pytest
from telegram import Update
from telegram.ext import Application, CallbackContext

from bot.service.conversation import Asker
from bot.telegram import commands
from storage.jobs import TakenOver
from tests.attempts import HandAttempt, attempt
from tests.fakes.gemini_api import Reply
from tests.harness import ANA, FailingFirst, Harness, acks
from tests.image_files import jpeg

POSTS = ("sendMessage", "sendPhoto", "sendMediaGroup", "sendDocument")


def _app(bot: Harness) -> Application:  # type: ignore[type-arg]
    assert bot.app is not None
    return bot.app


def _posts(bot: Harness) -> int:
    return sum(len(bot.tg.calls(method)) for method in POSTS)


class _Quiet:
    """Progress nobody watches (the service is called directly, as a job's task would)."""

    async def status(self, text: str) -> None:
        """Nothing to show."""

    async def text(self, so_far: str) -> None:
        """Nothing to show."""


async def test_a_job_run_again_posts_each_of_its_messages_once(bot: Harness) -> None:
    tg_bot, chat_id = _app(bot).bot, bot.chat["id"]

    async def job(parts: int) -> list[int]:
        sent = [(await tg_bot.send_message(chat_id, f"part {n}")).message_id for n in range(parts)]
        sent.append((await tg_bot.send_photo(chat_id, jpeg(1), caption="photo")).message_id)
        return sent

    with attempt(HandAttempt(job_id=41, number=0)):
        first = await job(2)  # ... and then the process died
    with attempt(HandAttempt(job_id=41, number=1)):
        second = await job(3)
    with attempt(HandAttempt(job_id=41, number=2, last=True)):
        third = await job(3)

    assert second[:2] == first[:2] and third == second  # Telegram's answers, read back
    assert len(bot.tg.calls("sendMessage")) == 3
    assert len(bot.tg.calls("sendPhoto")) == 1
    assert bot.texts(chat_id) == ["part 0", "part 1", "photo", "part 2"]
    assert len(bot.rows("SELECT * FROM sent_messages WHERE job_id = 41")) == 4


async def test_an_attempt_that_lost_its_job_posts_nothing_and_stops(bot: Harness) -> None:
    tg_bot, chat_id = _app(bot).bot, bot.chat["id"]
    with attempt(HandAttempt(job_id=42, taken_over=True)):
        with pytest.raises(TakenOver):
            await tg_bot.send_message(chat_id, "stale")
        with pytest.raises(TakenOver):
            await tg_bot.send_photo(chat_id, jpeg(1))
        await tg_bot.send_chat_action(chat_id, "typing")  # a chat action changes nothing
        assert (await tg_bot.get_me()).id  # nor does a read
    assert _posts(bot) == 0
    assert bot.rows("SELECT * FROM sent_messages") == []


async def test_edits_are_fenced_where_another_worker_could_take_the_job(bot: Harness) -> None:
    tg_bot, chat_id = _app(bot).bot, bot.chat["id"]
    message = await tg_bot.send_message(chat_id, "draft")  # no job: sent as ever

    with attempt(HandAttempt(job_id=43, shared=True)) as current:
        await tg_bot.edit_message_text("edited once", chat_id=chat_id, message_id=message.id)
        assert current.fences == 1
        current.taken_over = True
        with pytest.raises(TakenOver):
            await tg_bot.edit_message_text("stale edit", chat_id=chat_id, message_id=message.id)
        with pytest.raises(TakenOver):
            await tg_bot.delete_message(chat_id, message.id)
    with attempt(HandAttempt(job_id=44, shared=False)) as alone:
        await tg_bot.edit_message_text("edited twice", chat_id=chat_id, message_id=message.id)
        assert alone.fences == 0  # one process: no database trip for an edit

    assert len(bot.tg.calls("editMessageText")) == 2
    assert bot.tg.calls("deleteMessage") == []
    assert bot.texts(chat_id) == ["edited twice"]


async def test_calls_made_outside_a_job_are_not_recorded(bot: Harness) -> None:
    tg_bot, chat_id = _app(bot).bot, bot.chat["id"]
    for _ in range(2):
        await tg_bot.send_message(chat_id, "same words")
    assert bot.texts(chat_id) == ["same words", "same words"]
    assert bot.rows("SELECT * FROM sent_messages") == []


async def test_a_question_asked_again_by_its_job_is_answered_from_the_record(bot: Harness) -> None:
    await bot.two_photos(model_ready=True)
    conversation = bot.services.conversation
    ana = Asker(chat_id=bot.chat["id"], user_id=ANA, language_code="en")
    bot.gemini.enqueue(Reply(text="Both were taken by the river."))

    with attempt(HandAttempt(job_id=51, number=0)):
        first = await conversation.ask(ana, "Where were they taken?", _Quiet())
    with attempt(HandAttempt(job_id=51, number=1)):
        again = await conversation.ask(ana, "Where were they taken?", _Quiet())

    assert again.text == first.text == "Both were taken by the river."
    assert len(bot.gemini.generate_requests()) == 1
    assert len(bot.rows("SELECT * FROM exchanges")) == 1
    with attempt(HandAttempt(job_id=52)):  # another job: another question
        await conversation.ask(ana, "And the light?", _Quiet())
    assert len(bot.gemini.generate_requests()) == 2


async def test_a_story_job_run_again_asks_gemini_once_and_posts_the_story_once(
    bot: Harness,
) -> None:
    app, chat = _app(bot), bot.chat
    for n in range(3):
        bot.tg.send_photo(chat, bot.ana, jpeg(n))
    await bot.wait_text(chat["id"], "3 photos")
    await bot.tg.wait_for(lambda: len(bot.rows("SELECT 1 FROM items WHERE model_ready = 1")) == 3)
    bot.gemini.enqueue(Reply(text="# Story\n\nThe tram (photo 1) and the river (photo 2)."))
    posted_before = _posts(bot)

    # The /story update as a job runs it: the handler itself, with the attempt current.
    data = {
        "update_id": 990001,
        "message": {
            "message_id": 990001, "date": 1_800_000_000, "chat": chat, "from": bot.ana,
            "text": "/story", "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }  # fmt: skip
    for number in range(2):
        update = Update.de_json(data, app.bot)
        context = CallbackContext.from_update(update, app)
        with attempt(HandAttempt(job_id=61, number=number)):
            await commands.story(update, context)
        await bot.wait_text(chat["id"], "That was the story of")

    assert len(bot.gemini.generate_requests()) == 1
    posted = _posts(bot) - posted_before
    assert posted >= 3  # the story's text, its photos and its closing
    assert len(bot.rows("SELECT * FROM sent_messages WHERE job_id = 61")) == posted
    assert sum("That was the story of" in text for text in bot.texts(chat["id"])) == 1
    assert len(bot.rows("SELECT * FROM exchanges WHERE kind = 'story'")) == 1


async def test_a_handler_whose_job_was_taken_over_stops_without_a_word(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    app, chat = _app(bot), bot.chat
    data = {
        "update_id": 990002,
        "message": {
            "message_id": 990002, "date": 1_800_000_000, "chat": chat, "from": bot.ana,
            "text": "We walked along the river all morning.",
        },
    }  # fmt: skip
    with caplog.at_level("INFO"), attempt(HandAttempt(job_id=71, taken_over=True)) as stale:
        await app.process_update(Update.de_json(data, app.bot))
    assert stale.fences >= 1  # it did try to keep the note: its first write stopped it
    assert _posts(bot) == 0  # no apology, no acknowledgement
    assert not any(r.levelname == "ERROR" for r in caplog.records), caplog.text
    assert "job was taken over" in caplog.text


async def test_an_acknowledgement_sent_but_not_recorded_is_brought_up_to_date_by_its_next_try(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The acknowledgement job sends "1 photo"; a second photo is counted meanwhile; then the
    # job's record of what it showed fails (the database busy a moment). Its next try gets the
    # message back from the outbox, which says "1 photo": it must edit it, not keep it.
    tg, chat = bot.tg, bot.chat
    bursts = bot.services.storage.bursts

    async def second_photo_counted() -> None:
        tg.send_photo(chat, bot.ana, jpeg(2))
        await tg.wait_for(lambda: bot.rows("SELECT 1 FROM bursts WHERE photos = 2"))

    busy = FailingFirst(
        bursts.shown, sqlite3.OperationalError("database is locked"), before=second_photo_counted
    )
    monkeypatch.setattr(bursts, "shown", busy)
    tg.send_photo(chat, bot.ana, jpeg(1))
    await bot.wait_text(chat["id"], "2 photos")
    assert busy.failed, "the record never failed: the test tests nothing"
    assert acks(tg, chat["id"]) == [acks(tg, chat["id"])[0]]  # one message for the burst
    assert len(tg.calls("sendMessage")) == 1
    assert "2 photos" in acks(tg, chat["id"])[0]
    await tg.wait_for(lambda: not bot.rows("SELECT 1 FROM bursts WHERE shown < version"))


async def test_a_message_whose_record_fails_a_moment_is_recorded_all_the_same(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Telegram took the message, then the database failed a moment as its answer was kept: a
    # record lost there would have the job's next try post it again.
    tg_bot, chat_id = _app(bot).bot, bot.chat["id"]
    sent = bot.services.storage.sent
    busy = FailingFirst(sent.record, sqlite3.OperationalError("database is locked"), times=2)
    monkeypatch.setattr(sent, "record", busy)
    for number in range(2):
        with attempt(HandAttempt(job_id=46, number=number)):
            await tg_bot.send_message(chat_id, "once")
    assert [key for _, key, _ in busy.failed] == ["sendMessage#0", "sendMessage#0"]
    assert bot.texts(chat_id) == ["once"]
    assert len(bot.tg.calls("sendMessage")) == 1
