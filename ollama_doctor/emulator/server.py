"""The HTTP server: ``Emulator`` (listening socket, connections, dispatch) and ``serve_forever``.

A request goes: read and frame (``wire``) → record → connection faults (``hang``, ``drop-rate``,
``latency``/``jitter``) → faults in front of Ollama (``middleware.front``) → ServeMux/gin
redirects → CORS → Host check → 404/405 → the route's handler (``routes_native``,
``routes_openai``), which schedules loads through ``scheduler`` and raises ``HTTPError`` for the
error shape of its route.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from . import middleware, routes_native, routes_openai
from .faults import Bucket, Faults, validate_fault
from .logs import Log, log_startup
from .models import ModelSpec, default_models, display_name
from .scheduler import LoadedModel, Scheduler
from .wire import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    BadRequest,
    ClientGone,
    Conn,
    Ctx,
    HTTPError,
    Hung,
    Request,
    Responder,
    fail,
    go_json,
    local_time,
    parse_head,
)

RECORD_BODY_BYTES = 64 * 1024
MAX_RECORDS = 20_000  # oldest half dropped beyond this, so a long benchmark cannot eat memory

Handler = Callable[["Emulator", Ctx], Awaitable[None]]
HANDLERS: dict[str, Handler] = {**routes_native.HANDLERS, **routes_openai.HANDLERS}


@dataclass
class EmulatorConfig:
    models: list[ModelSpec] = field(default_factory=default_models)
    faults: dict[str, str] = field(default_factory=dict)  # name -> value ("" if none)
    version: str = "0.33.0"
    bind: str = "127.0.0.1"
    port: int = 0
    log_file: str | None = None  # Ollama-format log lines are appended here
    time_scale: float = 1.0  # multiplies every configured delay


@dataclass
class RequestRecord:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: bytes  # first 64 KiB
    time: float  # time.time() when the headers were read
    query: str = ""


def _is_loopback_bind(bind: str) -> bool:
    if bind.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False


def _dual_stack_socket(port: int) -> socket.socket:
    """``[::]`` as Go listens on it: IPv6 *and* IPv4 (IPV6_V6ONLY off; asyncio turns it on)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _client_ip(conn: Conn, req: Request) -> str:
    # gin trusts every proxy by default: X-Forwarded-For (leftmost), then X-Real-IP.
    for header in ("x-forwarded-for", "x-real-ip"):
        value = req.headers.get(header)
        if value:
            candidate = value.split(",")[0].strip()
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(candidate)
                return candidate
    return conn.peer_ip


def _continue(conn: Conn, req: Request) -> None:
    if req.headers.get("expect", "").lower() == "100-continue" and len(conn.buf) == 0:
        conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


async def _read_chunked(conn: Conn) -> bytes:
    body = bytearray()
    while True:
        size_line = (await conn.read_line()).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise BadRequest("400 Bad Request", "") from None
        if size == 0:
            while await conn.read_line():
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise BadRequest("413 Request Entity Too Large", "")
        body += await conn.read_exact(size)
        await conn.read_exact(2)


async def _read_body(conn: Conn, req: Request) -> bytes:
    te = req.headers.get("transfer-encoding", "").lower()
    length_text = req.headers.get("content-length")
    if te:
        if te != "chunked":
            raise BadRequest("501 Not Implemented", "unsupported transfer encoding")
        _continue(conn, req)
        return await _read_chunked(conn)
    if length_text is None:
        return b""
    if not length_text.isdigit():
        raise BadRequest("400 Bad Request", "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest("413 Request Entity Too Large", "")
    if length == 0:
        return b""
    _continue(conn, req)
    return await conn.read_exact(length)


class Emulator:
    """An Ollama look-alike on a real socket. ``start()`` runs it in a daemon thread."""

    def __init__(self, config: EmulatorConfig | None = None, **faults: str) -> None:
        base = config if config is not None else EmulatorConfig()
        raw: dict[str, str] = {}
        for name, value in list(base.faults.items()) + list(faults.items()):
            key, val = validate_fault(name, str(value))
            raw[key] = val
        self.config = replace(base, faults=raw, models=list(base.models))
        self.host = self.config.bind
        self.port = self.config.port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._f = Faults.build(raw, self.config.version)
        self._bucket = Bucket(self._f.rate) if self._f.rate else None
        self._drop_rng = random.Random(self._f.seed)
        self._jitter_rng = random.Random(self._f.seed + 1)
        self.id_rng = random.Random(self._f.seed + 2)
        self.version_body = go_json({"version": self._f.version})
        self.log = Log(self.config.log_file)
        self.sched = Scheduler(self.log, self.config.time_scale)
        self._hostname = socket.gethostname().lower()
        self._epoch = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._stopped = False
        self._loopback = _is_loopback_bind(self.config.bind)

    # ---- public control ------------------------------------------------------------------

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        """Models in memory (including ones still loading), by display name."""
        now = time.time()
        return {k: v for k, v in dict(self.sched.loaded).items() if not v.expired(now)}

    @property
    def faults(self) -> dict[str, str]:
        return dict(self.config.faults)

    def set_fault(self, name: str, value: str = "") -> None:
        key, val = validate_fault(name, value)
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
        new = Faults.build(raw, self.config.version)
        self.config.faults = raw
        if new.rate != old.rate:
            self._bucket = Bucket(new.rate) if new.rate else None
        if new.seed != old.seed:
            self._drop_rng = random.Random(new.seed)
            self._jitter_rng = random.Random(new.seed + 1)
            self.id_rng = random.Random(new.seed + 2)
        self.version_body = go_json({"version": new.version})
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
        self.log.close()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what handlers ask of the server -----------------------------------------------------

    def find(self, name: str) -> ModelSpec | None:
        """The installed model ``name`` refers to (tag and case as Ollama matches them)."""
        display = display_name(name)
        if display is None:
            return None
        low = display.lower()
        for spec in self.config.models:
            if spec.name.lower() == low:
                return spec
        return None

    def modified(self, index: int) -> datetime:
        """``modified_at`` of the model at ``index``: an hour apart, newest first."""
        return local_time(self._epoch - 3600 * (index + 1))

    # ---- server lifecycle ------------------------------------------------------------------

    async def _open(self) -> None:
        self._stop_event = asyncio.Event()
        bind = self.config.bind.strip("[]")
        # One socket only: "localhost" or "" could bind two families on two ephemeral ports.
        listen_host = {"": "0.0.0.0", "localhost": "127.0.0.1"}.get(bind.lower(), bind)
        if listen_host == "::":
            self._server = await asyncio.start_server(
                self._handle_conn,
                sock=_dual_stack_socket(self.config.port),
                limit=MAX_HEADER_BYTES + 1024,
            )
        else:
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
        log_startup(self.log, self._f, listen_host, self.port, len(self.config.models))

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

    # ---- connection handling ---------------------------------------------------------------

    async def _handle_conn(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        conn = Conn(reader, writer)
        try:
            while not self._closing:
                if not await self._serve_one(conn):
                    break
        except (ClientGone, Hung, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_one(self, conn: Conn) -> bool:
        """Serve one request; return whether to keep the connection open."""
        try:
            head = await conn.read_head()
            if head is None:
                return False
            req = parse_head(head, time.perf_counter())
            req.body = await _read_body(conn, req)
        except BadRequest as bad:
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
        rsp = Responder(conn, req, f)
        if not await middleware.front(req, rsp, f, self._bucket):
            await self._ollama(conn, req, rsp, f)
        if conn.writer.transport.get_write_buffer_size() > 65536:
            await conn.writer.drain()
        return not rsp.close

    def _record(self, req: Request) -> None:
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

    # ---- Ollama: gin's router and middleware, then the handler ------------------------------

    async def _ollama(self, conn: Conn, req: Request, rsp: Responder, f: Faults) -> None:
        if await middleware.unclean_or_slash_redirect(req, rsp):
            return
        if self.log.enabled:
            log_path = req.path + ("?" + req.query if req.query else "")
            rsp.logger = lambda status: self.log.gin(
                status,
                int((time.perf_counter() - req.start) * 1e9),
                _client_ip(conn, req),
                req.method,
                log_path,
            )
        try:
            await self._dispatch(conn, req, rsp, f)
        except ClientGone:
            if not rsp.status:
                rsp.status = 499  # the client hung up before the answer: gin logs 499
            raise
        finally:
            rsp.finish_log()

    async def _dispatch(self, conn: Conn, req: Request, rsp: Responder, f: Faults) -> None:
        if await middleware.cors(req, rsp, f):
            return
        # allowedHostsMiddleware: only when listening on loopback.
        applies = f.host_check == "on" or (f.host_check != "off" and self._loopback)
        if applies and await middleware.host_check(req, rsp, self._hostname):
            return
        route = middleware.route_for(req.path)
        if await middleware.route_errors(req, rsp, route) or route is None:
            return
        key, _methods, param = route
        ctx = Ctx(
            req=req,
            rsp=rsp,
            f=f,
            conn=conn,
            param=param,
            t0=time.perf_counter(),
            v1=key.startswith("/v1/"),
        )
        handler = HANDLERS.get(key)
        if handler is None:
            await fail(ctx, 501, "not implemented by the ollama-doctor emulator")
            return
        try:
            await handler(self, ctx)
        except HTTPError as err:
            if rsp.streaming:
                await rsp.chunk(go_json({"error": err.message}) + b"\n")
                await rsp.end_stream()
            elif err.body is not None:
                await rsp.send_json(err.status, err.body)
            else:
                await fail(ctx, err.status, err.message)


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
        emulator.log.close()
