"""FakeGemini driven by the real google-genai async client: the wire facts the project relies on."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_api import (
    FakeGemini,
    Reply,
    file_uris,
    image_parts,
    inline_bytes,
    parts,
    system_text,
    texts,
    video_parts,
)

MODEL = "gemini-test-flash"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's aiohttp session trusts the environment: keep a configured proxy off 127.0.0.1."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    """A running fake, stopped after the test."""
    async with FakeGemini(api_key="test-key") as server:
        yield server


def make_client(
    fake: FakeGemini, api_key: str = "test-key", timeout_ms: int = 10_000
) -> genai.Client:
    """The real client pointed at the fake, with retries off so every failure surfaces once."""
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=fake.url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
            timeout=timeout_ms,
        ),
    )


@pytest.fixture
async def client(fake: FakeGemini) -> AsyncIterator[genai.Client]:
    """A client for `fake`, closed after the test."""
    c = make_client(fake)
    yield c
    await c.aio.aclose()


def user(*items: types.Part | str) -> types.Content:
    """One user turn; strings become text parts."""
    return types.Content(
        role="user",
        parts=[types.Part.from_text(text=i) if isinstance(i, str) else i for i in items],
    )


async def stream_texts(client: genai.Client, received: list[str]) -> None:
    """Consume a streamed answer to "go", appending each chunk's text as it arrives."""
    async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="go"):
        received.append(chunk.text or "")


async def upload(client: genai.Client, data: bytes, mime_type: str) -> types.File:
    """Upload bytes from memory, as the bot does with Telegram downloads."""
    return await client.aio.files.upload(
        file=io.BytesIO(data), config={"mime_type": mime_type, "display_name": "trip media"}
    )


# --- generateContent ----------------------------------------------------------------------


async def test_default_reply_says_what_the_model_saw(
    fake: FakeGemini, client: genai.Client
) -> None:
    response = await client.aio.models.generate_content(
        model=MODEL,
        contents=user(
            types.Part.from_bytes(data=PNG, mime_type="image/png"),
            types.Part.from_bytes(data=PNG, mime_type="image/jpeg"),
            "Where was this taken?",
        ),
        config=types.GenerateContentConfig(system_instruction="You are a travel writer."),
    )

    assert response.text == "Seen 2 images, 0 videos. Last question: Where was this taken?"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    (rec,) = fake.requests
    assert (rec.kind, rec.model, rec.api_key) == ("generate", MODEL, "test-key")
    assert rec.headers["x-goog-api-key"] == "test-key"
    body = fake.generate_requests()[0]
    assert len(image_parts(body)) == 2 and video_parts(body) == []
    assert inline_bytes(body) == 2 * len(PNG)
    assert texts(body) == ["Where was this taken?"]
    assert system_text(body) == "You are a travel writer."
    # the SDK keeps Blob keys in snake_case and base64 in the URL-safe alphabet
    assert set(parts(body)[0]["inlineData"]) == {"data", "mimeType"}


async def test_usage_counts_text_and_images_by_modality(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(text="y" * 20))  # 5 tokens at 4 chars each

    response = await client.aio.models.generate_content(
        model=MODEL,
        contents=user(types.Part.from_bytes(data=PNG, mime_type="image/png"), "x" * 40),
    )

    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (10 + 258, 5)
    assert usage.total_token_count == 10 + 258 + 5
    details = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    assert details == {types.MediaModality.TEXT: 10, types.MediaModality.IMAGE: 258}


async def test_queued_replies_are_used_in_order_and_match_picks_its_request(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(
        Reply(text="for the story", match=lambda body: "story" in " ".join(texts(body))),
        Reply(text="first"),
        Reply(text="second"),
    )

    answers = [
        (await client.aio.models.generate_content(model=MODEL, contents=q)).text
        for q in ("hello", "write the story", "again", "and again")
    ]

    assert answers[:3] == ["first", "for the story", "second"]
    assert answers[3] == "Seen 0 images, 0 videos. Last question: and again"
    assert fake.queue == []


async def test_stream_chunks_reassemble_and_the_last_carries_finish_reason_and_usage(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(text="Day one: we walked along the old harbour at dawn."))

    chunks = [
        c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="go")
    ]

    assert len(chunks) == 3
    assert "".join(c.text or "" for c in chunks) == (
        "Day one: we walked along the old harbour at dawn."
    )
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage_metadata is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata and last.usage_metadata.candidates_token_count == 13
    assert fake.requests[0].kind == "stream" and "alt=sse" in fake.requests[0].path


async def test_explicit_stream_chunks_arrive_as_given(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(chunks=["A", "B", "C", "D"]))

    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="go")

    assert [c.text async for c in stream] == ["A", "B", "C", "D"]


async def test_safety_finish_reason_leaves_no_text(fake: FakeGemini, client: genai.Client) -> None:
    fake.enqueue(Reply(finish_reason="SAFETY"))

    response = await client.aio.models.generate_content(model=MODEL, contents="go")

    assert response.text is None
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.candidates[0].content is None


async def test_stream_stopped_for_recitation_keeps_the_text_so_far(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(chunks=["The Colosseum, ", "the Pantheon"], finish_reason="RECITATION"))

    chunks = [
        c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="go")
    ]

    assert "".join(c.text or "" for c in chunks) == "The Colosseum, the Pantheon"
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "RECITATION"
    assert chunks[-1].text is None


async def test_blocked_prompt_has_block_reason_and_no_candidates(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(block_reason="PROHIBITED_CONTENT"))

    response = await client.aio.models.generate_content(model=MODEL, contents="go")

    assert response.text is None and not response.candidates
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


async def test_structured_output_yields_the_json(fake: FakeGemini, client: genai.Client) -> None:
    fake.enqueue(Reply(json={"title": "Lisbon", "days": 3}))
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["title", "days"],
    }

    response = await client.aio.models.generate_content(
        model=MODEL,
        contents="Summarise the trip",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )

    assert response.parsed == {"title": "Lisbon", "days": 3}
    config = fake.generate_requests()[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema


async def test_count_tokens_uses_the_same_accounting(
    fake: FakeGemini, client: genai.Client
) -> None:
    result = await client.aio.models.count_tokens(
        model=MODEL,
        contents=user(types.Part.from_bytes(data=PNG, mime_type="image/png"), "abcdefgh"),
    )

    assert result.total_tokens == 258 + 2
    assert fake.requests[0].kind == "count"


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ([types.Content(role="system", parts=[types.Part(text="hi")])], "valid role"),
        ([types.Content(role="user", parts=[])], "must not be empty"),
        ([types.Content(role="user", parts=[types.Part()])], "oneof field 'data'"),
        (
            [
                types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            text="a", inline_data=types.Blob(data=PNG, mime_type="image/png")
                        )
                    ],
                )
            ],
            "already set",
        ),
        ([types.Part.from_bytes(data=PNG, mime_type="")], "mime_type"),
    ],
)
async def test_malformed_requests_are_rejected_like_the_api(
    fake: FakeGemini, client: genai.Client, contents: list[types.Content], message: str
) -> None:
    fake.enqueue(Reply(text="must not be consumed"))

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents=contents)

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert message in (caught.value.message or "")
    assert len(fake.queue) == 1


async def test_snake_case_nested_keys_and_bad_base64_over_the_raw_wire(fake: FakeGemini) -> None:
    url = f"{fake.url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": "test-key"}
    good = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {
                        "inline_data": {"mime_type": "video/mp4", "data": "AAAA"},
                        "video_metadata": {"start_offset": "1s"},
                    },
                    {"text": "what happens?"},
                ],
            }
        ]
    }
    bad = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=good, headers=headers) as ok:
            assert ok.status == 200
            answer = await ok.json()
        async with http.post(url, json=bad, headers=headers) as rejected:
            assert rejected.status == 400
            error = (await rejected.json())["error"]

    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    assert text.startswith("Seen 0 images, 1 video.")
    assert parts(fake.requests[0].body)[0]["videoMetadata"] == {"startOffset": "1s"}
    assert error["status"] == "INVALID_ARGUMENT" and "Base64 decoding failed" in error["message"]


# --- errors and transport failures ---------------------------------------------------------


async def test_429_carries_a_retry_delay_in_the_exception_details(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(status=429, retry_delay="2s"))

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="go")

    error = caught.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    # `details` is the whole JSON body of the reply, {"error": {...}}
    (retry_info,) = error.details["error"]["details"]
    assert retry_info == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "2s",
    }


@pytest.mark.parametrize(("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
async def test_server_errors_raise_server_error(
    fake: FakeGemini, client: genai.Client, status: int, name: str
) -> None:
    fake.enqueue(Reply(status=status))

    with pytest.raises(errors.ServerError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="go")

    assert (caught.value.code, caught.value.status) == (status, name)


async def test_stream_errors_surface_on_first_iteration_not_at_the_await(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(status=503))

    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="go")
    with pytest.raises(errors.ServerError):
        await anext(stream)


async def test_error_inside_a_stream_raises_after_the_chunks_before_it(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(chunks=["one ", "two ", "three"], stream_error_after=2))
    received: list[str] = []

    with pytest.raises(errors.ServerError) as caught:
        await stream_texts(client, received)

    assert received == ["one ", "two "]
    assert caught.value.code == 500


async def test_dropped_stream_raises_client_payload_error(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.enqueue(Reply(chunks=["one ", "two ", "three"], cut_after=1))
    received: list[str] = []

    # the SDK does not wrap it: aiohttp's own exception reaches the caller mid-iteration
    with pytest.raises(aiohttp.ClientPayloadError):
        await stream_texts(client, received)

    assert received == ["one "]


async def test_delay_beyond_the_client_timeout_raises_builtin_timeout_error(
    fake: FakeGemini,
) -> None:
    client = make_client(fake, timeout_ms=200)
    fake.enqueue(Reply(text="too late", delay=1.0))

    # aiohttp's ClientTimeout(total=...) raises the builtin TimeoutError, not an APIError
    with pytest.raises(TimeoutError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="go")
    await client.aio.aclose()

    assert type(caught.value) is TimeoutError
    assert fake.requests[0].headers["X-Server-Timeout"] == "1"  # ceil of 0.2 s


async def test_timeout_caps_the_whole_stream_not_each_chunk(fake: FakeGemini) -> None:
    client = make_client(fake, timeout_ms=300)
    fake.enqueue(Reply(chunks=["a", "b", "c", "d"], chunk_delay=0.2))
    received: list[str] = []

    with pytest.raises(TimeoutError) as caught:
        await stream_texts(client, received)
    await client.aio.aclose()

    assert type(caught.value) is TimeoutError
    assert 1 <= len(received) < 4


async def test_gate_holds_the_answer_until_the_test_releases_it(
    fake: FakeGemini, client: genai.Client
) -> None:
    gate = asyncio.Event()
    fake.enqueue(Reply(text="finally", gate=gate))

    call = asyncio.create_task(client.aio.models.generate_content(model=MODEL, contents="go"))
    rec = await fake.wait_for(lambda: fake.requests and fake.requests[0])
    assert not rec.answered and not call.done()
    gate.set()
    response = await call

    assert response.text == "finally"
    assert rec.answered and rec.status == 200


async def test_wrong_api_key_is_rejected(fake: FakeGemini) -> None:
    client = make_client(fake, api_key="not-the-key")

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="go")
    await client.aio.aclose()

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert fake.requests[0].api_key == "not-the-key"


async def test_missing_api_key_is_permission_denied(fake: FakeGemini) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.url}/v1beta/models/{MODEL}:generateContent", json={"contents": []}
        ) as reply:
            assert reply.status == 403
            assert (await reply.json())["error"]["status"] == "PERMISSION_DENIED"


# --- File API -----------------------------------------------------------------------------


async def test_upload_is_processing_until_polled_then_usable_by_file_data(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.processing_polls_for = {"video/": 2}
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 1000

    uploaded = await upload(client, video, "video/mp4")
    assert uploaded.state == types.FileState.PROCESSING
    assert uploaded.name and uploaded.uri == f"{fake.url}/v1beta/{uploaded.name}"
    assert uploaded.size_bytes == len(video) and uploaded.display_name == "trip media"
    assert uploaded.expiration_time and uploaded.create_time
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600

    states = [(await client.aio.files.get(name=uploaded.name)).state for _ in range(2)]
    assert states == [types.FileState.PROCESSING, types.FileState.ACTIVE]

    clip = types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
    response = await client.aio.models.generate_content(
        model=MODEL, contents=user(clip, "What happens?")
    )
    assert response.text == "Seen 0 images, 1 video. Last question: What happens?"
    body = fake.generate_requests()[0]
    assert file_uris(body) == [uploaded.uri]
    usage = response.usage_metadata
    assert usage and usage.prompt_tokens_details
    assert {d.modality: d.token_count for d in usage.prompt_tokens_details}[
        types.MediaModality.VIDEO
    ] == 300
    (stored,) = fake.uploads()
    assert stored.data == video and stored.mime_type == "video/mp4"
    kinds = [r.kind for r in fake.requests]
    assert kinds == ["upload_start", "upload_chunk", "file_get", "file_get", "generate"]


async def test_chunk_uploads_carry_no_api_key_and_big_files_go_in_8_mib_chunks(
    fake: FakeGemini, client: genai.Client, tmp_path: Path
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"v" * (8 * 1024 * 1024 + 10))

    uploaded = await client.aio.files.upload(file=path)

    assert uploaded.mime_type == "video/mp4"  # guessed from the extension
    start, *chunks = fake.requests
    assert start.api_key == "test-key"
    assert start.headers["X-Goog-Upload-File-Name"] == "clip.mp4"
    assert [c.headers["X-Goog-Upload-Command"] for c in chunks] == ["upload", "upload, finalize"]
    assert [c.bytes_len for c in chunks] == [8 * 1024 * 1024, 10]
    assert all(c.api_key is None for c in chunks)
    assert fake.uploads()[0].size_bytes == path.stat().st_size


async def test_reference_to_an_expired_file_is_403(fake: FakeGemini, client: genai.Client) -> None:
    uploaded = await upload(client, PNG, "image/png")
    assert uploaded.name and uploaded.uri
    fake.expire(uploaded.name)

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(
            model=MODEL, contents=types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/png")
        )
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    assert caught.value.message == (
        f"You do not have permission to access the File {uploaded.name[6:]} or it may not exist."
    )

    with pytest.raises(errors.ClientError) as got:
        await client.aio.files.get(name=uploaded.name)
    assert (got.value.code, got.value.status) == (403, "PERMISSION_DENIED")


async def test_reference_to_a_processing_file_is_failed_precondition(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.processing_polls = 3
    uploaded = await upload(client, b"video", "video/mp4")
    assert uploaded.uri

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(
            model=MODEL, contents=types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
        )

    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")
    assert "is not in an ACTIVE state and usage is not allowed" in (caught.value.message or "")


async def test_failed_processing_is_visible_through_files_get(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.processing_polls = 1
    fake.fail_processing(lambda f: f.mime_type.startswith("video/"))
    photo = await upload(client, PNG, "image/png")
    video = await upload(client, b"broken", "video/mp4")
    assert photo.name and video.name

    got = await client.aio.files.get(name=video.name)

    assert got.state == types.FileState.FAILED
    assert got.error and got.error.message == "Video could not be processed"
    assert (await client.aio.files.get(name=photo.name)).state == types.FileState.ACTIVE


async def test_fail_uploads_makes_the_next_upload_raise_once(
    fake: FakeGemini, client: genai.Client
) -> None:
    fake.fail_uploads(status=503, times=1)

    with pytest.raises(errors.ServerError) as caught:
        await upload(client, PNG, "image/png")
    assert caught.value.code == 503

    assert (await upload(client, PNG, "image/png")).state == types.FileState.ACTIVE
    assert [f.size_bytes for f in fake.uploads()] == [len(PNG)]


async def test_files_can_be_listed_and_deleted(fake: FakeGemini, client: genai.Client) -> None:
    names = [(await upload(client, PNG, "image/png")).name for _ in range(3)]

    listed = [f.name async for f in await client.aio.files.list(config={"page_size": 2})]
    await client.aio.files.delete(name=str(names[0]))

    assert listed == names
    assert set(fake.files) == set(names[1:])
    with pytest.raises(errors.ClientError):
        await client.aio.files.delete(name=str(names[0]))


# --- cachedContents -----------------------------------------------------------------------


async def test_cache_is_created_and_its_tokens_show_in_later_usage(
    fake: FakeGemini, client: genai.Client
) -> None:
    photos = [types.Part.from_bytes(data=PNG, mime_type="image/png") for _ in range(4)]

    cache = await client.aio.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=photos)],
            system_instruction="You write travel stories.",
            ttl="600s",
        ),
    )
    assert cache.name and cache.usage_metadata
    assert cache.usage_metadata.total_token_count == 4 * 258 + 7
    response = await client.aio.models.generate_content(
        model=MODEL,
        contents="Tell the story",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    await client.aio.caches.delete(name=cache.name)

    assert response.usage_metadata and response.usage_metadata.cached_content_token_count == 1039
    assert fake.caches == {}
    assert [r.kind for r in fake.requests] == ["cache_create", "generate", "cache_delete"]


async def test_cache_below_the_minimum_size_is_rejected(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.caches.create(
            model=MODEL, config=types.CreateCachedContentConfig(contents="too short")
        )

    assert "Cached content is too small" in (caught.value.message or "")


async def _album_cache(client: genai.Client, ttl: str = "600s") -> types.CachedContent:
    photos = [types.Part.from_bytes(data=PNG, mime_type="image/png") for _ in range(4)]
    return await client.aio.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=photos)], ttl=ttl
        ),
    )


async def test_cache_expires_by_the_fake_clock_and_is_then_refused(
    fake: FakeGemini, client: genai.Client
) -> None:
    cache = await _album_cache(client, ttl="600s")
    assert cache.name
    fake.advance(599)
    assert await client.aio.caches.get(name=cache.name)
    fake.advance(2)

    with pytest.raises(errors.ClientError) as caught:
        await client.aio.models.generate_content(
            model=MODEL,
            contents="Again",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
    assert caught.value.code == 403
    assert "CachedContent not found" in (caught.value.message or "")
    assert fake.live_caches() == {}


async def test_cache_ttl_is_extended_by_patch(fake: FakeGemini, client: genai.Client) -> None:
    cache = await _album_cache(client, ttl="600s")
    assert cache.name and cache.expire_time
    fake.advance(500)
    updated = await client.aio.caches.update(
        name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s")
    )
    fake.advance(500)  # past the first expiry, within the second

    assert updated.expire_time and updated.expire_time > cache.expire_time
    assert await client.aio.caches.get(name=cache.name)
    assert [r.kind for r in fake.cache_requests()] == ["cache_create", "cache_update", "cache_get"]
    assert fake.cache_requests("update")[0].body == {"ttl": "600s"}


async def test_cache_refuses_a_system_instruction_beside_it_and_another_model(
    client: genai.Client,
) -> None:
    cache = await _album_cache(client)
    assert cache.name
    with pytest.raises(errors.ClientError) as beside:
        await client.aio.models.generate_content(
            model=MODEL,
            contents="Hi",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="x"),
        )
    with pytest.raises(errors.ClientError) as other:
        await client.aio.models.generate_content(
            model="gemini-other",
            contents="Hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )

    assert beside.value.code == 400 and "system_instruction" in (beside.value.message or "")
    assert other.value.code == 400 and "has to be the same" in (other.value.message or "")


async def test_cache_creates_can_be_told_to_fail(fake: FakeGemini, client: genai.Client) -> None:
    fake.fail_cache_creates(429)
    with pytest.raises(errors.ClientError) as caught:
        await _album_cache(client)
    second = await _album_cache(client)

    assert caught.value.code == 429
    assert second.name in fake.caches
