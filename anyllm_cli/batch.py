"""The batch engine: JSONL requests through any provider, concurrent, rate-limited, resumable.

Usage::

    from anyllm_cli.batch import run_batch
    stats = await run_batch("requests.jsonl", "results.jsonl", provider="groq",
                            concurrency=16, rpm=600)
    print(stats.succeeded, stats.failed)

Every line goes through the same :meth:`AnyLLM.acompletion` and the same converters as
``anyllm chat``; file formats are in :mod:`anyllm_cli.batch_io`. How it runs:

- Before anything is sent, one streaming pass reads the input (only custom_ids are kept) to find
  duplicate custom_ids and count the lines; stdin is spooled to a temporary file for it.
- ``concurrency`` workers pull lines from a bounded queue. They are spread over several
  :class:`AnyLLM` instances, ``slots_per_client`` workers each: every instance has its own HTTP
  connection pool, and one httpx pool shared by many concurrent requests is slow (pool
  contention: 99 requests/s for 64 requests on one pool against ~860/s spread out).
- Retries per request are the transport's (408/409/429/5xx, timeouts). Any 429 (and any 5xx
  with Retry-After) pauses the whole batch for the Retry-After delay: a response hook on each
  instance's HTTP client sees it, whichever request got it. A request still rate limited after
  the transport's retries is tried again after the pause, up to ``RATE_LIMIT_ROUNDS`` times.
- ``rpm`` / ``tpm`` are token buckets taken before each request (tokens estimated from the
  line's size plus ``max_tokens``, corrected with the reply's usage).
- Results go out in input order through a bounded reorder window (``ordered=False``: as they
  complete); each line is written whole and at once (see :class:`~anyllm_cli.batch_io.
  OutputWriter`). With ``resume``, custom_ids already in the output file are skipped.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from anyllm_cli.batch_io import (
    BatchInputError,
    LineError,
    LineRequest,
    ReorderBuffer,
    ResumeState,
    ScanResult,
    error_line,
    iter_lines,
    load_resume,
    open_input,
    open_output,
    parse_line,
    scan_input,
    spool_file,
    success_line,
)
from anyllm_cli.errors import (
    AnyLLMError,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ContextLengthExceededError,
    InvalidParameterError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    StreamError,
    UnsupportedParameterError,
)

if TYPE_CHECKING:
    import httpx

    from anyllm_cli.anyllm import AnyLLM
    from anyllm_cli.catalog import LLMProvider

__all__ = [
    "BatchInputError",
    "BatchStats",
    "DryRunReport",
    "LLMFactory",
    "PauseGate",
    "TokenBucket",
    "dry_run",
    "run_batch",
]

LLMFactory = Callable[[], Awaitable["AnyLLM"]]
"""Creates one provider instance; called once per ``slots_per_client`` workers."""

SLOTS_PER_CLIENT = 8
KEEP_ERRORS = 5
RATE_LIMIT_ROUNDS = 3
"""Extra tries for a request still rate limited after the transport's own retries."""
MAX_PAUSE = 60.0
"""Longest batch-wide pause (seconds) for one Retry-After: the transport's own limit too."""
DEFAULT_PAUSE = 0.5
"""Batch-wide pause (seconds) after a 429 that names no delay."""
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-amz-request-id",
                      "apim-request-id", "x-goog-request-id", "cf-ray")


# ------------------------------------------------------------------------- rate control


class PauseGate:
    """A batch-wide pause: :meth:`pause` pushes the reopening time out, :meth:`wait` sleeps
    until it. Times are ``time.monotonic()`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), MAX_PAUSE)
        until = self.clock() + seconds
        if until > self.until:
            self.until = until
            self.pauses += 1

    async def wait(self) -> None:
        while (left := self.until - self.clock()) > 0:
            await asyncio.sleep(left)


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``capacity``.

    :meth:`delay` says how long until ``cost`` can be taken; a cost above the capacity is let
    through once the bucket is full and leaves it in debt, so the average rate still holds.
    """

    def __init__(self, rate: float, capacity: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.level = capacity
        self.last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last = now

    def delay(self, cost: float) -> float:
        """Seconds until ``cost`` tokens may be taken (0: now)."""
        self._refill()
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self.level -= cost

    def credit(self, amount: float) -> None:
        """Give back (or, negative, charge) tokens after the real cost is known."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)

    @classmethod
    def per_minute(cls, limit: float, clock: Callable[[], float] = time.monotonic
                   ) -> TokenBucket:
        """A bucket for a per-minute limit, allowing bursts of one second's share."""
        rate = limit / 60.0
        return cls(rate, max(1.0, rate), clock)


class Limiter:
    """What every request waits for before it is sent: the pause gate, then the rpm and tpm
    buckets, first come first served."""

    def __init__(self, gate: PauseGate, rpm: float | None, tpm: float | None) -> None:
        self.gate = gate
        self.rpm = TokenBucket.per_minute(rpm) if rpm else None
        self.tpm = TokenBucket.per_minute(tpm) if tpm else None
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: float) -> None:
        if self.rpm is None and self.tpm is None:
            if self.gate.until > self.gate.clock():
                await self.gate.wait()
            return
        async with self._lock:  # FIFO: a waiting request keeps its place
            while True:
                await self.gate.wait()
                wait = max(self.rpm.delay(1) if self.rpm else 0.0,
                           self.tpm.delay(tokens) if self.tpm else 0.0)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self.rpm:
                self.rpm.take(1)
            if self.tpm:
                self.tpm.take(tokens)

    def settle(self, estimated: float, actual: int | None) -> None:
        """Correct the tpm bucket once the reply's real token count is known."""
        if self.tpm is not None and actual is not None:
            self.tpm.credit(estimated - actual)


# ------------------------------------------------------------------- response observation


@dataclass(slots=True)
class _ResponseInfo:
    status: int | None = None
    request_id: str | None = None


# Set by each worker (its own task, so its own context) before a request; the response hook
# runs inside httpx's send, in that same task, and fills it in.
_current: contextvars.ContextVar[_ResponseInfo | None] = contextvars.ContextVar(
    "anyllm_batch_response", default=None)


def _response_hook(gate: PauseGate) -> Callable[[httpx.Response], Awaitable[None]]:
    from anyllm_cli.transport.http import parse_retry_after

    async def on_response(response: httpx.Response) -> None:
        headers = response.headers
        info = _current.get()
        if info is not None:
            info.status = response.status_code
            for name in REQUEST_ID_HEADERS:
                value = headers.get(name)
                if value:
                    info.request_id = value
                    break
        status = response.status_code
        if status == 429 or status >= 500:
            delay = parse_retry_after(headers)
            if delay is None and status == 429:
                delay = DEFAULT_PAUSE
            if delay is not None and delay <= MAX_PAUSE:
                gate.pause(delay)

    return on_response


# ------------------------------------------------------------------------------ statistics


@dataclass
class BatchStats:
    """Counts of a run, updated live. ``total`` is the number of lines this run handles
    (``skipped`` were already in the output file); tokens are summed from the replies' usage;
    times are ``time.monotonic()`` seconds. ``fatal`` is the error that stopped the batch
    early (a rejected key, an unreachable provider), if any. ``errors`` keeps the messages of
    the first :data:`KEEP_ERRORS` failed lines; ``pauses`` counts batch-wide rate-limit pauses
    and ``paused_until`` is when the current one ends."""

    total: int = 0
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    pauses: int = 0
    paused_until: float = 0.0
    errors: list[str] = field(default_factory=list)
    resume: ResumeState | None = None
    fatal: AnyLLMError | None = None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def elapsed(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def rate(self) -> float:
        """Lines finished per second."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0


ProgressCallback = Callable[[BatchStats], None]


# ---------------------------------------------------------------------------------- engine


def _batch_id() -> str:
    return "batch_req_" + os.urandom(12).hex()


def _error_code(exc: AnyLLMError) -> str:
    """A short code for an error: the provider's own when its body has one, else ours."""
    err = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(err, dict):
        for key in ("code", "type", "status"):
            value = err.get(key)
            if isinstance(value, str) and value:
                return value
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return "error"


_CODES: tuple[tuple[type[AnyLLMError], str], ...] = (
    (UnsupportedParameterError, "unsupported_parameter"),
    (InvalidParameterError, "invalid_parameter"),
    (ContextLengthExceededError, "context_length_exceeded"),
    (InvalidRequestError, "invalid_request_error"),
    (AuthenticationError, "authentication_error"),
    (PermissionDeniedError, "permission_denied"),
    (NotFoundError, "not_found"),
    (RateLimitError, "rate_limit_exceeded"),
    (APITimeoutError, "timeout"),
    (APIConnectionError, "connection_error"),
    (StreamError, "stream_error"),
    (ProviderError, "server_error"),
)


def _merge(line: LineRequest, model: str | None, default_model: str | None,
           params: Mapping[str, Any], overrides: Mapping[str, Any]
           ) -> tuple[str | None, list[dict[str, Any]], dict[str, Any]]:
    """The model, messages and parameters for one line: ``model`` (``-m``) over the line's
    model over ``default_model``; ``overrides`` (``--option``) over the line's parameters over
    ``params`` (the profile's). A ``system`` parameter becomes a leading system message unless
    the messages already start with one."""
    request = line.request
    kwargs = {**params, **request, **overrides}
    kwargs.pop("model", None)
    messages = kwargs.pop("messages")
    chosen = model or request.get("model") or default_model
    system = kwargs.pop("system", None)
    if system and not (isinstance(messages[0], dict)
                       and messages[0].get("role") in ("system", "developer")):
        messages = [{"role": "system", "content": system}, *messages]
    return chosen, messages, kwargs


class _Fatal(Exception):
    def __init__(self, error: AnyLLMError) -> None:
        super().__init__(str(error))
        self.error = error


class _Engine:
    def __init__(self, *, llms: list[AnyLLM], concurrency: int, buffer: ReorderBuffer,
                 limiter: Limiter, window: int, model: str | None, default_model: str | None,
                 params: Mapping[str, Any], overrides: Mapping[str, Any], stats: BatchStats
                 ) -> None:
        self.llms = llms
        self.concurrency = concurrency
        self.buffer = buffer
        self.limiter = limiter
        self.window = asyncio.Semaphore(window)
        self.model = model
        self.default_model = default_model
        self.params = params
        self.overrides = overrides
        self.stats = stats
        self.tasks: list[asyncio.Task[None]] = []

    def emit(self, seq: int, data: bytes, error: str | None) -> None:
        stats = self.stats
        if error is None:
            stats.succeeded += 1
        else:
            stats.failed += 1
            if len(stats.errors) < KEEP_ERRORS:
                stats.errors.append(error)
        for _ in range(self.buffer.put(seq, data)):
            self.window.release()

    async def run(self, stream: IO[bytes], done: set[str]) -> None:
        queue: asyncio.Queue[tuple[int, LineRequest] | None] = asyncio.Queue(
            maxsize=self.concurrency)
        n_clients = len(self.llms)
        self.tasks = [asyncio.create_task(self.produce(stream, done, queue))]
        self.tasks += [asyncio.create_task(self.work(self.llms[i % n_clients], queue))
                       for i in range(self.concurrency)]
        try:
            # An unexpected failure in one task (the output pipe closed) ends them all; an
            # abort() cancels the others itself.
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def produce(self, stream: IO[bytes], done: set[str],
                      queue: asyncio.Queue[tuple[int, LineRequest] | None]) -> None:
        seq = 0
        for lineno, raw in iter_lines(stream):
            try:
                line: LineRequest | LineError = parse_line(raw, lineno)
            except LineError as exc:
                line = exc
            if line.custom_id in done:
                continue
            await self.window.acquire()
            if isinstance(line, LineError):
                self.emit(seq, error_line(_batch_id(), line.custom_id, line.code, str(line)),
                          str(line))
            else:
                await queue.put((seq, line))
            seq += 1
        for _ in range(self.concurrency):
            await queue.put(None)

    async def work(self, llm: AnyLLM,
                   queue: asyncio.Queue[tuple[int, LineRequest] | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            seq, line = item
            try:
                data, error = await self.send(llm, line)
            except _Fatal as exc:
                self.abort(exc.error)
                return
            self.emit(seq, data, error)

    def abort(self, error: AnyLLMError) -> None:
        """Stop the batch: a request showed that no other can succeed."""
        if self.stats.fatal is None:
            self.stats.fatal = error
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def send(self, llm: AnyLLM, line: LineRequest) -> tuple[bytes, str | None]:
        """Run one line: its output line, and its error message when it failed."""
        model, messages, kwargs = _merge(line, self.model, self.default_model, self.params,
                                         self.overrides)
        limit = kwargs.get("max_completion_tokens") or kwargs.get("max_tokens")
        estimate = line.size / 4 + (limit if isinstance(limit, int) else 0)
        rounds = 0
        while True:
            await self.limiter.acquire(estimate)
            info = _ResponseInfo()
            _current.set(info)
            try:
                completion = await llm.acompletion(model, messages, **kwargs)
            except RateLimitError as exc:
                wait = exc.retry_after
                if wait is not None and wait > MAX_PAUSE:
                    # "Come back in an hour" (a spent quota): stop, and let --resume finish
                    # later, rather than fail every remaining line.
                    raise _Fatal(exc) from None
                if rounds < RATE_LIMIT_ROUNDS:
                    rounds += 1
                    self.limiter.gate.pause(wait if wait is not None
                                            else DEFAULT_PAUSE * 2**rounds)
                    continue
                return self.failure(line, exc, info)
            except AnyLLMError as exc:
                if isinstance(exc, AuthenticationError) or (
                        isinstance(exc, APIConnectionError) and self.stats.succeeded == 0):
                    raise _Fatal(exc) from None
                return self.failure(line, exc, info)
            except Exception as exc:  # a backend bug must fail one line, not the batch
                message = f"line {line.lineno}: {type(exc).__name__}: {exc}"
                return error_line(_batch_id(), line.custom_id, "internal_error",
                                  message), message
            break
        usage = completion.usage
        self.limiter.settle(estimate, usage.total_tokens if usage else None)
        if usage is not None:
            self.stats.prompt_tokens += usage.prompt_tokens
            self.stats.completion_tokens += usage.completion_tokens
        extra = completion.model_extra or {}
        request_id = extra.get("request_id") or info.request_id
        if not isinstance(request_id, str) or not request_id:
            request_id = "req_" + os.urandom(12).hex()
        status = info.status if info.status and 200 <= info.status < 300 else 200
        return success_line(_batch_id(), line.custom_id, status, request_id,
                            completion.to_json()), None

    @staticmethod
    def failure(line: LineRequest, exc: AnyLLMError, info: _ResponseInfo
                ) -> tuple[bytes, str]:
        code = _error_code(exc)
        message = f"line {line.lineno}: {exc}"
        status = exc.status_code
        if status is None or status < 400:
            return error_line(_batch_id(), line.custom_id, code, message), message
        body = exc.body if isinstance(exc.body, dict) and isinstance(
            exc.body.get("error"), dict) else None
        request_id = info.request_id or "req_" + os.urandom(12).hex()
        return error_line(_batch_id(), line.custom_id, code, message, status=status,
                          request_id=request_id, body=body), message


async def _make_llms(provider: str | LLMProvider | LLMFactory, count: int,
                     llm_kwargs: Mapping[str, Any]) -> list[AnyLLM]:
    from anyllm_cli.anyllm import AnyLLM

    if callable(provider):
        factory: LLMFactory = provider
    else:
        entry = provider

        async def factory() -> AnyLLM:
            return await AnyLLM.acreate(entry, **llm_kwargs)

    llms: list[AnyLLM] = []
    try:
        for _ in range(count):
            llms.append(await factory())
    except BaseException:
        for llm in llms:
            await llm.aclose()
        raise
    return llms


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


async def run_batch(
    source: str | os.PathLike[str] | IO[bytes] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    provider: str | LLMProvider | LLMFactory,
    model: str | None = None,
    default_model: str | None = None,
    params: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    concurrency: int = 8,
    rpm: float | None = None,
    tpm: float | None = None,
    ordered: bool = True,
    resume: bool = False,
    window: int | None = None,
    slots_per_client: int = SLOTS_PER_CLIENT,
    progress: ProgressCallback | None = None,
    progress_interval: float = 0.25,
    stats: BatchStats | None = None,
    llm_kwargs: Mapping[str, Any] | None = None,
) -> BatchStats:
    """Run every request line of ``source`` and write one output line per request line.

    ``source``: a JSONL path, a binary stream, or None / ``"-"`` for stdin. ``output``: a path,
    or None / ``"-"`` for stdout. ``provider``: a catalog name or entry (instances made with
    ``AnyLLM.acreate(provider, **llm_kwargs)``), or an async factory returning a new instance
    (called ``ceil(concurrency / slots_per_client)`` times; each instance is closed at the end).

    Model per line: ``model`` if given, else the line's ``model``, else ``default_model``, else
    the provider's default. Parameters: ``overrides`` over the line's over ``params``.
    ``concurrency``: requests in flight; ``rpm`` / ``tpm``: requests and tokens per minute;
    ``ordered``: output in input order through a reorder window of ``window`` lines (default
    ``max(256, 16 * concurrency)``), else as completed; ``resume``: skip the custom_ids already in
    ``output`` (a file), cutting a torn last line off it first. ``progress(stats)`` is called
    every ``progress_interval`` seconds and once at the end; ``stats``, when given, is the object
    filled in (readable after an interrupt).

    Returns the :class:`BatchStats`; ``stats.fatal`` is set when the batch stopped early (a
    rejected key, a provider that could not be reached before any line succeeded, a 429 asking
    for a pause longer than ``MAX_PAUSE``): the line that hit it and the lines
    not written then are run by a later ``resume``. Raises :class:`BatchInputError` (before
    anything is sent) for duplicate custom_ids, an unreadable input or an unusable output, and
    the provider's :class:`AnyLLMError` when no instance can be created (e.g. no API key).
    On cancellation, finished lines still held for ordering are written before it propagates.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    stats = stats if stats is not None else BatchStats()
    stats.started = time.monotonic()
    if resume and (output is None or os.fspath(output) == "-"):
        raise BatchInputError("resume needs an output file")
    if (output is not None and isinstance(source, (str, os.PathLike)) and os.fspath(output) != "-"
            and _same_file(source, output)):
        raise BatchInputError("the output file is the input file")

    state = load_resume(output) if resume and output is not None else ResumeState()
    stats.resume = state
    stream, spool = open_input(source)
    owned = isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-"
    copy = spool_file() if spool else None
    try:
        start = 0 if copy is not None else stream.tell()
        scan = _scan(stream, state.done, copy)
        if copy is not None:
            if owned:
                stream.close()
            stream, owned = copy, True
        stream.seek(start)
        stats.total = scan.todo
        stats.skipped = scan.lines - scan.todo
        if progress is not None:
            progress(stats)
        if scan.todo == 0:
            stats.finished = time.monotonic()
            if output is not None and not resume:
                open_output(output, append=False).close()
            return stats
        active = min(concurrency, scan.todo)
        llms = await _make_llms(provider, math.ceil(active / max(1, slots_per_client)),
                                dict(llm_kwargs or {}))
        try:
            return await _run(llms, stream, output, state, stats, active=active,
                              model=model, default_model=default_model, params=params or {},
                              overrides=overrides or {}, rpm=rpm, tpm=tpm, ordered=ordered,
                              resume=resume, window=window, progress=progress,
                              progress_interval=progress_interval)
        finally:
            for llm in llms:
                await llm.aclose()
    finally:
        if owned:
            stream.close()


def _scan(stream: IO[bytes], done: set[str], copy: IO[bytes] | None) -> ScanResult:
    scan = scan_input(stream, done, copy)
    if scan.duplicates:
        shown = "; ".join(f"{cid!r} on lines {first} and {dup}"
                          for cid, first, dup in scan.duplicates[:5])
        more = scan.duplicate_count - min(5, len(scan.duplicates))
        tail = f" (and {more} more)" if more > 0 else ""
        raise BatchInputError(f"duplicate custom_id: {shown}{tail}; nothing was sent")
    return scan


async def _run(llms: list[AnyLLM], stream: IO[bytes], output: str | os.PathLike[str] | None,
               state: ResumeState, stats: BatchStats, *, active: int, model: str | None,
               default_model: str | None, params: Mapping[str, Any],
               overrides: Mapping[str, Any], rpm: float | None, tpm: float | None,
               ordered: bool, resume: bool, window: int | None,
               progress: ProgressCallback | None, progress_interval: float) -> BatchStats:
    gate = PauseGate()
    hook = _response_hook(gate)
    for llm in llms:
        llm.add_response_hook(hook)
    writer = open_output(output, append=resume)
    buffer = ReorderBuffer(writer, ordered=ordered)
    engine = _Engine(llms=llms, concurrency=active, buffer=buffer,
                     limiter=Limiter(gate, rpm, tpm),
                     window=window or max(256, 16 * active), model=model,
                     default_model=default_model, params=params, overrides=overrides,
                     stats=stats)
    ticker = asyncio.create_task(_tick(progress, stats, gate, progress_interval)) \
        if progress is not None else None
    try:
        await engine.run(stream, state.done)
    finally:
        try:
            # On an abort or interrupt, lines held for ordering are finished work: keep them.
            buffer.flush_all()
        finally:
            writer.close()
            stats.finished = time.monotonic()
            stats.pauses = gate.pauses
            if ticker is not None:
                ticker.cancel()
            if progress is not None:
                progress(stats)
    return stats


async def _tick(progress: ProgressCallback, stats: BatchStats, gate: PauseGate,
                interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        stats.pauses = gate.pauses
        stats.paused_until = gate.until
        progress(stats)


# ---------------------------------------------------------------------------------- dry run


@dataclass
class DryRunReport:
    """What ``--dry-run`` found: line counts, the first converted native request (the body the
    backend would send), and ``(line number, message)`` for the first invalid lines."""

    lines: int = 0
    valid: int = 0
    first_request: dict[str, Any] | None = None
    first_line: int | None = None
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0


def _convert(llm: AnyLLM, params: Any) -> dict[str, Any]:
    """The backend's pure conversion (params -> native body); backends that report clamped
    values take ``report``."""
    return type(llm)._convert_completion_params(params, llm.report_unsupported)


async def dry_run(source: str | os.PathLike[str] | IO[bytes] | None, llm: AnyLLM, *,
                  model: str | None = None, default_model: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  overrides: Mapping[str, Any] | None = None, keep: int = 20) -> DryRunReport:
    """Validate every line as the run would (parse, merge, check the parameters against the
    provider, convert) without sending anything.

    Raises :class:`BatchInputError` for duplicate custom_ids or an unreadable input.
    """
    report = DryRunReport()
    stream, spool = open_input(source)
    owned = isinstance(source, (str, os.PathLike)) and os.fspath(source) != "-"
    copy = spool_file() if spool else None
    try:
        start = 0 if copy is not None else stream.tell()
        _scan(stream, set(), copy)
        if copy is not None:
            if owned:
                stream.close()
            stream, owned = copy, True
        stream.seek(start)
        for lineno, raw in iter_lines(stream):
            report.lines += 1
            try:
                line = parse_line(raw, lineno)
                chosen, messages, kwargs = _merge(line, model, default_model, params or {},
                                                  overrides or {})
                prepared = llm.prepare_params(chosen, messages, kwargs, stream=False)
                body = _convert(llm, prepared)
            except (LineError, AnyLLMError) as exc:
                report.error_count += 1
                if len(report.errors) < keep:
                    text = exc.reason if isinstance(exc, LineError) else str(exc)
                    report.errors.append((lineno, text))
                continue
            report.valid += 1
            if report.first_request is None:
                report.first_request = body
                report.first_line = lineno
    finally:
        if owned:
            stream.close()
    return report


def dumps_request(body: Mapping[str, Any]) -> str:
    """A native request body as indented JSON, for ``--dry-run``."""
    return json.dumps(body, indent=2, ensure_ascii=False, default=str)

