"""Whole rendered screens compared with reviewed golden files, at 60, 80, 100 and 200 columns.

Each input is a report document: the first ones were captured from ``check --json`` against
the emulator (a missing model, a refused port in a container, an auth proxy, a missing
capability, a pasted traceback) with the volatile parts made fixed (ports, durations, dates,
the machine); ``long-words`` is built here from ``ProbeResult`` data, to hold what must never
wrap: a long URL, a command longer than the line, a word longer than the line.

The goldens under ``tests/data/golden/`` are the renderer's output, reviewed as text.
``UPDATE_GOLDEN=1 python -m pytest tests/test_render_golden.py`` rewrites them; review the
diff before committing it. Besides the comparison, every screen is checked for what a golden
cannot say by itself: no line wider than the console but a command (which must paste whole)
or a single unbreakable word; every command and every URL intact on one line; the same
output twice.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from ollama_doctor import diagnosis, render, report
from ollama_doctor.result import Confidence, Finding, FixStep, ProbeResult, Severity, Status
from tests.conftest import CliRun, closed_port

GOLDEN = Path(__file__).parent / "data" / "golden"
WIDTHS = (60, 80, 100, 200)
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CAPTURED = ("missing-model", "refused-in-container", "auth-required", "model-capability",
            "pasted-traceback")
LONG_URL = ("http://ollama-gpu-node-17.inference.internal.example.com:11434/v1/"
            "chat/completions?deployment=eu-west-1")
LONG_COMMAND = ("docker run -d --gpus=all -v ollama:/root/.ollama -p 11434:11434 "
                "-e OLLAMA_ORIGINS='chrome-extension://*' -e OLLAMA_KEEP_ALIVE=24h "
                "--name ollama ollama/ollama")
LONG_WORD = "/var/lib/ollama/models/blobs/sha256-" + "6a0746a1ec1aef3e7ec53868f220ff6e" * 2


def long_words() -> dict[str, Any]:
    """A report built from probe data: the words and commands no wrap may break."""
    fix = [FixStep("Allow the extension's origin on the server, then restart it; the quotes "
                   "keep zsh from expanding the star.", (LONG_COMMAND,)),
           FixStep("Then check the preflight the browser sends.",
                   (f"curl -i -X OPTIONS -H 'Origin: chrome-extension://abc' "
                    f"-H 'Access-Control-Request-Method: POST' '{LONG_URL}'",)),
           FixStep("Or set it in the service's environment.",
                   ("Environment=\"OLLAMA_ORIGINS=chrome-extension://*\"",), kind="systemd")]
    results = [
        ProbeResult("proxy", "proxy", Status.PASS, "no proxy settings found: every client "
                    "connects directly", 12.0),
        ProbeResult("reachability", "reachability", Status.PASS,
                    f"Ollama 0.33.0 answers at {LONG_URL} — direct", 48.0),
        ProbeResult("auth", "auth", Status.FAIL, "OPTIONS /api/chat answered 403 — direct",
                    9.0, findings=[Finding(
                        "origin-forbidden", Severity.ERROR,
                        "Ollama refuses the Origin chrome-extension://abc with 403: it is not "
                        f"in OLLAMA_ORIGINS. The model file {LONG_WORD} is fine; the call to "
                        f"{LONG_URL} never reaches it. A server's [bold]markup[/] shows as is.",
                        {"origin": "chrome-extension://abc", "preflight": {
                            "request": f"OPTIONS {LONG_URL}", "status": 403, "body": ""},
                         "allowed": ["http://localhost", "app://*", "file://*"],
                         "blob": LONG_WORD},
                        fix, Confidence.HIGH, 403)]),
        ProbeResult("warmup", "warmup", Status.SKIP, "skipped: auth did not pass",
                    blocked_by="auth"),
    ]
    ranked = diagnosis.rank(results)
    return {
        "schema_version": report.SCHEMA_VERSION,
        "tool": {"name": "ollama-doctor", "version": "0.1.0"},
        "generated_at": "2026-12-06T09:00:00+00:00",
        "command": "check",
        "target": {"url": LONG_URL, "source": "OLLAMA_HOST", "model": "llama3.2"},
        "environment": {"os": "Linux 6.8.0", "machine": "x86_64", "python": "3.11.9",
                        "in_container": False, "packages": {"httpx": "0.28.1"}},
        "checks": [r.to_dict() for r in results],
        "diagnosis": [d.to_dict() for d in ranked],
        "summary": diagnosis.summary(ranked, results),
    }


def load(name: str) -> dict[str, Any]:
    if name == "long-words":
        return long_words()
    doc: dict[str, Any] = json.loads((GOLDEN / "inputs" / f"{name}.json").read_text("utf-8"))
    return doc


def screen(doc: dict[str, Any], width: int, *, verbose: bool = False) -> str:
    buffer = io.StringIO()
    render.report(doc, render.console(buffer, width=width), verbose=verbose)
    return buffer.getvalue()


def expected(text: str, golden: Path) -> str | None:
    """The golden text to compare with (``None``: the file is missing). ``UPDATE_GOLDEN=1``
    first rewrites it from ``text``, for review in the diff."""
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    return golden.read_text(encoding="utf-8") if golden.exists() else None


MISSING = "missing: run with UPDATE_GOLDEN=1 and review it"
DIFFERS = "differs; if the change is meant, rerun with UPDATE_GOLDEN=1 and review the diff"


def commands(doc: dict[str, Any]) -> Iterator[str]:
    for diag in doc["diagnosis"]:
        for step in diag["fix"]:
            yield from step["commands"]


NAMES = (*CAPTURED, "long-words")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_screen_matches_its_golden(name: str, width: int) -> None:
    golden = GOLDEN / f"{name}.{width}.txt"
    text = screen(load(name), width)
    want = expected(text, golden)
    assert want is not None, f"{golden.name} {MISSING}"
    assert text == want, f"{golden.name} {DIFFERS}"


@pytest.mark.parametrize("name", ["missing-model", "refused-in-container", "long-words"])
def test_verbose_screen_matches_its_golden(name: str) -> None:
    golden = GOLDEN / f"{name}.verbose.100.txt"
    text = screen(load(name), 100, verbose=True)
    want = expected(text, golden)
    assert want is not None, f"{golden.name} {MISSING}"
    assert text == want, f"{golden.name} {DIFFERS}"


@pytest.mark.parametrize("name", ["pasted-traceback", "long-words"])
def test_markdown_matches_its_golden(name: str) -> None:
    golden = GOLDEN / f"{name}.md"
    text = report.to_markdown(load(name))
    want = expected(text, golden)
    assert want is not None, f"{golden.name} {MISSING}"
    assert text == want, f"{golden.name} {DIFFERS}"


def overlong(text: str, width: int, doc: dict[str, Any]) -> list[str]:
    """Lines wider than ``width`` that are neither a command line nor one unbreakable word."""
    shown = list(commands(doc))
    bad = []
    for line in text.splitlines():
        if cell_len(line) <= width:
            continue
        body = line.strip()
        if any(body.endswith(command) for command in shown):
            continue  # a command runs long: it must paste whole
        words = body.split(" ")
        if len(words) <= 2 and max(cell_len(w) for w in words) > width // 2:
            continue  # a word longer than the line (a URL, a path) stands alone
        bad.append(line)
    return bad


@pytest.mark.parametrize("verbose", [False, True])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", NAMES)
def test_no_line_over_the_width_and_nothing_that_pastes_is_broken(
        name: str, width: int, verbose: bool) -> None:
    doc = load(name)
    text = screen(doc, width, verbose=verbose)
    assert overlong(text, width, doc) == []
    lines = text.splitlines()
    top = doc["diagnosis"][0]
    for command in (commands(doc) if verbose else commands({"diagnosis": [top]})):
        assert any(line.endswith(command) for line in lines), command
    urls = re.findall(r"https?://[^\s'\")]+", top["explanation"] + " " + doc["target"]["url"])
    assert urls
    for url in urls:  # every URL the screen shows in full sits on one line, never split
        url = url.rstrip(".,;:")
        assert any(url in line for line in lines), url
    for word in set(top["explanation"].split()):  # prose breaks between words, never inside
        assert any(word in line for line in lines), word
    if name == "long-words":
        assert any(line.endswith(LONG_COMMAND) for line in lines)
        assert any(LONG_WORD in line for line in lines)
        assert "[bold]markup[/]" in text
    assert screen(doc, width, verbose=verbose) == text  # deterministic


def test_a_long_command_gets_its_line_whole_and_prose_wraps_with_a_hanging_indent() -> None:
    lines = screen(long_words(), 60).splitlines()
    command = next(line for line in lines if line.endswith(LONG_COMMAND))
    assert command == f"        $ {LONG_COMMAND}"
    step = lines.index(command) - 2  # the step's sentence, wrapped under itself
    assert lines[step].startswith("        ") and not lines[step].startswith("         ")
    head = next(i for i, line in enumerate(lines) if line.startswith(" 1. origin-forbidden"))
    assert lines[head + 1] == "    (error · high confidence · HTTP 403)"  # kept whole


def test_evidence_reads_as_key_value_lines_not_json() -> None:
    text = screen(load("missing-model"), 100)
    evidence = text.split("    Evidence:\n", 1)[1].split("    Fix:\n", 1)[0].splitlines()
    assert evidence == [
        "      model: mistral:7b",
        "      server: http://127.0.0.1:11434",
        "      installed: llama3.2:latest",
        "      suggestions: (none)",
        "      show: POST http://127.0.0.1:11434/api/show → HTTP 404: {\"error\":\"model "
        "'mistral:7b' not",
        "        found\"}",
    ]
    assert "{\"model\"" not in text


def test_a_failed_check_says_what_failed() -> None:
    """Never the probe's success sentence beside a red ✗: the cause it found instead."""
    lines = screen(load("model-capability"), 200).splitlines()
    models = next(line for line in lines if line.startswith("  ✗ models"))
    assert models.endswith("The model cannot do what the call asks (model-capability)")
    assert "installed as" not in models
    verbose = screen(load("model-capability"), 200, verbose=True).splitlines()
    models = next(line for line in verbose if line.startswith("  ✗ models"))
    assert "(model-capability) — llama3.2: installed as llama3.2:latest" in models


def test_one_sentence_is_said_once() -> None:
    """The pasted-error line and the verdict point at diagnosis 1 instead of repeating it."""
    doc = load("pasted-traceback")
    text = " ".join(screen(doc, 200).split())  # wrapped lines joined again
    explanation = doc["diagnosis"][0]["explanation"]
    assert text.count(explanation) == 1
    assert ("Your error from ollama-python: explained by diagnosis 1, auth-required (the live "
            "run found it too).") in text
    assert text.endswith(
        "FAILING — auth-required: An intermediary demands credentials. (exit 1)")


def test_verbose_shows_facts_as_a_table_not_json() -> None:
    text = screen(load("missing-model"), 100, verbose=True)
    assert "      dial_host          127.0.0.1" in text.splitlines()
    assert not any(line.strip() in ("{", "}", "[", "]") for line in text.splitlines())
    assert len(text.splitlines()) < 300


# --------------------------------------------------------------------------------------------
# The pasted error in a shared report: its head and its tail


def test_a_long_pasted_traceback_keeps_its_head_and_its_last_line() -> None:
    text = (GOLDEN / "inputs" / "pasted-traceback.json").read_text("utf-8")
    excerpt = json.loads(text)["error_text"]["excerpt"]
    lines = excerpt.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "ollama._types.ResponseError: unauthorized (status code: 401)"
    assert re.fullmatch(r"… \d+ lines cut …", next(x for x in lines if "cut" in x))
    markdown = report.to_markdown(json.loads(text))
    assert "ollama._types.ResponseError: unauthorized (status code: 401)" in markdown


@pytest.mark.parametrize(("text", "kept"), [
    ("short\ntext", "short\ntext"),
    ("x" * 3200, "x" * 3200),
])
def test_a_short_pasted_error_is_kept_whole(text: str, kept: str) -> None:
    assert report.excerpt(text) == kept


def test_excerpt_of_many_lines_and_of_one_huge_line() -> None:
    many = "\n".join(f"line {i:04d} " + "." * 40 for i in range(1000)) + "\nValueError: boom"
    kept = report.excerpt(many)
    assert kept.startswith("line 0000 ") and kept.endswith("\nValueError: boom")
    head, _, rest = kept.partition("\n… ")
    count, _, tail = rest.partition(" lines cut …\n")
    cut = int(count)
    assert len(head.splitlines()) + cut + len(tail.splitlines()) == 1001
    assert len(kept) <= report.EXCERPT_HEAD + report.EXCERPT_TAIL + 40
    huge = "A" * 100_000 + "Z"
    kept = report.excerpt(huge)
    assert kept.splitlines()[1] == f"… {100_001 - 3200} characters cut (0 line breaks) …"
    assert kept.endswith("Z") and max(len(line) for line in kept.splitlines()) <= 2400


def test_the_report_md_keeps_the_tail_bounded_and_redacted(cli: Callable[..., CliRun],
                                                           tmp_path: Path) -> None:
    secret = "sk-PLANTED-in-the-middle-0a9f"
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "/srv/app/mod{i}.py", line {i}, in call_{i}' for i in range(400)]
    lines[200] += f" Authorization: Bearer {secret}"
    lines.append("x" * 30_000)  # one line longer than any report line may be
    lines.append("httpx.ConnectError: [Errno 111] Connection refused")
    pasted = tmp_path / "error.txt"
    pasted.write_text("\n".join(lines) + "\n", encoding="utf-8")
    md = tmp_path / "report.md"
    run = cli("check", "--host", f"127.0.0.1:{closed_port()}", "--error-file", str(pasted),
              "-o", str(md), "--timeout", "2")
    assert run.code == 1, run.stderr
    text = md.read_text(encoding="utf-8")
    block = text.split("### The error the client printed\n\n", 1)[1].split("\n### ", 1)[0]
    assert "httpx.ConnectError: [Errno 111] Connection refused" in block
    assert "Traceback (most recent call last):" in block
    assert re.search(r"… \d+ characters cut \(\d+ line breaks\) …", block)
    assert secret not in text
    assert max(len(line) for line in text.splitlines()) < 20_000
    assert len(text) < 60_000


# --------------------------------------------------------------------------------------------
# Through the command line


def test_the_cli_wraps_at_columns(cli: Callable[..., CliRun]) -> None:
    port = closed_port()
    run = cli("check", "--host", f"127.0.0.1:{port}", "-m", "llama3.2", "--timeout", "2",
              env={"COLUMNS": "60"})
    assert run.code == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"ollama-doctor {render_version()} — target http://127.0.0.1:")
    wide = [line for line in lines if cell_len(line) > 60]
    assert all(line.lstrip().startswith("$ ") for line in wide), wide
    assert f"        $ OLLAMA_HOST=127.0.0.1:{port} ollama serve" in lines


def render_version() -> str:
    from ollama_doctor import __version__

    return __version__


def test_a_pasted_error_not_reproduced_points_to_its_entry_and_says_its_hint_once() -> None:
    from ollama_doctor.errortext import analyse

    error = analyse("openai.RateLimitError: Error code: 429 - {'error': {'message': 'rate "
                    "limit exceeded'}}")
    results = [ProbeResult("auth", "auth", Status.PASS, "GET /v1/models answers 200", 5.0)]
    ranked = diagnosis.rank(results, error=error)
    doc = {**long_words(), "checks": [r.to_dict() for r in results],
           "diagnosis": [d.to_dict() for d in ranked],
           "summary": diagnosis.summary(ranked, results),
           "error_text": {**error.to_dict(),
                          "explained_by": diagnosis.explain_error(error, ranked)}}
    text = " ".join(screen(doc, 100).split())
    assert ("Your error from openai-python: not reproduced by the live run; diagnosis 1, "
            "rate-limited, says what it points to.") in text
    assert "to check rate-limited:" not in text  # the entry's explanation already says it
