"""The injected outside world: options, environment, clock, filesystem root, resolver, HTTP.

Probes never read ``os.environ``, ``/proc`` or the network directly; they ask the context, so
tests can swap any of these (a fixture ``/proc`` tree, an environment without the developer's
proxy variables, a fake process list).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ollama_doctor.target import Target

if TYPE_CHECKING:
    from ollama_doctor.errortext import ErrorAnalysis
    from ollama_doctor.net import HttpReply
    from ollama_doctor.result import ProbeResult


@dataclass(frozen=True)
class Options:
    """Every option a probe may read. ``check`` and ``probe`` share them."""

    timeout: float = 5.0
    client_timeout: float | None = None
    load_timeout: float = 300.0
    model: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    origin: str | None = None
    samples: int = 5
    latency_threshold_ms: float | None = None
    needs: tuple[str, ...] = ()
    cold: bool = False
    discover: bool = False
    candidates: tuple[str, ...] = ()  # hosts --discover tries; empty = the usual places
    nameservers: tuple[str, ...] = ()
    log_file: str | None = None
    log_lines: int = 2000
    concurrency: int | None = None
    load: bool = False
    load_call: str = "version"
    load_max_rate: float = 500.0
    load_max_requests: int = 2000
    load_max_seconds: float = 20.0
    server_pids: tuple[int, ...] = ()
    error_text: str | None = None
    debug: bool = False


GetAddrInfo = Callable[..., list[tuple[Any, ...]]]
OP_FLOOR = 1.0  # seconds an operation gets even past the run's deadline


@dataclass
class Context:
    target: Target
    options: Options = field(default_factory=Options)
    env: Mapping[str, str] = field(default_factory=dict)
    fs_root: Path = Path("/")
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    getaddrinfo: GetAddrInfo = socket.getaddrinfo
    deadline: float | None = None
    results: dict[str, ProbeResult] = field(default_factory=dict)
    error: ErrorAnalysis | None = None  # the pasted client error, analysed (check --error)
    memo: dict[str, Any] = field(default_factory=dict)  # per-run cache of local look-ups

    # -- time -----------------------------------------------------------------------------
    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def op_timeout(self, limit: float | None = None) -> float:
        """Timeout for one network operation: ``--timeout`` (or ``limit``), cut to the deadline.

        Past the deadline an operation still gets ``min(timeout, 1 s)``: enough for a healthy
        server on a loaded machine, little enough that a run of stragglers stays bounded.
        """
        value = self.options.timeout if limit is None else limit
        left = self.remaining()
        if left is not None:
            value = min(value, max(left, min(value, OP_FLOOR)))
        return value

    # -- files ----------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        """``/proc/1/cgroup`` → the same path under the injected filesystem root."""
        return self.fs_root / name.lstrip("/")

    # -- what the user's client sends -------------------------------------------------------
    def client_headers(self, *, with_origin: bool = True) -> dict[str, str]:
        """Headers the user's client sends: ``--header`` values, ``OLLAMA_API_KEY`` as a bearer
        token (as ollama-python does, unless an Authorization header is given), ``--origin``."""
        headers = {name: value for name, value in self.options.headers}
        lower = {k.lower() for k in headers}
        key = self.env.get("OLLAMA_API_KEY", "")
        if key and "authorization" not in lower:
            headers["Authorization"] = f"Bearer {key}"
        if with_origin and self.options.origin and "origin" not in lower:
            headers["Origin"] = self.options.origin
        return headers

    def secrets(self) -> list[str]:
        """Exact strings that must never be printed."""
        out = [v for k, v in self.options.headers if _secretish(k)]
        out += [v.split(None, 1)[-1] for k, v in self.options.headers if _secretish(k)]
        for name, value in self.env.items():
            if _secretish(name) and value:
                out.append(value)
            if "PROXY" in name.upper() and "@" in value:
                out.extend(_url_password(value))
        return [s for s in out if s]

    # -- network --------------------------------------------------------------------------
    def http(self, method: str, url: str, **kwargs: Any) -> HttpReply:
        """One bounded HTTP exchange; see ``net.request``. Never raises for network trouble."""
        from ollama_doctor import net

        kwargs.setdefault("timeout", self.op_timeout())
        if url.startswith("https:") and "verify" not in kwargs:
            if "trust_store" not in self.memo:
                self.memo["trust_store"] = net.trust_store(self.env)
            kwargs["verify"] = self.memo["trust_store"]
        return net.request(method, url, **kwargs)

    def result(self, probe_id: str) -> ProbeResult | None:
        return self.results.get(probe_id)


def _secretish(name: str) -> bool:
    from ollama_doctor.redact import is_secret_name

    return is_secret_name(name)


def _url_password(value: str) -> list[str]:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(value).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []
