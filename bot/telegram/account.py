"""Usage, admin totals and forgetting a chat."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.i18n import N_, _, ngettext
from bot.service.reexports import ChatFootprint
from bot.service.usage import Prices, UsageLine
from bot.telegram.runtime import runtime


async def usage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/usage: the user's Gemini tokens today and this month, with an estimated cost."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    report = await runtime(context).services.usage.report(user.id)
    lines = [
        "<b>" + _("Your Gemini usage") + "</b>",
        _("Today: %(usage)s") % {"usage": _line(report.today)},
        _("This month: %(usage)s") % {"usage": _line(report.month)},
    ]
    if report.daily_budget:
        left = max(0, report.daily_budget - report.today.totals.total_tokens)
        lines.append(
            _("Daily allowance: %(budget)s tokens, %(left)s left today.")
            % {"budget": f"{report.daily_budget:,}", "left": f"{left:,}"}
        )
    utc = _("Days are UTC.")
    lines.append(f"<i>{_prices_assumed(report.prices)} {utc}</i>")
    await message.reply_html("\n".join(lines))


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats (admins only): every user's usage today and this month."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    rt = runtime(context)
    if not rt.services.settings.admins.allows(user.id, user.username):
        await message.reply_text(_("Only the bot's admins (ADMIN_USERS) can see everyone's usage."))
        return
    today, month = await rt.services.usage.per_user()
    nothing = _("nothing yet")
    lines = ["<b>" + _("Usage by user") + "</b> " + _("(UTC)"), "", "<b>" + _("Today") + "</b>"]
    lines += [f"{_who(u)}: {_line(line)}" for u, line in today] or [nothing]
    lines += ["", "<b>" + _("This month") + "</b>"]
    lines += [f"{_who(u)}: {_line(line)}" for u, line in month] or [nothing]
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
    await rt.acks.forget(chat.id)
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
    detail = [_("%(tokens)s in") % {"tokens": f"{t.prompt_tokens:,}"}]
    if t.audio_tokens:
        detail.append(
            _("of which %(tokens)s hearing voice notes") % {"tokens": f"{t.audio_tokens:,}"}
        )
    if t.cached_tokens:
        detail.append(_("%(tokens)s of them cached") % {"tokens": f"{t.cached_tokens:,}"})
    detail.append(_("%(tokens)s out") % {"tokens": f"{t.output_tokens:,}"})
    requests = ngettext("%(count)d request", "%(count)d requests", t.calls) % {"count": t.calls}
    return _("%(requests)s, %(tokens)s tokens (%(detail)s)") % {
        "requests": requests,
        "tokens": f"{t.total_tokens:,}",
        "detail": ", ".join(detail),
    } + (f" ≈ ${line.cost:.4f}" if line.cost is not None else "")


def _prices_assumed(prices: Prices) -> str:
    """The prices costs assume: the model's list price on a day, or the operator's own."""
    model = html.escape(prices.model)
    if prices.input is None or prices.cached_input is None or prices.output is None:
        return _(
            "No cost estimate: there is no list price for %(model)s here; the bot's operator can "
            "set PRICE_INPUT_PER_MILLION, PRICE_CACHED_INPUT_PER_MILLION and "
            "PRICE_OUTPUT_PER_MILLION."
        ) % {"model": model}
    figures = _(
        "Costs are estimates at $%(input)s input, $%(cached)s cached input "
        "and $%(output)s output per million tokens"
    ) % {
        "input": f"{prices.input:g}",
        "cached": f"{prices.cached_input:g}",
        "output": f"{prices.output:g}",
    }
    if len(prices.set_by_operator) == 3:
        return _("%(figures)s, prices set by the bot's operator.") % {"figures": figures}
    source = _("%(model)s's list price on %(day)s") % {
        "model": model,
        "day": prices.on.isoformat(),
    }
    if prices.listed_until is not None:
        source += _(", until %(day)s") % {"day": prices.listed_until.isoformat()}
    if prices.set_by_operator:
        which = _(" and ").join(_(_PRICE_NAMES[name]) for name in prices.set_by_operator)
        source += " " + _("(%(which)s set by the bot's operator)") % {"which": which}
    return _("%(figures)s: %(source)s.") % {"figures": figures, "source": source}


# The prices PRICE_* can set, as bot/service/usage.py names them.
_PRICE_NAMES = {"input": N_("input"), "cached input": N_("cached input"), "output": N_("output")}


def _who(user_id: int | None) -> str:
    return html.escape(str(user_id)) if user_id is not None else _("unknown")
