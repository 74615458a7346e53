"""FakeGemini: a local Gemini API server that the real google-genai client talks to in tests.

The client under test keeps its real HTTP stack (the aiohttp path of `client.aio`); only
`HttpOptions(base_url=fake.url)` points here. The fake answers generateContent (plain and SSE
stream), countTokens, the resumable File API and cachedContents with the real wire shapes and
errors, validates requests the way the API does, counts tokens roughly, records every request,
and can be told to fail. Facts it honours: /work/shared/notes/gemini-api.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .polling import wait_for

JSON = dict[str, Any]
FILE_TTL = timedelta(hours=48)
MAX_REQUEST = 100 * 1024 * 1024  # the documented inline request limit
UPLOAD_GRANULARITY = 8 * 1024 * 1024  # what the real server announces; the SDK sends 8 MiB anyway
IMAGE_TOKENS = 258  # one image up to 384 px on 2.x models; good enough for budgets in tests
VIDEO_TOKENS = 300
AUDIO_TOKENS = 96  # 32 per second of a 3-second voice note
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    502: "Bad gateway.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
# A part carries exactly one of these (the proto's `data` oneof); the rest are metadata.
DATA_FIELDS = (
    "text inlineData fileData functionCall functionResponse executableCode "
    "codeExecutionResult toolCall toolResponse"
).split()
# Nested objects whose keys the SDK may send in snake_case (it dumps Blob/FileData as is).
NESTED_FIELDS = ("inlineData", "fileData", "videoMetadata")
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BAD_KEY = "API key not valid. Please pass a valid API key."
CACHE_WITH_CONFIG = (
    "CachedContent can not be used with GenerateContent request setting system_instruction, "
    "tools or tool_config.\n\nProposed fix: move those values to CachedContent from "
    "GenerateContent request."
)


class GeminiError(Exception):
    """An error reply of the API: HTTP status = code, body {"error": {...}}."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        status: str | None = None,
        details: list[JSON] | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "Request failed.")
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        super().__init__(f"{code} {self.status}: {self.message}")

    def body(self) -> JSON:
        """The wire JSON of this error."""
        error: JSON = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def invalid(message: str) -> GeminiError:
    """A 400 INVALID_ARGUMENT."""
    return GeminiError(400, message, "INVALID_ARGUMENT")


def file_not_found(file_id: str) -> GeminiError:
    """The 403 the API gives for a file that never existed or expired after 48 h."""
    return GeminiError(
        403,
        f"You do not have permission to access the File {file_id} or it may not exist.",
        "PERMISSION_DENIED",
    )


@dataclass
class Reply:
    """One scripted answer to generateContent / streamGenerateContent."""

    text: str | None = None  # None: "OK" for STOP, no content parts for any other reason
    chunks: list[str] | None = None  # stream pieces; default: the text split in up to 3 pieces
    finish_reason: str = "STOP"
    block_reason: str | None = None  # prompt blocked: promptFeedback, no candidates
    status: int = 200  # != 200: an error reply (with stream_error_after: the in-stream error)
    message: str | None = None  # error message; default per status
    retry_delay: str | None = None  # "2s": a google.rpc.RetryInfo in the error details
    delay: float = 0.0  # seconds before answering
    chunk_delay: float = 0.0  # streams: seconds between chunks
    gate: asyncio.Event | None = None
    # streams: chunk i+1 is sent once chunk_gates[i] is set (a test paces the stream)
    chunk_gates: list[asyncio.Event] | None = None
    cut_after: int | None = None  # streams: send this many chunks, then drop the connection
    stream_error_after: int | None = None  # streams: after N chunks send data: {"error": ...}
    json: object | None = None  # structured output: the answer is json.dumps(this)
    match: Callable[[JSON], bool] | None = None

    def answer(self) -> str:
        """The full answer text."""
        if self.json is not None:
            return json.dumps(self.json)
        if self.chunks is not None:
            return "".join(self.chunks)
        if self.text is None:
            return "OK" if self.finish_reason == "STOP" else ""
        return self.text

    def pieces(self) -> list[str]:
        """The answer as stream pieces."""
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        answer = self.answer()
        words = re.findall(r"\S*\s*", answer)
        words = [w for w in words if w]
        if len(words) < 3:
            return [answer] if answer else []
        step = math.ceil(len(words) / 3)
        return ["".join(words[i : i + step]) for i in range(0, len(words), step)]

    def error(self) -> GeminiError:
        """The error this reply stands for (status != 200, or 500 for an in-stream error)."""
        code = self.status if self.status != 200 else 500
        details = None
        if self.retry_delay is not None:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": self.retry_delay,
                }
            ]
        return GeminiError(code, self.message, details=details)


@dataclass
class Recorded:
    """One request as the fake received it."""

    kind: str  # generate stream count upload_start upload_chunk file_get file_delete file_list
    # cache_create cache_get cache_update cache_delete unknown
    path: str
    model: str | None
    body: Any  # parsed JSON, or None (upload chunks, GET/DELETE)
    headers: dict[str, str]
    bytes_len: int
    time: float
    query: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # the HTTP status once answered; None while held (gate, delay)

    @property
    def api_key(self) -> str | None:
        """The key the client sent, from the header (or the ?key= parameter)."""
        return self.headers.get("x-goog-api-key") or self.query.get("key")

    @property
    def answered(self) -> bool:
        """Whether the fake has started answering."""
        return self.status is not None


@dataclass
class FakeFile:
    """A file of the File API as this fake stores it."""

    name: str  # "files/abc123"
    uri: str
    mime_type: str
    display_name: str | None
    data: bytes
    state: str = "ACTIVE"  # PROCESSING, ACTIVE, FAILED
    polls_left: int = 0  # files.get polls until processing ends
    error: JSON | None = None
    will_fail: bool = False
    create_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def size_bytes(self) -> int:
        """How many bytes were uploaded."""
        return len(self.data)

    def to_json(self) -> JSON:
        """The File resource on the wire."""
        data: JSON = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size_bytes),
            "createTime": rfc3339(self.create_time),
            "updateTime": rfc3339(self.create_time),
            "expirationTime": rfc3339(self.create_time + FILE_TTL),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": self.uri,
            "state": self.state,
            "source": "UPLOADED",
        }
        if self.display_name:
            data["displayName"] = self.display_name
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class FakeCache:
    """A cachedContents resource: what it holds, its token count and when it expires."""

    name: str
    body: JSON
    tokens: int
    json: JSON
    expires: datetime

    def to_json(self) -> JSON:
        """The CachedContent resource on the wire."""
        return self.json | {"expireTime": rfc3339(self.expires)}


@dataclass
class _UploadSession:
    name: str
    mime_type: str
    display_name: str | None
    size: int
    data: bytearray = field(default_factory=bytearray)


def rfc3339(moment: datetime) -> str:
    """A timestamp as the API writes it: UTC with microseconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def normalise_part(part: JSON) -> JSON:
    """A part with camelCase keys, also inside inlineData/fileData/videoMetadata."""
    out: JSON = {}
    for key, value in part.items():
        key = _camel(key)
        if key in NESTED_FIELDS and isinstance(value, dict):
            value = {_camel(k): v for k, v in value.items()}
        out[key] = value
    return out


def _get(body: JSON, camel: str) -> Any:
    """A top-level request field in either spelling."""
    snake = re.sub(r"([A-Z])", r"_\1", camel).lower()
    return body.get(camel, body.get(snake))


def parts(body: JSON) -> list[JSON]:
    """All parts of all contents of a request body, with camelCase keys."""
    return [
        normalise_part(p)
        for content in body.get("contents") or []
        for p in content.get("parts") or []
    ]


def part_mime(part: JSON) -> str:
    """The declared mime type of a media part ("" for text and others)."""
    part = normalise_part(part)
    media = part.get("inlineData") or part.get("fileData") or {}
    return str(media.get("mimeType") or "")


def image_parts(body: JSON) -> list[JSON]:
    """Parts that carry an image, inline or by file URI."""
    return [p for p in parts(body) if part_mime(p).startswith("image/")]


def video_parts(body: JSON) -> list[JSON]:
    """Parts that carry a video, inline or by file URI."""
    return [p for p in parts(body) if part_mime(p).startswith("video/")]


def audio_parts(body: JSON) -> list[JSON]:
    """Parts that carry audio, inline or by file URI."""
    return [p for p in parts(body) if part_mime(p).startswith("audio/")]


def file_uris(body: JSON) -> list[str]:
    """The fileData URIs a request references, in order."""
    return [p["fileData"].get("fileUri", "") for p in parts(body) if "fileData" in p]


def decode_b64(data: str) -> bytes:
    """Base64 in either alphabet (the SDK sends the URL-safe one), padding required."""
    return base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)


def inline_bytes(body: JSON) -> int:
    """Decoded bytes of all inlineData parts."""
    return sum(len(decode_b64(p["inlineData"]["data"])) for p in parts(body) if "inlineData" in p)


def texts(body: JSON) -> list[str]:
    """The text parts of all contents, in order."""
    return [p["text"] for p in parts(body) if "text" in p]


def system_text(body: JSON) -> str:
    """The text of the system instruction ("" when none)."""
    system = _get(body, "systemInstruction") or {}
    return "\n".join(p["text"] for p in system.get("parts") or [] if "text" in p)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_request(body: JSON) -> Reply:
    """The default answer: says what the model was shown, so tests can assert it saw it."""
    last = ""
    for content in body.get("contents") or []:
        if content.get("role", "user") == "user":
            found = [
                p["text"] for p in map(normalise_part, content.get("parts") or []) if "text" in p
            ]
            last = found[-1] if found else last
    seen = f"{_plural(len(image_parts(body)), 'image')}, {_plural(len(video_parts(body)), 'video')}"
    if heard := audio_parts(body):
        seen += f", {_plural(len(heard), 'audio file')}"
    summary = f"Seen {seen}. Last question: {last}"
    config = body.get("generationConfig") or body.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("response_json_schema")
    if isinstance(schema, dict) and "sections" in (schema.get("properties") or {}):
        # A story was asked for as structured output: one section showing every labelled item.
        numbers = [
            int(n)
            for n in re.findall(
                r"^\[(?:photo|video|voice note) (\d+)\]$",
                "\n".join(p.get("text", "") for p in parts(body)),
                re.M,
            )
        ]
        story = {
            "title": "The trip",
            "sections": [{"heading": "Everything", "text": summary, "media": numbers}],
        }
        return Reply(json=story)
    return Reply(text=summary)


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), k)
    for m, p, k in [
        ("POST", r"/(?P<v>[^/]+)/models/(?P<model>[^/:]+):generateContent", "generate"),
        ("POST", r"/(?P<v>[^/]+)/models/(?P<model>[^/:]+):streamGenerateContent", "stream"),
        ("POST", r"/(?P<v>[^/]+)/models/(?P<model>[^/:]+):countTokens", "count"),
        ("POST", r"/upload/(?P<v>[^/]+)/files", "upload"),
        ("GET", r"/(?P<v>[^/]+)/files/(?P<id>[^/]+)", "file_get"),
        ("DELETE", r"/(?P<v>[^/]+)/files/(?P<id>[^/]+)", "file_delete"),
        ("GET", r"/(?P<v>[^/]+)/files", "file_list"),
        ("POST", r"/(?P<v>[^/]+)/cachedContents", "cache_create"),
        ("GET", r"/(?P<v>[^/]+)/cachedContents/(?P<id>[^/]+)", "cache_get"),
        ("DELETE", r"/(?P<v>[^/]+)/cachedContents/(?P<id>[^/]+)", "cache_delete"),
        ("PATCH", r"/(?P<v>[^/]+)/cachedContents/(?P<id>[^/]+)", "cache_update"),
    ]
]


class FakeGemini:
    """An aiohttp Gemini API server on 127.0.0.1 that records requests and plays queued replies."""

    def __init__(self, api_key: str = "test-key") -> None:
        self.api_key = api_key
        self.url = ""
        self.requests: list[Recorded] = []
        self.queue: list[Reply] = []
        self.default_reply: Callable[[JSON], Reply] = describe_request
        self.files: dict[str, FakeFile] = {}
        self.caches: dict[str, FakeCache] = {}
        self.processing_polls = 0
        self.processing_polls_for: dict[str, int] = {}  # mime prefix -> polls, e.g. {"video/": 2}
        # The real minimum is model-dependent (1024 or more); 0 switches the check off.
        self.cache_min_tokens = 1024
        self._uploads: list[FakeFile] = []
        self._sessions: dict[str, _UploadSession] = {}
        self._processing_failures: list[Callable[[FakeFile], bool]] = []
        self._upload_failures: list[int] = []
        self._cache_failures: list[int] = []
        self._caches_to_lose = 0
        self._inflight: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeGemini:
        """Listen on a free port of 127.0.0.1 and set `url`."""
        app = web.Application(client_max_size=MAX_REQUEST + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that timed out must not leave a handler sleeping
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        """Cancel held requests (gates, delays) and close the server."""
        for task in list(self._inflight):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGemini:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- scripting -------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue answers for generate / stream requests, consumed first in, first out."""
        self.queue.extend(replies)

    def generate_requests(self) -> list[JSON]:
        """Bodies of generateContent and streamGenerateContent requests, in order."""
        return [r.body for r in self.requests if r.kind in ("generate", "stream")]

    def uploads(self) -> list[FakeFile]:
        """Every finished upload in order, including files since expired or deleted."""
        return list(self._uploads)

    def fail_processing(self, predicate: Callable[[FakeFile], bool]) -> None:
        """Matching uploads end in state FAILED instead of ACTIVE."""
        self._processing_failures.append(predicate)

    def fail_uploads(self, status: int = 503, times: int = 1) -> None:
        """The next `times` upload starts fail with `status` (a File API outage)."""
        self._upload_failures.extend([status] * times)

    def now(self) -> datetime:
        """The fake's clock (the real one: `advance` ages what the fake holds instead)."""
        return datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass for the caches the fake holds, without sleeping: each expires that
        much sooner, and those whose expireTime passes are gone. (Ageing the caches rather than
        moving a clock keeps new timestamps in step with the bot's own clock.)"""
        for cache in self.caches.values():
            cache.expires -= timedelta(seconds=seconds)
        self._expire_caches()

    def lose_caches(self, times: int = 1) -> None:
        """The next `times` generate requests that name a cache find it gone (evicted early),
        with the API's 403, and the cache is deleted."""
        self._caches_to_lose += times

    def fail_cache_creates(self, status: int = 503, times: int = 1) -> None:
        """The next `times` cachedContents.create calls fail with `status`."""
        self._cache_failures.extend([status] * times)

    def cache_requests(self, kind: str | None = None) -> list[Recorded]:
        """Requests to cachedContents (create/get/update/delete), optionally of one kind."""
        return [
            r
            for r in self.requests
            if r.kind.startswith("cache_") and (kind is None or r.kind == f"cache_{kind}")
        ]

    def live_caches(self) -> dict[str, FakeCache]:
        """The caches that have not expired by the fake's clock."""
        self._expire_caches()
        return dict(self.caches)

    def expire(self, name: str) -> None:
        """Forget a file as if its 48 hours had passed."""
        self.files.pop(name if name.startswith("files/") else f"files/{name}", None)

    def expire_all(self) -> None:
        """Forget every file as if 48 hours had passed."""
        self.files.clear()

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        timeout: float = 10.0,
    ) -> Any:
        """Poll `predicate` every 10 ms until it returns something truthy, and return that."""
        return await wait_for(predicate, timeout)

    # --- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Record the request, check the key, route it, and turn GeminiError into a reply."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        raw = await request.read()
        kind, groups = "unknown", {}
        for method, pattern, route_kind in ROUTES:
            found = pattern.fullmatch(request.path)
            if found and method == request.method:
                kind, groups = route_kind, found.groupdict()
                break
        if kind == "upload":
            kind = "upload_chunk" if "upload_id" in request.query else "upload_start"
        body: Any = None
        bad_json = False
        if raw and kind != "upload_chunk":
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        rec = Recorded(
            kind=kind,
            path=request.path_qs,
            model=groups.get("model"),
            body=body,
            headers=dict(request.headers),
            bytes_len=len(raw),
            time=time.monotonic(),
            query=dict(request.query),
        )
        self.requests.append(rec)
        try:
            # An upload URL is its own credential, as on the real server: chunks carry no key.
            if kind != "upload_chunk":
                self._check_key(rec)
            if bad_json:
                raise invalid("Invalid JSON payload received.")
            if kind == "unknown":
                raise GeminiError(404, f"Method not found: {request.method} {request.path}.")
            response = await self._route(kind, request, rec, groups, raw)
        except GeminiError as error:
            response = web.json_response(error.body(), status=error.code)
            if kind.startswith("upload"):
                # without a status header the SDK retries the chunk after 1+2+4 s sleeps
                response.headers["X-Goog-Upload-Status"] = "final"
        finally:
            if task is not None:
                self._inflight.discard(task)
        rec.status = response.status
        return response

    def _check_key(self, rec: Recorded) -> None:
        if not rec.api_key:
            raise GeminiError(403, NO_KEY, "PERMISSION_DENIED")
        if rec.api_key != self.api_key:
            raise GeminiError(
                400,
                BAD_KEY,
                "INVALID_ARGUMENT",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": BAD_KEY,
                    },
                ],
            )

    async def _route(
        self, kind: str, request: web.Request, rec: Recorded, groups: dict[str, str], raw: bytes
    ) -> web.StreamResponse:
        body: JSON = rec.body if isinstance(rec.body, dict) else {}
        if kind in ("generate", "stream"):
            return await self._generate(request, rec, body, stream=kind == "stream")
        if kind == "count":
            self._check_contents(body, "CountTokensRequest")
            tokens = self._prompt_tokens(body)
            return web.json_response(
                {
                    "totalTokens": sum(tokens.values()),
                    "promptTokensDetails": _details(tokens),
                }
            )
        if kind == "upload_start":
            return self._upload_start(request, body, groups["v"])
        if kind == "upload_chunk":
            return self._upload_chunk(request, raw, groups["v"])
        if kind == "file_get":
            return web.json_response(self._poll_file(groups["id"]).to_json())
        if kind == "file_delete":
            if self.files.pop(f"files/{groups['id']}", None) is None:
                raise file_not_found(groups["id"])
            return web.json_response({})
        if kind == "file_list":
            return web.json_response(self._list_files(request))
        if kind == "cache_create":
            return web.json_response(self._create_cache(body))
        cache = self._cache(f"cachedContents/{groups['id']}")
        if kind == "cache_delete":
            del self.caches[cache.name]
            return web.json_response({})
        if kind == "cache_update":
            cache.expires = self._expiry(body, cache.expires)
            cache.json["updateTime"] = rfc3339(self.now())
        return web.json_response(cache.to_json())

    # --- generateContent ---------------------------------------------------------------------

    def _take_reply(self, body: JSON) -> Reply:
        """A reply whose `match` accepts the body, else the first without `match`, else default."""
        for i, reply in enumerate(self.queue):
            if reply.match is not None and reply.match(body):
                return self.queue.pop(i)
        for i, reply in enumerate(self.queue):
            if reply.match is None:
                return self.queue.pop(i)
        return self.default_reply(body)

    async def _generate(
        self, request: web.Request, rec: Recorded, body: JSON, stream: bool
    ) -> web.StreamResponse:
        # validation comes first, as on the real API, so a bad request consumes no reply
        if rec.bytes_len > MAX_REQUEST:
            raise invalid(f"Request payload size exceeds the limit: {MAX_REQUEST} bytes.")
        self._check_contents(body, "GenerateContentRequest")
        cache = self._check_cache(body, rec.model or "")
        # What the model sees: the cache's system instruction and contents, then the request's.
        seen = body
        if cache is not None:
            seen = dict(body) | {
                "contents": (cache.body.get("contents") or []) + (body.get("contents") or []),
                "systemInstruction": _get(cache.body, "systemInstruction"),
            }
        reply = self._take_reply(seen)
        if reply.gate is not None:
            await reply.gate.wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200 and not (stream and reply.stream_error_after is not None):
            raise reply.error()
        usage = self._usage(body, reply.answer(), cache)
        events = _events(reply, usage, rec.model or "", stream)
        if not stream:
            return web.json_response(events[0])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        rec.status = 200
        for i, event in enumerate(events):
            if i and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            if i and reply.chunk_gates and i - 1 < len(reply.chunk_gates):
                await reply.chunk_gates[i - 1].wait()
            if reply.cut_after is not None and i >= reply.cut_after:
                break
            if reply.stream_error_after is not None and i >= reply.stream_error_after:
                event = reply.error().body()
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
                break
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        if reply.cut_after is not None:
            # close without the final empty chunk: the client sees an unfinished body
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write_eof()
        return response

    def _check_contents(self, body: JSON, what: str, required: bool = True) -> None:
        """Validate contents and the system instruction like the API does."""
        contents = body.get("contents")
        if required and not contents:
            raise invalid(f"* {what}.contents: contents is not specified\n")
        for i, content in enumerate(contents or []):
            role = content.get("role", "user")
            if role not in ("user", "model"):
                raise invalid("Please use a valid role: user, model.")
            self._check_parts(content.get("parts"), f"{what}.contents[{i}]")
        system = _get(body, "systemInstruction")
        if system is not None:
            self._check_parts(system.get("parts"), f"{what}.system_instruction")

    def _check_parts(self, raw_parts: Any, where: str) -> None:
        if not raw_parts:
            raise invalid(f"* {where}.parts: contents.parts must not be empty.\n")
        for j, raw_part in enumerate(raw_parts):
            part, at = normalise_part(raw_part), f"{where}.parts[{j}]"
            present = [f for f in DATA_FIELDS if f in part]
            if not present:
                raise invalid(
                    f"* {at}.data: required oneof field 'data' must have one initialized field\n"
                )
            if len(present) > 1:
                raise invalid(
                    f"* {at}: oneof field 'data' is already set. Cannot set '{present[1]}'\n"
                )
            if "inlineData" in part:
                blob = part["inlineData"]
                if not blob.get("mimeType"):
                    raise invalid(f"* {at}.inline_data.mime_type: mime_type is not specified\n")
                try:
                    decode_b64(str(blob.get("data", "")))
                except (binascii.Error, ValueError) as exc:
                    raise invalid(
                        f"Invalid value at '{at}.inline_data.data' (TYPE_BYTES), "
                        "Base64 decoding failed"
                    ) from exc
            if "fileData" in part:
                self._active_file(str(part["fileData"].get("fileUri") or ""), at)

    def _active_file(self, uri: str, at: str) -> FakeFile:
        """The ACTIVE file a fileUri names; 403 if unknown or expired, 400 if not ACTIVE."""
        if not uri:
            raise invalid(f"* {at}.file_data.file_uri: file_uri is not specified\n")
        file = self.files.get(_file_name(uri))
        file_id = _file_name(uri).removeprefix("files/")
        if file is None:
            raise file_not_found(file_id)
        if file.state != "ACTIVE":
            raise GeminiError(
                400,
                f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
                "FAILED_PRECONDITION",
            )
        return file

    def _check_cache(self, body: JSON, model: str) -> FakeCache | None:
        name = _get(body, "cachedContent")
        if not name:
            return None
        if self._caches_to_lose and name in self.caches:
            self._caches_to_lose -= 1
            del self.caches[str(name)]
        cache = self._cache(str(name))
        if any(_get(body, k) for k in ("systemInstruction", "tools", "toolConfig")):
            raise invalid(CACHE_WITH_CONFIG)
        cached_model = str(cache.body.get("model") or "").removeprefix("models/")
        if model and cached_model and cached_model != model:
            raise invalid(
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"(models/{cached_model}) has to be the same."
            )
        return cache

    def _cache(self, name: str) -> FakeCache:
        """A live cache by name; the API's 403 for one that expired or never existed."""
        self._expire_caches()
        if name not in self.caches:
            raise GeminiError(403, "CachedContent not found (or permission denied)")
        return self.caches[name]

    def _expire_caches(self) -> None:
        now = self.now()
        for name in [n for n, c in self.caches.items() if c.expires <= now]:
            del self.caches[name]

    def _expiry(self, body: JSON, default: datetime) -> datetime:
        """expireTime, or now + ttl ("300s"), from a create or update body."""
        expire_time = _get(body, "expireTime")
        if expire_time:
            return datetime.fromisoformat(str(expire_time).replace("Z", "+00:00"))
        ttl = body.get("ttl")
        if ttl:
            return self.now() + timedelta(seconds=float(str(ttl).rstrip("s")))
        return default

    def _prompt_tokens(self, body: JSON) -> dict[str, int]:
        """Rough prompt tokens by modality: text chars / 4, 258 per image, 300 per video, 96 per
        audio file."""
        counts = {"TEXT": 0, "IMAGE": 0, "VIDEO": 0, "AUDIO": 0}
        system = _get(body, "systemInstruction") or {}
        for part in parts(body) + [normalise_part(p) for p in system.get("parts") or []]:
            mime = part_mime(part)
            if not mime and "fileData" in part:
                known = self.files.get(_file_name(str(part["fileData"].get("fileUri") or "")))
                mime = known.mime_type if known else ""
            if "text" in part:
                counts["TEXT"] += math.ceil(len(part["text"]) / 4)
            elif mime.startswith("image/"):
                counts["IMAGE"] += IMAGE_TOKENS
            elif mime.startswith("video/"):
                counts["VIDEO"] += VIDEO_TOKENS
            elif mime.startswith("audio/"):
                counts["AUDIO"] += AUDIO_TOKENS
        return counts

    def _usage(self, body: JSON, answer: str, cache: FakeCache | None) -> JSON:
        tokens = self._prompt_tokens(body)
        prompt = sum(tokens.values()) + (cache.tokens if cache else 0)
        answer_tokens = math.ceil(len(answer) / 4)
        usage: JSON = {"promptTokenCount": prompt, "totalTokenCount": prompt + answer_tokens}
        if answer_tokens:
            usage["candidatesTokenCount"] = answer_tokens
        if cache:
            usage["cachedContentTokenCount"] = cache.tokens
        usage["promptTokensDetails"] = _details(tokens)
        return usage

    # --- files -------------------------------------------------------------------------------

    def _upload_start(self, request: web.Request, body: JSON, version: str) -> web.Response:
        if self._upload_failures:
            raise GeminiError(self._upload_failures.pop(0))
        meta = {_camel(k): v for k, v in (body.get("file") or {}).items()}
        mime = meta.get("mimeType") or request.headers.get("X-Goog-Upload-Header-Content-Type")
        if not mime:
            raise invalid("* CreateFileRequest.file.mime_type: mime_type is not specified\n")
        size = request.headers.get("X-Goog-Upload-Header-Content-Length", meta.get("sizeBytes"))
        name = meta.get("name") or f"files/{secrets.token_hex(6)}"
        if name in self.files:
            raise GeminiError(409, f"File {name} already exists.", "ALREADY_EXISTS")
        upload_id = secrets.token_urlsafe(16)
        self._sessions[upload_id] = _UploadSession(
            name, str(mime), meta.get("displayName"), int(size) if size is not None else -1
        )
        url = f"{self.url}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return web.Response(
            headers={
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-Chunk-Granularity": str(UPLOAD_GRANULARITY),
            }
        )

    def _upload_chunk(self, request: web.Request, raw: bytes, version: str) -> web.Response:
        session = self._sessions.get(request.query.get("upload_id", ""))
        if session is None:
            raise GeminiError(404, "Upload session not found.")
        offset = int(request.headers.get("X-Goog-Upload-Offset", "0"))
        if offset != len(session.data):
            raise invalid(
                f"Upload offset {offset} does not match {len(session.data)} bytes received."
            )
        session.data += raw
        command = request.headers.get("X-Goog-Upload-Command", "")
        if "finalize" not in command:
            return web.Response(headers={"X-Goog-Upload-Status": "active"})
        del self._sessions[request.query["upload_id"]]
        if session.size >= 0 and len(session.data) != session.size:
            raise invalid(f"Upload declared {session.size} bytes but sent {len(session.data)}.")
        file = FakeFile(
            name=session.name,
            uri=f"{self.url}/{version}/{session.name}",
            mime_type=session.mime_type,
            display_name=session.display_name,
            data=bytes(session.data),
        )
        file.will_fail = any(fails(file) for fails in self._processing_failures)
        polls = self.processing_polls
        for prefix, count in self.processing_polls_for.items():
            if file.mime_type.startswith(prefix):
                polls = count
        file.polls_left = polls
        if polls > 0:
            file.state = "PROCESSING"
        else:
            _finish_processing(file)
        self.files[file.name] = file
        self._uploads.append(file)
        response = web.json_response({"file": file.to_json()})
        response.headers["X-Goog-Upload-Status"] = "final"
        return response

    def _poll_file(self, file_id: str) -> FakeFile:
        """files.get: one poll brings a PROCESSING file one step closer to its end state."""
        file = self.files.get(f"files/{file_id}")
        if file is None:
            raise file_not_found(file_id)
        if file.state == "PROCESSING":
            file.polls_left -= 1
            if file.polls_left <= 0:
                _finish_processing(file)
        return file

    def _list_files(self, request: web.Request) -> JSON:
        size = min(int(request.query.get("pageSize", "10")), 100)
        start = int(request.query.get("pageToken") or 0)
        listed = list(self.files.values())[start : start + size]
        page: JSON = {"files": [f.to_json() for f in listed]} if listed else {}
        if start + size < len(self.files):
            page["nextPageToken"] = str(start + size)
        return page

    # --- cachedContents ----------------------------------------------------------------------

    def _create_cache(self, body: JSON) -> JSON:
        if self._cache_failures:
            raise GeminiError(self._cache_failures.pop(0))
        if not body.get("model"):
            raise invalid("* CreateCachedContentRequest.cached_content.model: model is required\n")
        self._check_contents(body, "CreateCachedContentRequest.cached_content", required=False)
        tokens = sum(self._prompt_tokens(body).values())
        if tokens < self.cache_min_tokens:
            raise invalid(
                f"Cached content is too small. total_token_count={tokens}, "
                f"min_total_token_count={self.cache_min_tokens}"
            )
        now = self.now()
        expires = self._expiry(body, now + timedelta(hours=1))  # the API's default TTL
        name = f"cachedContents/{secrets.token_hex(8)}"
        data: JSON = {
            "name": name,
            "model": body["model"],
            "createTime": rfc3339(now),
            "updateTime": rfc3339(now),
            "usageMetadata": {"totalTokenCount": tokens},
        }
        if _get(body, "displayName"):
            data["displayName"] = _get(body, "displayName")
        cache = FakeCache(name, body, tokens, data, expires)
        self.caches[name] = cache
        return cache.to_json()


def _file_name(uri: str) -> str:
    """The "files/ID" name a file URI points at, whatever its host."""
    return "files/" + uri.rsplit("/files/", 1)[-1].split("?")[0]


def _finish_processing(file: FakeFile) -> None:
    if file.will_fail:
        file.state = "FAILED"
        file.error = {"code": 400, "message": "Video could not be processed"}
    else:
        file.state = "ACTIVE"


def _details(tokens: dict[str, int]) -> list[JSON]:
    return [{"modality": m, "tokenCount": n} for m, n in tokens.items() if n]


def _candidate(reply: Reply, text: str, last: bool) -> JSON:
    candidate: JSON = {"index": 0}
    if text:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if last:
        candidate["finishReason"] = reply.finish_reason
    if last and reply.finish_reason == "SAFETY":
        candidate["safetyRatings"] = [
            {
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": True,
            }
        ]
    return candidate


def _response(reply: Reply, text: str, usage: JSON, model: str, rid: str, last: bool) -> JSON:
    """One GenerateContentResponse (or stream chunk) with the given text."""
    data: JSON = {"modelVersion": model, "responseId": rid}
    if reply.block_reason:
        data["promptFeedback"] = {"blockReason": reply.block_reason}
        data["usageMetadata"] = {
            k: v for k, v in usage.items() if k not in ("candidatesTokenCount", "totalTokenCount")
        } | {"totalTokenCount": usage["promptTokenCount"]}
        return data
    data["candidates"] = [_candidate(reply, text, last)]
    if last:
        data["usageMetadata"] = usage
    return data


def _events(reply: Reply, usage: JSON, model: str, stream: bool) -> list[JSON]:
    """The answer as one response, or as SSE chunks whose last carries finishReason and usage."""
    rid = "fake-" + secrets.token_hex(6)  # one id for all chunks of an answer, as on the API
    if reply.block_reason or not stream:
        return [_response(reply, reply.answer(), usage, model, rid, last=True)]
    pieces = reply.pieces() or [""]
    events = [_response(reply, p, usage, model, rid, last=False) for p in pieces[:-1]]
    if reply.finish_reason in ("STOP", "MAX_TOKENS") or not pieces[-1]:
        events.append(_response(reply, pieces[-1], usage, model, rid, last=True))
    else:
        # a blocked answer: the text so far, then a chunk with no content that says why
        events.append(_response(reply, pieces[-1], usage, model, rid, last=False))
        events.append(_response(reply, "", usage, model, rid, last=True))
    return events
