"""A canned HTTP/1.1 server on loopback: answers from a route table or a function.

One server for the small stand-ins test files need (an Ollama that answers ``/`` and
``/api/version``, a captive portal, a webhook receiver, a hostile server), instead of an ad-hoc
``http.server`` handler per file. Built on the test servers' ``ThreadedTCPServer`` (tracked
threads joined on ``stop``, bounded reads) and ``_http``.

It answers as Go's ``net/http`` (so Ollama) does (docs/ollama-wire.md §5): no ``Server`` header
unless a reply sets one, a ``Date``, ``Content-Length``, keep-alive, and each small response in
one write (one TCP segment: latency tests time the first byte). ``TCP_NODELAY`` is set on every
connection, as Go does; without it a fresh TLS connection waits ~40 ms on Nagle and delayed ACK.

    with CannedServer(OLLAMA_ROOT) as server:           # "/" and "/api/version"
        url = server.url
    CannedServer(lambda req: Reply(500, "boom"))         # every request, one function
    CannedServer(OLLAMA_ROOT, host="::", dual_stack=True)
    CannedServer(OLLAMA_ROOT, tls=server_context)        # HTTPS, handshake per connection

Routes are keyed by path (the query and an absolute-form target's scheme and authority are
dropped, so a forward proxy's request finds the same route); a missing path is Go's
``404 page not found``. A route's value is a ``Reply`` or a function of the ``Request``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from tests.support._http import (
    HTTPError,
    Reader,
    http_date,
    parse_request_head,
    read_request_body,
    render_response,
    wants_keep_alive,
)
from tests.support._server import ThreadedTCPServer

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Reply:
    """One response. ``headers`` are sent as given (latin-1 on the wire, as Go writes bytes)."""

    status: int = 200
    body: bytes | str = b""
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, *, head_only: bool = False) -> bytes:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        items = [("Date", http_date())]
        if self.content_type is not None:
            items.append(("Content-Type", self.content_type))
        items += self.headers
        raw = render_response(self.status, _REASONS.get(self.status, "Status"), items, body)
        return raw[: len(raw) - len(body)] if head_only else raw


class Request(NamedTuple):
    """A request as received: ``path`` without the query; header names lower-cased."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Route = Reply | Callable[[Request], Reply]
# Go's net/http answer to a request it cannot parse (server.go, conn.serve)
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Connection: close\r\n\r\n400 Bad Request")
NOT_FOUND = Reply(404, "404 page not found", TEXT)  # Go's http.NotFound, as Ollama sends it
# Just enough of Ollama for reachability, dns and latency: the root page and the version.
OLLAMA_ROOT: Mapping[str, Route] = {
    "/": Reply(200, "Ollama is running", TEXT),
    "/api/version": Reply(200, '{"version":"0.33.0"}'),
}


class CannedServer(ThreadedTCPServer):
    """A loopback HTTP/1.1 server answering from ``routes`` (a path → route table, or one
    function for every request). Records every request (``requests``)."""

    def __init__(self, routes: Mapping[str, Route] | Callable[[Request], Reply], *,
                 host: str = "127.0.0.1", dual_stack: bool = False,
                 tls: ssl.SSLContext | None = None, timeout: float = 5.0,
                 name: str = "canned") -> None:
        super().__init__(name, host)
        self._routes = routes
        self._dual_stack = dual_stack
        self._tls = tls
        self._timeout = timeout
        self._lock = threading.Lock()
        self._requests: list[Request] = []

    def start(self) -> str:
        self.start_listening()
        return self.url

    def bind_options(self, listener: socket.socket) -> None:
        if listener.family == socket.AF_INET6:  # "::" takes IPv4 too only when asked
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                                0 if self._dual_stack else 1)

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}"

    def __enter__(self) -> CannedServer:
        self.start()
        return self

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def answer(self, request: Request) -> Reply:
        if callable(self._routes):
            return self._routes(request)
        route = self._routes.get(request.path, NOT_FOUND)
        return route(request) if callable(route) else route

    @staticmethod
    def _tls_hello(conn: socket.socket) -> bool:
        try:
            return conn.recv(1, socket.MSG_PEEK) == b"\x16"
        except OSError:  # idle past the timeout, or reset: the read loop ends it
            return False

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self._timeout)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = conn
        if self._tls is not None:
            try:  # the handshake in the connection's own thread, never in the accept loop
                sock = self._tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return
        elif self._tls_hello(conn):
            # Go answers a malformed request line at once, and a TLS ClientHello (record type
            # 0x16) is malformed from its first byte: what clients print as WRONG_VERSION_NUMBER
            conn.sendall(BAD_REQUEST)
            return
        reader = Reader(sock)
        keep_alive = True
        while keep_alive:
            try:
                raw = reader.read_head()
                if raw is None:
                    return
                head = parse_request_head(raw)
                body = read_request_body(reader, head.headers)
            except HTTPError:
                sock.sendall(BAD_REQUEST)
                return
            except OSError:
                return
            parts = urllib.parse.urlsplit(head.target)
            request = Request(head.method, head.target, parts.path or "/",
                              dict(urllib.parse.parse_qsl(parts.query)),
                              {k.lower(): v for k, v in head.headers}, body)
            with self._lock:
                self._requests.append(request)
            reply = self.answer(request)
            sock.sendall(reply.encode(head_only=head.method == "HEAD"))
            keep_alive = wants_keep_alive(head)
