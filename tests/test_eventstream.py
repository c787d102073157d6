"""The AWS event-stream decoder on frames built from recorded Bedrock events.

No raw binary Bedrock capture is in tests/fixtures (the pydantic-ai cassettes were not copied),
so the frames are built from vercel/ai's decoded ConverseStream recordings with headers as
Bedrock sends them. botocore's own decoder (``botocore.eventstream.EventStreamBuffer``) is the
independent reference: what it reads from our frames, ours must read too.
"""

from __future__ import annotations

import itertools
import json
import struct
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from anyllm_cli.errors import StreamError
from anyllm_cli.transport.eventstream import (
    EventStreamDecoder,
    EventStreamMessage,
    encode_message,
)

BEDROCK = (Path(__file__).resolve().parent / "fixtures" / "vercel__ai" / "packages"
           / "amazon-bedrock" / "src" / "__fixtures__")
RECORDINGS = sorted(BEDROCK.glob("*.chunks.txt"))


def frames_of(path: Path) -> list[tuple[dict[str, object], bytes]]:
    """(headers, payload) per recorded event, framed as Bedrock frames ConverseStream events."""
    out: list[tuple[dict[str, object], bytes]] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        ((kind, body),) = json.loads(line).items()
        headers: dict[str, object] = {":event-type": kind, ":content-type": "application/json",
                                      ":message-type": "event"}
        out.append((headers, json.dumps(body, separators=(",", ":")).encode()))
    return out


def stream_of(path: Path) -> bytes:
    return b"".join(encode_message(h, p) for h, p in frames_of(path))  # type: ignore[arg-type]


def decode_all(data: bytes, pieces: list[int] | None = None) -> list[EventStreamMessage]:
    decoder = EventStreamDecoder()
    out: list[EventStreamMessage] = []
    cuts = [0, *(pieces or []), len(data)]
    for a, b in itertools.pairwise(cuts):
        out.extend(decoder.feed(data[a:b]))
    decoder.close()
    return out


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_recorded_events_round_trip_and_botocore_agrees(path: Path) -> None:
    data = stream_of(path)
    ours = decode_all(data)
    expected = frames_of(path)
    assert [(m.headers, m.payload) for m in ours] == expected
    # The reference decoder reads the same frames the same way.
    ref = EventStreamBuffer()
    ref.add_data(data)
    theirs = list(ref)
    assert [(m.headers, m.payload) for m in theirs] == expected
    assert ours[0].event_type == json.loads(path.read_text().splitlines()[0]).popitem()[0]
    assert all(m.message_type == "event" for m in ours)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_split_into_reads_decodes_the_same(data: st.DataObject) -> None:
    raw = stream_of(BEDROCK / "amazon-bedrock-reasoning.chunks.txt")
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40))))
    whole = decode_all(raw)
    assert decode_all(raw, cuts) == whole
    assert len(whole) == len(frames_of(BEDROCK / "amazon-bedrock-reasoning.chunks.txt"))


def test_byte_at_a_time() -> None:
    raw = stream_of(BEDROCK / "amazon-bedrock-tool-call.1.chunks.txt")
    assert decode_all(raw, list(range(1, len(raw)))) == decode_all(raw)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_any_flipped_byte_raises_stream_error(data: st.DataObject) -> None:
    raw = bytearray(stream_of(BEDROCK / "amazon-bedrock-text.chunks.txt"))
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[pos] ^= 1 << bit
    decoder = EventStreamDecoder()
    with pytest.raises(StreamError, match="malformed event stream"):
        decoder.feed(bytes(raw))
        decoder.close()


def test_prelude_crc_checked_before_the_body_arrives() -> None:
    frame = bytearray(encode_message({":event-type": "messageStart"}, b'{"role":"assistant"}'))
    frame[9] ^= 0xFF  # prelude CRC
    with pytest.raises(StreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame[:12]))


def test_message_crc_mismatch() -> None:
    frame = bytearray(encode_message({":event-type": "messageStart"}, b'{"role":"assistant"}'))
    frame[-6] ^= 0x01  # a payload byte: the prelude stays valid
    with pytest.raises(StreamError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_truncated_stream_raises_on_close() -> None:
    frame = encode_message({":event-type": "messageStart"}, b'{"role":"assistant"}')
    decoder = EventStreamDecoder()
    assert decoder.feed(frame + frame[:20]) != []
    with pytest.raises(StreamError, match="ended inside a message"):
        decoder.close()


def test_size_bound() -> None:
    big = encode_message({}, b"x" * 2000)
    with pytest.raises(StreamError, match="outside"):
        EventStreamDecoder(max_message_length=1024).feed(big[:12])
    # A prelude announcing 2 GiB is refused at once, not buffered.
    prelude = struct.pack(">II", 2**31, 0)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(StreamError, match="outside"):
        EventStreamDecoder().feed(prelude)


def test_headers_longer_than_the_message_are_refused() -> None:
    prelude = struct.pack(">II", 16, 100)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude
    body += struct.pack(">I", zlib.crc32(body))
    with pytest.raises(StreamError, match="headers length"):
        EventStreamDecoder().feed(body)


def _raw_frame(header_bytes: bytes, payload: bytes = b"") -> bytes:
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _h(name: str, kind: int, value: bytes) -> bytes:
    return bytes([len(name)]) + name.encode() + bytes([kind]) + value


def test_every_header_type() -> None:
    """Header value encodings per the AWS spec, written by hand (not by our encoder)."""
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = b"".join([
        _h("t", 0, b""), _h("f", 1, b""),
        _h("b", 2, struct.pack(">b", -5)), _h("s", 3, struct.pack(">h", -300)),
        _h("i", 4, struct.pack(">i", 70000)), _h("l", 5, struct.pack(">q", 2**40)),
        _h("ba", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
        _h(":event-type", 7, struct.pack(">H", 12) + b"messageStart"),
        _h("ts", 8, struct.pack(">q", 1_700_000_000_123)),
        _h("u", 9, ident.bytes),
    ])
    (msg,) = EventStreamDecoder().feed(_raw_frame(headers, b"{}"))
    assert msg.headers == {
        "t": True, "f": False, "b": -5, "s": -300, "i": 70000, "l": 2**40,
        "ba": b"\x00\x01\x02", ":event-type": "messageStart",
        "ts": datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC), "u": ident,
    }
    assert msg.payload == b"{}"
    # botocore reads the same values (its timestamp is milliseconds, its UUID bytes).
    ref = EventStreamBuffer()
    ref.add_data(_raw_frame(headers, b"{}"))
    (theirs,) = list(ref)
    assert theirs.headers["ts"] == 1_700_000_000_123 and theirs.headers["u"] == ident.bytes
    assert {k: v for k, v in theirs.headers.items() if k not in ("ts", "u")} == {
        k: v for k, v in msg.headers.items() if k not in ("ts", "u")}


def test_unknown_header_type_and_overrun() -> None:
    with pytest.raises(StreamError, match="unknown header type 12"):
        EventStreamDecoder().feed(_raw_frame(_h("x", 12, b"")))
    with pytest.raises(StreamError, match="bad header"):
        EventStreamDecoder().feed(_raw_frame(_h("x", 7, struct.pack(">H", 50) + b"short")))


def test_exception_message_headers() -> None:
    frame = encode_message({":message-type": "exception", ":exception-type": "throttlingException",
                            ":content-type": "application/json"}, b'{"message":"slow down"}')
    (msg,) = EventStreamDecoder().feed(frame)
    assert (msg.message_type, msg.exception_type, msg.event_type) == (
        "exception", "throttlingException", None)
