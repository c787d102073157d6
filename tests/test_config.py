"""Configuration errors and profile resolution, as the user sees them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.config import Config, load_config, resolve
from anyllm_cli.errors import ConfigError
from tests.conftest import SECRET, write_config
from tests.server import ReplayServer, sse_from_chunks

STOP_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
              "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}


def test_missing_named_config_file(run_cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    r = run_cli("chat", "--config", str(missing), "hi")
    assert r.code == 2
    assert r.stderr == f"anyllm: {missing}: config file not found\n"


def test_syntax_error_gives_line_and_column(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, 'default_profile = "a"\n[profiles.a]\nprovider = openai\n')
    r = run_cli("chat", "hi")
    assert r.code == 2
    assert str(config_file) in r.stderr
    assert "TOML syntax error" in r.stderr
    assert "line 3" in r.stderr and "column" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_profile(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, '[profiles.work]\nprovider = "openai"\n')
    r = run_cli("chat", "-p", "wrok", "hi")
    assert r.code == 2
    assert "no profile or provider named 'wrok'" in r.stderr
    assert "work" in r.stderr  # the known names are listed


def test_unknown_provider_in_profile_names_key_and_file(run_cli: Any, config_file: Path) -> None:
    write_config(config_file, '[profiles.work]\nprovider = "opneai"\n')
    r = run_cli("chat", "-p", "work", "hi")
    assert r.code == 2
    assert f"{config_file}: profiles.work.provider: unknown provider 'opneai'" in r.stderr


def test_bad_value_and_unknown_key_name_the_key(config_file: Path) -> None:
    write_config(config_file, '[profiles.work]\nprovider = "openai"\nmodle = "x"\n')
    with pytest.raises(ConfigError, match=r"profiles\.work\.modle: unknown key"):
        load_config()
    write_config(config_file, '[providers.corp]\nbackend = "nope"\n')
    with pytest.raises(ConfigError, match=r"providers\.corp\.backend: .*unknown backend"):
        load_config()


def test_missing_key_names_the_variable(run_cli: Any) -> None:
    r = run_cli("chat", "-p", "groq", "hi")
    assert r.code == 2
    assert r.stderr == "anyllm: No API key for groq: set GROQ_API_KEY (groq)\n"


def test_no_config_no_key_no_local(run_cli: Any, tmp_path: Path) -> None:
    """Without the local extra and with no key set, the message says how to set one up."""
    hide = tmp_path / "hide"
    hide.mkdir()
    # Shadow llama_cpp with a module that cannot be found as installed.
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'llama_cpp' else _f(n, *a)\n")
    r = run_cli("chat", "hi", env={"PYTHONPATH": str(hide)})
    assert r.code == 2
    assert "no provider configured" in r.stderr
    assert "anyllm-cli[local]" in r.stderr and "OPENAI_API_KEY" in r.stderr


def test_provider_model_split_only_for_known_prefixes(config_file: Path) -> None:
    write_config(config_file, '[profiles.work]\nprovider = "openai"\nmodel = "gpt-4.1"\n')
    config = load_config()
    r = resolve(config, None, "groq:llama-3.1-8b")
    assert (r.provider.name, r.model) == ("groq", "llama-3.1-8b")
    r = resolve(config, None, "work:gpt-5")
    assert (r.profile_name, r.provider.name, r.model) == ("work", "openai", "gpt-5")
    # Model names have colons of their own: not a provider prefix, so not split.
    r = resolve(config, "openai", "llama3.2:3b")
    assert r.model == "llama3.2:3b"
    r = resolve(config, "openai", "anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert r.model == "anthropic.claude-3-5-sonnet-20240620-v1:0"


def test_default_profile_and_env_override(config_file: Path, monkeypatch: Any) -> None:
    write_config(config_file, 'default_profile = "a"\n[profiles.a]\nprovider = "groq"\n'
                              '[profiles.b]\nprovider = "openai"\nmodel = "m-b"\n')
    config = load_config()
    assert resolve(config).profile_name == "a"
    assert resolve(config).model == "llama-3.3-70b-versatile"  # the catalog's default
    monkeypatch.setenv("ANYLLM_PROFILE", "b")
    assert resolve(config).model == "m-b"


def test_first_provider_with_a_key_when_nothing_is_configured(monkeypatch: Any) -> None:
    monkeypatch.setattr("anyllm_cli.config.local_available", lambda: False)
    config = Config(path=Path("x"), catalog=load_config().catalog)
    assert resolve(config, environ={"XAI_API_KEY": "k"}).provider.name == "xai"


def test_profile_params_key_cmd_and_user_provider(replay_server: ReplayServer, run_cli: Any,
                                                  config_file: Path) -> None:
    """A user-defined provider (no code), a key from a command, default params from the profile;
    flags win over profile params."""
    write_config(config_file, f'''
default_profile = "corp"
[profiles.corp]
provider = "mycorp"
model = "corp-large"
api_key_cmd = "{sys.executable} -c 'print(\\"{SECRET}\\")'"
[profiles.corp.params]
temperature = 0.2
system = "Be terse."
top_k = 40
[providers.mycorp]
backend = "openai"
api_base = "{replay_server.url}/v1"
api_key_env = "MYCORP_KEY"
default_model = "x"
''')
    replay_server.enqueue(sse_from_chunks([STOP_CHUNK]))
    r = run_cli("chat", "--temperature", "0.7", "hi")
    assert r.code == 0, r.stderr
    assert r.stdout == "ok\n"
    sent = replay_server.requests[0]
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.json["model"] == "corp-large"
    assert sent.json["temperature"] == 0.7
    assert sent.json["top_k"] == 40
    assert sent.json["messages"] == [{"role": "system", "content": "Be terse."},
                                     {"role": "user", "content": "hi"}]


def test_stdin_then_argument(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(sse_from_chunks([STOP_CHUNK]))
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1",
                "-o", "top_k=5", "-o", "name=bob", "Summarise", input="line one\nline two\n",
                env={"OPENAI_API_KEY": "k"})
    assert r.code == 0, r.stderr
    sent = replay_server.requests[0].json
    assert sent["messages"][-1]["content"] == "line one\nline two\n\nSummarise"
    assert sent["top_k"] == 5 and sent["name"] == "bob"


def test_usage_errors_exit_2(run_cli: Any) -> None:
    r = run_cli("chat")
    assert r.code == 2 and "no prompt" in r.stderr
    r = run_cli("chat", "-o", "novalue", "hi")
    assert r.code == 2 and "--option/-o: expected KEY=VALUE, got 'novalue'" in r.stderr
    r = run_cli("chat", "--json", "--jsonl", "hi")
    assert r.code == 2
    r = run_cli("chat", "--temperature", "hot", "hi")
    assert r.code == 2 and "Invalid value for '--temperature'" in r.stderr


def test_unsupported_parameter_warns_or_fails_strict(replay_server: ReplayServer,
                                                     run_cli: Any) -> None:
    replay_server.enqueue(sse_from_chunks([STOP_CHUNK]))
    base = ["chat", "-p", "perplexity", "--api-base", replay_server.url, "--seed", "3"]
    r = run_cli(*base, "hi", env={"PERPLEXITY_API_KEY": "k"})
    assert r.code == 0, r.stderr
    assert "anyllm: warning: perplexity does not support the parameter 'seed'" in r.stderr
    assert "seed" not in replay_server.requests[0].json
    r = run_cli(*base, "--strict", "hi", env={"PERPLEXITY_API_KEY": "k"})
    assert r.code == 2
    assert "Unsupported" in r.stderr or "does not support" in r.stderr
    assert len(replay_server.requests) == 1  # nothing sent under --strict


def test_chat_warns_when_a_readable_config_holds_a_key(replay_server: ReplayServer,
                                                       run_cli: Any, config_file: Path) -> None:
    write_config(config_file, f'[profiles.p]\nprovider = "openai"\napi_key = "{SECRET}"\n'
                              f'api_base = "{replay_server.url}/v1"\n')
    config_file.chmod(0o644)
    replay_server.enqueue(sse_from_chunks([STOP_CHUNK]))
    r = run_cli("chat", "-p", "p", "hi")
    assert r.code == 0, r.stderr
    assert "anyllm: warning:" in r.stderr and str(config_file) in r.stderr
    assert SECRET not in r.stderr + r.stdout
    assert replay_server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
