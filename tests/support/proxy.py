"""A real forward HTTP proxy on ``127.0.0.1:0`` that breaks local Ollama calls the way proxies do.

Reproduces mode 5 of ``docs/failure-modes.md`` ("proxy env vars capture local traffic") and
scenarios S06–S09: a client whose ``HTTP_PROXY`` points here sends ``GET http://127.0.0.1:11434/``
to this proxy instead of to Ollama, and gets, depending on ``mode``:

- ``"relay"``: a working proxy. Absolute-form requests are forwarded (keep-alive on the client side,
  ``Connection: close`` upstream) and the response is relayed with its framing, so chunked NDJSON
  streams through; ``CONNECT host:port`` opens a byte tunnel. Names are looked up only in
  ``resolve`` (a name the proxy knows but the client cannot resolve, mapped to a loopback
  address:port), IP literals and ``localhost``; the system resolver is never asked. An upstream that
  refuses gives squid's ``ERR_CONNECT_FAIL`` page ("Connection to 127.0.0.1 failed", errno 111) with
  status ``connect_fail_status``; an unknown name gives ``ERR_DNS_FAIL`` with the same status; a
  connect timeout gives 504. A non-loopback destination is never dialled: it gets the connect-fail
  page with errno 101 (network unreachable).
- ``"deny"``: 403 squid ``ERR_ACCESS_DENIED`` page (the corporate-policy proxy of S07).
- ``"bad-gateway"``: always the 502 connect-fail page, without dialling (what Clash/v2ray-style
  proxies answer for the client's loopback, S06).
- ``"privoxy-500"``: ``500 Internal Privoxy Error`` with Privoxy's HTML page (llama_index#14880).
- ``"reset"``: reads the request, then closes the connection cleanly without answering (httpx:
  ``RemoteProtocolError: Server disconnected without sending a response``).
- ``"rst"``: reads the request, then aborts the connection with a TCP RST (httpx: ``ReadError``
  ``[Errno 104] Connection reset by peer``).

``require_auth=(user, password)`` answers 407 with ``Proxy-Authenticate: Basic realm="proxy"`` until
the request carries the matching ``Proxy-Authorization``; it applies before ``mode``.

Every read has a size limit and a timeout; ``stop()`` interrupts open connections and joins all
threads.
"""

from __future__ import annotations

import base64
import binascii
import html
import selectors
import socket
import struct
import threading
import urllib.parse
from typing import Literal, NamedTuple

from tests.support._http import (
    MAX_RELAY,
    RECV_SIZE,
    Headers,
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
    split_host_port,
    wants_keep_alive,
)
from tests.support._server import ThreadedTCPServer

Mode = Literal["relay", "deny", "bad-gateway", "privoxy-500", "reset", "rst"]
MODES: tuple[Mode, ...] = ("relay", "deny", "bad-gateway", "privoxy-500", "reset", "rst")

SQUID = "squid/5.7"


ProxiedRequest = RecordedRequest


class _Target(NamedTuple):
    host: str
    port: int
    origin_form: str  # what goes on the upstream request line ("/path?q"; "" for CONNECT)


class _Reject(Exception):
    """A request the proxy answers with one of its own error pages."""

    def __init__(self, status: int, reason: str, body: bytes, headers: list[tuple[str, str]]):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers


class ForwardProxy(ThreadedTCPServer):
    """Forward proxy; see the module docstring for what each ``mode`` reproduces."""

    def __init__(
        self,
        mode: Mode = "relay",
        *,
        resolve: dict[str, tuple[str, int]] | None = None,
        require_auth: tuple[str, str] | None = None,
        server_header: str | None = None,
        connect_fail_status: int = 502,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
    ) -> None:
        """``server_header`` defaults to ``squid/5.7``, or to none at all for ``privoxy-500``.

        ``connect_fail_status``: 502 as in the pages users quote; real squid sends 503 for
        ``ERR_CONNECT_FAIL``. ``read_timeout`` bounds every wait for the client or the upstream.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        for name, (address, _) in (resolve or {}).items():
            if not is_loopback(address):
                raise ValueError(f"resolve[{name!r}] = {address}: test proxies only dial loopback")
        super().__init__("proxy")
        self.mode: Mode = mode
        self._resolve = {k.lower().rstrip("."): v for k, v in (resolve or {}).items()}
        self._credentials = f"{require_auth[0]}:{require_auth[1]}" if require_auth else None
        if server_header is None:
            server_header = "" if mode == "privoxy-500" else SQUID
        self.server_header = server_header
        self.via = f"1.1 proxy ({server_header})" if server_header else "1.1 proxy"
        self._connect_fail_status = connect_fail_status
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._log_lock = threading.Lock()
        self._requests: list[ProxiedRequest] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start listening; returns the proxy URL ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.start_listening()}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self.start()
        return self

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._log_lock:
            return list(self._requests)

    # -- connection handling -------------------------------------------------------------------

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self._read_timeout)
        reader = Reader(conn)
        keep_alive = True
        while keep_alive:
            try:
                raw = reader.read_head()
                if raw is None:
                    return
                head = parse_request_head(raw)
                body = b"" if head.method == "CONNECT" else read_request_body(reader, head.headers)
            except HTTPError as exc:
                self._send_page(conn, self._bad_request(str(exc)), keep_alive=False)
                return
            with self._log_lock:
                self._requests.append(
                    ProxiedRequest(head.method, head.target, head.headers.to_dict())
                )
            try:
                keep_alive = self._serve_one(conn, reader, head, body, peer)
            except _Reject as page:
                keep_alive = wants_keep_alive(head) and head.method != "CONNECT"
                self._send_page(conn, page, keep_alive)
            except HTTPError:
                return  # a broken upstream message mid-relay: nothing sane left to send

    def _serve_one(
        self,
        conn: socket.socket,
        reader: Reader,
        head: RequestHead,
        body: bytes,
        peer: tuple[str, int],
    ) -> bool:
        """Answer one request; returns whether the client connection stays open."""
        if self.mode == "reset":
            return False
        if self.mode == "rst":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        target = self._parse_target(head)
        if self._credentials is not None and not self._authorized(head.headers):
            raise self._squid_page(
                407,
                "Proxy Authentication Required",
                "ERR_CACHE_ACCESS_DENIED 0",
                head.target,
                title="Cache Access Denied",
                headline="Cache Access Denied.",
                detail=(
                    f"<p>Sorry, you are not currently allowed to request"
                    f" {html.escape(head.target)} from this cache until you have authenticated"
                    f" yourself.</p>"
                ),
                extra=[("Proxy-Authenticate", 'Basic realm="proxy"')],
            )
        if self.mode == "deny":
            raise self._squid_page(
                403,
                "Forbidden",
                "ERR_ACCESS_DENIED 0",
                head.target,
                headline="Access Denied.",
                detail=(
                    "<p>Access control configuration prevents your request from being allowed at"
                    " this time. Please contact your service provider if you feel this is"
                    " incorrect.</p>"
                ),
            )
        if self.mode == "bad-gateway":
            address = literal_or_localhost(target.host) or target.host
            raise self._connect_fail(head.target, address, 111, "Connection refused")
        if self.mode == "privoxy-500":
            raise self._privoxy_page()
        address, port = self._destination(head.target, target)
        upstream = self._dial(head.target, address, port)
        try:
            upstream.settimeout(self._read_timeout)
            if head.method == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pump(conn, upstream, reader.take_buffered(), self._read_timeout)
                return False
            return self._forward(conn, upstream, head, target, body, peer)
        finally:
            self.tracker.release(upstream)

    def _parse_target(self, head: RequestHead) -> _Target:
        if head.method == "CONNECT":
            try:
                host, port = split_host_port(head.target, 443)
            except HTTPError:
                raise self._invalid_url(head.target) from None
            return _Target(host, port, "")
        parts = urllib.parse.urlsplit(head.target)
        if parts.scheme.lower() != "http":
            if head.target.startswith("/"):
                raise self._invalid_url(head.target)  # origin-form sent to a forward proxy
            raise self._squid_page(
                400,
                "Bad Request",
                "ERR_UNSUP_REQ 0",
                head.target,
                headline="Unsupported Request Method and Protocol",
                detail=(
                    "<p>Squid does not support all request methods for all access protocols.</p>"
                ),
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise self._invalid_url(head.target) from None
        if not parts.hostname:
            raise self._invalid_url(head.target)
        path = parts.path or "/"
        return _Target(parts.hostname, port, f"{path}?{parts.query}" if parts.query else path)

    def _authorized(self, headers: Headers) -> bool:
        scheme, _, token = (headers.get("proxy-authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return decoded == self._credentials

    def _destination(self, url: str, target: _Target) -> tuple[str, int]:
        mapped = self._resolve.get(target.host.lower().rstrip("."))
        if mapped is not None:
            return mapped
        address = literal_or_localhost(target.host)
        if address is None:
            raise self._squid_page(
                self._connect_fail_status,
                _reason(self._connect_fail_status),
                "ERR_DNS_FAIL 0",
                url,
                headline=(
                    "Unable to determine IP address from host name"
                    f" <q>{html.escape(target.host)}</q>"
                ),
                detail=(
                    "<p>The DNS server returned:</p>\n"
                    '<blockquote id="data"><pre>Name Error: The domain name does not exist.</pre>'
                    "</blockquote>\n"
                    "<p>This means that the cache was not able to resolve the hostname presented in"
                    " the URL. Check if the address is correct.</p>"
                ),
            )
        return address, target.port

    def _dial(self, url: str, address: str, port: int) -> socket.socket:
        try:
            return self.connect_upstream(address, port, self._connect_timeout)
        except PermissionError:
            raise self._connect_fail(url, address, 101, "Network is unreachable") from None
        except TimeoutError:
            raise self._connect_fail(url, address, 110, "Connection timed out", 504) from None
        except ConnectionAbortedError:
            raise  # stopping
        except OSError as exc:
            errno = exc.errno or 111
            raise self._connect_fail(url, address, errno, exc.strerror or str(exc)) from None

    def _forward(
        self,
        conn: socket.socket,
        upstream: socket.socket,
        head: RequestHead,
        target: _Target,
        body: bytes,
        peer: tuple[str, int],
    ) -> bool:
        headers = head.headers.without_hop_by_hop()
        if headers.get("host") is None:
            headers.add("Host", urllib.parse.urlsplit(head.target).netloc)
        headers.add("Via", self.via)
        headers.add("X-Forwarded-For", peer[0])
        if body or head.headers.get("content-length") is not None or head.headers.is_chunked():
            headers.set("Content-Length", str(len(body)))
        headers.add("Connection", "close")
        try:
            upstream.sendall(
                render_head(f"{head.method} {target.origin_form} HTTP/1.1", headers) + body
            )
        except OSError as exc:
            raise self._squid_page(
                502,
                "Bad Gateway",
                f"ERR_WRITE_ERROR {exc.errno or 0}",
                head.target,
                headline="Write Error",
                detail="<p>The system returned an error while sending the request upstream.</p>",
            ) from None
        up_reader = Reader(upstream)
        try:
            raw = up_reader.read_head()
        except TimeoutError:
            raise self._squid_page(
                504,
                "Gateway Timeout",
                "ERR_READ_TIMEOUT 0",
                head.target,
                headline="Read Timeout",
                detail="<p>A Timeout occurred while waiting to read data from the network.</p>",
            ) from None
        if raw is None:
            raise self._squid_page(
                502,
                "Bad Gateway",
                "ERR_ZERO_SIZE_OBJECT 0",
                head.target,
                headline="Zero Sized Reply",
                detail="<p>Squid did not receive any data for this request.</p>",
            )
        response = parse_response_head(raw)
        out = response.headers.without_hop_by_hop()
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
        out.add("X-Cache", "MISS from proxy")
        out.add("X-Cache-Lookup", "MISS from proxy:3128")
        out.add("Via", self.via)
        out.add("Connection", "keep-alive" if keep_alive else "close")
        conn.sendall(render_head(f"HTTP/1.1 {response.status} {response.reason}", out))
        return relay_response_body(up_reader, conn, head.method, response) and keep_alive

    # -- error pages -----------------------------------------------------------------------

    def _send_page(self, conn: socket.socket, page: _Reject, keep_alive: bool) -> None:
        self.abort_if_stopping()
        headers = [*page.headers, ("Connection", "keep-alive" if keep_alive else "close")]
        conn.sendall(render_response(page.status, page.reason, headers, page.body))

    def _squid_page(
        self,
        status: int,
        reason: str,
        squid_error: str,
        url: str,
        *,
        headline: str,
        detail: str,
        title: str = "The requested URL could not be retrieved",
        extra: list[tuple[str, str]] | None = None,
    ) -> _Reject:
        code = squid_error.split()[0]
        date = http_date()
        link = html.escape(url)
        body = _SQUID_PAGE.format(
            title=title,
            code=code,
            url=link,
            headline=headline,
            detail=detail,
            date=date,
            server=html.escape(self.server_header or "squid"),
        ).encode("utf-8")
        headers = [("Server", self.server_header)] if self.server_header else []
        headers += [
            ("Mime-Version", "1.0"),
            ("Date", date),
            ("Content-Type", "text/html;charset=utf-8"),
            ("X-Squid-Error", squid_error),
            ("Vary", "Accept-Language"),
            ("Content-Language", "en"),
            *(extra or []),
            ("X-Cache", "MISS from proxy"),
            ("X-Cache-Lookup", "NONE from proxy:3128"),
            ("Via", self.via),
        ]
        return _Reject(status, reason, body, headers)

    def _connect_fail(
        self, url: str, address: str, errno: int, message: str, status: int | None = None
    ) -> _Reject:
        status = status or self._connect_fail_status
        return self._squid_page(
            status,
            _reason(status),
            f"ERR_CONNECT_FAIL {errno}",
            url,
            headline=f"Connection to {html.escape(address)} failed.",
            detail=(
                f'<p id="sysmsg">The system returned: <i>({errno}) {html.escape(message)}</i></p>\n'
                "\n<p>The remote host or network may be down. Please try the request again.</p>"
            ),
        )

    def _invalid_url(self, url: str) -> _Reject:
        return self._squid_page(
            400,
            "Bad Request",
            "ERR_INVALID_URL 0",
            url,
            headline="Invalid URL",
            detail="<p>Some aspect of the requested URL is incorrect.</p>",
        )

    def _bad_request(self, why: str) -> _Reject:
        return self._squid_page(
            400,
            "Bad Request",
            "ERR_INVALID_REQ 0",
            "",
            headline="Invalid Request",
            detail=f"<p>Some aspect of the HTTP Request is invalid: {html.escape(why)}</p>",
        )

    def _privoxy_page(self) -> _Reject:
        headers = [("Server", self.server_header)] if self.server_header else []
        headers += [
            ("Content-Type", "text/html"),
            ("Cache-Control", "no-cache"),
            ("Date", http_date()),
            ("Expires", "Sat, 17 Jun 2000 12:00:00 GMT"),
            ("Pragma", "no-cache"),
        ]
        return _Reject(500, "Internal Privoxy Error", _PRIVOXY_PAGE.encode("utf-8"), headers)


def _reason(status: int) -> str:
    return {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(
        status, "Error"
    )


def _pump(client: socket.socket, upstream: socket.socket, pending: bytes, idle: float) -> None:
    """Copy bytes both ways until either side closes, ``idle`` seconds pass quietly, or a cap."""
    if pending:
        upstream.sendall(pending)
    total = 0
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            events = selector.select(idle)
            if not events:
                return
            for key, _ in events:
                src = key.fileobj
                dst = key.data
                assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
                data = src.recv(RECV_SIZE)
                if not data:
                    return
                total += len(data)
                if total > MAX_RELAY:
                    return
                dst.sendall(data)


# Shortened from squid 5's templates (errors/templates/ERR_*), same structure and wording.
_SQUID_PAGE = """\
<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html><head>
<meta type="copyright"
 content="Copyright (C) 1996-2022 The Squid Software Foundation and contributors">
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>ERROR: {title}</title>
</head><body id={code}>
<div id="titles">
<h1>ERROR</h1>
<h2>{title}</h2>
</div>
<hr>

<div id="content">
<p>The following error was encountered while trying to retrieve the URL:
 <a href="{url}">{url}</a></p>

<blockquote id="error">
<p><b>{headline}</b></p>
</blockquote>

{detail}

<p>Your cache administrator is <a href="mailto:webmaster">webmaster</a>.</p>
<br>
</div>

<hr>
<div id="footer">
<p>Generated {date} by proxy ({server})</p>
<!-- {code} -->
</div>
</body></html>
"""

_PRIVOXY_PAGE = """\
<html>
<head>
<title>500 Internal Privoxy Error</title>
<link rel="shortcut icon" href="http://config.privoxy.org/error-favicon.ico"
 type="image/x-icon"></head>
<body>
<h1>500 Internal Privoxy Error</h1>
<p>Privoxy encountered an error while processing your request:</p>
<p><b>Could not load template file <code>no-server-data</code>
 or one of its included components.</b></p>
<p>Please contact your proxy administrator.</p>
<p>If you are the proxy administrator, please put the required file(s)in the
 <code><i>(confdir)</i>/templates</code> directory.  The location of the
 <code><i>(confdir)</i></code> directory is specified in the main Privoxy
 <code>config</code> file.  (It's typically the Privoxy install directory).</p>
</body>
</html>
"""
