"""2. Memory: one chat sends big photos as files and a big video; the bot's peak RSS.

The order tells memory apart: first a small real video warms the bot up (the first video loads
FFmpeg's libraries), then the big video alone, so the RSS it adds is visible on its own (a
file that streams to disk adds little; one held in memory adds at least its size), then the
photos in albums of ten (the first photo with GPS loads the offline places), then /story
(uploads to the File API, the illustrated story posted with the photos), then /export (a web
page with every photo inside it, and a zip).
"""

from __future__ import annotations

from bench import media
from bench.report import Row, mb, verdict
from bench.session import Context, Session

SCENARIO = "2 memory"
TARGET = 250 * 2**20
ALBUM = 10


async def run(ctx: Context) -> list[Row]:
    """Measure RSS through warm-up, the big video, the photos and the story."""
    plan = ctx.plan
    photos = media.photos(plan.big_kind, plan.big_photos)
    video = media.video(plan.video_seconds, plan.video_bytes)
    quiet = ctx.plan.ack_quiet
    async with Session(ctx, "memory") as session:
        mem = session.memory
        idle = mem.rss()
        user = session.traveller("Ana")

        warm = user.send_video(media.REAL_VIDEOS[0].read_bytes(), media.REAL_VIDEOS[0].name, 16)
        await user.acknowledged(warm, quiet)
        await session.stored()  # acknowledged once received: processed after
        warm_rss, warm_hwm = mem.rss(), mem.high_water_mark()

        sent = user.send_video(video, "big.mp4", plan.video_seconds)
        await user.acknowledged(sent, quiet)
        await session.stored()
        # VmHWM only tells a new maximum; below the warm-up's, the samples tell the peak.
        video_peak = mem.peak(since=sent.at)
        if mem.high_water_mark() > warm_hwm:
            video_peak = max(video_peak, mem.high_water_mark())
        video_growth = max(0, video_peak - warm_rss)

        batches = [
            user.send_files(
                [(f"IMG_{i:04d}.JPG", data) for i, data in enumerate(photos[s : s + ALBUM], s)]
            )
            for s in range(0, len(photos), ALBUM)
        ]
        await user.acknowledged(batches, quiet)
        await session.stored()
        intake_peak = mem.high_water_mark()
        after_intake = mem.rss()

        story = await user.story("short")
        story_peak = mem.high_water_mark()
        export_seconds, export_sizes = await user.export()
        export_peak = mem.high_water_mark()
        await session.stop_process()

    what = f"{plan.big_photos} photos of {plan.big_kind.width}x{plan.big_kind.height} as files"
    video_mb = plan.video_bytes / 2**20
    return [
        Row(
            SCENARIO,
            f"bot peak RSS (VmHWM) receiving {what} + a {video_mb:.1f} MB video",
            mb(intake_peak),
            f"<= {mb(TARGET)}",
            verdict(intake_peak <= TARGET),
            {"bytes": intake_peak, "idle": idle, "after_intake": after_intake},
        ),
        Row(
            SCENARIO,
            f"RSS growth while receiving the {video_mb:.1f} MB video (streamed: well under its "
            "size)",
            f"+{mb(video_growth)}",
            f"< {mb(plan.video_bytes)}",
            verdict(video_growth < plan.video_bytes),
            {"bytes": video_growth, "before": warm_rss, "peak": video_peak},
        ),
        Row(
            SCENARIO,
            "bot RSS idle after start-up / after a first small video / after all the media",
            f"{mb(idle)} / {mb(warm_rss)} / {mb(after_intake)}",
        ),
        Row(
            SCENARIO,
            f"bot peak RSS including /story ({plan.big_photos + 2} uploads, illustrated story "
            f"posted in {story.final:.0f} s)",
            mb(story_peak),
            f"<= {mb(TARGET)}",
            verdict(story_peak <= TARGET),
            {"bytes": story_peak, "story_seconds": story.final},
        ),
        Row(
            SCENARIO,
            f"bot peak RSS including /export (web page and zip of {mb(sum(export_sizes))}, "
            f"sent in {export_seconds:.0f} s; a file sent is held whole, see docs)",
            mb(export_peak),
            "-",
            "INFO",
            {"bytes": export_peak, "seconds": export_seconds, "sizes": export_sizes},
        ),
    ]
