"""Bounded network primitives shared by the probes: resolve, TCP connect, one HTTP exchange.

Each returns a record instead of raising, with failures classified into a small closed set of
kinds (``ErrorKind``) by one table, as httpx maps low-level exceptions to its own. Every call
has a timeout and every read a byte limit, so a server that never answers or sends 10 GB costs
one ``--timeout`` and at most ``max_bytes`` of memory.

Requests never use the environment's proxy settings (``trust_env=False``): the proxy probe
passes ``proxy=`` explicitly when it wants the proxied path.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

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
    ttfb_ms: float | None = None
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

# httpx exception class name → kind, most specific first; ConnectError is refined by its cause.
_HTTPX_KINDS: tuple[tuple[str, ErrorKind], ...] = (
    ("ConnectTimeout", "connect-timeout"),
    ("ReadTimeout", "read-timeout"),
    ("WriteTimeout", "read-timeout"),
    ("PoolTimeout", "read-timeout"),
    ("ProxyError", "proxy"),
    ("RemoteProtocolError", "protocol"),
    ("LocalProtocolError", "protocol"),
    ("ReadError", "reset"),
    ("WriteError", "reset"),
    ("UnsupportedProtocol", "invalid"),
    ("InvalidURL", "invalid"),
)


def classify(exc: BaseException) -> NetError:
    """Map any exception from a network call to an ``ErrorKind`` with a readable message."""
    message = _message(exc)
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return NetError("tls-verify", message, type(exc).__name__)
        if isinstance(item, ssl.SSLError):
            text = str(item).upper()
            plain = ("WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text
                     or "PACKET_LENGTH_TOO_LONG" in text or "HTTP_REQUEST" in text)
            return NetError("tls-plain" if plain else "tls-verify", message, type(exc).__name__)
        if isinstance(item, socket.gaierror):
            return NetError("dns", message, type(exc).__name__)
    name = type(exc).__name__
    for cls_name, kind in _HTTPX_KINDS:
        if name == cls_name:
            if kind == "proxy" and "SOCKS" in message.upper():
                return NetError("proxy-unsupported", message, name)
            return NetError(kind, message, name)
    if isinstance(exc, ImportError) and "socks" in message.lower():
        return NetError("proxy-unsupported", message, name)
    if isinstance(exc, ValueError) and "proxy" in message.lower():
        return NetError("proxy-unsupported", message, name)
    for item in chain:
        if isinstance(item, OSError) and item.errno in _ERRNO_KINDS:
            return NetError(_ERRNO_KINDS[item.errno], message, name)
        if isinstance(item, (TimeoutError, socket.timeout)):
            return NetError("connect-timeout" if "Connect" in name else "read-timeout",
                            message, name)
    low = message.lower()
    for needle, kind in _MESSAGE_KINDS:
        if needle in low:
            return NetError(kind, message, name)
    return NetError("other", message, name)


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


# --------------------------------------------------------------------------------------------
# HTTP


def trust_store(env: Any) -> ssl.SSLContext | bool:
    """What an httpx client (ollama-python's) verifies against: ``SSL_CERT_FILE`` or
    ``SSL_CERT_DIR`` when set and loadable, else httpx's default (certifi). An unloadable file
    falls back to the default; the latency probe reports it as a finding."""
    cafile, capath = env.get("SSL_CERT_FILE", ""), env.get("SSL_CERT_DIR", "")
    try:
        if cafile:
            return ssl.create_default_context(cafile=cafile)
        if capath:
            return ssl.create_default_context(capath=capath)
    except (OSError, ssl.SSLError):
        pass
    return True


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
) -> HttpReply:
    """One HTTP exchange, bounded in time and bytes. Never raises for network trouble."""
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
                            started=started)
    except Exception as exc:  # building the client failed (a bad proxy URL, say)
        reply.error = classify(exc)
    reply.elapsed_ms = (time.perf_counter() - started) * 1000
    return reply


def exchange(client: Any, method: str, url: str, *, timeout: float, connect_timeout: float,
             headers: dict[str, str], json_body: Any = None, content: bytes | None = None,
             max_bytes: int = MAX_BODY, started: float | None = None) -> HttpReply:
    """One bounded exchange on an existing ``httpx.Client``; never raises for network trouble.

    Timed from ``started`` (default: now), so a caller that times a model load can leave out
    the tens of milliseconds that building a client (loading CA certificates) costs.
    """
    import httpx

    reply = HttpReply(method, url)
    started = time.perf_counter() if started is None else started
    kwargs: dict[str, Any] = {"headers": headers,
                              "timeout": httpx.Timeout(timeout, connect=connect_timeout)}
    if json_body is not None:
        kwargs["json"] = json_body
    elif content is not None:
        kwargs["content"] = content
    try:
        with client.stream(method, url, **kwargs) as response:
            reply.ttfb_ms = (time.perf_counter() - started) * 1000
            reply.status = response.status_code
            reply.headers = {k.lower(): v for k, v in response.headers.items()}
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    reply.truncated = True
                    break
            reply.body = b"".join(chunks)[:max_bytes]
    except Exception as exc:
        reply.error = classify(exc)
    reply.elapsed_ms = (time.perf_counter() - started) * 1000
    return reply

