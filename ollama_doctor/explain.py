"""Offline lookups in the error-code table and the cause catalogue (``ollama-doctor explain``).

Everything printed here comes from ``causes.CODES`` and ``causes.CATALOGUE``, the same tables
the diagnosis uses and the README's tables are generated from (``readme_tables``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ollama_doctor.causes import CATALOGUE, CAUSES, CODE_TABLE, retry_for

if TYPE_CHECKING:
    from ollama_doctor.errortext import ErrorAnalysis


def lookup(topic: str) -> dict[str, Any]:
    """A status code or a cause id → its entry. ``KeyError`` with a helpful message otherwise."""
    key = topic.strip().lower()
    if key.isdigit():
        code = int(key)
        if code not in CODE_TABLE:
            known = ", ".join(str(c) for c in CODE_TABLE)
            raise KeyError(f"no entry for HTTP {code}; documented codes: {known}")
        row = CODE_TABLE[code]
        return {
            "kind": "code", "code": row.code, "name": row.name, "meaning": row.meaning,
            "check": row.check, "action": row.action, "retry": row.retry.to_dict(),
            "produced_by": row.source, "produced_by_note": row.source_note,
            "causes": [c.id for c in CATALOGUE if c.code == code],
        }
    if key in CAUSES:
        entry = CAUSES[key]
        from ollama_doctor.registry import REGISTRY

        return {
            "kind": "cause", "cause": entry.id, "title": entry.title, "meaning": entry.meaning,
            "code": entry.code, "layer": entry.layer.name.lower(),
            "fix": [step.to_dict() for step in entry.fix],
            "retry": retry_for(entry.id, entry.code).to_dict(),
            "found_by": [s.id for s in REGISTRY if entry.id in s.causes],
        }
    close = [c for c in CAUSES if key and (key in c or c.startswith(key[:4]))][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"unknown topic {topic!r}: give an HTTP status (e.g. 429) or a cause id "
                   f"(`ollama-doctor explain --list` lists them all){hint}")


def as_text(data: dict[str, Any]) -> str:
    if data["kind"] == "code":
        lines = [
            f"HTTP {data['code']} {data['name']}",
            f"  Meaning:     {data['meaning']}",
            f"  Check:       {data['check']}",
            f"  Action:      {data['action']}",
            f"  Retry:       {data['retry']['advice']}",
            f"  Produced by: {data['produced_by']} — {data['produced_by_note']}",
            f"  Causes:      {', '.join(data['causes']) or '-'}",
        ]
        return "\n".join(lines)
    code = f"HTTP {data['code']}" if data["code"] is not None else "no HTTP status"
    lines = [f"{data['cause']} — {data['title']} ({code})", f"  {data['meaning']}",
             f"  Retry: {data['retry']['advice']}"]
    if data["found_by"]:
        lines.append(f"  Found by: {', '.join(data['found_by'])}")
    for step in data["fix"]:
        lines.append(f"  Fix: {step['text']}")
        lines.extend(f"    $ {command}" for command in step["commands"])
    return "\n".join(lines)


def error_report(analysis: ErrorAnalysis) -> dict[str, Any]:
    """``explain --error``: the analysis plus each candidate's title and meaning, and which
    live checks decide between the candidates (``decided_by``, the probes that can find them;
    ``next_check``, the command that runs them against the server the client called)."""
    from ollama_doctor.errortext import target_from

    data = analysis.to_dict()
    for candidate in data["candidates"]:
        entry = CAUSES[candidate["cause"]]
        candidate["title"] = entry.title
        candidate["code"] = entry.code
    suggestion = ["ollama-doctor", "check"]
    target = target_from(analysis.extracted)
    if target:
        suggestion += ["--host", target]
    if analysis.extracted.get("model"):
        suggestion += ["-m", str(analysis.extracted["model"])]
    if analysis.extracted.get("client_timeout"):
        suggestion += ["--client-timeout", f"{float(analysis.extracted['client_timeout']):g}"]
    data["next"] = " ".join(suggestion)
    data["next_check"] = data["next"]
    # ollama-js and node's fetch print no URL: only the user knows where the client points
    data["target_shown"] = bool(target)
    data["decided_by"] = decided_by(analysis.causes[:3] if analysis.confidence == "high"
                                    else analysis.causes)
    return data


def decided_by(causes: list[str]) -> list[str]:
    """The probes that can find each of ``causes``, in the order ``check`` runs them."""
    from ollama_doctor.registry import REGISTRY

    return [spec.id for spec in REGISTRY
            if not spec.opt_in and any(c in spec.causes for c in causes)]


def error_as_text(data: dict[str, Any]) -> str:
    if not data["recognised"]:
        return _shown("Not recognised: this text matches no known client error.\n"
                      f"Run the probes to find out: {data['next']}")
    lines = ["Candidate causes, most likely first:"]
    for i, c in enumerate(data["candidates"], start=1):
        code = f" (HTTP {c['code']})" if c["code"] is not None else ""
        lines.append(f"  {i}. {c['cause']}{code} — {c['title']}")
        lines.append(f"     matched {c['because']}")
    if data["client"]:
        lines.append(f"Printed by: {data['client']}")
    if data["extracted"]:
        facts = ", ".join(f"{k}={v}" for k, v in data["extracted"].items())
        lines.append(f"Facts in the message: {facts}")
    checks = ", ".join(data.get("decided_by") or []) or "every"
    if data.get("confidence") == "high":
        lines.append(f"The text names the cause; to confirm it live, run: {data['next']} "
                     f"(the {checks} checks)")
    else:
        lines.append(f"The text alone cannot tell these apart; a live check decides: run "
                     f"{data['next']} (the {checks} checks tell them apart)")
    if data.get("target_shown") is False:
        lines.append("The error does not show which server the client called: add --host URL "
                     "(the URL your client uses) unless it is the default "
                     "http://127.0.0.1:11434 or set in OLLAMA_HOST / OPENAI_BASE_URL where "
                     "check runs.")
    return _shown("\n".join(lines))


def _shown(text: str) -> str:
    """Pasted text reaches the terminal only redacted and without escape sequences."""
    from ollama_doctor.redact import redact_text
    from ollama_doctor.sanitize import clean

    return clean(redact_text(text), keep_newlines=True)


def readme_tables() -> str:
    """The README's error-code and cause tables, generated (a test keeps them in sync)."""
    out = ["| Code | Meaning | What to check | Action | Retry | Produced by |",
           "|---|---|---|---|---|---|"]
    for row in CODE_TABLE.values():
        retry = "yes, with backoff" if row.retry.helps else "no"
        out.append(f"| {row.code} | {row.meaning} | {row.check} | {row.action} | {retry} | "
                   f"{row.source_note} |")
    out += ["", "| Cause | Code | Meaning |", "|---|---|---|"]
    for cause in CATALOGUE:
        code = str(cause.code) if cause.code is not None else "—"
        out.append(f"| `{cause.id}` | {code} | {cause.meaning} |")
    return "\n".join(out)


if __name__ == "__main__":  # python -m ollama_doctor.explain > tables.md, for the README
    print(readme_tables())
