"""The request checker's I/O, kept apart from the pure checks: reading a body (a file or
stdin, bounded), the plain text ``check --request`` prints, and replaying a body to a server
to compare its answer with the prediction (one bounded exchange)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ollama_doctor.request_check.check import check_request
from ollama_doctor.request_check.findings import RequestReport
from ollama_doctor.request_check.rules import MAX_BODY_BYTES, RequestCheckError


def load_body(source: str, stdin: Any = None) -> str:
    """The body text from a file, or from stdin for ``-``; bounded; one-line errors."""
    import sys

    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        text = stream.read(MAX_BODY_BYTES + 1)
    else:
        try:
            with open(source, encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_BODY_BYTES + 1)
        except OSError as exc:
            raise RequestCheckError(f"{source}: {exc.strerror or exc}") from None
    if len(text) > MAX_BODY_BYTES:
        raise RequestCheckError(f"{source}: larger than {MAX_BODY_BYTES} characters")
    return str(text)


def as_text(report: RequestReport, replay: Replay | None = None) -> str:
    """Plain text for ``check --request`` / ``explain --request`` (no colour, no rich)."""
    guessed = " (guessed from the body)" if report.endpoint_guessed else ""
    lines = [f"POST {report.endpoint}{guessed}, checked against Ollama v{report.ollama_version}"]
    if report.prediction is None:
        lines.append("Ollama accepts this body.")
    else:
        body = json.dumps(report.prediction.body, ensure_ascii=False)
        lines.append(f"Ollama answers {report.prediction.status} {body}")
    for finding in report.findings:
        ollama = finding.evidence.get("ollama")
        mark = "✗" if ollama else "!"
        lines.append(f"  {mark} [{finding.evidence.get('rule')}] {finding.message}")
        if ollama:
            lines.append(f"      Ollama: {ollama['status']} "
                         f"{json.dumps(ollama['body'], ensure_ascii=False)}")
        else:
            lines.append(f"      Ollama: {finding.evidence.get('silent')}")
        for step in finding.fix:
            lines.append(f"      Fix: {step.text}")
            lines += [f"        {command}" for command in step.commands]
    if replay is not None:
        if replay.matches:
            lines.append(f"Replayed: the server answered {replay.status}, as predicted.")
        else:
            lines.append("Replayed: " + "; ".join(replay.differences)
                         + (f" ({replay.error})" if replay.error else ""))
    return "\n".join(lines)


# ---- replay -----------------------------------------------------------------------------------


@dataclass
class Replay:
    """The real answer to a replayed body, next to the prediction."""

    status: int | None
    body: Any
    error: str | None
    matches: bool
    differences: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "error": self.error,
                "matches": self.matches, "differences": self.differences}


def send(body: Any, endpoint: str | None, base_url: str, *, timeout: float = 30.0,
         report: RequestReport | None = None, max_bytes: int = 256 * 1024,
         client: Any = None, headers: Mapping[str, str] | None = None) -> Replay:
    """Replay ``body`` to ``base_url`` + endpoint once and compare with the prediction.

    Streaming is turned off for the replay (``"stream": false``) so one bounded JSON answer
    comes back. For an accepted body only the status class is compared (a 200); for a rejected
    one the status and the whole error body. ``client`` is an ``httpx.Client`` along the
    user's client's path (the CLI passes ``Context.http_client()``: its proxy); it is closed
    here. ``headers`` are sent too (the client's credentials).
    """
    import httpx

    if client is None:
        client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
    sent = {**dict(headers or {}), "Content-Type": "application/json"}

    report = report or check_request(body, endpoint)
    if isinstance(body, (str, bytes)):
        content = body if isinstance(body, bytes) else body.encode("utf-8")
    else:
        payload = body
        if isinstance(body, dict) and report.prediction is None:
            payload = {**body, "stream": False}
        content = json.dumps(payload).encode("utf-8")
    url = base_url.rstrip("/") + report.endpoint
    deadline = time.monotonic() + timeout  # for the whole exchange, not only each read
    try:
        with client, client.stream("POST", url, content=content, headers=sent) as response:
            raw = b""
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) >= max_bytes:
                    raw = raw[:max_bytes]
                    break
                if time.monotonic() > deadline:
                    return Replay(response.status_code, None,
                                  f"the answer took longer than {timeout:g} s", False,
                                  ["no complete answer within the time limit"])
            status = response.status_code
    except httpx.HTTPError as exc:
        return Replay(None, None, f"{type(exc).__name__}: {exc}", False,
                      ["no answer: the request failed"])
    text = raw.decode("utf-8", errors="replace")
    try:
        got: Any = json.loads(text)
    except ValueError:
        got = text
    return _compare(report, status, got)


def _compare(report: RequestReport, status: int, got: Any) -> Replay:
    differences: list[str] = []
    want = report.prediction
    if want is None:
        if status != 200:
            differences.append(f"predicted acceptance (200), got {status}")
    else:
        if status != want.status:
            differences.append(f"predicted status {want.status}, got {status}")
        if got != want.body:
            differences.append(f"predicted body {json.dumps(want.body)}, got "
                               f"{json.dumps(got) if not isinstance(got, str) else got[:200]}")
    return Replay(status, got, None, not differences, differences)
