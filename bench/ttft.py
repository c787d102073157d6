"""Time to first token of ``anyllm chat`` as a whole process, against ``llm`` on the same server.

Run: ``python bench/ttft.py [--runs 15]`` (``llm`` is in the ``[bench]`` extra).

The loopback server (tests/server.py, its canned OpenAI chat completion streamed as SSE, no
delay) runs as its own process. Each command is a real process with its stdout on a pipe read
unbuffered; it is timed from just before it is spawned to the first byte of the answer on its
stdout (time to first token, what a person waits for) and to its exit (total):
- anyllm: ``anyllm chat -p openai --api-base URL/v1 PROMPT`` (no config file, key from
  ``OPENAI_API_KEY``);
- llm: ``llm -m anyllm-bench PROMPT``, the model declared in ``extra-openai-models.yaml`` in a
  temporary ``LLM_USER_PATH`` (model_id, model_name, api_base, api_key_name + keys.json, as in
  https://llm.datasette.io/en/stable/other-models.html#openai-compatible-models); llm logs every
  prompt to a SQLite database by default, so ``llm --no-log`` is measured too.
Both stream the same canned answer. Commands take turns within each run; medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import CANNED_ANSWER, find_tool, loopback_server, machine, median

PROMPT = "Say hello"
KEY = "sk-bench"
LLM_MODEL_ID = "anyllm-bench"
OURS = "anyllm chat"


@dataclass
class Sample:
    first: float  # seconds from spawn to the first byte on stdout
    total: float  # seconds from spawn to exit


def llm_user_dir(folder: Path, url: str) -> None:
    """Declare the loopback server as an OpenAI-compatible model for ``llm``."""
    (folder / "extra-openai-models.yaml").write_text(
        f"- model_id: {LLM_MODEL_ID}\n"
        f"  model_name: gpt-4o\n"
        f"  api_base: \"{url}/v1\"\n"
        f"  api_key_name: anyllm-bench\n")
    (folder / "keys.json").write_text(json.dumps({"anyllm-bench": KEY}))


def commands(url: str, tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, environment) for every tool that is installed."""
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    base.pop("PYTHONUNBUFFERED", None)  # each tool's own buffering when piped is measured
    base["NO_COLOR"] = "1"
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    anyllm, llm = find_tool("anyllm"), find_tool("llm")
    if anyllm:
        env = dict(base, OPENAI_API_KEY=KEY, ANYLLM_CONFIG=str(tmp / "no-config.toml"))
        out[OURS] = ([anyllm, "chat", "-p", "openai", "--api-base", url + "/v1", PROMPT], env)
    if llm:
        user = tmp / "llm-user"
        user.mkdir(exist_ok=True)
        llm_user_dir(user, url)
        env = dict(base, LLM_USER_PATH=str(user))
        out["llm"] = ([llm, "-m", LLM_MODEL_ID, PROMPT], env)
        out["llm --no-log"] = ([llm, "-m", LLM_MODEL_ID, "--no-log", PROMPT], env)
    return out


def time_once(argv: list[str], env: dict[str, str]) -> Sample:
    """Spawn, wait for the first stdout byte, read the rest, wait for exit. Raises on failure."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, bufsize=0)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        data = os.read(fd, 65536)  # blocks until the child writes something (or exits)
        first = time.perf_counter() - start
        rest = [data]
        while chunk := os.read(fd, 65536):
            rest.append(chunk)
        code = proc.wait()
        total = time.perf_counter() - start
        proc.stdout.close()
        output = b"".join(rest).decode(errors="replace")
        # The first bytes must be the answer's start, not a banner or a blank line.
        starts_right = data.startswith(CANNED_ANSWER[:5].encode())
        if code != 0 or CANNED_ANSWER not in output or not starts_right:
            err.seek(0)
            raise RuntimeError(f"{argv[0]} failed (exit {code}): stdout {output!r}, stderr "
                               f"{err.read().decode(errors='replace')[-500:]!r}")
    return Sample(first, total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    samples: dict[str, list[Sample]] = {}
    failed: dict[str, str] = {}
    with loopback_server() as url, tempfile.TemporaryDirectory(prefix="anyllm-ttft-") as tmpdir:
        cmds = commands(url, Path(tmpdir))
        samples = {name: [] for name in cmds}
        for name, (argv, env) in cmds.items():  # warm-up: page cache, llm's logs.db
            try:
                time_once(argv, env)
            except RuntimeError as exc:
                failed[name] = str(exc)
        for _ in range(args.runs):
            for name, (argv, env) in cmds.items():
                if name not in failed:
                    samples[name].append(time_once(argv, env))
    print(f"# time to first token, whole process, streamed canned answer, median of {args.runs} "
          f"runs (seconds) -- python bench/ttft.py --runs {args.runs}")
    print(f"# machine: {machine()}")
    first = {k: median([s.first for s in v]) for k, v in samples.items() if v}
    total = {k: median([s.total for s in v]) for k, v in samples.items() if v}
    for name in (OURS, "llm", "llm --no-log"):
        if name in first:
            print(f"{name:16s} {first[name]:7.3f} s to first token, {total[name]:.3f} s total")
        else:
            reason = failed.get(name, "not installed")
            print(f"{name:16s}   n/a ({reason})")
    if OURS in first:
        for peer in ("llm", "llm --no-log"):
            if peer in first:
                print(f"{peer} / {OURS} = {first[peer] / first[OURS]:.1f}x first token, "
                      f"{total[peer] / total[OURS]:.1f}x total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
