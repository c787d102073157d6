"""Batch files: request lines in, output lines out (the OpenAI Batch API file formats).

Source: OpenAI API reference, Batch ("The request input object": ``custom_id``, ``method``,
``url``, ``body``; "The request output object": ``id``, ``custom_id``, ``response`` with
``status_code``, ``request_id`` and ``body``, and ``error`` with ``code`` and ``message``).

Input lines take three forms (DESIGN.md "Batch files")::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
    {"custom_id": "r1", "messages": [...], "temperature": 0, ...}
    {"prompt": "..."}                       # custom_id defaults to "line-N"

Output lines are written whole, one ``os.write`` per ready run of lines, so a process killed at
any moment leaves at most one torn line at the end of the file, which :func:`load_resume` cuts
off. No I/O happens at import time; nothing here talks to a provider.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from anyllm_cli.errors import AnyLLMError

__all__ = [
    "BatchInputError",
    "LineError",
    "LineRequest",
    "OutputWriter",
    "ReorderBuffer",
    "ResumeState",
    "ScanResult",
    "error_line",
    "load_resume",
    "parse_line",
    "scan_input",
    "success_line",
]

CHAT_PATH = "/chat/completions"
# Keys of the OpenAI Batch request form; any of them marks a line as that form.
_REQUEST_FORM_KEYS = ("body", "url", "method")


class BatchInputError(AnyLLMError):
    """The batch as a whole cannot run: unreadable input, duplicate custom_ids, a bad output
    file (exit code 2). Problems with single lines never raise: they become error lines."""

    reason = "Invalid batch input"
    exit_code = 2


class LineError(Exception):
    """One input line that cannot be sent. ``code`` is a short machine-readable code
    (``invalid_json``, ``invalid_request``, ``missing_required_parameter``, ``invalid_url``,
    ``invalid_method``, ``invalid_custom_id``); the message carries the line number."""

    def __init__(self, lineno: int, custom_id: str, code: str, reason: str) -> None:
        self.lineno = lineno
        self.custom_id = custom_id
        self.code = code
        self.reason = reason
        super().__init__(f"line {lineno}: {reason}")


@dataclass(slots=True)
class LineRequest:
    """One parsed input line, ready to send. ``request`` holds the chat-completions body as
    the line gave it (``model``, ``messages`` and parameters; ``prompt`` already turned into a
    user message); ``size`` is the line's length in bytes (for the token estimate)."""

    lineno: int
    custom_id: str
    request: dict[str, Any]
    size: int


# --------------------------------------------------------------------------------- input


def _custom_id(obj: Any, lineno: int) -> str:
    """The line's custom_id (``line-N`` when absent); integers are taken as their text."""
    value = obj.get("custom_id") if isinstance(obj, dict) else None
    if value is None:
        return f"line-{lineno}"
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise LineError(lineno, f"line-{lineno}", "invalid_custom_id",
                    f"custom_id must be a non-empty string, got {json.dumps(value)[:60]}")


def custom_id_of(raw: bytes, lineno: int) -> str:
    """The custom_id a line will be written under, without validating the rest of it."""
    try:
        return _custom_id(json.loads(raw), lineno)
    except (ValueError, LineError):
        return f"line-{lineno}"


def parse_line(raw: bytes, lineno: int) -> LineRequest:
    """Parse one (non-blank) input line. Raises :class:`LineError` naming what is wrong."""
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise LineError(lineno, f"line-{lineno}", "invalid_json",
                        f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise LineError(lineno, f"line-{lineno}", "invalid_request",
                        f"expected a JSON object, got {type(obj).__name__}")
    cid = _custom_id(obj, lineno)
    if any(key in obj for key in _REQUEST_FORM_KEYS):
        method = obj.get("method", "POST")
        if not isinstance(method, str) or method.upper() != "POST":
            raise LineError(lineno, cid, "invalid_method",
                            f"method {method!r} is not supported: batch requests are POST")
        url = obj.get("url", "/v1/chat/completions")
        if not isinstance(url, str) or not url.rstrip("/").endswith(CHAT_PATH):
            raise LineError(lineno, cid, "invalid_url",
                            f"url {url!r} is not supported: anyllm batch runs "
                            "/v1/chat/completions requests")
        body = obj.get("body")
        if not isinstance(body, dict):
            raise LineError(lineno, cid, "invalid_request", "body must be a JSON object")
        request = dict(body)
    else:
        request = {k: v for k, v in obj.items() if k != "custom_id"}
    prompt = request.pop("prompt", None)
    if prompt is not None:
        if "messages" in request:
            raise LineError(lineno, cid, "invalid_request",
                            "give either prompt or messages, not both")
        if not isinstance(prompt, str):
            raise LineError(lineno, cid, "invalid_request", "prompt must be a string")
        request["messages"] = [{"role": "user", "content": prompt}]
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        what = "no messages" if messages is None else "messages must be a non-empty list"
        raise LineError(lineno, cid, "missing_required_parameter",
                        f'{what}: a line needs "messages": [...] or "prompt": "..."')
    # Each line is one whole (non-streamed) completion.
    request.pop("stream", None)
    request.pop("stream_options", None)
    return LineRequest(lineno, cid, request, len(raw))


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for every non-blank line; numbers count every physical line.

    Blank lines are not requests (a trailing empty line is common in JSONL files); they get no
    output line.
    """
    for lineno, raw in enumerate(stream, 1):
        line = raw.strip()
        if line:
            yield lineno, line


@dataclass
class ScanResult:
    """What one pass over the input found. ``lines``: non-blank lines; ``todo``: those whose
    custom_id is not already done; ``duplicates``: ``(custom_id, first line, repeated line)``."""

    lines: int = 0
    todo: int = 0
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)
    duplicate_count: int = 0


def scan_input(stream: IO[bytes], done: set[str] | frozenset[str] = frozenset(),
               copy_to: IO[bytes] | None = None, keep: int = 20) -> ScanResult:
    """One streaming pass: count lines, find repeated custom_ids (only ids are kept, not lines).

    ``copy_to`` receives every byte read (stdin is spooled so that it can be read again).
    At most ``keep`` duplicates are listed; ``duplicate_count`` counts them all.
    """
    first_seen: dict[str, int] = {}
    result = ScanResult()
    for lineno, raw in enumerate(stream, 1):
        if copy_to is not None:
            copy_to.write(raw)
        line = raw.strip()
        if not line:
            continue
        result.lines += 1
        cid = custom_id_of(line, lineno)
        first = first_seen.setdefault(cid, lineno)
        if first != lineno:
            result.duplicate_count += 1
            if len(result.duplicates) < keep:
                result.duplicates.append((cid, first, lineno))
        if cid not in done:
            result.todo += 1
    return result


def open_input(source: str | os.PathLike[str] | IO[bytes] | None
               ) -> tuple[IO[bytes], bool]:
    """Open the input for the first pass: ``(stream, must_spool)``. ``None`` or ``"-"`` is
    stdin, which is spooled to a temporary file during the scan; a path is simply reopened.

    Raises :class:`BatchInputError` when the file cannot be opened.
    """
    if source is None or (isinstance(source, str) and source == "-"):
        return sys.stdin.buffer, True
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), False
        except OSError as exc:
            raise BatchInputError(f"cannot read {os.fspath(source)}: {exc.strerror}") from None
    seekable = False
    with contextlib.suppress(AttributeError, ValueError):
        seekable = source.seekable()
    return source, not seekable


def spool_file() -> IO[bytes]:
    """A temporary file for stdin, removed when closed."""
    return tempfile.TemporaryFile(prefix="anyllm-batch-")


# --------------------------------------------------------------------------------- output


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def success_line(batch_id: str, custom_id: str, status: int, request_id: str,
                 completion_json: str) -> bytes:
    """A succeeded request's output line; ``completion_json`` is the ``chat.completion``."""
    return (f'{{"id":"{batch_id}","custom_id":{_dumps(custom_id)},"response":{{"status_code":'
            f'{status},"request_id":{_dumps(request_id)},"body":{completion_json}}},'
            f'"error":null}}\n').encode()


def error_line(batch_id: str, custom_id: str, code: str, message: str, *,
               status: int | None = None, request_id: str | None = None,
               body: dict[str, Any] | None = None) -> bytes:
    """A failed request's output line. With ``status`` (the provider answered with an error)
    ``response`` carries the status and the error ``body``; otherwise ``response`` is null."""
    response: dict[str, Any] | None = None
    if status is not None:
        response = {"status_code": status, "request_id": request_id or "",
                    "body": body if body is not None else {
                        "error": {"message": message, "type": code, "param": None,
                                  "code": code}}}
    line = {"id": batch_id, "custom_id": custom_id, "response": response,
            "error": {"code": code, "message": message}}
    return (_dumps(line) + "\n").encode()


class OutputWriter:
    """Writes whole lines to a file descriptor: each call is one ``os.write`` loop, so a line
    is never mixed with another and reaches the kernel at once (no user-space buffer to lose).

    For a terminal, lines go through ``text`` (``sys.stdout``) so that a live progress display
    can keep them above itself.
    """

    def __init__(self, fd: int, *, text: IO[str] | None = None, close: bool = False) -> None:
        self.fd = fd
        self.text = text
        self._close = close

    def write(self, data: bytes) -> None:
        if self.text is not None:
            self.text.write(data.decode())
            self.text.flush()
            return
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._close:
            os.close(self.fd)
            self._close = False


class ReorderBuffer:
    """Puts results back into input order: ``put(seq, line)`` writes every line that is now
    next in sequence and returns how many were written; ``ordered=False`` writes at once."""

    def __init__(self, writer: OutputWriter, *, ordered: bool) -> None:
        self.writer = writer
        self.ordered = ordered
        self.next_seq = 0
        self.held: dict[int, bytes] = {}

    def put(self, seq: int, data: bytes) -> int:
        if not self.ordered:
            self.writer.write(data)
            return 1
        if seq != self.next_seq:
            self.held[seq] = data
            return 0
        parts = [data]
        seq += 1
        held = self.held
        while seq in held:
            parts.append(held.pop(seq))
            seq += 1
        self.next_seq = seq
        self.writer.write(b"".join(parts))
        return len(parts)

    def flush_all(self) -> int:
        """Write every held line (out of order: on interrupt, a finished answer is worth more
        than the order; resume finds lines by custom_id)."""
        if not self.held:
            return 0
        parts = [self.held[k] for k in sorted(self.held)]
        self.held.clear()
        self.writer.write(b"".join(parts))
        return len(parts)


def open_output(path: str | os.PathLike[str] | None, *, append: bool) -> OutputWriter:
    """The writer for ``path`` (truncated unless ``append``), or stdout when ``path`` is None.

    Raises :class:`BatchInputError` when the file cannot be opened.
    """
    if path is None or os.fspath(path) == "-":
        sys.stdout.flush()
        text = sys.stdout if sys.stdout.isatty() else None
        return OutputWriter(sys.stdout.fileno(), text=text)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise BatchInputError(f"cannot write {os.fspath(path)}: {exc.strerror}") from None
    return OutputWriter(fd, close=True)


@dataclass
class ResumeState:
    """What an earlier run left in the output file: the custom_ids written, how many of them
    succeeded or failed, the bytes of a torn last line cut off, and lines that were not
    output lines (ignored)."""

    done: set[str] = field(default_factory=set)
    succeeded: int = 0
    failed: int = 0
    cut_bytes: int = 0
    bad_lines: list[int] = field(default_factory=list)


def load_resume(path: str | os.PathLike[str]) -> ResumeState:
    """Read an earlier run's output file and cut a torn last line off it (a line without its
    newline: the process died while writing it). A missing file is an empty state.

    Raises :class:`BatchInputError` when the file cannot be read or truncated.
    """
    state = ResumeState()
    p = Path(path)
    try:
        f = open(p, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise BatchInputError(f"cannot resume {p}: {exc.strerror}") from None
    with f:
        good_end = 0
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                state.cut_bytes = len(raw)
                break
            good_end += len(raw)
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                cid = obj["custom_id"]
            except (ValueError, KeyError, TypeError):
                state.bad_lines.append(lineno)
                continue
            if not isinstance(cid, str):
                state.bad_lines.append(lineno)
                continue
            state.done.add(cid)
            if obj.get("error") is None:
                state.succeeded += 1
            else:
                state.failed += 1
        if state.cut_bytes:
            try:
                f.truncate(good_end)
            except OSError as exc:
                raise BatchInputError(f"cannot cut the torn last line of {p}: "
                                      f"{exc.strerror}") from None
    return state
