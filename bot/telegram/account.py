"""Usage, admin totals and forgetting a chat."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.i18n import _, ngettext
from bot.service.reexports import ChatFootprint
from bot.service.usage import Prices, UsageLine
from bot.service.words import count
from bot.telegram.runtime import runtime


async def usage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/usage: the user's Gemini tokens today and this month, with an estimated cost."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    report = await runtime(context).services.usage.report(user.id)
    lines = [
        "<b>Your Gemini usage</b>",
        f"Today: {_line(report.today)}",
        f"This month: {_line(report.month)}",
    ]
    if report.daily_budget:
        left = max(0, report.daily_budget - report.today.totals.total_tokens)
        lines.append(f"Daily allowance: {report.daily_budget:,} tokens, {left:,} left today.")
    lines.append(f"<i>{_prices_assumed(report.prices)} Days are UTC.</i>")
    await message.reply_html("\n".join(lines))


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats (admins only): every user's usage today and this month."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    rt = runtime(context)
    if not rt.services.settings.admins.allows(user.id, user.username):
        await message.reply_text("Only the bot's admins (ADMIN_USERS) can see everyone's usage.")
        return
    today, month = await rt.services.usage.per_user()
    lines = ["<b>Usage by user</b> (UTC)", "", "<b>Today</b>"]
    lines += [f"{_who(u)}: {_line(line)}" for u, line in today] or ["nothing yet"]
    lines += ["", "<b>This month</b>"]
    lines += [f"{_who(u)}: {_line(line)}" for u, line in month] or ["nothing yet"]
    await message.reply_html("\n".join(lines[:120]))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/forget: ask for confirmation before deleting everything of this chat."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None:
        return
    rt = runtime(context)
    await rt.acks.close(chat.id)
    held = await rt.services.privacy.footprint(chat.id)
    text = _(
        "🗑 <b>Forget this chat?</b>\n"
        "This deletes %(albums)s with %(items)s, %(notes)s, %(exchanges)s of conversation, "
        "the usage detail, and the copies uploaded to Gemini. It cannot be undone."
    ) % _held(held)
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("Delete everything"), callback_data=f"forget:yes:{user.id}"),
                InlineKeyboardButton(_("Cancel"), callback_data=f"forget:no:{user.id}"),
            ]
        ]
    )
    await message.reply_html(text, reply_markup=buttons)


async def on_forget_button(update: Update, context: ContextTypes.DEFAULT_TYPE, arg: str) -> None:
    """The answer to /forget's question; only the person who asked may confirm."""
    query, chat, user = update.callback_query, update.effective_chat, update.effective_user
    if query is None or chat is None or user is None:
        return
    choice, _sep, asker_id = arg.partition(":")
    if asker_id != str(user.id):
        await query.answer(_("Only the person who sent /forget can confirm it."), show_alert=True)
        return
    if choice != "yes":
        await query.answer(_("Nothing was deleted."))
        await query.edit_message_text(_("Kept everything. Nothing was deleted."))
        return
    rt = runtime(context)
    rt.acks.forget(chat.id)
    gone = await rt.services.privacy.forget(chat.id)
    await query.answer(_("Deleted."))
    await query.edit_message_text(
        _(
            "🗑 Done: deleted %(albums)s, %(items)s, %(notes)s and %(exchanges)s, and their "
            "copies at Gemini. Send new photos whenever you like."
        )
        % _held(gone.footprint)
    )


def _held(held: ChatFootprint) -> dict[str, str]:
    """What a chat holds, counted in the current language, by placeholder."""
    n = held.albums, held.items, held.notes, held.exchanges
    return {
        "albums": ngettext("%(count)d album", "%(count)d albums", n[0]) % {"count": n[0]},
        "items": ngettext("%(count)d photo or video", "%(count)d photos and videos", n[1])
        % {"count": n[1]},
        "notes": ngettext("%(count)d note", "%(count)d notes", n[2]) % {"count": n[2]},
        "exchanges": ngettext("%(count)d exchange", "%(count)d exchanges", n[3]) % {"count": n[3]},
    }


def _line(line: UsageLine) -> str:
    t = line.totals
    heard = f", of which {t.audio_tokens:,} hearing voice notes" if t.audio_tokens else ""
    cached = f", {t.cached_tokens:,} of them cached" if t.cached_tokens else ""
    return (
        f"{count(t.calls, 'request')}, {t.total_tokens:,} tokens "
        f"({t.prompt_tokens:,} in{heard}{cached}, {t.output_tokens:,} out)"
        + (f" ≈ ${line.cost:.4f}" if line.cost is not None else "")
    )


def _prices_assumed(prices: Prices) -> str:
    """The prices costs assume: the model's list price on a day, or the operator's own."""
    model = html.escape(prices.model)
    if prices.input is None or prices.cached_input is None or prices.output is None:
        return (
            f"No cost estimate: there is no list price for {model} here; the bot's operator can "
            "set PRICE_INPUT_PER_MILLION, PRICE_CACHED_INPUT_PER_MILLION and "
            "PRICE_OUTPUT_PER_MILLION."
        )
    figures = (
        f"Costs are estimates at ${prices.input:g} input, ${prices.cached_input:g} cached input "
        f"and ${prices.output:g} output per million tokens"
    )
    if len(prices.set_by_operator) == 3:
        return f"{figures}, prices set by the bot's operator."
    source = f"{model}'s list price on {prices.on.isoformat()}"
    if prices.listed_until is not None:
        source += f", until {prices.listed_until.isoformat()}"
    if prices.set_by_operator:
        source += f" ({' and '.join(prices.set_by_operator)} set by the bot's operator)"
    return f"{figures}: {source}."


def _who(user_id: int | None) -> str:
    return html.escape(str(user_id)) if user_id is not None else "unknown"
