"""Classifying the lines of an Ollama server log by a table of signatures (read, bounded, by
``logread``).

Classifying
-----------
``SIGNATURES`` is the table: a regular expression, the cause it is evidence for, a severity and
a label. Ollama's own error strings (out of memory, runner crashes, load timeouts, outdated
models, GPU discovery, descriptors…) come from ``ollama_messages.MESSAGES``, the one table the
warm-up probe and the pasted-error reader use too, so a line means the same cause wherever it
is read; only the log's own lines are defined here (``Listening on``, ``server config``, load
times, layer offload, GIN access lines — 499, 5xx, 429, a 403 to a CORS preflight
(``origin-forbidden``) or to another method (``forbidden``), a 404 on an inference route
(``model-not-found``) or on a path that is none of Ollama's routes (``wrong-base-path``) — and
the generic error/timeout/quota lines). A cause without a fix of its own from the log gets the
catalogue's (``causes.CAUSES``), as ``check`` shows it.
``classify`` is pure: lines in, hits out (count, first and last line per
signature) plus the facts a log holds (``Listening on ADDR (version V)``, the ``server config``
environment, load times, layer offload). ``findings`` turns hits into one ``Finding`` per cause.

The generic ``error`` / ``timeout`` / ``quota`` signatures (the troubleshooting guide's advice)
count only lines that are errors by their form (``level=ERROR``, a line starting ``Error:`` or
``panic:``) or warnings by level, and only when no specific signature explained the line; they
are info-level evidence, never alarms: the word "error" inside a healthy line counts for nothing.

``run_logs_command`` is the ``ollama-doctor logs`` command without its CLI wiring.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ollama_doctor import ollama_messages
from ollama_doctor.logread import LogText, read_log
from ollama_doctor.redact import MASK, Redactor, is_secret_name, redact_text
from ollama_doctor.result import Confidence, Finding, FixStep, Severity

QUOTE_CHARS = 300  # a line quoted as evidence
MAX_LISTED = 500  # matched lines kept for the ``logs`` command's listing


# ---------------------------------------------------------------------------------------------
# classifying


@dataclass(frozen=True)
class Signature:
    """One kind of log line: the cause it is evidence for (``None``: a fact only)."""

    id: str
    pattern: re.Pattern[str]
    cause: str | None
    severity: Severity
    label: str
    tier: int = 0  # 1: counts only when no tier-0 cause matched the line; 2 (generic): neither

    @property
    def generic(self) -> bool:
        return self.tier == 2


def _sig(id_: str, pattern: str, cause: str | None, severity: Severity, label: str,
         *, tier: int = 0, flags: int = 0) -> Signature:
    return Signature(id_, re.compile(pattern, flags), cause, severity, label, tier)


_TABLE_ROWS: list[str] = []


def _table(id_: str, rows: tuple[str, ...], severity: Severity, label: str, *, tier: int = 0,
           prefix: str = "") -> Signature:
    """A signature made of rows of ``ollama_messages.MESSAGES``, Ollama's own strings: the
    cause and the pattern come from the table, so a line means here what it means pasted or
    in the warm-up probe. ``prefix`` narrows where the log counts it (log lines only)."""
    found = [ollama_messages.BY_ID[row] for row in rows]
    _TABLE_ROWS.extend(rows)
    causes = {row.cause for row in found}
    if len(causes) != 1:
        raise ValueError(f"signature {id_}: rows name different causes {sorted(causes)}")
    body = "|".join(f"(?:{row.pattern.pattern})" for row in found)
    pattern = f"{prefix}(?:{body})" if prefix else body
    return Signature(id_, re.compile(pattern, re.IGNORECASE), causes.pop(), severity, label, tier)


_I = re.IGNORECASE
# Ollama's routes (server/routes.go GenerateRoutes, v0.33): a 404 on an inference route is a
# model the server does not have; on another route (``/api/show`` before a pull) it is routine;
# on a path that is no route at all, the client's base URL or path is wrong.
_INFERENCE_ROUTES = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings",
                     "/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                     "/v1/responses", "/v1/messages")
_OTHER_ROUTES = ("/", "/api/version", "/api/status", "/api/pull", "/api/push", "/api/tags",
                 "/api/show", "/api/delete", "/api/me", "/api/signout", "/api/create",
                 "/api/copy", "/api/ps", "/v1/audio/transcriptions", "/v1/models")
_PARAM_ROUTES = ("/api/blobs/", "/v1/models/")


def _paths(paths: Iterable[str], prefixes: Iterable[str] = ()) -> str:
    """A GIN line's quoted path (query allowed) that is one of ``paths`` or under a prefix."""
    exact = "|".join(re.escape(p) for p in paths)
    under = "".join(f"|{re.escape(p)}[^\"?]+" for p in prefixes)
    return f'"(?:{exact}{under})(?:\\?[^"]*)?"'


_GIN_404 = r"\[GIN\][^|]*\|\s*404\s*\|"
_WARN_OR_ERROR = r"^(?=.*\blevel=(?:WARN|ERROR)\b)"  # slog lines at warning level or worse


SIGNATURES: tuple[Signature, ...] = (
    # -- facts ----------------------------------------------------------------------------------
    _sig("listening", r"Listening on (?P<addr>\S+) \(version (?P<version>[^)\s]+)\)", None,
         Severity.INFO, "server started (bind address, version)"),
    _sig("server-config", r'msg="?server config"?\s', None, Severity.INFO,
         "server configuration (its effective environment)"),
    _sig("load-finished", r"(?:llama-server|llama runner) started in (?P<seconds>[\d.]+) seconds",
         None, Severity.INFO, "model loaded (seconds)"),
    # -- Ollama's own error strings: patterns from ollama_messages, the one table ---------------
    _table("oom", ("oom-startup", "oom-substring", "oom-system-memory", "oom-request-too-large",
                   "oom-mlx", "oom-too-large", "oom-load-full", "oom-runtime"),
           Severity.ERROR, "out of memory"),
    # a signal kill counts only on the runner's own lines or a warning/error line
    _table("oom-killed", ("oom-killed",), Severity.ERROR,
           "runner killed by a signal (the kernel or cgroup OOM killer)",
           prefix=r"(?:has terminated|no longer running|\blevel=(?:WARN|ERROR)\b).*"),
    # -- runner ---------------------------------------------------------------------------------
    _table("runner-terminated", ("runner-terminated",), Severity.ERROR, "model runner terminated"),
    _table("runner-stopped", ("runner-stopped", "runner-error"), Severity.ERROR,
           "model runner stopped mid-request"),
    _table("runner-fatal", ("runner-fatal",), Severity.WARNING,
           "runner assertion or fatal signal"),
    # a load the client aborted is logged as a failed load too (error="context canceled")
    _table("load-failed", ("load-failed",), Severity.WARNING, "model load failed", tier=1,
           prefix=r"^(?!.*context canceled).*?"),
    # -- load time versus the client ------------------------------------------------------------
    _table("load-timeout", ("load-timeout",), Severity.ERROR,
           "server-side load timeout (OLLAMA_LOAD_TIMEOUT)"),
    _table("load-aborted", ("load-aborted",), Severity.ERROR,
           "client gave up while the model was loading"),
    _sig("http-499", r"\[GIN\][^|]*\|\s*499\s*\|", "slow-model-load", Severity.WARNING,
         "request cancelled by the client (HTTP 499)"),
    _sig("completion-aborted", r"aborting completion request due to client closing the connection",
         None, Severity.INFO, "client closed the connection during generation"),
    # -- GPU ------------------------------------------------------------------------------------
    _table("gpu-discovery-failed", ("gpu-discovery",), Severity.WARNING, "GPU discovery failed"),
    _sig("cpu-only", r"inference compute(?=.*\bid=cpu\b)(?=.*\blibrary=cpu\b)|"
                     r"no compatible GPUs were discovered",
         "gpu-offload", Severity.INFO, "no usable GPU: models run on the CPU"),
    _sig("partial-offload", r"offloaded (?P<n>\d+)/(?P<m>\d+) layers to GPU", "gpu-offload",
         Severity.WARNING, "layers offloaded to the GPU (N/M)"),
    # -- others ---------------------------------------------------------------------------------
    _table("prompt-truncated", ("prompt-truncated",), Severity.WARNING,
           "prompt truncated to the context length"),
    _table("too-many-open-files", ("fd-exhausted",), Severity.ERROR, "out of file descriptors"),
    _table("outdated", ("outdated",), Severity.ERROR, "model needs a newer Ollama"),
    _table("address-in-use", ("address-in-use",), Severity.WARNING,
           "port already taken when a server started"),
    _sig("http-5xx", r"\[GIN\][^|]*\|\s*5\d\d\s*\|", "server-error", Severity.INFO,
         "HTTP 5xx answered"),
    _sig("http-429", r"\[GIN\][^|]*\|\s*429\s*\|", "rate-limited", Severity.INFO,
         "HTTP 429 answered (passed through from ollama.com)"),
    # Ollama's own 403s come from its CORS and Host checks (server/routes.go, allowedHosts
    # Middleware and gin-contrib/cors in GenerateRoutes, v0.33): a refused preflight (OPTIONS)
    # is an Origin the server does not allow.
    _sig("http-403-preflight", r'\[GIN\][^|]*\|\s*403\s*\|.*\|\s*OPTIONS\s+"', "origin-forbidden",
         Severity.WARNING, "CORS preflight refused (HTTP 403 to OPTIONS)"),
    _sig("http-403", r'\[GIN\][^|]*\|\s*403\s*\|(?!.*\|\s*OPTIONS\s+")', "forbidden",
         Severity.INFO, "HTTP 403 answered (an Origin or Host the server does not allow)"),
    # A 404 on one of Ollama's routes is a model it does not have; elsewhere, a wrong path.
    _sig("http-404-model", _GIN_404 + ".*" + _paths(_INFERENCE_ROUTES), "model-not-found",
         Severity.INFO, "HTTP 404 on an inference route (a model the server does not have)"),
    _sig("http-404-path", _GIN_404 + "(?!.*" + _paths(_INFERENCE_ROUTES + _OTHER_ROUTES,
                                                       _PARAM_ROUTES) + ').*"/',
         "wrong-base-path", Severity.INFO, "HTTP 404 on a path that is none of Ollama's routes"),
    # -- the guide's generic search terms: info-level evidence only ------------------------------
    _sig("error-line", r"^(?!.*context canceled)(?:.*\blevel=ERROR\b|(?:.*\]:\s)?(?:Error|error|"
                       r"panic|fatal error):\s)",
         "server-error", Severity.INFO, "error line", tier=2),
    _sig("timeout-line", _WARN_OR_ERROR + r".*\b(?:timeout|timed out|deadline exceeded)\b",
         "server-error", Severity.INFO, "timeout line", tier=2, flags=_I),
    _sig("quota-line", _WARN_OR_ERROR + r".*(?:\bquota\b|usage limit)", "rate-limited",
         Severity.INFO, "quota line", tier=2, flags=_I),
)

BY_ID: dict[str, Signature] = {s.id: s for s in SIGNATURES}
# The rows of ollama_messages.MESSAGES the log reader uses (the others are answers only).
TABLE_ROWS: frozenset[str] = frozenset(_TABLE_ROWS)
_ORDER: dict[str, int] = {s.id: n for n, s in enumerate(SIGNATURES)}
_BY_TIER: tuple[Signature, ...] = tuple(sorted(SIGNATURES, key=lambda s: s.tier))
# When several causes come from one log, the root ones first (the diagnosis keeps this order
# between causes of equal severity, layer and confidence): an OOM is why the runner died.
CAUSE_ORDER: tuple[str, ...] = (
    "out-of-memory", "ollama-outdated", "fd-limit-low", "slow-model-load", "runner-crashed",
    "wrong-instance", "origin-forbidden", "forbidden", "model-not-found", "wrong-base-path",
    "gpu-offload", "prompt-truncated", "rate-limited", "server-error")


@dataclass
class Hit:
    line: int  # the line's number in the source (LogText.numbers), else within the lines read
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text}


@dataclass
class SignatureHits:
    signature: Signature
    count: int
    first: Hit
    last: Hit
    values: dict[str, str] = field(default_factory=dict)  # named groups of the last match

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signature": self.signature.id, "label": self.signature.label,
                               "count": self.count, "first": self.first.to_dict(),
                               "last": self.last.to_dict()}
        if self.values:
            out["values"] = self.values
        return out


@dataclass
class Classification:
    lines_read: int = 0
    hits: dict[str, SignatureHits] = field(default_factory=dict)
    listed: list[tuple[int, str, list[str]]] = field(default_factory=list)  # line, text, ids
    listed_dropped: int = 0
    cause_lines: dict[str, int] = field(default_factory=dict)  # distinct lines per cause
    listening: list[dict[str, Any]] = field(default_factory=list)
    server_env: dict[str, str | list[str]] | None = None
    server_env_line: int | None = None
    load_seconds: list[float] = field(default_factory=list)
    offload: dict[str, int] | None = None  # the last "offloaded N/M layers"

    @property
    def last_start(self) -> int | None:
        """The line of the last ``Listening on``: where the running server's own lines begin."""
        return self.listening[-1]["line"] if self.listening else None

    def counts(self) -> dict[str, int]:
        return {sid: h.count for sid, h in self.hits.items()}

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lines_classified": self.lines_read, "matches": self.counts()}
        if self.listening:
            out["listening"] = self.listening[-5:]
        if self.load_seconds:
            out["load_seconds"] = {"count": len(self.load_seconds),
                                   "last": self.load_seconds[-1],
                                   "max": max(self.load_seconds)}
        if self.offload:
            out["offload"] = self.offload
        return out


def quote(line: str, secrets: Iterable[str] = (),
          signatures: Sequence[Signature] = ()) -> str:
    """A log line fit for evidence: secrets masked, at most QUOTE_CHARS characters, cut
    around what ``signatures`` matched (``headline``)."""
    return headline(redact_line(line, secrets), signatures, QUOTE_CHARS)


# ``NAME:value`` as Go prints a map (the ``server config`` line) and ``NAME=value``. Each name is
# matched as one whole word and judged in Python, and only a secret name's value is read: a
# pattern that looked for KEY/TOKEN inside the word backtracked over it and was quadratic (10 s
# for one 30 KB line).
_ASSIGN = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z][A-Za-z0-9_-]*)[=:]")
_SECRET_WORD = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)")
_SECRET_NAMES = {"api_key", "api-key", "apikey", "password", "secret", "token"}
_VALUE_END = re.compile(r"[\s\]]")


def _mask_assignments(line: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _ASSIGN.finditer(line):
        name = m[1]
        if m.start() < pos or not (name.lower() in _SECRET_NAMES or (
                name.upper() == name and _SECRET_WORD.search(name))):
            continue
        start = m.end()
        if line.startswith('"', start):
            close = line.find('"', start + 1)
            end = len(line) if close < 0 else close + 1
        else:
            stop = _VALUE_END.search(line, start)
            end = len(line) if stop is None else stop.start()
        if end > start:
            out.append(line[pos:start])
            out.append(MASK)
            pos = end
    out.append(line[pos:])
    return "".join(out)


def redact_line(line: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, bearer tokens, ``NAME_KEY=value`` assignments and known secrets."""
    line = _mask_assignments(line)
    scrubbed = Redactor(secrets).scrub(line)
    return redact_text(scrubbed)


def classify(lines: Sequence[str], secrets: Iterable[str] = (),
             numbers: Sequence[int] | None = None) -> Classification:
    """Match every line against ``SIGNATURES``. Pure: lines in, hits and facts out.

    ``numbers``: each line's number in its source (``LogText.numbers``); else 1, 2, 3…
    Quoted text is redacted here, so nothing downstream sees a secret from the log."""
    secrets = list(secrets)
    out = Classification(lines_read=len(lines))
    numbered = (zip(numbers, lines, strict=True) if numbers is not None
                else enumerate(lines, start=1))
    for number, line in numbered:
        matched: list[tuple[Signature, re.Match[str]]] = []
        explained = 3  # the lowest tier whose signature gave this line a cause
        for sig in _BY_TIER:
            if sig.tier > explained:
                continue
            m = sig.pattern.search(line)
            if m is None:
                continue
            matched.append((sig, m))
            if sig.cause is not None and _is_evidence(sig, m):
                explained = min(explained, sig.tier)
        matched.sort(key=lambda item: _ORDER[item[0].id])
        if not matched:
            continue
        text = quote(line, secrets, [sig for sig, _ in matched if sig.cause])
        for cause in {sig.cause for sig, m in matched if sig.cause and _is_evidence(sig, m)}:
            out.cause_lines[cause] = out.cause_lines.get(cause, 0) + 1
        for sig, m in matched:
            values = {k: v for k, v in m.groupdict().items() if v is not None}
            _note_fact(out, sig, values, line, number, secrets)
            hits = out.hits.get(sig.id)
            if hits is None:
                out.hits[sig.id] = SignatureHits(sig, 1, Hit(number, text), Hit(number, text),
                                                 values)
            else:
                hits.count += 1
                hits.last = Hit(number, text)
                hits.values = values
        if len(out.listed) < MAX_LISTED:
            out.listed.append((number, text, [s.id for s, _ in matched]))
        else:
            out.listed_dropped += 1
    return out


def line_cause(line: str) -> str | None:
    """The cause one log line is evidence for (the root one when it holds several, in
    ``CAUSE_ORDER``), or ``None``. Pure."""
    cls = classify([line])
    causes = {h.signature.cause for h in cls.hits.values()
              if h.signature.cause and not h.signature.generic}
    rank = {c: n for n, c in enumerate(CAUSE_ORDER)}
    return min(causes, key=lambda c: rank.get(c, len(rank)), default=None)


def _is_evidence(sig: Signature, m: re.Match[str]) -> bool:
    if sig.cause is None:
        return False
    if sig.id == "partial-offload":
        return int(m["n"]) < int(m["m"])  # every layer on the GPU is a fact, not evidence
    return True


def _note_fact(out: Classification, sig: Signature, values: dict[str, str], line: str,
               number: int, secrets: list[str]) -> None:
    if sig.id == "listening":
        out.listening.append({"line": number, "address": values.get("addr"),
                              "version": values.get("version")})
    elif sig.id == "server-config":
        env = server_config_env(line)
        if env is not None:
            out.server_env, out.server_env_line = env, number
    elif sig.id == "load-finished":
        with contextlib.suppress(KeyError, ValueError):
            out.load_seconds.append(float(values["seconds"]))
    elif sig.id == "partial-offload":
        out.offload = {"offloaded": int(values["n"]), "layers": int(values["m"]), "line": number}


# -- the "server config env=map[…]" line --------------------------------------------------------

_ENV_ATTR = re.compile(r'\benv=(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>map\[.*\]))')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'"}
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:")


def go_unquote(text: str) -> str:
    """Undo the escaping of a Go ``%q`` string as slog's text handler writes it."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = text[i + 2:i + 2 + width]
            try:
                out.append(chr(int(digits, 16)))
                i += 2 + width
            except ValueError:
                out.append(ch)
                i += 1
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def parse_go_map(text: str) -> dict[str, str | list[str]]:
    """Go's ``fmt`` printing of a ``map[string]any``: ``map[K:V K:[a b] K:]`` → a dict.

    Keys are identifiers; a value runs to the next `` KEY:`` at the top level; a value in
    brackets is a list split on spaces. Raises ``ValueError`` on text that is not a map."""
    text = text.strip()
    if not text.startswith("map[") or not text.endswith("]"):
        raise ValueError(f"not a Go map: {text[:40]!r}")
    body = text[4:-1]
    out: dict[str, str | list[str]] = {}
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i] == " ":
            i += 1
        if i >= n:
            break
        m = _KEY.match(body, i)
        if m is None:
            raise ValueError(f"expected KEY: at {body[i:i + 30]!r}")
        key = m.group()[:-1]
        i = m.end()
        if i < n and body[i] == "[":
            depth, j = 0, i
            while j < n:
                if body[j] == "[":
                    depth += 1
                elif body[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:
                raise ValueError(f"unclosed [ in {body[i:i + 30]!r}")
            inner = body[i + 1:j]
            out[key] = [part for part in inner.split(" ") if part]
            i = j + 1
            continue
        j = i
        while j < n:
            if body[j] == " " and _KEY.match(body, j + 1):
                break
            j += 1
        out[key] = body[i:j]
        i = j
    return out


def server_config_env(line: str) -> dict[str, str | list[str]] | None:
    """The environment in a ``msg="server config" env="map[…]"`` line, or ``None``."""
    m = _ENV_ATTR.search(line)
    if m is None:
        return None
    text = go_unquote(m["quoted"]) if m["quoted"] is not None else m["bare"]
    try:
        return parse_go_map(text)
    except ValueError:
        return None


# -- hits → findings ----------------------------------------------------------------------------

_LOWER = {Severity.CRITICAL: Severity.ERROR, Severity.ERROR: Severity.WARNING,
          Severity.WARNING: Severity.INFO, Severity.INFO: Severity.INFO}

_CAUSE_TEXT: dict[str, str] = {
    "out-of-memory": "the model ran out of memory",
    "runner-crashed": "the model runner crashed",
    "slow-model-load": "model loads outlasted the client or the server's load timeout",
    "gpu-offload": "the model does not run wholly on a GPU",
    "prompt-truncated": "prompts were truncated to the context length",
    "fd-limit-low": "the server ran out of file descriptors",
    "ollama-outdated": "a model needs a newer Ollama than this server",
    "wrong-instance": "a server could not bind its port because another process held it",
    "server-error": "the server logged errors",
    "rate-limited": "the server logged quota or rate limits",
    "origin-forbidden": "the server refused a browser's CORS preflight (an Origin not allowed)",
    "forbidden": "the server answered 403 (its Origin or Host check)",
    "model-not-found": "requests for a model the server does not have (404)",
    "wrong-base-path": "requests to paths Ollama does not serve (404)",
}


def _severity(cause: str, hits: list[SignatureHits], cls: Classification) -> Severity:
    ids = {h.signature.id for h in hits}
    if cause == "gpu-offload":
        worst = Severity.INFO
        off = cls.offload
        if "gpu-discovery-failed" in ids:
            worst = Severity.WARNING
        # 0/M on a machine that found no GPU is the expected CPU run, not a problem
        if off and off["offloaded"] < off["layers"] and (
                off["offloaded"] > 0 or "cpu-only" not in ids):
            worst = Severity.WARNING
        return worst
    if cause == "slow-model-load" and ids == {"http-499"}:
        return Severity.WARNING  # 499s alone: clients gave up, maybe during generation
    return max((h.signature.severity for h in hits), key=lambda s: s.rank)


def findings(cls: Classification, source: str) -> list[Finding]:
    """One finding per cause the log gives evidence for, the log lines quoted (redacted).

    Evidence older than the server's last start (``Listening on``) counts one severity lower:
    a restart may have changed what failed. Confidence is medium: the log proves it happened,
    not that it is what fails now."""
    by_cause: dict[str, list[SignatureHits]] = {}
    for one in cls.hits.values():
        sig = one.signature
        if sig.cause is None:
            continue
        if sig.id == "partial-offload" and cls.offload is not None and (
                cls.offload["offloaded"] >= cls.offload["layers"]):
            continue  # every layer on the GPU: a fact, not evidence
        by_cause.setdefault(sig.cause, []).append(one)
    out: list[Finding] = []
    start = cls.last_start
    rank = {c: n for n, c in enumerate(CAUSE_ORDER)}
    for cause, hits in sorted(by_cause.items(), key=lambda kv: rank.get(kv[0], len(rank))):
        severity = _severity(cause, hits, cls)
        count = cls.cause_lines.get(cause) or sum(h.count for h in hits)
        last = max(hits, key=lambda h: h.last.line).last
        before_restart = start is not None and last.line < start
        if before_restart:
            severity = _LOWER[severity]
        what = _CAUSE_TEXT.get(cause, cause)
        detail = _detail(cause, cls)
        when = " (all before the server's last start)" if before_restart else ""
        message = (f"The server log ({source}) shows {what}{detail}: {count} line"
                   f"{'s' if count != 1 else ''}{when}, the last: "
                   f"{headline(last.text, [h.signature for h in hits])}")
        generic = all(h.signature.generic for h in hits)
        confidence = (Confidence.LOW if generic or severity == Severity.INFO
                      else Confidence.MEDIUM)
        evidence: dict[str, Any] = {
            "log": source, "count": count, "signatures": [h.to_dict() for h in hits]}
        if before_restart:
            evidence["before_last_start"] = True
        if cause == "gpu-offload" and cls.offload:
            evidence["offload"] = cls.offload
        if cause == "slow-model-load" and cls.load_seconds:
            evidence["load_seconds_max"] = max(cls.load_seconds)
        code = {"out-of-memory": 500, "runner-crashed": 500}.get(cause)
        fix = _fix(cause, hits, cls) or list(_catalogue_fix(cause))
        out.append(Finding(cause, severity, message, evidence, fix, confidence, code))
    return out


def headline(text: str, signatures: Sequence[Signature] = (), limit: int = 160) -> str:
    """``text`` within ``limit`` characters, keeping the part a signature matched: a long
    line is cut around its match (``… cudaMalloc failed: out of memory …``), never right
    before the words that matter."""
    if len(text) <= limit:
        return text
    match = next((m for m in (sig.pattern.search(text) for sig in signatures) if m), None)
    if match is None or match.end() <= limit - 1:
        return text[: limit - 1] + "…"
    start = max(0, min(match.start() - limit // 4, len(text) - (limit - 2)))
    end = start + limit - 2
    return "…" + text[start:end] + ("…" if end < len(text) else "")


def _detail(cause: str, cls: Classification) -> str:
    if cause == "gpu-offload" and cls.offload and cls.offload["offloaded"] < cls.offload["layers"]:
        return f" ({cls.offload['offloaded']}/{cls.offload['layers']} layers on the GPU)"
    if cause == "slow-model-load" and cls.load_seconds:
        return f" (loads took up to {max(cls.load_seconds):g} s)"
    return ""


def _catalogue_fix(cause: str) -> tuple[FixStep, ...]:
    """The cause's own remedy from the catalogue (what ``check`` shows for it), when the log
    gives nothing more specific."""
    from ollama_doctor.causes import CAUSES

    entry = CAUSES.get(cause)
    return entry.fix if entry is not None else ()


def _fix(cause: str, hits: list[SignatureHits], cls: Classification) -> list[FixStep]:
    from ollama_doctor import remedies as R

    ids = {h.signature.id for h in hits}
    if cause == "slow-model-load":
        steps = []
        if ids & {"load-aborted", "http-499"}:
            longest = f" (up to {max(cls.load_seconds):g} s here)" if cls.load_seconds else ""
            steps.append(R.step(
                "Give the client a timeout longer than the model's load" + longest + ", or "
                "preload the model once with a long timeout and keep it loaded: a client that "
                "gives up aborts the load, so retrying with the same timeout never succeeds.",
                R.curl(f"http://127.0.0.1:{R.DEFAULT_PORT}/api/generate",
                       body={"model": "MODEL", "keep_alive": "30m"})))
            steps.append(R.step("Or keep every model loaded longer: set this in the server's "
                                "environment.", R.env_line("OLLAMA_KEEP_ALIVE", "30m")))
        if "load-timeout" in ids:
            steps.append(R.step(
                "The server itself gave up loading (OLLAMA_LOAD_TIMEOUT, 5m by default): raise "
                "it in the server's environment, or use a smaller model.",
                R.env_line("OLLAMA_LOAD_TIMEOUT", "15m")))
        return steps
    if cause == "ollama-outdated":
        return [R.step("Upgrade Ollama, then pull the model again.",
                       R.install_ollama(), R.pull("MODEL"))]
    if cause == "fd-limit-low":
        return [R.step("Raise the open-file limit where the server starts, then restart it: "
                       "the systemd service, a shell, or the container.",
                       R.systemd_setting("LimitNOFILE=65536"), R.serve_with_nofile(65536),
                       R.docker_nofile(65536))]
    if cause == "gpu-offload" and "gpu-discovery-failed" in ids:
        return [R.step("Fix GPU discovery: update the driver, or after suspend reload the "
                       "NVIDIA UVM module; then restart the server.",
                       R.gpu_status(), R.reload_nvidia_uvm())]
    return []


# ---------------------------------------------------------------------------------------------
# the `logs` command


def _secrets_of(env: Mapping[str, str]) -> list[str]:
    from urllib.parse import unquote, urlsplit

    out: list[str] = []
    for name, value in env.items():
        if not value:
            continue
        if is_secret_name(name) and "PROXY" not in name.upper():
            out.append(value)
        if "PROXY" in name.upper() and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                out += [password, unquote(password)]
    return out


def logs_document(log: LogText, cls: Classification | None,
                  found: list[Finding]) -> dict[str, Any]:
    """The ``logs --json`` document (schema_version 1)."""
    doc: dict[str, Any] = {"schema_version": 1, "log": log.to_dict()}
    if cls is not None:
        doc["facts"] = cls.facts()
        if cls.server_env is not None:
            doc["facts"]["server_env"] = redact_env_map(cls.server_env)
        doc["lines"] = [{"line": n, "text": t, "signatures": ids,
                         "labels": [BY_ID[i].label for i in ids if i in BY_ID]}
                        for n, t, ids in cls.listed]
        if cls.listed_dropped:
            doc["lines_not_listed"] = cls.listed_dropped
    doc["causes"] = [f.to_dict() for f in found]
    return doc


def logs_diagnosis(found: list[Finding], source: str) -> tuple[list[dict[str, Any]],
                                                               dict[str, Any]]:
    """The log's causes ranked, fixed and judged as ``check`` judges a run: the same
    ``diagnosis.rank`` (order, absorption, fixes from the catalogue, retry advice) and the
    same ``diagnosis.summary`` (status, verdict, exit code), over one pseudo-probe ``logs``."""
    from ollama_doctor import diagnosis
    from ollama_doctor.result import ProbeResult, status_of

    result = ProbeResult("logs", "Server log", status_of(found), f"the server log ({source})",
                         findings=found)
    ranked = diagnosis.rank([result])
    return [d.to_dict() for d in ranked], diagnosis.summary(ranked, [result])


def redact_env_map(env: Mapping[str, str | list[str]]) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for name, value in env.items():
        if isinstance(value, list):
            out[name] = [redact_line(v) for v in value]
        elif is_secret_name(name) and "PROXY" not in name.upper():
            out[name] = MASK if value else ""
        else:
            out[name] = redact_line(value)
    return out


def judge_log(path: str | None, lines: int, stdin: TextIO, env: Mapping[str, str],
              fs_root: Path) -> tuple[int, dict[str, Any] | str]:
    """Read, classify and judge a log: (exit code, the ``logs --json`` document), or
    (2, a one-line message for stderr) when no log could be read.

    Exit 0: nothing error-level; 1: an error-level cause (``diagnosis.summary``, as ``check``)."""
    if lines < 1:
        return 2, f"--lines must be at least 1, not {lines}"
    lines = min(lines, 100_000)
    log = read_log(path, lines, env, fs_root, stdin=stdin, journal=fs_root == Path("/"))
    if log is None or not log.ok:
        where = "; ".join(f"{t['source']}: {t['result']}" for t in (log.tried if log else []))
        reason = log.error if log else "no Ollama server log found"
        if path and log is not None:
            return 2, f"cannot read {path!r}: {reason}"
        return 2, (f"{reason}" + (f" (tried {where})" if where else "")
                   + "; give --log-file PATH, or - to read stdin")
    cls = classify(log.lines, _secrets_of(env), log.numbers)
    found = findings(cls, log.source)
    doc = logs_document(log, cls, found)
    doc["diagnosis"], doc["summary"] = logs_diagnosis(found, log.source)
    return int(doc["summary"]["exit_code"]), doc


def run_logs_command(path: str | None, lines: int, json_out: bool, stdin: TextIO,
                     env: Mapping[str, str], fs_root: Path) -> tuple[int, str]:
    """``ollama-doctor logs [--log-file PATH|-] [--lines N] [--json]``: (exit code, output) —
    the JSON document, or the screen ``render.logs_report`` prints when stdout is not a
    terminal (the command itself renders to the terminal, in colour). Exit 2 with a one-line
    message when no log could be read."""
    code, judged = judge_log(path, lines, stdin, env, fs_root)
    if isinstance(judged, str):
        return code, judged
    if json_out:
        return code, json.dumps(judged, indent=2, ensure_ascii=False) + "\n"
    import io

    from ollama_doctor import render

    buffer = io.StringIO()
    render.logs_report(judged, render.console(buffer))
    return code, buffer.getvalue()
