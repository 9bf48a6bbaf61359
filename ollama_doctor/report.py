"""The report as data: the versioned JSON document, the Markdown export, atomic file writes.

The JSON document is a public contract (``schema.json`` beside this file, printed by
``ollama-doctor schema``). ``schema_version`` changes only when a key is renamed or removed;
new keys may appear without it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ollama_doctor import __version__
from ollama_doctor.context import Context
from ollama_doctor.redact import Redactor, redact_value, shorten_path_text
from ollama_doctor.result import Diagnosis, ProbeResult
from ollama_doctor.sanitize import clean, clean_tree, md_code, md_fence, md_text

SCHEMA_VERSION = 1
# A fix step's kind → the language tag of its Markdown code block.
MD_LANGUAGE = {"shell": "sh", "python": "python", "javascript": "js", "nginx": "nginx",
               "json": "json", "systemd": "ini", "env": "sh", "config": "text"}
STATUS_GLYPH = {"pass": "✓", "warn": "!", "fail": "✗", "skip": "-", "error": "‼"}


def build(ctx: Context, results: Sequence[ProbeResult], diagnosis: Sequence[Diagnosis],
          summary: dict[str, Any], *, command: str) -> dict[str, Any]:
    """The whole report document, redacted."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ollama-doctor", "version": __version__},
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "target": {**ctx.target.to_dict(), "model": ctx.options.model},
        "environment": environment(),
        "checks": [r.to_dict() for r in results],
        "diagnosis": [d.to_dict() for d in diagnosis],
        "summary": summary,
    }
    if ctx.error is not None:
        from ollama_doctor.diagnosis import explain_error
        from ollama_doctor.redact import redact_text

        # redacted whole, then cut: a secret astride the cut cannot survive as half a secret
        doc["error_text"] = {**ctx.error.to_dict(),
                             "excerpt": excerpt(redact_text(ctx.error.text)),
                             "explained_by": explain_error(ctx.error, diagnosis, target=ctx.target)}
    redacted: dict[str, Any] = scrub(doc, Redactor(ctx.secrets()))
    return redacted


# The pasted error kept in reports: its first lines (what the client was doing) and its last
# lines, the larger share, because a traceback ends with the exception that matters.
EXCERPT_HEAD = 800
EXCERPT_TAIL = 2400


def excerpt(text: str, head: int = EXCERPT_HEAD, tail: int = EXCERPT_TAIL) -> str:
    """``text`` whole when short, else its head and its tail with a line between them saying
    how much was cut (``… 37 lines cut …``). Cuts fall between lines where a line ends near
    the limit, inside a line otherwise (one huge line). At most ``head + tail`` characters of
    the text are kept, so every line of the result is bounded too."""
    text = text.strip()
    if len(text) <= head + tail:
        return text
    head_end = text.rfind("\n", 0, head + 1)
    head_end = head_end if head_end >= head // 2 else head
    tail_start = text.find("\n", len(text) - tail - 1)
    tail_start = tail_start + 1 if 0 <= tail_start <= len(text) - tail // 2 else len(text) - tail
    cut = text[head_end:tail_start]
    whole_lines = text[head_end] == "\n" and text[tail_start - 1] == "\n"
    if whole_lines:
        count = cut.strip("\n").count("\n") + 1
        marker = f"… {count} line{'s' if count != 1 else ''} cut …"
    else:
        marker = f"… {len(cut)} characters cut ({cut.count(chr(10))} line breaks) …"
    return f"{text[:head_end].rstrip()}\n{marker}\n{text[tail_start:].lstrip(chr(10))}"


def scrub(doc: Any, redactor: Redactor) -> Any:
    """Redact evidence structurally, then the known secret strings and secret shapes in every
    string of the document (string by string, so a mask can never break the JSON)."""
    return _scrub_strings(redact_value(doc), redactor)


def _scrub_strings(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):  # a value: redact_value masked its shapes already
        return redactor.scrub_redacted(value)
    if isinstance(value, dict):
        return {(redactor.scrub(k) if isinstance(k, str) else k): _scrub_strings(v, redactor)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_strings(v, redactor) for v in value]
    return value


def environment() -> dict[str, Any]:
    return {
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"),
        "packages": {"httpx": httpx_version()},
    }


def httpx_version() -> str:
    """The installed httpx's version, without importing httpx (a refused port needs none) or
    ``importlib.metadata`` (~40 ms of imports): httpx keeps it in ``httpx/__version__.py``.
    Falls back to the package metadata if that file ever moves."""
    loaded = getattr(sys.modules.get("httpx"), "__version__", None)  # (None: half imported)
    if isinstance(loaded, str):
        return loaded
    import importlib.util

    spec = importlib.util.find_spec("httpx")
    if spec is None:
        return "unknown"
    for where in spec.submodule_search_locations or ():
        try:
            with open(os.path.join(where, "__version__.py"), encoding="utf-8") as source:
                found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", source.read(4096),
                                  re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("httpx")
    except PackageNotFoundError:
        return "unknown"


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def check_summary(check: dict[str, Any], *, full: bool = False) -> str:
    """A check's summary as a person reads it: for a failed or warning check, what it found
    (the titles of its worst findings), never the probe's success sentence beside a ✗ (``Ollama
    answers at …``); ``full`` adds the probe's own summary after a dash."""
    from ollama_doctor.causes import CAUSES

    summary = str(check["summary"])
    if check["status"] not in ("fail", "warn") or not check["findings"]:
        return summary
    worst = max(SEVERITY_RANK.get(f["severity"], 0) for f in check["findings"])
    if worst < SEVERITY_RANK["warning"]:
        return summary
    titles: list[str] = []
    for finding in check["findings"]:
        entry = CAUSES.get(finding["cause"])
        title = f"{entry.title} ({finding['cause']})" if entry else str(finding["cause"])
        if SEVERITY_RANK.get(finding["severity"], 0) == worst and title not in titles:
            titles.append(title)
    said = "; ".join(titles[:2]) + (f" (+{len(titles) - 2} more)" if len(titles) > 2 else "")
    return f"{said} — {summary}" if full else said


def to_markdown(doc: dict[str, Any]) -> str:
    """A paste-ready bug-report section: the top cause in one sentence, its evidence and fix
    first, then every check, then the rest of the diagnosis.

    Meant for sharing: home and virtual-environment paths are shortened (``~/…``,
    ``<venv>/…``); text is escaped for HTML and Markdown (``md_text``), quoted text sits in
    code spans and blocks no backtick inside can close (``md_code``, ``md_fence``), and no
    control character or escape sequence survives (``sanitize.clean``)."""
    doc = clean_tree(shorten_paths(doc), keep_newlines=True)
    t, code_span = md_text, md_code
    lines: list[str] = []
    summary = doc["summary"]
    target = doc["target"]
    lines.append("## ollama-doctor report")
    lines.append("")
    diagnosis = [d for d in doc["diagnosis"] if d["severity"] != "info"]
    top = diagnosis[0] if diagnosis else None
    # the top cause's explanation follows: the verdict names it rather than say it twice
    headline = (f"{code_span(top['cause'])}: {t(top['title'])}"
                if top is not None and summary["headline"] == top["explanation"]
                else t(summary["headline"]))
    lines.append(f"**{t(summary['status'].upper())}** — {headline}")
    lines.append("")
    if top is not None:
        code = f" (HTTP {top['code']})" if top["code"] is not None else ""
        lines.append(f"### Most likely cause: {code_span(top['cause'])}{code} — "
                     f"{t(top['title'])}")
        lines.append("")
        lines.append(t(top["explanation"]))
        lines.append("")
        lines.append(f"*Why first:* {t(top['why_ranked'])}  ")
        lines.append(f"*Retry:* {t(top['retry']['advice'])}")
        lines.append("")
        lines.append("**Evidence**")
        lines.append("")
        lines.extend(md_fence(json.dumps(top["evidence"], indent=2, ensure_ascii=False)[:4000],
                              "json"))
        lines.append("")
        if top["fix"]:
            lines.append("**Fix**")
            lines.append("")
            for step in top["fix"]:
                lines.append(f"- {t(step['text'])}")
                if step["commands"]:
                    lines.append("")
                    lines.extend(f"  {line}" for line in md_fence(
                        "\n".join(clean(c) for c in step["commands"]),
                        MD_LANGUAGE.get(step.get("kind") or "shell", "text")))
            lines.append("")
    if "error_text" in doc:
        pasted = doc["error_text"]
        lines.append("### The error the client printed")
        lines.append("")
        lines.extend(md_fence(pasted["excerpt"], "text"))
        lines.append("")
        explained = pasted["explained_by"]
        lines.append(f"Explained by the most likely cause above, {code_span(top['cause'])}."
                     if top is not None and explained["verdict"] == "confirmed"
                     and explained.get("cause") == top["cause"]
                     else t(explained["message"]))
        lines.append("")
    lines.append("### Checks")
    lines.append("")
    lines.append("| | check | status | time | summary |")
    lines.append("|---|---|---|---|---|")
    for check in doc["checks"]:
        glyph = STATUS_GLYPH[check["status"]]
        lines.append(f"| {glyph} | {t(check['id'])} | {check['status']} | "
                     f"{check['duration_ms']:.0f} ms | {t(check_summary(check, full=True))} |")
    lines.append("")
    rest = doc["diagnosis"][1:] if diagnosis else doc["diagnosis"]
    if rest:
        lines.append("### Other findings")
        lines.append("")
        for d in rest:
            code = f", HTTP {d['code']}" if d["code"] is not None else ""
            lines.append(f"{d['rank']}. {code_span(d['cause'])} ({t(d['severity'])}, "
                         f"{t(d['confidence'])} confidence{code}): {t(d['explanation'])}")
        lines.append("")
    env = doc["environment"]
    lines.append("### Environment")
    lines.append("")
    version = next((c["facts"].get("version") for c in doc["checks"]
                    if c["id"] == "reachability" and c["facts"].get("version")), None)
    lines.append(f"- target: {code_span(target['url'])} (from {t(target['source'])})"
                 + (f", model {code_span(target['model'])}" if target.get("model") else ""))
    lines.append(f"- server: Ollama {t(str(version))}" if version else
                 "- server: version unknown")
    lines.append(f"- ollama-doctor {t(doc['tool']['version'])}, Python {t(env['python'])}, "
                 f"{t(env['os'])} {t(env['machine'])}")
    lines.append(f"- generated {t(doc['generated_at'])}")
    lines.append("")
    return "\n".join(lines)


def shorten_paths(doc: Any) -> Any:
    """Every string of ``doc`` with home and virtual-environment paths shortened."""
    if isinstance(doc, str):
        return shorten_path_text(doc)
    if isinstance(doc, dict):
        return {k: shorten_paths(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [shorten_paths(v) for v in doc]
    return doc


class OutputError(Exception):
    """An ``--output`` path that cannot be written; the message names it."""


def output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".md", ".markdown"):
        return "markdown"
    raise OutputError(f"cannot write {path!r}: unknown extension {suffix or '(none)'!r} "
                      "(use .json or .md)")


def check_writable(path: str) -> None:
    """Fail before probing, not after, when the report could not be saved."""
    output_format(path)
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {path!r}: folder {str(folder)!r} is not writable")
    if Path(path).is_dir():
        raise OutputError(f"cannot write {path!r}: it is a folder")


def write_atomic(path: str, text: str) -> None:
    """Write through a temporary file renamed into place: never half a report."""
    target = Path(path).expanduser()
    import tempfile  # only with -o: it brings random and hashlib

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.resolve().parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def schema() -> dict[str, Any]:
    text = (Path(__file__).parent / "schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
