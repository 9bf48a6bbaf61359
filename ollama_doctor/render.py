"""Human output: the only module that imports rich.

It renders the same report document that ``--json`` prints, so the screen and the export can
never disagree. The layout leads with what a person fixing a failure at 2 a.m. needs: one line
per check, then the top cause with its evidence and the commands that fix it, then the rest.
Colour only on a terminal without ``NO_COLOR``; ``-v`` adds facts, evidence and info notes.

Every string of the document passes ``sanitize.clean`` (no escape sequence or control byte
reaches the terminal) and then rich's ``escape`` (a server's ``[bold]`` shows literally).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from ollama_doctor.sanitize import clean, clean_tree

GLYPH = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"),
         "skip": ("-", "dim"), "error": ("‼", "magenta")}
SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "failing": "bold red"}


def console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    stream = file or (sys.stderr if stderr else sys.stdout)
    no_color = "NO_COLOR" in os.environ or not stream.isatty()
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "100") or 100)
    return Console(file=stream, no_color=no_color, highlight=False, soft_wrap=False,
                   width=width, emoji=False, markup=True,
                   force_terminal=None if stream.isatty() else False)


@contextmanager
def progress(label: str) -> Iterator[Any]:
    """A spinner on stderr, only when stderr is a terminal; yields a ``update(text)`` callable."""
    if not sys.stderr.isatty() or ("NO_COLOR" in os.environ and os.environ.get("TERM") == "dumb"):
        yield lambda text: None
        return
    err = console(stderr=True)
    with err.status(label) as status:
        yield lambda text: status.update(f"{label} {escape(clean(text))}")


def report(doc: dict[str, Any], out: Console, *, verbose: bool = False) -> None:
    doc = clean_tree(doc)
    target = doc["target"]
    model = f", model {target['model']}" if target.get("model") else ""
    out.print(f"[bold]ollama-doctor {escape(doc['tool']['version'])}[/] — target "
              f"{escape(target['url'])} (from {escape(target['source'])}{escape(model)})")
    out.print()
    width = max((len(c["id"]) for c in doc["checks"]), default=8)
    for check in doc["checks"]:
        glyph, style = GLYPH[check["status"]]
        took = "" if check["status"] == "skip" else f"{check['duration_ms']:.0f} ms"
        line = (f"  [{style}]{glyph}[/] {escape(check['id']):<{width}}  {took:>8}  "
                f"{escape(check['summary'])}")
        if check.get("prerequisite"):  # ran only because the probe asked for needs it
            line = f"[dim]{line} (prerequisite)[/]"
        out.print(line, soft_wrap=True)
        if verbose:
            _facts(check, out)
    if "error_text" in doc:
        pasted = doc["error_text"]
        out.print()
        client = f" from {pasted['client']}" if pasted.get("client") else ""
        out.print(f"[bold]Your error{escape(client)}:[/] "
                  f"{escape(pasted['explained_by']['message'])}", soft_wrap=True)
        for item in pasted["explained_by"].get("hints", [])[:3]:
            out.print(f"    [dim]to check {item['cause']}:[/] {escape(item['hint'])}",
                      soft_wrap=True)
    shown = [d for d in doc["diagnosis"] if verbose or d["severity"] != "info"]
    if shown:
        out.print()
        out.print("[bold]Diagnosis[/]")
        for position, diag in enumerate(shown):
            _diagnosis(diag, out, full=position == 0 or verbose)
    out.print()
    summary = doc["summary"]
    style = STATUS_STYLE[summary["status"]]
    out.print(f"[{style}]{summary['status'].upper()}[/] — {escape(summary['headline'])} "
              f"(exit {summary['exit_code']})", soft_wrap=True)


def _diagnosis(diag: dict[str, Any], out: Console, *, full: bool) -> None:
    style = SEVERITY_STYLE[diag["severity"]]
    code = f" · HTTP {diag['code']}" if diag["code"] is not None else ""
    head = f"{diag['rank']}. {diag['cause']}"
    out.print(f" [{style}]{escape(head)}[/] — {escape(diag['title'])} "
              f"[dim]({diag['severity']} · {diag['confidence']} confidence{code})[/]",
              soft_wrap=True)
    out.print(f"    {escape(diag['explanation'])}", soft_wrap=True)
    if not full:
        for step in diag["fix"][:1]:
            for command in step["commands"][:2]:
                out.print(f"      {_command(step, command)}", soft_wrap=True)
        return
    out.print(f"    [dim]Why here:[/] {escape(diag['why_ranked'])}", soft_wrap=True)
    out.print(f"    [dim]Retry:[/] {escape(diag['retry']['advice'])}", soft_wrap=True)
    evidence = _evidence_line(diag["evidence"])
    if evidence:
        out.print(f"    [dim]Evidence:[/] {escape(evidence)}", soft_wrap=True)
    if diag["fix"]:
        out.print("    [dim]Fix:[/]")
        for step in diag["fix"]:
            out.print(f"      {escape(step['text'])}", soft_wrap=True)
            for command in step["commands"]:
                out.print(f"        {_command(step, command)}", soft_wrap=True)


# A fix step's kind decides how its lines look: a prompt only for what is typed into a shell;
# Python, JSON, nginx or unit-file lines are shown as the text they are, labelled once.
KIND_LABEL = {"python": "python", "javascript": "js", "nginx": "nginx", "json": "json",
              "systemd": "unit", "env": "env", "config": "config"}


def _command(step: dict[str, Any], command: str) -> str:
    kind = step.get("kind") or "shell"
    if kind == "shell":
        return f"[bold]$[/] {escape(command)}"
    label = KIND_LABEL.get(kind, kind)
    return f"[dim]{escape(label)}:[/] {escape(command)}"


def _evidence_line(evidence: dict[str, Any]) -> str:
    """A one-line digest of the evidence; the whole of it is in ``-v`` and the JSON."""
    text = json.dumps({k: v for k, v in evidence.items() if k != "explains"},
                      ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= 240 else text[:240] + "…"


def _facts(check: dict[str, Any], out: Console) -> None:
    if check["facts"]:
        text = json.dumps(check["facts"], indent=2, ensure_ascii=False)
        for line in text.splitlines():
            out.print(f"        [dim]{escape(line)}[/]", soft_wrap=True)
    for finding in check["findings"]:
        out.print(f"        [dim]finding {finding['cause']} ({finding['severity']}): "
                  f"{escape(finding['message'])}[/]", soft_wrap=True)
    if check.get("error"):
        out.print(f"        [magenta]{escape(check['error']['type'])}: "
                  f"{escape(check['error']['message'])}[/]", soft_wrap=True)


def plain(text: str, out: Console) -> None:
    out.print(escape(clean(text, keep_newlines=True)), soft_wrap=True)
