"""The ``gemini`` backend on recorded Gemini traffic.

Recordings: simonw/llm-gemini VCR cassettes (``streamGenerateContent`` without ``alt=sse``: a
gzip'ed JSON array of events, with the real request bodies: thoughts, thoughtSignature, tools,
schemas) and vercel/ai ``__fixtures__`` (``*.chunks.txt``: one event per line; ``*.json``: whole
responses; the 429 with RetryInfo). Conversions are checked as pure functions against an
independent reading of each recording, then end to end: ``anyllm chat -p gemini`` as a process
against the loopback server replaying the recorded events as SSE.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.gemini import GeminiBackend, model_path, vertex_base
from anyllm_cli.backends.gemini_convert import (
    SKIP_SIGNATURE,
    GeminiStream,
    convert_params,
    google_error,
)
from anyllm_cli.errors import (
    AnyLLMWarning,
    AuthenticationError,
    ConfigError,
    InvalidParameterError,
    InvalidRequestError,
    RateLimitError,
    UnsupportedParameterError,
)
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams
from tests.conftest import SECRET
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, json_response, load_jsonl_chunks, sse_from_chunks

FIXTURES = Path(__file__).parent / "fixtures"
VERCEL = FIXTURES / "vercel__ai/packages/google/src/__fixtures__"
CASSETTES = FIXTURES / "simonw__llm-gemini/tests/cassettes/test_gemini"
# Vertex streams function-call arguments in pieces (partialArgs); checked on their own below.
PARTIAL_ARGS = {"google-stream-no-args-tool-call", "google-stream-tool-call-arguments",
                "google-stream-tool-call-array-arguments-missing-terminal-function-call",
                "google-vertex-stream-tool-call-arguments-nested.1"}
WHOLE_CALL_STREAMS = sorted(p for p in VERCEL.glob("*.chunks.txt")
                            if p.name.removesuffix(".chunks.txt") not in PARTIAL_ARGS)


# --- reading the recordings (independently of the code under test) ---------------------------


def cassette(name: str) -> list[dict[str, Any]]:
    """The interactions of an llm-gemini cassette: uri, request JSON and the response events.

    The stream was recorded without ``alt=sse``, so the body is one JSON array (gzip'ed)."""
    data = yaml.safe_load((CASSETTES / name).read_text())
    out = []
    for it in data["interactions"]:
        raw = it["response"]["body"]["string"]
        if isinstance(raw, bytes):
            raw = gzip.decompress(raw)
        out.append({"uri": it["request"]["uri"], "request": json.loads(it["request"]["body"]),
                    "events": json.loads(raw)})
    return out


def all_cassette_streams() -> list[tuple[str, list[dict[str, Any]]]]:
    return [(f"{p.stem}#{i}", it["events"]) for p in sorted(CASSETTES.glob("*.yaml"))
            for i, it in enumerate(cassette(p.name))]


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A plain reading of recorded events: answer text, thought text, calls, finish, usage."""
    text, thoughts, calls, finish, usage = "", "", [], None, None
    for event in events:
        usage = event.get("usageMetadata", usage)
        for cand in event.get("candidates", []):
            for part in cand.get("content", {}).get("parts", []):
                if "functionCall" in part:
                    fc = part["functionCall"]
                    calls.append({"name": fc["name"], "args": fc.get("args", {}),
                                  "id": fc.get("id"), "sig": part.get("thoughtSignature")})
                elif part.get("thought"):
                    thoughts += part["text"]
                else:
                    text += part.get("text", "")
            finish = cand.get("finishReason", finish)
    return {"text": text, "thoughts": thoughts, "calls": calls, "finish": finish, "usage": usage}


def expected_finish(native: str, calls: list[Any]) -> str:
    return {"MAX_TOKENS": "length", "SAFETY": "content_filter"}.get(
        native, "tool_calls" if calls else "stop")


def expected_usage(meta: dict[str, Any]) -> dict[str, int]:
    thoughts = meta.get("thoughtsTokenCount", 0)
    return {"prompt_tokens": meta["promptTokenCount"],
            "completion_tokens": meta.get("candidatesTokenCount", 0) + thoughts,
            "total_tokens": meta["totalTokenCount"]}


def run_stream(events: list[Any], model: str = "gemini-x"
               ) -> tuple[list[ChatCompletionChunk], ChatCompletion]:
    state = GeminiStream(model)
    chunks = [c for e in events for c in GeminiBackend._convert_completion_chunk_response(e, state)]
    chunks += state.finish()
    acc = ChunkAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    return chunks, keep_signatures(acc.result(), chunks)


def keep_signatures(result: ChatCompletion, chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    """Carry ``extra_content`` (the thought signatures) from the deltas into the reassembled
    message, which ChunkAccumulator does not do (yet)."""
    for chunk in chunks:
        for choice in chunk.choices:
            message = result.choices[choice.index].message
            extra = (choice.delta.model_extra or {}).get("extra_content")
            if extra:
                setattr(message, "extra_content", extra)  # noqa: B010
            for tc in choice.delta.tool_calls or ():
                extra = (tc.model_extra or {}).get("extra_content")
                if extra and message.tool_calls:
                    setattr(message.tool_calls[tc.index], "extra_content", extra)  # noqa: B010
    return result


def assert_matches(result: dict[str, Any], exp: dict[str, Any]) -> None:
    msg = result["choices"][0]["message"]
    assert (msg["content"] or "") == exp["text"]
    assert (msg.get("reasoning") or "") == exp["thoughts"]
    assert result["choices"][0]["finish_reason"] == expected_finish(exp["finish"], exp["calls"])
    calls = msg.get("tool_calls") or []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == \
        [(c["name"], c["args"]) for c in exp["calls"]]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == len(ids)
    for call, rec in zip(calls, exp["calls"], strict=True):
        assert call["id"] == rec["id"] if rec["id"] else call["id"].startswith("call_")
    usage = result["usage"]
    assert {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == \
        expected_usage(exp["usage"])


# --- pure conversions on the recordings ------------------------------------------------------


def test_the_recordings_cover_thoughts_tools_signatures_and_schemas() -> None:
    streams = all_cassette_streams()
    assert len(streams) == 15
    readings = [expected(events) for _, events in streams]
    assert any(r["thoughts"] for r in readings)
    assert any(r["calls"] for r in readings)
    assert any(c["id"] for r in readings for c in r["calls"])  # Gemini sent its own id once
    assert any(c["sig"] for r in readings for c in r["calls"])
    assert len(WHOLE_CALL_STREAMS) == 5


@pytest.mark.parametrize("name,events", all_cassette_streams(), ids=lambda v: v
                         if isinstance(v, str) else "")
def test_recorded_llm_gemini_stream(name: str, events: list[dict[str, Any]]) -> None:
    """Each event of the JSON-array stream converts; every chunk validates; the reassembly has
    the recorded text, thoughts (as reasoning), calls, finish reason and LAST usage."""
    chunks, result = run_stream(events)
    for chunk in chunks:
        validate_chat_completion_chunk(chunk.to_dict())
    validate_chat_completion(result.to_dict())
    assert_matches(result.to_dict(), expected(events))
    # Each call is one fragment carrying id, name and the whole arguments.
    fragments = [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or ()]
    assert len(fragments) == len(expected(events)["calls"])
    assert all(f.id and f.function and f.function.name for f in fragments)
    # Usage comes once, on the closing chunk with no choices.
    assert [c for c in chunks if c.usage] == chunks[-1:] and chunks[-1].choices == []


@pytest.mark.parametrize("path", WHOLE_CALL_STREAMS, ids=lambda p: p.name)
def test_recorded_vercel_stream(path: Path) -> None:
    events = load_jsonl_chunks(path)
    chunks, result = run_stream(events)
    for chunk in chunks:
        validate_chat_completion_chunk(chunk.to_dict())
    assert_matches(result.to_dict(), expected(events))
    # The first chunk opens the assistant message; the id is the recorded responseId.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {events[0]["responseId"]}


@pytest.mark.parametrize("path", sorted(p for p in VERCEL.glob("*.json") if "429" not in p.name),
                         ids=lambda p: p.name)
def test_recorded_whole_response(path: Path) -> None:
    data = json.loads(path.read_text())
    reply = GeminiBackend._convert_completion_response(data, model="asked-for")
    validate_chat_completion(reply.to_dict())
    assert_matches(reply.to_dict(), expected([data]))
    assert reply.model == data["modelVersion"] and reply.id == data["responseId"]
    # The signature is kept where the next request will need it.
    parts = data["candidates"][0]["content"]["parts"]
    sig = parts[-1]["thoughtSignature"]
    message = reply.to_dict()["choices"][0]["message"]
    holder = message["tool_calls"][0] if "functionCall" in parts[-1] else message
    assert holder["extra_content"] == {"google": {"thought_signature": sig}}


def test_vertex_partial_arguments_are_assembled_into_whole_calls() -> None:
    """Vertex's streamFunctionCallArguments: ``partialArgs`` pieces by JSON path, strings split
    with willContinue, a call closed by an empty functionCall or by the last piece."""
    def calls(name: str) -> list[tuple[str, Any]]:
        chunks, result = run_stream(load_jsonl_chunks(VERCEL / f"{name}.chunks.txt"))
        for chunk in chunks:
            validate_chat_completion_chunk(chunk.to_dict())
        assert result.choices[0].finish_reason == "tool_calls"
        return [(c.function.name, json.loads(c.function.arguments))
                for c in result.choices[0].message.tool_calls or ()]

    # Values as the recordings spell them, piece by piece.
    assert calls("google-stream-tool-call-arguments") == [
        ("getWeather", {"location": "Boston"}), ("getWeather", {"location": "San Francisco"})]
    assert calls("google-stream-no-args-tool-call") == [
        ("read_theme", {}), ("read_screen", {"id": "A"}), ("read_screen", {"id": "B"}),
        ("read_screen", {"id": "C"})]
    assert calls("google-stream-tool-call-array-arguments-missing-terminal-function-call") == [
        ("writeItems", {"operations": [
            {"action": "add", "description": "Fresh red apple", "itemid": "apple_001",
             "price": 0.5},
            {"action": "add", "description": "Ripe yellow banana", "itemid": "banana_001",
             "price": 0.3}]})]
    events = load_jsonl_chunks(VERCEL / "google-vertex-stream-tool-call-arguments-nested.1"
                               ".chunks.txt")
    pieces: dict[str, str] = {}
    for e in events:
        for part in e["candidates"][0]["content"]["parts"]:
            for item in part.get("functionCall", {}).get("partialArgs", []):
                if "stringValue" in item:
                    pieces[item["jsonPath"]] = pieces.get(item["jsonPath"], "") + \
                        item["stringValue"]
    [(name, args)] = calls("google-vertex-stream-tool-call-arguments-nested.1")
    assert name == "cookRecipe"
    for path, value in pieces.items():  # every string lands at its path
        node: Any = args
        for step in path.removeprefix("$.").replace("]", "").replace("[", ".").split("."):
            node = node[int(step)] if step.isdigit() else node[step]
        assert node == value


# --- requests --------------------------------------------------------------------------------


def camel(obj: Any) -> Any:
    """llm-gemini sent some names in snake_case (the API takes both)."""
    names = {"function_call": "functionCall", "function_response": "functionResponse",
             "response_mime_type": "responseMimeType", "response_schema": "responseSchema"}
    if isinstance(obj, dict):
        return {names.get(k, k): camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [camel(v) for v in obj]
    return obj


def params(**kw: Any) -> CompletionParams:
    kw.setdefault("model", "gemini-2.5-flash")
    kw.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return CompletionParams(**kw)


def tools_of(recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAI tools a user would pass for the recorded function declarations."""
    return [{"type": "function", "function": {
        "name": d["name"], "description": d["description"], "parameters": d["parameters"]}}
        for t in recorded["tools"] for d in t["functionDeclarations"]]


@pytest.mark.parametrize("name", ["test_tools.yaml", "test_tools_with_nested_pydantic_models.yaml",
                                  "test_tools_with_gemini_3_thought_signatures.yaml"])
def test_tool_turns_round_trip_to_the_recorded_requests(name: str) -> None:
    """Our reply to turn N, put back into the history with the tool's result, converts into the
    functionCall / functionResponse parts (name, args, id, thoughtSignature) that llm-gemini
    sent in turn N+1 and Gemini accepted."""
    turns = cassette(name)
    first = turns[0]["request"]
    model = turns[0]["uri"].rsplit("/", 1)[1].split(":")[0]
    messages: list[dict[str, Any]] = [{"role": "user",
                                       "content": first["contents"][0]["parts"][0]["text"]}]
    for i, turn in enumerate(turns[:-1]):
        _, reply = run_stream(turn["events"], model)
        message = reply.choices[0].message.to_dict()
        messages.append(message)
        recorded = camel(turns[i + 1]["request"])
        results = [p["functionResponse"] for c in recorded["contents"] for p in c["parts"]
                   if "functionResponse" in p]
        for call in message["tool_calls"]:  # the recorded result of this call
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": json.dumps(results[len([
                                 m for m in messages if m["role"] == "tool"])]["response"])})
        body = convert_params(params(model=model, messages=messages, tools=tools_of(first)))

        def calls_and_results(contents: list[dict[str, Any]]) -> list[Any]:
            out: list[Any] = []
            for content in contents:
                for part in content["parts"]:
                    if "functionCall" in part:
                        fc = dict(part["functionCall"])
                        fc.pop("id", None)  # llm-gemini made up its own ids (or sent none)
                        out.append((content["role"], fc, part.get("thoughtSignature")))
                    elif "functionResponse" in part:
                        fr = {k: v for k, v in part["functionResponse"].items() if k != "id"}
                        out.append((content["role"], fr))
            return out

        assert calls_and_results(body["contents"]) == calls_and_results(recorded["contents"])
        # Gemini's own id (whZntcQw) goes back unchanged on both parts.
        if "whZntcQw" in json.dumps(recorded):
            assert json.dumps(body).count('"id": "whZntcQw"') == 2


@pytest.mark.parametrize("name", [p.name for p in sorted(CASSETTES.glob("*.yaml"))
                                  if "response_schema" in p.read_text()
                                  or "functionDeclarations" in p.read_text()])
def test_tools_and_schemas_are_sent_as_standard_json_schema(name: str) -> None:
    """The recorded declarations and response schemas, given in OpenAI's shape, arrive
    unchanged in parametersJsonSchema / responseJsonSchema with the recorded MIME type."""
    recorded = camel(cassette(name)[0]["request"])
    kw: dict[str, Any] = {"messages": [{"role": "user",
                                        "content": recorded["contents"][0]["parts"][0]["text"]}]}
    if "tools" in recorded:
        kw["tools"] = tools_of(recorded)
    gen = recorded.get("generationConfig", {})
    if "responseSchema" in gen:
        kw["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "out", "schema": gen["responseSchema"], "strict": True}}
    body = convert_params(params(**kw))
    assert body["contents"] == recorded["contents"]
    for ours, theirs in zip(body.get("tools", []), recorded.get("tools", []), strict=True):
        assert [(d["name"], d.get("description"), d["parametersJsonSchema"])
                for d in ours["functionDeclarations"]] == \
            [(d["name"], d["description"], d["parameters"]) for d in theirs["functionDeclarations"]]
    if "responseSchema" in gen:
        assert body["generationConfig"]["responseMimeType"] == gen["responseMimeType"]
        assert body["generationConfig"]["responseJsonSchema"] == gen["responseSchema"]


def test_generation_config_and_tool_choice() -> None:
    body = convert_params(params(
        temperature=0.3, top_p=0.9, max_tokens=10, max_completion_tokens=20, stop="END", seed=7,
        n=2, presence_penalty=0.5, frequency_penalty=-0.5, logprobs=True, top_logprobs=3,
        response_format={"type": "json_object"}, top_k=40))
    assert body["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "maxOutputTokens": 20, "stopSequences": ["END"],
        "seed": 7, "candidateCount": 2, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
        "responseLogprobs": True, "logprobs": 3, "topK": 40,
        "responseMimeType": "application/json"}
    tool = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    for choice, config in [
            ("auto", {"mode": "AUTO"}), ("required", {"mode": "ANY"}), ("none", {"mode": "NONE"}),
            ({"type": "function", "function": {"name": "f"}},
             {"mode": "ANY", "allowedFunctionNames": ["f"]})]:
        body = convert_params(params(tools=tool, tool_choice=choice))
        assert body["toolConfig"] == {"functionCallingConfig": config}
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "f", "parametersJsonSchema": {"type": "object"}}]}]


def test_reasoning_effort_maps_to_thinking_config() -> None:
    reports: list[str] = []
    think = [convert_params(params(model=m, reasoning_effort=e), reports.append)
             ["generationConfig"]["thinkingConfig"]
             for m, e in [("gemini-2.5-flash", "low"), ("gemini-2.5-flash", "high"),
                          ("gemini-2.5-flash", "none"), ("gemini-3-pro-preview", "medium"),
                          ("gemini-3-flash-preview", "none")]]
    assert think == [{"thinkingBudget": 1024, "includeThoughts": True},
                     {"thinkingBudget": 24576, "includeThoughts": True},
                     {"thinkingBudget": 0},
                     {"thinkingLevel": "MEDIUM", "includeThoughts": True},
                     {"thinkingLevel": "MINIMAL"}]
    assert len(reports) == 1 and "cannot turn thinking off" in reports[0]


def test_messages_system_images_and_tool_results() -> None:
    reports: list[str] = []
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
            {"type": "image_url", "image_url": {"url": "file:///tmp/x.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}}]},
        {"role": "tool", "tool_call_id": "a", "content": "plain text"},
        {"role": "tool", "tool_call_id": "b", "content": "[1, 2]"},
    ]
    body = convert_params(params(model="gemini-3-flash-preview", messages=messages),
                          reports.append)
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Use metric."}]}
    user, model, results = body["contents"]
    assert user["parts"][1:] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}}]
    assert len(reports) == 1 and "file:///tmp/x.png" in reports[0]
    # Gemini 3 refuses a call without a signature: history from elsewhere gets the placeholder
    # on the first call of the turn.
    assert [p.get("thoughtSignature") for p in model["parts"]] == [SKIP_SIGNATURE, None]
    assert results == {"role": "user", "parts": [
        {"functionResponse": {"name": "f", "response": {"result": "plain text"}, "id": "a"}},
        {"functionResponse": {"name": "g", "response": {"result": [1, 2]}, "id": "b"}}]}
    with pytest.raises(InvalidParameterError, match="tool_call_id 'zzz'"):
        convert_params(params(messages=[{"role": "tool", "tool_call_id": "zzz", "content": "1"}]))


def test_what_gemini_cannot_take_is_reported() -> None:
    async def main() -> None:
        llm = await AnyLLM.acreate("gemini", api_key=SECRET)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                llm.prepare_params("gemini-2.5-flash", [{"role": "user", "content": "x"}],
                                   {"user": "u1", "logit_bias": {"1": 2}, "top_k": 3},
                                   stream=False)
            said = " ".join(str(w.message) for w in caught if w.category is AnyLLMWarning)
            assert "'user'" in said and "'logit_bias'" in said and "top_k" not in said
            with pytest.raises(UnsupportedParameterError, match="parallel"):
                llm.strict = True
                GeminiBackend._convert_completion_params(
                    params(parallel_tool_calls=False), llm.report_unsupported)
        finally:
            await llm.aclose()

    asyncio.run(main())


# --- safety, errors --------------------------------------------------------------------------


def test_blocked_prompt_and_safety_stop_are_content_filter() -> None:
    # Shapes from the API reference (PromptFeedback, FinishReason); not in any recording.
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
               "modelVersion": "gemini-2.5-flash", "responseId": "r1"}
    reply = GeminiBackend._convert_completion_response(blocked, model="m")
    validate_chat_completion(reply.to_dict())
    assert reply.choices[0].finish_reason == "content_filter"
    assert "PROHIBITED_CONTENT" in (reply.choices[0].message.refusal or "")
    _, result = run_stream([blocked])
    assert result.choices[0].finish_reason == "content_filter"
    assert "PROHIBITED_CONTENT" in (result.choices[0].message.refusal or "")
    safety = {"candidates": [{"content": {"parts": [{"text": "Partial"}], "role": "model"},
                              "finishReason": "SAFETY", "index": 0}], "responseId": "r2"}
    assert run_stream([safety])[1].choices[0].finish_reason == "content_filter"


def test_google_error_bodies() -> None:
    body = json.loads((VERCEL / "google-429-retry-info.json").read_text())
    err = google_error(429, body, provider="gemini")
    assert isinstance(err, RateLimitError) and err.retry_after == 34.4
    assert "You exceeded your current quota" in str(err)
    bad_key = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                         "status": "INVALID_ARGUMENT", "details": [
                             {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                              "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}
    err = google_error(400, bad_key, provider="gemini", key_hint="GEMINI_API_KEY")
    assert isinstance(err, AuthenticationError) and "GEMINI_API_KEY was rejected" in str(err)
    state = GeminiStream("m")
    with pytest.raises(InvalidRequestError, match="API key not valid"):
        state.convert(json.dumps(bad_key | {"error": {**bad_key["error"], "details": []}}))


# --- the HTTP path, in process ---------------------------------------------------------------


def test_key_variables_model_listing_and_paths(replay_server: ReplayServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)  # the second variable, GEMINI_API_KEY unset
    page1 = {"models": [
        {"name": "models/gemini-2.5-flash", "supportedGenerationMethods": ["generateContent"]},
        {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]}],
        "nextPageToken": "p2"}
    page2 = {"models": [{"name": "models/gemini-3-pro-preview",
                         "supportedGenerationMethods": ["generateContent", "countTokens"]}]}
    replay_server.enqueue(json_response(page1), json_response(page2))

    async def main() -> list[str]:
        llm = await AnyLLM.acreate("gemini", api_base=replay_server.url + "/v1beta")
        try:
            return [m.id for m in await llm.alist_models()]
        finally:
            await llm.aclose()

    assert asyncio.run(main()) == ["gemini-2.5-flash", "gemini-3-pro-preview"]
    first, second = replay_server.requests
    assert first.path == "/v1beta/models" and first.headers["x-goog-api-key"] == SECRET
    assert second.params["pageToken"] == "p2"
    assert model_path("tunedModels/my-tune") == "tunedModels/my-tune"


def test_vertex_is_the_same_wire_with_a_bearer_token(replay_server: ReplayServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", SECRET)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-1")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    events = load_jsonl_chunks(VERCEL / "google-stream-tool-call-arguments.chunks.txt")
    replay_server.enqueue(sse_from_chunks(events, done=False))
    template = replay_server.url + "/v1/projects/{project}/locations/{location}/publishers/google"

    async def main() -> ChatCompletion:
        llm = await AnyLLM.acreate("vertex", api_base=template)
        acc = ChunkAccumulator()
        try:
            async for chunk in llm.acompletion_stream(messages=[{"role": "user", "content": "x"}]):
                acc.add(chunk)
        finally:
            await llm.aclose()
        return acc.result()

    reply = asyncio.run(main())
    assert [c.function.name for c in reply.choices[0].message.tool_calls or ()] == \
        ["getWeather", "getWeather"]
    [req] = replay_server.requests
    assert req.path == ("/v1/projects/proj-1/locations/europe-west4/publishers/google/models/"
                        "gemini-2.5-flash:streamGenerateContent")
    assert req.params == {"alt": "sse"} and req.headers["authorization"] == f"Bearer {SECRET}"
    assert "x-goog-api-key" not in req.headers
    assert vertex_base("https://{location}-aiplatform.googleapis.com/v1/projects/{project}",
                       {"project": "p", "location": "global"}, {}) == \
        "https://aiplatform.googleapis.com/v1/projects/p"
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        vertex_base("https://x/{project}", {}, {})


# --- end to end: anyllm chat as a process ----------------------------------------------------


def cli(run_cli: Any, server: ReplayServer, *args: str) -> Any:
    result = run_cli("chat", "-p", "gemini", "--api-base", server.url + "/v1beta", *args,
                     env={"GEMINI_API_KEY": SECRET})
    assert SECRET not in result.stdout + result.stderr
    return result


def test_cli_streams_text_and_hides_thoughts(run_cli: Any, replay_server: ReplayServer) -> None:
    [turn] = cassette("test_prompt.yaml")
    replay_server.enqueue(sse_from_chunks(turn["events"], done=False))
    result = cli(run_cli, replay_server, "-m", "gemini-flash-latest", "Name for a pet pelican")
    reading = expected(turn["events"])
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == reading["text"].strip()
    assert reading["thoughts"] and reading["thoughts"][:40] not in result.stdout
    [req] = replay_server.requests
    assert req.path == "/v1beta/models/gemini-flash-latest:streamGenerateContent"
    assert req.params == {"alt": "sse"} and req.headers["x-goog-api-key"] == SECRET
    assert req.json["contents"] == [{"role": "user",
                                     "parts": [{"text": "Name for a pet pelican"}]}]


def test_cli_jsonl_tool_call(run_cli: Any, replay_server: ReplayServer) -> None:
    events = load_jsonl_chunks(VERCEL / "google-tool-call.chunks.txt")
    replay_server.enqueue(sse_from_chunks(events, done=False))
    result = cli(run_cli, replay_server, "-m", "gemini-3-pro-preview", "--jsonl", "Weather?")
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        validate_chat_completion_chunk(line)
    [call] = [tc for line in lines for c in line["choices"]
              for tc in c["delta"].get("tool_calls", [])]
    fc = events[0]["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call["function"]["name"] == fc["name"]
    assert json.loads(call["function"]["arguments"]) == fc["args"]
    assert [c["finish_reason"] for line in lines for c in line["choices"]
            if c["finish_reason"]] == ["tool_calls"]
    assert lines[-1]["usage"]["total_tokens"] == events[-1]["usageMetadata"]["totalTokenCount"]


def test_cli_json_whole_response(run_cli: Any, replay_server: ReplayServer) -> None:
    data = json.loads((VERCEL / "google-text.json").read_text())
    replay_server.enqueue(json_response(data))
    result = cli(run_cli, replay_server, "-m", "gemini-3-pro-preview", "--json", "Count the r")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    validate_chat_completion(out)
    assert out["choices"][0]["message"]["content"] == \
        data["candidates"][0]["content"]["parts"][0]["text"]
    assert replay_server.requests[0].path == "/v1beta/models/gemini-3-pro-preview:generateContent"


def test_cli_waits_for_retry_info_then_succeeds(run_cli: Any,
                                                replay_server: ReplayServer) -> None:
    body = json.loads((VERCEL / "google-429-retry-info.json").read_text())
    body = copy.deepcopy(body)
    for detail in body["error"]["details"]:
        if "retryDelay" in detail:
            detail["retryDelay"] = "1s"  # the recorded 34.4s, shortened for the test
    events = load_jsonl_chunks(VERCEL / "google-text.chunks.txt")
    replay_server.enqueue(json_response(body, status=429), sse_from_chunks(events, done=False))
    result = cli(run_cli, replay_server, "-m", "gemini-3-pro-preview", "Count the r")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == expected(events)["text"].strip()
    first, second = replay_server.requests
    assert second.received_at - first.received_at >= 0.95


def test_cli_invalid_argument_exits_1_with_the_message(run_cli: Any,
                                                       replay_server: ReplayServer) -> None:
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                      "message": "* GenerateContentRequest.contents: contents is not specified",
                      "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                   "fieldViolations": [{"field": "contents"}]}]}}
    replay_server.enqueue(json_response(body, status=400))
    result = cli(run_cli, replay_server, "Hi")
    assert result.code == 1
    assert "contents is not specified" in result.stderr and "400" in result.stderr
    assert result.stdout == ""
    assert len(replay_server.requests) == 1  # a 400 is not retried
