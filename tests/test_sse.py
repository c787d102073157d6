"""The SSE and NDJSON decoders as pure functions: every case of wire-formats.md §0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyllm_cli.errors import StreamError
from anyllm_cli.transport.ndjson import NDJSONDecoder
from anyllm_cli.transport.sse import ServerSentEvent, SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures"
OPENAI_STREAMS = sorted(
    (FIXTURES / "openai__openai-python/.inline-snapshot/external").glob("*.bin"))
ANTHROPIC_STREAMS = sorted(
    (FIXTURES / "anthropics__anthropic-sdk-python/tests/lib/streaming/fixtures").glob("*.txt"))


def decode(pieces: list[bytes]) -> list[ServerSentEvent]:
    d = SSEDecoder()
    out: list[ServerSentEvent] = []
    for p in pieces:
        out.extend(d.feed(p))
    out.extend(d.close())
    return out


def test_basic_events_and_done() -> None:
    events = decode([b'data: {"a":1}\n\ndata: [DONE]\n\n'])
    assert [e.data for e in events] == ['{"a":1}', "[DONE]"]
    assert all(e.event == "message" for e in events)


def test_named_events_comments_and_trailing_spaces() -> None:
    raw = (b": OPENROUTER PROCESSING\n\n"
           b"event: message_start\ndata: {\"type\": \"message_start\"}   \n\n"
           b":keepalive\n"
           b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
    events = decode([raw])
    assert [e.event for e in events] == ["message_start", "ping"]
    # Trailing spaces stay in the data (only one space after the colon is removed) ...
    assert events[0].data == '{"type": "message_start"}   '
    # ... and JSON still parses.
    assert json.loads(events[0].data) == {"type": "message_start"}


def test_crlf_and_cr_line_endings() -> None:
    for sep in (b"\r\n", b"\r", b"\n"):
        raw = b"data: one" + sep + b"data: two" + sep + sep + b"data: three" + sep + sep
        assert [e.data for e in decode([raw])] == ["one\ntwo", "three"], sep


def test_crlf_split_between_cr_and_lf() -> None:
    # A CR at the end of one read and its LF at the start of the next is ONE line end, so the
    # event must not be dispatched twice or with an extra empty line.
    events = decode([b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n"])
    assert [e.data for e in events] == ["x", "y"]


def test_multiline_data_and_id_retry() -> None:
    events = decode([b"id: 7\nretry: 1500\ndata: a\ndata:b\ndata:  c\n\n"])
    assert events == [ServerSentEvent(data="a\nb\n c", event="message", id="7", retry=1500)]


def test_last_event_without_blank_line_is_flushed_on_close() -> None:
    assert [e.data for e in decode([b"data: tail"])] == ["tail"]


def test_buffer_bound() -> None:
    d = SSEDecoder(max_buffer=100)
    with pytest.raises(StreamError, match="longer than 100 bytes"):
        d.feed(b"data: " + b"x" * 200)
    d = SSEDecoder(max_buffer=100)
    with pytest.raises(StreamError, match="larger than 100 bytes"):
        for _ in range(30):
            d.feed(b"data: 0123456789\n")


@pytest.mark.parametrize("path", OPENAI_STREAMS + ANTHROPIC_STREAMS, ids=lambda p: p.name[:12])
def test_recorded_stream_byte_by_byte_equals_whole(path: Path) -> None:
    raw = path.read_bytes()
    whole = decode([raw])
    assert whole, "a recording decodes to events"
    assert decode([raw[i:i + 1] for i in range(len(raw))]) == whole


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_split_of_a_recording_decodes_the_same(data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(OPENAI_STREAMS + ANTHROPIC_STREAMS)).read_bytes()
    raw = raw.replace(b"\n", data.draw(st.sampled_from([b"\n", b"\r\n"])))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert decode(pieces) == decode([raw])


@pytest.mark.parametrize("decoder", [SSEDecoder, NDJSONDecoder])
@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_never_raise_anything_but_stream_error(
        decoder: type[SSEDecoder | NDJSONDecoder], pieces: list[bytes]) -> None:
    d = decoder(max_buffer=256)
    try:
        for p in pieces:
            d.feed(p)
        d.close()
    except StreamError:
        pass


def test_ndjson_split_lines_and_bad_line() -> None:
    d = NDJSONDecoder()
    assert d.feed(b'{"a": 1}\n{"b"') == [{"a": 1}]
    assert d.feed(b': 2}\n\n') == [{"b": 2}]
    assert d.close() == []
    with pytest.raises(StreamError, match="malformed stream line"):
        NDJSONDecoder().feed(b"not json\n")


ndjson_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(st.lists(ndjson_values, min_size=1, max_size=8), st.data())
def test_ndjson_any_split_decodes_the_same(values: list[object], data: st.DataObject) -> None:
    raw = b"".join(json.dumps(v).encode() + b"\n" for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=20)))
    d = NDJSONDecoder()
    out: list[object] = []
    for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        out.extend(d.feed(raw[a:b]))
    out.extend(d.close())
    assert out == values
