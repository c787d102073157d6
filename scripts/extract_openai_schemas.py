#!/usr/bin/env python3
"""Extract the chat-completion schemas from OpenAI's OpenAPI spec into a small JSON file.

The full spec (openai/openai-openapi ``openapi.yaml``, ~3 MB) is too big to keep in the repo,
so the tests validate against this extract instead:

* the transitive ``$ref`` closure of ``CreateChatCompletionResponse`` and
  ``CreateChatCompletionStreamResponse``;
* ``BatchRequestOutput`` (one line of a Batch API output file). The pinned spec has no schema
  and no description for that line, so it is written by hand below (see its ``$comment``);
* OpenAPI's ``nullable: true`` rewritten as JSON Schema, so Draft 2020-12 validators accept
  ``null`` exactly where the spec allows it.

Usage::

    python scripts/extract_openai_schemas.py \
        [--spec ../shared/fixtures/openai__openai-openapi/openapi.yaml] \
        [--sources ../shared/fixtures/SOURCES.md] \
        [--out tests/fixtures/openai__openai-openapi/chat-schemas.json]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "fixtures"
DEFAULT_SPEC = SHARED / "openai__openai-openapi" / "openapi.yaml"
DEFAULT_SOURCES = SHARED / "SOURCES.md"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "openai__openai-openapi" / "chat-schemas.json"

ROOTS = ("CreateChatCompletionResponse", "CreateChatCompletionStreamResponse")
REF_PREFIX = "#/components/schemas/"
# OpenAPI-only keys that are not JSON Schema and only add bulk (docs examples, SDK hints).
DROP_KEYS = frozenset({"nullable", "example", "x-oaiMeta"})
# Keys that only annotate; they stay on the outer schema when a nullable one is wrapped in anyOf.
ANNOTATIONS = ("title", "description", "deprecated", "default", "$comment")

Schema = dict[str, Any]


def refs_in(node: Any) -> set[str]:
    """Names of all ``#/components/schemas/X`` targets referenced anywhere under node."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(REF_PREFIX):
                    raise ValueError(f"unsupported $ref {value!r}")
                found.add(value[len(REF_PREFIX) :].split("/")[0])
            else:
                found |= refs_in(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs_in(item)
    return found


def closure(schemas: dict[str, Schema], roots: tuple[str, ...]) -> list[str]:
    """Schema names reachable from roots, in spec order (stable output for diffs)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in schemas:
            raise KeyError(f"schema {name!r} referenced but not defined in the spec")
        seen.add(name)
        todo.extend(refs_in(schemas[name]) - seen)
    return [name for name in schemas if name in seen]


def convert(node: Any) -> Any:
    """Recursively rewrite an OpenAPI schema fragment as Draft 2020-12 JSON Schema.

    ``nullable: true`` is an OpenAPI 3.0 keyword that JSON Schema validators ignore, so without
    this rewrite a spec-legal ``null`` (e.g. a chunk's ``finish_reason``) would fail validation.
    """
    if isinstance(node, list):
        return [convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in DROP_KEYS:
            continue
        # Names under "properties" are data, not keywords: never drop e.g. a property "example".
        if key in ("properties", "patternProperties", "$defs", "definitions"):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        else:
            out[key] = convert(value)
    if node.get("nullable") is True:
        out = make_nullable(out)
    return out


def make_nullable(schema: Schema) -> Schema:
    """Return schema that also accepts ``null``."""
    typ = schema.get("type")
    composite = any(k in schema for k in ("$ref", "allOf", "anyOf", "oneOf", "not"))
    if typ is not None and not composite:
        # Plain typed schema: widen the type, and enum/const too, since they would reject null.
        result = dict(schema)
        types = typ if isinstance(typ, list) else [typ]
        if "null" not in types:
            result["type"] = [*types, "null"]
        if "enum" in result and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        if "const" in result:
            result["enum"] = [result.pop("const"), None]
        return result
    # $ref / combinators / untyped: a sibling "type" would constrain the referenced schema, so
    # wrap the whole thing instead and keep the human-facing annotations outside.
    inner = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    outer: Schema = {k: v for k, v in schema.items() if k in ANNOTATIONS}
    outer["anyOf"] = [inner, {"type": "null"}]
    return outer


def find_nullable(node: Any, path: str = "") -> list[str]:
    """Paths of any ``nullable`` keyword left over (must be none after convert)."""
    hits: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "nullable" and not path.endswith("/properties"):
                hits.append(path)
            hits += find_nullable(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            hits += find_nullable(item, f"{path}/{i}")
    return hits


def batch_output_schemas() -> dict[str, Schema]:
    """Hand-written schema of one Batch API output-file line, for /v1/chat/completions batches.

    The pinned spec only links to /docs/api-reference/batch/request-output. The shape follows
    that page ("The request output object", which older openai-openapi revisions published as
    ``BatchRequestOutput`` with every field optional) and docs/DESIGN.md "Batch files".
    """
    ref = {"$ref": REF_PREFIX + "CreateChatCompletionResponse"}
    return {
        "BatchRequestOutput": {
            "$comment": (
                "HAND-WRITTEN: not in the pinned openapi.yaml (it has no schema or description "
                "of the output line, only a link to /docs/api-reference/batch/request-output). "
                "Modelled on OpenAI's documented request output object (older openai-openapi "
                "revisions: BatchRequestOutput, all fields optional) and made stricter: all four "
                "keys required, response and error not both null, and a 2xx response body must "
                "be a chat.completion (anyllm batches only target /v1/chat/completions)."
            ),
            "type": "object",
            "description": "The per-line object of the batch output and error files.",
            "properties": {
                "id": {"type": "string"},
                "custom_id": {
                    "type": "string",
                    "description": "The developer-provided per-request id of the input line.",
                },
                "response": {
                    "anyOf": [
                        {"$ref": REF_PREFIX + "BatchRequestOutputResponse"},
                        {"type": "null"},
                    ]
                },
                "error": {
                    "anyOf": [
                        {"$ref": REF_PREFIX + "BatchRequestOutputError"},
                        {"type": "null"},
                    ],
                    "description": "For requests that failed with a non-HTTP error.",
                },
            },
            "required": ["id", "custom_id", "response", "error"],
            "anyOf": [
                {"properties": {"response": {"type": "object"}}},
                {"properties": {"error": {"type": "object"}}},
            ],
        },
        "BatchRequestOutputResponse": {
            "$comment": "HAND-WRITTEN, see BatchRequestOutput.",
            "type": "object",
            "properties": {
                "status_code": {
                    "type": "integer",
                    "minimum": 100,
                    "maximum": 599,
                    "description": "The HTTP status code of the response.",
                },
                "request_id": {
                    "type": "string",
                    "description": "A unique identifier for the API request.",
                },
                "body": {"type": "object", "description": "The JSON body of the response."},
            },
            "required": ["status_code", "request_id", "body"],
            "allOf": [
                {
                    "if": {"properties": {"status_code": {"minimum": 200, "maximum": 299}}},
                    "then": {"properties": {"body": ref}},
                },
                {
                    # OpenAI's error envelope: {"error": {"message": ..., "type": ..., ...}}.
                    "if": {"properties": {"status_code": {"minimum": 400}}},
                    "then": {
                        "properties": {
                            "body": {
                                "required": ["error"],
                                "properties": {"error": {"type": "object"}},
                            }
                        }
                    },
                },
            ],
        },
        "BatchRequestOutputError": {
            "$comment": "HAND-WRITTEN, see BatchRequestOutput.",
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "A machine-readable error code."},
                "message": {"type": "string", "description": "A human-readable error message."},
            },
            "required": ["code", "message"],
        },
    }


def source_commit(sources_md: Path) -> str:
    """The pinned commit of openai/openai-openapi as recorded in fixtures/SOURCES.md."""
    text = sources_md.read_text(encoding="utf-8")
    match = re.search(r"## openai/openai-openapi\s+- commit: `([0-9a-f]{40})`", text)
    if not match:
        raise ValueError(f"no openai/openai-openapi commit in {sources_md}")
    return match.group(1)


def build(spec_path: Path, sources_md: Path) -> dict[str, Any]:
    raw = spec_path.read_bytes()
    # CSafeLoader: the pure-Python loader takes ~20 s on the 3 MB spec.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(raw, Loader=loader)
    schemas: dict[str, Schema] = spec["components"]["schemas"]
    names = closure(schemas, ROOTS)
    extracted = {name: convert(copy.deepcopy(schemas[name])) for name in names}
    hand = batch_output_schemas()
    clash = set(hand) & set(extracted)
    if clash:
        raise ValueError(f"hand-written schemas clash with the spec: {sorted(clash)}")
    extracted.update(hand)
    leftover = find_nullable(extracted)
    if leftover:
        raise ValueError(f"nullable left after conversion at {leftover}")
    missing = {n for s in extracted.values() for n in refs_in(s)} - set(extracted)
    if missing:
        raise ValueError(f"dangling $refs: {sorted(missing)}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": (
            "Extracted by scripts/extract_openai_schemas.py from "
            "https://github.com/openai/openai-openapi openapi.yaml at commit "
            f"{source_commit(sources_md)} (sha256 {hashlib.sha256(raw).hexdigest()}, "
            f"OpenAPI {spec.get('openapi')}, API version {spec.get('info', {}).get('version')}). "
            "Licence: MIT (openai/openai-openapi). Contents: the $ref closure of "
            f"{', '.join(ROOTS)}, with OpenAPI `nullable: true` rewritten as JSON Schema "
            "(type [T, 'null'] or anyOf [..., {type: null}]) and x-oaiMeta/example dropped; "
            "plus the HAND-WRITTEN BatchRequestOutput* schemas (not in the spec, see their "
            "$comment). Do not edit by hand: re-run the script."
        ),
        "components": {"schemas": extracted},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    doc = build(args.spec, args.sources)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    args.out.write_text(text, encoding="utf-8")
    names = list(doc["components"]["schemas"])
    print(f"wrote {args.out} ({len(text)} bytes, {len(names)} schemas: {', '.join(names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
