"""The story, the landmarks and every follow-up: one conversation with the model per album."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Protocol

import prompts
from bot.errors import BudgetExceeded, MediaNotProcessed, ModelBlocked, ModelError, NothingToDo
from bot.i18n import _
from bot.model import Listener, ModelAnswer, ModelRequest, TokenUsage
from bot.service import context
from bot.service.base import AlbumServiceBase
from bot.service.export import StoryFiles, export_file_name, render_html, render_markdown_zip
from bot.service.story import (
    STORY_SCHEMA,
    Story,
    StoryFormatError,
    parse_story,
    preview_markdown,
    story_from_markdown,
)
from bot.service.words import shown_label
from storage.jobs import current_attempt
from storage.records import Album, Exchange, Item, NewExchange, Note, UsageRecord

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Where a long answer reports to while it is being made (the chat, in practice)."""

    async def status(self, text: str) -> None:
        """A short line on what is happening ("Processing video 2 of 3...")."""

    async def text(self, so_far: str) -> None:
        """The answer written so far."""


@dataclass(frozen=True)
class Asker:
    """Who is asking: for budgets, usage and the language of the answer."""

    chat_id: int
    user_id: int | None
    name: str | None = None
    language_code: str | None = None  # what the answer is written in: the chat's language


@dataclass(frozen=True)
class Reply:
    """A finished answer, plus notices about media the model could not use.

    For a story, `story` holds its checked structure and `items` the album in time order.
    """

    text: str
    album: Album
    kind: str
    notices: list[str] = field(default_factory=list)
    story: Story | None = None
    items: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    """One file of an export, made when asked for (a long trip's files are tens of MB each:
    made and sent one at a time, only one is in memory), or written into a file as it is made
    with no size limit (`write_into`, blocking: none in memory, and the pictures made once for
    all of an export's files)."""

    kind: str  # "page" or "markdown"
    name: str
    make: Callable[[], Awaitable[bytes]]
    write_into: Callable[[IO[bytes]], None]


@dataclass(frozen=True)
class Export:
    """The latest story as files: a self-contained web page and a Markdown zip."""

    album: Album
    files: tuple[ExportFile, ...]


@dataclass(frozen=True)
class _Turn:
    """How one kind of request is asked and read back."""

    kind: str
    prompt: str
    focus: Item | None = None
    user_text: str | None = None
    json_schema: dict[str, object] | None = None


class ConversationService(AlbumServiceBase):
    """Asks the model about an album, with the album's media, context and earlier turns."""

    async def story(self, asker: Asker, wish: str | None, progress: Progress) -> Reply:
        """Write the album's photo tour as a checked, illustrated structure."""
        turn = _Turn("story", context.story_prompt(wish), user_text=wish, json_schema=STORY_SCHEMA)
        return await self._ask(asker, turn, progress)

    async def landmarks(self, asker: Asker, progress: Progress) -> Reply:
        """The well-known places near the trip that the album does not show."""
        try:
            return await self._ask(asker, _Turn("landmarks", prompts.render("landmarks")), progress)
        except ModelBlocked as e:
            if e.reason != "RECITATION":
                raise
            # Lists of famous places can come too close to published text: ask again for
            # descriptions in the model's own words.
            log.info("Landmarks answer blocked for recitation; asking again in other words")
            await progress.status(_("Rephrasing the list of places…"))
            retry = _Turn("landmarks", prompts.render("landmarks_again"))
            return await self._ask(asker, retry, progress)

    async def latest_story(self, chat_id: int) -> tuple[Album, Story, list[Item]]:
        """The current album's most recent story, checked against the album as it is now."""
        album = await self.storage.albums.current(chat_id)
        stories = [
            e for e in await self.storage.conversation.exchanges(album.id) if e.kind == "story"
        ]
        if not stories:
            raise NothingToDo(
                _("There is no story of '%(album)s' yet. Write it with /story.")
                % {"album": album.name}
            )
        items = context.in_time_order(
            [i for i in await self.storage.media.items(album.id) if not i.model_failed]
        )
        return album, _read_story(stories[-1], items), items

    async def export(
        self, chat_id: int, language_code: str | None, max_bytes: int | None = None
    ) -> Export:
        """The current album's latest story as a web page and a Markdown zip, each made lighter
        if needed to stay within `max_bytes` (rendered when each file is asked for); written
        into files by `write_into`, they are whole whatever their size."""
        album, story, items = await self.latest_story(chat_id)
        page = functools.partial(
            render_html, album_name=album.name, language=language_code, max_bytes=max_bytes
        )
        markdown = functools.partial(
            render_markdown_zip, album_name=album.name, max_bytes=max_bytes
        )
        whole = StoryFiles(
            story, items, self.storage.blobs, album_name=album.name, language=language_code
        )
        return Export(
            album=album,
            files=(
                ExportFile(
                    "page",
                    export_file_name(album.name, "html"),
                    lambda: asyncio.to_thread(page, story, items, self.storage.blobs),
                    whole.write_page,
                ),
                ExportFile(
                    "markdown",
                    export_file_name(f"{album.name} markdown", "zip"),
                    lambda: asyncio.to_thread(markdown, story, items, self.storage.blobs),
                    whole.write_markdown_zip,
                ),
            ),
        )

    async def ask(
        self,
        asker: Asker,
        question: str,
        progress: Progress,
        replied_message_id: int | None = None,
    ) -> Reply:
        """A follow-up question; about one item when it replies to the message that carried it."""
        focus = await self._replied(asker, progress, replied_message_id)
        prompt = context.question_prompt(question, focus)
        return await self._ask(asker, _Turn("question", prompt, focus, question), progress)

    async def same_trip(
        self, asker: Asker, progress: Progress, replied_message_id: int | None = None
    ) -> Reply:
        """Whether a video (the one replied to, or the latest) was shot on the same trip."""
        video = await self._replied(asker, progress, replied_message_id)
        if video is None or video.kind != "video":
            # The latest of the files received, not of those stored so far.
            album = await self._album_read(asker, progress)
            videos = [i for i in await self.storage.media.items(album.id) if i.kind == "video"]
            video = videos[-1] if videos else None
        if video is None:
            raise NothingToDo(
                _(
                    "There is no video in this album yet. Send the clip, then /sametrip "
                    "(or reply to the video with /sametrip)."
                )
            )
        prompt = prompts.render("sametrip", label=video.label)
        return await self._ask(asker, _Turn("sametrip", prompt, video, "/sametrip"), progress)

    async def reset(self, chat_id: int) -> tuple[Album, int]:
        """Forget the current album's conversation; the media stay."""
        album = await self.storage.albums.current(chat_id)
        cleared = await self.storage.conversation.clear(album.id)
        # The album's context cached at the model held this conversation's language and album.
        await self.model.forget(albums=[album.id])
        return album, cleared

    async def has_conversation(self, chat_id: int) -> bool:
        """Whether the current album's conversation has begun."""
        album = await self.storage.albums.current(chat_id)
        return await self.storage.conversation.latest(album.id) is not None

    async def _replied(
        self, asker: Asker, progress: Progress, message_id: int | None
    ) -> Item | None:
        """The item the replied-to message carried, looked for once the album's files are
        read: a file just sent is received at once but stored by its own job, later."""
        if message_id is None:
            return None
        await self._album_read(asker, progress)
        return await self.storage.media.by_message(asker.chat_id, message_id)

    async def _album_read(self, asker: Asker, progress: Progress) -> Album:
        """The chat's current album once the model can see every file it received."""
        album = await self.storage.albums.current(asker.chat_id)
        shown: list[int] = []

        async def reading(left: int) -> None:
            """ "Reading your photos 38/50…": of the album's files, how many the model can see."""
            if shown and left == shown[-1]:
                return
            shown.append(left)
            summary = await self.storage.albums.summary(asker.chat_id, album.id)
            total = max(summary.items if summary else left, left)
            await progress.status(
                _("Reading your photos %(done)d/%(total)d…")
                % {"done": total - left, "total": total}
            )

        await self.copies.ready(album.id, reading)
        return album

    async def _ask(self, asker: Asker, turn: _Turn, progress: Progress) -> Reply:
        kind = turn.kind
        album = await self._album_read(asker, progress)
        items = await self.storage.media.items(album.id)
        notes = await self.storage.media.notes(album.id)
        if not items and not notes:
            raise NothingToDo(
                _(
                    "The album '%(album)s' is empty. Send me some photos or videos of the trip "
                    "first."
                )
                % {"album": album.name}
            )
        notices: list[str] = []
        if kind == "story":  # the story says what it leaves out, however long ago it failed
            notices += [
                _("I left out %(item)s: %(reason)s.")
                % {"item": shown_label(context.media_label(i)), "reason": _(i.model_failed)}
                for i in items
                if i.model_failed
            ]
        usable = [i for i in items if not i.model_failed and i.media.model_ready]
        job = current_attempt()
        # A job run again (a crash, a stall taken over, a retry) reads back the answer its
        # earlier attempt was given: the model is asked once per job.
        earlier = await self.storage.conversation.answered(job.job_id, kind) if job else None
        if earlier is not None:
            answer_text, answer_raw, focus = earlier.answer_text, None, None
        else:
            await self._check_budget(asker)
            answer, usable, focus = await self._answer(
                asker, album, turn, usable, notes, notices, progress
            )
            answer_text, answer_raw = answer.text, answer.raw
        story = None
        ordered = context.in_time_order(usable)
        if kind == "story":
            try:
                story = _parse(answer_text, ordered)
            except StoryFormatError as e:
                log.warning("Unusable story from the model: %s", e)
                raise ModelError(
                    _("Gemini's story came back garbled. Please try /story again.")
                ) from e
        if earlier is None:
            await self.storage.conversation.add(
                NewExchange(
                    album_id=album.id,
                    kind=kind,
                    prompt=turn.prompt,
                    answer_text=answer_text,
                    answer_content=answer_raw,
                    user_text=turn.user_text,
                    focus_item_id=focus.id if focus else None,
                    sender_id=asker.user_id,
                    job_id=job.job_id if job else None,
                )
            )
        text = story.markdown() if story else answer_text
        return Reply(text, album, kind, notices, story=story, items=ordered)

    async def _answer(
        self,
        asker: Asker,
        album: Album,
        turn: _Turn,
        usable: list[Item],
        notes: list[Note],
        notices: list[str],
        progress: Progress,
    ) -> tuple[ModelAnswer, list[Item], Item | None]:
        """The model's answer, the items it saw (files it refused are left out, with a notice
        each) and the item the turn singled out."""
        history = await self.storage.conversation.exchanges(album.id)

        async def record(what: str, usage: TokenUsage) -> None:
            await self._record_usage(asker, album, what, usage)

        async def show(so_far: str) -> None:
            await progress.text(preview_markdown(so_far) if turn.json_schema else so_far)

        listener = Listener(status=progress.status, text=show, usage=record)
        while True:
            request, focus = self._request(asker, album, turn, usable, notes, history)
            try:
                return await self.model.answer(request, listener), usable, focus
            except MediaNotProcessed as refused:
                # Nothing was asked: those files leave the album's conversation for good.
                notices += await self._leave_out(usable, refused)
                usable = [i for i in usable if i.media.model.sha256 not in refused.refused]

    def _request(
        self,
        asker: Asker,
        album: Album,
        turn: _Turn,
        usable: list[Item],
        notes: list[Note],
        history: list[Exchange],
    ) -> tuple[ModelRequest, Item | None]:
        """The whole request, and the item it singles out."""
        # The item as it is now (its model copy may have been made since it was looked up);
        # None if the model cannot see it, and the reply is an ordinary question.
        focus = next((i for i in usable if i.id == turn.focus.id), None) if turn.focus else None
        request = context.build_request(
            system=context.system_prompt(asker.language_code),
            album=context.album_parts(album, usable, notes, self.storage.blobs),
            history=history,
            focus_items={i.id: i for i in usable},
            blobs=self.storage.blobs,
            prompt=turn.prompt,
            focus=focus,
            kind=turn.kind,
            json_schema=turn.json_schema,
            album_id=album.id,
        )
        return request, focus

    async def _leave_out(self, usable: list[Item], refused: MediaNotProcessed) -> list[str]:
        """Mark the items whose files the model cannot process; a notice for each."""
        notices = []
        for item in usable:
            reason = refused.refused.get(item.media.model.sha256)
            if reason is not None:
                await self.storage.media.mark_model_failed(item.id, reason)
                notices.append(
                    _("Gemini could not process %(item)s (%(reason)s), so I left it out.")
                    % {"item": shown_label(context.media_label(item)), "reason": _(reason)}
                )
        if not notices:
            raise refused  # none of the album's files: asking again would not help
        return notices

    async def _check_budget(self, asker: Asker) -> None:
        budget = self.settings.daily_token_budget
        if not budget or asker.user_id is None:
            return
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        used = await self.storage.usage.user_totals(
            asker.user_id, since.isoformat(timespec="seconds")
        )
        if used.total_tokens >= budget:
            raise BudgetExceeded(
                _(
                    "You have used today's allowance of %(budget)s Gemini tokens. "
                    "It renews at midnight UTC; /usage shows the details."
                )
                % {"budget": f"{budget:,}"}
            )

    async def _record_usage(self, asker: Asker, album: Album, kind: str, usage: TokenUsage) -> None:
        await self.storage.usage.record(
            UsageRecord(
                chat_id=asker.chat_id,
                user_id=asker.user_id,
                album_id=album.id,
                kind=kind,
                model=self.settings.gemini_model,
                tokens=usage,
            )
        )


def _parse(answer: str, items: list[Item]) -> Story:
    """The structured story, or a story read from Markdown if the model ignored the schema."""
    try:
        return parse_story(answer, items)
    except StoryFormatError:
        if answer.lstrip().startswith("{"):
            raise
        return story_from_markdown(answer, items)


def _read_story(exchange: Exchange, items: list[Item]) -> Story:
    try:
        return _parse(exchange.answer_text, items)
    except StoryFormatError as e:
        raise NothingToDo(
            _("The last story cannot be read back; write a new one with /story.")
        ) from e
