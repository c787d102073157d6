"""A loopback HTTP/1.1 server that speaks like an LLM provider and replays recorded traffic.

Used by streaming, retry and timeout tests (in-process, on a background thread) and by the
benchmarks (as its own process, so it gets its own core). Pure asyncio, one task per
connection, keep-alive, stdlib only.

In-process::

    from tests.server import ReplayServer, json_response, openai_error, sse_response_from_file

    with ReplayServer() as srv:
        srv.enqueue(openai_error(429, "slow down", headers={"retry-after": "0"}))
        srv.enqueue(sse_response_from_file(path, split="line"), path="/v1/chat/completions")
        srv.default = json_response({"ok": True})          # when the queues are empty
        httpx.post(srv.url + "/v1/chat/completions", json={...})
        assert srv.requests[0].headers["authorization"] == "Bearer sk-test"

Standalone (prints the URL as the first stdout line, serves until SIGINT/SIGTERM)::

    python tests/server.py --port 0                 # canned OpenAI chat completions / streams
    python tests/server.py --sse capture.bin --split event --interval 0.01
    python tests/server.py --json completion.json --status 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import inspect
import itertools
import json
import re
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "FaultOptions",
    "Handler",
    "Pause",
    "ReplayServer",
    "Request",
    "Response",
    "ResponseOptions",
    "json_response",
    "load_jsonl_chunks",
    "openai_chat_handler",
    "openai_error",
    "split_bytes",
    "sse_from_chunks",
    "sse_response",
    "sse_response_from_file",
]

# Request heads beyond this are rejected; also the StreamReader buffer limit.
MAX_HEAD = 1 << 20


@dataclass(frozen=True)
class Pause:
    """A stall inside a streamed response: sleep this many seconds between two chunks."""

    seconds: float


@dataclass
class Response:
    """What the server sends for one request.

    Exactly one of ``body`` (sent with Content-Length) or ``chunks`` (sent with
    ``Transfer-Encoding: chunked``, one HTTP chunk per item, each written and drained on its
    own) is used; ``chunks`` wins when not None. Empty items are skipped (a zero-length chunk
    would end the body). Framing headers (content-length / transfer-encoding / connection) are
    added unless already present in ``headers``, so a test can send a lying Content-Length.

    Faults:
      * ``delay``: seconds to wait before the status line.
      * ``interval``: seconds between consecutive chunks (a steady token stream).
      * ``Pause(s)`` items in ``chunks``: a stall at that point.
      * ``cut``: close the socket early. For ``chunks``: after the last item, without the
        terminating zero chunk. For ``body``: Content-Length announces the whole body but only
        its first half is sent.
      * ``drop_after_headers``: send the status line and headers, then close.
      * ``raw``: write these bytes verbatim as the whole response, then close.
      * ``close``: send ``Connection: close`` and close after a complete response.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes | Pause] | None = None
    delay: float = 0.0
    interval: float = 0.0
    cut: bool = False
    drop_after_headers: bool = False
    raw: bytes | None = None
    close: bool = False


class FaultOptions(TypedDict, total=False):
    """Timing and fault options the response builders pass through to :class:`Response`."""

    delay: float
    interval: float
    cut: bool
    drop_after_headers: bool
    close: bool


class ResponseOptions(FaultOptions, total=False):
    """FaultOptions plus status and headers."""

    status: int
    headers: dict[str, str]


@dataclass
class Request:
    """One request as received. ``headers`` has lowercase names; repeated ones are joined
    with ", " (``raw_headers`` keeps them apart, in order, with their original case)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    raw_headers: list[tuple[str, str]] = field(default_factory=list)
    http_version: str = "HTTP/1.1"
    connection_id: int = 0  # same id = same TCP connection (keep-alive reuse)
    received_at: float = 0.0  # time.monotonic() when the request was complete

    @property
    def params(self) -> dict[str, str]:
        """Query parameters (last value wins)."""
        return dict(parse_qsl(self.query, keep_blank_values=True))


# May return None (fall through to ``default``) and may be a coroutine function.
Handler = Callable[[Request], Response | Awaitable[Response | None] | None]


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --------------------------------------------------------------------------- response builders


def json_response(
    obj: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **options: Unpack[FaultOptions],
) -> Response:
    """A JSON body response (``content-type: application/json``)."""
    hdrs = {"content-type": "application/json", **(headers or {})}
    return Response(status=status, headers=hdrs, body=json.dumps(obj).encode(), **options)


def openai_error(
    status: int,
    message: str,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    **options: Unpack[FaultOptions],
) -> Response:
    """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``.

    Use ``headers={"retry-after": "1"}`` for 429/503 tests.
    """
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return json_response(body, status=status, headers=headers, **options)


def split_bytes(data: bytes, split: str | int = "event") -> list[bytes]:
    """Split a byte stream into pieces whose concatenation is exactly ``data``.

    ``split``: ``"event"`` after each blank line ending an SSE event (LF, CRLF or CR style),
    ``"line"`` after each newline, ``"none"`` one piece, or an int / digit string N for
    N-byte pieces (to put events and even UTF-8 sequences across reads).
    """
    if isinstance(split, int) or split.isdigit():
        size = int(split)
        if size <= 0:
            raise ValueError("split size must be positive")
        return [data[i : i + size] for i in range(0, len(data), size)]
    if split == "event":
        pattern = rb"(?<=\r\n\r\n)|(?<=\n\n)|(?<=\r\r)"
    elif split == "line":
        pattern = rb"(?<=\n)|(?<=\r)(?!\n)"
    elif split == "none":
        return [data] if data else []
    else:
        raise ValueError(f"unknown split {split!r}: use 'event', 'line', 'none' or a size")
    return [piece for piece in re.split(pattern, data) if piece]


def sse_response(
    data: bytes, *, split: str | int = "event", **options: Unpack[ResponseOptions]
) -> Response:
    """A ``text/event-stream`` streaming response of ``data``, split as in :func:`split_bytes`."""
    chunks: list[bytes | Pause] = list(split_bytes(data, split))
    response = Response(chunks=chunks, **options)
    response.headers = {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        **response.headers,
    }
    return response


def sse_response_from_file(
    path: str | Path, *, split: str | int = "event", **options: Unpack[ResponseOptions]
) -> Response:
    """Replay a raw SSE capture (.bin/.txt/.sse) byte for byte, one HTTP chunk per event
    (``split="event"``), per line, or every N bytes. Insert ``Pause`` items into
    ``resp.chunks`` for stalls."""
    return sse_response(Path(path).read_bytes(), split=split, **options)


def sse_from_chunks(
    chunks: Iterable[Any],
    done: bool = True,
    *,
    event_field: str | None = None,
    split: str | int = "event",
    **options: Unpack[ResponseOptions],
) -> Response:
    """Build an SSE stream ``data: {...}\\n\\n ... data: [DONE]\\n\\n`` from objects.

    Dicts are JSON-encoded, strings sent as they are. ``event_field="type"`` also writes an
    ``event: <obj["type"]>`` line per event, as Anthropic does; ``done=False`` for providers
    without the OpenAI ``[DONE]`` sentinel (Anthropic, Gemini).
    """
    parts: list[str] = []
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk, separators=(",", ":"))
        if event_field is not None and isinstance(chunk, dict) and event_field in chunk:
            parts.append(f"event: {chunk[event_field]}\ndata: {data}\n\n")
        else:
            parts.append(f"data: {data}\n\n")
    if done:
        parts.append("data: [DONE]\n\n")
    return sse_response("".join(parts).encode(), split=split, **options)


def load_jsonl_chunks(path: str | Path) -> list[Any]:
    """Objects of a one-JSON-per-line capture (vercel/ai ``*.chunks.txt``), blank lines skipped."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# Canned content for openai_chat_handler: enough words to make a multi-chunk stream.
_CANNED_WORDS = ["Hello", " from", " the", " replay", " server", "."]


def openai_chat_handler(request: Request) -> Response | None:
    """A minimal OpenAI-compatible endpoint with canned content (schema-valid objects).

    ``POST .../chat/completions``: a ``chat.completion``, or a chunk stream ending in
    ``[DONE]`` when the body has ``"stream": true`` (with a usage chunk when
    ``stream_options.include_usage``). ``GET .../models``: a model list. Else None (→ 404).
    """
    if request.method == "GET" and request.path.endswith("/models"):
        entry = {"id": "replay-model", "object": "model", "created": 0, "owned_by": "replay"}
        return json_response({"object": "list", "data": [entry]})
    if request.method != "POST" or not request.path.endswith("/chat/completions"):
        return None
    body = request.json if isinstance(request.json, dict) else {}
    model = str(body.get("model") or "replay-model")
    ident = f"chatcmpl-replay{request.connection_id}x{int(request.received_at * 1e6)}"
    created = int(time.time())
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": len(_CANNED_WORDS),
        "total_tokens": 5 + len(_CANNED_WORDS),
    }
    base: dict[str, Any] = {"id": ident, "created": created, "model": model}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(_CANNED_WORDS), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return json_response(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage},
            headers={"x-request-id": f"req_{ident}"},
        )
    base["object"] = "chat.completion.chunk"
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word} for word in _CANNED_WORDS]
    events: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    events.append(
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
    )
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": usage})
    return sse_from_chunks(events, headers={"x-request-id": f"req_{ident}"})


# --------------------------------------------------------------------------------- the server


class ReplayServer:
    """Loopback HTTP/1.1 server. Responses come from, in order: the queue for the request's
    path, the global queue, ``handler(request)`` (may return None or be async), ``default``,
    else a 404 OpenAI-style error naming the request.

    ``with ReplayServer() as srv`` runs it on a background thread with its own event loop, so
    sync tests and subprocesses can use ``srv.url``. Every request is appended to
    ``srv.requests`` (unless ``record=False``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Response | None = None,
        handler: Handler | None = None,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.default = default
        self.handler = handler
        self.record = record
        self.requests: list[Request] = []
        self.request_count = 0  # counted even when record=False
        self._queue: deque[Response] = deque()
        self._path_queues: dict[str, deque[Response]] = {}
        # Tests enqueue from their thread while the loop thread pops.
        self._lock = threading.Lock()
        self._recorded = threading.Condition()
        self._conn_ids = itertools.count(1)
        self._conns: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ----------------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def enqueue(self, *responses: Response, path: str | None = None) -> None:
        """Queue responses for the next requests, in order; with ``path``, only for requests
        to exactly that path (query string ignored)."""
        with self._lock:
            if path is None:
                self._queue.extend(responses)
            else:
                self._path_queues.setdefault(path, deque()).extend(responses)

    def pending(self) -> int:
        """Number of queued responses not served yet."""
        with self._lock:
            return len(self._queue) + sum(len(q) for q in self._path_queues.values())

    def reset(self) -> None:
        """Forget queued responses and recorded requests (default/handler are kept)."""
        with self._lock:
            self._queue.clear()
            self._path_queues.clear()
        with self._recorded:
            self.requests.clear()
            self.request_count = 0

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Request]:
        """Block until at least n requests were received (for clients in subprocesses)."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: self.request_count >= n, timeout):
                raise TimeoutError(f"got {self.request_count} requests, expected {n}")
            return list(self.requests)

    def start(self) -> ReplayServer:
        """Start serving on a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name="replay-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error
        return self

    def close(self) -> None:
        """Stop serving and cancel open connections, including ones stalled in a Pause."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- loop-side plumbing

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self.start_serving())
        except BaseException as exc:  # report bind errors etc. to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.stop_serving())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def start_serving(self) -> None:
        """Bind and start accepting (in the running loop); sets ``self.port``."""
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=MAX_HEAD, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_serving(self) -> None:
        """Stop accepting and cancel every open connection."""
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        for task in conns:
            task.cancel()
        await asyncio.gather(*conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        conn_id = next(self._conn_ids)
        try:
            while True:
                try:
                    request = await self._read_request(reader, writer, conn_id)
                except _BadRequest as bad:
                    await self._write(writer, _error_response(bad.status, bad.reason), False)
                    break
                if request is None:
                    break
                self._record(request)
                response = await self._respond(request)
                if not await self._write(writer, response, _keep_alive(request)):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # close() cancels us. End normally: on 3.11 the streams callback calls
            # task.exception() and logs a spurious traceback for a cancelled task.
            pass
        except Exception:
            # A server bug (or an unencodable Response) must be visible in the test output.
            traceback.print_exc()
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_id: int
    ) -> Request | None:
        """Read one request; None on a clean EOF between requests."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            raise _BadRequest(400, "incomplete request head") from None
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, "request head too large") from None
        lines = head[:-4].lstrip(b"\r\n").split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, f"bad request line {lines[0][:100]!r}")
        method, target, version = parts
        raw_headers: list[tuple[str, str]] = []
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, f"bad header line {line[:100]!r}")
            value = value.strip(" \t")
            raw_headers.append((name, value))
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await _read_body(reader, headers)

        if target.startswith(("http://", "https://")):  # absolute-form (proxy style)
            split = urlsplit(target)
            path, query = split.path or "/", split.query
        else:
            path, _, query = target.partition("?")
        parsed: Any | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        return Request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            json=parsed,
            raw_headers=raw_headers,
            http_version=version,
            connection_id=conn_id,
            received_at=time.monotonic(),
        )

    def _record(self, request: Request) -> None:
        with self._recorded:
            self.request_count += 1
            if self.record:
                self.requests.append(request)
            self._recorded.notify_all()

    def _next_queued(self, path: str) -> Response | None:
        with self._lock:
            queue = self._path_queues.get(path)
            if queue:
                return queue.popleft()
            if self._queue:
                return self._queue.popleft()
        return None

    async def _respond(self, request: Request) -> Response:
        response = self._next_queued(request.path)
        if response is None and self.handler is not None:
            try:
                result = self.handler(request)
                if inspect.isawaitable(result):
                    result = await result
                response = result
            except Exception:
                # A broken handler must show up in the test output, not as a hang.
                text = traceback.format_exc()
                print(f"replay server: handler failed:\n{text}", file=sys.stderr)
                return openai_error(500, f"replay server handler failed: {text}", "server_error")
        if response is None:
            response = self.default
        if response is None:
            return openai_error(
                404,
                f"replay server: nothing queued for {request.method} {request.path} "
                "and no handler/default",
                type="replay_server_error",
            )
        return response

    async def _write(
        self, writer: asyncio.StreamWriter, response: Response, keep_alive: bool
    ) -> bool:
        """Send response; return whether the connection may serve another request."""
        if response.delay > 0:
            await asyncio.sleep(response.delay)
        if response.raw is not None:
            writer.write(response.raw)
            await writer.drain()
            return False
        keep = keep_alive and not (response.close or response.cut or response.drop_after_headers)
        streaming = response.chunks is not None
        head = _head(response, streaming, keep)
        if response.drop_after_headers:
            writer.write(head)
            await writer.drain()
            return False
        if not streaming:
            body = response.body[: len(response.body) // 2] if response.cut else response.body
            writer.write(head + body)  # one write, one syscall: matters for the benchmarks
            await writer.drain()
            return keep
        writer.write(head)
        await writer.drain()
        first = True
        for item in response.chunks or ():
            if isinstance(item, Pause):
                await asyncio.sleep(item.seconds)
                continue
            if not item:
                continue
            if response.interval > 0 and not first:
                await asyncio.sleep(response.interval)
            first = False
            # Drain after each chunk so it leaves as its own segment (TCP_NODELAY is on).
            writer.write(b"%x\r\n%b\r\n" % (len(item), item))
            await writer.drain()
        if response.cut:
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return keep


def _keep_alive(request: Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
    if request.http_version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _head(response: Response, streaming: bool, keep: bool) -> bytes:
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    present = {name.lower() for name in response.headers}
    no_body = response.status in (204, 304) or 100 <= response.status < 200
    if "content-length" not in present and "transfer-encoding" not in present and not no_body:
        if streaming:
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {len(response.body)}")
    if "connection" not in present:
        lines.append("connection: keep-alive" if keep else "connection: close")
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.split(",")[-1].strip().lower() != "chunked":
            raise _BadRequest(501, f"unsupported transfer-encoding {coding!r}")
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is None:
        return b""
    if not length.isdigit():
        raise _BadRequest(400, f"bad content-length {length!r}")
    return await reader.readexactly(int(length))


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";")[0].strip()  # drop chunk extensions
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadRequest(400, f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            # Trailer section: header lines until an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest(400, "chunk not followed by CRLF")


def _error_response(status: int, reason: str) -> Response:
    return openai_error(status, f"replay server: {reason}", type="replay_server_error", close=True)


# ------------------------------------------------------------------------------ standalone


def _build_standalone(args: argparse.Namespace) -> ReplayServer:
    # record=False: nobody can read them out of this process, and 10k requests add up.
    server = ReplayServer(host=args.host, port=args.port, record=False)
    if args.sse is not None:
        server.default = sse_response_from_file(
            args.sse,
            split=args.split,
            status=args.status,
            delay=args.delay,
            interval=args.interval,
        )
    elif args.json is not None:
        server.default = Response(
            status=args.status,
            headers={"content-type": "application/json"},
            body=Path(args.json).read_bytes(),
            delay=args.delay,
        )
    elif args.delay:
        delay = args.delay

        def delayed(request: Request) -> Response | None:
            response = openai_chat_handler(request)
            if response is not None:
                response.delay = delay  # each canned answer waits, as a slow provider does
            return response

        server.handler = delayed
    else:
        server.handler = openai_chat_handler
    return server


async def _serve_standalone(server: ReplayServer) -> None:
    await server.start_serving()
    print(server.url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop_serving()
    print(f"replay server: served {server.request_count} requests", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Loopback LLM-provider server for tests and benchmarks. Prints its URL "
        "on the first stdout line. Without --sse/--json it answers OpenAI chat "
        "completions (streamed or not) with canned content."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sse", type=Path, help="replay this raw SSE capture for every request")
    source.add_argument("--json", type=Path, help="serve this JSON file for every request")
    parser.add_argument("--split", default="event", help="event | line | none | N bytes")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--status", type=int, default=200, help="status for --sse/--json")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before headers")
    args = parser.parse_args(argv)
    asyncio.run(_serve_standalone(_build_standalone(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
