"""The bedrock backend: conversions on vercel/ai's recorded Converse traffic, requests checked
against Bedrock's service model, SigV4 against the AWS test suite, and the CLI end to end
through a loopback server that replays CRC-correct binary event streams."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends import bedrock_convert as conv
from anyllm_cli.backends.bedrock import BedrockBackend, model_path, sigv4_headers
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
)
from anyllm_cli.transport.eventstream import encode_message
from anyllm_cli.types import ChatCompletionChunk, CompletionParams
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, Request, Response, json_response, load_jsonl_chunks

FIX = Path(__file__).resolve().parent / "fixtures"
BEDROCK = FIX / "vercel__ai" / "packages" / "amazon-bedrock" / "src" / "__fixtures__"
STREAMS = sorted(BEDROCK.glob("*.chunks.txt"))
RESPONSES = sorted(BEDROCK.glob("*.json"))
SERVICE = json.loads((FIX / "boto__botocore" / "botocore" / "data" / "bedrock-runtime"
                      / "2023-09-30" / "service-2.json").read_text())
SHAPES: dict[str, Any] = SERVICE["shapes"]
SUITE = FIX / "boto__botocore" / "tests" / "unit" / "auth" / "aws4_testsuite"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOKEN = "bedrock-api-key-SENTINEL-0123456789"
EVENTSTREAM = {"content-type": "application/vnd.amazon.eventstream"}


# --- helpers -----------------------------------------------------------------------------------


def converted(events: list[dict[str, Any]]) -> list[ChatCompletionChunk]:
    state = conv.ConverseStreamConverter(id="chatcmpl-x", model=MODEL, created=1)
    return [c for e in events for c in BedrockBackend._convert_completion_chunk_response(e, state)]


def expected_from_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the recording says, read straight off the events."""
    text, reasoning, calls, stop, usage = "", "", {}, None, None
    for event in events:
        ((kind, body),) = event.items()
        if kind == "contentBlockStart" and "toolUse" in body["start"]:
            use = body["start"]["toolUse"]
            calls[body["contentBlockIndex"]] = [use["toolUseId"], use["name"], ""]
        elif kind == "contentBlockDelta":
            delta = body["delta"]
            text += delta.get("text", "")
            reasoning += delta.get("reasoningContent", {}).get("text", "")
            if "toolUse" in delta:
                calls[body["contentBlockIndex"]][2] += delta["toolUse"]["input"]
        elif kind == "messageStop":
            stop = body["stopReason"]
        elif kind == "metadata":
            usage = body["usage"]
    return {"text": text, "reasoning": reasoning, "calls": [calls[k] for k in sorted(calls)],
            "stop": stop, "usage": usage}


def frames(events: list[dict[str, Any]]) -> list[bytes | Any]:
    out: list[bytes | Any] = []
    for event in events:
        ((kind, body),) = event.items()
        # Bedrock pads every payload with a junk "p" field (wire-formats.md §7).
        payload = json.dumps({**body, "p": "abcdefghijklmnopqrstuvwxyz"}).encode()
        out.append(encode_message({":event-type": kind, ":content-type": "application/json",
                                   ":message-type": "event"}, payload))
    return out


def exception_frame(kind: str, message: str) -> bytes:
    return encode_message({":message-type": "exception", ":exception-type": kind,
                           ":content-type": "application/json"},
                          json.dumps({"message": message}).encode())


def check_shape(value: Any, name: str, where: str = "body") -> None:
    """Assert that ``value`` is allowed by the service model's shape ``name``."""
    shape = SHAPES[name]
    kind = shape["type"]
    if shape.get("document"):
        return
    if kind == "structure":
        assert isinstance(value, dict), f"{where}: expected an object"
        members = {k: m for k, m in shape["members"].items() if "location" not in m}
        unknown = set(value) - set(members)
        assert not unknown, f"{where}: {sorted(unknown)} not in {name}"
        for req in shape.get("required", []):
            if req in members:
                assert req in value, f"{where}: {req} required by {name}"
        if shape.get("union"):
            assert len(value) == 1, f"{where}: union {name} needs exactly one member"
        for key, item in value.items():
            check_shape(item, members[key]["shape"], f"{where}.{key}")
    elif kind == "list":
        assert isinstance(value, list), f"{where}: expected a list"
        assert shape.get("min", 0) <= len(value) <= shape.get("max", 10**9), where
        for i, item in enumerate(value):
            check_shape(item, shape["member"]["shape"], f"{where}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), where
        for k, item in value.items():
            check_shape(k, shape["key"]["shape"], f"{where} key")
            check_shape(item, shape["value"]["shape"], f"{where}.{k}")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: expected a string"
        if "enum" in shape:
            assert value in shape["enum"], f"{where}: {value!r} not in {shape['enum']}"
        assert shape.get("min", 0) <= len(value) <= shape.get("max", 10**9), where
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), where
        assert shape.get("min", -(10**18)) <= value <= shape.get("max", 10**18), where
    elif kind in ("float", "double"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert shape.get("min", -1e18) <= value <= shape.get("max", 1e18), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    elif kind == "blob":
        assert isinstance(value, str) and base64.b64decode(value, validate=True), where
    else:  # pragma: no cover - a shape type the request never uses
        raise AssertionError(f"{where}: unexpected shape type {kind}")


def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials from anywhere, and no instance-metadata lookups off this machine."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


# --- stream conversion on the recordings --------------------------------------------------------


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name)
def test_recorded_stream_reassembles_to_the_recording(path: Path) -> None:
    events = load_jsonl_chunks(path)
    chunks = converted(events)
    for chunk in chunks:
        validate_chat_completion_chunk(chunk.to_dict())
    acc = ChunkAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    reply = acc.result()
    validate_chat_completion(reply.to_dict())
    want = expected_from_events(events)
    message = reply.choices[0].message
    assert (message.content or "") == want["text"]
    assert (message.reasoning or "") == want["reasoning"]
    got_calls = [[c.id, c.function.name, c.function.arguments] for c in message.tool_calls or []]
    # A tool call that streamed no argument text gets "{}" (a JSON object, as OpenAI sends).
    assert got_calls == [[i, n, a or "{}"] for i, n, a in want["calls"]]
    assert reply.choices[0].finish_reason == conv.STOP_REASONS[want["stop"]]
    if want["usage"]:
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens,
                reply.usage.total_tokens) == (want["usage"]["inputTokens"],
                                              want["usage"]["outputTokens"],
                                              want["usage"]["totalTokens"])
        # The usage chunk comes after the finish chunk even when metadata was sent first.
        assert chunks[-1].usage is not None and chunks[-1].choices == []
        assert chunks[-2].choices[0].finish_reason is not None
    # Exactly one chunk names the role, the first.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks for ch in c.choices if ch.delta.role) == 1


def test_streamed_tool_calls_are_indexed_with_id_and_name_first() -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-json-tool-text-then-weather-then-json"
                               ".1.chunks.txt")
    fragments = [tc for c in converted(events) for ch in c.choices
                 for tc in ch.delta.tool_calls or []]
    by_index: dict[int, list[Any]] = {}
    for tc in fragments:
        by_index.setdefault(tc.index, []).append(tc)
    assert sorted(by_index) == [0, 1]
    for calls in by_index.values():
        first, *rest = calls
        assert first.id and first.function is not None and first.function.name
        assert all(tc.id is None and tc.function is not None and tc.function.name is None
                   for tc in rest)
    assert [c[0].id for c in by_index.values()] == ["weather-tool-1", "weather-tool-2"]


def test_reasoning_signature_streams_as_reasoning_details() -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-reasoning.chunks.txt")
    signature = next(e["contentBlockDelta"]["delta"]["reasoningContent"]["signature"]
                     for e in events if "signature" in json.dumps(e))
    details = [d for c in converted(events) for ch in c.choices
               for d in (ch.delta.model_extra or {}).get("reasoning_details", [])]
    assert details == [{"type": "reasoning.text", "signature": signature}]
    # Reasoning never leaks into content.
    content = "".join(ch.delta.content or "" for c in converted(events) for ch in c.choices)
    assert "Let me count" not in content


@pytest.mark.parametrize(("kind", "error", "status"), [
    ("throttlingException", RateLimitError, 429),
    ("validationException", InvalidRequestError, 400),
    ("modelStreamErrorException", ProviderError, 424),
    ("internalServerException", ProviderError, 500),
    ("serviceUnavailableException", ProviderError, 503),
])
def test_exception_events_map_to_errors(kind: str, error: type[AnyLLMError], status: int) -> None:
    state = conv.ConverseStreamConverter(id="x", model=MODEL, created=1, provider="bedrock")
    with pytest.raises(error) as info:
        state.convert({kind: {"message": "it went wrong"}})
    assert info.value.status_code == status
    assert kind in str(info.value) and "it went wrong" in str(info.value)


# --- whole responses ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.name)
def test_recorded_response_converts(path: Path) -> None:
    data = json.loads(path.read_text())
    reply = BedrockBackend._convert_completion_response(data, model=MODEL, id="chatcmpl-1",
                                                         created=1)
    validate_chat_completion(reply.to_dict())
    blocks = data["output"]["message"]["content"]
    message = reply.choices[0].message
    texts = [b["text"] for b in blocks if "text" in b]
    assert message.content == ("".join(texts) if texts or not message.tool_calls else None)
    uses = [b["toolUse"] for b in blocks if "toolUse" in b]
    assert [(c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls or []] == [
        (u["toolUseId"], u["name"], u["input"]) for u in uses]
    thoughts = [b["reasoningContent"]["reasoningText"] for b in blocks if "reasoningContent" in b]
    assert (message.reasoning or "") == "".join(t["text"] for t in thoughts)
    assert reply.choices[0].finish_reason == conv.STOP_REASONS[data["stopReason"]]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == data["usage"]["inputTokens"]
    assert reply.usage.completion_tokens == data["usage"]["outputTokens"]
    assert reply.usage.total_tokens == data["usage"]["totalTokens"]


def test_reasoning_round_trips_with_its_signature() -> None:
    data = json.loads((BEDROCK / "amazon-bedrock-reasoning.json").read_text())
    reply = BedrockBackend._convert_completion_response(data, model=MODEL, id="c", created=1)
    assistant = reply.choices[0].message.to_dict()
    params = CompletionParams(model=MODEL, messages=[
        {"role": "user", "content": "How many r in strawberry?"}, assistant,
        {"role": "user", "content": "Sure?"}])
    body = BedrockBackend._convert_completion_params(params, report=_fail)
    check_shape(body, "ConverseRequest")
    assert body["messages"][1]["content"] == data["output"]["message"]["content"]


def _fail(message: str) -> None:
    raise AssertionError(f"unexpected report: {message}")


# --- requests against the service model --------------------------------------------------------

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def rich_params(**extra: Any) -> CompletionParams:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "Weather here and in Paris?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "t2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "3 C"},
        {"role": "tool", "tool_call_id": "t2", "content": "11 C"},
        {"role": "user", "content": "Thanks. Which is warmer?"},
    ]
    args: dict[str, Any] = {"model": MODEL, "messages": messages, "tools": TOOLS,
                            "temperature": 0.3, "top_p": 0.9, "max_tokens": 300,
                            "stop": ["END"], **extra}
    return CompletionParams(**args)


def test_request_is_allowed_by_the_service_model() -> None:
    body = BedrockBackend._convert_completion_params(rich_params(), report=_fail)
    check_shape(body, "ConverseRequest")
    assert body["system"] == [{"text": "Be terse."}]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.3, "topP": 0.9,
                                       "stopSequences": ["END"]}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PIXEL}}}
    assert body["messages"][1]["content"][0] == {
        "toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}}
    # Both tool results and the next user text share one user turn.
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "3 C"}]}},
        {"toolResult": {"toolUseId": "t2", "content": [{"text": "11 C"}]}},
        {"text": "Thanks. Which is warmer?"}]
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"] == \
        TOOLS[0]["function"]["parameters"]


@pytest.mark.parametrize(("choice", "native"), [
    ("auto", None), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
])
def test_tool_choice(choice: Any, native: Any) -> None:
    body = BedrockBackend._convert_completion_params(rich_params(tool_choice=choice), _fail)
    check_shape(body, "ConverseRequest")
    assert body["toolConfig"].get("toolChoice") == native


def test_tool_choice_none_is_reported() -> None:
    reports: list[str] = []
    params = CompletionParams(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                              tools=TOOLS, tool_choice="none")
    body = BedrockBackend._convert_completion_params(params, reports.append)
    assert "toolConfig" not in body and "tool_choice 'none'" in reports[0]
    # With tool calls in the history Bedrock needs the tools: sent as auto, and said so.
    reports.clear()
    body = BedrockBackend._convert_completion_params(rich_params(tool_choice="none"),
                                                     reports.append)
    assert "toolChoice" not in body["toolConfig"] and "sent as 'auto'" in reports[0]


def test_structured_output_schema_is_a_string() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    body = BedrockBackend._convert_completion_params(rich_params(response_format={
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema,
                                               "strict": True}}), _fail)
    check_shape(body, "ConverseRequest")
    spec = body["outputConfig"]["textFormat"]
    assert spec["type"] == "json_schema" and spec["structure"]["jsonSchema"]["name"] == "place"
    assert json.loads(spec["structure"]["jsonSchema"]["schema"]) == schema


def test_reasoning_effort_sets_claude_thinking_budget() -> None:
    reports: list[str] = []
    body = BedrockBackend._convert_completion_params(
        rich_params(reasoning_effort="medium", max_tokens=None), reports.append)
    check_shape(body, "ConverseRequest")
    budget = conv.THINKING_BUDGET["medium"]
    assert body["additionalModelRequestFields"]["thinking"] == {
        "type": "enabled", "budget_tokens": budget}
    assert body["inferenceConfig"]["maxTokens"] > budget
    # Claude refuses temperature and low top_p with thinking: dropped, each reported.
    assert "temperature" not in body["inferenceConfig"] and "topP" not in body["inferenceConfig"]
    assert len(reports) == 2


def test_clamps_and_drops_are_reported() -> None:
    reports: list[str] = []
    params = CompletionParams(
        model=MODEL, temperature=1.7, parallel_tool_calls=False, top_k=40,
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])
    body = BedrockBackend._convert_completion_params(params, reports.append)
    check_shape(body, "ConverseRequest")
    assert body["inferenceConfig"]["temperature"] == 1
    assert body["additionalModelRequestFields"] == {"top_k": 40}
    assert body["messages"] == [{"role": "user", "content": [{"text": "look"}]}]
    assert "outputConfig" not in body
    joined = "\n".join(reports)
    for needle in ("temperature", "parallel", "image", "input_audio", "json_object"):
        assert needle in joined
    assert len(reports) == 5


def test_unsupported_params_warn_through_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", TOKEN)

    async def go() -> CompletionParams:
        llm = await AnyLLM.acreate("bedrock", api_base="http://127.0.0.1:9")
        try:
            return llm.prepare_params(MODEL, [{"role": "user", "content": "x"}],
                                      {"seed": 3, "n": 2, "frequency_penalty": 1.0,
                                       "top_k": 5, "bogus": 1}, stream=True)
        finally:
            await llm.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params = asyncio.run(go())
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, AnyLLMWarning))
    for name in ("seed", "'n'", "frequency_penalty", "bogus"):
        assert name in said
    assert "top_k" not in said and params.extra == {"top_k": 5}


def test_model_id_is_one_encoded_path_segment() -> None:
    assert model_path(MODEL, "converse") == \
        "model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x:0"
    assert model_path(arn, "converse-stream").count("/") == 2


# --- SigV4 -------------------------------------------------------------------------------------

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
# Cases left out: repeated and multi-line headers (a header mapping cannot hold them), and
# query strings with raw non-ASCII or pre-encoded keys (botocore canonicalises those
# differently from the suite; Bedrock requests have no query string).
SUITE_CASES = [
    "get-vanilla", "post-vanilla", "get-vanilla-with-session-token", "get-header-value-trim",
    "get-unreserved", "get-utf8", "get-vanilla-query-order-key-case", "post-header-key-sort",
    "post-header-value-case", "post-x-www-form-urlencoded", "post-vanilla-query",
    "normalize-path/get-slash-dot-slash", "normalize-path/get-space",
    "post-sts-token/post-sts-header-before",
]


@pytest.mark.parametrize("case", SUITE_CASES)
def test_sigv4_reproduces_the_aws_test_suite(case: str) -> None:
    folder = SUITE / case
    name = folder.name
    head, _, body = (folder / f"{name}.req").read_text().partition("\n\n")
    first, *lines = head.split("\n")
    method, rest = first.split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    headers = dict(line.split(":", 1) for line in lines)
    signed = sigv4_headers(
        method, f"https://{headers['Host']}{target}", headers, body.encode(),
        access_key="AKIDEXAMPLE", secret_key=SUITE_SECRET,
        token=SUITE_TOKEN if name == "get-vanilla-with-session-token" else None,
        region="us-east-1", service="service", now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC))
    assert signed["Authorization"] == (folder / f"{name}.authz").read_text().strip()
    assert signed["X-Amz-Date"] == "20150830T123600Z"


def test_sigv4_reproduces_openai_python_bedrock_vector() -> None:
    case = json.loads((FIX / "openai__openai-python" / "tests" / "fixtures" / "bedrock" / "v1"
                       / "sigv4.json").read_text())
    req, creds, want = case["request"], case["credentials"], case["expected"]
    body = req["body"].encode()
    assert hashlib.sha256(body).hexdigest() == want["payloadHash"]
    signed = sigv4_headers(
        req["method"], req["url"],
        {"content-type": req["contentType"], "x-amz-content-sha256": want["payloadHash"]},
        body, access_key=creds["accessKeyId"], secret_key=creds["secretAccessKey"],
        token=creds["sessionToken"], region=case["region"], service=case["service"],
        now=datetime.fromisoformat(case["signingDate"].replace("Z", "+00:00")))
    assert signed["Authorization"] == want["authorization"]
    assert signed["X-Amz-Date"] == want["date"]
    assert signed["X-Amz-Security-Token"] == creds["sessionToken"]


def verify_sigv4(request: Request, secret: str) -> dict[str, str]:
    """Check a received request's SigV4 signature from scratch (no botocore): the canonical
    request per the AWS SigV4 spec, with the path URI-encoded again (all services but S3)."""
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=(\w+)/(\d{8})/([\w-]+)/([\w-]+)/"
                         r"aws4_request, SignedHeaders=([\w;-]+), Signature=([0-9a-f]{64})",
                         request.headers["authorization"])
    assert match, request.headers["authorization"]
    key_id, day, region, service, names, signature = match.groups()
    signed = names.split(";")
    canonical = "\n".join([
        request.method, quote(request.path, safe="/~"), request.query,
        "".join(f"{n}:{' '.join(request.headers[n].split())}\n" for n in signed),
        names, hashlib.sha256(request.body).hexdigest()])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", request.headers["x-amz-date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == signature
    return {"key_id": key_id, "region": region, "service": service, "signed": names}


def test_cli_signs_with_aws_credentials(run_cli: Any, replay_server: ReplayServer,
                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_aws(monkeypatch, tmp_path)
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-text.chunks.txt")
    replay_server.enqueue(Response(headers=EVENTSTREAM, chunks=frames(events)))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL, "hi",
                     env={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SUITE_SECRET,
                          "AWS_SESSION_TOKEN": "session-token-1", "AWS_REGION": "eu-west-3"})
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == expected_from_events(events)["text"].strip()
    request = replay_server.requests[0]
    assert "%3A" in request.path
    facts = verify_sigv4(request, SUITE_SECRET)
    assert facts["key_id"] == "AKIDEXAMPLE"
    assert (facts["region"], facts["service"]) == ("eu-west-3", "bedrock")
    assert "x-amz-security-token" in facts["signed"].split(";")
    assert request.headers["x-amz-security-token"] == "session-token-1"


def test_cli_without_any_credentials_names_the_variables(
        run_cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_aws(monkeypatch, tmp_path)
    result = run_cli("chat", "-p", "bedrock", "-m", MODEL, "hi")
    assert result.code == 2
    assert "AWS_BEARER_TOKEN_BEDROCK" in result.stderr and "AWS_ACCESS_KEY_ID" in result.stderr
    assert result.stdout == ""


# --- end to end with a Bedrock API key ---------------------------------------------------------


def test_cli_streams_binary_event_stream(run_cli: Any, replay_server: ReplayServer) -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-text.chunks.txt")
    # Split the frames across HTTP chunks at odd places, as a network would.
    raw = b"".join(frames(events))
    replay_server.enqueue(Response(headers=EVENTSTREAM,
                                   chunks=[raw[i:i + 37] for i in range(0, len(raw), 37)]))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL,
                     "Count the r's", env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n") == expected_from_events(events)["text"]
    request = replay_server.requests[0]
    assert request.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    check_shape(request.json, "ConverseRequest")
    assert request.json["messages"] == [{"role": "user", "content": [{"text": "Count the r's"}]}]


def test_cli_jsonl_lines_validate(run_cli: Any, replay_server: ReplayServer) -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-reasoning.chunks.txt")
    replay_server.enqueue(Response(headers=EVENTSTREAM, chunks=frames(events)))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL,
                     "--jsonl", "--reasoning-effort", "low", "hi",
                     env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        validate_chat_completion_chunk(line)
    want = expected_from_events(events)
    deltas = [c["delta"] for line in lines for c in line["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == want["text"]
    assert "".join(d.get("reasoning") or "" for d in deltas) == want["reasoning"]
    assert lines[-1]["usage"]["total_tokens"] == want["usage"]["totalTokens"]
    thinking = replay_server.requests[0].json["additionalModelRequestFields"]["thinking"]
    assert thinking["budget_tokens"] == conv.THINKING_BUDGET["low"]


def test_cli_exception_event_keeps_partial_answer(run_cli: Any,
                                                  replay_server: ReplayServer) -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-text.chunks.txt")[:5]
    chunks = [*frames(events), exception_frame("throttlingException", "Too many tokens, slow down")]
    replay_server.enqueue(Response(headers=EVENTSTREAM, chunks=chunks))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL, "hi",
                     env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 1
    assert result.stdout.startswith(expected_from_events(events)["text"])
    assert "Rate limited" in result.stderr and "throttlingException" in result.stderr
    assert TOKEN not in result.stderr


def test_cli_corrupt_frame_is_a_stream_error(run_cli: Any, replay_server: ReplayServer) -> None:
    events = load_jsonl_chunks(BEDROCK / "amazon-bedrock-text.chunks.txt")
    chunks = frames(events)
    bad = bytearray(chunks[3])
    bad[-8] ^= 0x20
    chunks[3] = bytes(bad)
    replay_server.enqueue(Response(headers=EVENTSTREAM, chunks=chunks))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL, "hi",
                     env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 1
    assert "CRC" in result.stderr
    assert result.stdout.startswith(expected_from_events(events[:3])["text"])


def test_cli_http_error_names_the_aws_error_type(run_cli: Any,
                                                 replay_server: ReplayServer) -> None:
    replay_server.enqueue(json_response(
        {"message": "The provided model identifier is invalid."}, status=400,
        headers={"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/"}))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", "nope",
                     "hi", env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 1
    assert "Invalid request" in result.stderr
    assert "ValidationException: The provided model identifier is invalid." in result.stderr


def test_cli_rejected_key_is_an_authentication_error(run_cli: Any,
                                                      replay_server: ReplayServer) -> None:
    replay_server.enqueue(json_response(
        {"message": "Authentication failed: Please make sure your API Key is valid."},
        status=403))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL,
                     "hi", env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 1
    assert "AWS_BEARER_TOKEN_BEDROCK was rejected" in result.stderr and TOKEN not in result.stderr


def test_cli_unknown_aws_profile_is_a_config_error(
        run_cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_aws(monkeypatch, tmp_path)
    result = run_cli("chat", "-p", "bedrock", "-m", MODEL, "hi",
                     env={"AWS_PROFILE": "no-such-profile"})
    assert result.code == 2 and "no-such-profile" in result.stderr


def test_cli_no_stream_json_validates(run_cli: Any, replay_server: ReplayServer) -> None:
    data = json.loads((BEDROCK / "amazon-bedrock-tool-no-args.json").read_text())
    replay_server.enqueue(json_response(data))
    result = run_cli("chat", "-p", "bedrock", "--api-base", replay_server.url, "-m", MODEL,
                     "--json", "update", env={"AWS_BEARER_TOKEN_BEDROCK": TOKEN})
    assert result.code == 0, result.stderr
    reply = json.loads(result.stdout)
    validate_chat_completion(reply)
    assert replay_server.requests[0].path.endswith("v1%3A0/converse")
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "tool-use-id", "updateIssueList", {})


def test_list_models_uses_foundation_models(replay_server: ReplayServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", TOKEN)
    summaries = {"modelSummaries": [
        {"modelId": MODEL, "providerName": "Anthropic", "outputModalities": ["TEXT"]},
        {"modelId": "amazon.nova-lite-v1:0", "providerName": "Amazon"}]}
    replay_server.enqueue(json_response(summaries))

    async def go() -> list[str]:
        async with await AnyLLM.acreate("bedrock", api_base=replay_server.url) as llm:
            return [m.id for m in await llm.alist_models()]

    assert asyncio.run(go()) == [MODEL, "amazon.nova-lite-v1:0"]
    request = replay_server.requests[0]
    assert (request.method, request.path, request.params) == (
        "GET", "/foundation-models", {"byOutputModality": "TEXT"})
