"""The provider catalog: ``providers/*.toml`` (shipped in the wheel) and the user's
``[providers.*]`` tables.

A provider is data. Each entry names the backend (the wire API, a module under
``anyllm_cli/backends``) and the facts about one host: base URL, key variables, default model,
capabilities. A user adds a gateway or a local server with the same schema in their config.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from anyllm_cli.errors import ConfigError, UnsupportedProviderError, validation_error_text

Support = Literal["native", "emulated", "no"]

BACKENDS = ("openai", "local", "anthropic", "gemini", "ollama", "mistral", "cohere", "bedrock",
            "azure")
"""Wire APIs with a module in ``anyllm_cli/backends``."""


class Capabilities(BaseModel):
    """What a provider can carry, each ``native``, ``emulated`` or ``no``."""

    model_config = ConfigDict(extra="forbid")

    streaming: Support = "native"
    tools: Support = "native"
    structured_output: Support = "native"
    reasoning: Support = "no"
    images: Support = "no"
    models: Support = "native"
    stream_usage: bool = True
    """Whether the host honours ``stream_options.include_usage`` (OpenAI-compatible hosts)."""


class LLMProvider(BaseModel):
    """One catalog entry (a ``providers/<name>.toml`` file or a user ``[providers.<name>]``).

    ``api_key_env`` lists variables tried in order; ``api_key_required`` False lets a provider run
    with no key (local servers). ``unsupported_params`` are CompletionParams the host refuses:
    they are dropped with a warning, or refused under strict mode. ``headers`` are sent with every
    request; ``options`` holds backend-specific settings (e.g. Azure's ``api_version``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    backend: str
    description: str = ""
    api_base: str | None = None
    api_key_env: list[str] = Field(default_factory=list)
    api_key_required: bool = True
    default_model: str | None = None
    docs_url: str | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    unsupported_params: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    source: str = "built-in"

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(f"unknown backend {v!r}; known: {', '.join(BACKENDS)}")
        return v

    def key_from_env(self, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
        """The first set key variable of this provider, as ``(name, value)``, or None."""
        env = os.environ if environ is None else environ
        for var in self.api_key_env:
            value = env.get(var)
            if value:
                return var, value
        return None


def builtin_dir() -> Path:
    """Where the built-in TOML files are: inside the wheel, or ``providers/`` of a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "providers"
    return packaged if packaged.is_dir() else here.parent / "providers"


def parse_entry(name: str, data: Mapping[str, Any], source: str) -> LLMProvider:
    """Validate one entry; raises :class:`ConfigError` naming the file and the key."""
    try:
        return LLMProvider.model_validate({**data, "name": name, "source": source})
    except ValidationError as exc:
        loc, msg = validation_error_text(exc)
        raise ConfigError(f"{source}: providers.{name}.{loc}: {msg}") from None


@cache
def builtin_providers() -> dict[str, LLMProvider]:
    """The catalog shipped with anyllm, by name (sorted)."""
    out: dict[str, LLMProvider] = {}
    for path in sorted(builtin_dir().glob("*.toml")):
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        out[path.stem] = parse_entry(path.stem, data, str(path))
    return out


def merged_catalog(user: Mapping[str, Mapping[str, Any]] | None = None,
                   source: str = "config") -> dict[str, LLMProvider]:
    """Built-in entries overlaid with the user's ``[providers.*]`` tables.

    A user table with a built-in name updates that entry's fields; a new name is a new provider.
    """
    catalog = dict(builtin_providers())
    for name, table in (user or {}).items():
        base = catalog.get(name)
        data = dict(table)
        if base is not None:
            merged = base.model_dump(exclude={"name", "source"})
            merged.update(data)
            data = merged
        catalog[name] = parse_entry(name, data, source)
    return catalog


def get_provider(name: str, catalog: Mapping[str, LLMProvider] | None = None) -> LLMProvider:
    """Look a provider up; raises :class:`UnsupportedProviderError` listing the known names."""
    cat = builtin_providers() if catalog is None else catalog
    try:
        return cat[name]
    except KeyError:
        known = ", ".join(sorted(cat))
        raise UnsupportedProviderError(
            f"Unknown provider {name!r}; known providers: {known}") from None
