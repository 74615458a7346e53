"""Rich-message payloads checked against a reference nobody here wrote: aiogram's typed models.

aiogram (3.31, Bot API 10.3) transcribes the official Bot API page into pydantic models. Its
models accept unknown fields (extra="allow"), so after validating, every model in the tree is
also checked to have no extra field: a misspelt or invented field fails here.
"""

from __future__ import annotations

from typing import Any

from aiogram.methods import EditMessageText, SendRichMessage, SendRichMessageDraft
from aiogram.methods.base import TelegramMethod
from pydantic import BaseModel

METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendrichmessage": SendRichMessage,
    "sendrichmessagedraft": SendRichMessageDraft,
    "editmessagetext": EditMessageText,
}


def unknown_fields(model: Any, path: str = "") -> list[str]:
    """Paths of fields aiogram's models do not know, anywhere in a validated tree."""
    found: list[str] = []
    if isinstance(model, BaseModel):
        found += [f"{path}.{name}" for name in (model.model_extra or {})]
        for name in type(model).model_fields:
            found += unknown_fields(getattr(model, name), f"{path}.{name}")
    elif isinstance(model, list | tuple):
        for index, entry in enumerate(model):
            found += unknown_fields(entry, f"{path}[{index}]")
    return found


def check_payload(method: str, params: dict[str, Any]) -> TelegramMethod[Any]:
    """Build a Bot API call's parameters into aiogram's model of that method, or fail."""
    model = METHODS[method.lower()].model_validate(params)
    extra = unknown_fields(model, method)
    assert not extra, f"fields aiogram's {method} does not know: {extra}"
    return model
