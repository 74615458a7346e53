"""One answer as it arrives from Gemini, and the sentence a user reads when there is none."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from google.genai import errors as genai_errors
from google.genai import types

from bot.errors import ModelBlocked, ModelEmptyAnswer, ModelError, ModelUnavailable
from bot.gemini.failures import retry_delay
from bot.i18n import _
from bot.model import ModelAnswer, TokenUsage

log = logging.getLogger(__name__)

BLOCK_REASONS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "OTHER"}
)


@dataclass
class StreamState:
    """What has arrived so far of one answer (streamed or not)."""

    text: str = ""
    parts: list[types.Part] = field(default_factory=list)
    finish_reason: str | None = None
    block_reason: str | None = None
    usage: TokenUsage | None = None
    shown: bool = False

    def absorb(self, response: types.GenerateContentResponse) -> bool:
        """Take one response or chunk in; return whether visible text grew."""
        grew = False
        if response.prompt_feedback and response.prompt_feedback.block_reason:
            self.block_reason = _name(response.prompt_feedback.block_reason)
        if response.usage_metadata is not None:
            self.usage = _usage(response.usage_metadata)
        for candidate in response.candidates or []:
            if candidate.finish_reason:
                self.finish_reason = _name(candidate.finish_reason)
            for part in (candidate.content.parts if candidate.content else None) or []:
                self.parts.append(part)
                if part.text and not part.thought:
                    self.text += part.text
                    grew = True
            break  # one candidate is asked for
        return grew

    def answer(self) -> ModelAnswer:
        """The finished answer, or the reason there is none."""
        if self.block_reason:
            raise ModelBlocked(_blocked_message(self.block_reason), self.block_reason)
        if self.finish_reason in BLOCK_REASONS:
            raise ModelBlocked(_blocked_message(self.finish_reason), self.finish_reason)
        if not self.text.strip():
            raise ModelEmptyAnswer(_("Gemini returned an empty answer. Please try again."))
        content = types.Content(role="model", parts=_merge_parts(self.parts))
        raw = json.dumps(content.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
        return ModelAnswer(
            text=self.text,
            raw=raw,
            usage=self.usage or TokenUsage(),
            finish_reason=self.finish_reason or "STOP",
        )


def _merge_parts(parts: list[types.Part]) -> list[types.Part]:
    """Join a stream's text pieces into whole parts, keeping thought signatures."""
    merged: list[types.Part] = []
    for part in parts:
        last = merged[-1] if merged else None
        if (
            last is not None
            and part.text is not None
            and last.text is not None
            and bool(part.thought) == bool(last.thought)
            and not (part.thought_signature and last.thought_signature)
        ):
            merged[-1] = last.model_copy(
                update={
                    "text": last.text + part.text,
                    "thought_signature": last.thought_signature or part.thought_signature,
                }
            )
        else:
            merged.append(part)
    return merged


def _usage(meta: types.GenerateContentResponseUsageMetadata) -> TokenUsage:
    by_modality: dict[str, int] = {}
    for detail in meta.prompt_tokens_details or []:
        if detail.modality is not None:
            key = _name(detail.modality)
            by_modality[key] = by_modality.get(key, 0) + (detail.token_count or 0)
    return TokenUsage(
        prompt=meta.prompt_token_count or 0,
        output=meta.candidates_token_count or 0,
        thinking=meta.thoughts_token_count or 0,
        cached=meta.cached_content_token_count or 0,
        total=meta.total_token_count or 0,
        by_modality=by_modality,
    )


def _name(value: object) -> str:
    return str(getattr(value, "value", value))


def _blocked_message(reason: str) -> str:
    if reason == "RECITATION":
        return _(
            "Gemini stopped because its answer came too close to text published elsewhere. "
            "Please ask again, perhaps in other words."
        )
    if reason in ("SAFETY", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "BLOCKLIST", "SPII"):
        return _("Gemini declined to answer this for safety reasons. Please rephrase the request.")
    return _("Gemini declined to answer this. Please rephrase the request.")


def user_error(e: genai_errors.APIError, shown: bool) -> ModelError:
    if e.code == 429:
        delay = retry_delay(e)
        if delay:
            busy = _("Gemini is busy right now. Please try again in about %(seconds)d seconds.") % {
                "seconds": int(delay) + 1
            }
        else:
            busy = _("Gemini is busy right now. Please try again in a minute.")
        return ModelUnavailable(busy, delay)
    if e.code is not None and e.code >= 500:
        if shown:
            return ModelUnavailable(_("Gemini failed while answering. Please ask again."))
        return ModelUnavailable(
            _("Gemini is having trouble right now. Please try again in a minute.")
        )
    if e.code in (401, 403) or (e.code == 400 and "API_KEY" in str(e.details)):
        log.error("Gemini refused the API key or access: %s %s", e.code, e.status)
        return ModelError(_("The bot's Gemini access is not working. Please tell the bot's owner."))
    log.error("Gemini refused the request: %s %s %s", e.code, e.status, e.message)
    return ModelError(_("Gemini could not handle this request. Please try rephrasing it."))
