"""Human output: the only module that imports rich.

It renders the same report document that ``--json`` prints, so the screen and the export can
never disagree. The layout leads with what a person fixing a failure at 2 a.m. needs: one line
per check, then the top cause with its evidence and the commands that fix it, then the rest.
Colour only on a terminal without ``NO_COLOR``; ``-v`` adds every probe's facts (as key/value
tables: raw JSON belongs to ``--json``), the info notes, and ends with the run's timeline: when
each probe that ran started and ended, and what it waited for (``timeline``).

Width: prose wraps at word boundaries to the console's width (the terminal's; ``COLUMNS`` when
output is not a terminal; no wrapping when it is not a terminal and ``COLUMNS`` is unset),
with a hanging indent under the column it started in. A word longer than a line (a URL, a
path) is never split: it gets a line of its own. A command is never wrapped either: it must
paste whole, so one that does not fit runs long and the terminal soft-wraps it.

Every string of the document passes ``sanitize.clean`` (no escape sequence or control byte
reaches the terminal); output is built from rich ``Text`` objects, never markup, so a server's
``[bold]`` shows literally.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ollama_doctor.remedies import KIND_LABEL
from ollama_doctor.report import check_summary
from ollama_doctor.sanitize import clean, clean_tree

GLYPH = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"),
         "skip": ("-", "dim"), "error": ("‼", "magenta")}
SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "failing": "bold red"}
# Not a terminal and no COLUMNS: lines as long as they are (for grep, logs and pagers).
UNWRAPPED = 100_000
# The evidence shown under the top cause without -v: its first lines; the rest is in -v/--json.
EVIDENCE_LINES = 8
VALUE_CHARS = 200  # one evidence or fact value, without -v (-v: VALUE_CHARS_VERBOSE)
VALUE_CHARS_VERBOSE = 600
LIST_ITEMS = 10  # items of a list of objects shown in a facts table


def console(file: IO[str] | None = None, *, stderr: bool = False,
            width: int | None = None) -> Console:
    """The console to print on: the terminal's width on a terminal, else ``width``, else
    ``COLUMNS``, else no wrapping. Colour only on a terminal without ``NO_COLOR``."""
    stream = file or (sys.stderr if stderr else sys.stdout)
    tty = stream.isatty()
    no_color = "NO_COLOR" in os.environ or not tty
    if width is None and not tty:
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else UNWRAPPED
    return Console(file=stream, no_color=no_color, highlight=False, soft_wrap=False,
                   width=width, emoji=False, markup=True,
                   force_terminal=None if tty else False)


def live(stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> bool:
    """Whether a live status line may be shown: stdout and stderr both terminals (output piped
    to a file or another program gets none, nor does its stderr), and not a dumb terminal
    without colour."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if not (out.isatty() and err.isatty()):
        return False
    return not ("NO_COLOR" in os.environ and os.environ.get("TERM") == "dumb")


@contextmanager
def progress(label: str) -> Iterator[Any]:
    """A spinner on stderr, only when ``live``; yields a ``update(text)`` callable, which shows
    ``label`` and the text (the runner's status line: what runs now, for how long, its
    limit)."""
    if not live():
        yield lambda text: None
        return
    err = console(stderr=True)
    with err.status(label) as status:
        yield lambda text: status.update(f"{label} {escape(clean(text))}")


# --------------------------------------------------------------------------------------------
# Wrapping: words never split, commands never wrapped

_WORD = re.compile(r"\S+")


def _breaks(plain: str, first: int, rest: int, glue: int | None = None) -> list[int]:
    """Offsets where ``plain`` starts a new line: greedy, at word boundaries, ``first`` cells
    on the first line and ``rest`` on the others; a word wider than a line stands alone.
    From offset ``glue`` on, the text is one unit (``(exit 1)`` stays whole)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(plain)]
    if glue is not None:
        words = [w for w in words if w[1] <= glue] + [(glue, len(plain))]
    offsets: list[int] = []
    start, avail = 0, first
    for begin, end in words:
        if begin > start and cell_len(plain[start:end]) > avail:
            offsets.append(begin)
            start, avail = begin, rest
    return offsets


def _say(out: Console, text: Text, *, indent: int = 0, hang: int | None = None,
         glue: str = "") -> None:
    """Print ``text`` + ``glue`` wrapped to the console's width: the first line at ``indent``,
    the others at ``hang`` (a hanging indent; ``indent`` when not given); ``glue`` (a
    parenthesis) is never split."""
    hang = indent if hang is None else hang
    width = out.width
    first, rest = max(width - indent, 16), max(width - hang, 16)
    at = len(text.plain) + (len(glue) - len(glue.lstrip()))
    text = text + Text(glue, style="dim") if glue else text
    lines = (text.divide(_breaks(text.plain, first, rest, at if glue else None))
             if width < UNWRAPPED else [text])
    for number, line in enumerate(lines):
        line.rstrip()
        out.print(Text(" " * (indent if number == 0 else hang)) + line, soft_wrap=True)


def _command_line(out: Console, step: dict[str, Any], command: str, indent: int) -> None:
    """One command, whole: it pastes as printed. Too long for the line, it runs long (the
    terminal soft-wraps it; a copy still holds one line)."""
    # A prompt only for what is typed into a shell; Python, JSON, nginx or unit-file lines are
    # shown as the text they are, labelled by their kind (remedies.KIND_LABEL).
    kind = step.get("kind") or "shell"
    if kind == "shell":
        prompt = Text.assemble(("$", "bold"), " ")
    else:
        prompt = Text(f"{KIND_LABEL.get(kind, kind)}: ", style="dim")
    out.print(Text(" " * indent) + prompt + Text(command), soft_wrap=True)


# --------------------------------------------------------------------------------------------
# The report


def logs_report(doc: dict[str, Any], out: Console, *, verbose: bool = False) -> None:
    """``ollama-doctor logs``: the log read, the lines that explain failures (numbered as in
    the file) and then the same diagnosis and verdict as ``check``, from the document that
    ``logs --json`` prints (``logs.logs_document`` + ``diagnosis``/``summary``)."""
    doc = clean_tree(doc)
    log = doc["log"]
    note = "" if log["complete"] else ", older lines not read"
    if log.get("line_numbers") != "source":
        note += "; line numbers count from the first line read"
    _say(out, Text.assemble(("Log:", "bold"), f" {log['source']} ({log['lines_read']} lines "
                            f"read, {log['bytes_read']} bytes{note})"), hang=4)
    if log.get("stopped"):
        _say(out, Text(f"note: {log['stopped']}", style="dim"), indent=2, hang=4)
    for start in doc.get("facts", {}).get("listening", [])[-1:]:
        _say(out, Text(f"Server: listening on {start['address']} (version {start['version']}),"
                       f" line {start['line']}"), hang=4)
    listed = doc.get("lines", [])
    if listed:
        out.print()
        out.print(Text("Lines that explain failures", style="bold"))
        width = max(len(str(item["line"])) for item in listed)
        for item in listed:
            labels = ", ".join(item.get("labels") or item["signatures"])
            _say(out, Text.assemble((f"{item['line']:>{width}}", "dim"), "  ",
                                    (labels, "cyan")), indent=2, hang=width + 4)
            _say(out, Text(item["text"]), indent=width + 4, hang=width + 4)
        if doc.get("lines_not_listed"):
            _say(out, Text(f"… and {doc['lines_not_listed']} more", style="dim"), indent=2)
    shown = _shown(doc, verbose)
    _diagnoses(shown, out, verbose=verbose)
    _verdict_line(doc["summary"], shown, out,
                  nothing="No known failure signature in these lines.")


def report(doc: dict[str, Any], out: Console, *, verbose: bool = False) -> None:
    doc = clean_tree(doc)
    target = doc["target"]
    model = f", model {target['model']}" if target.get("model") else ""
    _say(out, Text.assemble((f"ollama-doctor {doc['tool']['version']}", "bold"),
                            f" — target {target['url']} (from {target['source']}{model})"),
         hang=2)
    out.print()
    _checks(doc["checks"], out, verbose=verbose)
    shown = _shown(doc, verbose)
    if "error_text" in doc:
        _pasted(doc["error_text"], shown, out)
    _diagnoses(shown, out, verbose=verbose)
    _verdict_line(doc["summary"], shown, out)
    if verbose:
        timeline(doc["checks"], out)


def _shown(doc: dict[str, Any], verbose: bool) -> list[dict[str, Any]]:
    """The diagnosis entries a screen shows: info notes only with ``-v``."""
    return [d for d in doc["diagnosis"] if verbose or d["severity"] != "info"]


def _diagnoses(shown: list[dict[str, Any]], out: Console, *, verbose: bool) -> None:
    """The Diagnosis section, ``check``'s and ``logs``': the first entry in full."""
    if not shown:
        return
    out.print()
    out.print(Text("Diagnosis", style="bold"))
    for position, diag in enumerate(shown):
        _diagnosis(diag, out, full=position == 0 or verbose, verbose=verbose)


def _verdict_line(summary: dict[str, Any], shown: list[dict[str, Any]], out: Console, *,
                  nothing: str | None = None) -> None:
    """``FAILING — cause: title. (exit 1)``; ``nothing`` replaces the sentence when no entry
    is shown."""
    out.print()
    verdict = nothing if nothing is not None and not shown else _verdict(summary, shown)
    _say(out, Text.assemble((summary["status"].upper(), STATUS_STYLE[summary["status"]]),
                            " — ", verdict),
         glue=f" (exit {summary['exit_code']})", hang=2)


def _verdict(summary: dict[str, Any], shown: list[dict[str, Any]]) -> str:
    """The verdict's sentence; when it would repeat the top cause's explanation printed just
    above, the cause and its title instead."""
    top = shown[0] if shown else None
    if top is not None and summary["headline"] == top["explanation"]:
        return f"{top['cause']}: {top['title']}."
    return str(summary["headline"])


def _checks(checks: list[dict[str, Any]], out: Console, *, verbose: bool) -> None:
    width = max((len(c["id"]) for c in checks), default=8)
    took = {c["id"]: "" if c["status"] == "skip" else f"{c['duration_ms']:.0f} ms"
            for c in checks}
    took_width = max((len(t) for t in took.values()), default=4)
    for check in checks:
        glyph, style = GLYPH[check["status"]]
        prefix = Text.assemble("  ", (glyph, style),
                               f" {check['id']:<{width}}  {took[check['id']]:>{took_width}}  ")
        hang = len(prefix.plain)
        if out.width - hang < 24:  # too narrow for a column: continue under the id instead
            hang = 4
        line = prefix + Text(check_summary(check, full=verbose))
        if check.get("prerequisite"):  # ran only because the probe asked for needs it
            line.append(" (prerequisite)")
            line.stylize("dim")
        _say(out, line, hang=hang)
        if verbose:
            _facts(check, out)


def _pasted(pasted: dict[str, Any], shown: list[dict[str, Any]], out: Console) -> None:
    """The pasted error's verdict; when a diagnosis entry below says it all, a pointer to it
    instead of the same sentence twice."""
    explained = pasted["explained_by"]
    out.print()
    client = f" from {pasted['client']}" if pasted.get("client") else ""
    listed = next((d for d in shown if d["cause"] == explained.get("cause")
                   and d["rank"] == explained.get("rank")), None)
    if listed is not None and explained["verdict"] == "confirmed":
        message = (f"explained by diagnosis {listed['rank']}, {listed['cause']} "
                   "(the live run found it too).")
    elif listed is not None and explained["message"] == listed["explanation"]:
        message = (f"not reproduced by the live run; diagnosis {listed['rank']}, "
                   f"{listed['cause']}, says what it points to.")
    else:
        message = explained["message"]
    _say(out, Text.assemble((f"Your error{client}:", "bold"), " ", message), hang=4)
    said = listed["explanation"] if listed is not None else ""
    for item in [h for h in explained.get("hints", []) if h["hint"] not in said][:3]:
        _say(out, Text.assemble((f"to check {item['cause']}:", "dim"), " ", item["hint"]),
             indent=4, hang=6)


def _diagnosis(diag: dict[str, Any], out: Console, *, full: bool, verbose: bool) -> None:
    style = SEVERITY_STYLE[diag["severity"]]
    code = f" · HTTP {diag['code']}" if diag["code"] is not None else ""
    _say(out, Text.assemble(" ", (f"{diag['rank']}. {diag['cause']}", style),
                            f" — {diag['title']}"),
         glue=f" ({diag['severity']} · {diag['confidence']} confidence{code})", hang=4)
    _say(out, Text(diag["explanation"]), indent=4)
    if not full:
        for step in diag["fix"][:1]:
            for command in step["commands"][:2]:
                _command_line(out, step, command, 6)
        return
    _say(out, Text.assemble(("Why here:", "dim"), " ", diag["why_ranked"]), indent=4, hang=6)
    _say(out, Text.assemble(("Retry:", "dim"), " ", diag["retry"]["advice"]), indent=4, hang=6)
    rows = evidence_rows(diag["evidence"], verbose=verbose)
    if rows:
        out.print(Text("    ") + Text("Evidence:", style="dim"))
        limit = len(rows) if verbose else EVIDENCE_LINES
        for key, value in rows[:limit]:
            _say(out, Text.assemble((f"{key}:", "dim"), " ", value), indent=6, hang=8)
        if len(rows) > limit:
            _say(out, Text(f"… {len(rows) - limit} more (-v, or --json for all of it)",
                           style="dim"), indent=6)
    if diag["fix"]:
        out.print(Text("    ") + Text("Fix:", style="dim"))
        for step in diag["fix"]:
            _say(out, Text(step["text"]), indent=6, hang=8)
            for command in step["commands"]:
                _command_line(out, step, command, 8)


# --------------------------------------------------------------------------------------------
# Evidence and facts as key: value rows


def evidence_rows(evidence: dict[str, Any], *, verbose: bool = False) -> list[tuple[str, str]]:
    """The evidence as short ``key: value`` rows: nested objects as dotted keys, lists of
    values joined, an HTTP exchange as one line; the causes it explains last."""
    limit = VALUE_CHARS_VERBOSE if verbose else VALUE_CHARS
    rows = _rows({k: v for k, v in evidence.items() if k != "explains"}, limit)
    for item in evidence.get("explains") or []:
        if isinstance(item, dict):
            rows.append(("explains", _cut(f"{item.get('cause')} ({item.get('probe')}): "
                                          f"{item.get('why')}", limit)))
    return rows


def _rows(value: dict[str, Any], limit: int, prefix: str = "",
          depth: int = 0) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item and not _exchange(item) and depth < 2:
            rows.extend(_rows(item, limit, f"{name}.", depth + 1))
        elif isinstance(item, list) and item and all(isinstance(i, dict) for i in item):
            shown = item[:LIST_ITEMS]
            for number, entry in enumerate(shown, start=1):
                rows.append((f"{name}[{number}]" if len(item) > 1 else name,
                             _cut(_value(entry), limit)))
            if len(item) > len(shown):
                rows.append((name, f"… {len(item) - len(shown)} more (--json)"))
        else:
            rows.append((name, _cut(_value(item), limit)))
    return rows


def _exchange(item: dict[str, Any]) -> bool:
    """An HTTP call as probes record it: ``request`` ("POST URL") and ``status``."""
    return isinstance(item.get("request"), str) and "status" in item


def _value(item: Any) -> str:
    if isinstance(item, str):
        return item if item else '""'
    if item is None:
        return "none"
    if isinstance(item, bool):
        return "yes" if item else "no"
    if isinstance(item, list):
        if not item:
            return "(none)"
        if all(not isinstance(i, (dict, list)) for i in item):
            return ", ".join(_value(i) for i in item)
    if isinstance(item, dict):
        if _exchange(item):
            answer = (f"HTTP {item['status']}" if item["status"] is not None
                      else str(item.get("error") or "no answer"))
            body = item.get("body")
            return f"{item['request']} → {answer}" + (f": {body}" if body else "")
        if not item:
            return "(none)"
        return ", ".join(f"{k}=[{_value(v)}]" if isinstance(v, list) and v else f"{k}={_value(v)}"
                         for k, v in item.items())
    if isinstance(item, (int, float)):
        return str(item)
    return json.dumps(item, ensure_ascii=False)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _facts(check: dict[str, Any], out: Console) -> None:
    """A probe's facts as a two-column table under its check line (``-v``)."""
    rows = _rows(check["facts"], VALUE_CHARS_VERBOSE) if check["facts"] else []
    key_width = min(max((len(k) for k, _ in rows), default=0), 28)
    indent = 6
    for key, value in rows:
        cell = f"{key:<{key_width}}  "
        hang = indent + len(cell) if out.width - indent - len(cell) >= 24 else indent + 2
        _say(out, Text.assemble((cell, "dim"), value), indent=indent, hang=hang)
    if check.get("error"):
        _say(out, Text(f"{check['error']['type']}: {check['error']['message']}",
                       style="magenta"), indent=indent, hang=indent + 2)


# --------------------------------------------------------------------------------------------
# The run's timeline (-v)


def timeline_rows(checks: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(probe, start, end, waited for) for every check that ran, by start time: ms from the
    run's start; what it waited for is the probe it needs or runs after that finished last
    (``registry.py``), a free worker slot, and its prepare step's span."""
    from ollama_doctor.registry import BY_ID

    ran = [c for c in checks if c.get("started_ms") is not None
           and c.get("finished_ms") is not None]
    ended = {c["id"]: c["finished_ms"] for c in ran}
    rows: list[tuple[str, str, str, str]] = []
    for check in sorted(ran, key=lambda c: c["started_ms"]):
        spec = BY_ID.get(check["id"])
        deps = [d for d in (*spec.needs, *spec.after) if d in ended] if spec else []
        waits: list[str] = []
        if deps:
            waits.append(max(deps, key=lambda d: ended[d]))
        if (check.get("waited_ms") or 0) >= 1:
            waits.append(f"a free slot {check['waited_ms']:.0f} ms")
        prepare = check.get("prepare")
        if prepare:
            waits.append(f"prepared {prepare['started_ms']:.0f}–{prepare['finished_ms']:.0f}")
        rows.append((check["id"], f"{check['started_ms']:.0f}", f"{check['finished_ms']:.0f}",
                     " · ".join(waits)))
    return rows


def timeline(checks: list[dict[str, Any]], out: Console) -> None:
    """The ``-v`` output's last table: when each probe ran, and what it waited for."""
    rows = timeline_rows(checks)
    if not rows:
        return
    out.print()
    out.print(Text("Timeline", style="bold") + Text(" (ms from the start of the run)",
                                                    style="dim"))
    width = max(len("probe"), *(len(r[0]) for r in rows))
    times = max(len("start"), *(max(len(r[1]), len(r[2])) for r in rows))
    head = f"  {'probe':<{width}}  {'start':>{times}}  {'end':>{times}}  "
    out.print(Text(head + "waited for", style="dim"), soft_wrap=True)
    hang = len(head) if out.width - len(head) >= 24 else 4
    for probe, start, end, waits in rows:
        _say(out, Text(f"  {probe:<{width}}  {start:>{times}}  {end:>{times}}  " + waits),
             hang=hang)


def plain(text: str, out: Console) -> None:
    out.print(escape(clean(text, keep_newlines=True)), soft_wrap=True)
