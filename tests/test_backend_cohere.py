"""The ``cohere`` backend (v2 chat) on recorded Cohere traffic.

Recordings: langchain-ai/langchain-cohere VCR cassettes (raw named-event SSE streams with
tool-plan / tool-call deltas and ``[DONE]``; whole replies, one gzip'ed as ``!!binary``; the
request bodies the SDK sent) and vercel/ai ``packages/cohere`` fixtures (``*.chunks.txt`` one
event per line, ``*.json`` whole replies). Conversions are checked as pure functions against a
plain reassembly of each recording made here, independently of the code under test; then end to
end through ``anyllm chat -p cohere`` against the loopback server replaying the recorded bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.cohere import CohereBackend, CohereStreamState
from anyllm_cli.errors import AnyLLMWarning, ProviderError, StreamError
from anyllm_cli.transport.sse import SSEDecoder
from anyllm_cli.types import CompletionParams
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, json_response, load_jsonl_chunks, sse_response

FIXTURES = Path(__file__).parent / "fixtures"
CASSETTES = (FIXTURES / "langchain-ai__langchain-cohere/libs/cohere/tests/integration_tests"
             / "cassettes")
VERCEL = FIXTURES / "vercel__ai/packages/cohere/src/__fixtures__"
STREAM_CASSETTES = ["test_stream.yaml", "test_streaming_tool_call.yaml"]
WHOLE_CASSETTES = [
    "test_invoke.yaml", "test_invoke_tool_calls.yaml",
    "test_command_a_reasoning_with_tool_call.yaml",
    "test_cohere_with_structured_output[Person-json_mode-expected0].yaml",
    "test_cohere_with_structured_output[Person-json_schema-expected1].yaml",
    "test_cohere_with_structured_output[Person-function_calling-expected2].yaml",
]
VERCEL_STREAMS = sorted(VERCEL.glob("*.chunks.txt"))
VERCEL_WHOLE = [p for p in sorted(VERCEL.glob("*.json")) if "embedding" not in p.name]
KEY = {"COHERE_API_KEY": "co-test-key"}


# --- reading the recordings (independent of the code under test) ------------------------------


def cassette(name: str) -> dict[str, Any]:
    """The one interaction of a VCR cassette: request JSON, response bytes (gunzipped), status."""
    data = yaml.safe_load((CASSETTES / name).read_text())
    interaction = data["interactions"][0]
    response = interaction["response"]
    body = response["body"]["string"]
    raw = body if isinstance(body, bytes) else body.encode()
    if "gzip" in (response["headers"].get("content-encoding") or []):
        raw = gzip.decompress(raw)
    return {"request": json.loads(interaction["request"]["body"]),
            "uri": interaction["request"]["uri"], "body": raw,
            "status": response["status"]["code"]}


def sse_payloads(raw: bytes) -> list[dict[str, Any]]:
    """The ``data:`` objects of a named-event SSE body, read line by line ([DONE] excluded)."""
    out = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line.startswith("data: ")]
        if lines and lines[0] != "data: [DONE]":
            out.append(json.loads("\n".join(line[6:] for line in lines)))
    return out


FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
          "TOOL_CALL": "tool_calls"}


def expected_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    text = thinking = plan = ""
    tools: dict[int, dict[str, Any]] = {}
    end: dict[str, Any] = {}
    for e in events:
        m = (e.get("delta") or {}).get("message") or {}
        if e["type"] in ("content-start", "content-delta"):
            text += m["content"].get("text", "")
            thinking += m["content"].get("thinking", "")
        elif e["type"] == "tool-plan-delta":
            plan += m["tool_plan"]
        elif e["type"] == "tool-call-start":
            tc = m["tool_calls"]
            tools[e["index"]] = {"id": tc["id"], "name": tc["function"]["name"],
                                 "args": tc["function"]["arguments"]}
        elif e["type"] == "tool-call-delta":
            tools[e["index"]]["args"] += m["tool_calls"]["function"]["arguments"]
        elif e["type"] == "message-end":
            end = e["delta"]
    tokens = end["usage"]["tokens"]
    return {"content": text, "reasoning": thinking + plan,
            "tools": [(t["id"], t["name"], t["args"] or "{}") for _, t in sorted(tools.items())],
            "finish_reason": FINISH[end["finish_reason"]],
            "usage": (tokens["input_tokens"], tokens["output_tokens"])}


def expected_from_reply(reply: dict[str, Any]) -> dict[str, Any]:
    message = reply["message"]
    content = message.get("content") or []
    thinking = "".join(b["thinking"] for b in content if b["type"] == "thinking")
    reasoning = "\n\n".join(x for x in (thinking, message.get("tool_plan", "")) if x)
    tools = [(tc["id"], tc["function"]["name"],
              "{}" if tc["function"]["arguments"] in ("", "null") else tc["function"]["arguments"])
             for tc in message.get("tool_calls") or []]
    tokens = reply["usage"]["tokens"]
    return {"content": "".join(b["text"] for b in content if b["type"] == "text"),
            "reasoning": reasoning, "tools": tools,
            "finish_reason": FINISH[reply["finish_reason"]],
            "usage": (tokens["input_tokens"], tokens["output_tokens"])}


def assert_matches(result: dict[str, Any], expected: dict[str, Any]) -> None:
    validate_chat_completion(result)
    choice = result["choices"][0]
    message = choice["message"]
    assert (message["content"] or "") == expected["content"]
    assert message.get("reasoning", "") == expected["reasoning"]
    calls = message.get("tool_calls") or []
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == \
        expected["tools"]
    for call in calls:
        assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert choice["finish_reason"] == expected["finish_reason"]
    usage = result["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == expected["usage"]
    assert usage["total_tokens"] == sum(expected["usage"])


def convert_events(events: list[Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = CohereStreamState(model="command-r")
    acc = ChunkAccumulator()
    chunks = []
    for event in events:
        for chunk in CohereBackend._convert_completion_chunk_response(event, state):
            chunks.append(chunk.to_dict())
            validate_chat_completion_chunk(chunks[-1])
            acc.add(chunk)
    return acc.result().to_dict(), chunks


# --- pure conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", STREAM_CASSETTES)
def test_recorded_sse_stream_conversion(name: str) -> None:
    """The raw SSE bytes, decoded and converted event by event, reassemble to the recording."""
    rec = cassette(name)
    decoder = SSEDecoder()
    events = decoder.feed(rec["body"]) + decoder.close()
    assert events[-1].data == "[DONE]"
    assert {e.event for e in events[:-1]} >= {"message-start", "message-end"}
    result, chunks = convert_events([e.data for e in events[:-1]])
    assert_matches(result, expected_from_events(sse_payloads(rec["body"])))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert result["id"] == sse_payloads(rec["body"])[0]["id"]
    assert result["model"] == "command-r"


@pytest.mark.parametrize("path", VERCEL_STREAMS, ids=lambda p: p.stem)
def test_recorded_event_lines_conversion(path: Path) -> None:
    events = load_jsonl_chunks(path)
    result, chunks = convert_events(events)
    assert_matches(result, expected_from_events(events))
    # Each tool call: first fragment has index, id and name; later ones only arguments.
    firsts: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for tc in choice["delta"].get("tool_calls") or []:
                if tc["index"] not in firsts:
                    firsts[tc["index"]] = tc
                    assert tc["id"] and tc["function"]["name"] and tc["type"] == "function"
                else:
                    assert "id" not in tc and "name" not in tc["function"]
    assert sorted(firsts) == list(range(len(firsts)))
    # The usage chunk comes last, with no choices, as OpenAI's include_usage sends it.
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]


def test_thinking_and_tool_plan_go_to_reasoning_not_content() -> None:
    events = load_jsonl_chunks(VERCEL / "cohere-reasoning.chunks.txt")
    _, chunks = convert_events(events)
    thinking = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("reasoning")]
    assert thinking and all("content" not in c["choices"][0]["delta"] for c in thinking)
    plan = load_jsonl_chunks(VERCEL / "cohere-tool-call.chunks.txt")
    result, _ = convert_events(plan)
    assert result["choices"][0]["message"]["content"] is None
    assert result["choices"][0]["message"]["reasoning"].startswith("I will use the weather tool")


@pytest.mark.parametrize("name", WHOLE_CASSETTES)
def test_recorded_whole_reply_conversion(name: str) -> None:
    rec = cassette(name)
    reply = json.loads(rec["body"])
    result = CohereBackend._convert_completion_response(reply, model=rec["request"]["model"])
    data = result.to_dict()
    assert_matches(data, expected_from_reply(reply))
    assert data["id"] == reply["id"] and data["model"] == rec["request"]["model"]


@pytest.mark.parametrize("path", VERCEL_WHOLE, ids=lambda p: p.stem)
def test_vercel_whole_reply_conversion(path: Path) -> None:
    reply = json.loads(path.read_text())
    data = CohereBackend._convert_completion_response(reply, model="command-a").to_dict()
    assert_matches(data, expected_from_reply(reply))
    if reply["usage"].get("cached_tokens") is not None:
        assert data["usage"]["prompt_tokens_details"] == {
            "cached_tokens": reply["usage"]["cached_tokens"]}


def params_for(request: dict[str, Any], **kw: Any) -> CompletionParams:
    """OpenAI params that should produce a recorded Cohere request (same messages and tools)."""
    fields = {k: request[k] for k in ("model", "messages", "tools", "temperature", "stream")
              if k in request}
    return CompletionParams(**fields, **kw)


@pytest.mark.parametrize("name", [*STREAM_CASSETTES, "test_invoke.yaml",
                                  "test_invoke_tool_calls.yaml",
                                  "test_command_a_reasoning_with_tool_call.yaml",
                                  "test_cohere_with_structured_output[Person-json_mode-expected0].yaml"])
def test_request_equals_recorded_request(name: str) -> None:
    rec = cassette(name)
    kw: dict[str, Any] = {}
    if "response_format" in rec["request"]:
        kw["response_format"] = rec["request"]["response_format"]
    body = CohereBackend._convert_completion_params(params_for(rec["request"], **kw))
    assert body == rec["request"]
    assert rec["uri"] == "https://api.cohere.com/v2/chat"


def test_json_schema_request_uses_v2_json_schema_field() -> None:
    """The langchain cassette sent the schema as ``schema`` (an older SDK shape); the v2 API
    reference (cohere-python ``JsonResponseFormatV2``) names the field ``json_schema``. The
    rest of the request equals the recording."""
    rec = cassette("test_cohere_with_structured_output[Person-json_schema-expected1].yaml")
    recorded = rec["request"]
    schema = recorded["response_format"]["schema"]
    fmt = {"type": "json_schema", "json_schema": {"name": "Person", "schema": schema,
                                                  "strict": True}}
    body = CohereBackend._convert_completion_params(params_for(recorded, response_format=fmt))
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}
    assert {k: v for k, v in body.items() if k != "response_format"} == \
        {k: v for k, v in recorded.items() if k != "response_format"}


def test_parameter_translation_and_reports() -> None:
    reports: list[str] = []
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"},
                                               "strict": True}} for n in ("a", "b")]
    params = CompletionParams(
        model="command-a-03-2025", stream=True, tools=tools,
        tool_choice={"type": "function", "function": {"name": "b"}},
        temperature=1.5, top_p=1.0, max_completion_tokens=50, stop=list("abcdef"), seed=7,
        frequency_penalty=-0.5, presence_penalty=0.5, reasoning_effort="high", top_k=40,
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]},
            {"role": "assistant", "content": None, "reasoning": "I will call b.",
             "tool_calls": [{"id": "b_1", "type": "function",
                             "function": {"name": "b", "arguments": "{\"x\":1}"}}]},
            {"role": "tool", "tool_call_id": "b_1", "content": "42"},
        ])
    body = CohereBackend._convert_completion_params(params, reports.append)
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "tool_plan": "I will call b.",
         "tool_calls": [{"id": "b_1", "type": "function",
                         "function": {"name": "b", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "b_1", "content": "42"},
    ]
    # A named function is forced by offering only that tool, with REQUIRED.
    assert [t["function"]["name"] for t in body["tools"]] == ["b"]
    assert body["tool_choice"] == "REQUIRED" and body["strict_tools"] is True
    assert "strict" not in body["tools"][0]["function"]
    assert (body["temperature"], body["p"], body["k"]) == (1.0, 0.99, 40)
    assert body["max_tokens"] == 50 and body["seed"] == 7
    assert body["stop_sequences"] == list("abcde")
    assert (body["frequency_penalty"], body["presence_penalty"]) == (0.0, 0.5)
    assert body["thinking"] == {"type": "enabled"} and body["stream"] is True
    joined = "\n".join(reports)
    for word in ("temperature", "top_p", "stop sequences", "frequency_penalty", "input_audio",
                 "reasoning_effort"):
        assert word in joined
    assert len(reports) == 6


def test_tool_choice_and_reasoning_none() -> None:
    tools = [{"type": "function", "function": {"name": "a", "parameters": {}}}]
    msgs = [{"role": "user", "content": "hi"}]
    for choice, expected in (("required", "REQUIRED"), ("none", "NONE"), ("auto", None)):
        body = CohereBackend._convert_completion_params(
            CompletionParams(model="m", messages=msgs, tools=tools, tool_choice=choice,
                             reasoning_effort="none"), lambda m: pytest.fail(m))
        assert body.get("tool_choice") == expected
        assert body["thinking"] == {"type": "disabled"}


def test_unsupported_parameters_warn_and_strict_refuses() -> None:
    async def run(strict: bool) -> None:
        llm = await AnyLLM.acreate("cohere", api_key="k", api_base="http://127.0.0.1:9",
                                   strict=strict)
        async with llm:
            llm.prepare_params("m", [{"role": "user", "content": "x"}],
                               {"n": 2, "logit_bias": {"1": 1}, "top_k": 5}, stream=False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(run(False))
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, AnyLLMWarning))
    assert "'n'" in text and "'logit_bias'" in text and "top_k" not in text
    from anyllm_cli.errors import UnsupportedParameterError

    with pytest.raises(UnsupportedParameterError):
        asyncio.run(run(True))


def test_error_finish_reasons_raise() -> None:
    state = CohereStreamState()
    state.convert({"id": "x", "type": "message-start", "delta": {"message": {}}})
    with pytest.raises(StreamError, match="overloaded"):
        state.convert({"type": "message-end",
                       "delta": {"finish_reason": "ERROR", "error": "overloaded"}})
    reply = json.loads((VERCEL / "cohere-text.json").read_text())
    with pytest.raises(ProviderError):
        CohereBackend._convert_completion_response({**reply, "finish_reason": "ERROR"})


# --- end to end: the CLI against the loopback server -------------------------------------------


def replay(server: ReplayServer, name: str, **kw: Any) -> dict[str, Any]:
    rec = cassette(name)
    if rec["body"].lstrip().startswith(b"event:"):
        server.enqueue(sse_response(rec["body"], **kw))
    else:
        server.enqueue(json_response(json.loads(rec["body"]), **kw))
    return rec


def test_cli_piped_text(replay_server: ReplayServer, run_cli: Any) -> None:
    rec = replay(replay_server, "test_stream.yaml")
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2",
                "-m", "command-r", "I'm Pickle Rick", env=KEY)
    assert r.code == 0, r.stderr
    assert r.stdout == expected_from_events(sse_payloads(rec["body"]))["content"] + "\n"
    assert r.stderr == ""
    sent = replay_server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v2/chat")
    assert sent.headers["authorization"] == "Bearer co-test-key"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.json == rec["request"]


def test_cli_jsonl_tool_call_stream(replay_server: ReplayServer, run_cli: Any) -> None:
    """Second key variable CO_API_KEY; every line validates; the plan stays out of content."""
    rec = replay(replay_server, "test_streaming_tool_call.yaml", split="line")
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2", "--jsonl",
                "Erick, 27 years old", env={"CO_API_KEY": "co-second"})
    assert r.code == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    acc = ChunkAccumulator()
    from anyllm_cli.types import ChatCompletionChunk

    for obj in lines:
        validate_chat_completion_chunk(obj)
        acc.add(ChatCompletionChunk.model_validate(obj))
    assert_matches(acc.result().to_dict(), expected_from_events(sse_payloads(rec["body"])))
    assert replay_server.requests[0].headers["authorization"] == "Bearer co-second"


def test_cli_piped_tool_call_and_hidden_plan(replay_server: ReplayServer, run_cli: Any) -> None:
    rec = replay(replay_server, "test_streaming_tool_call.yaml")
    expected = expected_from_events(sse_payloads(rec["body"]))
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2", "Erick",
                env=KEY)
    assert r.code == 0, r.stderr
    _, name, args = expected["tools"][0]
    assert f"{name}({args})" in r.stdout
    assert expected["reasoning"] not in r.stdout


def test_cli_json_whole_reply(replay_server: ReplayServer, run_cli: Any) -> None:
    rec = replay(replay_server, "test_command_a_reasoning_with_tool_call.yaml")
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2", "--json",
                "-m", "command-a-reasoning-08-2025", "weather?", env=KEY)
    assert r.code == 0, r.stderr
    printed = json.loads(r.stdout)
    assert_matches(printed, expected_from_reply(json.loads(rec["body"])))
    assert replay_server.requests[0].json["stream"] is False


def test_cli_error_body_and_mid_stream_error(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(json_response({"id": "e1", "message": "invalid request: model "
                                         "'nope' not found"}, status=404))
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2", "-m", "nope",
                "hi", env=KEY)
    assert r.code == 1
    assert "model 'nope' not found" in r.stderr and "Traceback" not in r.stderr

    # The recorded stream up to its last text delta, then a message-end with ERROR.
    events = sse_payloads(cassette("test_stream.yaml")["body"])
    partial = [e for e in events if e["type"] != "message-end"]
    broken = [*partial, {"type": "message-end",
                         "delta": {"finish_reason": "ERROR", "error": "internal failure"}}]
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in broken)
    replay_server.enqueue(sse_response(body.encode()))
    r = run_cli("chat", "-p", "cohere", "--api-base", replay_server.url + "/v2", "hi", env=KEY)
    assert r.code == 1
    assert r.stdout.startswith(expected_from_events(events)["content"])
    assert "internal failure" in r.stderr


def test_list_models_uses_v1_endpoint(replay_server: ReplayServer) -> None:
    replay_server.enqueue(json_response({"models": [
        {"name": "command-a-03-2025", "endpoints": ["chat"]},
        {"name": "command-r7b-12-2024", "endpoints": ["chat"]}]}))

    async def run() -> list[str]:
        llm = await AnyLLM.acreate("cohere", api_key="k", api_base=replay_server.url + "/v2")
        async with llm:
            return [m.id for m in await llm.alist_models()]

    assert asyncio.run(run()) == ["command-a-03-2025", "command-r7b-12-2024"]
    sent = replay_server.requests[0]
    assert (sent.method, sent.path) == ("GET", "/v1/models")
    assert sent.params["endpoint"] == "chat"
