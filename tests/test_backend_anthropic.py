"""The ``anthropic`` backend on recorded Anthropic traffic.

Recordings (tests/fixtures, see SOURCES.md): the anthropic-sdk-python stream fixtures
(``*.txt``, fable-fallback ``*.sse``) and ``__inline_snapshot__`` request/response captures, the
simonw/llm-anthropic VCR cassettes (real request bodies and SSE replies: text, thinking, tools,
prefill + stop_sequences, schema via output_config, images, web search), and vercel/ai's
non-stream Anthropic ``Message`` JSON.

Expected values are read from the recordings by the small independent parsers below, never from
the code under test. Conversions are checked as pure functions; then the real HTTP path (loopback
replay server) and ``anyllm chat`` as a process.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.anthropic import AnthropicBackend
from anyllm_cli.backends.anthropic_convert import DEFAULT_MAX_TOKENS, StreamConverter
from anyllm_cli.catalog import get_provider
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    AuthenticationError,
    ContextLengthExceededError,
    InvalidParameterError,
    ProviderError,
    RateLimitError,
    UnsupportedParameterError,
)
from anyllm_cli.transport.sse import SSEDecoder
from anyllm_cli.types import ChatCompletionChunk, CompletionParams
from tests.conftest import SECRET
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, Response, json_response, sse_response

FIXTURES = Path(__file__).parent / "fixtures"
SDK = FIXTURES / "anthropics__anthropic-sdk-python/tests"
CASSETTES = FIXTURES / "simonw__llm-anthropic/tests/cassettes/test_anthropic"
VERCEL = FIXTURES / "vercel__ai/packages/anthropic/src/__fixtures__"
SNAPSHOTS = SDK / "lib/_parse/__inline_snapshot__"

# wire-formats.md §0.2: Anthropic stop_reason -> OpenAI finish_reason.
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
          "max_tokens": "length", "model_context_window_exceeded": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}


# --- reading the recordings (independent of the code under test) ----------------------------


@dataclass
class Exchange:
    """One recorded request to ``/v1/messages`` and its reply."""

    name: str
    request: dict[str, Any]
    headers: dict[str, str]
    status: int
    body: str  # the SSE text, or the JSON text of a non-stream reply


def _cassette(path: Path) -> list[Exchange]:
    data = yaml.safe_load(path.read_text())
    out = []
    for n, item in enumerate(data["interactions"]):
        req, resp = item["request"], item["response"]
        if not req["uri"].endswith("/v1/messages"):
            continue  # test_url_prompt also records the image download
        raw = resp["body"]["string"]
        headers = {k.lower(): v for k, v in resp["headers"].items()}
        if isinstance(raw, bytes):
            if "gzip" in str(headers.get("content-encoding")):
                raw = gzip.decompress(raw)
            raw = raw.decode()
        out.append(Exchange(f"{path.stem}.{n}", json.loads(req["body"]),
                            {k.lower(): v[0] for k, v in req["headers"].items()},
                            resp["status"]["code"], raw))
    return out


def _snapshot(path: Path) -> list[Exchange]:
    out = []
    for n, item in enumerate(json.loads(path.read_text())):
        body = item["response"]["body"]
        out.append(Exchange(f"{path.stem[:8]}.{n}", item["request"]["body"],
                            item["request"]["headers"], item["response"]["status_code"],
                            body if isinstance(body, str) else json.dumps(body)))
    return out


CASSETTE_EXCHANGES = [x for p in sorted(CASSETTES.glob("*.yaml")) for x in _cassette(p)]
SNAPSHOT_EXCHANGES = [x for p in sorted(SNAPSHOTS.glob("*/*/*.json")) for x in _snapshot(p)]
RECORDED_STREAMS: dict[str, str] = {
    **{p.name: p.read_text() for p in sorted((SDK / "lib/streaming/fixtures").glob("*.txt"))},
    **{p.name: p.read_text() for p in sorted((SDK / "fixtures/fable-fallback").glob("*.sse"))},
    **{x.name: x.body for x in CASSETTE_EXCHANGES},
    **{x.name: x.body for x in SNAPSHOT_EXCHANGES if x.status == 200
       and x.body.startswith("event:")},
    # vercel/ai keeps the decoded payloads one per line: framed again as Anthropic sends them.
    **{p.name: "".join(f"event: {json.loads(line)['type']}\ndata: {line}\n\n"
                       for line in p.read_text().splitlines() if line.strip())
       for p in sorted(VERCEL.glob("*.chunks.txt"))},
}
NON_STREAM_MESSAGES: dict[str, dict[str, Any]] = {
    **{x.name: json.loads(x.body) for x in SNAPSHOT_EXCHANGES if x.status == 200
       and not x.body.startswith("event:")},
    **{p.name: json.loads(p.read_text()) for p in sorted(VERCEL.glob("*.json"))},
}


def stream_events(text: str) -> list[dict[str, Any]]:
    """The recording's event payloads (``data:`` lines), parsed with json alone."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def expected_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A plain reading of an Anthropic stream: what the answer must contain."""
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    stop = None
    stop_details = None
    for e in events:
        if e["type"] == "message_start":
            usage.update(e["message"]["usage"])
        elif e["type"] == "content_block_start":
            blocks.setdefault(e["index"], {**e["content_block"], "parts": []})
        elif e["type"] == "content_block_delta":
            d = e["delta"]
            part = d.get("text") or d.get("thinking") or d.get("partial_json") or ""
            blocks[e["index"]]["parts"].append((d["type"], part, d.get("signature", "")))
        elif e["type"] == "message_delta":
            usage.update({k: v for k, v in e["usage"].items() if v is not None})
            stop = e["delta"]["stop_reason"]
            stop_details = e["delta"].get("stop_details")
    ordered = [blocks[i] for i in sorted(blocks)]
    text = "".join(p for b in ordered if b["type"] == "text" for t, p, _ in b["parts"])
    thinking = [{"type": "thinking", "thinking": "".join(p for _, p, _ in b["parts"]),
                 "signature": "".join(s for _, _, s in b["parts"])}
                for b in ordered if b["type"] == "thinking"]
    tools = [(b["id"], b["name"], "".join(p for _, p, _ in b["parts"]))
             for b in ordered if b["type"] == "tool_use"]
    return {"text": text, "thinking": thinking, "tools": tools, "stop": stop,
            "stop_details": stop_details, "usage": usage}


def openai_usage(usage: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) as OpenAI counts them: every input token, cached or not."""
    prompt = usage["input_tokens"] + usage.get("cache_creation_input_tokens", 0) + \
        usage.get("cache_read_input_tokens", 0)
    return prompt, usage["output_tokens"]


def convert_stream(text: str, split: int | None = None) -> list[ChatCompletionChunk]:
    """Decode the SSE bytes (optionally fed ``split`` bytes at a time) and convert each event."""
    raw = text.encode()
    pieces = [raw] if split is None else [raw[i:i + split] for i in range(0, len(raw), split)]
    decoder = SSEDecoder()
    state = StreamConverter(provider="anthropic", created=1700000000)
    chunks: list[ChatCompletionChunk] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            chunks += AnthropicBackend._convert_completion_chunk_response(event.data, state)
    for event in decoder.close():
        chunks += AnthropicBackend._convert_completion_chunk_response(event.data, state)
    return chunks + state.close()


def assert_matches(result: dict[str, Any], expected: dict[str, Any]) -> None:
    """A converted completion (dict) holds exactly what the recording holds."""
    assert len(result["choices"]) == 1
    choice = result["choices"][0]
    msg = choice["message"]
    assert (msg["content"] or "") == expected["text"]
    assert (msg.get("reasoning") or "") == "".join(t["thinking"] for t in expected["thinking"])
    calls = [(c["id"], c["function"]["name"], c["function"]["arguments"])
             for c in msg.get("tool_calls") or []]
    assert len(calls) == len(expected["tools"])
    for (cid, name, args), (eid, ename, eargs) in zip(calls, expected["tools"], strict=True):
        assert (cid, name) == (eid, ename)
        # A call without arguments streams only "" (wire-formats.md §2: empty -> {}).
        assert args == (eargs or "{}")
    assert choice["finish_reason"] == FINISH[expected["stop"]]
    prompt, completion = openai_usage(expected["usage"])
    assert (result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]) == \
        (prompt, completion)
    assert result["usage"]["total_tokens"] == prompt + completion


# --- stream conversion (pure) ----------------------------------------------------------------


def test_the_recordings_cover_every_case() -> None:
    """Text, thinking (+signature), tool calls (with and without arguments, several at once),
    a cut tool call (max_tokens), refusal, stop_sequence, schema output, server tools."""
    seen = {e["delta"]["type"] for t in RECORDED_STREAMS.values() for e in stream_events(t)
            if e["type"] == "content_block_delta"}
    assert {"text_delta", "thinking_delta", "signature_delta", "input_json_delta",
            "citations_delta"} <= seen
    stops = {expected_from_events(stream_events(t))["stop"] for t in RECORDED_STREAMS.values()}
    assert {"end_turn", "tool_use", "max_tokens", "refusal", "stop_sequence"} <= stops
    assert len(RECORDED_STREAMS) >= 45
    assert len(NON_STREAM_MESSAGES) >= 10


@pytest.mark.parametrize("name", sorted(RECORDED_STREAMS))
def test_recorded_stream_converts(name: str) -> None:
    """Every chunk validates as an OpenAI chunk; the reassembled completion validates and holds
    the recording's text, reasoning, tool calls, finish reason and usage; each thinking block
    comes back whole with its signature."""
    text = RECORDED_STREAMS[name]
    expected = expected_from_events(stream_events(text))
    chunks = convert_stream(text)
    acc = ChunkAccumulator()
    thinking_blocks = []
    for chunk in chunks:
        obj = chunk.to_dict()
        validate_chat_completion_chunk(obj)
        for c in obj["choices"]:
            thinking_blocks += c["delta"].get("thinking_blocks", [])
            assert "thinking_blocks" not in c["delta"] or not c["delta"].get("content")
        acc.add(chunk)
    result = acc.result().to_dict()
    validate_chat_completion(result)
    assert_matches(result, expected)
    assert thinking_blocks == expected["thinking"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # usage comes last
    assert sum(1 for c in chunks for ch in c.choices if ch.finish_reason) == 1


def test_tool_call_fragments_carry_index_id_and_name_first() -> None:
    """OpenAI's streaming shape: the first fragment of each call has its index, id, type and
    name; later fragments only arguments, with the same index."""
    text = RECORDED_STREAMS["test_tools.0"]  # two calls in one turn
    fragments = [tc for c in convert_stream(text) for ch in c.choices
                 for tc in ch.delta.tool_calls or []]
    firsts = {}
    for f in fragments:
        if f.index not in firsts:
            firsts[f.index] = f
            assert f.id and f.type == "function" and f.function and f.function.name
        else:
            assert f.id is None and f.function and f.function.name is None
    assert sorted(firsts) == [0, 1]
    recorded_ids = [b[0] for b in expected_from_events(stream_events(text))["tools"]]
    assert [firsts[i].id for i in (0, 1)] == recorded_ids


@pytest.mark.parametrize("split", [1, 7, 64])
def test_stream_split_anywhere_converts_the_same(split: int) -> None:
    text = RECORDED_STREAMS["tool_use_response.txt"]
    whole = [c.to_dict() for c in convert_stream(text)]
    assert [c.to_dict() for c in convert_stream(text, split)] == whole


def test_refusal_explanation_is_the_refusal() -> None:
    """stop_reason refusal -> content_filter, and stop_details.explanation becomes ``refusal``
    (the only text the user gets)."""
    text = RECORDED_STREAMS["refusal_response.txt"]
    details = expected_from_events(stream_events(text))["stop_details"]
    acc = ChunkAccumulator()
    for chunk in convert_stream(text):
        acc.add(chunk)
    msg = acc.result().choices[0]
    assert msg.finish_reason == "content_filter"
    assert msg.message.refusal == details["explanation"]


@pytest.mark.parametrize("kind,status,cls", [
    ("overloaded_error", 529, ProviderError),
    ("api_error", 500, ProviderError),
    ("rate_limit_error", 429, RateLimitError),
    ("authentication_error", 401, AuthenticationError),
    ("invalid_request_error", 400, AnyLLMError),
])
def test_error_event_raises_the_mapped_error(kind: str, status: int, cls: type) -> None:
    state = StreamConverter(provider="anthropic")
    body = {"type": "error", "error": {"type": kind, "message": "Overloaded"}}
    with pytest.raises(cls) as info:
        state.convert(json.dumps(body))
    assert info.value.status_code == status
    assert "Overloaded" in str(info.value)


def test_prompt_too_long_is_a_context_length_error() -> None:
    state = StreamConverter(provider="anthropic")
    body = {"type": "error", "error": {"type": "invalid_request_error",
                                       "message": "prompt is too long: 210000 tokens > 200000"}}
    with pytest.raises(ContextLengthExceededError):
        state.convert(json.dumps(body))


# --- non-stream conversion (pure) ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NON_STREAM_MESSAGES))
def test_recorded_message_converts(name: str) -> None:
    data = NON_STREAM_MESSAGES[name]
    result = AnthropicBackend._convert_completion_response(data).to_dict()
    validate_chat_completion(result)
    content = data["content"]
    expected = {
        "text": "".join(b["text"] for b in content if b["type"] == "text"),
        "thinking": [{"type": "thinking", "thinking": b["thinking"], "signature": b["signature"]}
                     for b in content if b["type"] == "thinking"],
        "tools": [(b["id"], b["name"], json.dumps(b["input"])) for b in content
                  if b["type"] == "tool_use"],
        "stop": data["stop_reason"], "usage": data["usage"],
    }
    assert_matches(result, expected)
    msg = result["choices"][0]["message"]
    assert msg.get("thinking_blocks", []) == expected["thinking"]
    assert [json.loads(c["function"]["arguments"]) for c in msg.get("tool_calls") or []] == \
        [b["input"] for b in content if b["type"] == "tool_use"]
    assert result["id"] == data["id"] and result["model"] == data["model"]
    explanation = (data.get("stop_details") or {}).get("explanation")
    assert msg["refusal"] == explanation


def test_error_body_as_reply_raises() -> None:
    body = next(json.loads(x.body) for x in SNAPSHOT_EXCHANGES if x.status == 429)
    with pytest.raises(RateLimitError, match="rate limit"):
        AnthropicBackend._convert_completion_response(body)


# --- request conversion (pure) ---------------------------------------------------------------


def openai_request(recorded: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-shaped parameters a caller would pass to get the recorded Anthropic body."""
    messages: list[dict[str, Any]] = []
    if "system" in recorded:
        messages.append({"role": "system", "content": recorded["system"]})
    for m in recorded["messages"]:
        blocks = m["content"]
        if isinstance(blocks, str):
            messages.append({"role": m["role"], "content": blocks})
            continue
        if m["role"] == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": "".join(
                b["text"] for b in blocks if b["type"] == "text") or None}
            calls = [{"id": b["id"], "type": "function", "function": {
                "name": b["name"], "arguments": json.dumps(b["input"])}}
                for b in blocks if b["type"] == "tool_use"]
            if calls:
                msg["tool_calls"] = calls
            thinking = [b for b in blocks if b["type"] in ("thinking", "redacted_thinking")]
            if thinking:
                msg["thinking_blocks"] = thinking
            messages.append(msg)
            continue
        parts = []
        for b in blocks:
            if b["type"] == "tool_result":
                messages.append({"role": "tool", "tool_call_id": b["tool_use_id"],
                                 "content": b["content"]})
            elif b["type"] == "text":
                parts.append({"type": "text", "text": b["text"]})
            elif b["type"] == "image" and b["source"]["type"] == "base64":
                src = b["source"]
                url = f"data:{src['media_type']};base64,{src['data']}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif b["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": b["source"]["url"]}})
        if parts:
            messages.append({"role": "user", "content": parts})
    params: dict[str, Any] = {"model": recorded["model"], "messages": messages,
                              "max_tokens": recorded["max_tokens"]}
    if "temperature" in recorded:
        params["temperature"] = recorded["temperature"]
    if "stop_sequences" in recorded:
        params["stop"] = recorded["stop_sequences"]
    if "tools" in recorded:
        params["tools"] = [
            {"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}}
            if "input_schema" in t else t  # server tools are given in Anthropic's own shape
            for t in recorded["tools"]]
    thinking = recorded.get("thinking")
    if thinking == {"type": "enabled", "budget_tokens": 1024}:
        params["reasoning_effort"] = "low"
    elif thinking:
        params["thinking"] = thinking  # adaptive / display: Anthropic's own setting, as an extra
    config = dict(recorded.get("output_config") or {})
    if "format" in config:
        schema = config.pop("format")["schema"]
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": schema.get("title", "out"), "schema": schema, "strict": True}}
    if config:
        params["output_config"] = config  # e.g. {"effort": "low"}, as an extra
    return params


def normalised(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """String content is one text block: both forms are the same request to Anthropic."""
    return [{**m, "content": [{"type": "text", "text": m["content"]}]
             if isinstance(m["content"], str) else m["content"]} for m in messages]


MATTERS = ("model", "system", "max_tokens", "stop_sequences", "tools", "thinking",
           "output_config", "temperature", "top_p", "tool_choice")
REQUESTS = [x for x in CASSETTE_EXCHANGES + SNAPSHOT_EXCHANGES]


@pytest.mark.parametrize("exchange", REQUESTS, ids=lambda x: x.name)
def test_recorded_request_body(exchange: Exchange, recwarn: pytest.WarningsRecorder) -> None:
    """CompletionParams equivalent to the recorded request convert into the recorded body."""
    recorded = exchange.request
    params = CompletionParams(**openai_request(recorded))
    body = AnthropicBackend._convert_completion_params(params)
    for key in MATTERS:
        assert body.get(key) == recorded.get(key), key
    assert normalised(body["messages"]) == normalised(recorded["messages"])
    assert "stream" not in body  # the backend adds it for streams
    assert not [w for w in recwarn if issubclass(w.category, AnyLLMWarning)]


@pytest.mark.parametrize("cassette", ["test_fixed_version_tool_chain_regression",
                                      "test_fixed_version_tool_chain_with_thinking_display_"
                                      "regression", "test_tools", "test_async_prompt"])
def test_second_turn_from_our_own_reply(cassette: str) -> None:
    """Round trip: our conversion of the first recorded reply, sent back as history (with the
    thinking blocks and signatures collected from the stream), plus the tool results, gives the
    recorded second request's messages."""
    first, second = _cassette(CASSETTES / f"{cassette}.yaml")
    acc = ChunkAccumulator()
    thinking_blocks: list[dict[str, Any]] = []
    for chunk in convert_stream(first.body):
        acc.add(chunk)
        for c in chunk.choices:
            thinking_blocks += (c.delta.model_extra or {}).get("thinking_blocks", [])
    reply = acc.result().choices[0].message.to_dict()
    reply.pop("refusal", None)
    if thinking_blocks:
        reply["thinking_blocks"] = thinking_blocks
    recorded_turns = second.request["messages"]
    # What the caller adds after our reply: its tool results, or its next prompt (both are
    # taken from the recorded second request).
    follow_up = openai_request({**second.request, "messages": recorded_turns[2:]})["messages"]
    assistant_text = "".join(b["text"] for b in recorded_turns[1]["content"]
                             if b["type"] == "text")
    if assistant_text != (reply.get("content") or ""):
        reply["content"] = assistant_text  # llm-anthropic sent " " before its tool calls
    history = [*openai_request({**first.request})["messages"], reply, *follow_up]
    params = CompletionParams(**{**openai_request(second.request), "messages": history})
    body = AnthropicBackend._convert_completion_params(params)
    assert normalised(body["messages"]) == normalised(recorded_turns)
    if thinking_blocks:
        assert body["messages"][1]["content"][0]["signature"] == thinking_blocks[0]["signature"]


def params(**kw: Any) -> CompletionParams:
    kw.setdefault("model", "claude-sonnet-4-5")
    kw.setdefault("messages", [{"role": "user", "content": "hi"}])
    return CompletionParams(**kw)


def convert(p: CompletionParams) -> tuple[dict[str, Any], list[str]]:
    reports: list[str] = []
    return AnthropicBackend._convert_completion_params(p, reports.append), reports


def test_system_and_developer_messages_become_system() -> None:
    body, reports = convert(params(messages=[
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "hi"}]))
    assert body["system"] == [{"type": "text", "text": "Be terse."},
                              {"type": "text", "text": "Answer in French."}]
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert reports == []
    one, _ = convert(params(messages=[{"role": "system", "content": "Be terse."},
                                      {"role": "user", "content": "hi"}]))
    assert one["system"] == "Be terse."


def test_max_tokens_default_and_max_completion_tokens() -> None:
    assert convert(params())[0]["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert convert(params(max_completion_tokens=300))[0]["max_tokens"] == 300
    assert convert(params(max_tokens=200))[0]["max_tokens"] == 200


@pytest.mark.parametrize("effort,budget", [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, budget: int) -> None:
    body, reports = convert(params(reasoning_effort=effort))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget and reports == []
    body, reports = convert(params(reasoning_effort=effort, max_tokens=budget))
    assert body["max_tokens"] > budget
    assert len(reports) == 1 and "max_tokens" in reports[0]
    assert "thinking" not in convert(params(reasoning_effort="none"))[0]


def test_temperature_is_clamped_and_reported() -> None:
    body, reports = convert(params(temperature=1.7))
    assert body["temperature"] == 1.0
    assert len(reports) == 1 and "1.7" in reports[0]
    with pytest.warns(AnyLLMWarning, match="temperature"):
        AnthropicBackend._convert_completion_params(params(temperature=1.5))
    body, reports = convert(params(temperature=0.3, top_p=0.9))
    assert body["temperature"] == 0.3 and "top_p" not in body and len(reports) == 1
    assert convert(params(top_p=0.9)) == ({**convert(params())[0], "top_p": 0.9}, [])


def test_strict_mode_refuses_a_clamped_value() -> None:
    llm = AnthropicBackend(get_provider("anthropic"), api_key="k", strict=True)
    with pytest.raises(UnsupportedParameterError):
        llm._convert_completion_params(params(temperature=2.0), llm.report_unsupported)
    asyncio.run(llm.aclose())


TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                         "parameters": {"type": "object", "properties": {
                                             "city": {"type": "string"}}}}}


@pytest.mark.parametrize("choice,parallel,expected", [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None,
     {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (None, None, None),
])
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body, reports = convert(params(tools=[TOOL], tool_choice=choice,
                                   parallel_tool_calls=parallel))
    assert body.get("tool_choice") == expected
    assert body["tools"] == [{"name": "get_weather", "description": "Weather",
                              "input_schema": TOOL["function"]["parameters"]}]
    assert reports == []


def test_forced_tool_use_turns_thinking_off_with_a_report() -> None:
    body, reports = convert(params(tools=[TOOL], tool_choice="required",
                                   reasoning_effort="medium"))
    assert "thinking" not in body and body["tool_choice"] == {"type": "any"}
    assert len(reports) == 1


def test_images_and_dropped_parts() -> None:
    body, reports = convert(params(messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ]}]))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
    assert len(reports) == 1 and "input_audio" in reports[0]


def test_consecutive_tool_results_share_one_user_turn() -> None:
    call = {"id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    body, _ = convert(params(tools=[TOOL], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "toolu_2"}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rainy"},
        {"role": "user", "content": "thanks"},
    ]))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "user"]
    assert body["messages"][1]["content"][0] == {"type": "tool_use", "id": "toolu_1",
                                                 "name": "get_weather",
                                                 "input": {"city": "Paris"}}
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rainy"}]
    bad = {**call, "function": {"name": "x", "arguments": "[1"}}
    with pytest.raises(InvalidParameterError):
        convert(params(messages=[{"role": "assistant", "content": None, "tool_calls": [bad]}]))


def test_reasoning_signature_goes_back_as_a_thinking_block() -> None:
    body, _ = convert(params(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello", "reasoning": "greet", "reasoning_signature":
         "sig"},
        {"role": "assistant", "content": "Again", "reasoning": "unsigned: not sent"}]))
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "greet", "signature": "sig"},
        {"type": "text", "text": "Hello"}]
    assert body["messages"][2]["content"] == "Again"


def test_response_formats() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body, reports = convert(params(response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert reports == []
    body, reports = convert(params(response_format={"type": "json_object"}))
    assert "JSON" in body["system"] and len(reports) == 1


def test_unsupported_parameters_warn_and_are_not_sent(replay_server: ReplayServer) -> None:
    stream = RECORDED_STREAMS["basic_response.txt"]
    replay_server.enqueue(sse_response(stream.encode()))

    async def run() -> None:
        llm = await AnyLLM.acreate("anthropic", api_key="k", api_base=replay_server.url + "/v1")
        async with llm:
            async for _ in llm.acompletion_stream(messages=[{"role": "user", "content": "hi"}],
                                                  seed=3, top_k=5, frequency_penalty=0.5):
                pass

    with pytest.warns(AnyLLMWarning) as warned:
        asyncio.run(run())
    assert sorted(str(w.message).split("'")[1] for w in warned) == \
        ["frequency_penalty", "seed"]
    sent = replay_server.requests[0].json
    assert sent["top_k"] == 5 and "seed" not in sent and "frequency_penalty" not in sent


# --- over HTTP (library) ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tool_use_response.txt", "test_stream_events_thinking.0",
                                  "incomplete_partial_json_response.txt"])
def test_stream_over_http(replay_server: ReplayServer, name: str) -> None:
    text = RECORDED_STREAMS[name]
    replay_server.enqueue(sse_response(text.encode(), split=7))

    async def run() -> dict[str, Any]:
        llm = await AnyLLM.acreate("anthropic", api_key="sk-ant-x",
                                   api_base=replay_server.url + "/v1")
        acc = ChunkAccumulator()
        async with llm:
            async for chunk in llm.acompletion_stream(
                    "claude-sonnet-4-5", [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "hi"}], stop="```"):
                acc.add(chunk)
        return acc.result().to_dict()

    assert_matches(asyncio.run(run()), expected_from_events(stream_events(text)))
    sent = replay_server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-x"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {"model": "claude-sonnet-4-5", "max_tokens": DEFAULT_MAX_TOKENS,
                         "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}],
                         "stop_sequences": ["```"], "stream": True}


def test_recorded_429s_are_retried(replay_server: ReplayServer) -> None:
    """The inline snapshot recorded two 429 rate_limit_error replies (x-should-retry: true)
    before the answer; the same sequence through our transport gives the answer."""
    path = SNAPSHOTS / "test_messages/TestAsyncParse/d743d628-16aa-4c9f-ae78-51deb578f746.json"
    recorded = json.loads(path.read_text())
    for item in recorded:
        r = item["response"]
        headers = {k: v for k, v in r["headers"].items() if k in ("x-should-retry",)}
        replay_server.enqueue(json_response(r["body"], status=r["status_code"], headers=headers))

    async def run() -> Any:
        llm = await AnyLLM.acreate("anthropic", api_key="k", api_base=replay_server.url + "/v1",
                                   backoff_base=0.01)
        async with llm:
            return await llm.acompletion(**openai_request(recorded[-1]["request"]["body"]))

    reply = asyncio.run(run())
    assert len(replay_server.requests) == 3
    assert reply.choices[0].message.content == recorded[-1]["response"]["body"]["content"][0][
        "text"]
    assert replay_server.requests[-1].json == recorded[-1]["request"]["body"]


def test_list_models_reads_every_page(replay_server: ReplayServer) -> None:
    """``GET /v1/models`` in the shape of Anthropic's API reference (``data[].id``,
    ``created_at``, ``has_more``/``last_id`` paging)."""
    page1 = {"data": [{"type": "model", "id": "claude-sonnet-4-5-20250929",
                       "display_name": "Claude Sonnet 4.5",
                       "created_at": "2025-09-29T00:00:00Z"}],
             "has_more": True, "first_id": "claude-sonnet-4-5-20250929",
             "last_id": "claude-sonnet-4-5-20250929"}
    page2 = {"data": [{"type": "model", "id": "claude-haiku-4-5-20251001",
                       "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"}],
             "has_more": False, "first_id": "claude-haiku-4-5-20251001",
             "last_id": "claude-haiku-4-5-20251001"}
    replay_server.enqueue(json_response(page1), json_response(page2))

    async def run() -> Any:
        llm = await AnyLLM.acreate("anthropic", api_key="k", api_base=replay_server.url + "/v1")
        async with llm:
            return await llm.alist_models()

    models = asyncio.run(run())
    assert [m.id for m in models] == ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
    assert models[0].created == 1759104000 and models[0].owned_by == "anthropic"
    assert replay_server.requests[1].params["after_id"] == "claude-sonnet-4-5-20250929"
    assert replay_server.requests[0].path == "/v1/models"


# --- the CLI, as a process -------------------------------------------------------------------


def chat(run_cli: Any, srv: ReplayServer, *args: str) -> Any:
    return run_cli("chat", "-p", "anthropic", "--api-base", srv.url + "/v1", *args,
                   env={"ANTHROPIC_API_KEY": SECRET})


def test_cli_piped_text_and_request(replay_server: ReplayServer, run_cli: Any) -> None:
    exchange = next(x for x in CASSETTE_EXCHANGES if x.name == "test_prompt.0")
    replay_server.enqueue(sse_response(exchange.body.encode()))
    prompt = exchange.request["messages"][0]["content"][0]["text"]
    r = chat(run_cli, replay_server, "-m", exchange.request["model"], "--temperature", "1",
             "--max-tokens", str(exchange.request["max_tokens"]), prompt)
    assert r.code == 0, r.stderr
    assert r.stdout == expected_from_events(stream_events(exchange.body))["text"] + "\n"
    assert r.stderr == ""
    sent = replay_server.requests[0]
    assert sent.headers["x-api-key"] == SECRET
    assert sent.headers["anthropic-version"] == "2023-06-01"
    for key in ("model", "max_tokens", "temperature", "stream"):
        assert sent.json[key] == exchange.request[key]
    assert normalised(sent.json["messages"]) == exchange.request["messages"]


def test_cli_piped_reasoning_stays_off_stdout_and_tool_calls_print(
        replay_server: ReplayServer, run_cli: Any) -> None:
    thinking = RECORDED_STREAMS["test_fixed_version_tool_chain_with_thinking_display_"
                                "regression.0"]
    replay_server.enqueue(sse_response(thinking.encode()))
    r = chat(run_cli, replay_server, "--reasoning-effort", "low", "version?")
    assert r.code == 0, r.stderr
    expected = expected_from_events(stream_events(thinking))
    assert expected["thinking"][0]["thinking"][:20] not in r.stdout
    assert "fixed_version({})" in r.stdout
    assert replay_server.requests[0].json["thinking"] == {"type": "enabled",
                                                          "budget_tokens": 1024}


def test_cli_jsonl_lines_validate(replay_server: ReplayServer, run_cli: Any) -> None:
    text = RECORDED_STREAMS["stream-a-refusal.sse"]  # thinking, signature, text, refusal
    replay_server.enqueue(sse_response(text.encode(), split="line"))
    r = chat(run_cli, replay_server, "--jsonl", "hi")
    assert r.code == 0, r.stderr
    acc = ChunkAccumulator()
    for line in r.stdout.splitlines():
        obj = json.loads(line)
        validate_chat_completion_chunk(obj)
        acc.add(ChatCompletionChunk.model_validate(obj))
    assert_matches(acc.result().to_dict(), expected_from_events(stream_events(text)))


def test_cli_json_validates(replay_server: ReplayServer, run_cli: Any) -> None:
    """--json asks for a whole message (no ``stream``); a recorded non-stream Message."""
    exchange = next(x for x in SNAPSHOT_EXCHANGES if x.name.startswith("d7092a7d"))
    message = json.loads(exchange.body)
    replay_server.enqueue(json_response(message))
    r = chat(run_cli, replay_server, "--json", "-m", exchange.request["model"], "extract")
    assert r.code == 0, r.stderr
    printed = json.loads(r.stdout)
    validate_chat_completion(printed)
    assert printed["choices"][0]["message"]["content"] == message["content"][0]["text"]
    assert printed["usage"]["completion_tokens"] == message["usage"]["output_tokens"]
    assert "stream" not in replay_server.requests[0].json


def test_cli_error_event_mid_stream(replay_server: ReplayServer, run_cli: Any) -> None:
    """An ``event: error`` after some text: exit 1, the partial answer on stdout, one line
    on stderr."""
    events = stream_events(RECORDED_STREAMS["basic_response.txt"])[:5]  # start .. " there"
    partial = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    body += ('event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
             '"message":"Overloaded"}}\n\n')
    replay_server.enqueue(sse_response(body.encode()))
    r = chat(run_cli, replay_server, "hi")
    assert r.code == 1
    assert r.stdout.startswith(partial) and partial
    assert r.stderr.startswith("anyllm: ") and r.stderr.strip().count("\n") == 0
    assert "Overloaded" in r.stderr and "529" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_401_names_the_variable_never_the_key(replay_server: ReplayServer,
                                                  run_cli: Any) -> None:
    body = {"type": "error", "error": {"type": "authentication_error",
                                       "message": f"invalid x-api-key {SECRET}"},
            "request_id": "req_011"}
    replay_server.enqueue(Response(status=401, headers={"content-type": "application/json"},
                                   body=json.dumps(body).encode()))
    r = chat(run_cli, replay_server, "hi")
    assert r.code == 1
    assert "ANTHROPIC_API_KEY" in r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_cli_schema_sends_output_config(replay_server: ReplayServer, run_cli: Any) -> None:
    """``--schema`` as llm-anthropic's recorded schema prompt: the request carries the recorded
    ``output_config``, and the streamed JSON answer is printed (it matches the schema)."""
    exchange = next(x for x in CASSETTE_EXCHANGES if x.name == "test_schema_prompt.0")
    schema = exchange.request["output_config"]["format"]["schema"]
    replay_server.enqueue(sse_response(exchange.body.encode()))
    r = chat(run_cli, replay_server, "--schema", json.dumps(schema), "Invent a good dog")
    assert r.code == 0, r.stderr
    answer = expected_from_events(stream_events(exchange.body))["text"]
    assert r.stdout == answer + "\n"
    assert replay_server.requests[0].json["output_config"] == exchange.request["output_config"]
