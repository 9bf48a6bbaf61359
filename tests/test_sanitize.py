"""What comes from outside is shown, never obeyed: no escape sequence or control byte from a
server or a log reaches the terminal or the Markdown report; rich markup shows literally."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ollama_doctor.sanitize import (
    clean,
    clean_tree,
    md_code,
    md_fence,
    md_text,
    stray_character,
)
from tests.conftest import CliRun
from tests.support.canned import CannedServer, Reply, Request

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
LINK = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
MARKUP = "[bold red]MARKUP[/]"
HTML = "</details><script>alert(1)</script>"
EVIL = TITLE + CLEAR + LINK + MARKUP + HTML + "\x9b31m\u202e!"

# hostile string → what the terminal may see
CLEAN_TABLE: list[tuple[str, str]] = [
    ("plain text", "plain text"),
    ("\x1b]0;title\x07after", "after"),  # OSC title, BEL-terminated
    ("\x1b]0;title\x1b\\after", "after"),  # OSC title, ST-terminated
    ("a\x1b[2Jb", "ab"),  # clear screen
    ("a\x1b[1;31mred\x1b[0m", "ared"),  # SGR colours
    (LINK, "click"),  # OSC 8 hyperlink: the text stays, the target goes
    ("a\x9b2Jb", "ab"),  # 8-bit CSI
    ("a\x9d0;t\x9cb", "ab"),  # 8-bit OSC and ST
    ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel)
    ("a\x1b_apc\x1b\\b", "ab"),  # APC
    ("a\x1b7b\x1b8c", "abc"),  # save/restore cursor
    ("a\x1b(0b", "ab"),  # charset switch (nF)
    ("cut\x1b[", "cut"),  # a sequence cut off at the end
    ("cut\x1b]0;never ends", "cut"),  # an unterminated OSC swallows what follows
    ("nul\x00bell\x07bs\x08del\x7f", "nulbellbsdel"),
    ("line\nbreak\r\nand\rcr", "line break and cr"),
    ("tab\there", "tab here"),
    ("bidi\u202eevil\u2066x\u2069", "bidievilx"),
    (MARKUP, MARKUP),  # rich markup is text here; render.py escapes it
    ("ünïcödé ✓ 漢字", "ünïcödé ✓ 漢字"),
]


@pytest.mark.parametrize(("hostile", "shown"), CLEAN_TABLE)
def test_clean_table(hostile: str, shown: str) -> None:
    assert clean(hostile) == shown
    assert clean(clean(hostile)) == shown  # idempotent


def test_clean_keeps_newlines_when_asked_and_walks_documents() -> None:
    assert clean("a\r\nb\x1b[2J", keep_newlines=True) == "a\nb"
    assert clean_tree({"k\x1b[2J": ["v\x07", 3, None, {"x": "\x1b]0;t\x07y"}]}) == {
        "k": ["v", 3, None, {"x": "y"}]}


MD_TABLE: list[tuple[str, str]] = [
    (HTML, "&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("[x](http://evil.example) *em* _u_ `c` a|b ~s~",
     "\\[x\\](http://evil.example) \\*em\\* \\_u\\_ \\`c\\` a\\|b \\~s\\~"),
    ("# heading", "\\# heading"),
    ("- item", "\\- item"),
    ("1. item", "1\\. item"),
    ("a & b", "a &amp; b"),
    ("esc\x1b[2J", "esc"),
]


@pytest.mark.parametrize(("hostile", "shown"), MD_TABLE)
def test_markdown_text_table(hostile: str, shown: str) -> None:
    assert md_text(hostile) == shown


def test_markdown_text_stays_short_however_much_it_escapes() -> None:
    shown = md_text("&" * 100_000)
    assert shown.startswith("&amp;&amp;") and shown.endswith("…")
    assert len(shown) < 20_000


def test_markdown_code_cannot_be_closed_from_inside() -> None:
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x`") == "`` `x` ``"
    assert md_fence("```\n</details>\x1b[2J", "text") == ["````text", "```", "</details>",
                                                         "````"]


def test_stray_characters_are_named() -> None:
    assert stray_character("key\r") == "a carriage return (\\r) at the end"
    assert stray_character("a\nb") == "a line feed (\\n) at position 2"
    assert stray_character("\x00a") == "a NUL byte (\\x00) at the start"
    assert stray_character("a\tb") == "a tab (\\t) at position 2"
    assert stray_character("a\tb", allow_tab=True) is None
    assert stray_character("ok value ✓") is None


# --------------------------------------------------------------------------------------------
# End to end: a hostile server on 127.0.0.1:0 and a hostile log file


def _hostile(request: Request) -> Reply:
    """Ollama's routes, each answer carrying escape sequences in its body and headers."""
    def send(status: int, body: str, ctype: str = "application/json") -> Reply:
        return Reply(status, body, ctype, (("Server", "evil\x9b2J"),  # latin-1: an 8-bit CSI
                                           ("X-Evil", "\x9d0;pwned\x9c")))

    if request.method == "POST":
        return send(500, json.dumps({"error": "boom" + EVIL}))
    if request.path == "/":
        return send(200, "Ollama is running" + EVIL, "text/plain")
    if request.path == "/api/version":
        return send(200, json.dumps({"version": "0.33.0" + EVIL}))
    if request.path == "/api/tags":
        return send(200, json.dumps({"models": [
            {"name": "llama3.2" + EVIL + ":latest", "model": "x", "size": 1}]}))
    if request.path == "/api/ps":
        return send(200, json.dumps({"models": []}))
    return send(404, json.dumps({"error": "not found" + EVIL}))


@pytest.fixture
def hostile() -> Iterator[str]:
    with CannedServer(_hostile, name="hostile") as server:
        yield server.url


def _controls(text: str) -> list[str]:
    """Control and format characters other than newline: none may reach a terminal."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if c != "\n" and unicodedata.category(c) in ("Cc", "Cf")})


def _outside_fences(markdown: str) -> str:
    out, fence = [], ""
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence and stripped == fence:
            fence = ""
        elif not fence and stripped.startswith("```"):
            fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
        elif not fence:
            out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("model", [None, "llama3.2", "missing"])
def test_a_hostile_server_cannot_write_to_the_terminal_or_the_report(
        cli: Callable[..., CliRun], hostile: str, tmp_path: Path, model: str | None) -> None:
    md = tmp_path / "report.md"
    extra = ["-m", model] if model else []
    run = cli("check", "--host", hostile, "--timeout", "2", "-v", "-o", str(md), *extra)
    assert run.code == 1, run.stderr
    report = md.read_text()
    for text in (run.stdout, run.stderr, report):
        assert _controls(text) == []
        # a probe may quote a body with repr() ('\\x1b]8;;http://…'): inert text, no link
        assert "\x1b" not in text and "]8;;http://evil.example/click" not in text
    # rich markup from a server is shown literally (the lines it wraps over joined again)
    assert MARKUP in " ".join(run.stdout.split())
    prose = _outside_fences(report)
    assert "<script" not in prose and "</details>" not in prose
    assert "Traceback" not in run.stderr


def test_json_keeps_the_server_text(cli: Callable[..., CliRun], hostile: str) -> None:
    run = cli("check", "--host", hostile, "--timeout", "2", "--json")
    doc = run.json()
    reach = next(c for c in doc["checks"] if c["id"] == "reachability")
    assert any(TITLE in text for text in _strings(reach))  # JSON escaping is enough
    assert "\x1b" not in run.stdout  # … and escapes it on the wire


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_a_hostile_log_cannot_write_to_the_terminal(cli: Callable[..., CliRun],
                                                    tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        'time=2026-11-25T10:00:07.920Z level=INFO source=sched.go:470 msg="Load failed" '
        f'model=/x{EVIL} error="llama-server reported out-of-memory during startup: '
        f'cudaMalloc failed: out of memory{TITLE}"\n'
        f'[GIN] 2026/11/25 - 10:05:07 | 500 |   5m0s |   127.0.0.1 | POST "/api/chat{CLEAR}"\n',
        encoding="utf-8")
    run = cli("logs", "--log-file", str(log))
    assert run.code == 1, run.stderr
    assert "Lines that explain failures" in run.stdout
    assert _controls(run.stdout) == [] and "evil.example" not in run.stdout
    assert MARKUP in " ".join(run.stdout.split())  # literally (wrapped lines joined)
    json_run = cli("logs", "--log-file", str(log), "--json")
    assert any("\x1b" in line["text"] for line in json_run.json()["lines"])
