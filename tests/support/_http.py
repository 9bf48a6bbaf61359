"""Bounded HTTP/1.1 plumbing shared by the test proxies.

Just enough HTTP/1.1 to relay messages faithfully: a buffered socket reader whose every read has a
size limit, head parsing, request-body reading (Content-Length or chunked) and response-body relay
that keeps the upstream's framing (chunked NDJSON passes through chunk by chunk, unbuffered).

Also holds the loopback guard: the test servers never dial anything but loopback addresses and never
ask the system resolver, so a test cannot send a packet off the machine by accident.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

MAX_HEAD = 64 * 1024
MAX_LINE = 8 * 1024
MAX_BODY = 16 * 1024 * 1024
MAX_RELAY = 256 * 1024 * 1024
RECV_SIZE = 64 * 1024

# Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones a proxy consumes itself (Proxy-*, and
# Expect, answered by read_request_body).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "expect",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class HTTPError(Exception):
    """The peer sent something that is not acceptable HTTP/1.1 (or exceeded a size limit)."""


class Headers:
    """An ordered, case-preserving header list with case-insensitive lookups."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._items if k.lower() == lname]

    def remove(self, name: str) -> None:
        lname = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lname]

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def tokens(self, name: str) -> frozenset[str]:
        """Comma-separated tokens of a header, lower-cased (e.g. ``Connection: close``)."""
        return frozenset(
            t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()
        )

    def is_chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")

    def to_dict(self) -> dict[str, str]:
        """Lower-cased names; repeated headers joined with ``", "``."""
        out: dict[str, str] = {}
        for k, v in self._items:
            key = k.lower()
            out[key] = f"{out[key]}, {v}" if key in out else v
        return out

    def without_hop_by_hop(self) -> Headers:
        """A copy without hop-by-hop headers, including those named in ``Connection``."""
        drop = HOP_BY_HOP | self.tokens("connection")
        return Headers((k, v) for k, v in self._items if k.lower() not in drop)


class Reader:
    """Buffered reads from a socket; every method has an upper bound on what it buffers.

    Timeouts come from the socket (``settimeout``); a timeout raises ``TimeoutError``.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    def read_head(self, limit: int = MAX_HEAD) -> bytes | None:
        """Bytes up to and including the blank line; ``None`` on EOF before any byte."""
        while True:
            self._buf = self._buf.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore leading empty lines
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head, self._buf = self._buf[: end + 4], self._buf[end + 4 :]
                return head
            if len(self._buf) > limit:
                raise HTTPError("header section too large")
            if not self._fill():
                if self._buf:
                    raise HTTPError("connection closed inside the header section")
                return None

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """One line including its CRLF."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[: end + 1], self._buf[end + 1 :]
                return line
            if len(self._buf) > limit:
                raise HTTPError("line too long")
            if not self._fill():
                raise HTTPError("connection closed inside a line")

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise HTTPError("connection closed inside a body")
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def take_buffered(self) -> bytes:
        """Bytes already received but not yet consumed (e.g. what follows a CONNECT head)."""
        data, self._buf = self._buf, b""
        return data

    def read_some(self, limit: int = RECV_SIZE) -> bytes:
        """Whatever is available (at most ``limit`` bytes); ``b""`` at EOF."""
        if not self._buf and not self._fill():
            return b""
        data, self._buf = self._buf[:limit], self._buf[limit:]
        return data


class RecordedRequest(NamedTuple):
    """One request as a test server received it; header names lower-cased."""

    method: str
    target: str
    headers: dict[str, str]


class RequestHead(NamedTuple):
    method: str
    target: str
    version: str
    headers: Headers


class ResponseHead(NamedTuple):
    version: str
    status: int
    reason: str
    headers: Headers


def _split_head(raw: bytes) -> tuple[str, Headers]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = Headers()
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise HTTPError("obsolete header line folding")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError(f"malformed header line {line!r}")
        headers.add(name, value.strip())
    return lines[0], headers


def parse_request_head(raw: bytes) -> RequestHead:
    start, headers = _split_head(raw)
    parts = start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HTTPError(f"malformed request line {start!r}")
    return RequestHead(parts[0], parts[1], parts[2], headers)


def parse_response_head(raw: bytes) -> ResponseHead:
    start, headers = _split_head(raw)
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise HTTPError(f"malformed status line {start!r}")
    return ResponseHead(version, int(code), reason, headers)


def render_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def render_response(
    status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    """A complete response; ``Content-Length`` is added from ``body``."""
    items = [*headers, ("Content-Length", str(len(body)))]
    return render_head(f"HTTP/1.1 {status} {reason}", items) + body


def http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def wants_keep_alive(head: RequestHead) -> bool:
    tokens = head.headers.tokens("connection") | head.headers.tokens("proxy-connection")
    if head.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def read_request_body(reader: Reader, headers: Headers, limit: int = MAX_BODY) -> bytes:
    """The de-chunked request body (``b""`` when the request has none).

    Answers ``Expect: 100-continue`` first (curl sends it for large bodies and would otherwise
    wait a second before sending).
    """
    has_body = headers.is_chunked() or headers.get("content-length") not in (None, "0")
    if has_body and "100-continue" in headers.tokens("expect"):
        reader.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if headers.is_chunked():
        body = b""
        while True:
            size = _chunk_size(reader.readline())
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n"):  # trailer section
                    pass
                return body
            if len(body) + size > limit:
                raise HTTPError("request body too large")
            body += reader.read_exact(size)
            reader.read_exact(2)
    length = headers.get("content-length")
    if length is None:
        return b""
    if not length.isdigit() or int(length) > limit:
        raise HTTPError(f"bad or too large Content-Length {length!r}")
    return reader.read_exact(int(length))


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    try:
        return int(text, 16)
    except ValueError:
        raise HTTPError(f"bad chunk size line {line!r}") from None


def relay_response_body(
    reader: Reader, dst: socket.socket, method: str, head: ResponseHead, limit: int = MAX_RELAY
) -> bool:
    """Copy a response body from ``reader`` to ``dst`` keeping its framing, as it arrives.

    Returns True when the body was self-delimiting (the client connection may be reused) and False
    when it was delimited by the upstream closing (the client connection must be closed too).
    """
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return True
    sent = 0
    if head.headers.is_chunked():
        while True:
            line = reader.readline()
            size = _chunk_size(line)
            if size == 0:
                trailer = line
                while True:
                    part = reader.readline()
                    trailer += part
                    if part in (b"\r\n", b"\n"):
                        break
                dst.sendall(trailer)
                return True
            sent += size
            if sent > limit:
                raise HTTPError("relayed body too large")
            dst.sendall(line + reader.read_exact(size + 2))
    length = head.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HTTPError(f"bad Content-Length {length!r}")
        remaining = int(length)
        if remaining > limit:
            raise HTTPError("relayed body too large")
        while remaining:
            data = reader.read_some(min(remaining, RECV_SIZE))
            if not data:
                raise HTTPError("upstream closed inside a body")
            dst.sendall(data)
            remaining -= len(data)
        return True
    while data := reader.read_some():
        sent += len(data)
        if sent > limit:
            raise HTTPError("relayed body too large")
        dst.sendall(data)
    return False


def split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host → (host without brackets, port)."""
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep:
            raise HTTPError(f"bad authority {authority!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if not host:
        raise HTTPError(f"bad authority {authority!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise HTTPError(f"bad port in {authority!r}")
    return host, int(port_text)


def literal_or_localhost(host: str) -> str | None:
    """The address for an IP literal or a ``localhost`` name; ``None`` for anything else.

    Deliberately no system resolver: a test server must not send DNS queries to the machine's
    nameserver, and must not learn addresses outside loopback by accident.
    """
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def connect_loopback(
    address: str, port: int, timeout: float, on_socket: Callable[[socket.socket], None]
) -> socket.socket:
    """Open a TCP connection to a loopback address, refusing anything else before dialling.

    ``on_socket`` sees the socket before ``connect`` so that a stopping server can interrupt it.
    """
    if not is_loopback(address):
        raise PermissionError(f"test servers only dial loopback; refusing {address}")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        on_socket(sock)
        sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
