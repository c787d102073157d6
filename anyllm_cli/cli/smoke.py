"""``anyllm smoke``: do my providers still answer? One short streamed prompt per profile, all at
once; a table (or JSON, or JUnit XML for CI) of pass/fail/skip with time to first token, total
latency and tokens. Exit 1 when any check failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from anyllm_cli.cli import options as o

if TYPE_CHECKING:
    import re

    from anyllm_cli.config import Config, Resolved

DEFAULT_PROMPT = "Reply with the single word: pong"
DEFAULT_MAX_TOKENS = 32
ANSWER_WIDTH = 60


def register(app: typer.Typer) -> None:
    app.command("smoke", epilog=EXAMPLES)(smoke)


EXAMPLES = (
    "Examples:  anyllm smoke  ·  anyllm smoke work groq --expect '(?i)pong'  ·  "
    "anyllm smoke --skip-missing-keys --junit-xml reports/smoke.xml"
)


@dataclass
class Outcome:
    """One profile's check. ``status``: pass, fail or skip. Times in seconds from the request
    (after the client is set up): ``ttft`` to the first content or reasoning token, ``latency``
    to the end of the stream."""

    name: str
    provider: str
    model: str
    status: str = "fail"
    error: str | None = None
    error_type: str | None = None
    answer: str | None = None
    finish_reason: str | None = None
    ttft: float | None = None
    latency: float | None = None
    usage: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.name, "provider": self.provider, "model": self.model,
            "status": self.status, "error": self.error, "error_type": self.error_type,
            "answer": self.answer, "finish_reason": self.finish_reason,
            "ttft_seconds": _round(self.ttft), "latency_seconds": _round(self.latency),
            "usage": self.usage,
        }


def smoke(
    profile: Annotated[list[str] | None, typer.Argument(
        metavar="PROFILE",
        help="Profiles (or provider names) to check. Default: every profile of the config, "
             "and local when the [local] extra is installed.", show_default=False)] = None,
    prompt: Annotated[str, typer.Option(
        "--prompt", metavar="TEXT", help="The prompt sent to each profile.")] = DEFAULT_PROMPT,
    expect: Annotated[str | None, typer.Option(
        "--expect", metavar="REGEX",
        help="Also require the answer to match this Python regular expression (searched "
             "anywhere; (?i) makes it case-insensitive).")] = None,
    max_tokens: Annotated[int, typer.Option(
        "--max-tokens", metavar="N", min=0,
        help="Most tokens per answer (0: no limit; reasoning models may need more).")
    ] = DEFAULT_MAX_TOKENS,
    skip_missing_keys: Annotated[bool, typer.Option(
        "--skip-missing-keys",
        help="Mark profiles whose API key is not set as skipped instead of failed.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", rich_help_panel=o.PANEL_OUTPUT,
        help="Print a JSON object: results (profile, provider, model, status, error, "
             "error_type, answer, finish_reason, ttft_seconds, latency_seconds, usage) and the "
             "passed/failed/skipped counts.")] = False,
    junit_xml: Annotated[Path | None, typer.Option(
        "--junit-xml", metavar="PATH", rich_help_panel=o.PANEL_OUTPUT,
        help="Also write a JUnit XML report: one testsuite, one testcase per profile; failures "
             "carry the provider's error.", show_default=False)] = None,
    timeout: o.TimeoutOpt = None,
    config: o.ConfigOpt = None,
) -> None:
    """Check that profiles answer: send each a short prompt, concurrently, and report pass,
    fail or skip with time to first token, total latency and tokens.

    A check passes when the streamed answer is not empty (and matches --expect). The table goes
    to stdout (plain columns when piped). Exit 1 when any check failed; skipped ones do not
    fail the run.
    """
    import re

    from anyllm_cli.cli.common import fail, install_warning_printer, warn_permissions
    from anyllm_cli.config import load_config, local_available, resolve
    from anyllm_cli.errors import AnyLLMError

    pattern = None
    if expect is not None:
        try:
            pattern = re.compile(expect)
        except re.error as exc:
            fail(f"--expect: invalid regular expression {expect!r}: {exc}", 2)
    if not prompt.strip():
        fail("--prompt: empty prompt", 2)
    install_warning_printer()
    try:
        cfg = load_config(config)
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    warn_permissions(cfg)
    names = list(dict.fromkeys(profile or ()))
    if not names:
        names = list(cfg.profiles)
        if "local" not in names and local_available():
            names.append("local")
    if not names:
        fail(f"nothing to check: no profiles in {cfg.path} and the local model is not "
             "installed; name providers instead, e.g.  anyllm smoke openai groq", 2)
    targets: list[tuple[str, Resolved]] = []
    for name in names:
        try:
            targets.append((name, resolve(cfg, name)))
        except AnyLLMError as exc:
            fail(str(exc), exc.exit_code)

    import asyncio
    import time

    started = time.perf_counter()
    outcomes = asyncio.run(_run_all(cfg, targets, prompt=prompt, pattern=pattern,
                                    max_tokens=max_tokens, timeout=timeout,
                                    skip_missing_keys=skip_missing_keys))
    elapsed = time.perf_counter() - started
    if junit_xml is not None:
        try:
            write_junit(junit_xml, outcomes, elapsed)
        except OSError as exc:
            fail(f"--junit-xml: cannot write {junit_xml}: {exc.strerror}", 2)
    _print(outcomes, elapsed, json_out=json_out)
    raise typer.Exit(1 if any(r.status == "fail" for r in outcomes) else 0)


async def _run_all(cfg: Config, targets: list[tuple[str, Resolved]], **kw: Any
                   ) -> list[Outcome]:
    import asyncio

    return list(await asyncio.gather(*(_check(cfg, name, res, **kw) for name, res in targets)))


async def _check(cfg: Config, name: str, resolved: Resolved, *, prompt: str,
                 pattern: re.Pattern[str] | None, max_tokens: int, timeout: float | None,
                 skip_missing_keys: bool) -> Outcome:
    """Run one profile's check; never raises (every failure becomes the outcome's error)."""
    import contextlib
    import time

    from anyllm_cli.anyllm import AnyLLM
    from anyllm_cli.assemble import ChunkAccumulator
    from anyllm_cli.cli.common import open_llm
    from anyllm_cli.errors import AnyLLMError, MissingApiKeyError, redact

    out = Outcome(name, resolved.provider.name, resolved.model)
    params = dict(resolved.params)
    system = params.pop("system", None)
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    if max_tokens:
        params.pop("max_completion_tokens", None)
        params["max_tokens"] = max_tokens
    llm: AnyLLM | None = None
    start: float | None = None
    try:
        llm = await open_llm(cfg, resolved, api_base=None, timeout=timeout, strict=False)
        acc = ChunkAccumulator()
        start = time.perf_counter()
        async for chunk in llm.acompletion_stream(resolved.model, messages, **params):
            if out.ttft is None and any(c.delta.content or c.delta.reasoning
                                        for c in chunk.choices):
                out.ttft = time.perf_counter() - start
            acc.add(chunk)
        out.latency = time.perf_counter() - start
        reply = acc.result()
        out.usage = reply.usage.to_dict() if reply.usage is not None else None
        if reply.choices:
            out.answer = reply.choices[0].message.content or ""
            out.finish_reason = reply.choices[0].finish_reason
        if not (out.answer or "").strip():
            out.error = f"empty answer (finish_reason: {out.finish_reason or 'none'})"
            out.error_type = "EmptyAnswer"
        elif pattern is not None and not pattern.search(out.answer or ""):
            out.error = (f"answer does not match --expect {pattern.pattern!r}: "
                         f"{_one_line(out.answer or '')!r}")
            out.error_type = "ExpectMismatch"
        else:
            out.status = "pass"
    except MissingApiKeyError as exc:
        out.error, out.error_type = str(exc), type(exc).__name__
        out.status = "skip" if skip_missing_keys else "fail"
    except AnyLLMError as exc:
        out.error, out.error_type = str(exc), type(exc).__name__
    except Exception as exc:  # a bug in one backend must not hide the other results
        out.error = redact(f"internal error: {type(exc).__name__}: {exc}")
        out.error_type = type(exc).__name__
    finally:
        if out.latency is None and start is not None:  # how long it took to fail
            out.latency = time.perf_counter() - start
        if llm is not None:
            # Closing a broken connection is not the check's result.
            with contextlib.suppress(Exception):
                await llm.aclose()
    return out


# --------------------------------------------------------------------------------------------
# Reports


def _print(outcomes: list[Outcome], elapsed: float, *, json_out: bool) -> None:
    import json

    counts = {s: sum(1 for r in outcomes if r.status == s) for s in ("pass", "fail", "skip")}
    if json_out:
        print(json.dumps({"results": [r.to_json() for r in outcomes],
                          "passed": counts["pass"], "failed": counts["fail"],
                          "skipped": counts["skip"], "seconds": _round(elapsed)}, indent=2))
        return
    from anyllm_cli.cli.common import print_table

    rows = []
    for r in outcomes:
        detail = r.error if r.status != "pass" else _one_line(r.answer or "")
        rows.append([r.name, r.provider, r.model, r.status.upper(), _secs(r.ttft),
                     _secs(r.latency), _tokens(r.usage), detail or ""])
    styles = [{"pass": "green", "fail": "red", "skip": "yellow"}[r.status] for r in outcomes]
    print_table(["PROFILE", "PROVIDER", "MODEL", "STATUS", "TTFT", "TOTAL", "TOKENS",
                 "ANSWER / ERROR"], rows, styles=styles,
                wrap=[False, False, True] + [False] * 4 + [True])
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
          f"in {elapsed:.2f} s")


def write_junit(path: Path, outcomes: list[Outcome], elapsed: float) -> None:
    """Write the JUnit XML report (the de-facto schema of Jenkins/GitLab/pytest): ``<testsuites>``
    holding one ``<testsuite name="anyllm smoke">``, a ``<testcase classname="anyllm.smoke.
    <provider>" name="<profile>">`` per profile with ``<failure message= type=>`` or
    ``<skipped message=>``, and provider, model, times and the answer in ``<system-out>``."""
    import socket
    import xml.etree.ElementTree as ET
    from datetime import UTC, datetime

    fails = sum(1 for r in outcomes if r.status == "fail")
    skips = sum(1 for r in outcomes if r.status == "skip")
    counts = {"tests": str(len(outcomes)), "failures": str(fails), "errors": "0",
              "skipped": str(skips), "time": f"{elapsed:.3f}"}
    root = ET.Element("testsuites", {"name": "anyllm smoke", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": "anyllm smoke", **counts,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": socket.gethostname()})
    for r in outcomes:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"anyllm.smoke.{r.provider}", "name": r.name,
            "time": f"{r.latency or 0.0:.3f}"})
        if r.status == "fail":
            failure = ET.SubElement(case, "failure", {"message": _xml(r.error or "failed"),
                                                      "type": r.error_type or "Failure"})
            failure.text = _xml(r.error or "")
        elif r.status == "skip":
            ET.SubElement(case, "skipped", {"message": _xml(r.error or "skipped")})
        lines = [f"provider: {r.provider}", f"model: {r.model}",
                 f"time to first token: {_secs(r.ttft)}", f"total: {_secs(r.latency)}",
                 f"tokens (prompt/completion): {_tokens(r.usage)}"]
        if r.answer is not None:
            lines.append(f"answer: {r.answer}")
        ET.SubElement(case, "system-out").text = _xml("\n".join(lines))
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
    path.write_text(text + "\n", encoding="utf-8")


def _xml(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (control characters from a provider's
    message would make the whole report unreadable)."""
    import re

    return re.sub(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", text)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "-"
    return f"{usage.get('prompt_tokens', '?')}/{usage.get('completion_tokens', '?')}"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ANSWER_WIDTH else flat[:ANSWER_WIDTH - 1] + "…"
