"""Collecting an album: bursts, one acknowledgement, durable and deduplicated storage."""

from __future__ import annotations

import asyncio

from tests.harness import Harness, acks
from tests.image_files import jpeg


async def test_album_of_ten_photos_and_three_singles_gets_one_acknowledgement(bot: Harness) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    photos = [jpeg(n) for n in range(13)]
    for n in range(10):
        caption = "Belém at noon" if n == 0 else None
        tg.send_photo(chat, ana, photos[n], caption=caption, media_group_id="album-1")
    for n in range(10, 13):
        tg.send_photo(chat, ana, photos[n])
    tg.send_photo(chat, ana, photos[3])  # the same photo again

    await bot.wait_text(chat["id"], "13 photos")
    tg.send_command(chat, ana, "/albums")  # handled after everything before it, in order
    await bot.wait_text(chat["id"], "Your albums")
    await bot.wait_stored()  # acknowledged as received: stored by the files' jobs

    assert len(acks(bot.tg, bot.chat["id"])) == 1
    ack = acks(bot.tg, bot.chat["id"])[0]
    assert "1 already in the album" in ack
    rows = bot.rows("SELECT * FROM items ORDER BY position")
    assert len(rows) == 13
    assert [r["position"] for r in rows] == list(range(1, 14))
    assert rows[0]["caption"] == "Belém at noon"
    for row in rows:
        for sha in (row["source_sha256"], row["model_sha256"]):
            assert bot.blob_bytes(sha) is not None
    # The repeat was recognised before downloading it again.
    assert len(tg.getfile_calls()) == 13


async def test_files_of_one_chat_download_side_by_side_and_keep_the_numbers_they_were_sent_in(
    bot: Harness,
) -> None:
    tg, chat, ana = bot.tg, bot.chat, bot.ana
    slow = asyncio.Event()
    first = tg.send_photo(chat, ana, jpeg(1), media_group_id="a")
    tg.hold_download(first["photo"][-1]["file_id"], slow)  # a slow connection for photo 1
    tg.send_photo(chat, ana, jpeg(2), media_group_id="a")
    tg.send_photo(chat, ana, jpeg(3), media_group_id="a")
    tg.send_command(chat, ana, "/story")  # must wait for all three

    # Photos 2 and 3 are fetched and stored while photo 1 is still on its way, under the
    # numbers they were sent with: photo 1 keeps number 1, received before them.
    await tg.wait_for(lambda: len(bot.rows("SELECT * FROM items")) == 2)
    assert [r["position"] for r in bot.rows("SELECT position FROM items")] == [2, 3]
    assert [r["position"] for r in bot.rows("SELECT position FROM arrivals")] == [1]
    assert bot.gemini.requests == []  # the story waits for photo 1
    # ...and says what it waits for: two of the album's three photos are read.
    await tg.wait_for(lambda: any(
        "Reading your photos 2/3" in str(c.params.get("text"))
        for c in tg.calls("sendMessageDraft") + tg.calls("sendMessage")
    ))  # fmt: skip
    slow.set()

    await bot.wait_text(chat["id"], "Seen 3 images")
    rows = bot.rows("SELECT position, chat_message_id FROM items ORDER BY position")
    assert [r["chat_message_id"] for r in rows] == sorted(r["chat_message_id"] for r in rows)
    assert rows[0]["chat_message_id"] == first["message_id"]
