"""Streaming terminal renderers for chat answers.

``PlainRenderer`` is for pipes and files: the answer's bytes, flushed per chunk, nothing else.
``MarkdownRenderer`` is for terminals: live Markdown whose cost per refresh is bounded by the
block being written, not by the answer. Finished blocks are printed once above a ``rich.live.Live``
region that only ever holds the block in progress (the technique of aichat's
``src/render/stream.rs``), so a long answer never gets re-parsed, re-highlighted or redrawn.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from time import monotonic as _monotonic
from typing import Literal, Protocol, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

__all__ = ["MarkdownRenderer", "PlainRenderer", "Renderer", "make_renderer"]

CODE_THEME = "monokai"
REASONING_STYLE = "dim italic"


class Renderer(Protocol):
    def content(self, text: str) -> None: ...
    def reasoning(self, text: str) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Piped / redirected output


class PlainRenderer:
    """The answer verbatim on ``out``; reasoning only ever on ``err`` (and only if asked)."""

    def __init__(
        self, out: TextIO, *, show_reasoning: bool = False, err: TextIO | None = None
    ) -> None:
        self._out = out
        self._err = err if show_reasoning else None
        self._wrote_answer = False
        self._answer_ends_line = True
        self._reasoning_ends_line = True
        self._done = False

    def content(self, text: str) -> None:
        if self._done or not text:
            return
        self._end_reasoning_line()
        self._out.write(text)
        # Per chunk, so `anyllm ... | tee` or a reading program sees tokens as they arrive.
        self._out.flush()
        self._wrote_answer = True
        self._answer_ends_line = text.endswith("\n")

    def reasoning(self, text: str) -> None:
        if self._done or not text or self._err is None:
            return
        self._err.write(text)
        self._err.flush()
        self._reasoning_ends_line = text.endswith("\n")

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._end_reasoning_line()
        if self._wrote_answer and not self._answer_ends_line:
            self._out.write("\n")
        self._out.flush()

    def abort(self) -> None:
        # Called from Ctrl-C / error paths: the partial answer stays, nothing may raise
        # (the pipe may be closed already, e.g. `| head -1`).
        try:
            self.finish()
        except Exception:
            self._done = True

    def _end_reasoning_line(self) -> None:
        # Keeps later stderr diagnostics from being glued onto the last thought.
        if self._err is not None and not self._reasoning_ends_line:
            self._err.write("\n")
            self._err.flush()
            self._reasoning_ends_line = True


# --------------------------------------------------------------------------------------------
# Markdown block splitting

# C0/C1 controls other than tab and newline: model output must not be able to drive the
# terminal (retitle it, move the cursor, ...). \r is normalised to \n before this applies.
_CONTROLS: dict[int, None] = {
    c: None for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)]
}

_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>[-+*]|(?P<num>\d{1,9})[.)])(?P<gap>[ \t]+|$)")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")

BlockKind = Literal["para", "list", "fence", "indented"]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip(" "))


@dataclass(frozen=True)
class _Item:
    indent: int
    content_indent: int  # column where the item's own text starts; deeper lines belong to it
    ordered: bool
    number: int
    has_text: bool


def _list_item(line: str) -> _Item | None:
    if _RULE.match(line):  # "* * *" is a rule, not a bullet
        return None
    m = _ITEM.match(line)
    if m is None:
        return None
    indent = _indent(m["indent"])
    gap = len(m["gap"].expandtabs(4))
    # CommonMark: 5+ spaces after the marker means indented code inside the item.
    content = indent + len(m["marker"]) + (gap if 1 <= gap <= 4 else 1)
    num = m["num"]
    return _Item(indent, content, num is not None, int(num) if num else 0, bool(line[m.end() :]))


After = Literal["start", "joined", "block", "rule"]


class _Block:
    """Markdown for one block, spaced as if the whole answer had been rendered at once.

    Rich puts one blank line between top-level elements, except right after a horizontal
    rule (which ends with its own blank line), and it always starts a list, quote or table
    with a blank line, even at the top of a document. ``after`` says what precedes this
    block: nothing ("start"), an item of the same list ("joined"), a rule, or another block.
    """

    def __init__(self, markdown: Markdown, after: After) -> None:
        self._markdown = markdown
        self._after = after

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        segments = iter(console.render(self._markdown, options))
        first = next(segments, None)
        if first is None:
            return
        if first.text == "\n" and first.style is None and not first.control:
            if self._after in ("block", "rule"):
                yield first  # Rich's own leading blank line is the separator
        else:
            if self._after == "block":
                yield Segment.line()
            yield first
        yield from segments


class _LiveView:
    """What the Live region shows: the block in progress, cut to the screen's last lines.

    Live cannot move the cursor above the top of the screen, so a frame taller than the
    screen would leave stale copies in the scrollback; showing the tail follows the writing.
    The complete block is printed in full once it is committed.
    """

    def __init__(self, owner: MarkdownRenderer) -> None:
        self._owner = owner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        renderable = self._owner._in_progress()
        if renderable is None:
            return  # zero lines: Live then adds no blank line when it stops
        lines = console.render_lines(renderable, options, pad=False)
        if not self._owner._final_frame:
            limit = max(1, options.size.height - 1)
            lines = lines[-limit:]
        newline = Segment.line()
        for index, line in enumerate(lines):
            if index:
                yield newline
            yield from line


class MarkdownRenderer:
    """Live Markdown for a terminal, with a per-refresh cost bounded by the current block."""

    code_theme: str = CODE_THEME

    def __init__(
        self,
        console: Console,
        *,
        show_reasoning: bool = True,
        refresh_per_second: float = 20.0,
    ) -> None:
        if refresh_per_second <= 0:
            raise ValueError("refresh_per_second must be > 0")
        self._console = console
        self._show_reasoning = show_reasoning
        self._interval = 1.0 / refresh_per_second
        self._live: Live | None = None
        self._done = False
        self._final_frame = False
        self._next_draw = float("-inf")  # the first piece is drawn at once
        #: number of screen updates so far (for benchmarks and tests)
        self.refresh_count = 0

        # Renderables committed but not yet drawn: printed with the next (throttled) draw.
        self._to_print: list[RenderableType] = []
        self._printed_any = False  # something is above the Live region: separate with a blank

        # Reasoning: complete lines are committed, the line being written is live.
        self._r_partial = ""
        self._r_cr = False
        self._r_blank_lines = 0
        self._r_printed = False

        # Answer: the block in progress as complete lines plus the line being written.
        self._answer_started = False
        self._cr = False
        self._partial = ""
        self._lines: list[str] = []
        self._kind: BlockKind = "para"
        self._fence: tuple[str, int] | None = None  # (char, length) of the open fence
        self._blank_after = False  # a blank line followed the block's content (outside fences)
        self._item: _Item | None = None  # the list item this block is, when kind == "list"
        self._joined = False  # continues the previous list: no blank line in between
        self._prev_item: _Item | None = None  # last committed block, if it was a list item
        self._prev_rule = False  # last committed block was a horizontal rule

    # -- Renderer API -------------------------------------------------------------------

    def content(self, text: str) -> None:
        if self._done or not text:
            return
        self._ensure_live()
        if not self._answer_started:
            self._answer_started = True
            self._commit_reasoning()
        text = self._normalise(text, reasoning=False)
        if "\n" not in text:
            self._partial += text
        else:
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                self._feed_line(line)
        self._maybe_draw()

    def reasoning(self, text: str) -> None:
        # Reasoning that arrives after the answer began is not shown: it cannot be placed
        # before the answer any more, and mixing it in would garble the Markdown.
        if self._done or not text or not self._show_reasoning or self._answer_started:
            return
        self._ensure_live()
        text = self._normalise(text, reasoning=True)
        if "\n" in text:
            *lines, self._r_partial = (self._r_partial + text).split("\n")
            for line in lines:
                self._reasoning_line(line)
        else:
            self._r_partial += text
        self._maybe_draw()

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._live is None:
            return  # nothing was streamed: print nothing at all
        try:
            if self._answer_started:
                if self._cr:
                    self._partial += "\n"
                self._flush_answer()
            else:
                self._commit_reasoning()
            self._draw()  # prints what is left above an (now empty) Live region
        finally:
            self._stop_live()  # the cursor comes back even if the last print failed

    def abort(self) -> None:
        # Ctrl-C or an error: keep everything received on screen (including pieces the
        # throttle has not drawn yet), in full, then hand the terminal back. Never raises.
        if self._done:
            return
        self._done = True
        if self._live is None:
            return
        with contextlib.suppress(Exception):
            if self._to_print:
                self._print_pending()
        # Only now uncropped: the region on screen is still at most a screen tall, so Live's
        # cursor-up on stop reaches its top and the full last frame replaces it cleanly.
        self._final_frame = True
        with contextlib.suppress(Exception):
            self._stop_live()

    # -- drawing ------------------------------------------------------------------------

    def _ensure_live(self) -> None:
        if self._live is None:
            self._live = Live(
                _LiveView(self),
                console=self._console,
                auto_refresh=False,  # we refresh at most once per interval, on our own clock
                transient=False,  # on stop the last frame stays on screen
                # stdout/stderr redirection would route stderr diagnostics into the answer.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def _maybe_draw(self) -> None:
        now = _monotonic()
        if now < self._next_draw:
            return
        # A schedule, not "an interval since the last draw": pieces arrive at discrete times,
        # and a full interval after each late draw would lower the rate (10 ms pieces and a
        # 50 ms interval would draw every 60 ms). After a pause in the stream, start afresh.
        if now - self._next_draw >= self._interval:
            self._next_draw = now
        self._next_draw += self._interval
        self._draw()

    def _draw(self) -> None:
        assert self._live is not None
        self.refresh_count += 1
        if self._to_print:
            # While Live runs, console.print writes above the region and redraws it: one
            # screen update for both the committed blocks and the block in progress.
            self._print_pending()
        else:
            self._live.refresh()

    def _print_pending(self) -> None:
        renderables, self._to_print = self._to_print, []
        self._console.print(Group(*renderables))

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()

    def _in_progress(self) -> RenderableType | None:
        """The Live region's content, or None for an empty region."""
        if self._answer_started:
            text = "\n".join([*self._lines, self._partial]) if self._lines else self._partial
            if not text.strip():
                return None
            joined = self._joined if self._lines else self._continues_list(self._partial)
            return self._block(text, joined=joined)
        if self._show_reasoning and self._r_partial.strip():
            gap = [Text("") for _ in range(self._r_blank_lines)]
            return Group(*gap, Text(self._r_partial, style=REASONING_STYLE))
        return None

    def _block(self, text: str, *, joined: bool) -> _Block:
        after: After
        if not self._printed_any:
            after = "start"
        elif joined:
            after = "joined"
        else:
            after = "rule" if self._prev_rule else "block"
        return _Block(Markdown(text, code_theme=self.code_theme), after)

    # -- text intake --------------------------------------------------------------------

    def _normalise(self, text: str, *, reasoning: bool) -> str:
        # "\r\n" may be split across pieces: hold a trailing "\r" back until the next one.
        held_before = self._r_cr if reasoning else self._cr
        if held_before:
            text = "\r" + text
        held = text.endswith("\r")
        if held:
            text = text[:-1]
        if reasoning:
            self._r_cr = held
        else:
            self._cr = held
        return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROLS)

    def _reasoning_line(self, line: str) -> None:
        if not line.strip():
            # Blank lines only between thoughts: none leading, none trailing.
            if self._r_printed:
                self._r_blank_lines += 1
            return
        texts = [Text("") for _ in range(self._r_blank_lines)]
        self._r_blank_lines = 0
        self._to_print.extend([*texts, Text(line, style=REASONING_STYLE)])
        self._r_printed = self._printed_any = True

    def _commit_reasoning(self) -> None:
        if self._r_partial.strip():
            self._reasoning_line(self._r_partial)
        self._r_partial = ""

    # -- answer block splitting ---------------------------------------------------------

    def _feed_line(self, line: str) -> None:
        if self._fence is not None:
            self._lines.append(line)
            m = _FENCE_CLOSE.match(line)
            char, length = self._fence
            if m and m["fence"][0] == char and len(m["fence"]) >= length:
                self._fence = None
                if self._kind == "fence":
                    self._commit()  # a closed top-level fence is complete
            return

        if not line.strip():
            if not self._lines:
                return  # blank lines between blocks are the separator's job
            if self._kind in ("list", "indented"):
                # The next line decides: an indented line or another item continues.
                self._lines.append(line)
                self._blank_after = True
            else:
                self._commit()
            return

        if self._lines and self._continues(line):
            self._lines.append(line)
            self._open_fence(line)
            return

        joined = False
        if self._lines:
            joined = self._kind == "list" and self._continues_list(line, current=True)
            self._commit()
        self._start(line, joined=joined)

    def _continues(self, line: str) -> bool:
        """Whether a non-blank line belongs to the block in progress."""
        indent = _indent(line)
        item = _list_item(line)
        if self._kind == "indented":
            return indent >= 4
        if self._kind == "list":
            assert self._item is not None
            if indent >= self._item.content_indent:
                return True  # nested paragraphs, sub-lists, code inside the item
            if item is not None or self._blank_after:
                return False  # a sibling item, or the list is over
            interrupts = _HEADING.match(line) or _RULE.match(line) or self._is_fence_open(line)
            return not interrupts  # otherwise a lazy continuation of the item's paragraph
        # Paragraph-like: headings, fences and lists can start right after it.
        if _HEADING.match(line) or self._is_fence_open(line):
            return False
        starts_list = item is not None and item.has_text and (not item.ordered or item.number == 1)
        return not starts_list

    def _continues_list(self, line: str, *, current: bool = False) -> bool:
        """Whether an item on `line` is the next item of the list just before it."""
        prev = self._item if current else self._prev_item
        item = _list_item(line)
        return (
            prev is not None
            and item is not None
            and item.indent < prev.content_indent
            and item.ordered == prev.ordered
        )

    def _start(self, line: str, *, joined: bool) -> None:
        self._joined = joined
        self._blank_after = False
        item = _list_item(line)
        if self._is_fence_open(line):
            self._kind = "fence"
        elif _HEADING.match(line) or _RULE.match(line):
            self._kind = "para"
            self._lines.append(line)
            self._commit()  # one-line blocks are complete as soon as the line is
            return
        elif item is not None:
            self._kind = "list"
            if joined and item.ordered and self._prev_item is not None:
                # "1. a / 1. b" numbers 1, 2 when rendered as one list: keep that.
                number = self._prev_item.number + 1
                if number != item.number:
                    line = re.sub(r"\d+", str(number), line, count=1)
                    item = _Item(item.indent, item.content_indent, True, number, item.has_text)
        elif _indent(line) >= 4:
            self._kind = "indented"
        else:
            self._kind = "para"
        self._item = item if self._kind == "list" else None
        self._lines.append(line)
        self._open_fence(line)

    def _is_fence_open(self, line: str) -> bool:
        m = _FENCE_OPEN.match(line)
        # A backtick "fence" with a backtick in its info string is inline code instead.
        return m is not None and not (m["fence"][0] == "`" and "`" in m["info"])

    def _open_fence(self, line: str) -> None:
        if self._is_fence_open(line):
            m = _FENCE_OPEN.match(line)
            assert m is not None
            self._fence = (m["fence"][0], len(m["fence"]))

    def _commit(self) -> None:
        """Queue the block in progress to be printed once, above the Live region."""
        text = "\n".join(self._lines)
        is_rule = len(self._lines) == 1 and _RULE.match(text) is not None
        self._lines = []
        self._fence = None
        self._blank_after = False
        if text.strip():
            self._to_print.append(self._block(text, joined=self._joined))
            self._printed_any = True
            self._prev_rule = is_rule
        self._prev_item = self._item if self._kind == "list" else None
        self._item = None
        self._joined = False
        self._kind = "para"

    def _flush_answer(self) -> None:
        lines = self._partial.split("\n")
        self._partial = ""
        for line in lines:
            self._feed_line(line)
        if self._lines:
            self._commit()  # an unclosed fence still renders as code


# --------------------------------------------------------------------------------------------


def make_renderer(
    *,
    tty: bool,
    no_color: bool,
    show_reasoning: bool | None,
    out: TextIO,
    err: TextIO,
) -> Renderer:
    """The renderer for this output: live Markdown on a terminal, verbatim text otherwise.

    ``show_reasoning=None`` means the default: shown (dimmed) on a terminal, dropped when piped.
    """
    if not tty:
        return PlainRenderer(out, show_reasoning=bool(show_reasoning), err=err)
    # Passing no_color=False to Console would override its own NO_COLOR check.
    no_color = no_color or os.environ.get("NO_COLOR", "") != ""
    console = Console(
        file=out,
        stderr=False,
        force_terminal=True,
        no_color=no_color,
        highlight=False,
    )
    return MarkdownRenderer(
        console, show_reasoning=True if show_reasoning is None else show_reasoning
    )
