"""Bounded network primitives shared by the probes: resolve, TCP connect, one HTTP exchange.

Each returns a record instead of raising, with failures classified into a small closed set of
kinds (``ErrorKind``) by one table, as httpx maps low-level exceptions to its own. Every call
has a timeout and every read a byte limit, so a server that never answers or sends 10 GB costs
one ``--timeout`` and at most ``max_bytes`` of memory. An HTTP exchange also has one total
deadline (connect + TLS + headers + body, like curl's ``--max-time``) enforced by a watchdog
(``Cutoff``), since httpx's read timeout restarts with every byte a trickling server sends.

Requests never use the environment's proxy settings (``trust_env=False``): the proxy probe
passes ``proxy=`` explicitly when it wants the proxied path.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import heapq
import itertools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # a refused port needs no TLS library: ssl is imported where it is used
    import ssl

ErrorKind = Literal[
    "refused", "connect-timeout", "read-timeout", "dns", "unreachable", "reset", "tls-verify",
    "tls-plain", "protocol", "proxy", "proxy-unsupported", "invalid", "other",
]

MAX_BODY = 1 << 20  # 1 MiB: more than any Ollama answer a probe reads whole


@dataclass
class NetError:
    kind: ErrorKind
    message: str
    exception: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, "exception": self.exception}


@dataclass
class HttpReply:
    method: str
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    elapsed_ms: float = 0.0
    # from ``started`` (as ``elapsed_ms``) to the response headers received
    headers_ms: float | None = None
    error: NetError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON (garbage, HTML, truncated)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def error_message(self) -> str | None:
        """Ollama's ``{"error": "…"}`` (or ``/v1``'s ``{"error": {"message": …}}``) text."""
        data = self.json()
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, str):
                return err
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return str(err["message"])
        return None

    def snippet(self, limit: int = 300) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= limit else text[:limit] + "…"

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.error.kind}: {self.error.message}"
        return f"HTTP {self.status}"

    def to_evidence(self, *, body: bool = True) -> dict[str, Any]:
        from ollama_doctor.redact import redact_headers, redact_text

        out: dict[str, Any] = {"request": f"{self.method} {self.url}"}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        else:
            out["status"] = self.status
            interesting = {k: v for k, v in self.headers.items()
                           if k in _EVIDENCE_HEADERS or k.startswith("x-")}
            out["headers"] = redact_headers(interesting)
            if body:
                out["body"] = redact_text(self.snippet())
        out["elapsed_ms"] = round(self.elapsed_ms, 1)
        return out


_EVIDENCE_HEADERS = {"server", "via", "proxy-agent", "content-type", "content-length",
                     "www-authenticate", "proxy-authenticate", "retry-after", "location", "allow",
                     "access-control-allow-origin"}

_ERRNO_KINDS: dict[int, ErrorKind] = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "connect-timeout",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTUNREACH: "unreachable",
    errno.EADDRNOTAVAIL: "unreachable",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
}

def _httpx_kinds() -> tuple[tuple[type[BaseException], ErrorKind], ...]:
    """httpx exception classes → kind, most specific first, tested with ``isinstance`` (as
    httpx's own transport maps httpcore's exceptions). ``ConnectError`` is refined by its cause.
    Built on first use so that importing this module does not import httpx."""
    import httpx

    return (
        (httpx.ConnectTimeout, "connect-timeout"),
        (httpx.ReadTimeout, "read-timeout"),
        (httpx.WriteTimeout, "read-timeout"),
        (httpx.PoolTimeout, "read-timeout"),
        (httpx.ProxyError, "proxy"),
        (httpx.RemoteProtocolError, "protocol"),
        (httpx.LocalProtocolError, "protocol"),
        (httpx.ReadError, "reset"),
        (httpx.WriteError, "reset"),
        (httpx.UnsupportedProtocol, "invalid"),
        (httpx.InvalidURL, "invalid"),
    )


def classify(exc: BaseException) -> NetError:
    """Map any exception from a network call to an ``ErrorKind`` with a readable message.

    In order: TLS and resolver errors anywhere in the exception's chain, httpx's own classes
    (``isinstance``, most specific first), a missing SOCKS extra, ``errno`` values and socket
    timeouts in the chain, and last the message's words (for exceptions that carry no type
    worth reading).
    """
    message = _message(exc)
    chain = _chain(exc)
    kind = (_chain_kind(chain) or _httpx_kind(exc, message) or _proxy_setup_kind(exc, message)
            or _os_kind(exc, chain) or _message_kind(message))
    return NetError(kind, message, type(exc).__name__)


def _chain_kind(chain: list[BaseException]) -> ErrorKind | None:
    """TLS verification, plain HTTP spoken to a TLS client, or a resolver failure."""
    # No TLS error exists before the TLS library is loaded, and a run that never speaks TLS
    # never loads it. Its exceptions are read from the C module ``_ssl``, which is listed only
    # once whole: ``ssl`` itself may be half imported by another thread at this moment.
    _ssl = sys.modules.get("_ssl")
    verify_error = getattr(_ssl, "SSLCertVerificationError", None)
    ssl_error = getattr(_ssl, "SSLError", None)
    for item in chain:
        if verify_error is not None and isinstance(item, verify_error):
            return "tls-verify"
        if ssl_error is not None and isinstance(item, ssl_error):
            text = str(item).upper()
            plain = ("WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text
                     or "PACKET_LENGTH_TOO_LONG" in text or "HTTP_REQUEST" in text)
            return "tls-plain" if plain else "tls-verify"
        if isinstance(item, socket.gaierror):
            return "dns"
    return None


def _httpx_kind(exc: BaseException, message: str) -> ErrorKind | None:
    if "httpx" not in sys.modules:  # an httpx exception is only possible once httpx is imported
        return None
    for cls, kind in _httpx_kinds():
        if isinstance(exc, cls):
            if kind == "proxy" and "SOCKS" in message.upper():
                return "proxy-unsupported"
            return kind
    return None


def _proxy_setup_kind(exc: BaseException, message: str) -> ErrorKind | None:
    """httpx without its ``socks`` extra, or a proxy URL it cannot use."""
    if isinstance(exc, ImportError) and "socks" in message.lower():
        return "proxy-unsupported"
    if isinstance(exc, ValueError) and "proxy" in message.lower():
        return "proxy-unsupported"
    return None


def _os_kind(exc: BaseException, chain: list[BaseException]) -> ErrorKind | None:
    for item in chain:
        if isinstance(item, OSError) and item.errno in _ERRNO_KINDS:
            return _ERRNO_KINDS[item.errno]
        if isinstance(item, (TimeoutError, socket.timeout)):
            return "connect-timeout" if _is_connect(exc) else "read-timeout"
    return None


def _message_kind(message: str) -> ErrorKind:
    low = message.lower()
    for needle, kind in _MESSAGE_KINDS:
        if needle in low:
            return kind
    return "other"


def _is_connect(exc: BaseException) -> bool:
    if "httpx" in sys.modules:
        import httpx

        return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
    return False


_MESSAGE_KINDS: tuple[tuple[str, ErrorKind], ...] = (
    ("connection refused", "refused"),
    ("name or service not known", "dns"),
    ("temporary failure in name resolution", "dns"),
    ("nodename nor servname", "dns"),
    ("no address associated", "dns"),
    ("network is unreachable", "unreachable"),
    ("no route to host", "unreachable"),
    ("timed out", "read-timeout"),
    ("connection reset", "reset"),
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and item not in seen and len(seen) < 10:
        seen.append(item)
        item = item.__cause__ or item.__context__
    return seen


def _message(exc: BaseException) -> str:
    for item in _chain(exc):
        text = str(item).strip()
        if text:
            return text.splitlines()[0][:300]
    return type(exc).__name__


# --------------------------------------------------------------------------------------------
# Resolution and TCP


@dataclass
class Resolution:
    host: str
    addresses: list[str]  # in the order getaddrinfo returned them (the order clients try)
    elapsed_ms: float
    error: NetError | None = None


def resolve(getaddrinfo: Any, host: str, port: int, timeout: float) -> Resolution:
    """``getaddrinfo`` with a timeout (it has none of its own), keeping the address order."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["infos"] = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:
            box["exc"] = exc

    started = time.perf_counter()
    thread = threading.Thread(target=work, name="od-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    elapsed = (time.perf_counter() - started) * 1000
    if thread.is_alive():
        return Resolution(host, [], elapsed,
                          NetError("dns", f"resolver did not answer within {timeout:g} s",
                                   "TimeoutError"))
    if "exc" in box:
        return Resolution(host, [], elapsed, classify(box["exc"]))
    addresses: list[str] = []
    for info in box["infos"]:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return Resolution(host, addresses, elapsed)


@dataclass
class Connect:
    address: str
    port: int
    ok: bool
    elapsed_ms: float
    error: NetError | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "ok": self.ok,
                "elapsed_ms": round(self.elapsed_ms, 2),
                "error": self.error.kind if self.error else None}


def tcp_connect(address: str, port: int, timeout: float) -> Connect:
    """One TCP handshake to one address: refused, timeout or unreachable are told apart."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    started = time.perf_counter()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except TimeoutError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Connect(address, port, False, elapsed,
                       NetError("connect-timeout", f"no answer within {timeout:g} s",
                                type(exc).__name__))
    except OSError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Connect(address, port, False, elapsed, classify(exc))
    finally:
        sock.close()
    return Connect(address, port, True, (time.perf_counter() - started) * 1000)


def tcp_connect_all(addresses: list[str], port: int, timeout: float) -> list[Connect]:
    """``tcp_connect`` to every address at once, in their order: one dropped address costs one
    timeout, not one each. A single address (the usual case) needs no thread pool, and so no
    ``concurrent.futures`` (~7 ms of imports with the logging it brings)."""
    if len(addresses) <= 1:
        return [tcp_connect(a, port, timeout) for a in addresses]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(addresses), 8),
                            thread_name_prefix="od-connect") as pool:
        return list(pool.map(lambda a: tcp_connect(a, port, timeout), addresses))


# --------------------------------------------------------------------------------------------
# HTTP


_TRUST: dict[tuple[str, str], ssl.SSLContext] = {}
_TRUST_LOCK = threading.Lock()


def trust_store(env: Any) -> ssl.SSLContext:
    """What an httpx client (ollama-python's) verifies against: ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set and loadable, else httpx's default (certifi). An unloadable file
    falls back to the default; the latency probe reports it as a finding.

    Built once per process for each setting: every ``httpx.Client`` given ``verify=True``
    loads the CA bundle again (30-45 ms of CPU), even for a plain-http target, and a check
    makes several clients.
    """
    cafile, capath = env.get("SSL_CERT_FILE", ""), env.get("SSL_CERT_DIR", "")
    with _TRUST_LOCK:
        if (cafile, capath) not in _TRUST:
            _TRUST[(cafile, capath)] = _load_trust(cafile, capath)
        return _TRUST[(cafile, capath)]


@functools.cache
def no_tls_context() -> ssl.SSLContext:
    """For a path that never speaks TLS: verifies (so a TLS connection it was not meant for
    would fail, not pass unchecked) against no CA at all, and loads none."""
    import ssl

    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _load_trust(cafile: str, capath: str) -> ssl.SSLContext:
    import ssl

    try:
        if cafile:
            return ssl.create_default_context(cafile=cafile)
        if capath:
            return ssl.create_default_context(capath=capath)
    except (OSError, ssl.SSLError):
        pass
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


# --------------------------------------------------------------------------------------------
# One wall clock per exchange
#
# httpx's timeouts are per operation: a read timeout restarts with every byte received, so a
# server that trickles one byte a second (status line, headers or body) is never cut off. A
# ``Cutoff`` adds what curl calls ``--max-time``: at the deadline a shared watchdog thread shuts
# the connection's socket down, which wakes the blocked read at once; the exchange then reports
# a ``read-timeout``. The socket is learnt from httpx's ``trace`` extension (a new connection)
# or from the response's ``network_stream`` extension (a reused one, once headers are in) and
# held as a duplicate descriptor, so shutting it down never touches a socket that was closed
# and reused meanwhile.


_POLICY = threading.local()
_EXCUSED: dict[int, float] = {}  # thread ident → seconds spent in long header waits
_EXCUSED_LOCK = threading.Lock()


def set_policy(timeout: float | None) -> None:
    """The run's ``--timeout`` for exchanges made by this thread (the runner sets it for each
    probe thread). Once response headers are in, a body gets at most this long; an exchange
    that waits longer than this for its headers (a model load, bounded by ``--load-timeout``)
    counts that wait as excused time, which the runner adds to the probe's budget."""
    _POLICY.timeout = timeout
    with _EXCUSED_LOCK:
        _EXCUSED.pop(threading.get_ident(), None)


def excused(thread_id: int) -> float:
    """Seconds the thread spent waiting for headers of exchanges longer than its policy."""
    with _EXCUSED_LOCK:
        return _EXCUSED.get(thread_id, 0.0)


class _HeaderWait:
    """Counts a long header wait as excused while it lasts (the runner polls ``excused``)."""

    def __init__(self, whole: float) -> None:
        policy: float | None = getattr(_POLICY, "timeout", None)
        self.long = policy is not None and whole > policy
        self.policy = policy
        self.thread = threading.get_ident()
        self.started = time.monotonic()
        self.base = excused(self.thread)
        self.open = self.long
        if self.long:
            self._publish(float("inf"))  # unbounded while waiting; the Cutoff bounds it

    def _publish(self, value: float) -> None:
        with _EXCUSED_LOCK:
            _EXCUSED[self.thread] = value

    def done(self) -> None:
        if self.open:
            self.open = False
            self._publish(self.base + time.monotonic() - self.started)


@contextlib.contextmanager
def header_wait(seconds: float) -> Iterator[_HeaderWait]:
    """For code that streams on its own client (warm-up's NDJSON calls): mark the wait for
    response headers of a call allowed ``seconds`` (a model load). Call ``.done()`` once the
    headers are in; leaving the block does it too. See ``set_policy``."""
    wait = _HeaderWait(seconds)
    try:
        yield wait
    finally:
        wait.done()


class _Watchdog:
    """One daemon thread that runs callbacks at their deadlines, for every exchange of a run."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, callback: Callable[[], None]) -> _Entry:
        entry = _Entry(callback)
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="od-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return entry

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, _, entry = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            if entry.active:
                with contextlib.suppress(Exception):  # a callback must never kill the watchdog
                    entry.callback()


@dataclass
class _Entry:
    callback: Callable[[], None]
    active: bool = True


_WATCHDOG = _Watchdog()


class Cutoff:
    """The total deadline of one exchange (connect + TLS + headers + body), enforced.

    Use ``extensions()`` as the request's extensions, call ``adopt_response(response)`` once
    headers are in, ``limit(seconds)`` to bring the deadline forward (a body after a slow model
    load gets ``--timeout``, not ``--load-timeout``), and ``close()`` when done. ``fired`` says
    whether the deadline, not the server, ended the exchange.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.body_limit: float | None = None  # set when ``limit`` brought the deadline forward
        self.fired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._done = False
        self._entry = _WATCHDOG.schedule(self.deadline, self._fire)

    def extensions(self) -> dict[str, Any]:
        return {"trace": self._trace}

    def limit(self, seconds: float) -> None:
        """Bring the deadline forward to ``seconds`` from now (never later)."""
        when = time.monotonic() + seconds
        with self._lock:
            if self._done or self.fired or when >= self.deadline:
                return
            self.deadline = when
            self.body_limit = seconds
            self._entry.active = False
        self._entry = _WATCHDOG.schedule(when, self._fire)

    def adopt_response(self, response: Any) -> None:
        self._adopt(response.extensions.get("network_stream"))

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        # "connection.connect_tcp.complete", "socks.connect_tcp.complete": a fresh socket. The
        # TLS stream wraps the same descriptor, so the TCP one is enough.
        if event.endswith("connect_tcp.complete") or event.endswith("start_tls.complete"):
            self._adopt(info.get("return_value"))

    def _adopt(self, stream: Any) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, ValueError):
            return
        with self._lock:
            if not self._done:
                self._socks.append(dup)
                late = self.fired
            else:
                late = None
        if late is None:
            dup.close()
        elif late:
            _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            self._done = True
            self._entry.active = False
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()

    def error(self, seconds: float | None = None) -> NetError:
        if self.body_limit is not None:
            return NetError("read-timeout",
                            f"the body did not complete within {round(self.body_limit, 2):g} s "
                            "of the response headers", "DeadlineExceeded")
        limit = round(self.seconds if seconds is None else seconds, 2)
        return NetError("read-timeout",
                        f"no complete answer within {limit:g} s (the exchange's total time "
                        "limit)", "DeadlineExceeded")


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    proxy: str | None = None,
    max_bytes: int = MAX_BODY,
    verify: bool | ssl.SSLContext = True,
    connect_timeout: float | None = None,
    total: float | None = None,
    body_timeout: float | Callable[[], float] | None = None,
) -> HttpReply:
    """One HTTP exchange, bounded in time and bytes. Never raises for network trouble.

    ``total`` is the exchange's whole time (default: the longer of ``timeout`` and
    ``connect_timeout``); see ``exchange``.
    """
    import httpx

    reply = HttpReply(method, url)
    started = time.perf_counter()
    limits = httpx.Timeout(timeout, connect=connect_timeout or timeout)
    try:
        with httpx.Client(trust_env=False, proxy=proxy, timeout=limits, verify=verify,
                          follow_redirects=False) as client:
            return exchange(client, method, url, timeout=timeout,
                            connect_timeout=connect_timeout or timeout, headers=headers or {},
                            json_body=json_body, content=content, max_bytes=max_bytes,
                            started=started, total=total, body_timeout=body_timeout)
    except Exception as exc:  # building the client failed (a bad proxy URL, say)
        reply.error = classify(exc)
    reply.elapsed_ms = (time.perf_counter() - started) * 1000
    return reply


def exchange(client: Any, method: str, url: str, *, timeout: float, connect_timeout: float,
             headers: dict[str, str], json_body: Any = None, content: bytes | None = None,
             max_bytes: int = MAX_BODY, started: float | None = None,
             total: float | None = None,
             body_timeout: float | Callable[[], float] | None = None) -> HttpReply:
    """One bounded exchange on an existing ``httpx.Client``; never raises for network trouble.

    Timed from ``started`` (default: now), so a caller that times a model load can leave out
    the tens of milliseconds that building a client (loading CA certificates) costs.

    Bounds: ``total`` seconds for everything (default: the longer of ``timeout`` and
    ``connect_timeout``), enforced by a ``Cutoff`` whatever the server trickles;
    ``body_timeout`` seconds for the body once headers are in (a model load may wait
    ``--load-timeout`` for its headers, its body only ``--timeout``; default the thread's
    policy, see ``set_policy``) — a callable is asked when the headers arrive, for a limit
    that depends on how long they took; ``max_bytes`` of body.
    A body cut by the deadline keeps its status and the bytes that came, with a
    ``read-timeout`` error.
    """
    import httpx

    reply = HttpReply(method, url)
    started = time.perf_counter() if started is None else started
    whole = total if total is not None else max(timeout, connect_timeout)
    cutoff = Cutoff(max(0.0, whole - (time.perf_counter() - started)))
    kwargs: dict[str, Any] = {"headers": headers,
                              "timeout": httpx.Timeout(timeout, connect=connect_timeout),
                              "extensions": cutoff.extensions()}
    if json_body is not None:
        kwargs["json"] = json_body
    elif content is not None:
        kwargs["content"] = content
    chunks: list[bytes] = []
    wait = _HeaderWait(whole)
    try:
        with client.stream(method, url, **kwargs) as response:
            wait.done()
            cutoff.adopt_response(response)
            body_limit = body_timeout() if callable(body_timeout) else body_timeout
            if body_limit is None:
                body_limit = wait.policy
            if body_limit is not None:
                cutoff.limit(body_limit)
            reply.headers_ms = (time.perf_counter() - started) * 1000
            reply.status = response.status_code
            reply.headers = {k.lower(): v for k, v in response.headers.items()}
            size = 0
            for chunk in response.iter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    reply.truncated = True
                    break
    except Exception as exc:
        reply.error = classify(exc)
    finally:
        wait.done()
        cutoff.close()
    reply.body = b"".join(chunks)[:max_bytes]
    if cutoff.fired and not reply.truncated:
        reply.error = cutoff.error(whole)
    reply.elapsed_ms = (time.perf_counter() - started) * 1000
    return reply
