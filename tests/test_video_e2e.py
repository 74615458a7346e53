"""Videos in the album: metadata, File API processing, failures, size limits, same-trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.fakes.gemini_api import (
    FakeGemini,
    Reply,
    file_uris,
    image_parts,
    parts,
    texts,
    video_parts,
)
from tests.fakes.telegram_api import FakeTelegram
from tests.harness import DATA, TOKEN, Harness
from tests.image_files import jpeg

# (file, mime, taken_at as stored, latitude, longitude) from ../shared/testdata/MANIFEST.md
REAL_VIDEOS = [
    ("israel_iphone6_with_gps.mov", "video/quicktime", "2019-07-24T11:25:40+03:00", 32.0929, 34.862),
    ("netherlands_ducks_with_gps.mp4", "video/mp4", "2020-11-20T14:04:36+00:00", 52.36929, 6.67609),
    ("android_3gp5_null_island_rotate90.mp4", "video/mp4", "2020-10-23T20:27:29+00:00", None, None),
]  # fmt: skip


def _video(name: str) -> bytes:
    return (DATA / name).read_bytes()


async def _photo_and_pier_video(bot: Harness) -> None:
    """Ana sends a photo and a video as a file (pier.mp4); wait for their acknowledgement."""
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    bot.tg.send_document(
        bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"), file_name="pier.mp4",
        mime_type="video/mp4",
    )  # fmt: skip
    await bot.wait_text(bot.chat["id"], "1 photo, 1 video")


@pytest.mark.parametrize("as_document", [False, True], ids=["as_video", "as_file"])
@pytest.mark.parametrize(("name", "mime", "taken", "lat", "lon"), REAL_VIDEOS)
async def test_real_videos_keep_their_time_and_place(
    bot: Harness, name: str, mime: str, taken: str, lat: float | None, lon: float | None,
    as_document: bool,
) -> None:  # fmt: skip
    if as_document:
        bot.tg.send_document(bot.chat, bot.ana, _video(name), file_name=name, mime_type=mime)
    else:
        bot.tg.send_video(bot.chat, bot.ana, _video(name), mime_type=mime, file_name=name)
    await bot.wait_text(bot.chat["id"], "1 video")
    await bot.wait_stored()  # acknowledged once received: stored by the file's job
    row = bot.rows("SELECT * FROM items")[0]
    assert row["kind"] == "video" and row["time_source"] == "container"
    assert datetime.fromisoformat(row["taken_at"]) == datetime.fromisoformat(taken)
    if lat is None:
        assert row["latitude"] is None and row["longitude"] is None and row["place"] is None
    else:
        assert round(row["latitude"], 4) == round(lat, 4)
        assert round(row["longitude"], 4) == round(lon, 4)
    assert row["duration"] > 1


async def test_video_is_uploaded_once_polled_until_active_then_referenced(bot: Harness) -> None:
    gemini = bot.gemini
    gemini.processing_polls_for = {"video/": 2}
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    bot.tg.send_video(bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"))
    await bot.wait_text(bot.chat["id"], "1 photo, 1 video")
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 1 image, 1 video")

    kinds = [r.kind for r in gemini.requests]
    assert kinds.count("upload_start") == 2  # the photo and the video, resumable
    video = next(f for f in gemini.uploads() if f.mime_type == "video/mp4")
    polls = [r for r in gemini.requests if r.kind == "file_get" and video.name in r.path]
    assert len(polls) >= 2  # PROCESSING, then ACTIVE
    story = gemini.generate_requests()[-1]
    [part] = video_parts(story)
    assert part["fileData"]["fileUri"] == video.uri
    assert part["videoMetadata"]["fps"] == 1
    assert kinds.index("stream") > max(i for i, k in enumerate(kinds) if k == "file_get")
    assert any("taken 2020-11-20 14:04 (+00:00)" in t and "52.36929" in t for t in texts(story))

    bot.tg.send_text(bot.chat, bot.ana, "What animals are in the video?")
    await bot.wait_text(bot.chat["id"], "Last question")
    follow_up = gemini.generate_requests()[-1]
    assert video.uri in file_uris(follow_up)
    assert [r.kind for r in gemini.requests].count("upload_start") == 2  # no re-upload


async def test_processing_progress_is_shown_while_a_video_is_prepared(bot: Harness) -> None:
    group = bot.tg.group_chat(chat_id=-100900, title="Trip")
    bot.gemini.processing_polls_for = {"video/": 3}
    bot.tg.send_video(
        group, bot.ana, _video("israel_iphone6_with_gps.mov"), mime_type="video/quicktime"
    )
    await bot.wait_text(group["id"], "1 video")
    bot.tg.send_command(group, bot.ana, "/story")
    await bot.wait_text(group["id"], "Seen 0 images, 1 video")
    placeholder = next(m for m in bot.tg.bot_messages(group["id"]) if m.history[0].startswith("✍️"))
    assert any("Processing video 1 of 1" in version for version in placeholder.history)


async def test_failed_video_is_named_and_the_story_uses_the_rest(bot: Harness) -> None:
    bot.gemini.fail_processing(lambda f: f.mime_type.startswith("video/"))
    await _photo_and_pier_video(bot)
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    notice = await bot.wait_text(bot.chat["id"], "could not process")
    assert "video 2 (pier.mp4)" in notice
    await bot.wait_text(bot.chat["id"], "Seen 1 image, 0 videos")
    body = bot.gemini.generate_requests()[-1]
    assert len(image_parts(body)) == 1 and video_parts(body) == []
    assert bot.rows("SELECT model_failed FROM items WHERE kind = 'video'")[0][0]

    bot.tg.send_text(bot.chat, bot.ana, "And now?")  # the failed video is not tried again
    await bot.wait_text(bot.chat["id"], "Last question: And now?")
    assert sum(1 for f in bot.gemini.uploads() if f.mime_type == "video/mp4") == 1


async def test_video_over_the_download_limit_is_refused_before_any_download(bot: Harness) -> None:
    bot.tg.send_video(bot.chat, bot.ana, b"\0" * 1024, file_size=300 * 1024 * 1024)
    reply = await bot.wait_text(bot.chat["id"], "at most 20 MB")
    assert "300 MB" in reply and "trim" in reply and "TELEGRAM_API_URL" in reply
    assert bot.tg.getfile_calls() == []
    assert bot.rows("SELECT * FROM items") == []


@pytest.fixture
async def local_bot(gemini: FakeGemini, tmp_path: Path) -> AsyncIterator[Harness]:
    async with FakeTelegram(token=TOKEN, local_mode=True) as tg:
        harness = Harness(tg, gemini, tmp_path / "data", TELEGRAM_LOCAL_MODE="true")
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def test_self_hosted_bot_api_server_takes_large_videos(local_bot: Harness) -> None:
    data = _video("netherlands_ducks_with_gps.mp4")
    local_bot.tg.send_video(local_bot.chat, local_bot.ana, data, file_size=25 * 1024 * 1024)
    await local_bot.wait_text(local_bot.chat["id"], "1 video")
    await local_bot.wait_stored()
    assert len(local_bot.tg.getfile_calls()) == 1
    assert local_bot.tg.downloads() == []  # read from the server's disk, not over HTTP
    assert len(local_bot.rows("SELECT * FROM items")) == 1


async def test_reply_to_a_video_singles_it_out(bot: Harness) -> None:
    bot.tg.send_photo(bot.chat, bot.ana, jpeg(1))
    clip = bot.tg.send_video(bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"))
    await bot.wait_text(bot.chat["id"], "1 photo, 1 video")
    bot.tg.send_text(bot.chat, bot.ana, "was this shot on the same trip as the photos?",
                     reply_to=clip["message_id"])  # fmt: skip
    await bot.wait_text(bot.chat["id"], "Last question")
    last_turn = parts({"contents": bot.gemini.generate_requests()[-1]["contents"][-1:]})
    *_, shown_again, media, question = last_turn
    assert "(shown again)" in shown_again["text"] and "[video 2]" in shown_again["text"]
    assert media["fileData"]["mimeType"] == "video/mp4"
    assert "replied to video 2" in question["text"]


async def test_sametrip_compares_the_latest_video_with_the_photos(bot: Harness) -> None:
    for n in range(2):
        bot.tg.send_photo(bot.chat, bot.ana, jpeg(n))
    bot.tg.send_video(
        bot.chat, bot.ana, _video("israel_iphone6_with_gps.mov"), mime_type="video/quicktime"
    )
    bot.tg.send_video_note(bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"))
    await bot.wait_text(bot.chat["id"], "2 photos, 2 videos")
    bot.gemini.enqueue(Reply(text="Same backpack, same pier.\n\nVerdict: same trip (high)."))
    bot.tg.send_command(bot.chat, bot.ana, "/sametrip")
    await bot.wait_text(bot.chat["id"], "Verdict: same trip")
    last_turn = parts({"contents": bot.gemini.generate_requests()[-1]["contents"][-1:]})
    *_, shown_again, media, prompt = last_turn
    assert "[video 4]" in shown_again["text"]
    assert media["fileData"]["mimeType"] == "video/mp4"
    assert "Was video 4 shot on the same trip" in prompt["text"]
    assert "step by step" in prompt["text"] and "Verdict:" in prompt["text"]


async def test_animation_and_round_video_join_the_album_as_videos(bot: Harness) -> None:
    data = _video("android_3gp5_null_island_rotate90.mp4")
    bot.tg.send_animation(bot.chat, bot.ana, data)
    bot.tg.send_video_note(bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"))
    await bot.wait_text(bot.chat["id"], "2 videos")
    await bot.wait_stored()
    assert [r["kind"] for r in bot.rows("SELECT kind FROM items")] == ["video", "video"]


async def test_expired_video_upload_is_uploaded_again_from_the_stored_copy(bot: Harness) -> None:
    bot.tg.send_video(bot.chat, bot.ana, _video("netherlands_ducks_with_gps.mp4"))
    await bot.wait_text(bot.chat["id"], "1 video")
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 0 images, 1 video")
    bot.gemini.expire_all()
    bot.tg.send_text(bot.chat, bot.ana, "Is the pond frozen?")
    await bot.wait_text(bot.chat["id"], "Last question: Is the pond frozen?")
    videos = [f for f in bot.gemini.uploads() if f.mime_type == "video/mp4"]
    assert len(videos) == 2 and videos[0].data == videos[1].data
    assert len(bot.tg.getfile_calls()) == 1  # from the stored copy, not from Telegram again


async def test_video_lost_by_the_api_that_then_fails_processing_is_left_out_of_the_answer(
    bot: Harness,
) -> None:
    await _photo_and_pier_video(bot)
    bot.tg.send_command(bot.chat, bot.ana, "/story")
    await bot.wait_text(bot.chat["id"], "Seen 1 image, 1 video")
    bot.gemini.expire_all()  # the request names both files: refused, both uploaded again...
    bot.gemini.fail_processing(lambda f: f.mime_type.startswith("video/"))  # ...the video fails

    bot.tg.send_text(bot.chat, bot.ana, "Is the pond frozen?")
    await bot.wait_text(bot.chat["id"], "Last question: Is the pond frozen?")
    notice = await bot.wait_text(bot.chat["id"], "could not process")
    assert "video 2 (pier.mp4)" in notice and "left it out" in notice
    body = bot.gemini.generate_requests()[-1]
    assert len(image_parts(body)) == 1 and video_parts(body) == []
    assert "video 2" not in texts(body)[0]  # nor named in the album's manifest
    assert bot.rows("SELECT model_failed FROM items WHERE kind = 'video'")[0][0]


async def test_a_video_that_failed_on_a_question_is_named_again_by_the_story(bot: Harness) -> None:
    bot.gemini.fail_processing(lambda f: f.mime_type.startswith("video/"))
    await _photo_and_pier_video(bot)
    bot.tg.send_text(bot.chat, bot.ana, "Is the pond frozen?")  # the video fails here...
    await bot.wait_text(bot.chat["id"], "Last question: Is the pond frozen?")
    assert "video 2 (pier.mp4)" in await bot.wait_text(bot.chat["id"], "could not process")

    bot.tg.send_command(bot.chat, bot.ana, "/story")  # ...and the story says it is not in it
    await bot.wait_text(bot.chat["id"], "Seen 1 image, 0 videos")
    notice = await bot.wait_text(bot.chat["id"], "I left out")
    assert "video 2 (pier.mp4)" in notice
    body = bot.gemini.generate_requests()[-1]
    assert len(image_parts(body)) == 1 and video_parts(body) == []
    assert sum(1 for f in bot.gemini.uploads() if f.mime_type == "video/mp4") == 1
