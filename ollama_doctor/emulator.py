"""An Ollama look-alike on a real TCP socket, with injectable faults.

The emulator speaks HTTP/1.1 itself (on ``asyncio.start_server``) so that every byte matches what
a real Ollama server (Go ``net/http`` + gin + gin-contrib/cors, v0.33) would send: no ``Server``
header, gin's plain-text 404/405 bodies, empty-body 403s from the CORS and Host-header checks,
chunked NDJSON streams, ``{"error": ...}`` JSON errors, nanosecond durations, and Ollama-format
log lines (slog text lines and ``[GIN]`` access lines). See ``docs/ollama-facts.md``.

Emulated endpoints: ``GET|HEAD /``, ``GET|HEAD /api/version``, ``GET|HEAD /api/tags``,
``GET /api/ps``, ``GET /api/status``, ``POST /api/show``, ``POST /api/generate``,
``POST /api/chat``, ``POST /api/embed``, ``POST /api/embeddings``, ``POST /api/pull``,
``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/chat/completions``. Ollama's other
routes exist for routing (405, redirects) but answer ``501`` JSON. Models are loaded on first use
(cold load), kept for ``keep_alive`` and reloaded when ``num_ctx``/``num_gpu``/``num_batch``
change; a client that hangs up during a load aborts it.

Faults (combinable, see ``FAULTS``; values are checked by ``parse_fault``):

- ``cold-load=SECONDS``: model load time (default 0.05 s).
- ``latency=MS``, ``jitter=MS``: delay before every response (jitter is uniform, seeded).
- ``drop-rate=FRACTION``: close the connection without answering (seeded).
- ``auth=TOKEN``: an auth proxy in front: 401 + ``WWW-Authenticate`` unless the bearer matches.
- ``origins=LIST``: ``OLLAMA_ORIGINS`` (split on commas without trimming, one ``*`` per entry).
- ``host-check=on|off``: force the Host-header (DNS-rebinding) check on or off.
- ``rate-limit=RPS``: a gateway token bucket (burst ``max(1, RPS/10)``) answering 429.
- ``queue=N``: ``OLLAMA_MAX_QUEUE``: 503 when more than N requests already wait for a load.
- ``runner-crash=old|new``: loads fail with 500 ``… process has terminated: exit status 2``.
- ``oom=old|new|killed``: loads fail with 500 and an out-of-memory message.
- ``mid-stream-error=MESSAGE``: one token, then ``{"error": MESSAGE}`` on the 200 stream.
- ``hang``: read the request and never answer; ``hang-after-headers``: send headers only.
- ``garbage``: 200 JSON responses carry non-JSON bytes; ``truncated-json``: JSON cut in half.
- ``html``: every path answers nginx's HTML welcome page with ``Server: nginx``.
- ``slow-generate=SECONDS``: generation takes that long before the final object.
- ``offload=PERCENT``: share of the model on the GPU (``/api/ps`` ``size_vram``, log lines).
- ``cloud=signin|quota``: ``:cloud``/``-cloud`` models answer 401 (``signin_url``) or 429.
- ``version=X.Y.Z``, ``context=N`` (every model's context length), ``seed=N``.

Every configured delay is multiplied by ``EmulatorConfig.time_scale``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import math
import os
import posixpath
import random
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TextIO, TypeVar
from urllib.parse import unquote, urlsplit

__all__ = [
    "FAULTS",
    "Emulator",
    "EmulatorConfig",
    "FaultInfo",
    "LoadedModel",
    "ModelSpec",
    "RequestRecord",
    "parse_fault",
    "serve_forever",
]

_T = TypeVar("_T")

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
RECORD_BODY_BYTES = 64 * 1024
MAX_RECORDS = 20_000  # oldest half dropped beyond this, so a long benchmark cannot eat memory

_CHUNKING_THRESHOLD = 2048  # Go net/http: bodies above its buffer go out chunked
_DEFAULT_COLD_LOAD = 0.05
_DEFAULT_KEEP_ALIVE = 300.0
_DEFAULT_QUEUE = 512
_WARM_LOAD_NS = 2_000_000  # scheduler overhead reported on a warm call ("a few ms")
_TOKEN_SECONDS = 0.01  # per generated token at time_scale 1 (100 tokens/s on the GPU)
_PROMPT_TOKEN_SECONDS = 0.00005  # per prompt token
_EMBED_DIMS = 32
_NUM_KEEP = 4
_ANSWER = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
_JSON_ANSWER = ('{"', "answer", '":"', "Hello", '!"}')
_DEFAULT_MID_STREAM = "an error was encountered while running the model: unexpected EOF"
_BUSY = "server busy, please try again.  maximum pending requests exceeded"
_NOT_FOUND_404 = b"404 page not found"
_NOT_ALLOWED_405 = b"405 method not allowed"
_GARBAGE = b"\x00\x1f\x8b\x08garbage<<not json>>\xff\xfe\n"
_MODEL_SIZE = 2019393189
_EMBED_SIZE = 274302450
_CAPABILITIES = (
    "completion",
    "tools",
    "insert",
    "vision",
    "embedding",
    "thinking",
    "image",
    "audio",
)

_CT_JSON = "application/json; charset=utf-8"
_CT_TEXT = "text/plain; charset=utf-8"
_CT_NDJSON = "application/x-ndjson"

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*){0,2}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)(b?)$", re.IGNORECASE)
_PARAMS_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmbt]?)$", re.IGNORECASE)


def _split_name(name: str) -> tuple[str, str] | None:
    """Split an Ollama model reference into (path, tag) in display form, or None if invalid.

    Mirrors ``types/model/name.go``: the default host ``registry.ollama.ai`` and namespace
    ``library`` are dropped, and a missing tag means ``latest`` (facts §1.2).
    """
    if not name or any(c.isspace() for c in name):
        return None
    path, tag = name, "latest"
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        path, tag = name[:colon], name[colon + 1 :]
    low = path.lower()
    if low.startswith("registry.ollama.ai/"):
        path = path[len("registry.ollama.ai/") :]
        low = path.lower()
    if low.startswith("library/"):
        path = path[len("library/") :]
    if not _NAME_RE.match(path) or not _TAG_RE.match(tag):
        return None
    return path, tag


def _display(name: str) -> str | None:
    parts = _split_name(name)
    return None if parts is None else f"{parts[0]}:{parts[1]}"


def _parse_size(text: str) -> int:
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise ValueError(f"bad size {text!r}: use bytes or a number with K/M/G/T (e.g. 2.0G)")
    number, unit, binary, _b = m.groups()
    if binary and not unit:
        raise ValueError(f"bad size {text!r}: use bytes or a number with K/M/G/T (e.g. 2.0G)")
    power = " kmgt".index(unit.lower()) if unit else 0
    base = 1024 if binary else 1000
    return int(float(number) * base**power)


@dataclass
class ModelSpec:
    """One installed model, as ``/api/tags`` and ``/api/show`` describe it."""

    name: str  # display form, always with tag, e.g. "llama3.2:latest"
    size: int  # bytes
    family: str = "llama"
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    capabilities: tuple[str, ...] = ("completion", "tools")
    context_length: int = 4096

    @property
    def is_cloud(self) -> bool:
        """``…:cloud`` and ``…-cloud`` models are relayed to ollama.com by a real server."""
        return _is_cloud_name(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.lower().encode()).hexdigest()

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        """Parse ``NAME[:TAG][;key=value…]`` (keys: size, family, params, quant, caps, ctx).

        ``size`` takes bytes or a number with K/M/G/T (decimal; ``KiB``/``MiB``/``GiB`` are
        binary). ``caps`` is separated by commas or ``+``. A missing tag means ``:latest``; names
        containing ``embed`` default to the ``embedding`` capability.
        """
        parts = spec.strip().split(";")
        raw_name = parts[0].strip()
        display = _display(raw_name)
        if display is None:
            raise ValueError(f"bad model name {raw_name!r} in model spec {spec!r}")
        embed = "embed" in display.lower()
        kwargs: dict[str, Any] = {}
        for item in parts[1:]:
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise ValueError(f"bad model option {item!r}: expected key=value")
            if key == "size":
                kwargs["size"] = _parse_size(value)
            elif key == "family":
                kwargs["family"] = value
            elif key == "params":
                if not _PARAMS_RE.match(value):
                    raise ValueError(f"bad params {value!r}: expected e.g. 3.2B or 137M")
                kwargs["parameter_size"] = value.upper()
            elif key == "quant":
                kwargs["quantization_level"] = value
            elif key == "caps":
                caps = tuple(c.strip().lower() for c in re.split(r"[,+]", value) if c.strip())
                bad = [c for c in caps if c not in _CAPABILITIES]
                if bad or not caps:
                    raise ValueError(
                        f"bad capability {', '.join(bad) or value!r}: "
                        f"valid are {', '.join(_CAPABILITIES)}"
                    )
                kwargs["capabilities"] = caps
            elif key == "ctx":
                if not value.isdigit() or int(value) <= 0:
                    raise ValueError(f"bad ctx {value!r}: expected a positive integer")
                kwargs["context_length"] = int(value)
            else:
                raise ValueError(
                    f"unknown model option {key!r}: valid are size, family, params, quant, "
                    "caps, ctx"
                )
        kwargs.setdefault("size", _EMBED_SIZE if embed else _MODEL_SIZE)
        if embed:
            kwargs.setdefault("capabilities", ("embedding",))
            kwargs.setdefault("parameter_size", "137M")
            kwargs.setdefault("quantization_level", "F16")
        return cls(name=display, **kwargs)


def _is_cloud_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(":cloud") or low.endswith("-cloud")


def _parameter_count(parameter_size: str) -> int:
    m = _PARAMS_RE.match(parameter_size.strip())
    if not m:
        return 0
    scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _layer_count(spec: ModelSpec) -> int:
    params = _parameter_count(spec.parameter_size)
    for limit, layers in ((2 * 10**9, 17), (4 * 10**9, 29), (9 * 10**9, 33), (15 * 10**9, 41)):
        if params < limit:
            return layers
    return 81


def _default_models() -> list[ModelSpec]:
    return [ModelSpec.parse(f"llama3.2:latest;size={_MODEL_SIZE}")]


# --------------------------------------------------------------------------------------------
# Configuration and faults
# --------------------------------------------------------------------------------------------


@dataclass
class EmulatorConfig:
    models: list[ModelSpec] = field(default_factory=_default_models)
    faults: dict[str, str] = field(default_factory=dict)  # name -> value ("" if none)
    version: str = "0.33.0"
    bind: str = "127.0.0.1"
    port: int = 0
    log_file: str | None = None  # Ollama-format log lines are appended here
    time_scale: float = 1.0  # multiplies every configured delay


@dataclass(frozen=True)
class FaultInfo:
    name: str
    value_help: str  # "" when the fault takes no value
    description: str


_ORIGIN_SCHEMES = (
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)
_BUILTIN_ORIGINS = (
    *(
        f"{scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for scheme, port in (("http", ""), ("https", ""), ("http", ":*"), ("https", ":*"))
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)


def _origin_entries(value: str) -> list[str]:
    """OLLAMA_ORIGINS as Ollama reads it: outer spaces/quotes trimmed, split without trimming."""
    value = value.strip().strip("\"'")
    if not value:
        return []
    entries = value.split(",")
    for entry in entries:
        if "*" not in entry and not entry.startswith(_ORIGIN_SCHEMES):
            # The real server panics at startup with this message (gin-contrib/cors Validate).
            raise ValueError(
                "bad origin: origins must contain '*' or include " + ",".join(_ORIGIN_SCHEMES)
            )
        if entry.count("*") > 1:
            raise ValueError("only one * is allowed")
    return entries


def _check_float(lo: float, hi: float = math.inf) -> Callable[[str], None]:
    def check(value: str) -> None:
        number = float(value)
        if not (lo <= number <= hi) or math.isnan(number):
            raise ValueError

    return check


def _check_int(lo: int, hi: int | None = None) -> Callable[[str], None]:
    def check(value: str) -> None:
        number = int(value)
        if number < lo or (hi is not None and number > hi):
            raise ValueError

    return check


def _check_choice(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value.lower() not in choices:
            raise ValueError

    return check


def _check_empty(value: str) -> None:
    if value:
        raise ValueError


def _check_nonempty(value: str) -> None:
    if not value:
        raise ValueError


def _check_version(value: str) -> None:
    if not re.match(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.\-]+)?$", value):
        raise ValueError


def _check_positive(value: str) -> None:
    if float(value) <= 0 or not math.isfinite(float(value)):
        raise ValueError


def _check_origins(value: str) -> None:
    _origin_entries(value)


_FAULT_TABLE: tuple[tuple[FaultInfo, Callable[[str], None]], ...] = (
    (
        FaultInfo("cold-load", "SECONDS", "time to load a model that is not loaded (default 0.05)"),
        _check_float(0),
    ),
    (FaultInfo("latency", "MS", "delay before every response"), _check_float(0)),
    (
        FaultInfo("jitter", "MS", "extra uniform random delay before every response (seeded)"),
        _check_float(0),
    ),
    (
        FaultInfo("drop-rate", "FRACTION", "close the connection without answering (seeded)"),
        _check_float(0, 1),
    ),
    (
        FaultInfo("auth", "TOKEN", "auth proxy in front: 401 unless 'Authorization: Bearer TOKEN'"),
        _check_nonempty,
    ),
    (
        FaultInfo("origins", "LIST", "OLLAMA_ORIGINS: extra allowed CORS origins ('*' = all)"),
        _check_origins,
    ),
    (
        FaultInfo(
            "host-check",
            "on|off",
            "force the Host-header check on or off (default: on when bound to loopback)",
        ),
        _check_choice("on", "off"),
    ),
    (
        FaultInfo(
            "rate-limit", "RPS", "gateway token bucket (burst max(1, RPS/10)): 429 beyond it"
        ),
        _check_positive,
    ),
    (
        FaultInfo("queue", "N", "OLLAMA_MAX_QUEUE: 503 when more than N requests wait for a load"),
        _check_int(0),
    ),
    (
        FaultInfo(
            "runner-crash",
            "old|new",
            "model loads fail: 500 '… process has terminated: exit status 2'",
        ),
        _check_choice("", "old", "new"),
    ),
    (
        FaultInfo("oom", "old|new|killed", "model loads fail: 500 with an out-of-memory message"),
        _check_choice("", "old", "new", "killed"),
    ),
    (
        FaultInfo(
            "mid-stream-error",
            "MESSAGE",
            'one token, then {"error": MESSAGE} on the 200 stream (500 with stream:false)',
        ),
        lambda value: None,
    ),
    (FaultInfo("hang", "", "read the request, never answer"), _check_empty),
    (
        FaultInfo("hang-after-headers", "", "send the response headers, never the body"),
        _check_empty,
    ),
    (FaultInfo("garbage", "", "200 JSON responses carry non-JSON bytes"), _check_empty),
    (
        FaultInfo("truncated-json", "", "JSON bodies cut in half (Content-Length honest)"),
        _check_empty,
    ),
    (
        FaultInfo("html", "", "every path answers an nginx HTML page with 'Server: nginx'"),
        _check_empty,
    ),
    (
        FaultInfo("slow-generate", "SECONDS", "generation takes this long before the final object"),
        _check_float(0),
    ),
    (
        FaultInfo("offload", "PERCENT", "share of each model on the GPU (0 = CPU only)"),
        _check_int(0, 100),
    ),
    (
        FaultInfo("cloud", "signin|quota", "cloud models answer 401 with signin_url, or 429 quota"),
        _check_choice("", "signin", "quota"),
    ),
    (FaultInfo("version", "X.Y.Z", "version reported by /api/version and the log"), _check_version),
    (FaultInfo("context", "N", "override every model's context length"), _check_int(1)),
    (
        FaultInfo("seed", "N", "seed for jitter, drop-rate and ids (default 0)"),
        _check_int(-(2**63)),
    ),
)

FAULTS: tuple[FaultInfo, ...] = tuple(info for info, _check in _FAULT_TABLE)
_FAULT_CHECKS: dict[str, tuple[FaultInfo, Callable[[str], None]]] = {
    info.name: (info, check) for info, check in _FAULT_TABLE
}


def _validate_fault(name: str, value: str) -> tuple[str, str]:
    name = name.strip().lower().replace("_", "-")
    entry = _FAULT_CHECKS.get(name)
    if entry is None:
        raise ValueError(
            f"unknown fault {name!r}; valid faults: {', '.join(f.name for f in FAULTS)}"
        )
    info, check = entry
    try:
        check(value)
    except ValueError as exc:
        expected = f"expected {name}={info.value_help}" if info.value_help else "takes no value"
        reason = f" ({exc})" if name == "origins" else ""
        raise ValueError(f"bad value {value!r} for fault {name}{reason}: {expected}") from None
    return name, value


def parse_fault(spec: str) -> tuple[str, str]:
    """``"cold-load=3"`` -> ``("cold-load", "3")``; ``"hang"`` -> ``("hang", "")``.

    Raises ValueError naming the valid faults (unknown name) or the expected value (bad value).
    """
    name, _sep, value = spec.partition("=")
    return _validate_fault(name, value)


@dataclass(frozen=True)
class _Faults:
    """The fault dict, interpreted once per change (the hot path only reads attributes)."""

    cold_load: float = _DEFAULT_COLD_LOAD
    latency: float = 0.0  # seconds, unscaled
    jitter: float = 0.0
    drop_rate: float = 0.0
    auth: str | None = None
    origins: tuple[str, ...] = ()
    allow_all_origins: bool = False
    host_check: str | None = None
    rate: float | None = None
    queue: int = _DEFAULT_QUEUE
    runner_crash: str | None = None
    oom: str | None = None
    mid_stream_error: str | None = None
    hang: bool = False
    hang_after_headers: bool = False
    garbage: bool = False
    truncated_json: bool = False
    html: bool = False
    slow_generate: float | None = None
    offload: int | None = None
    cloud: str | None = None
    version: str = "0.33.0"
    context: int | None = None
    seed: int = 0

    @classmethod
    def build(cls, raw: dict[str, str], version: str) -> _Faults:
        g = raw.get
        origins = tuple(e.lower() for e in _origin_entries(g("origins", "")))
        return cls(
            cold_load=float(g("cold-load", str(_DEFAULT_COLD_LOAD))),
            latency=float(g("latency", "0")) / 1000,
            jitter=float(g("jitter", "0")) / 1000,
            drop_rate=float(g("drop-rate", "0")),
            auth=g("auth"),
            origins=origins + tuple(_BUILTIN_ORIGINS),
            allow_all_origins="*" in origins,
            host_check=g("host-check", "").lower() or None,
            rate=float(raw["rate-limit"]) if "rate-limit" in raw else None,
            queue=int(raw["queue"]) if "queue" in raw else _DEFAULT_QUEUE,
            runner_crash=(g("runner-crash") or "new").lower() if "runner-crash" in raw else None,
            oom=(g("oom") or "new").lower() if "oom" in raw else None,
            mid_stream_error=(g("mid-stream-error") or _DEFAULT_MID_STREAM)
            if "mid-stream-error" in raw
            else None,
            hang="hang" in raw,
            hang_after_headers="hang-after-headers" in raw,
            garbage="garbage" in raw,
            truncated_json="truncated-json" in raw,
            html="html" in raw,
            slow_generate=float(raw["slow-generate"]) if "slow-generate" in raw else None,
            offload=int(raw["offload"]) if "offload" in raw else None,
            cloud=(g("cloud") or "signin").lower() if "cloud" in raw else None,
            version=g("version") or version,
            context=int(raw["context"]) if "context" in raw else None,
            seed=int(g("seed", "0")),
        )


class _Bucket:
    """Token bucket: ``rate`` tokens/s, burst ``max(1, rate/10)``, starts full."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate / 10)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# --------------------------------------------------------------------------------------------
# Records and loaded models (inspectable from tests)
# --------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: bytes  # first 64 KiB
    time: float  # time.time() when the headers were read
    query: str = ""


@dataclass
class LoadedModel:
    """A runner: a model in memory with the options it was loaded with."""

    name: str  # display name
    spec: ModelSpec
    num_ctx: int
    num_gpu: int
    num_batch: int
    size: int  # bytes in memory (weights + KV cache)
    size_vram: int
    state: str  # "loading" | "ready"
    keep_alive: float  # seconds; math.inf = forever
    expires_at: float  # time.time(); math.inf = forever
    refs: int = 0

    @property
    def options(self) -> tuple[int, int, int]:
        return (self.num_ctx, self.num_gpu, self.num_batch)

    def expired(self, now: float) -> bool:
        return self.state == "ready" and self.refs == 0 and self.expires_at <= now


# --------------------------------------------------------------------------------------------
# Formatting helpers: Go JSON, Go durations, time stamps, log lines
# --------------------------------------------------------------------------------------------

_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _gojson(obj: Any) -> bytes:
    """``json.Marshal`` output: compact, UTF-8, and HTML-escaped like Go does by default."""
    text = _JSON_ENCODER.encode(obj)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text.encode()


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if ns < div * 1000:
                whole, frac = divmod(ns, div)
                digits = len(str(div)) - 1
                text = str(whole)
                if frac and digits:
                    text += "." + f"{frac:0{digits}d}".rstrip("0")
                return sign + text + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds, frac = divmod(rest, 1_000_000_000)
    text = f"{seconds}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    text += "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _rfc3339(dt: datetime) -> str:
    """Go's RFC3339Nano: fraction trimmed, ``Z`` for UTC."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    offset = dt.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def _utcnow() -> str:
    return _rfc3339(datetime.now(timezone.utc))


def _far_future() -> datetime:
    # Go: now + MaxInt64 ns (~292 years) for keep_alive < 0.
    return datetime.now().astimezone() + timedelta(microseconds=(2**63 - 1) // 1000)


def _gib(n: float) -> str:
    """Ollama's ``format.HumanBytes2``."""
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: list[Any] = [-1, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        t = time.gmtime(now)
        _date_cache[1] = (
            f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
        _date_cache[0] = now
    return str(_date_cache[1])


def _slog_value(value: object) -> str:
    text = str(value)
    if not text or any(c in ' ="' or not c.isprintable() for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _Log:
    """Appends Ollama-format lines to a file; thread-safe, flushed per line."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._fh: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        return self._fh is not None

    def raw(self, line: str) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()

    def slog(self, level: str, source: str, msg: str, **attrs: object) -> None:
        if self._fh is None:
            return
        stamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
        if stamp.endswith("+00:00"):
            stamp = stamp[:-6] + "Z"
        parts = [f"time={stamp}", f"level={level}", f"source={source}", f"msg={_slog_value(msg)}"]
        parts += [f"{k}={_slog_value(v)}" for k, v in attrs.items()]
        self.raw(" ".join(parts))

    def gin(self, status: int, latency_ns: int, client_ip: str, method: str, path: str) -> None:
        """gin v1.10 ``defaultLogFormatter`` without colours."""
        if self._fh is None:
            return
        if latency_ns > 60_000_000_000:
            latency_ns -= latency_ns % 1_000_000_000
        stamp = datetime.now().strftime("%Y/%m/%d - %H:%M:%S")
        self.raw(
            f"[GIN] {stamp} | {status:3d} | {_go_duration(latency_ns):>13} | {client_ip:>15} |"
            f" {method:<7}  {json.dumps(path, ensure_ascii=False)}"
        )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


# --------------------------------------------------------------------------------------------
# Go-compatible request decoding
# --------------------------------------------------------------------------------------------


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body  # sent verbatim (cloud passthrough), whatever the endpoint


def _quote_char(c: str) -> str:
    """encoding/json's ``quoteChar``."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    escapes = {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
    }
    if c in escapes:
        return f"'{escapes[c]}'"
    code = ord(c)
    if code < 0x20 or code == 0x7F:
        return f"'\\x{code:02x}'"
    if not c.isprintable():
        return f"'\\u{code:04x}'"
    return f"'{c}'"


def _go_syntax_error(text: str) -> str:
    """The message Go's ``json.Decoder`` gives for the first syntax error in ``text``."""
    n = len(text)

    class _Stop(Exception):
        pass

    def fail(i: int, context: str) -> None:
        raise _Stop(f"invalid character {_quote_char(text[i])} {context}")

    def need(i: int) -> None:
        if i >= n:
            raise _Stop("unexpected EOF")

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def digits(i: int) -> int:
        while i < n and "0" <= text[i] <= "9":
            i += 1
        return i

    def string(i: int) -> int:
        i += 1
        while True:
            need(i)
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\":
                i += 1
                need(i)
                if text[i] == "u":
                    for _ in range(4):
                        i += 1
                        need(i)
                        if text[i] not in "0123456789abcdefABCDEF":
                            fail(i, "in \\u hexadecimal character escape")
                elif text[i] not in '"\\/bfnrt':
                    fail(i, "in string escape code")
                i += 1
            elif ord(c) < 0x20:
                fail(i, "in string literal")
            else:
                i += 1

    def value(i: int) -> int:
        i = skip(i)
        need(i)
        c = text[i]
        if c == "{":
            i = skip(i + 1)
            need(i)
            if text[i] == "}":
                return i + 1
            while True:
                if text[i] != '"':
                    fail(i, "looking for beginning of object key string")
                i = skip(string(i))
                need(i)
                if text[i] != ":":
                    fail(i, "after object key")
                i = skip(value(i + 1))
                need(i)
                if text[i] == "}":
                    return i + 1
                if text[i] != ",":
                    fail(i, "after object key:value pair")
                i = skip(i + 1)
                need(i)
        if c == "[":
            i = skip(i + 1)
            need(i)
            if text[i] == "]":
                return i + 1
            while True:
                i = skip(value(i))
                need(i)
                if text[i] == "]":
                    return i + 1
                if text[i] != ",":
                    fail(i, "after array element")
                i += 1
        if c == '"':
            return string(i)
        if c == "-" or "0" <= c <= "9":
            if c == "-":
                i += 1
                need(i)
                if not "0" <= text[i] <= "9":
                    fail(i, "in numeric literal")
            i = i + 1 if text[i] == "0" else digits(i)
            if i < n and text[i] == ".":
                i += 1
                need(i)
                if not "0" <= text[i] <= "9":
                    fail(i, "after decimal point in numeric literal")
                i = digits(i)
            if i < n and text[i] in "eE":
                i += 1
                if i < n and text[i] in "+-":
                    i += 1
                need(i)
                if not "0" <= text[i] <= "9":
                    fail(i, "in exponent of numeric literal")
                i = digits(i)
            return i
        for word in ("true", "false", "null"):
            if c == word[0]:
                for k in range(1, len(word)):
                    need(i + k)
                    if text[i + k] != word[k]:
                        fail(i + k, f"in literal {word} (expecting {_quote_char(word[k])})")
                return i + len(word)
        fail(i, "looking for beginning of value")
        return i  # unreachable

    try:
        value(0)
    except _Stop as stop:
        return str(stop)
    except RecursionError:
        return "exceeded max depth"
    return "unexpected EOF"


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_json(body: bytes) -> Any:
    """Decode the first JSON value like gin's ``ShouldBindJSON`` (trailing bytes ignored)."""
    text = body.decode("utf-8", errors="replace")
    start = 0
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    if start == len(text):
        raise _HTTPError(400, "missing request body")
    try:
        obj, _end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        raise _HTTPError(400, _go_syntax_error(text[start:])) from None
    return obj


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_KIND_OK: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "*bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


def _bind(body: bytes, struct: str, fields: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Decode a request body into the known fields of a Go struct.

    ``fields`` maps json name -> (kind, Go type for error messages). Like encoding/json, key
    matching is case-insensitive, the last duplicate wins, null leaves the zero value, and the
    first type error is reported.
    """
    obj = _decode_json(body)
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise _HTTPError(
            400, f"json: cannot unmarshal {_json_kind(obj)} into Go value of type api.{struct}"
        )
    out: dict[str, Any] = {}
    error: str | None = None
    for key, value in obj.items():
        name = key.lower()
        if name not in fields:
            continue
        if value is None:
            out.pop(name, None)
            continue
        kind, gotype = fields[name]
        if name == "keep_alive":
            try:
                out[name] = _keep_alive(value)
            except ValueError as exc:
                error = error or str(exc)
            continue
        if not _KIND_OK[kind](value):
            error = error or (
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"{struct}.{name} of type {gotype}"
            )
            continue
        out[name] = value
    if error:
        raise _HTTPError(400, error)
    return out


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _go_parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds."""
    quoted = json.dumps(text, ensure_ascii=False)
    s, negative = text, False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while s:
        m = re.match(r"(\d*)(?:\.(\d*))?", s)
        assert m is not None
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        s = s[m.end() :]
        unit_match = re.match(r"[^\d.]*", s)
        unit = unit_match.group(0) if unit_match else ""
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        total += float(f"{whole or '0'}.{frac or '0'}") * _DURATION_UNITS[unit]
        s = s[len(unit) :]
    return -total if negative else total


def _keep_alive(value: Any) -> float:
    """``api.Duration.UnmarshalJSON``: number = seconds, string = Go duration, < 0 = forever."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        gotype = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
        raise ValueError(f"Unsupported type: '{gotype.get(type(value), 'string')}'")
    seconds = float(value) if not isinstance(value, str) else _go_parse_duration(value)
    return math.inf if seconds < 0 else seconds


_GENERATE_FIELDS = {
    "model": ("string", "string"),
    "prompt": ("string", "string"),
    "suffix": ("string", "string"),
    "system": ("string", "string"),
    "template": ("string", "string"),
    "context": ("array", "[]int"),
    "stream": ("*bool", "bool"),
    "raw": ("bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "images": ("array", "[]api.ImageData"),
    "options": ("object", "map[string]interface {}"),
    "think": ("any", "api.ThinkValue"),
}
_CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("array", "[]api.Message"),
    "stream": ("*bool", "bool"),
    "format": ("any", "json.RawMessage"),
    "keep_alive": ("any", "api.Duration"),
    "tools": ("array", "api.Tools"),
    "options": ("object", "map[string]interface {}"),
    "think": ("any", "api.ThinkValue"),
}
_EMBED_FIELDS = {
    "model": ("string", "string"),
    "input": ("any", "interface {}"),
    "keep_alive": ("any", "api.Duration"),
    "truncate": ("*bool", "bool"),
    "options": ("object", "map[string]interface {}"),
}
_EMBEDDINGS_FIELDS = {
    "model": ("string", "string"),
    "prompt": ("string", "string"),
    "keep_alive": ("any", "api.Duration"),
    "options": ("object", "map[string]interface {}"),
}
_SHOW_FIELDS = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "verbose": ("bool", "bool"),
    "system": ("string", "string"),
}
_PULL_FIELDS = {
    "model": ("string", "string"),
    "name": ("string", "string"),
    "stream": ("*bool", "bool"),
    "insecure": ("bool", "bool"),
}
_OPENAI_CHAT_FIELDS = {
    "model": ("string", "string"),
    "messages": ("array", "[]openai.Message"),
    "stream": ("bool", "bool"),
    "max_tokens": ("int", "*int"),
    "max_completion_tokens": ("int", "*int"),
    "tools": ("array", "[]api.Tool"),
    "temperature": ("any", "*float64"),
    "seed": ("any", "*int"),
}


# --------------------------------------------------------------------------------------------
# Connection I/O
# --------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status_line: str, body: str) -> None:
        super().__init__(body)
        self.status_line = status_line
        self.body = body


class _ClientGone(Exception):
    pass


class _Conn:
    """A connection with its own read buffer, so a disconnect watcher can read ahead."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        peer = writer.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_head(self) -> bytes | None:
        scan = 0
        while True:
            idx = self.buf.find(b"\r\n\r\n", scan)
            if idx >= 0:
                if idx > MAX_HEADER_BYTES:
                    raise _BadRequest("431 Request Header Fields Too Large", "")
                head = bytes(self.buf[:idx])
                del self.buf[: idx + 4]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise _BadRequest("431 Request Header Fields Too Large", "")
            # Go reads the request line first and answers a malformed one at once; a TLS
            # ClientHello (record type 0x16) is malformed from its first byte. That quick
            # 400 is what clients print as "SSL: WRONG_VERSION_NUMBER".
            if self.buf[:1] == b"\x16" or (
                b"\n" in self.buf and not _REQUEST_LINE.match(bytes(self.buf.split(b"\n", 1)[0]))
            ):
                raise _BadRequest("400 Bad Request", "")
            scan = max(0, len(self.buf) - 3)
            if not await self._fill():
                if self.buf.strip():
                    raise _ClientGone
                return None

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise _ClientGone
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return line
            if len(self.buf) > 4096 or not await self._fill():
                raise _ClientGone

    async def wait_eof(self) -> None:
        """Return once the peer has closed (reading ahead into the buffer meanwhile)."""
        while not self.eof:
            if len(self.buf) > MAX_BODY_BYTES:
                await asyncio.sleep(0.05)  # a pipelining client: stop buffering, keep waiting
                continue
            await self._fill()


@dataclass
class _Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    start: float  # perf_counter at the end of the headers
    keep_alive: bool


_REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_STATUS_LINES = {code: f"HTTP/1.1 {code} {text}\r\n" for code, text in _REASONS.items()}


def _status_line(code: int) -> str:
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"HTTP/1.1 {code} status code {code}\r\n"


_REQUEST_LINE = re.compile(rb"^[A-Za-z]+ \S+ HTTP/\d\.\d\r?$")


def _parse_head(head: bytes, start: float) -> _Request:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise _BadRequest("400 Bad Request", "") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _BadRequest("400 Bad Request", "")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise _BadRequest("505 HTTP Version Not Supported", "unsupported protocol version")
        raise _BadRequest("400 Bad Request", "")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise _BadRequest("400 Bad Request", "malformed MIME header line: " + line)
        key = name.lower()
        value = value.strip(" \t")
        if key in headers and key != "host":
            headers[key] = headers[key] + ", " + value
        elif key not in headers:
            headers[key] = value
        elif key == "host":
            raise _BadRequest("400 Bad Request", "too many Host headers")
    if version == "HTTP/1.1" and "host" not in headers:
        raise _BadRequest("400 Bad Request", "missing required Host header")
    if not target.startswith("/"):
        if target.startswith(("http://", "https://")):
            split = urlsplit(target)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        elif target != "*":
            raise _BadRequest("400 Bad Request", "")
    raw_path, _sep, query = target.partition("?")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return _Request(
        method=method,
        target=target,
        path=unquote(raw_path),
        query=query,
        version=version,
        headers=headers,
        body=b"",
        start=start,
        keep_alive=keep,
    )


def _clean_path(path: str) -> str:
    """Go's ``cleanPath`` (``http.ServeMux`` redirects unclean paths with a 301)."""
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    cleaned = posixpath.normpath(re.sub(r"/{2,}", "/", path))
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


# Route table: path -> methods in gin's tree order (HEAD, GET, POST, DELETE: the order in which
# routes.go first registers each method). Order matters for the 405 ``Allow`` header.
_TREE_ORDER = ("HEAD", "GET", "POST", "DELETE")
_ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("HEAD", "GET"),
    "/api/version": ("HEAD", "GET"),
    "/api/status": ("GET",),
    "/api/pull": ("POST",),
    "/api/push": ("POST",),
    "/api/tags": ("HEAD", "GET"),
    "/api/show": ("POST",),
    "/api/delete": ("DELETE",),
    "/api/me": ("POST",),
    "/api/signout": ("POST",),
    "/api/create": ("POST",),
    "/api/copy": ("POST",),
    "/api/ps": ("GET",),
    "/api/generate": ("POST",),
    "/api/chat": ("POST",),
    "/api/embed": ("POST",),
    "/api/embeddings": ("POST",),
    "/v1/chat/completions": ("POST",),
    "/v1/completions": ("POST",),
    "/v1/embeddings": ("POST",),
    "/v1/responses": ("POST",),
    "/v1/messages": ("POST",),
    "/v1/audio/transcriptions": ("POST",),
    "/v1/models": ("GET",),
}
_PARAM_ROUTES: dict[str, tuple[str, ...]] = {
    "/api/blobs/": ("HEAD", "POST"),
    "/v1/models/": ("GET",),
}


def _route(path: str) -> tuple[str, tuple[str, ...], str] | None:
    """(route key, methods, path parameter) for ``path``, or None."""
    methods = _ROUTES.get(path)
    if methods is not None:
        return path, methods, ""
    for prefix, methods in _PARAM_ROUTES.items():
        if path.startswith(prefix):
            param = path[len(prefix) :]
            if param and "/" not in param:
                return prefix + ":param", methods, param
    return None


_PREFLIGHT_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "Openai-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-Os",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    ]
)

_NGINX_PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

_LICENSE = (
    "EMULATED MODEL COMMUNITY LICENSE AGREEMENT\n\n"
    "This model is served by the ollama-doctor emulator. No weights are distributed.\n\n"
    + "\n\n".join(
        f"{n}. Section {n}. The emulated licensor grants you a non-exclusive, worldwide, "
        "non-transferable and royalty-free limited license under the emulated licensor's "
        "intellectual property embodied in these materials to use, reproduce, distribute, "
        "copy, create derivative works of, and make modifications to them."
        for n in range(1, 9)
    )
)

_GO_NETS_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _host_without_port(host: str) -> str:
    """``net.SplitHostPort`` falling back to the whole value, as allowedHostsMiddleware does."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0 and host[end + 1 : end + 2] == ":":
            return host[1:end]
        return host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class _Hung(Exception):
    """The response was deliberately left unfinished (hang-after-headers)."""


class _Responder:
    """Writes one response with Go net/http's framing and header order."""

    __slots__ = ("close", "conn", "extra", "f", "log", "logger", "req", "status", "streaming")

    def __init__(self, conn: _Conn, req: _Request, faults: _Faults) -> None:
        self.conn = conn
        self.req = req
        self.f = faults
        self.extra: list[tuple[str, str]] = []  # CORS headers set by the middleware
        self.status = 0
        self.close = not req.keep_alive
        self.streaming = False
        self.log = True  # False once the access line is written, or when gin never logs
        self.logger: Callable[[int], None] | None = None

    def finish_log(self) -> None:
        """Write the [GIN] line before the last bytes leave, so a reader of the log who has
        the full response also has its access line."""
        if self.log and self.logger is not None and self.status:
            self.log = False
            self.logger(self.status)

    def _head(
        self, status: int, headers: list[tuple[str, str]], length: int | None, chunked: bool
    ) -> bytes:
        # Go writes the handler's headers sorted by key, then Date, Content-Length,
        # Connection and Transfer-Encoding.
        all_headers = self.extra + headers if self.extra else headers
        if len(all_headers) > 1:
            all_headers = sorted(all_headers, key=lambda kv: kv[0])
        out = [_status_line(status)]
        out += [f"{k}: {v}\r\n" for k, v in all_headers]
        out.append(f"Date: {_http_date()}\r\n")
        if length is not None:
            out.append(f"Content-Length: {length}\r\n")
        if self.close:
            out.append("Connection: close\r\n")
        elif self.req.version == "HTTP/1.0":
            out.append("Connection: keep-alive\r\n")
        if chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        out.append("\r\n")
        return "".join(out).encode("latin-1")

    async def _hang(self, head: bytes) -> None:
        self.conn.writer.write(head)
        await self.conn.writer.drain()
        await self.conn.wait_eof()
        raise _Hung

    async def send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        is_json: bool = False,
    ) -> None:
        if is_json:
            if self.f.garbage and status == 200:
                body = _GARBAGE
            if self.f.truncated_json:
                body = body[: len(body) // 2]
        hdrs = list(headers)
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        self.status = status
        head_only = self.req.method == "HEAD"
        if status == 204 or status == 304:
            head = self._head(status, hdrs, None, False)
            payload = b""
        elif len(body) > _CHUNKING_THRESHOLD:
            head = self._head(status, hdrs, None, not head_only)
            payload = b"" if head_only else b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
        else:
            # Go omits Content-Length on a HEAD answer when the handler wrote nothing.
            length = None if head_only and not body else len(body)
            head = self._head(status, hdrs, length, False)
            payload = b"" if head_only else body
        if self.f.hang_after_headers:
            await self._hang(head)
        self.finish_log()
        self.conn.writer.write(head + payload if payload else head)

    async def send_json(self, status: int, obj: Any) -> None:
        await self.send(status, _gojson(obj), _CT_JSON, is_json=True)

    async def error(self, status: int, message: str) -> None:
        await self.send_json(status, {"error": message})

    async def start_stream(self, content_type: str) -> None:
        self.status = 200
        self.streaming = True
        head = self._head(200, [("Content-Type", content_type)], None, True)
        if self.f.hang_after_headers:
            await self._hang(head)
        self.conn.writer.write(head)
        await self.conn.writer.drain()

    async def chunk(self, data: bytes) -> None:
        self.conn.writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await self.conn.writer.drain()

    async def end_stream(self) -> None:
        self.finish_log()
        self.conn.writer.write(b"0\r\n\r\n")
        await self.conn.writer.drain()


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    req: _Request
    rsp: _Responder
    f: _Faults
    conn: _Conn
    param: str
    t0: float  # perf_counter when the handler started
    v1: bool = False  # OpenAI-compatible error shape


@dataclass
class _Options:
    num_ctx: int
    num_gpu: int
    num_batch: int
    num_predict: int
    num_keep: int


def _int_option(options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


class Emulator:
    """An Ollama look-alike on a real socket. ``start()`` runs it in a daemon thread."""

    def __init__(self, config: EmulatorConfig | None = None, **faults: str) -> None:
        base = config if config is not None else EmulatorConfig()
        raw: dict[str, str] = {}
        for name, value in list(base.faults.items()) + list(faults.items()):
            key, val = _validate_fault(name, str(value))
            raw[key] = val
        self.config = replace(base, faults=raw, models=list(base.models))
        self.host = self.config.bind
        self.port = self.config.port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._f = _Faults.build(raw, self.config.version)
        self._bucket = _Bucket(self._f.rate) if self._f.rate else None
        self._drop_rng = random.Random(self._f.seed)
        self._jitter_rng = random.Random(self._f.seed + 1)
        self._id_rng = random.Random(self._f.seed + 2)
        self._version_body = _gojson({"version": self._f.version})
        self._log = _Log(self.config.log_file)
        self._hostname = socket.gethostname().lower()
        self._epoch = time.time()
        self._pending = 0
        self._model_locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._stopped = False
        self._loopback = self._is_loopback_bind(self.config.bind)

    # ---- public control ------------------------------------------------------------------

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        """Models in memory (including ones still loading), by display name."""
        now = time.time()
        return {k: v for k, v in dict(self._loaded).items() if not v.expired(now)}

    @property
    def faults(self) -> dict[str, str]:
        return dict(self.config.faults)

    def set_fault(self, name: str, value: str = "") -> None:
        key, val = _validate_fault(name, value)
        with self._lock:
            raw = dict(self.config.faults)
            raw[key] = val
            self._apply_faults(raw)

    def clear_fault(self, name: str) -> None:
        key = name.strip().lower().replace("_", "-")
        with self._lock:
            raw = dict(self.config.faults)
            raw.pop(key, None)
            self._apply_faults(raw)

    def _apply_faults(self, raw: dict[str, str]) -> None:
        old = self._f
        new = _Faults.build(raw, self.config.version)
        self.config.faults = raw
        if new.rate != old.rate:
            self._bucket = _Bucket(new.rate) if new.rate else None
        if new.seed != old.seed:
            self._drop_rng = random.Random(new.seed)
            self._jitter_rng = random.Random(new.seed + 1)
            self._id_rng = random.Random(new.seed + 2)
        self._version_body = _gojson({"version": new.version})
        self._f = new

    def start(self) -> str:
        """Start listening in a daemon thread; return the base URL once listening."""
        if self._thread is not None:
            return self.url
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._run(ready, failure))
            except BaseException as exc:  # pragma: no cover - defensive
                failure.append(exc)
                ready.set()
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="ollama-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join(timeout=5)
            self._thread = None
            self._stopped = True
            raise failure[0]
        return self.url

    def stop(self) -> None:
        """Close the listener and every connection (hanging ones too); idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or self._stopped:
            return
        self._stopped = True
        event = self._stop_event
        if event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout=10)
        self._log.close()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- server lifecycle ------------------------------------------------------------------

    @staticmethod
    def _is_loopback_bind(bind: str) -> bool:
        if bind.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(bind.strip("[]")).is_loopback
        except ValueError:
            return False

    async def _open(self) -> None:
        self._stop_event = asyncio.Event()
        bind = self.config.bind.strip("[]")
        # One socket only: "localhost" or "" could bind two families on two ephemeral ports.
        listen_host = {"": "0.0.0.0", "localhost": "127.0.0.1"}.get(bind.lower(), bind)
        self._server = await asyncio.start_server(
            self._handle_conn,
            host=listen_host,
            port=self.config.port,
            limit=MAX_HEADER_BYTES + 1024,
            reuse_address=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        # ``host``/``url`` are what a client dials: the loopback address for a wildcard bind.
        if ":" in listen_host:
            unspecified = ipaddress.ip_address(listen_host).is_unspecified
            self.host = "::1" if unspecified else listen_host
            self.url = f"http://[{self.host}]:{self.port}"
        else:
            self.host = "127.0.0.1" if listen_host == "0.0.0.0" else listen_host
            self.url = f"http://{self.host}:{self.port}"
        self._log_startup(listen_host)

    async def _close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    async def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            await self._open()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        assert self._stop_event is not None
        await self._stop_event.wait()
        await self._close()

    def _log_startup(self, bind: str) -> None:
        if not self._log.enabled:
            return
        f = self._f
        host_for_env = f"[{bind}]" if ":" in bind else bind
        origins = " ".join(f.origins)
        env = {
            "CUDA_VISIBLE_DEVICES": "",
            "GPU_DEVICE_ORDINAL": "",
            "HIP_VISIBLE_DEVICES": "",
            "HSA_OVERRIDE_GFX_VERSION": "",
            "HTTPS_PROXY": "",
            "HTTP_PROXY": "",
            "NO_PROXY": "",
            "OLLAMA_CONTEXT_LENGTH": str(f.context or 0),
            "OLLAMA_DEBUG": "INFO",
            "OLLAMA_FLASH_ATTENTION": "false",
            "OLLAMA_GPU_OVERHEAD": "0",
            "OLLAMA_HOST": f"http://{host_for_env}:{self.port}",
            "OLLAMA_KEEP_ALIVE": "5m0s",
            "OLLAMA_KV_CACHE_TYPE": "",
            "OLLAMA_LLM_LIBRARY": "",
            "OLLAMA_LOAD_TIMEOUT": "5m0s",
            "OLLAMA_MAX_LOADED_MODELS": "0",
            "OLLAMA_MAX_QUEUE": str(f.queue),
            "OLLAMA_MODELS": os.path.expanduser("~/.ollama/models"),
            "OLLAMA_NOHISTORY": "false",
            "OLLAMA_NOPRUNE": "false",
            "OLLAMA_NO_CLOUD": "false",
            "OLLAMA_NUM_PARALLEL": "1",
            "OLLAMA_ORIGINS": f"[{origins}]",
            "OLLAMA_SCHED_SPREAD": "false",
            "ROCR_VISIBLE_DEVICES": "",
            "http_proxy": "",
            "https_proxy": "",
            "no_proxy": "",
        }
        env_text = "map[" + " ".join(f"{k}:{v}" for k, v in sorted(env.items())) + "]"
        self._log.slog("INFO", "routes.go:1951", "server config", env=env_text)
        self._log.slog("INFO", "images.go:522", "total blobs: " + str(2 * len(self.config.models)))
        self._log.slog("INFO", "routes.go:1992", "Ollama cloud disabled: false")
        listen = (
            f"[::]:{self.port}"
            if bind in ("0.0.0.0", "::", "")
            else (f"[{bind}]:{self.port}" if ":" in bind else f"{bind}:{self.port}")
        )
        self._log.slog("INFO", "routes.go:2008", f"Listening on {listen} (version {f.version})")
        self._log.slog("INFO", "runner.go:67", "discovering available GPUs...")
        if f.offload == 0:
            self._log.slog(
                "INFO",
                "types.go:60",
                "inference compute",
                id="cpu",
                library="cpu",
                compute="",
                name="cpu",
                description="cpu",
                libdirs="ollama",
                driver="",
                pci_id="",
                type="",
                total="31.3 GiB",
                available="24.6 GiB",
            )
        else:
            self._log.slog(
                "INFO",
                "types.go:42",
                "inference compute",
                id="GPU-5f1c8a3e-emulated",
                library="CUDA",
                compute="8.9",
                name="CUDA0",
                description="NVIDIA GeForce RTX 4060",
                libdirs="ollama,cuda_v12",
                driver="12.8",
                pci_id="0000:01:00.0",
                type="discrete",
                total="8.0 GiB",
                available="7.6 GiB",
            )
            self._log.slog(
                "INFO",
                "routes.go:2049",
                "vram-based default context",
                total_vram="8.0 GiB",
                default_num_ctx=4096,
            )

    # ---- connection handling ---------------------------------------------------------------

    async def _handle_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        conn = _Conn(reader, writer)
        try:
            while not self._closing:
                if not await self._serve_one(conn):
                    break
        except (_ClientGone, _Hung, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(self, conn: _Conn) -> bool:
        """Serve one request; return whether to keep the connection open."""
        try:
            head = await conn.read_head()
            if head is None:
                return False
            req = _parse_head(head, time.perf_counter())
            req.body = await self._read_body(conn, req)
        except _BadRequest as bad:
            body = bad.status_line + (": " + bad.body if bad.body else "")
            conn.writer.write(
                (
                    f"HTTP/1.1 {bad.status_line}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    f"Connection: close\r\n\r\n{body}"
                ).encode("latin-1", errors="replace")
            )
            await conn.writer.drain()
            return False
        self._record(req)
        f = self._f
        if f.hang:
            await conn.wait_eof()
            return False
        if f.drop_rate > 0 and self._drop_rng.random() < f.drop_rate:
            return False
        delay = f.latency
        if f.jitter > 0:
            delay += self._jitter_rng.uniform(0, f.jitter)
        if delay > 0:
            await asyncio.sleep(delay * self.config.time_scale)
        rsp = _Responder(conn, req, f)
        await self._respond(conn, req, rsp, f)
        if conn.writer.transport.get_write_buffer_size() > 65536:
            await conn.writer.drain()
        return not rsp.close

    async def _read_body(self, conn: _Conn, req: _Request) -> bytes:
        te = req.headers.get("transfer-encoding", "").lower()
        length_text = req.headers.get("content-length")
        if te:
            if te != "chunked":
                raise _BadRequest("501 Not Implemented", "unsupported transfer encoding")
            self._continue(conn, req)
            body = bytearray()
            while True:
                size_line = (await conn.read_line()).split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise _BadRequest("400 Bad Request", "") from None
                if size == 0:
                    while await conn.read_line():
                        pass
                    return bytes(body)
                if len(body) + size > MAX_BODY_BYTES:
                    raise _BadRequest("413 Request Entity Too Large", "")
                body += await conn.read_exact(size)
                await conn.read_exact(2)
        if length_text is None:
            return b""
        if not length_text.isdigit():
            raise _BadRequest("400 Bad Request", "bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _BadRequest("413 Request Entity Too Large", "")
        if length == 0:
            return b""
        self._continue(conn, req)
        return await conn.read_exact(length)

    @staticmethod
    def _continue(conn: _Conn, req: _Request) -> None:
        if req.headers.get("expect", "").lower() == "100-continue" and len(conn.buf) == 0:
            conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _record(self, req: _Request) -> None:
        self.requests.append(
            RequestRecord(
                method=req.method,
                path=req.path,
                headers=req.headers,
                body=req.body[:RECORD_BODY_BYTES],
                time=time.time(),
                query=req.query,
            )
        )
        if len(self.requests) > MAX_RECORDS:
            del self.requests[: MAX_RECORDS // 2]

    @staticmethod
    def _ns_since(start: float) -> int:
        return int((time.perf_counter() - start) * 1e9)

    @staticmethod
    def _client_ip(conn: _Conn, req: _Request) -> str:
        # gin trusts every proxy by default: X-Forwarded-For (leftmost), then X-Real-IP.
        for header in ("x-forwarded-for", "x-real-ip"):
            value = req.headers.get(header)
            if value:
                candidate = value.split(",")[0].strip()
                with contextlib.suppress(ValueError):
                    ipaddress.ip_address(candidate)
                    return candidate
        return conn.peer_ip

    @staticmethod
    def _log_path(req: _Request) -> str:
        return req.path + ("?" + req.query if req.query else "")

    # ---- the layers in front of the Ollama handlers -----------------------------------------

    async def _respond(self, conn: _Conn, req: _Request, rsp: _Responder, f: _Faults) -> None:
        if f.html:  # "not Ollama": some other web server on the port
            await self._send_nginx(rsp)
            return
        if f.auth is not None:
            scheme, _sep, token = req.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != f.auth:
                await rsp.send(
                    401,
                    b"401 Unauthorized",
                    "text/plain",
                    [("WWW-Authenticate", 'Bearer realm="ollama"')],
                )
                return
        if self._bucket is not None and not self._bucket.take():
            await rsp.send(
                429,
                b'{"error":"rate limit exceeded"}',
                "application/json",
                [("Retry-After", "1")],
            )
            return
        await self._ollama(conn, req, rsp, f)

    async def _send_nginx(self, rsp: _Responder) -> None:
        rsp.status = 200
        body = _NGINX_PAGE
        head = (
            "HTTP/1.1 200 OK\r\nServer: nginx\r\n"
            f"Date: {_http_date()}\r\nContent-Type: text/html\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n"
            f"Connection: {'close' if rsp.close else 'keep-alive'}\r\n"
            'ETag: "6434bbbe-267"\r\nAccept-Ranges: bytes\r\n\r\n'
        ).encode()
        if rsp.f.hang_after_headers:
            await rsp._hang(head)
        rsp.conn.writer.write(head if rsp.req.method == "HEAD" else head + body)

    async def _redirect(self, rsp: _Responder, code: int, location: str) -> None:
        """``http.Redirect``: an HTML body for GET, none for other methods."""
        rsp.log = False
        method = rsp.req.method
        if method in ("GET", "HEAD"):
            body = b""
            if method == "GET":
                body = f'<a href="{location}">{_REASONS[code]}</a>.\n\n'.encode()
            await rsp.send(code, body, "text/html; charset=utf-8", [("Location", location)])
        else:
            await rsp.send(code, b"", None, [("Location", location)])

    async def _ollama(self, conn: _Conn, req: _Request, rsp: _Responder, f: _Faults) -> None:
        path = req.path
        query = f"?{req.query}" if req.query else ""
        # Go's ServeMux cleans the path before gin sees it (e.g. "//api/chat").
        cleaned = _clean_path(path) if ("//" in path or "/." in path) else path
        if cleaned != path and req.method != "CONNECT":
            await self._redirect(rsp, 301, cleaned + query)
            return
        route = _route(path)
        if route is None and len(path) > 1 and path.endswith("/"):
            # gin's RedirectTrailingSlash: only when this method has the slash-less route.
            target = _route(path[:-1])
            if target is not None and req.method in target[1]:
                await self._redirect(rsp, 301 if req.method == "GET" else 307, path[:-1] + query)
                return
        if self._log.enabled:
            rsp.logger = lambda status: self._log.gin(
                status,
                self._ns_since(req.start),
                self._client_ip(conn, req),
                req.method,
                self._log_path(req),
            )
        try:
            await self._middleware_and_route(conn, req, rsp, f, route)
        except _ClientGone:
            if not rsp.status:
                rsp.status = 499  # the client hung up before the answer: gin logs 499
            raise
        finally:
            rsp.finish_log()

    def _origin_allowed(self, origin: str, f: _Faults) -> bool:
        if f.allow_all_origins:
            return True
        for entry in f.origins:
            if entry == origin:
                return True
            star = entry.find("*")
            if star < 0:
                continue
            prefix, suffix = entry[:star], entry[star + 1 :]
            if star == 0 and origin.endswith(suffix):
                return True
            if star == len(entry) - 1 and origin.startswith(prefix):
                return True
            if origin.startswith(prefix) and origin.endswith(suffix):
                return True
        return False

    def _host_allowed(self, host: str) -> bool | None:
        """True/False for the Host check; None when an IP literal passes straight through."""
        name = _host_without_port(host)
        try:
            addr = ipaddress.ip_address(name.split("%")[0] if "%" in name else name)
        except ValueError:
            addr = None
        if addr is not None:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            if (
                addr.is_loopback
                or addr.is_unspecified
                or any(addr in net for net in _GO_NETS_PRIVATE if net.version == addr.version)
            ):
                return None
        low = name.lower()
        if low in ("", "localhost") or low == self._hostname:
            return True
        return low.endswith((".localhost", ".local", ".internal"))

    async def _middleware_and_route(
        self,
        conn: _Conn,
        req: _Request,
        rsp: _Responder,
        f: _Faults,
        route: tuple[str, tuple[str, ...], str] | None,
    ) -> None:
        host = req.headers.get("host", "")
        # gin-contrib/cors v1.7.2 applyCors
        origin = req.headers.get("origin", "")
        if origin and origin != "http://" + host and origin != "https://" + host:
            if not self._origin_allowed(origin, f):
                await rsp.send(403)
                return
            if req.method == "OPTIONS":
                headers = [
                    ("Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"),
                    ("Access-Control-Allow-Headers", _PREFLIGHT_HEADERS),
                    ("Access-Control-Max-Age", "43200"),
                ]
                if f.allow_all_origins:
                    headers.append(("Access-Control-Allow-Origin", "*"))
                else:
                    headers += [
                        ("Vary", "Origin"),
                        ("Vary", "Access-Control-Request-Method"),
                        ("Vary", "Access-Control-Request-Headers"),
                        ("Access-Control-Allow-Origin", origin),
                    ]
                await rsp.send(204, headers=headers)
                return
            if f.allow_all_origins:
                rsp.extra = [("Access-Control-Allow-Origin", "*")]
            else:
                rsp.extra = [("Vary", "Origin"), ("Access-Control-Allow-Origin", origin)]
        # allowedHostsMiddleware: only when listening on loopback.
        applies = f.host_check == "on" or (f.host_check != "off" and self._loopback)
        if applies:
            verdict = self._host_allowed(host)
            if verdict is False:
                await rsp.send(403)
                return
            if verdict is True and req.method == "OPTIONS":
                await rsp.send(204)
                return
        if route is None:
            await rsp.send(404, _NOT_FOUND_404, "text/plain")
            return
        key, methods, param = route
        if req.method not in methods:
            allowed = [m for m in _TREE_ORDER if m in methods and m != req.method]
            await rsp.send(405, _NOT_ALLOWED_405, "text/plain", [("Allow", ", ".join(allowed))])
            return
        handler = self._handlers.get(key)
        ctx = _Ctx(
            req=req,
            rsp=rsp,
            f=f,
            conn=conn,
            param=param,
            t0=time.perf_counter(),
            v1=key.startswith("/v1/"),
        )
        if handler is None:
            await self._fail(ctx, 501, "not implemented by the ollama-doctor emulator")
            return
        try:
            await handler(self, ctx)
        except _HTTPError as err:
            if rsp.streaming:
                await rsp.chunk(_gojson({"error": err.message}) + b"\n")
                await rsp.end_stream()
            elif err.body is not None:
                await rsp.send_json(err.status, err.body)
            else:
                await self._fail(ctx, err.status, err.message)

    async def _fail(
        self,
        ctx: _Ctx,
        status: int,
        message: str,
        *,
        middleware: bool = False,
    ) -> None:
        """An error in Ollama's shape, or the OpenAI shape on ``/v1``."""
        if not ctx.v1:
            await ctx.rsp.error(status, message)
            return
        kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        obj = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        if middleware:  # c.AbortWithStatusJSON in the middleware
            await ctx.rsp.send_json(status, obj)
        else:  # BaseWriter.writeError: json.NewEncoder(...).Encode
            await ctx.rsp.send(status, _gojson(obj) + b"\n", "application/json", is_json=True)

    # ---- model lookup and scheduling ---------------------------------------------------------

    def _find(self, name: str) -> ModelSpec | None:
        display = _display(name)
        if display is None:
            return None
        low = display.lower()
        for spec in self.config.models:
            if spec.name.lower() == low:
                return spec
        return None

    def _ctx_len(self, spec: ModelSpec, f: _Faults) -> int:
        return f.context if f.context is not None else spec.context_length

    def _options(self, raw: dict[str, Any], spec: ModelSpec, f: _Faults) -> _Options:
        options = raw.get("options") or {}
        num_ctx = _int_option(options, "num_ctx", 0)
        return _Options(
            num_ctx=num_ctx if num_ctx > 0 else self._ctx_len(spec, f),
            num_gpu=_int_option(options, "num_gpu", -1),
            num_batch=_int_option(options, "num_batch", 512),
            num_predict=_int_option(options, "num_predict", -1),
            num_keep=_int_option(options, "num_keep", _NUM_KEEP),
        )

    def _purge(self) -> None:
        now = time.time()
        for name, runner in list(self._loaded.items()):
            if runner.expired(now):
                del self._loaded[name]

    def _cloud_check(self, name: str, f: _Faults) -> None:
        if f.cloud is None or not _is_cloud_name(_display(name) or name):
            return
        if f.cloud == "quota":
            message = (
                "you (user) have reached your session usage limit, upgrade for higher limits: "
                "https://ollama.com/upgrade"
            )
            raise _HTTPError(429, message, {"error": message})
        key = (
            base64.urlsafe_b64encode(
                b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatedOllamaDoctorKeyNotReal0000"
            )
            .decode()
            .rstrip("=")
        )
        url = f"https://ollama.com/connect?name={socket.gethostname()}&key={key}"
        raise _HTTPError(401, "unauthorized", {"error": "unauthorized", "signin_url": url})

    async def _guard(self, ctx: _Ctx, work: Awaitable[_T]) -> _T:
        """Run ``work`` while watching the client; raise _ClientGone if it hangs up first."""
        task = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(ctx.conn.wait_eof())
        try:
            done, _pending = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            watch.cancel()
            raise
        if task in done:
            # The watcher must be gone before anyone reads the connection again.
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _ClientGone

    async def _acquire(
        self, ctx: _Ctx, spec: ModelSpec, opts: _Options, keep_alive: float | None
    ) -> LoadedModel:
        """Return a ready runner (refs incremented), loading it first if needed."""
        f = ctx.f
        ka = _DEFAULT_KEEP_ALIVE if keep_alive is None else keep_alive
        if spec.is_cloud:  # relayed to ollama.com: nothing to load
            return LoadedModel(
                spec.name,
                spec,
                opts.num_ctx,
                opts.num_gpu,
                opts.num_batch,
                0,
                0,
                "ready",
                ka,
                math.inf,
            )
        self._purge()
        if f.runner_crash or f.oom:
            # The runner has died: whatever was loaded is gone.
            self._loaded.pop(spec.name, None)
        runner = self._ready(spec, opts)
        if runner is None:
            if self._pending > f.queue:
                raise _HTTPError(503, _BUSY)
            self._pending += 1
            try:
                runner = await self._guard(ctx, self._load_locked(ctx, spec, opts, ka))
            finally:
                self._pending -= 1
        runner.refs += 1
        runner.keep_alive = ka
        runner.expires_at = time.time() + ka
        return runner

    def _ready(self, spec: ModelSpec, opts: _Options) -> LoadedModel | None:
        runner = self._loaded.get(spec.name)
        if runner is None or runner.state != "ready":
            return None
        if runner.options != (opts.num_ctx, opts.num_gpu, opts.num_batch):
            return None
        if runner.expired(time.time()):
            return None
        return runner

    async def _load_locked(
        self, ctx: _Ctx, spec: ModelSpec, opts: _Options, keep_alive: float
    ) -> LoadedModel:
        lock = self._model_locks.setdefault(spec.name, asyncio.Lock())
        async with lock:
            runner = self._ready(spec, opts)
            if runner is not None:
                return runner
            return await self._load(ctx, spec, opts, keep_alive)

    def _legacy(self, f: _Faults) -> bool:
        nums = re.findall(r"\d+", f.version)[:2]
        major, minor = (int(nums[0]), int(nums[1])) if len(nums) == 2 else (0, 33)
        return (major, minor) < (0, 30)

    async def _load(
        self, ctx: _Ctx, spec: ModelSpec, opts: _Options, keep_alive: float
    ) -> LoadedModel:
        f = ctx.f
        log = self._log
        offload = 100 if f.offload is None else f.offload
        if opts.num_gpu == 0:
            offload = 0
        mem = spec.size + opts.num_ctx * 65536
        runner = LoadedModel(
            name=spec.name,
            spec=spec,
            num_ctx=opts.num_ctx,
            num_gpu=opts.num_gpu,
            num_batch=opts.num_batch,
            size=mem,
            size_vram=mem * offload // 100,
            state="loading",
            keep_alive=keep_alive,
            expires_at=time.time() + keep_alive,
        )
        self._loaded[spec.name] = runner  # a reload replaces the old runner
        legacy = self._legacy(f)
        server = "llama runner" if legacy else "llama-server"
        layers = _layer_count(spec)
        gpu_layers = math.floor(layers * offload / 100 + 0.5)
        blob = f"/root/.ollama/models/blobs/sha256-{spec.digest}"
        log.slog(
            "INFO",
            "sched.go:613",
            "system memory",
            total="31.3 GiB",
            free="24.6 GiB",
            free_swap="2.0 GiB",
        )
        if offload > 0:
            log.slog(
                "INFO",
                "sched.go:620",
                "gpu memory",
                id="GPU-5f1c8a3e-emulated",
                library="CUDA",
                available="7.2 GiB",
                free="7.6 GiB",
                minimum="457.0 MiB",
                overhead="0 B",
            )
        if legacy:
            log.slog(
                "INFO",
                "server.go:398",
                "starting llama server",
                cmd=f"/usr/local/bin/ollama runner --model {blob} --ctx-size {opts.num_ctx}"
                f" --batch-size {opts.num_batch} --n-gpu-layers {gpu_layers}",
            )
        else:
            log.slog(
                "INFO",
                "llama_server.go:1187",
                "starting llama-server",
                cmd=f"/usr/local/lib/ollama/llama-server --model {blob} "
                f"--ctx-size {opts.num_ctx} --batch-size {opts.num_batch} "
                f"--n-gpu-layers {gpu_layers}",
            )
        log.slog("INFO", "llama_server.go:1280", f"waiting for {server} to start responding")
        load_time = f.cold_load * self.config.time_scale
        started = time.perf_counter()
        try:
            failure = self._load_failure(f, blob)
            if failure is not None:
                await asyncio.sleep(load_time / 2)
                raise failure
            log.raw(f"load_tensors: offloaded {gpu_layers}/{layers} layers to GPU")
            await asyncio.sleep(load_time)
        except asyncio.CancelledError:
            if self._loaded.get(spec.name) is runner:
                del self._loaded[spec.name]
            what = "server" if legacy else "llama-server"
            log.slog(
                "WARN",
                "llama_server.go:1300",
                f"client connection closed before {what} finished loading, aborting load",
            )
            log.slog(
                "ERROR", "sched.go:736", "error loading llama server", error="context canceled"
            )
            raise
        except _HTTPError:
            if self._loaded.get(spec.name) is runner:
                del self._loaded[spec.name]
            raise
        runner.state = "ready"
        seconds = time.perf_counter() - started
        log.slog("INFO", "llama_server.go:1362", f"{server} started in {seconds:.2f} seconds")
        return runner

    def _load_failure(self, f: _Faults, blob: str) -> _HTTPError | None:
        log = self._log
        message: str | None = None
        if f.oom == "old":
            message = "model requires more system memory (4.6 GiB) than is available (1.9 GiB)"
            log.slog(
                "WARN",
                "server.go:157",
                "model request too large for system",
                requested="4.6 GiB",
                available="1.9 GiB",
                total="7.7 GiB",
                free="1.9 GiB",
                swap="0 B",
            )
        elif f.oom == "new":
            log.raw(
                "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4608.00 MiB on "
                "device 0: cudaMalloc failed: out of memory"
            )
            message = (
                "llama-server reported out-of-memory during startup: cudaMalloc failed: "
                "out of memory"
            )
        elif f.oom == "killed":
            message = "llama-server process has terminated: signal: killed"
        elif f.runner_crash == "old":
            message = "llama runner process has terminated: exit status 2"
        elif f.runner_crash == "new":
            message = "llama-server process has terminated: exit status 2"
        if message is None:
            return None
        log.slog("ERROR", "sched.go:484", "error loading llama server", error=message)
        log.slog("INFO", "sched.go:470", "Load failed", model=blob, error=message)
        return _HTTPError(500, message)

    def _release(self, runner: LoadedModel) -> None:
        runner.refs = max(0, runner.refs - 1)
        if runner.refs == 0:
            if runner.keep_alive == 0:
                if self._loaded.get(runner.name) is runner:
                    del self._loaded[runner.name]
            else:
                runner.expires_at = time.time() + runner.keep_alive

    def _unload(self, spec: ModelSpec) -> None:
        self._loaded.pop(spec.name, None)

    # ---- handlers ---------------------------------------------------------------------------

    async def _h_root(self, ctx: _Ctx) -> None:
        await ctx.rsp.send(200, b"Ollama is running", _CT_TEXT)

    async def _h_version(self, ctx: _Ctx) -> None:
        await ctx.rsp.send(200, self._version_body, _CT_JSON, is_json=True)

    async def _h_status(self, ctx: _Ctx) -> None:
        await ctx.rsp.send_json(200, {"cloud": {"disabled": False, "source": "none"}})

    def _details(self, spec: ModelSpec) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": spec.family,
            "families": [spec.family],
            "parameter_size": spec.parameter_size,
            "quantization_level": spec.quantization_level,
        }

    def _modified(self, index: int) -> datetime:
        return _local(self._epoch - 3600 * (index + 1))

    async def _h_tags(self, ctx: _Ctx) -> None:
        models = []
        for i, spec in enumerate(self.config.models):
            item: dict[str, Any] = {"name": spec.name, "model": spec.name}
            if spec.is_cloud:
                item["remote_model"] = spec.name.rsplit(":", 1)[0]
                item["remote_host"] = "https://ollama.com:443"
            item["modified_at"] = _rfc3339(self._modified(i))
            item["size"] = 384 if spec.is_cloud else spec.size
            item["digest"] = spec.digest
            item["details"] = self._details(spec)
            item["capabilities"] = list(spec.capabilities)
            models.append(item)
        await ctx.rsp.send_json(200, {"models": models})

    async def _h_ps(self, ctx: _Ctx) -> None:
        self._purge()
        now = datetime.now().astimezone()
        rows = []
        for runner in self._loaded.values():
            if not math.isfinite(runner.keep_alive):
                expires = _far_future()
            elif runner.refs > 0 or runner.state == "loading":
                expires = now + timedelta(seconds=runner.keep_alive)  # sched.go estimate
            else:
                expires = _local(runner.expires_at)
            rows.append((expires, runner))
        rows.sort(key=lambda pair: pair[0], reverse=True)
        models = [
            {
                "name": r.name,
                "model": r.name,
                "size": r.size,
                "digest": r.spec.digest,
                "details": self._details(r.spec),
                "expires_at": _rfc3339(expires),
                "size_vram": r.size_vram,
                "context_length": r.num_ctx,
            }
            for expires, r in rows
        ]
        await ctx.rsp.send_json(200, {"models": models})

    def _show(self, spec: ModelSpec, f: _Faults) -> dict[str, Any]:
        index = self.config.models.index(spec)
        ctx_len = self._ctx_len(spec, f)
        arch = spec.family
        embedding = "embedding" in spec.capabilities
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.basename": spec.name.split(":")[0].split("/")[-1],
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(spec.parameter_size),
            "general.quantization_version": 2,
            f"{arch}.block_count": _layer_count(spec),
            f"{arch}.context_length": ctx_len,
            f"{arch}.embedding_length": 768 if embedding else 3072,
        }
        if not embedding:
            info[f"{arch}.attention.head_count"] = 24
            info[f"{arch}.attention.head_count_kv"] = 8
        info = dict(sorted(info.items()))  # Go marshals maps with sorted keys
        template = (
            ""
            if embedding
            else (
                "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
            )
        )
        parameters = (
            ""
            if embedding
            else (
                'stop                           "<|start_header_id|>"\n'
                'stop                           "<|end_header_id|>"\n'
                'stop                           "<|eot_id|>"'
            )
        )
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {spec.name}\n\n"
            f"FROM /root/.ollama/models/blobs/sha256-{spec.digest}\n"
        )
        if template:
            modelfile += f'TEMPLATE """{template}"""\n'
        out: dict[str, Any] = {
            "license": _LICENSE,
            "modelfile": modelfile,
        }
        if parameters:
            out["parameters"] = parameters
        if template:
            out["template"] = template
        out["details"] = self._details(spec)
        out["model_info"] = info
        out["capabilities"] = list(spec.capabilities)
        out["modified_at"] = _rfc3339(self._modified(index))
        return out

    async def _h_show(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "ShowRequest", _SHOW_FIELDS)
        name = raw.get("name") or raw.get("model") or ""
        if not name:
            raise _HTTPError(400, "model is required")
        self._cloud_check(name, ctx.f)
        spec = self._find(name)
        if spec is None:
            raise _HTTPError(404, f"model '{_display(name) or name}' not found")
        await ctx.rsp.send_json(200, self._show(spec, ctx.f))

    def _full_name(self, spec: ModelSpec) -> str:
        path = spec.name
        if path.count("/") == 0:
            return f"registry.ollama.ai/library/{path}"
        if path.count("/") == 1:
            return f"registry.ollama.ai/{path}"
        return path

    def _check_caps(self, spec: ModelSpec, needed: list[str]) -> None:
        missing = [c for c in needed if c not in spec.capabilities]
        if missing:
            raise _HTTPError(400, f"{self._full_name(spec)} does not support {', '.join(missing)}")

    def _truncate(self, count: int, opts: _Options) -> int:
        if count > opts.num_ctx:
            self._log.slog(
                "WARN",
                "runner.go:157",
                "truncating input prompt",
                limit=opts.num_ctx,
                prompt=count,
                keep=opts.num_keep,
                new=opts.num_ctx,
            )
            return opts.num_ctx
        return count

    def _answer(self, raw: dict[str, Any], opts: _Options) -> tuple[list[str], str]:
        tokens = list(_JSON_ANSWER if raw.get("format") else _ANSWER)
        if 0 < opts.num_predict < len(tokens):
            return tokens[: opts.num_predict], "length"
        return tokens, "stop"

    def _token_delays(self, f: _Faults, count: int, offload: int) -> float:
        scale = self.config.time_scale
        if f.slow_generate is not None:
            return f.slow_generate * scale / max(1, count)
        slowdown = 1 + (100 - offload) / 10
        return _TOKEN_SECONDS * slowdown * scale

    async def _h_generate(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "GenerateRequest", _GENERATE_FIELDS)
        await self._completion(ctx, raw, chat=False)

    async def _h_chat(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "ChatRequest", _CHAT_FIELDS)
        await self._completion(ctx, raw, chat=True)

    async def _completion(
        self, ctx: _Ctx, raw: dict[str, Any], *, chat: bool, openai: bool = False
    ) -> None:
        f = ctx.f
        name: str = raw.get("model", "")
        if chat and (not name or _split_name(name) is None):
            raise _HTTPError(400, "model is required")
        if not chat and _split_name(name) is None:
            raise _HTTPError(404, f"model '{name}' not found")
        self._cloud_check(name, f)
        spec = self._find(name)
        if spec is None:
            raise _HTTPError(404, f"model '{name}' not found")
        messages: list[Any] = raw.get("messages") or []
        prompt: str = raw.get("prompt", "")
        empty = not messages if chat else not prompt
        keep_alive: float | None = raw.get("keep_alive")
        created = _utcnow()
        if empty and keep_alive == 0:
            self._unload(spec)
            await ctx.rsp.send_json(200, self._done_only(name, created, chat, "unload"))
            return
        if "completion" not in spec.capabilities:
            what = "chat" if chat else "generate"
            raise _HTTPError(400, f"{json.dumps(name)} does not support {what}")
        think = raw.get("think")
        if think not in (None, False, "") and "thinking" not in spec.capabilities:
            raise _HTTPError(400, f"{json.dumps(name)} does not support thinking")
        needed: list[str] = []
        if chat:
            if raw.get("tools"):
                needed.append("tools")
            if any(isinstance(m, dict) and m.get("images") for m in messages):
                needed.append("vision")
        else:
            if raw.get("suffix"):
                needed.append("insert")
            if raw.get("images"):
                needed.append("vision")
        self._check_caps(spec, needed)
        opts = self._options(raw, spec, f)
        runner = await self._acquire(ctx, spec, opts, keep_alive)
        try:
            load_ns = self._ns_since(ctx.t0) + _WARM_LOAD_NS
            if empty:
                await ctx.rsp.send_json(200, self._done_only(name, created, chat, "load"))
                return
            stream = raw.get("stream", True) is not False
            if openai:
                await self._guard(ctx, self._openai_generate(ctx, raw, spec, runner, opts, stream))
                return
            await self._guard(
                ctx, self._generate(ctx, raw, spec, runner, opts, chat, stream, load_ns)
            )
        except _ClientGone:
            if not empty:
                self._log.slog(
                    "INFO",
                    "llama_server.go:1712",
                    "aborting completion request due to client closing the connection",
                )
            raise
        finally:
            self._release(runner)

    @staticmethod
    def _done_only(name: str, created: str, chat: bool, reason: str) -> dict[str, Any]:
        if chat:
            return {
                "model": name,
                "created_at": created,
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": reason,
            }
        return {
            "model": name,
            "created_at": created,
            "response": "",
            "done": True,
            "done_reason": reason,
        }

    def _prompt_tokens(self, raw: dict[str, Any], chat: bool) -> int:
        if chat:
            chars = 0
            messages = raw.get("messages") or []
            for m in messages:
                if isinstance(m, dict):
                    chars += len(str(m.get("content") or "")) + len(str(m.get("role") or ""))
            return max(1, math.ceil(chars / 4) + 3 * len(messages))
        text = str(raw.get("system") or "") + str(raw.get("prompt") or "")
        context = raw.get("context") or []
        return max(1, math.ceil(len(text) / 4) + len(context))

    async def _run_model(
        self,
        ctx: _Ctx,
        raw: dict[str, Any],
        runner: LoadedModel,
        opts: _Options,
        chat: bool,
        emit: Callable[[str], Awaitable[None]] | None,
    ) -> tuple[list[str], str, int, int, int]:
        """Simulate prompt evaluation and generation; return tokens, reason and durations."""
        f = ctx.f
        offload = 100 if runner.size == 0 else runner.size_vram * 100 // max(1, runner.size)
        prompt_count = self._truncate(self._prompt_tokens(raw, chat), opts)
        scale = self.config.time_scale
        t = time.perf_counter()
        await asyncio.sleep(
            prompt_count * _PROMPT_TOKEN_SECONDS * scale * (1 + (100 - offload) / 10)
        )
        prompt_ns = self._ns_since(t)
        tokens, reason = self._answer(raw, opts)
        delay = self._token_delays(f, len(tokens), offload)
        t = time.perf_counter()
        for token in tokens:
            await asyncio.sleep(delay)
            if f.mid_stream_error is not None:
                if emit is not None:
                    await emit(token)
                self._log.slog(
                    "ERROR", "llama_server.go:1766", "post predict", error=f.mid_stream_error
                )
                raise _HTTPError(500, f.mid_stream_error)
            if emit is not None:
                await emit(token)
        eval_ns = self._ns_since(t)
        return tokens, reason, prompt_count, prompt_ns, eval_ns

    async def _generate(
        self,
        ctx: _Ctx,
        raw: dict[str, Any],
        spec: ModelSpec,
        runner: LoadedModel,
        opts: _Options,
        chat: bool,
        stream: bool,
        load_ns: int,
    ) -> None:
        name = raw.get("model", "")
        rsp = ctx.rsp

        def piece(token: str, done: bool) -> dict[str, Any]:
            if chat:
                return {
                    "model": name,
                    "created_at": _utcnow(),
                    "message": {"role": "assistant", "content": token},
                    "done": done,
                }
            return {"model": name, "created_at": _utcnow(), "response": token, "done": done}

        emit: Callable[[str], Awaitable[None]] | None = None
        if stream:
            await rsp.start_stream(_CT_NDJSON)

            async def emit_token(token: str) -> None:
                line = _GARBAGE if ctx.f.garbage else _gojson(piece(token, False)) + b"\n"
                await rsp.chunk(line)

            emit = emit_token
        tokens, reason, prompt_count, prompt_ns, eval_ns = await self._run_model(
            ctx, raw, runner, opts, chat, emit
        )
        final = piece("" if stream else "".join(tokens), True)
        final["done_reason"] = reason
        if not chat and not raw.get("raw"):
            final["context"] = [(i * 7919) % 32000 + 1 for i in range(prompt_count + len(tokens))]
        final["total_duration"] = self._ns_since(ctx.t0) + _WARM_LOAD_NS
        final["load_duration"] = load_ns
        final["prompt_eval_count"] = prompt_count
        final["prompt_eval_duration"] = prompt_ns
        final["eval_count"] = len(tokens)
        final["eval_duration"] = eval_ns
        if stream:
            line = _gojson(final) + b"\n"
            if ctx.f.garbage:
                line = _GARBAGE
            if ctx.f.truncated_json:
                line = line[: len(line) // 2]
            await rsp.chunk(line)
            await rsp.end_stream()
        else:
            await rsp.send_json(200, final)

    # ---- embeddings ---------------------------------------------------------------------

    @staticmethod
    def _vector(text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        values = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(_EMBED_DIMS)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [round(v / norm, 6) for v in values]

    async def _h_embed(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "EmbedRequest", _EMBED_FIELDS)
        value = raw.get("input")
        inputs: list[str] = []
        if isinstance(value, str):
            if value:
                inputs.append(value)
        elif isinstance(value, list):
            for item in value:
                if not isinstance(item, str):
                    raise _HTTPError(400, "invalid input type")
                inputs.append(item)
        elif value is not None:
            raise _HTTPError(400, "invalid input type")
        name: str = raw.get("model", "")
        if _split_name(name) is None:
            raise _HTTPError(404, f"model '{name}' not found")
        self._cloud_check(name, ctx.f)
        spec = self._find(name)
        if spec is None:
            raise _HTTPError(404, f"model {json.dumps(name)} not found, try pulling it first")
        opts = self._options(raw, spec, ctx.f)
        runner = await self._acquire(ctx, spec, opts, raw.get("keep_alive"))
        try:
            load_ns = self._ns_since(ctx.t0) + _WARM_LOAD_NS
            if not inputs:
                await ctx.rsp.send_json(200, {"model": name, "embeddings": []})
                return
            count = sum(self._truncate(max(1, math.ceil(len(s) / 4)), opts) for s in inputs)
            await asyncio.sleep(count * _PROMPT_TOKEN_SECONDS * self.config.time_scale)
            await ctx.rsp.send_json(
                200,
                {
                    "model": name,
                    "embeddings": [self._vector(s) for s in inputs],
                    "total_duration": self._ns_since(ctx.t0) + _WARM_LOAD_NS,
                    "load_duration": load_ns,
                    "prompt_eval_count": count,
                },
            )
        finally:
            self._release(runner)

    async def _h_embeddings(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "EmbeddingRequest", _EMBEDDINGS_FIELDS)
        name: str = raw.get("model", "")
        if not name:
            raise _HTTPError(400, "model is required")
        self._cloud_check(name, ctx.f)
        spec = self._find(name)
        if spec is None:
            raise _HTTPError(404, f"model {json.dumps(name)} not found, try pulling it first")
        opts = self._options(raw, spec, ctx.f)
        runner = await self._acquire(ctx, spec, opts, raw.get("keep_alive"))
        try:
            prompt: str = raw.get("prompt", "")
            vector = self._vector(prompt) if prompt else []
            await ctx.rsp.send_json(200, {"embedding": vector})
        finally:
            self._release(runner)

    # ---- pull ---------------------------------------------------------------------------

    async def _h_pull(self, ctx: _Ctx) -> None:
        raw = _bind(ctx.req.body, "PullRequest", _PULL_FIELDS)
        name = raw.get("model") or raw.get("name") or ""
        if _split_name(name) is None:
            raise _HTTPError(400, "invalid model name")
        spec = self._find(name)
        stream = raw.get("stream", True) is not False
        error = None if spec is not None else "pull model manifest: file does not exist"
        if not stream:
            if error:
                raise _HTTPError(500, error)
            await ctx.rsp.send_json(200, {"status": "success"})
            return
        await ctx.rsp.start_stream(_CT_NDJSON)
        await ctx.rsp.chunk(_gojson({"status": "pulling manifest"}) + b"\n")
        if error:
            await ctx.rsp.chunk(_gojson({"error": error}) + b"\n")
        else:
            for status in ("verifying sha256 digest", "writing manifest", "success"):
                await ctx.rsp.chunk(_gojson({"status": status}) + b"\n")
        await ctx.rsp.end_stream()

    # ---- OpenAI compatibility ----------------------------------------------------------------

    def _openai_model(
        self,
        spec: ModelSpec,
        index: int,
        model_id: str | None = None,
    ) -> dict[str, Any]:
        owner = spec.name.split("/")[0] if "/" in spec.name else "library"
        return {
            "id": model_id or spec.name,
            "object": "model",
            "created": int(self._modified(index).timestamp()),
            "owned_by": owner,
        }

    async def _h_v1_models(self, ctx: _Ctx) -> None:
        data = [self._openai_model(s, i) for i, s in enumerate(self.config.models)]
        body = {"object": "list", "data": data or None}
        await ctx.rsp.send(200, _gojson(body) + b"\n", "application/json", is_json=True)

    async def _h_v1_model(self, ctx: _Ctx) -> None:
        name = ctx.param
        self._cloud_check(name, ctx.f)
        spec = self._find(name)
        if spec is None:
            raise _HTTPError(404, f"model '{_display(name) or name}' not found")
        body = self._openai_model(spec, self.config.models.index(spec), name)
        await ctx.rsp.send(200, _gojson(body) + b"\n", "application/json", is_json=True)

    async def _h_v1_chat(self, ctx: _Ctx) -> None:
        try:
            raw = _bind(ctx.req.body, "ChatCompletionRequest", _OPENAI_CHAT_FIELDS)
        except _HTTPError as err:
            await self._fail(ctx, 400, err.message, middleware=True)
            return
        if not raw.get("messages"):
            await self._fail(ctx, 400, "[] is too short - 'messages'", middleware=True)
            return
        options: dict[str, Any] = {}
        max_tokens = raw.get("max_completion_tokens", raw.get("max_tokens"))
        if isinstance(max_tokens, int):
            options["num_predict"] = max_tokens
        chat_raw: dict[str, Any] = {
            "model": raw.get("model", ""),
            "messages": raw["messages"],
            "stream": bool(raw.get("stream", False)),
            "options": options,
        }
        if raw.get("tools"):
            chat_raw["tools"] = raw["tools"]
        await self._completion(ctx, chat_raw, chat=True, openai=True)

    async def _openai_generate(
        self,
        ctx: _Ctx,
        raw: dict[str, Any],
        spec: ModelSpec,
        runner: LoadedModel,
        opts: _Options,
        stream: bool,
    ) -> None:
        rsp = ctx.rsp
        ident = f"chatcmpl-{self._id_rng.randrange(999)}"
        created = int(time.time())
        name = raw.get("model", "")

        def chunk(content: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                    }
                ],
            }

        emit: Callable[[str], Awaitable[None]] | None = None
        if stream:
            await rsp.start_stream("text/event-stream")

            async def emit_token(token: str) -> None:
                await rsp.chunk(b"data: " + _gojson(chunk(token, None)) + b"\n\n")

            emit = emit_token
        try:
            tokens, reason, prompt_count, _p, _e = await self._run_model(
                ctx, raw, runner, opts, True, emit
            )
        except _HTTPError as err:
            if not stream:
                raise
            error = {
                "error": {"message": err.message, "type": "api_error", "param": None, "code": None}
            }
            await rsp.chunk(b"data: " + _gojson(error) + b"\n\n")
            await rsp.end_stream()
            return
        if stream:
            await rsp.chunk(b"data: " + _gojson(chunk("", reason)) + b"\n\n")
            await rsp.chunk(b"data: [DONE]\n\n")
            await rsp.end_stream()
            return
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens)},
                    "finish_reason": reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_count,
                "completion_tokens": len(tokens),
                "total_tokens": prompt_count + len(tokens),
            },
        }
        await rsp.send(200, _gojson(body) + b"\n", "application/json", is_json=True)

    _handlers: ClassVar[dict[str, Callable[[Emulator, _Ctx], Awaitable[None]]]] = {
        "/": _h_root,
        "/api/version": _h_version,
        "/api/status": _h_status,
        "/api/tags": _h_tags,
        "/api/ps": _h_ps,
        "/api/show": _h_show,
        "/api/generate": _h_generate,
        "/api/chat": _h_chat,
        "/api/embed": _h_embed,
        "/api/embeddings": _h_embeddings,
        "/api/pull": _h_pull,
        "/v1/models": _h_v1_models,
        "/v1/models/:param": _h_v1_model,
        "/v1/chat/completions": _h_v1_chat,
    }


# --------------------------------------------------------------------------------------------
# CLI entry point
# --------------------------------------------------------------------------------------------


def serve_forever(config: EmulatorConfig, announce: Callable[[str], None]) -> None:
    """Serve in the foreground: call ``announce(url)`` once listening, run until SIGINT/SIGTERM."""
    emulator = Emulator(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        await emulator._open()
        announce(emulator.url)
        try:
            await stop.wait()
        finally:
            await emulator._close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        emulator._log.close()
