"""``anyllm batch``: a JSONL file of requests through any provider (the OpenAI Batch format)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from anyllm_cli.cli import options as o
from anyllm_cli.cli.common import (
    fail,
    install_warning_printer,
    load_and_resolve,
    open_llm,
    parse_options,
)

if TYPE_CHECKING:
    from anyllm_cli.anyllm import AnyLLM
    from anyllm_cli.batch import BatchStats
    from anyllm_cli.config import Config, Resolved

PANEL_BATCH = "Batch"


def register(app: typer.Typer) -> None:
    app.command("batch", epilog=EXAMPLES)(batch)


EXAMPLES = (
    "Examples:  anyllm batch requests.jsonl -o results.jsonl -p groq -j 16  ·  "
    "jq -c '{prompt: .text}' docs.jsonl | anyllm batch > answers.jsonl  ·  "
    "anyllm batch requests.jsonl -o results.jsonl --resume"
)


def batch(
    input_file: Annotated[Path | None, typer.Argument(
        metavar="INPUT", show_default=False,
        help="JSONL requests: OpenAI Batch lines {custom_id, method, url, body}, or "
             "{custom_id, messages, ...params}, or {prompt}. Default (or '-'): stdin.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", rich_help_panel=o.PANEL_OUTPUT, show_default=False,
        help="Write the OpenAI Batch output lines here. Default: stdout.")] = None,
    profile: o.ProfileOpt = None,
    model: o.ModelOpt = None,
    option: o.LongOptionOpt = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-j", metavar="N", min=1, max=1024, rich_help_panel=PANEL_BATCH,
        help="Requests in flight at once.")] = 8,
    rpm: Annotated[float | None, typer.Option(
        "--rpm", metavar="N", min=0.001, rich_help_panel=PANEL_BATCH, show_default=False,
        help="At most N requests per minute.")] = None,
    tpm: Annotated[float | None, typer.Option(
        "--tpm", metavar="N", min=1, rich_help_panel=PANEL_BATCH, show_default=False,
        help="At most N tokens per minute (estimated before a request, corrected by its "
             "usage).")] = None,
    unordered: Annotated[bool, typer.Option(
        "--unordered", rich_help_panel=PANEL_BATCH,
        help="Write each result as soon as it completes, not in input order.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", rich_help_panel=PANEL_BATCH,
        help="Skip the custom_ids already in the -o FILE (an earlier, interrupted run) and "
             "append the rest; a torn last line is cut off first. Failed lines count as done: "
             "to run them again, drop them from FILE first (jq -c 'select(.error == null)')."
    )] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", rich_help_panel=PANEL_BATCH,
        help="Validate every line and print the first converted native request; send "
             "nothing.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", rich_help_panel=o.PANEL_OUTPUT, show_default=False,
        help="Progress on stderr: a bar on a terminal, a line every few seconds otherwise. "
             "Default: on when stderr is a terminal.")] = None,
    api_base: o.ApiBaseOpt = None,
    timeout: o.TimeoutOpt = None,
    strict: o.StrictOpt = False,
    config: o.ConfigOpt = None,
) -> None:
    """Run a JSONL file of chat requests through a provider, concurrently; one OpenAI Batch
    output line per input line.

    Model per line: -m, else the line's model, else the profile's. Parameters: --option over
    the line's over the profile's. Failed lines (not JSON, no messages, rejected by the
    provider) become output lines with "error" set and their line number; the batch goes on.
    Retries (429, 5xx, timeouts) are per request; a 429's Retry-After pauses the whole batch.
    A summary goes to stderr. Exit status: 0 all lines succeeded, 1 any failed, 2 usage or
    input error (duplicate custom_id: nothing is sent), 130 interrupted (finished lines are
    kept whole; --resume finishes the job).
    """
    source = "-" if input_file is None else str(input_file)
    out: str | None = None if output is None or str(output) == "-" else str(output)
    if resume and out is None:
        fail("--resume needs an output file: -o FILE", 2)
    if source == "-" and sys.stdin.isatty():
        fail("no input: give a JSONL file, or pipe the requests on stdin", 2)
    install_warning_printer()
    _warn_once_per_message()
    cfg, resolved = load_and_resolve(config, profile, model)
    overrides = parse_options(option, "--option")
    job = _Job(cfg, resolved, api_base=api_base, timeout=timeout, strict=strict,
               model=resolved.model if model else None, default_model=resolved.model,
               params=dict(resolved.params), overrides=overrides)
    import asyncio

    if dry_run:
        code = asyncio.run(job.dry_run(source))
        raise typer.Exit(code)
    show = progress if progress is not None else sys.stderr.isatty()
    reporter: _Reporter | None = None
    if show:
        reporter = _RichProgress() if sys.stderr.isatty() else _PlainProgress()
    from anyllm_cli.batch import BatchStats

    stats = BatchStats()
    try:
        code = asyncio.run(job.run(source, out, stats, concurrency=concurrency, rpm=rpm,
                                   tpm=tpm, ordered=not unordered, resume=resume,
                                   reporter=reporter))
    except KeyboardInterrupt:
        if reporter is not None:
            reporter.stop()
        _summary(stats, out, interrupted=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


class _Job:
    """One batch command: the resolved profile and the per-line defaults."""

    def __init__(self, cfg: Config, resolved: Resolved, *, api_base: str | None,
                 timeout: float | None, strict: bool, model: str | None,
                 default_model: str | None, params: dict[str, Any],
                 overrides: dict[str, Any]) -> None:
        self.cfg = cfg
        self.resolved = resolved
        self.api_base = api_base
        self.timeout = timeout
        self.strict = strict
        self.model = model
        self.default_model = default_model
        self.params = params
        self.overrides = overrides

    async def _resolved_once(self) -> Resolved:
        """The profile with its ``api_key_cmd`` already run: the batch opens several provider
        instances, and the command must run once, not once per instance."""
        import asyncio
        import dataclasses

        from anyllm_cli.config import run_key_command

        prof = self.resolved.profile
        if prof is None or not prof.api_key_cmd or prof.api_key:
            return self.resolved
        key = await asyncio.to_thread(run_key_command, prof.api_key_cmd,
                                      self.resolved.provider.name)
        prof = prof.model_copy(update={"api_key": key, "api_key_cmd": None})
        return dataclasses.replace(self.resolved, profile=prof)

    async def run(self, source: str, out: str | None, stats: BatchStats, *, concurrency: int,
                  rpm: float | None, tpm: float | None, ordered: bool, resume: bool,
                  reporter: _Reporter | None) -> int:
        from anyllm_cli.batch import run_batch
        from anyllm_cli.errors import AnyLLMError

        try:
            resolved = await self._resolved_once()

            async def factory() -> AnyLLM:
                return await open_llm(self.cfg, resolved, api_base=self.api_base,
                                      timeout=self.timeout, strict=self.strict)

            await run_batch(source, out, provider=factory, model=self.model,
                            default_model=self.default_model, params=self.params,
                            overrides=self.overrides, concurrency=concurrency, rpm=rpm, tpm=tpm,
                            ordered=ordered, resume=resume, stats=stats,
                            progress=reporter.update if reporter is not None else None)
        except AnyLLMError as exc:
            if reporter is not None:
                reporter.stop()
            print(f"anyllm: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
        except BrokenPipeError:
            if reporter is not None:
                reporter.stop()
            print("anyllm: batch stopped: the output pipe was closed", file=sys.stderr)
            return 1
        if reporter is not None:
            reporter.stop()
        _summary(stats, out)
        if stats.fatal is not None:
            return 1
        return 1 if stats.failed else 0

    async def dry_run(self, source: str) -> int:
        from anyllm_cli.anyllm import AnyLLM
        from anyllm_cli.batch import dry_run, dumps_request
        from anyllm_cli.errors import AnyLLMError

        try:
            # No key is needed to check a file: a placeholder stands in, and nothing is sent.
            llm = await AnyLLM.acreate(self.resolved.provider, api_key=_DRY_RUN_KEY,
                                       api_base=self.api_base, strict=self.strict)
        except AnyLLMError as exc:
            print(f"anyllm: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
        try:
            report = await dry_run(source, llm, model=self.model,
                                   default_model=self.default_model, params=self.params,
                                   overrides=self.overrides)
        except AnyLLMError as exc:
            print(f"anyllm: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
        finally:
            await llm.aclose()
        if report.first_request is not None:
            print(dumps_request(report.first_request), flush=True)
        for lineno, message in report.errors:
            print(f"anyllm: line {lineno}: {message}", file=sys.stderr)
        if report.error_count > len(report.errors):
            print(f"anyllm: ... and {report.error_count - len(report.errors)} more invalid "
                  "lines", file=sys.stderr)
        first = (f"; above: the {self.resolved.provider.name} request for line "
                 f"{report.first_line}") if report.first_line is not None else ""
        print(f"anyllm: dry run: {report.lines} lines, {report.valid} valid, "
              f"{report.error_count} invalid; nothing sent{first}", file=sys.stderr, flush=True)
        return 2 if report.error_count else 0


_DRY_RUN_KEY = "anyllm-dry-run-placeholder-key"


def _warn_once_per_message() -> None:
    """Each line of a batch would repeat the same warning (an unsupported parameter): show
    each distinct message once."""
    import warnings

    inner = warnings.showwarning
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            inner(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def _summary(stats: BatchStats, out: str | None, *, interrupted: bool = False) -> None:
    err = sys.stderr
    state = stats.resume
    where = out or "stdout"
    if state is not None and state.cut_bytes:
        print(f"anyllm: cut a torn last line ({state.cut_bytes} bytes) off {out}", file=err)
    if state is not None and state.bad_lines:
        print(f"anyllm: warning: {len(state.bad_lines)} lines of {out} are not batch output "
              f"lines (first: line {state.bad_lines[0]}); ignored", file=err)
    skipped = ""
    if stats.skipped:
        earlier = f", {state.failed} of them failed" if state is not None and state.failed else ""
        skipped = f" ({stats.skipped} already in {out}{earlier})"
    rate = stats.done / stats.elapsed if stats.elapsed > 0 else 0.0
    print(f"anyllm: batch: {stats.done} of {stats.total} lines{skipped}: "
          f"{stats.succeeded} succeeded, {stats.failed} failed; tokens "
          f"{stats.prompt_tokens} in, {stats.completion_tokens} out; {stats.elapsed:.1f} s, "
          f"{rate:.1f} requests/s", file=err)
    for message in stats.errors:
        print(f"anyllm:   failed: {message}", file=err)
    if stats.failed > len(stats.errors):
        print(f"anyllm:   ... {stats.failed - len(stats.errors)} more failed lines (their "
              f'"error" is set in {where})', file=err)
    if stats.fatal is not None:
        print(f"anyllm: batch stopped: {stats.fatal}", file=err)
    if (stats.fatal is not None or interrupted) and stats.done < stats.total:
        left = stats.total - stats.done
        if out:
            print(f"anyllm: {left} lines not run; to finish: the same command with "
                  f"--resume -o {out}", file=err)
        else:
            print(f"anyllm: {left} lines not run (use -o FILE to be able to --resume)", file=err)
    if interrupted:
        print("anyllm: interrupted", file=err)
    err.flush()


class _Reporter:
    def update(self, stats: BatchStats) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class _PlainProgress(_Reporter):
    """A progress line on stderr every few seconds (stderr is not a terminal)."""

    INTERVAL = 2.0

    def __init__(self) -> None:
        self.last = 0.0

    def update(self, stats: BatchStats) -> None:
        now = time.monotonic()
        final = stats.finished is not None
        if not final and now - self.last < self.INTERVAL and self.last:
            return
        self.last = now
        rate = stats.rate
        left = stats.total - stats.done
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and left > 0 else ""
        pct = 100 * stats.done / stats.total if stats.total else 100.0
        print(f"anyllm: batch {stats.done}/{stats.total} ({pct:.0f}%), {rate:.1f} requests/s"
              f"{eta}, {stats.failed} failed", file=sys.stderr, flush=True)


class _RichProgress(_Reporter):
    """A Rich progress bar on stderr: done/total, rate, ETA, failures; removed at the end."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        self.progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]}"),
            # Fixed width: the bar keeps its length when a pause note comes and goes.
            TextColumn("{task.fields[note]}", table_column=Column(width=16, no_wrap=True)),
            console=Console(stderr=True),
            transient=True,
            expand=True,
        )
        self.task = self.progress.add_task("batch", total=None, rate="", failed="", note="")
        self.started = False

    def update(self, stats: BatchStats) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        rate = stats.rate
        paused = stats.paused_until - time.monotonic()
        self.progress.update(
            self.task, total=stats.total or None, completed=stats.done,
            rate=f"{rate:,.0f} req/s" if stats.done else "",
            failed=f"[red]{stats.failed} failed" if stats.failed else "[dim]0 failed",
            note=f"[yellow]paused {paused:.0f} s (429)" if paused > 0.5 else "")

    def stop(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False
