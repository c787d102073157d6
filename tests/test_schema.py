"""``anyllm chat --schema``: sent as the provider's structured-output request, answer validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.server import ReplayServer, sse_from_chunks

SCHEMA = {"title": "City", "type": "object", "required": ["name", "population"],
          "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
          "additionalProperties": False}


def answer(text: str) -> Any:
    return sse_from_chunks([{"id": "c", "object": "chat.completion.chunk", "created": 1,
                             "model": "m", "choices": [{"index": 0, "delta": {"content": text},
                                                        "finish_reason": "stop"}]}])


def chat(run_cli: Any, srv: ReplayServer, *args: str) -> Any:
    return run_cli("chat", "-p", "openai", "--api-base", srv.url + "/v1", *args, "a city",
                   env={"OPENAI_API_KEY": "k"})


def test_schema_is_sent_as_response_format_and_answer_validated(
        replay_server: ReplayServer, run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "city.json"
    path.write_text(json.dumps(SCHEMA))
    replay_server.enqueue(answer('{"name": "Lyon", "population": 522250}'))
    r = chat(run_cli, replay_server, "--schema", f"@{path}")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) == {"name": "Lyon", "population": 522250}
    sent = replay_server.requests[0].json
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "City", "schema": SCHEMA}}


def test_answer_not_matching_the_schema_exits_1(replay_server: ReplayServer,
                                                run_cli: Any) -> None:
    replay_server.enqueue(answer('{"name": "Lyon", "population": "many"}'))
    r = chat(run_cli, replay_server, "--schema", json.dumps(SCHEMA))
    assert r.code == 1
    assert r.stdout.startswith('{"name": "Lyon"')  # the answer is still shown
    assert r.stderr == ("anyllm: the answer does not match the schema at $.population: "
                        "'many' is not of type 'integer'\n")
    replay_server.enqueue(answer("Lyon, about half a million people"))
    r = chat(run_cli, replay_server, "--schema", json.dumps(SCHEMA))
    assert r.code == 1
    assert "the answer is not JSON" in r.stderr


def test_bad_schema_is_a_usage_error(run_cli: Any) -> None:
    r = run_cli("chat", "--schema", "{nope", "hi")
    assert r.code == 2 and r.stderr.startswith("anyllm: --schema: not valid JSON")
    r = run_cli("chat", "--schema", '{"type": 12}', "hi")
    assert r.code == 2 and "not a valid JSON Schema" in r.stderr
    r = run_cli("chat", "--schema", "@/nonexistent/schema.json", "hi")
    assert r.code == 2 and "cannot read /nonexistent/schema.json" in r.stderr


@pytest.mark.slow
def test_local_model_follows_the_schema(run_cli: Any) -> None:
    pytest.importorskip("llama_cpp")
    r = run_cli("chat", "--schema", json.dumps(SCHEMA), "--max-tokens", "60",
                "Give the name and population of Paris as JSON.")
    assert r.code == 0, r.stderr
    value = json.loads(r.stdout)
    assert set(value) == {"name", "population"} and isinstance(value["population"], int)
