"""The ``ollama`` backend (native ``/api/chat``, NDJSON).

No recording of a native Ollama NDJSON stream exists among the fixtures (wire-formats.md §10):
the streams here are BUILT from Ollama's own API reference, ``tests/fixtures/ollama__ollama/
docs/openapi.yaml``: the ``/api/chat`` 200 example reply is cut into ``done: false`` lines
(``ChatStreamEvent``) followed by a ``done: true`` line carrying its ``done_reason``, durations
and eval counts; tool calls follow the ``ToolCall`` schema (``arguments`` an object) for the
"Tool calling" code sample's function; thinking uses the ``message.thinking`` field. Requests
are compared with the JSON bodies of the reference's ``x-codeSamples``. Expected results are
reassembled here from the built lines, independently of the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.ollama import OllamaBackend, OllamaStreamState
from anyllm_cli.errors import AnyLLMWarning, ProviderError
from anyllm_cli.transport.ndjson import NDJSONDecoder
from anyllm_cli.types import ChatCompletionChunk, CompletionParams
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, Response, json_response

SPEC = Path(__file__).parent / "fixtures/ollama__ollama/docs/openapi.yaml"
NDJSON = {"content-type": "application/x-ndjson"}


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return data


def chat_example() -> dict[str, Any]:
    """The reference's whole ``/api/chat`` reply example."""
    post = spec()["paths"]["/api/chat"]["post"]
    example: dict[str, Any] = post["responses"]["200"]["content"]["application/json"]["example"]
    return json.loads(json.dumps(example))


def code_sample(label: str) -> dict[str, Any]:
    """The JSON body of one ``curl ... -d '{...}'`` code sample of ``/api/chat``."""
    for sample in spec()["paths"]["/api/chat"]["post"]["x-codeSamples"]:
        if sample["label"] == label:
            src = sample["source"]
            body: dict[str, Any] = json.loads(src[src.index("-d '") + 4:src.rindex("'")])
            return body
    raise KeyError(label)


def build_stream(*, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None,
                 done_reason: str | None = None) -> list[dict[str, Any]]:
    """NDJSON lines made from the reference example: its content word by word, then the final
    ``done: true`` line with the example's counters (and empty content, as Ollama sends it)."""
    example = chat_example()
    head = {"model": example["model"], "created_at": example["created_at"]}
    lines = [{**head, "message": {"role": "assistant", "content": "", "thinking": piece},
              "done": False} for piece in re.findall(r"\S+\s*", thinking)]
    lines += [{**head, "message": {"role": "assistant", "content": piece}, "done": False}
              for piece in re.findall(r"\S+\s*", example["message"]["content"])]
    if tool_calls:
        lines.append({**head, "message": {"role": "assistant", "content": "",
                                          "tool_calls": tool_calls}, "done": False})
    final = {k: v for k, v in example.items() if k != "message"}
    final["message"] = {"role": "assistant", "content": ""}
    if done_reason:
        final["done_reason"] = done_reason
    return [*lines, final]


def weather_call() -> list[dict[str, Any]]:
    """A tool call to the "Tool calling" sample's function, arguments per its schema."""
    fn = code_sample("Tool calling")["tools"][0]["function"]
    required = fn["parameters"]["required"]
    args = {"location": "Paris", "format": fn["parameters"]["properties"]["format"]["enum"][0]}
    assert sorted(args) == sorted(required)
    return [{"function": {"name": fn["name"], "arguments": args}}]


def ndjson(lines: list[dict[str, Any]]) -> list[bytes | Any]:
    return [json.dumps(line).encode() + b"\n" for line in lines]


def expected(lines: list[dict[str, Any]]) -> dict[str, Any]:
    last = lines[-1]
    calls = [(c["function"]["name"], c["function"]["arguments"])
             for line in lines for c in line["message"].get("tool_calls") or []]
    reason = last["done_reason"]
    return {
        "content": "".join(line["message"]["content"] for line in lines),
        "reasoning": "".join(line["message"].get("thinking", "") for line in lines),
        "tools": calls,
        "finish_reason": "tool_calls" if calls and reason == "stop" else reason,
        "usage": {"prompt_tokens": last["prompt_eval_count"],
                  "completion_tokens": last["eval_count"],
                  "total_tokens": last["prompt_eval_count"] + last["eval_count"]},
    }


def assert_matches(result: dict[str, Any], want: dict[str, Any]) -> None:
    validate_chat_completion(result)
    choice = result["choices"][0]
    message = choice["message"]
    assert (message["content"] or "") == want["content"]
    assert message.get("reasoning", "") == want["reasoning"]
    calls = message.get("tool_calls") or []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == \
        want["tools"]
    assert all(c["id"] for c in calls)
    assert choice["finish_reason"] == want["finish_reason"]
    assert result["usage"] == want["usage"]


def convert(lines: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = OllamaStreamState()
    acc = ChunkAccumulator()
    chunks = []
    decoder = NDJSONDecoder()
    for line in decoder.feed(b"".join(ndjson(lines))) + decoder.close():
        for chunk in OllamaBackend._convert_completion_chunk_response(line, state):
            chunks.append(chunk.to_dict())
            validate_chat_completion_chunk(chunks[-1])
            acc.add(chunk)
    return acc.result().to_dict(), chunks


STREAMS = {
    "text": lambda: build_stream(),
    "thinking": lambda: build_stream(thinking="The user greets me. I should greet back."),
    "tool_call": lambda: build_stream(tool_calls=weather_call()),
    "length": lambda: build_stream(done_reason="length"),
}


# --- pure conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_conversion(name: str) -> None:
    lines = STREAMS[name]()
    result, chunks = convert(lines)
    assert_matches(result, expected(lines))
    assert result["model"] == chat_example()["model"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]
    assert len({c["id"] for c in chunks}) == 1
    # thinking never lands in content
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["delta"].get("reasoning"):
                assert not choice["delta"].get("content")


def test_tool_call_arrives_whole_with_index_and_id() -> None:
    lines = build_stream(tool_calls=[*weather_call(), *weather_call()])
    _, chunks = convert(lines)
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls")
             or []]
    assert [tc["index"] for tc in calls] == [0, 1]
    for tc in calls:
        assert tc["id"] and tc["type"] == "function"
        assert json.loads(tc["function"]["arguments"]) == weather_call()[0]["function"][
            "arguments"]
    assert calls[0]["id"] != calls[1]["id"]


def test_whole_reply_conversion() -> None:
    example = chat_example()
    result = OllamaBackend._convert_completion_response(example).to_dict()
    assert_matches(result, expected([example]))
    assert result["created"] == 1760742847  # 2025-10-17T23:14:07Z
    with_tools = {**example, "message": {"role": "assistant", "content": "",
                                         "tool_calls": weather_call()}}
    result = OllamaBackend._convert_completion_response(with_tools).to_dict()
    assert_matches(result, expected([with_tools]))
    assert result["choices"][0]["message"]["content"] is None


def test_error_line_raises() -> None:
    state = OllamaStreamState(provider="ollama")
    state.convert(build_stream()[0])
    with pytest.raises(ProviderError, match="out of memory"):
        state.convert({"error": "model runner out of memory"})


def params_for(body: dict[str, Any], **kw: Any) -> CompletionParams:
    return CompletionParams(model=body["model"], messages=body["messages"],
                            stream=body.get("stream", True), **kw)


def test_requests_equal_reference_samples() -> None:
    """Each ``x-codeSamples`` body of ``/api/chat`` is what the matching OpenAI params give."""
    fail = lambda m: pytest.fail(m)  # noqa: E731 - nothing may be reported here
    default = code_sample("Default")
    assert OllamaBackend._convert_completion_params(params_for(default), fail) == \
        {**default, "stream": True}
    plain = code_sample("Non-streaming")
    assert OllamaBackend._convert_completion_params(params_for(plain), fail) == plain
    structured = code_sample("Structured outputs")
    fmt = {"type": "json_schema", "json_schema": {"name": "countries",
                                                   "schema": structured["format"]}}
    assert OllamaBackend._convert_completion_params(
        params_for(structured, response_format=fmt), fail) == structured
    tools = code_sample("Tool calling")
    assert OllamaBackend._convert_completion_params(
        params_for(tools, tools=tools["tools"], tool_choice="auto"), fail) == tools
    thinking = code_sample("Thinking")
    assert OllamaBackend._convert_completion_params(
        params_for(thinking, reasoning_effort=thinking["think"]), fail) == \
        {**thinking, "stream": True}
    images = code_sample("Images")
    user = images["messages"][0]
    openai_user = {"role": "user", "content": [
        {"type": "text", "text": user["content"]},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + user["images"][0]}}]}
    body = OllamaBackend._convert_completion_params(
        CompletionParams(model=images["model"], messages=[openai_user], stream=True), fail)
    assert body == {**images, "stream": True}
    base64.b64decode(body["messages"][0]["images"][0], validate=True)


def test_options_format_think_and_history() -> None:
    reports: list[str] = []
    call = weather_call()[0]["function"]
    params = CompletionParams(
        model="qwen3", stream=False, max_tokens=128, temperature=0.2, top_p=0.9, seed=3,
        stop="END", presence_penalty=0.5, top_k=20, num_ctx=8192, keep_alive="5m",
        response_format={"type": "json_object"}, reasoning_effort="minimal",
        tools=[{"type": "function", "function": {"name": call["name"], "parameters": {},
                                                 "strict": True}}],
        tool_choice="required",
        messages=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
            {"role": "assistant", "content": None, "reasoning": "Call the tool.",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": call["name"],
                                          "arguments": json.dumps(call["arguments"])}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}])
    body = OllamaBackend._convert_completion_params(params, reports.append)
    assert body["options"] == {"num_predict": 128, "temperature": 0.2, "top_p": 0.9, "seed": 3,
                               "presence_penalty": 0.5, "stop": ["END"], "top_k": 20,
                               "num_ctx": 8192}
    assert body["keep_alive"] == "5m" and body["format"] == "json" and body["think"] == "low"
    assert body["stream"] is False
    assert body["tools"] == [{"type": "function",
                              "function": {"name": call["name"], "parameters": {}}}]
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "thinking": "Call the tool.",
         "tool_calls": [{"id": "call_1", "function": call}]},
        {"role": "tool", "content": "18 C", "tool_call_id": "call_1",
         "tool_name": call["name"]},
    ]
    assert len(reports) == 3
    assert "https://example.com/a.png" in reports[0]
    assert any("minimal" in r for r in reports) and any("tool_choice" in r for r in reports)
    # "none" is honoured by not offering the tools; "medium" is sent as true.
    params.tool_choice, params.reasoning_effort = "none", "medium"
    body = OllamaBackend._convert_completion_params(params, lambda m: None)
    assert "tools" not in body and body["think"] is True


def test_unknown_extra_warns() -> None:
    async def run() -> None:
        llm = await AnyLLM.acreate("ollama", api_base="http://127.0.0.1:9")
        async with llm:
            params = llm.prepare_params(None, [{"role": "user", "content": "x"}],
                                        {"top_k": 5, "frobnicate": 1, "n": 2}, stream=True)
            assert params.extra == {"top_k": 5} and params.n is None
            assert params.model == "llama3.2"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(run())
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, AnyLLMWarning))
    assert "'frobnicate'" in text and "'n'" in text and "top_k" not in text


# --- end to end ---------------------------------------------------------------------------------


def test_cli_piped_text_and_request(replay_server: ReplayServer, run_cli: Any) -> None:
    lines = build_stream()
    replay_server.enqueue(Response(headers=NDJSON, chunks=ndjson(lines)))
    r = run_cli("chat", "-p", "ollama", "--api-base", replay_server.url, "-m", "gemma4",
                "why is the sky blue?")
    assert r.code == 0, r.stderr
    assert r.stdout == expected(lines)["content"] + "\n"
    assert r.stderr == ""
    sent = replay_server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/api/chat")
    assert "authorization" not in sent.headers
    assert sent.json == {**code_sample("Default"), "stream": True}


def test_cli_jsonl_lines_validate(replay_server: ReplayServer, run_cli: Any) -> None:
    lines = build_stream(thinking="Hmm, a greeting.", tool_calls=weather_call())
    # One HTTP chunk per 7 bytes: lines split across reads.
    body = b"".join(ndjson(lines))
    replay_server.enqueue(Response(headers=NDJSON,
                                   chunks=[body[i:i + 7] for i in range(0, len(body), 7)]))
    r = run_cli("chat", "-p", "ollama", "--api-base", replay_server.url, "--jsonl", "hi",
                env={"OLLAMA_API_KEY": "ollama-key"})
    assert r.code == 0, r.stderr
    acc = ChunkAccumulator()
    for line in r.stdout.splitlines():
        obj = json.loads(line)
        validate_chat_completion_chunk(obj)
        acc.add(ChatCompletionChunk.model_validate(obj))
    assert_matches(acc.result().to_dict(), expected(lines))
    assert replay_server.requests[0].headers["authorization"] == "Bearer ollama-key"


def test_cli_json_whole_reply(replay_server: ReplayServer, run_cli: Any) -> None:
    example = chat_example()
    replay_server.enqueue(json_response(example))
    r = run_cli("chat", "-p", "ollama", "--api-base", replay_server.url, "--json", "hi")
    assert r.code == 0, r.stderr
    assert_matches(json.loads(r.stdout), expected([example]))
    assert replay_server.requests[0].json["stream"] is False


def test_cli_error_line_mid_stream_keeps_partial(replay_server: ReplayServer,
                                                 run_cli: Any) -> None:
    lines = build_stream()[:3]
    error = {"error": "an error was encountered while running the model: unexpected EOF"}
    replay_server.enqueue(Response(headers=NDJSON, chunks=ndjson([*lines, error])))
    r = run_cli("chat", "-p", "ollama", "--api-base", replay_server.url, "hi")
    assert r.code == 1
    assert r.stdout.startswith("".join(line["message"]["content"] for line in lines))
    assert "unexpected EOF" in r.stderr and "Traceback" not in r.stderr


def test_cli_not_found_status(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(json_response({"error": "model 'nope' not found"}, status=404))
    r = run_cli("chat", "-p", "ollama", "--api-base", replay_server.url, "-m", "nope", "hi")
    assert r.code == 1
    assert "model 'nope' not found" in r.stderr


def test_refused_think_level_is_retried_as_true(replay_server: ReplayServer) -> None:
    """Ollama refuses level strings for models without levels (ollama/ollama#12561):
    the request is sent again with ``think: true`` and the change is reported."""
    replay_server.enqueue(json_response(
        {"error": 'think value "high" is not supported for this model'}, status=400))
    lines = build_stream(thinking="Let me think.")
    replay_server.enqueue(Response(headers=NDJSON, chunks=ndjson(lines)))

    async def run() -> dict[str, Any]:
        llm = await AnyLLM.acreate("ollama", api_base=replay_server.url)
        acc = ChunkAccumulator()
        async with llm:
            async for chunk in llm.acompletion_stream(
                    "qwen3", [{"role": "user", "content": "hi"}], reasoning_effort="high"):
                acc.add(chunk)
        return acc.result().to_dict()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = asyncio.run(run())
    assert_matches(result, expected(lines))
    assert [r.json["think"] for r in replay_server.requests] == ["high", True]
    assert any("think=true" in str(w.message) for w in caught)


def test_list_models(replay_server: ReplayServer) -> None:
    tags = spec()["paths"]["/api/tags"]["get"]["responses"]["200"]["content"][
        "application/json"]["example"]
    replay_server.enqueue(json_response(tags))

    async def run() -> list[tuple[str, int]]:
        llm = await AnyLLM.acreate("ollama", api_base=replay_server.url)
        async with llm:
            return [(m.id, m.created) for m in await llm.alist_models()]

    models = asyncio.run(run())
    assert [m[0] for m in models] == [m["name"] for m in tags["models"]]
    assert models[0][1] == 1759559643  # 2025-10-03T23:34:03-07:00
    assert replay_server.requests[0].path == "/api/tags"
