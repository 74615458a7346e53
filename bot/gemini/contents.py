"""The product's turns as google-genai contents, each file referred to by its upload."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from google.genai import types
from pydantic import ValidationError

from bot.model import MediaRef, ModelRequest, Part, Turn
from storage.records import Upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContentMaker:
    """Builds the contents of a request, or of a context cache, from ready uploads."""

    video_fps: float
    # A cache has no generation config: its media carry the resolution themselves.
    cached_resolution: types.PartMediaResolutionLevel

    def contents(
        self, request: ModelRequest, ready: dict[str, Upload], cached: bool
    ) -> list[types.Content]:
        """The turns to send; without the album's context when a cache holds it."""
        contents = []
        for turn in sent_turns(request, cached):
            if turn.raw:
                try:
                    contents.append(types.Content.model_validate_json(turn.raw))
                    continue
                except ValidationError:
                    log.warning("A stored model turn no longer validates; sending its text")
            contents.append(types.Content(role=turn.role, parts=self.parts(turn.parts, ready)))
        return contents

    def context(self, request: ModelRequest, ready: dict[str, Upload]) -> types.Content:
        """The album's turn as a context cache holds it."""
        return types.Content(role="user", parts=self.parts(request.context(), ready, cached=True))

    def parts(
        self, parts: tuple[Part, ...], ready: dict[str, Upload], cached: bool = False
    ) -> list[types.Part]:
        """Text as text, media as references to their uploads."""
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(types.Part(text=part))
                continue
            uploaded = ready[part.key]
            media = types.Part(
                file_data=types.FileData(file_uri=uploaded.uri, mime_type=uploaded.mime_type)
            )
            if part.is_video:
                media.video_metadata = types.VideoMetadata(fps=self.video_fps)
            if cached:
                media.media_resolution = types.PartMediaResolution(level=self.cached_resolution)
            out.append(media)
        return out


def sent_turns(request: ModelRequest, cached: bool) -> tuple[Turn, ...]:
    """The request's turns, without the album's context when a cache holds it."""
    if not cached or not request.context_parts or not request.turns:
        return request.turns
    first = request.turns[0]
    rest = first.parts[request.context_parts :]
    head = (Turn(first.role, rest, first.raw),) if rest else ()
    return head + request.turns[1:]


def sent_media(request: ModelRequest, cached: bool) -> list[MediaRef]:
    """Every distinct media file the request sends (with a cache: not the album's)."""
    return replace(request, turns=sent_turns(request, cached)).media()
