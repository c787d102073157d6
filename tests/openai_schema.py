"""Validate objects against OpenAI's chat-completion schemas (Draft 2020-12).

The schemas come from ``tests/fixtures/openai__openai-openapi/chat-schemas.json``, an extract
of OpenAI's OpenAPI spec made by ``scripts/extract_openai_schemas.py``.

    from tests.openai_schema import validate_chat_completion_chunk
    validate_chat_completion_chunk(json.loads(line))   # raises jsonschema.ValidationError
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_PATH = (
    Path(__file__).resolve().parent / "fixtures" / "openai__openai-openapi" / "chat-schemas.json"
)
# The extract has no $id; registering it under this URI lets "#/components/schemas/X" refs
# inside it resolve against the whole document rather than the sub-schema being validated.
BASE_URI = "urn:anyllm:openai-chat-schemas"

__all__ = [
    "SCHEMA_PATH",
    "schema_names",
    "validate",
    "validate_batch_output_line",
    "validate_chat_completion",
    "validate_chat_completion_chunk",
]


@functools.cache
def _document() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(_document(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(BASE_URI, resource)
    return registry


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    if name not in _document()["components"]["schemas"]:
        raise KeyError(f"no schema {name!r} in {SCHEMA_PATH.name}")
    schema = {"$ref": f"{BASE_URI}#/components/schemas/{name}"}
    # format_checker=None: "uri"/"unixtime" formats are annotations in OpenAI's spec.
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def schema_names() -> list[str]:
    """Names of all schemas in the extract (e.g. ``CreateChatCompletionResponse``)."""
    return list(_document()["components"]["schemas"])


def validate(obj: Any, schema_name: str) -> None:
    """Validate obj against ``#/components/schemas/<schema_name>`` of the extract.

    Raises jsonschema.ValidationError (the most relevant error, via ``best_match``), with the
    JSON path of the offending value and the schema name prefixed to its message.
    """
    error = best_match(_validator(schema_name).iter_errors(obj))
    if error is not None:
        error.message = f"{schema_name} at {error.json_path}: {error.message}"
        raise error


def validate_chat_completion(obj: dict[str, Any]) -> None:
    """Validate a non-streamed ``chat.completion`` object (CreateChatCompletionResponse)."""
    validate(obj, "CreateChatCompletionResponse")


def validate_chat_completion_chunk(obj: dict[str, Any]) -> None:
    """Validate one streamed ``chat.completion.chunk`` (CreateChatCompletionStreamResponse)."""
    validate(obj, "CreateChatCompletionStreamResponse")


def validate_batch_output_line(obj: dict[str, Any]) -> None:
    """Validate one Batch API output-file line (hand-written BatchRequestOutput schema).

    A 2xx ``response.body`` must itself be a valid ``chat.completion``.
    """
    validate(obj, "BatchRequestOutput")
