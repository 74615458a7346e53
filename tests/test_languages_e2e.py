"""The bot speaks the traveller's language: from Telegram's language_code, or as /language chose."""

from __future__ import annotations

import re

from bot import i18n
from bot.telegram.commands import COMMANDS
from tests.fakes.gemini_api import Reply
from tests.harness import ANA, Harness, jpeg


def _acks(bot: Harness, chat_id: int) -> list[str]:
    return [t for t in bot.texts(chat_id) if t.startswith("📸")]


def _buttons(bot: Harness, chat_id: int, text_start: str) -> list[str]:
    """The labels of the inline buttons under the bot's last message starting with `text_start`."""
    sent = [m for m in bot.tg.bot_messages(chat_id) if (m.text or "").startswith(text_start)]
    markup = sent[-1].reply_markup or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


async def test_a_russian_traveller_is_answered_in_russian_with_russian_plurals(
    bot: Harness,
) -> None:
    tg = bot.tg
    anya = tg.user(user_id=ANA, first_name="Аня", username="anya", language_code="ru")
    chat = tg.private_chat(anya)
    for n in range(5):
        tg.send_photo(chat, anya, jpeg(n), media_group_id="first")
    await bot.wait_text(chat["id"], "5 фотографий")
    assert _acks(bot, chat["id"])[-1].startswith("📸 Альбом «")
    assert _buttons(bot, chat["id"], "📸") == ["↩️ Отменить", "✍️ Написать историю"]

    tg.send_command(chat, anya, "/new")  # a second album: its acknowledgement counts from 0
    created = await bot.wait_text(chat["id"], "Новый альбом")
    # Named in Russian, with the date as Russian writes it ("Поездка 07 дек. 2026").
    assert re.search(r"Поездка \d\d [а-я]+\.? \d{4}", created), created
    for n in range(5, 7):
        tg.send_photo(chat, anya, jpeg(n), media_group_id="second")
    await bot.wait_text(chat["id"], "2 фотографии")
    assert "добавлено: 2 фотографии" in _acks(bot, chat["id"])[-1]

    # The command menu was registered in Russian too (and in English by default).
    def menu(code: str) -> list[str]:
        return [c["description"] for c in tg.commands_by_language.get(code, [])]

    await tg.wait_for(lambda: menu("ru") and menu(""))
    assert len(menu("ru")) == len(COMMANDS)
    assert "Написать историю текущего альбома" in menu("ru")
    assert "Write the story of the current album" in menu("")
    assert [c.params.get("language_code") for c in tg.calls("setMyCommands")].count("ru") == 1
    await tg.wait_for(lambda: "ru" in tg.short_descriptions and "ru" in tg.descriptions)
    assert tg.short_descriptions["ru"].startswith("Я превращаю фото")
    # Every catalog is registered under Telegram's two-letter code ("pt_BR" as "pt").
    codes = {i18n.negotiate_base(code) for code in i18n.LANGUAGES if code != i18n.DEFAULT}
    await tg.wait_for(lambda: codes | {""} <= set(tg.commands_by_language))


async def test_language_command_switches_the_chat_and_survives_a_restart(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana  # Ana's Telegram is in English
    tg.send_command(chat, ana, "/language")
    await bot.wait_text(chat["id"], "Which language shall I speak here?")
    offered = _buttons(bot, chat["id"], "Which language")
    assert offered == list(i18n.LANGUAGES.values())

    tg.send_command(chat, ana, "/language de")
    await bot.wait_text(chat["id"], "Erledigt: In diesem Chat spreche ich jetzt Deutsch.")
    tg.send_command(chat, ana, "/nonsense")
    await bot.wait_text(chat["id"], "Diesen Befehl kenne ich nicht.")

    await bot.restart()
    tg.send_photo(chat, ana, jpeg(1))
    await bot.wait_text(chat["id"], "1 Foto")
    assert _acks(bot, chat["id"])[-1].startswith("📸 Album „")

    # A button picks a language as the command does.
    tg.send_command(chat, ana, "/language")
    await bot.wait_text(chat["id"], "Welche Sprache soll ich hier sprechen?")
    [question] = [m for m in tg.bot_messages(chat["id"]) if (m.text or "").startswith("Welche")]
    tg.press_button(chat, ana, question.message_id, "language:ru")
    await bot.wait_text(chat["id"], "Готово: в этом чате я говорю на языке «Русский».")

    tg.send_command(chat, ana, "/language klingon")
    await bot.wait_text(chat["id"], "Я пока не говорю на «klingon».")


async def test_a_russian_travellers_usage_and_model_errors_come_in_russian(bot: Harness) -> None:
    tg = bot.tg
    anya = tg.user(user_id=ANA, first_name="Аня", username="anya", language_code="ru")
    chat = tg.private_chat(anya)
    tg.send_command(chat, anya, "/story")  # the chat's first album, made for this, is empty
    await bot.wait_text(chat["id"], "Альбом «Моя поездка» пуст.")

    tg.send_photo(chat, anya, jpeg(1))
    await bot.wait_text(chat["id"], "1 фотография")
    bot.gemini.enqueue(Reply(finish_reason="SAFETY"))
    tg.send_text(chat, anya, "Где это снято?")
    await bot.wait_text(chat["id"], "Gemini отказался отвечать на это из соображений безопасности.")
    bot.gemini.enqueue(Reply(text="Это Лиссабон."))
    tg.send_text(chat, anya, "Где это снято?")
    await bot.wait_text(chat["id"], "Это Лиссабон.")

    tg.send_command(chat, anya, "/usage")
    report = await bot.wait_text(chat["id"], "Ваш расход Gemini")
    assert "Сегодня: " in report and "Этот месяц: " in report
    assert "запрос" in report and "токенов: " in report and "на выходе" in report
    assert "Дни считаются по UTC." in report
    for english in ("Today", "month", "tokens", "request", "Days are UTC", "list price"):
        assert english not in report
