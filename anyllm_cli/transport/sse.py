"""Incremental Server-Sent Events decoder: feed bytes, get events. No I/O.

Follows the WHATWG event-stream grammar (html.spec.whatwg.org, "Parsing an event stream") as real
providers use it (shared/reference/wire-formats.md §0.1): events split across reads anywhere,
even between ``\\r`` and ``\\n``; CR, LF and CRLF line ends; comment lines (``: OPENROUTER
PROCESSING``); multi-line ``data`` joined by ``\\n``; only the one space after ``field:`` removed,
so Anthropic's trailing spaces stay in the data (``json.loads`` tolerates them).
"""

from __future__ import annotations

from dataclasses import dataclass

from anyllm_cli.errors import StreamError

DEFAULT_MAX_BUFFER = 4 * 1024 * 1024
"""Bytes a single unfinished line or event may hold before the stream is refused (4 MiB)."""


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event. ``event`` is ``"message"`` when the stream names none."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns the bytes of a ``text/event-stream`` body into :class:`ServerSentEvent` objects.

    ``feed(bytes) -> list[ServerSentEvent]`` as bytes arrive, then ``close() -> list`` at the end
    of the body (an event with no blank line after it is dispatched there, as browsers do not,
    but every provider's last event is complete JSON and losing it would lose the finish reason).

    Raises :class:`StreamError` when an unfinished line or event grows past ``max_buffer`` bytes.
    """

    __slots__ = ("_data", "_event", "_id", "_pending", "_pending_size", "_retry", "max_buffer")

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.max_buffer = max_buffer
        self._pending = b""  # an unfinished line (or a line ending in a lone CR: maybe CRLF)
        self._data: list[str] = []
        self._pending_size = 0
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._pending:
            chunk = self._pending + chunk
            self._pending = b""
        lines = chunk.splitlines(keepends=True)
        if not lines:
            return []
        last = lines[-1]
        if last[-1:] != b"\n":
            # Unfinished line, or a CR that may be the first half of a CRLF split across reads.
            self._pending = lines.pop()
            if len(self._pending) > self.max_buffer:
                raise StreamError(f"stream line longer than {self.max_buffer} bytes")
        events: list[ServerSentEvent] = []
        for raw in lines:
            self._line(raw.rstrip(b"\r\n"), events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """Flush what is left at end of body."""
        events: list[ServerSentEvent] = []
        if self._pending:
            line, self._pending = self._pending.rstrip(b"\r\n"), b""
            self._line(line, events)
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[ServerSentEvent]) -> None:
        if not line:
            if self._data or self._event:
                # An event with no data (e.g. ``event: ping`` alone) dispatches with empty data.
                events.append(
                    ServerSentEvent("\n".join(self._data), self._event or "message", self._id,
                                    self._retry)
                )
            self._data = []
            self._pending_size = 0
            self._event = ""
            self._retry = None
            return
        if line[0] == 0x3A:  # ":" comment line
            return
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        text = value.decode("utf-8", errors="replace")
        if field == b"data":
            self._pending_size += len(value)
            if self._pending_size > self.max_buffer:
                raise StreamError(f"stream event larger than {self.max_buffer} bytes")
            self._data.append(text)
        elif field == b"event":
            self._event = text
        elif field == b"id":
            if "\0" not in text:
                self._id = text
        elif field == b"retry" and text.isdigit():
            self._retry = int(text)
        # Unknown fields are ignored, as the spec says.
