"""``ollama-doctor exporter``: a Prometheus exporter in blackbox_exporter's multi-target style.

- ``/probe?target=URL&model=NAME&probes=a,b`` runs one check on demand and answers in the
  Prometheus text format (``metrics.py`` lists every metric). Prometheus decides what to probe
  and how often; one exporter serves any number of servers. The fleet probe set is the
  default, so a scrape never loads a model or ramps load unless ``probes=`` asks for it.
- ``/metrics``: the exporter's own process metrics, plus the last results of ``--target``
  servers probed in the background every ``--interval`` seconds (labelled ``target``).
- ``/healthz``: ``ok``, for the exporter's own liveness.

Bounds: at most ``max_concurrent`` checks run at once; a scrape waits for a slot and for its
check no longer than its budget — Prometheus's ``X-Prometheus-Scrape-Timeout-Seconds`` header
minus half a second (blackbox_exporter's ``timeout_offset``), else ``2 × timeout + 1`` — and
then answers ``ollama_doctor_check_success 0`` with ``ollama_doctor_check_timed_out 1``, so a
slow target never holds other scrapes. Errors are one line of text, never a traceback.

``/probe`` checks whatever URL the scraper names, so it never sends ``OLLAMA_API_KEY`` unless
``probe_api_key`` (``--probe-api-key``) says so; ``--target`` checks, named by the operator,
send it as the user's client would.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ollama_doctor.session import FLEET_PROBES, probe_ids, run_check

SCRAPE_HEADER = "HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"
TIMEOUT_OFFSET = 0.5  # seconds kept for the answer itself, as blackbox_exporter does
DEFAULT_LISTEN = "127.0.0.1:9765"

StartResponse = Callable[..., Any]


class ListenError(ValueError):
    """A --listen value that cannot be used."""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (loopback) → (host, port)."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ListenError(f"invalid --listen {value!r}: expected HOST:PORT, e.g. "
                          f"{DEFAULT_LISTEN}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ListenError(f"invalid --listen {value!r}: port {port} is out of range (0-65535)")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


@dataclass
class ExporterConfig:
    listen: str = DEFAULT_LISTEN
    targets: Sequence[str] = ()
    model: str | None = None
    interval: float = 60.0
    timeout: float = 5.0
    max_concurrent: int = 8
    probes: Sequence[str] = FLEET_PROBES
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # /probe takes its target from whoever scrapes: it sends OLLAMA_API_KEY only when asked
    probe_api_key: bool = False


class Exporter:
    """The WSGI application plus its background prober; ``serve()`` runs it."""

    def __init__(self, config: ExporterConfig,
                 check: Callable[..., dict[str, Any]] = run_check) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            GCCollector,
            PlatformCollector,
            ProcessCollector,
        )

        self.config = config
        self._check = check
        self._probes = probe_ids(config.probes)
        self._pool = ThreadPoolExecutor(max_workers=config.max_concurrent,
                                        thread_name_prefix="od-exporter")
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        self._last: dict[str, dict[str, Any]] = {}
        self._last_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._shared: dict[str, Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._scrapes = Counter("ollama_doctor_exporter_probes", "/probe requests answered, "
                                "by result.", ["result"], registry=self.registry)
        self._in_flight = Gauge("ollama_doctor_exporter_checks_in_flight",
                                "Checks running now.", registry=self.registry)
        self.registry.register(_LastResults(self))
        self.server: Any = None

    # ---- checks ---------------------------------------------------------------------------
    def _run(self, target: str, model: str | None, probes: Sequence[str],
             timeout: float, env: Mapping[str, str]) -> dict[str, Any]:
        self._in_flight.inc()
        started = time.perf_counter()
        try:
            doc = self._check(target, model=model, probes=probes, timeout=timeout,
                              env=env, command="exporter", shared=None)
        finally:
            self._in_flight.dec()
            self._slots.release()
        doc.setdefault("fleet", {})["elapsed_s"] = round(time.perf_counter() - started, 3)
        return doc

    def submit(self, target: str, model: str | None, probes: Sequence[str], timeout: float,
               wait: float, *, trusted: bool = False) -> Future[dict[str, Any]] | None:
        """A running check, or None when no slot freed up within ``wait`` seconds.

        ``trusted``: the operator named the target (``--target``), so the check may send the
        API key; a ``/probe`` target comes from whoever can reach the exporter.
        """
        env = self.config.env
        if not trusted and not self.config.probe_api_key:
            env = {k: v for k, v in env.items() if k != "OLLAMA_API_KEY"}
        if not self._slots.acquire(timeout=max(0.0, wait)):
            return None
        try:
            return self._pool.submit(self._run, target, model, probes, timeout, env)
        except RuntimeError:  # shutting down
            self._slots.release()
            return None

    # ---- background targets -------------------------------------------------------------
    def start_background(self) -> None:
        if self.config.targets:
            threading.Thread(target=self._background, name="od-exporter-bg",
                             daemon=True).start()

    def _background(self) -> None:
        interval = self.config.interval
        next_at = time.monotonic()
        while not self._stop.is_set():
            futures = []
            for target in self.config.targets:
                future = self.submit(target, self.config.model, self._probes,
                                     self.config.timeout, wait=interval, trusted=True)
                if future is not None:
                    futures.append((target, future))
            for target, future in futures:
                with contextlib.suppress(Exception):
                    self._last[target] = future.result(timeout=2 * self.config.timeout + 5)
                    self._last_at[target] = time.time()
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - interval)

    def last_results(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [({"target": t}, doc) for t, doc in list(self._last.items())]

    # ---- HTTP -----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            path = environ.get("PATH_INFO") or "/"
            if path == "/probe":
                return self._probe(environ, start_response)
            if path == "/metrics":
                from prometheus_client import make_wsgi_app

                app: Callable[..., Iterable[bytes]] = make_wsgi_app(self.registry)
                return app(environ, start_response)
            if path in ("/healthz", "/-/healthy"):
                return _text(start_response, "200 OK", "ok")
            if path == "/":
                return _text(start_response, "200 OK", _INDEX)
            return _text(start_response, "404 Not Found", f"no such page: {path}")
        except Exception as exc:  # one line, never a traceback
            sys.stderr.write(f"ollama-doctor exporter: {type(exc).__name__}: {exc}\n")
            return _text(start_response, "500 Internal Server Error",
                         f"internal error: {type(exc).__name__}: {exc}")

    def budget(self, environ: Mapping[str, Any]) -> float:
        default = 2 * self.config.timeout + 1
        raw = environ.get(SCRAPE_HEADER)
        if raw:
            try:
                scrape = float(raw)
            except ValueError:
                return default
            if scrape > 0:
                return max(0.5, min(default, scrape - TIMEOUT_OFFSET))
        return default

    def _probe(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        import prometheus_client
        from prometheus_client import CollectorRegistry, generate_latest

        # The classic text format every Prometheus 2.x reads (newer clients label it 1.0.0).
        content_type = getattr(prometheus_client, "CONTENT_TYPE_PLAIN_0_0_4",
                               "text/plain; version=0.0.4; charset=utf-8")

        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        target = (query.get("target") or [""])[0].strip()
        if not target:
            return _text(start_response, "400 Bad Request", "target parameter is missing")
        model = (query.get("model") or [""])[0].strip() or None
        try:
            probes = (probe_ids(",".join(query["probes"]).split(","))
                      if query.get("probes") else self._probes)
            from ollama_doctor.target import parse_target

            parse_target(target, "option")
        except ValueError as exc:
            return _text(start_response, "400 Bad Request", str(exc))
        budget = self.budget(environ)
        started = time.monotonic()
        # The check's own deadline is 2 × timeout: keep it inside the scrape's budget.
        timeout = max(0.2, min(self.config.timeout, (budget - 0.2) / 2))
        future = self.submit(target, model, probes, timeout, wait=budget / 2)
        if future is None:
            self._scrapes.labels("busy").inc()
            return _text(start_response, "503 Service Unavailable",
                         f"too many checks in flight (at most {self.config.max_concurrent}); "
                         "raise --max-concurrent or scrape less often")
        try:
            doc = future.result(timeout=max(0.1, budget - (time.monotonic() - started)))
        except FutureTimeout:
            doc = {"summary": {"exit_code": 1}, "checks": [], "diagnosis": [],
                   "fleet": {"elapsed_s": round(time.monotonic() - started, 3)},
                   "timed_out": True}
            self._scrapes.labels("timeout").inc()
        else:
            self._scrapes.labels("ok" if doc["summary"]["exit_code"] == 0 else "fail").inc()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_OneResult(doc))
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))])
        return [body]

    # ---- serving --------------------------------------------------------------------------
    def bind(self) -> str:
        """Open the listening socket; the URL it listens on."""
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        host, port = parse_listen(self.config.listen)

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        if ":" in host:
            import socket

            class Server6(Server):
                address_family = socket.AF_INET6

            server_class: type[WSGIServer] = Server6
        else:
            server_class = Server
        self.server = make_server(host, port, self, server_class=server_class,
                                  handler_class=Quiet)
        bound_port = self.server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{bound_port}"

    def serve(self) -> None:
        self.start_background()
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _OneResult:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def collect(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from ollama_doctor.metrics import families

        out = families([({}, self.doc)])
        if self.doc.get("timed_out"):
            out.append(GaugeMetricFamily(
                "ollama_doctor_check_timed_out", "1 when the check did not finish within the "
                "scrape's budget.", value=1.0))
        return out


class _LastResults:
    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from ollama_doctor.metrics import families

        out = families(self.exporter.last_results(), extra_labels=("target",))
        stamp = GaugeMetricFamily("ollama_doctor_last_check_timestamp_seconds",
                                  "When each --target was last checked (Unix time).",
                                  labels=["target"])
        for target, at in list(self.exporter._last_at.items()):
            stamp.add_metric([target], at)
        out.append(stamp)
        return out

    def describe(self) -> list[Any]:
        return []


def _text(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = (text.rstrip("\n") + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


_INDEX = """ollama-doctor exporter
/probe?target=URL[&model=NAME][&probes=a,b]  check one Ollama server (blackbox style)
/metrics                                     this exporter's metrics and --target results
/healthz                                     liveness"""


def run(config: ExporterConfig, announce: Callable[[str], None]) -> int:
    """The ``exporter`` command: bind, announce the URL, serve until SIGTERM/SIGINT."""
    import signal

    from ollama_doctor.target import ip_or_none

    exporter = Exporter(config)
    url = exporter.bind()
    host = parse_listen(config.listen)[0]
    address = ip_or_none(host)
    if host != "localhost" and (address is None or not address.is_loopback):
        sys.stderr.write("ollama-doctor exporter: listening beyond loopback: anyone who can "
                         "reach it can make this host send requests to any URL (/probe)\n")
    announce(url)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=exporter.server.shutdown, daemon=True).start()

    with contextlib.suppress(ValueError):  # not the main thread (tests): no signal handler
        signal.signal(signal.SIGTERM, stop)
    try:
        exporter.serve()
    except KeyboardInterrupt:
        return 0
    return 0
