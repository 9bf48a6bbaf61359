"""The faults the emulator can inject: their names, help, value checks and parsed form.

``FAULTS`` is the table ``ollama-doctor emulate --list-faults`` prints; ``parse_fault`` checks one
``NAME[=VALUE]``; :class:`Faults` is the parsed set the request path reads. Adding a fault is a
row in ``FAULT_TABLE``, a field in :class:`Faults`, and the one place that acts on it:

============================================  ==============================================
fault                                         acted on in
============================================  ==============================================
latency, jitter, drop-rate, hang              ``server.Emulator._serve_one``
html, auth, rate-limit                        ``middleware.front`` (something in front of Ollama)
origins / host-check                          ``middleware.cors`` / ``server.Emulator._dispatch``
queue, busy                                   ``scheduler.Scheduler.acquire``
cold-load, offload, runner-crash, oom         ``scheduler.Scheduler.load`` / ``load_failure``
mid-stream-error, slow-generate               ``generation.run_model``
hang-after-headers, garbage, truncated-json   ``wire.Responder``
cloud                                         ``cloud.cloud_check``
version, context, seed                        ``server.Emulator`` / ``scheduler.ctx_len``
============================================  ==============================================
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_COLD_LOAD = 0.05
DEFAULT_QUEUE = 512
DEFAULT_MID_STREAM = "an error was encountered while running the model: unexpected EOF"
CLOUD_MODES = ("signin", "quota", "disabled", "upstream")


@dataclass(frozen=True)
class FaultInfo:
    name: str
    value_help: str  # "" when the fault takes no value
    description: str


ORIGIN_SCHEMES = (
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
)
BUILTIN_ORIGINS = (
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


def origin_entries(value: str) -> list[str]:
    """OLLAMA_ORIGINS as Ollama reads it: outer spaces/quotes trimmed, split without trimming."""
    value = value.strip().strip("\"'")
    if not value:
        return []
    entries = value.split(",")
    for entry in entries:
        if "*" not in entry and not entry.startswith(ORIGIN_SCHEMES):
            # The real server panics at startup with this message (gin-contrib/cors Validate).
            raise ValueError(
                "bad origin: origins must contain '*' or include " + ",".join(ORIGIN_SCHEMES)
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
    origin_entries(value)


FAULT_TABLE: tuple[tuple[FaultInfo, Callable[[str], None]], ...] = (
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
            "busy",
            "",
            "every request that needs a model load answers 503 'server busy' (queue full)",
        ),
        _check_empty,
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
        FaultInfo(
            "cloud",
            "signin|quota|disabled|upstream",
            "cloud models answer 401 with signin_url, 429 quota, 403 cloud disabled, or 502 "
            "when ollama.com cannot be reached",
        ),
        _check_choice("", *CLOUD_MODES),
    ),
    (FaultInfo("version", "X.Y.Z", "version reported by /api/version and the log"), _check_version),
    (FaultInfo("context", "N", "override every model's context length"), _check_int(1)),
    (
        FaultInfo("seed", "N", "seed for jitter, drop-rate and ids (default 0)"),
        _check_int(-(2**63)),
    ),
)

FAULTS: tuple[FaultInfo, ...] = tuple(info for info, _check in FAULT_TABLE)
_FAULT_CHECKS: dict[str, tuple[FaultInfo, Callable[[str], None]]] = {
    info.name: (info, check) for info, check in FAULT_TABLE
}


def validate_fault(name: str, value: str) -> tuple[str, str]:
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
    return validate_fault(name, value)


@dataclass(frozen=True)
class Faults:
    """The fault dict, interpreted once per change (the hot path only reads attributes)."""

    cold_load: float = DEFAULT_COLD_LOAD
    latency: float = 0.0  # seconds, unscaled
    jitter: float = 0.0
    drop_rate: float = 0.0
    auth: str | None = None
    origins: tuple[str, ...] = ()
    allow_all_origins: bool = False
    host_check: str | None = None
    rate: float | None = None
    queue: int = DEFAULT_QUEUE
    busy: bool = False
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
    def build(cls, raw: dict[str, str], version: str) -> Faults:
        g = raw.get
        origins = tuple(e.lower() for e in origin_entries(g("origins", "")))
        return cls(
            cold_load=float(g("cold-load", str(DEFAULT_COLD_LOAD))),
            latency=float(g("latency", "0")) / 1000,
            jitter=float(g("jitter", "0")) / 1000,
            drop_rate=float(g("drop-rate", "0")),
            auth=g("auth"),
            origins=origins + tuple(BUILTIN_ORIGINS),
            allow_all_origins="*" in origins,
            host_check=g("host-check", "").lower() or None,
            rate=float(raw["rate-limit"]) if "rate-limit" in raw else None,
            queue=int(raw["queue"]) if "queue" in raw else DEFAULT_QUEUE,
            busy="busy" in raw,
            runner_crash=(g("runner-crash") or "new").lower() if "runner-crash" in raw else None,
            oom=(g("oom") or "new").lower() if "oom" in raw else None,
            mid_stream_error=(g("mid-stream-error") or DEFAULT_MID_STREAM)
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


class Bucket:
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
