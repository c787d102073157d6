"""The AWS binary event-stream format (``application/vnd.amazon.eventstream``), decoded.

Bedrock's ConverseStream answers in this framing (wire-formats.md §7). Each message is::

    [total length u32][headers length u32][prelude CRC32 u32][headers][payload][message CRC32 u32]

all integers big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything
before it; CRC32 is zlib's (IEEE 802.3). A header is ``[name length u8][name utf-8][type u8]
[value]``; value encodings by type: 0 true / 1 false (no bytes), 2 int8, 3 int16, 4 int32,
5 int64, 6 bytes and 7 string (u16 length + bytes), 8 timestamp (int64 milliseconds since the
epoch), 9 UUID (16 bytes).

Source: AWS "Event stream encoding" (Transcribe / S3 Select developer guides); botocore
``botocore/eventstream.py`` (same limits: headers ≤ 128 KiB, payload ≤ 24 MiB).

:class:`EventStreamDecoder` is pure: feed it bytes as they arrive, get whole messages back; no
I/O. :func:`encode_message` builds a frame (for test servers and benchmarks).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anyllm_cli.errors import StreamError

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "EventStreamDecoder",
    "EventStreamMessage",
    "HeaderValue",
    "encode_message",
]

PRELUDE_LENGTH = 12
"""total length + headers length + prelude CRC, bytes."""
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str | datetime | uuid.UUID
"""A decoded header value: type 0/1 bool, 2–5 int, 6 bytes, 7 str, 8 datetime (UTC), 9 UUID."""

_INT_TYPES: dict[int, struct.Struct] = {
    2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: struct.Struct(">q"),
}
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">III")


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    """One decoded message: its headers by name and its raw payload bytes."""

    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str | None:
        """A string header's value (``:event-type``, ``:message-type``, ...), else None."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> str:
        """``event``, ``exception`` or ``error`` (``event`` when the header is absent)."""
        return self.header(":message-type") or "event"

    @property
    def event_type(self) -> str | None:
        return self.header(":event-type")

    @property
    def exception_type(self) -> str | None:
        return self.header(":exception-type")


class EventStreamDecoder:
    """Incremental decoder: :meth:`feed` bytes in any split, get the completed messages.

    Raises :class:`StreamError` for a bad CRC, a length outside the limits, a malformed header,
    and (from :meth:`close`) bytes left over from an unfinished message. After an error the
    decoder is unusable: the framing is lost.
    """

    def __init__(self, *, max_message_length: int = PRELUDE_LENGTH + MAX_HEADERS_LENGTH
                 + MAX_PAYLOAD_LENGTH + 4, provider: str | None = None) -> None:
        self.max_message_length = max_message_length
        self.provider = provider
        self._buffer = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        """Add ``data``; return every message completed by it, in order."""
        if self._failed:
            raise self._error("the decoder already failed")
        self._buffer += data
        out: list[EventStreamMessage] = []
        while len(self._buffer) >= PRELUDE_LENGTH:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(self._buffer, 0)
            self._check_prelude(total, headers_len, prelude_crc)
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            out.append(self._decode_frame(frame, headers_len))
        return out

    def close(self) -> None:
        """The body ended: raise :class:`StreamError` if part of a message is pending."""
        if self._buffer and not self._failed:
            pending = len(self._buffer)
            self._failed = True
            raise self._error(f"the stream ended inside a message ({pending} bytes pending)")

    # --- internals -----------------------------------------------------------------------------

    def _error(self, why: str) -> StreamError:
        self._failed = True
        return StreamError(f"Stream failed: malformed event stream: {why}",
                           provider=self.provider)

    def _check_prelude(self, total: int, headers_len: int, prelude_crc: int) -> None:
        if zlib.crc32(self._buffer[:8]) != prelude_crc:
            raise self._error("prelude CRC mismatch")
        if total < MIN_MESSAGE_LENGTH or total > self.max_message_length:
            raise self._error(f"message length {total} outside {MIN_MESSAGE_LENGTH}.."
                              f"{self.max_message_length} bytes")
        if headers_len > MAX_HEADERS_LENGTH or headers_len > total - MIN_MESSAGE_LENGTH:
            raise self._error(f"headers length {headers_len} does not fit the message")
        if total - MIN_MESSAGE_LENGTH - headers_len > MAX_PAYLOAD_LENGTH:
            raise self._error("payload longer than 24 MiB")

    def _decode_frame(self, frame: bytes, headers_len: int) -> EventStreamMessage:
        (message_crc,) = _U32.unpack_from(frame, len(frame) - 4)
        if zlib.crc32(frame[:-4]) != message_crc:
            raise self._error("message CRC mismatch")
        headers_end = PRELUDE_LENGTH + headers_len
        headers = self._decode_headers(frame[PRELUDE_LENGTH:headers_end])
        return EventStreamMessage(headers=headers, payload=frame[headers_end:-4])

    def _decode_headers(self, data: bytes) -> dict[str, HeaderValue]:
        headers: dict[str, HeaderValue] = {}
        pos = 0
        try:
            while pos < len(data):
                name_len = data[pos]
                name = data[pos + 1:pos + 1 + name_len].decode("utf-8")
                pos += 1 + name_len
                kind = data[pos]
                pos += 1
                value: HeaderValue
                if kind in (0, 1):
                    value = kind == 0
                elif kind in _INT_TYPES:
                    fmt = _INT_TYPES[kind]
                    (value,) = fmt.unpack_from(data, pos)
                    pos += fmt.size
                elif kind in (6, 7):
                    (length,) = _U16.unpack_from(data, pos)
                    raw = data[pos + 2:pos + 2 + length]
                    if len(raw) != length:
                        raise ValueError("header value runs past the headers")
                    value = raw.decode("utf-8") if kind == 7 else raw
                    pos += 2 + length
                elif kind == 8:
                    (millis,) = _INT_TYPES[5].unpack_from(data, pos)
                    value = datetime.fromtimestamp(millis / 1000, tz=UTC)
                    pos += 8
                elif kind == 9:
                    raw = data[pos:pos + 16]
                    if len(raw) != 16:
                        raise ValueError("UUID header runs past the headers")
                    value = uuid.UUID(bytes=raw)
                    pos += 16
                else:
                    raise ValueError(f"unknown header type {kind}")
                if pos > len(data):
                    raise ValueError("header value runs past the headers")
                headers[name] = value
        except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
            raise self._error(f"bad header ({exc})") from None
        return headers


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw_name = name.encode("utf-8")
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + bytes([5]) + _INT_TYPES[5].pack(value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return head + bytes([7]) + _U16.pack(len(data)) + data
    if isinstance(value, bytes):
        return head + bytes([6]) + _U16.pack(len(value)) + value
    if isinstance(value, datetime):
        return head + bytes([8]) + _INT_TYPES[5].pack(int(value.timestamp() * 1000))
    return head + bytes([9]) + value.bytes


def encode_message(headers: Mapping[str, HeaderValue], payload: bytes) -> bytes:
    """One CRC-correct frame. Ints are written as int64 (type 5), str as type 7."""
    header_bytes = b"".join(_encode_header(k, v) for k, v in headers.items())
    total = PRELUDE_LENGTH + len(header_bytes) + len(payload) + 4
    prelude = _U32.pack(total) + _U32.pack(len(header_bytes))
    prelude += _U32.pack(zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + _U32.pack(zlib.crc32(body))
