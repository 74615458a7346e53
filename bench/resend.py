"""4. Re-sent media per follow-up: what each question after the story sends to Gemini again.

An album of photos (the real test photos as files, the rest compressed) and two real videos
gets its story; then each follow-up question is matched to the requests the fake Gemini
received between the question and its answer. Media bytes sent again = inline data in those
requests (generateContent or cachedContents) + bytes uploaded to the File API meanwhile.
"""

from __future__ import annotations

from bench import media
from bench.chats import prepare_photos
from bench.report import Row, kb, median, verdict
from bench.session import Context, Session
from tests.fakes.gemini_api import Recorded, file_uris, inline_bytes

SCENARIO = "4 re-sent media"
VIDEOS = 2


async def run(ctx: Context) -> list[Row]:
    """Album, story, follow-ups; read the fake Gemini's log."""
    plan = ctx.plan
    real = [(p.name, p.read_bytes()) for p in media.REAL_PHOTOS]
    compressed = media.photos(media.COMPRESSED, plan.resend_photos - len(real), first=10_000)
    prepare_photos(compressed)
    async with Session(ctx, "resend") as session:
        user = session.traveller()
        sent = [user.send_files(real)]
        sent += [user.send_photos(compressed[i : i + 10]) for i in range(0, len(compressed), 10)]
        sent += [user.send_video(p.read_bytes(), p.name) for p in media.REAL_VIDEOS[:VIDEOS]]
        await user.acknowledged(sent, ctx.plan.ack_quiet)
        story = await user.story("short")
        answers = [
            await user.ask(f"Which photo was taken first, and where? (question {n})")
            for n in range(1, plan.resend_questions + 1)
        ]
        requests = list(session.gemini.requests)
        await session.stop_process()

    def window(start: float, seconds: float) -> list[Recorded]:
        return [r for r in requests if start <= r.time <= start + seconds]

    story_window = window(story.sent_at, story.final)
    story_uploads = [r for r in story_window if r.kind == "upload_chunk"]
    resent: list[int] = []
    refs: list[int] = []
    sizes: list[int] = []
    for answer in answers:
        seen = window(answer.sent_at, answer.final)
        asks = [r for r in seen if r.kind in ("generate", "stream")]
        if not asks:
            raise RuntimeError("a follow-up reached no generateContent request")
        media_bytes = sum(
            inline_bytes(r.body) for r in seen if r.kind in ("generate", "stream", "cache_create")
        )
        media_bytes += sum(r.bytes_len for r in seen if r.kind == "upload_chunk")
        resent.append(media_bytes)
        refs.append(sum(len(file_uris(r.body)) for r in asks))
        sizes.append(sum(r.bytes_len for r in asks))
    album = f"{plan.resend_photos} photos + {VIDEOS} videos"
    return [
        Row(
            SCENARIO,
            f"media bytes sent again per follow-up after the story ({album}), worst of "
            f"{len(answers)}",
            f"{max(resent)} B",
            "0 B",
            verdict(max(resent) == 0),
            {"bytes": resent},
        ),
        Row(
            SCENARIO,
            "per follow-up: file references / request size (median)",
            f"{median(refs):.0f} refs / {kb(median(sizes))}",
            data={"refs": refs, "request_bytes": sizes},
        ),
        Row(
            SCENARIO,
            "the story itself: uploads to the File API",
            f"{len(story_uploads)} files, {kb(sum(r.bytes_len for r in story_uploads))}",
            data={"uploads": len(story_uploads)},
        ),
    ]
