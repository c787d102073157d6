"""What the user sees from the streaming renderers (anyllm_cli/render.py).

Terminal tests replay the renderer's raw output through a small terminal emulator (cursor-up,
erase-line, a screen of fixed height over a scrollback) and compare the final transcript with
what Rich prints for the whole answer at once.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable, Iterator

import pytest
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from anyllm_cli import render
from anyllm_cli.render import CODE_THEME, MarkdownRenderer, PlainRenderer, make_renderer

WIDTH = 80

DOC = (
    """# Streaming demo

An opening paragraph with **bold**, *italic* and `inline code` that is long enough to wrap \
across more than one line of the terminal.

## Steps
Before you start:
- install the tool
- configure it
  with a second line
    - nested item

1. first numbered

1. second numbered, written lazily as "1."

1. third

```python
def greet(name: str) -> str:

    return f"hello {name}"
```
Text right after the fence.

> A quote
> over two lines

| a | b |
|---|---|
| 1 | 2 |

---

### Tall code

```python
"""
    + "\n".join(f"value_{i} = {i} * 2  # line {i}" for i in range(30))
    + """
```

Final words without a newline"""
)

_TOKEN = re.compile(
    r"\x1b\[(?P<params>[0-9;?]*)(?P<cmd>[A-Za-z])"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC (hyperlinks)
    r"|(?P<text>[^\x1b]+)"
)
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


@pytest.fixture(autouse=True)
def _terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich reads these; the host's settings must not decide colour or interactivity.
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in (
        "NO_COLOR",
        "FORCE_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
        "COLUMNS",
        "LINES",
    ):
        monkeypatch.delenv(name, raising=False)


class Screen:
    """Just enough of a terminal for Rich Live: text, \\r, \\n, cursor up, erase line, SGR.

    Rows past the top of the screen are scrollback: the cursor cannot move up into them, so a
    live region taller than the screen leaves stale copies behind, as in a real terminal.
    """

    def __init__(self, height: int) -> None:
        self.height = height
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: str) -> Screen:
        for m in _TOKEN.finditer(data):
            if m["text"] is not None:
                self._text(m["text"])
            elif m["cmd"] == "A":
                top = max(0, len(self.rows) - self.height)
                self.row = max(top, self.row - int(m["params"] or 1))
            elif m["cmd"] == "K":
                row = self.rows[self.row]
                if m["params"] == "2":
                    row.clear()
                else:
                    del row[self.col :]
            elif m["cmd"] is not None:
                assert m["cmd"] in "mhl", f"unexpected control {m[0]!r}"
        return self

    def _text(self, text: str) -> None:
        for ch in text:
            if ch == "\n":
                self.row += 1
                self.col = 0
                if self.row == len(self.rows):
                    self.rows.append([])
            elif ch == "\r":
                self.col = 0
            else:
                row = self.rows[self.row]
                row.extend(" " * (self.col - len(row)))
                row[self.col : self.col + 1] = [ch]
                self.col += 1

    def visible(self) -> list[str]:
        """The rows on screen now (not the scrollback)."""
        return ["".join(r).rstrip() for r in self.rows[-self.height :]]

    def lines(self) -> list[str]:
        out = ["".join(r).rstrip() for r in self.rows]
        while out and not out[-1]:
            out.pop()
        while out and not out[0]:
            out.pop(0)
        return out


def plain(raw: str) -> str:
    return "".join(m["text"] for m in _TOKEN.finditer(raw) if m["text"] is not None)


def sgr_codes(raw: str) -> Iterator[int]:
    """SGR parameters in order, with 38/48 colour arguments folded into the 38/48."""
    for m in _SGR.finditer(raw):
        params = [int(p) for p in m[1].split(";") if p] or [0]
        i = 0
        while i < len(params):
            yield params[i]
            if params[i] in (38, 48):
                i += 3 if params[i + 1] == 5 else 5
            else:
                i += 1


def has_colour(raw: str) -> bool:
    colours = {*range(30, 38), 38, *range(40, 48), 48, *range(90, 98), *range(100, 108)}
    return any(code in colours for code in sgr_codes(raw))


def term_console(height: int = 20, **kwargs: object) -> Console:
    return Console(
        file=io.StringIO(),
        force_terminal=True,
        width=WIDTH,
        height=height,
        color_system="truecolor",
        **kwargs,  # type: ignore[arg-type]
    )


def raw_output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def pieces(text: str, seed: int, low: int = 1, high: int = 12) -> list[str]:
    rnd = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rnd.randint(low, high)
        out.append(text[i : i + n])
        i += n
    return out


def one_shot(doc: str) -> list[str]:
    console = Console(file=io.StringIO(), force_terminal=True, width=WIDTH, color_system=None)
    console.print(Markdown(doc, code_theme=CODE_THEME))
    return Screen(10**6).feed(raw_output(console)).lines()


class NaiveRenderer:
    """Control: the whole answer in one Live, redrawn every piece. Must fail the 'once' test."""

    def __init__(self, console: Console) -> None:
        self._text = ""
        self._live = Live(console=console, auto_refresh=False, redirect_stderr=False)
        self._live.start()

    def content(self, text: str) -> None:
        self._text += text
        self._live.update(Markdown(self._text), refresh=True)

    def finish(self) -> None:
        self._live.stop()


# --------------------------------------------------------------------------------------------
# PlainRenderer: stdout is a pipe or a file


class FlushRecorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.seen_at_flush: list[str] = []

    def flush(self) -> None:
        self.seen_at_flush.append(self.getvalue())
        super().flush()


def test_plain_streams_each_piece_verbatim_and_flushes_it() -> None:
    out = FlushRecorder()
    r = PlainRenderer(out)
    chunks = pieces(DOC, seed=3)
    for i, chunk in enumerate(chunks):
        r.content(chunk)
        # A reader on the other end of the pipe has everything so far, right now.
        assert out.seen_at_flush[-1] == "".join(chunks[: i + 1])
    assert len(out.seen_at_flush) == len(chunks)
    r.finish()
    assert out.getvalue() == DOC + "\n"


def test_plain_never_writes_ansi() -> None:
    out = io.StringIO()
    r = PlainRenderer(out, show_reasoning=True, err=io.StringIO())
    r.reasoning("thinking")
    for chunk in pieces(DOC, seed=4):
        r.content(chunk)
    r.finish()
    assert "\x1b" not in out.getvalue()
    assert out.getvalue() == DOC + "\n"  # Markdown stays Markdown: no rendering when piped


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [(["ab", "c"], "abc\n"), (["abc\n"], "abc\n"), (["a\r\n"], "a\r\n"), ([], "")],
)
def test_plain_finish_ends_the_last_line_once(chunks: list[str], expected: str) -> None:
    out = io.StringIO()
    r = PlainRenderer(out)
    for chunk in chunks:
        r.content(chunk)
    r.finish()
    r.finish()
    assert out.getvalue() == expected


def test_plain_reasoning_never_reaches_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    hidden = PlainRenderer(out, err=err)
    hidden.reasoning("secret thoughts")
    hidden.content("answer")
    hidden.finish()
    assert (out.getvalue(), err.getvalue()) == ("answer\n", "")

    out, err = io.StringIO(), io.StringIO()
    shown = PlainRenderer(out, show_reasoning=True, err=err)
    shown.reasoning("step one, ")
    shown.reasoning("step two")
    shown.content("answer")
    shown.reasoning("late thought")
    shown.finish()
    assert out.getvalue() == "answer\n"
    # The thought line is ended before the answer starts, so stderr stays line-based.
    assert err.getvalue() == "step one, step two\nlate thought\n"


def test_plain_abort_keeps_the_partial_answer_and_never_raises() -> None:
    out = io.StringIO()
    r = PlainRenderer(out)
    r.content("partial ans")
    r.abort()
    r.abort()
    r.finish()
    assert out.getvalue() == "partial ans\n"

    closed = io.StringIO()
    r = PlainRenderer(closed)
    r.content("x")
    closed.close()  # e.g. the reader of the pipe went away
    r.abort()  # must not raise


# --------------------------------------------------------------------------------------------
# MarkdownRenderer: stdout is a terminal


def stream(
    renderer: MarkdownRenderer | NaiveRenderer, chunks: list[str], *, end: bool = True
) -> None:
    for chunk in chunks:
        renderer.content(chunk)
    if end:
        renderer.finish()


@pytest.mark.parametrize(("seed", "newline"), [(0, "\n"), (1, "\n"), (2, "\r\n")])
def test_final_screen_is_the_whole_answer_rendered_once(seed: int, newline: str) -> None:
    # Headings, a list interrupting a paragraph, a nested list, a loose "1. 1. 1." list, a
    # fence with a blank line inside, text glued to a closing fence, quote, table, rule, and a
    # code block taller than the 20-line screen, in random 1-12 char pieces.
    console = term_console(height=20)
    r = MarkdownRenderer(console, refresh_per_second=1e9)  # redraw on every piece
    chunks = pieces(DOC.replace("\n", newline), seed)
    stream(r, chunks)
    assert r.refresh_count >= len(chunks) > 150  # the live region was redrawn all along
    screen = Screen(height=20).feed(raw_output(console)).lines()
    assert screen == one_shot(DOC)
    text = "\n".join(screen)
    assert " 1 first numbered\n 2 second numbered" in text  # numbering continues
    assert "value_29 = 29 * 2" in text and "```" not in text


def test_a_completed_block_is_printed_exactly_once() -> None:
    def run(make: Callable[[Console], MarkdownRenderer | NaiveRenderer]) -> int:
        console = term_console()
        r = make(console)
        r.content("# Title\n\nA unique opening paragraph.\n\n")
        stream(r, pieces("More words that keep coming in. " * 40, seed=5, low=3, high=8))
        assert len(pieces("More words that keep coming in. " * 40, seed=5, low=3, high=8)) > 200
        return plain(raw_output(console)).count("A unique opening paragraph.")

    assert run(lambda c: MarkdownRenderer(c, refresh_per_second=1e9)) == 1
    # The assertion has teeth: redrawing the whole answer repeats the paragraph per frame.
    assert run(NaiveRenderer) > 200


def test_work_per_refresh_is_bounded_by_the_block_not_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[int] = []

    class CountingMarkdown(Markdown):
        def __init__(self, markup: str, **kwargs: object) -> None:
            parsed.append(len(markup))
            super().__init__(markup, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "Markdown", CountingMarkdown)
    section = "## Part\n\nSome text that is a paragraph of moderate size.\n\n- a\n- b\n\n"
    answer = section * 150
    r = MarkdownRenderer(term_console(), refresh_per_second=1e9)
    stream(r, pieces(answer, seed=6, low=3, high=12))
    assert len(answer) > 10_000 and len(parsed) > 1_000
    assert max(parsed) <= len(section)  # never re-parses more than one section's worth


def test_code_blocks_are_syntax_highlighted() -> None:
    console = term_console()
    stream(
        MarkdownRenderer(console),
        ["Plain words here.\n\n```python\ndef greet(name):\n", "    return name\n```\n"],
    )
    lines = raw_output(console).split("\n")
    code = [line for line in lines if "def" in plain(line) and "greet" in plain(line)]
    prose = [line for line in lines if "Plain words here." in plain(line)]
    assert code and prose
    assert all(has_colour(line) for line in code)
    assert not any(has_colour(line) for line in prose)  # colour comes from highlighting


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_color_gives_no_colour_codes(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(no_color: bool) -> str:
        out = io.StringIO()
        r = make_renderer(tty=True, no_color=no_color, show_reasoning=None, out=out, err=out)
        r.reasoning("Thinking it over.\n")
        for chunk in pieces(DOC, seed=8):
            r.content(chunk)
        r.finish()
        return out.getvalue()

    assert has_colour(run(no_color=False))  # control: colour is on by default
    if how == "env":
        monkeypatch.setenv("NO_COLOR", "1")
    raw = run(no_color=how == "flag")
    assert not has_colour(raw)
    assert 2 in set(sgr_codes(raw))  # reasoning is still told apart: dim is not a colour
    assert "def greet(name: str) -> str:" in plain(raw)


TALL_CODE = "```python\n" + "\n".join(f"value_{i} = {i} * 2  # line {i}" for i in range(40))


def test_a_block_taller_than_the_screen_shows_its_latest_lines_while_streaming() -> None:
    console = term_console(height=20)
    r = MarkdownRenderer(console, refresh_per_second=1e9)
    stream(r, pieces("Intro line.\n\n" + TALL_CODE, seed=12), end=False)
    screen = Screen(height=20).feed(raw_output(console)).visible()
    # The line being written is on screen (not the block's top and a "..." cut-off).
    assert any("value_39 = 39" in line for line in screen)
    assert not any(line.strip() == "..." for line in screen)
    r.finish()
    assert Screen(height=20).feed(raw_output(console)).lines() == one_shot(
        "Intro line.\n\n" + TALL_CODE
    )


def test_abort_mid_fence_keeps_text_not_yet_drawn() -> None:
    console = term_console()
    # Slow refresh: after the first draw nothing more is drawn until abort.
    r = MarkdownRenderer(console, refresh_per_second=0.001)
    stream(r, pieces("Intro line.\n\n```python\nprint('partial')\nx = 1", seed=9), end=False)
    before = raw_output(console)
    assert "x = 1" not in plain(before)
    r.abort()
    after = raw_output(console)
    screen = Screen(20).feed(after).lines()
    assert "Intro line." in screen
    assert any("print('partial')" in line for line in screen)
    assert any("x = 1" in line for line in screen)
    assert after.endswith("\x1b[?25h")  # cursor given back
    r.abort()
    r.finish()
    r.content("ignored")
    assert raw_output(console) == after


def test_abort_leaves_the_whole_partial_answer_even_when_taller_than_the_screen() -> None:
    console = term_console(height=20)
    r = MarkdownRenderer(console, refresh_per_second=1e9)
    partial = "Intro line.\n\n" + TALL_CODE
    stream(r, pieces(partial, seed=13), end=False)
    r.abort()
    # Everything received, once, top line of the code block included, no stale frames.
    assert Screen(height=20).feed(raw_output(console)).lines() == one_shot(partial)


def test_unclosed_fence_at_finish_still_renders_as_code() -> None:
    console = term_console()
    stream(MarkdownRenderer(console), ["```bash\n", "echo hi"])
    screen = Screen(20).feed(raw_output(console)).lines()
    assert screen == one_shot("```bash\necho hi")
    assert not any("```" in line for line in screen)


def test_empty_stream_prints_nothing() -> None:
    console = term_console()
    r = MarkdownRenderer(console)
    r.finish()
    r.abort()
    assert raw_output(console) == ""


def test_reasoning_is_dim_comes_first_and_is_committed_when_the_answer_starts() -> None:
    console = term_console()
    r = MarkdownRenderer(console, refresh_per_second=1e9)
    for chunk in pieces("\nLet me think.\n\nThe user wants **X**.\n\n", seed=10):
        r.reasoning(chunk)
    r.content("The answer is ")
    r.reasoning("a late thought")  # cannot go before the answer any more: not shown
    r.content("**42**.")
    r.finish()
    raw = raw_output(console)
    screen = Screen(20).feed(raw).lines()
    # Leading and trailing blank lines of the thoughts go, the one between them stays.
    assert screen == ["Let me think.", "", "The user wants **X**.", "", "The answer is 42."]
    line = next(line for line in raw.split("\n") if "The user wants" in plain(line))
    assert {2, 3} <= set(sgr_codes(line))  # dim italic
    assert "late thought" not in plain(raw)

    hidden = term_console()
    r = MarkdownRenderer(hidden, show_reasoning=False)
    r.reasoning("secret thoughts\n")
    r.content("Answer.")
    r.finish()
    assert "secret" not in plain(raw_output(hidden))
    assert Screen(20).feed(raw_output(hidden)).lines() == ["Answer."]


def test_refreshes_are_throttled_to_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(render, "_monotonic", lambda: now[0])
    console = term_console()
    r = MarkdownRenderer(console, refresh_per_second=20)
    chunks = pieces("word " * 200, seed=11, low=3, high=8)[:100]
    for chunk in chunks:
        r.content(chunk)
        now[0] += 0.01  # 100 pieces a second for one second
    assert 19 <= r.refresh_count <= 21
    r.finish()
    assert Screen(20).feed(raw_output(console)).lines() == one_shot("".join(chunks))


def test_control_sequences_in_the_answer_do_not_reach_the_terminal() -> None:
    console = term_console()
    stream(MarkdownRenderer(console), ["Hi \x1b]0;pwned\x07 there \x1b[31mred\x1b[0m\x08.\n"])
    raw = raw_output(console)
    assert "\x1b]0;" not in raw and "\x07" not in raw and "\x1b[31m" not in raw
    assert "\x08" not in raw


def test_make_renderer_picks_the_renderer_for_the_output() -> None:
    out, err = io.StringIO(), io.StringIO()
    piped = make_renderer(tty=False, no_color=False, show_reasoning=None, out=out, err=err)
    assert isinstance(piped, PlainRenderer)
    piped.reasoning("hmm")
    piped.content("# Hi")
    piped.finish()
    assert (out.getvalue(), err.getvalue()) == ("# Hi\n", "")  # reasoning off by default

    out, err = io.StringIO(), io.StringIO()
    tty = make_renderer(tty=True, no_color=False, show_reasoning=None, out=out, err=err)
    assert isinstance(tty, MarkdownRenderer)
    tty.reasoning("hmm\n")
    tty.content("# Hi")
    tty.finish()
    assert err.getvalue() == ""
    assert "hmm" in plain(out.getvalue()) and "# Hi" not in plain(out.getvalue())
