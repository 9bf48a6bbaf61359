"""What the warm-up probe reads on the wire: Ollama's error answers, ``/api/ps``, and one
streamed generation (NDJSON, bounded in time and bytes).

Pure parsers and one bounded reader, split from ``warmup`` so that the probe's module holds its
steps and judgements; ``warmup`` re-exports the public names (and the ``load`` probe reuses
``classify_server_error`` through it). This module emits no findings itself: it maps an error
to a cause id (``classify_server_error``) for the caller's finding.

Timings a :class:`Stream` records, all from the moment the request is sent (the client is
already built, so loading CA certificates does not count): ``headers_ms`` → the response
headers; ``first_chunk_ms`` → the first body chunk (a generate's first token);
``elapsed_ms`` → the body complete, cut, or failed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ollama_doctor import modelname, net, ollama_messages

# --------------------------------------------------------------------------------------------
# Server error messages → cause ids (pure; reused for pasted errors)

# When no message row matches: the status decides.
_STATUS_CAUSES: dict[int, str] = {
    400: "bad-request", 401: "auth-required", 403: "forbidden", 404: "model-not-found",
    405: "method-not-allowed", 429: "rate-limited", 502: "bad-gateway", 503: "server-busy",
    504: "gateway-timeout",
}


def classify_server_error(status: int | None, message: str) -> str:
    """The cause id for an error Ollama (or something in front of it) answered.

    ``status`` is the HTTP status, or ``None`` (or ≤ 0, as ollama-python's ``-1``) for an
    ``{"error": …}`` line inside a 200 stream. ``message`` is the error text (the JSON
    ``error`` value, or the body). Any other 5xx, or an unrecognised mid-stream error, is
    ``server-error``.
    """
    text = message or ""
    cause = ollama_messages.classify(text)  # Ollama's own words: the one table
    if cause is not None:
        return cause
    if status is not None and status > 0:
        if status == 404 and "404 page not found" in text:
            return "wrong-base-path"
        if status in _STATUS_CAUSES:
            return _STATUS_CAUSES[status]
        if 400 <= status < 500:
            return "bad-request"
    return "server-error"


# --------------------------------------------------------------------------------------------
# /api/ps (pure)


def processor(size: int, size_vram: int) -> str:
    """The PROCESSOR column of ``ollama ps`` (``cmd/cmd.go``; docs/ollama-wire.md §1.3)."""
    if size_vram == 0:
        return "100% CPU"
    if size_vram == size:
        return "100% GPU"
    if size_vram > size or size <= 0:
        return "Unknown"
    cpu = round((size - size_vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def cpu_percent(size: int, size_vram: int) -> int | None:
    """Share of the model held in system memory, or ``None`` when the CLI says Unknown."""
    if size_vram == 0 and size >= 0:
        return 100
    if size_vram > size or size <= 0:
        return None
    return round((size - size_vram) / size * 100)


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$")


def parse_rfc3339(text: str) -> datetime | None:
    """Go's RFC 3339 timestamps (nanoseconds, ``Z`` or an offset) → aware datetime, or None."""
    match = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    zone = match.group(8)
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None




@dataclass
class PsEntry:
    name: str
    size: int
    size_vram: int
    context_length: int | None
    expires_at: str | None
    expires_in_s: float | None

    @property
    def processor(self) -> str:
        return processor(self.size, self.size_vram)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "size_vram": self.size_vram,
                "processor": self.processor, "context_length": self.context_length,
                "expires_at": self.expires_at,
                "expires_in_s": None if self.expires_in_s is None
                else round(self.expires_in_s, 1)}


def find_ps_entry(data: Any, model: str, now: datetime) -> PsEntry | None:
    """The ``/api/ps`` entry for ``model`` (Ollama's name matching), or ``None``."""
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return None
    for item in models:
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("model")
        if not isinstance(name, str) or not modelname.same(name, model):
            continue
        expires = item.get("expires_at") if isinstance(item.get("expires_at"), str) else None
        when = parse_rfc3339(expires) if expires else None
        ctx_len = item.get("context_length")
        return PsEntry(
            name=name, size=_int(item.get("size")), size_vram=_int(item.get("size_vram")),
            context_length=ctx_len if isinstance(ctx_len, int) and ctx_len > 0 else None,
            expires_at=expires,
            expires_in_s=None if when is None else (when - now).total_seconds())
    return None


def other_models(data: Any, model: str) -> list[str]:
    """Names of the other models ``/api/ps`` lists: they hold memory this one may need."""
    models = data.get("models") if isinstance(data, dict) else None
    out: list[str] = []
    for item in models if isinstance(models, list) else []:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and not modelname.same(name, model) and name not in out:
            out.append(name)
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --------------------------------------------------------------------------------------------
# Streaming one generation


@dataclass
class Stream:
    """One streamed call: status, timings, the final object, or the error (never raises)."""

    status: int | None = None
    intermediary: str | None = None  # a Server or Via header: something in front of Ollama
    headers_ms: float | None = None
    first_chunk_ms: float | None = None  # request sent → first body chunk (the first token)
    elapsed_ms: float = 0.0
    final: dict[str, Any] | None = None
    lines: int = 0
    stream_error: str | None = None  # an {"error": …} line on a 200 stream
    body_error: str | None = None  # the error of a non-200 answer
    error: net.NetError | None = None
    truncated: bool = False

    def to_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "lines": self.lines,
                               "elapsed_ms": round(self.elapsed_ms, 1)}
        if self.first_chunk_ms is not None:
            out["first_chunk_ms"] = round(self.first_chunk_ms, 1)
        if self.stream_error is not None:
            out["stream_error"] = self.stream_error[:500]
        if self.body_error is not None:
            out["error"] = self.body_error[:500]
        if self.error is not None:
            out["network_error"] = self.error.to_dict()
        return out


STREAM_MAX_BYTES = 256 * 1024


def exchange(client: Any, method: str, url: str, *, timeout: float, connect_timeout: float,
             headers: dict[str, str], json_body: Any = None, max_bytes: int = 1 << 20,
             body_timeout: float | Callable[[], float] | None = None) -> net.HttpReply:
    """One bounded exchange on ``client`` (an ``httpx.Client``), timed from the request only:
    building a client loads CA certificates, which would add tens of ms to a measured load."""
    return net.exchange(client, method, url, timeout=timeout, connect_timeout=connect_timeout,
                        headers=headers, json_body=json_body, max_bytes=max_bytes,
                        body_timeout=body_timeout)


def stream_call(client: Any, url: str, body: dict[str, Any], *, headers: dict[str, str],
                timeout: float, connect_timeout: float, max_bytes: int = STREAM_MAX_BYTES,
                body_wall_s: float | Callable[[], float] | None = None,
                on_headers: Callable[[Stream], None] | None = None) -> Stream:
    """POST ``body`` and read the NDJSON answer line by line, bounded in time and bytes.

    One ``net.Cutoff`` bounds the exchange, as it bounds every other one: ``timeout`` (or
    ``connect_timeout`` when longer) up to the response headers — a model load may take that
    long, and a wait longer than ``--timeout`` is excused time for the runner
    (``net.header_wait``) — then ``body_wall_s`` seconds from the headers for the body (a
    callable is asked when they arrive). A stream that never ends or stalls is cut at that
    wall clock, one that outgrows ``max_bytes`` at that size, whichever comes first.
    ``on_headers`` is told as soon as the headers are in.
    """
    import httpx

    out = Stream()
    started = time.perf_counter()
    whole = max(timeout, connect_timeout)
    cutoff = net.Cutoff(whole)
    limits = httpx.Timeout(timeout, connect=connect_timeout)
    try:
        with net.header_wait(whole) as wait, client.stream(
                "POST", url, json=body, headers=headers, timeout=limits,
                extensions=cutoff.extensions()) as response:
            wait.done()
            cutoff.adopt_response(response)
            out.headers_ms = (time.perf_counter() - started) * 1000
            out.status = response.status_code
            out.intermediary = response.headers.get("server") or response.headers.get("via")
            wall = body_wall_s() if callable(body_wall_s) else body_wall_s
            if wall is not None:
                cutoff.limit(wall)
            if on_headers is not None:
                on_headers(out)
            _read_stream(out, response, url, started, max_bytes)
    except Exception as exc:
        out.error = net.classify(exc)
    finally:
        cutoff.close()
    if cutoff.fired and out.final is None:
        out.truncated = True
        out.error = cutoff.error()
        if cutoff.body_limit is not None:
            out.error = net.NetError(
                "read-timeout", f"the stream did not end within "
                f"{round(cutoff.body_limit, 2):g} s of its headers ({out.lines} lines read)",
                "StreamDeadline")
    out.elapsed_ms = (time.perf_counter() - started) * 1000
    return out


def _read_stream(out: Stream, response: Any, url: str, started: float, max_bytes: int) -> None:
    """Read a streamed answer into ``out``: NDJSON lines of a 200, the error of anything
    else; at most ``max_bytes`` (then ``out.truncated``)."""
    buffer = b""
    size = 0
    for chunk in response.iter_raw():
        if out.first_chunk_ms is None and chunk:
            out.first_chunk_ms = (time.perf_counter() - started) * 1000
        size += len(chunk)
        if size > max_bytes:
            out.truncated = True
            break
        buffer += chunk
        if response.status_code != 200:
            continue
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            _take_line(out, line)
    if response.status_code == 200:
        _take_line(out, buffer)
    else:
        reply = net.HttpReply("POST", url, status=response.status_code, body=buffer)
        out.body_error = reply.error_message() or reply.snippet()


def _take_line(out: Stream, line: bytes) -> None:
    if not line.strip():
        return
    out.lines += 1
    try:
        data = json.loads(line)
    except ValueError:
        out.stream_error = out.stream_error or f"not JSON: {line[:200]!r}"
        return
    if not isinstance(data, dict):
        return
    if isinstance(data.get("error"), str):
        out.stream_error = data["error"]
    elif data.get("done") is True:
        out.final = data


def _ns(data: dict[str, Any] | None, key: str) -> int:
    """A metric of a final object: nanoseconds or counts; absent (omitempty) is 0."""
    if not data:
        return 0
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
