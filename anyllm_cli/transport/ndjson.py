"""Incremental newline-delimited JSON decoder (Ollama ``/api/chat``): feed bytes, get values."""

from __future__ import annotations

import json
from typing import Any

from anyllm_cli.errors import StreamError
from anyllm_cli.transport.sse import DEFAULT_MAX_BUFFER


class NDJSONDecoder:
    """``feed(bytes) -> list[Any]`` one parsed value per complete line; ``close()`` at end of body.

    Blank lines are skipped. Raises :class:`StreamError` on a line that is not JSON, or an
    unfinished line longer than ``max_buffer`` bytes.
    """

    __slots__ = ("_pending", "max_buffer")

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.max_buffer = max_buffer
        self._pending = b""

    def feed(self, chunk: bytes) -> list[Any]:
        data = self._pending + chunk if self._pending else chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > self.max_buffer:
            raise StreamError(f"stream line longer than {self.max_buffer} bytes")
        return [self._parse(line) for line in lines if line.strip()]

    def close(self) -> list[Any]:
        line, self._pending = self._pending, b""
        return [self._parse(line)] if line.strip() else []

    @staticmethod
    def _parse(line: bytes) -> Any:
        try:
            return json.loads(line)
        except ValueError as exc:
            raise StreamError(f"malformed stream line: {line[:200]!r}") from exc
