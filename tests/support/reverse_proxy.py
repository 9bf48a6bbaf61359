"""An nginx-like reverse proxy on ``127.0.0.1:0`` in front of a (fake) Ollama.

Reproduces what a gateway in front of Ollama does to calls (``docs/failure-modes.md`` modes 15,
20, 21; scenarios S18, S21, S22):

- passes the client's ``Host`` through unchanged, like ``proxy_set_header Host $host``, so a
  loopback-bound Ollama's Host check answers 403 (S18); ``host_header="localhost:11434"`` is the
  fix;
- ``read_timeout``: like ``proxy_read_timeout``, the longest wait for each read from the upstream.
  No response headers in time → nginx's HTML ``504 Gateway Time-out`` (S22: a long
  ``stream:false`` generation), while a stream whose chunks keep coming passes (streaming works).
  A stream that stalls after its headers is cut off (the client sees a truncated body), as nginx
  does. ``None`` means nginx's default, 60 s;
- upstream refused or closed without answering → nginx's HTML ``502 Bad Gateway``;
- ``require_bearer=TOKEN`` → ``401`` with ``WWW-Authenticate: Bearer realm="ollama"`` and nginx's
  HTML page unless ``Authorization: Bearer TOKEN`` (S21); the header is forwarded when it matches;
- every response carries ``Server: nginx/1.25.3``; as nginx does (``proxy_hide_header`` defaults),
  the upstream's own ``Server`` and ``Date`` are replaced.

Responses are streamed back as they arrive, keeping the upstream's framing (chunked NDJSON passes
through chunk by chunk). Client connections are kept alive; upstream requests use
``Connection: close``. The upstream must be a loopback URL.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse

from tests.support._http import (
    HTTPError,
    Reader,
    RecordedRequest,
    RequestHead,
    http_date,
    is_loopback,
    literal_or_localhost,
    parse_request_head,
    parse_response_head,
    read_request_body,
    relay_response_body,
    render_head,
    render_response,
    wants_keep_alive,
)
from tests.support._server import ThreadedTCPServer

NGINX = "nginx/1.25.3"
NGINX_DEFAULT_READ_TIMEOUT = 60.0

# status → (status-line reason, page title), as nginx writes them (ngx_http_special_response.c)
_PAGES = {
    400: ("Bad Request", "400 Bad Request"),
    401: ("Unauthorized", "401 Authorization Required"),
    502: ("Bad Gateway", "502 Bad Gateway"),
    504: ("Gateway Time-out", "504 Gateway Time-out"),
}


class _Page(Exception):
    def __init__(self, status: int, extra: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.extra = extra or []


class ReverseProxy(ThreadedTCPServer):
    """nginx-like reverse proxy; see the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        read_timeout: float | None = None,
        host_header: str | None = None,
        require_bearer: str | None = None,
        server_header: str = NGINX,
        connect_timeout: float = 2.0,
        client_timeout: float = 30.0,
    ) -> None:
        """``upstream``: ``http://127.0.0.1:PORT`` (optionally with a path prefix).

        ``client_timeout`` bounds each wait for the client (request bytes, keep-alive idle).
        """
        parts = urllib.parse.urlsplit(upstream)
        address = literal_or_localhost(parts.hostname or "")
        if parts.scheme != "http" or address is None or not is_loopback(address):
            raise ValueError(f"upstream must be an http:// loopback URL, got {upstream!r}")
        super().__init__("reverse-proxy")
        self.upstream = upstream
        self._address = address
        self._upstream_port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self.read_timeout = NGINX_DEFAULT_READ_TIMEOUT if read_timeout is None else read_timeout
        self.host_header = host_header
        self._bearer = f"Bearer {require_bearer}" if require_bearer is not None else None
        self.server_header = server_header
        self._connect_timeout = connect_timeout
        self._client_timeout = client_timeout
        self._log_lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    def start(self) -> str:
        """Start listening; returns ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.start_listening()}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ReverseProxy:
        self.start()
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests as received from clients (before any Host rewrite)."""
        with self._log_lock:
            return list(self._requests)

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self._client_timeout)
        reader = Reader(conn)
        keep_alive = True
        while keep_alive:
            try:
                raw = reader.read_head()
                if raw is None:
                    return
                head = parse_request_head(raw)
                body = read_request_body(reader, head.headers)
            except HTTPError:
                self._send_page(conn, _Page(400), keep_alive=False)
                return
            with self._log_lock:
                self._requests.append(
                    RecordedRequest(head.method, head.target, head.headers.to_dict())
                )
            keep_alive = wants_keep_alive(head)
            try:
                if self._bearer is not None and head.headers.get("authorization") != self._bearer:
                    raise _Page(401, [("WWW-Authenticate", 'Bearer realm="ollama"')])
                keep_alive = self._forward(conn, head, body) and keep_alive
            except _Page as page:
                self._send_page(conn, page, keep_alive)

    def _upstream_request(self, head: RequestHead, body: bytes) -> bytes:
        """The request as sent upstream: origin-form target under the prefix, hop-by-hop
        headers dropped, Host kept (or rewritten with ``host_header``), de-chunked body."""
        target = head.target
        if not target.startswith("/"):
            parts = urllib.parse.urlsplit(target)  # absolute-form is allowed by RFC 9112 §3.2.2
            if parts.scheme not in ("http", "https"):
                raise _Page(400)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = head.headers.without_hop_by_hop()
        if self.host_header is not None:
            headers.set("Host", self.host_header)
        elif headers.get("host") is None:
            headers.add("Host", f"{self._address}:{self._upstream_port}")
        if body or head.headers.get("content-length") is not None or head.headers.is_chunked():
            headers.set("Content-Length", str(len(body)))
        headers.add("Connection", "close")
        return render_head(f"{head.method} {self._prefix}{target} HTTP/1.1", headers) + body

    def _forward(self, conn: socket.socket, head: RequestHead, body: bytes) -> bool:
        request = self._upstream_request(head, body)
        try:
            upstream = self.connect_upstream(
                self._address, self._upstream_port, self._connect_timeout
            )
        except TimeoutError:
            raise _Page(504) from None
        except ConnectionAbortedError:
            raise
        except OSError:
            raise _Page(502) from None
        try:
            upstream.settimeout(self.read_timeout)
            try:
                upstream.sendall(request)
            except OSError:
                raise _Page(502) from None
            up_reader = Reader(upstream)
            try:
                raw = up_reader.read_head()
            except TimeoutError:
                raise _Page(504) from None
            except (HTTPError, ConnectionResetError):
                raise _Page(502) from None
            if raw is None:
                raise _Page(502)  # "upstream prematurely closed connection"
            try:
                response = parse_response_head(raw)
            except HTTPError:
                raise _Page(502) from None
            out = response.headers.without_hop_by_hop()
            out.remove("Server")
            out.remove("Date")
            chunked = response.headers.is_chunked()
            if chunked:
                out.add("Transfer-Encoding", "chunked")
            self_delimited = (
                chunked
                or response.headers.get("content-length") is not None
                or head.method == "HEAD"
                or response.status in (204, 304)
            )
            keep_alive = wants_keep_alive(head) and self_delimited
            items = [
                ("Server", self.server_header),
                ("Date", http_date()),
                *out,
                ("Connection", "keep-alive" if keep_alive else "close"),
            ]
            conn.sendall(render_head(f"HTTP/1.1 {response.status} {response.reason}", items))
            try:
                return relay_response_body(up_reader, conn, head.method, response) and keep_alive
            except (TimeoutError, HTTPError):
                return False  # upstream stalled or broke mid-body: cut the client off, like nginx
        finally:
            self.tracker.release(upstream)

    def _send_page(self, conn: socket.socket, page: _Page, keep_alive: bool) -> None:
        self.abort_if_stopping()
        reason, title = _PAGES[page.status]
        body = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{self.server_header}</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode()
        headers = [
            ("Server", self.server_header),
            ("Date", http_date()),
            ("Content-Type", "text/html"),
            *page.extra,
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]
        conn.sendall(render_response(page.status, reason, headers, body))
