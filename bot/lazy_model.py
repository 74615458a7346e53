"""The model, built the first time it is used rather than at start-up.

Importing the model's SDK takes about a second (google-genai's `types` module alone), and
nothing before the bot's first poll needs it: a bot that only stores photos never does. The
services hold a `LazyModel` in the model's place; every attribute is the real model's. A
coroutine method of the `Model` protocol imports the SDK in a thread, so the event loop keeps
serving other chats meanwhile; anything else (an attribute read) imports it there and then.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from bot.model import Model


class LazyModel:
    """Stands in for the model that `build` makes from `module` (imported on first use)."""

    def __init__(self, module: str, build: Callable[[ModuleType], Model]) -> None:
        self._module = module
        self._build = build
        self._model: Model | None = None

    def load(self) -> Model:
        """The model, built now if it was not yet (blocking while the SDK is imported)."""
        if self._model is None:
            self._model = self._build(import_module(self._module))
        return self._model

    def __getattr__(self, name: str) -> Any:
        if self._model is not None or not inspect.iscoroutinefunction(getattr(Model, name, None)):
            return getattr(self.load(), name)

        async def first_call(*args: Any, **kwargs: Any) -> Any:
            # The import runs in a thread; the model itself is built here, on the event loop
            # its client will run on.
            await asyncio.to_thread(import_module, self._module)
            return await getattr(self.load(), name)(*args, **kwargs)

        return first_call

    async def aclose(self) -> None:
        """Close the model's client, if it was ever built."""
        if self._model is not None:
            await self._model.aclose()
