"""The azure backend: vercel/ai's recorded Azure OpenAI stream replayed through the CLI, Azure's
deployment URLs, api-version and api-key header, and the v1 API form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.backends.azure import DEFAULT_API_VERSION, AzureBackend, azure_urls
from tests.conftest import SECRET
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, json_response, load_jsonl_chunks, sse_from_chunks

FIX = Path(__file__).resolve().parent / "fixtures" / "vercel__ai" / "packages" / "openai" / "src"
ROUTER = sorted((FIX / "chat" / "__fixtures__").glob("azure-model-router*.chunks.txt"))
DEPLOYMENT = "gpt-5-nano"


@pytest.fixture(autouse=True)
def no_azure_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


def recorded_text(path: Path) -> str:
    return "".join(c["delta"].get("content") or "" for chunk in load_jsonl_chunks(path)
                   for c in chunk["choices"])


@pytest.mark.parametrize("path", ROUTER, ids=lambda p: p.name)
def test_cli_streams_recorded_azure_chunks(run_cli: Any, replay_server: ReplayServer,
                                           path: Path) -> None:
    replay_server.enqueue(sse_from_chunks(load_jsonl_chunks(path)))
    result = run_cli("chat", "-p", "azure", "--api-base", replay_server.url, "-m", DEPLOYMENT,
                     "What is the capital of Denmark?", env={"AZURE_OPENAI_API_KEY": SECRET})
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n") == recorded_text(path)
    request = replay_server.requests[0]
    assert request.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert request.params["api-version"] == DEFAULT_API_VERSION
    assert request.headers["api-key"] == SECRET
    assert "authorization" not in request.headers
    assert request.json["stream"] is True


@pytest.mark.parametrize("path", ROUTER, ids=lambda p: p.name)
def test_cli_jsonl_skips_the_prompt_filter_chunk(run_cli: Any, replay_server: ReplayServer,
                                                 path: Path) -> None:
    recorded = load_jsonl_chunks(path)
    replay_server.enqueue(sse_from_chunks(recorded))
    result = run_cli("chat", "-p", "azure", "--api-base", replay_server.url, "-m", DEPLOYMENT,
                     "--jsonl", "hi", env={"AZURE_OPENAI_API_KEY": SECRET})
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        validate_chat_completion_chunk(line)
    # Every recorded chunk but the filter-only ones (no choices, no usage) comes out, in order.
    kept = [c for c in recorded if c["choices"] or c.get("usage")]
    assert len(kept) < len(recorded)
    assert [line["id"] for line in lines] == [c["id"] for c in kept]
    assert lines[-1]["usage"] == recorded[-1]["usage"]
    assert [c["finish_reason"] for line in lines for c in line["choices"]][-1] == "stop"


def test_cli_no_stream_routes_to_the_deployment(run_cli: Any, replay_server: ReplayServer) -> None:
    reply = json.loads((FIX / "chat" / "__fixtures__" / "openai-text.json").read_text())
    replay_server.enqueue(json_response(reply))
    result = run_cli("chat", "-p", "azure", "--api-base", replay_server.url + "/", "-m",
                     "my deploy", "--json", "hi", env={"AZURE_OPENAI_API_KEY": SECRET,
                                                       "OPENAI_API_VERSION": "2025-04-01-preview"})
    assert result.code == 0, result.stderr
    validate_chat_completion(json.loads(result.stdout))
    request = replay_server.requests[0]
    assert request.path == "/openai/deployments/my%20deploy/chat/completions"
    assert request.params == {"api-version": "2025-04-01-preview"}


def test_endpoint_from_environment(run_cli: Any, replay_server: ReplayServer) -> None:
    path = ROUTER[0]
    replay_server.enqueue(sse_from_chunks(load_jsonl_chunks(path)))
    result = run_cli("chat", "-p", "azure", "-m", DEPLOYMENT, "hi",
                     env={"AZURE_OPENAI_API_KEY": SECRET,
                          "AZURE_OPENAI_ENDPOINT": replay_server.url + "/openai"})
    assert result.code == 0, result.stderr
    assert replay_server.requests[0].path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"


def test_v1_api_has_no_api_version(run_cli: Any, replay_server: ReplayServer) -> None:
    path = ROUTER[0]
    replay_server.enqueue(sse_from_chunks(load_jsonl_chunks(path)))
    result = run_cli("chat", "-p", "azure", "--api-base", replay_server.url + "/openai/v1",
                     "-m", DEPLOYMENT, "hi", env={"AZURE_OPENAI_API_KEY": SECRET})
    assert result.code == 0, result.stderr
    assert result.stdout.rstrip("\n") == recorded_text(path)
    request = replay_server.requests[0]
    assert (request.path, request.query) == ("/openai/v1/chat/completions", "")
    assert request.json["model"] == DEPLOYMENT
    assert request.headers["api-key"] == SECRET


@pytest.mark.parametrize(("endpoint", "base", "query", "route"), [
    ("https://r.openai.azure.com", "https://r.openai.azure.com/openai", True, True),
    ("https://r.openai.azure.com/openai/", "https://r.openai.azure.com/openai", True, True),
    ("https://r.openai.azure.com/openai/v1/", "https://r.openai.azure.com/openai/v1", False,
     False),
    ("https://r.openai.azure.com/openai/deployments/d1",
     "https://r.openai.azure.com/openai/deployments/d1", True, False),
])
def test_azure_urls(endpoint: str, base: str, query: bool, route: bool) -> None:
    assert azure_urls(endpoint, "V") == (base, {"api-version": "V"} if query else {}, route)


def test_filter_only_chunks_are_skipped_but_usage_kept() -> None:
    recorded = load_jsonl_chunks(ROUTER[0])
    convert = AzureBackend._convert_completion_chunk_response
    assert convert(json.dumps(recorded[0])) is None
    assert convert(recorded[0]) is None
    last = convert(json.dumps(recorded[-1]).encode())
    assert last is not None and last.usage is not None and last.choices == []


def test_missing_key_and_endpoint(run_cli: Any) -> None:
    result = run_cli("chat", "-p", "azure", "-m", DEPLOYMENT, "hi",
                     env={"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9"})
    assert result.code == 2 and "AZURE_OPENAI_API_KEY" in result.stderr
    result = run_cli("chat", "-p", "azure", "-m", DEPLOYMENT, "hi",
                     env={"AZURE_OPENAI_API_KEY": SECRET})
    assert result.code == 2 and "AZURE_OPENAI_ENDPOINT" in result.stderr
