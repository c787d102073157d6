"""Shared test setup: every test gets its own config dir, no provider keys, and a CLI runner.

Like simonw/llm's conftest, the user's real configuration is never read: ``ANYLLM_CONFIG`` and
``XDG_CONFIG_HOME`` point into a temp dir, and every catalog key variable is removed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.conftest_server"]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-SENTINEL-0123456789abcdef"


def _key_variables() -> set[str]:
    from anyllm_cli.catalog import builtin_providers

    names = {"ANYLLM_PROFILE", "ANYLLM_CONFIG", "NO_COLOR", "ANYLLM_DEBUG", "ANYLLM_MODELS_DIR",
             # cloud settings read by the bedrock, azure and vertex backends
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
             "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "GOOGLE_CLOUD_PROJECT",
             "GOOGLE_CLOUD_LOCATION"}
    for entry in builtin_providers().values():
        names.update(entry.api_key_env)
    return names


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean environment: temp config location, no keys from the developer's shell."""
    for name in _key_variables():
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "config-home"
    home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    # botocore's credential chain must never try the instance-metadata address (not loopback).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("ANYLLM_CONFIG", str(home / "anyllm" / "config.toml"))
    yield home


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell that starts a job
    in the background (CI may) makes its children ignore SIGINT, and Python then installs no
    KeyboardInterrupt handler. Restore the default so the child behaves as in a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(isolated_env: Path) -> object:
    """Run ``anyllm`` as a real process: ``run_cli(*args, input=None, env={}, timeout=60)``.

    The config file location is left at ``$ANYLLM_CONFIG`` (absent unless a test writes it).
    """

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> Result:
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "anyllm_cli", *args],
            input=input if input is not None else "",
            capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def config_file(isolated_env: Path) -> Path:
    return isolated_env / "anyllm" / "config.toml"
