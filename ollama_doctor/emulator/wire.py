"""HTTP/1.1 as Go's ``net/http`` speaks it, and Go's way of writing JSON, durations and dates.

Everything a client can see on the wire that is not Ollama's own logic: the status line, header
order, ``Content-Length`` vs chunked framing, the plain-text 400s Go's server writes for
malformed requests, ``json.Marshal``'s HTML escaping, ``time.Duration.String`` and RFC 3339
time stamps. Handlers write through :class:`Responder`; they raise :class:`HTTPError`.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from .faults import Faults

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
CHUNKING_THRESHOLD = 2048  # Go net/http: bodies above its buffer go out chunked

CT_JSON = "application/json; charset=utf-8"  # gin c.JSON
CT_TEXT = "text/plain; charset=utf-8"  # gin c.String
CT_NDJSON = "application/x-ndjson"
CT_PLAIN_JSON = "application/json"  # set by hand (openai BaseWriter, streamResponse errors)
CT_SSE = "text/event-stream"
GARBAGE = b"\x00\x1f\x8b\x08garbage<<not json>>\xff\xfe\n"

# --------------------------------------------------------------------------------------------
# Formatting helpers: Go JSON, Go durations, time stamps
# --------------------------------------------------------------------------------------------

_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def go_json(obj: Any) -> bytes:
    """``json.Marshal`` output: compact, UTF-8, and HTML-escaped like Go does by default."""
    text = _JSON_ENCODER.encode(obj)
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text.encode()


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, div in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if ns < div * 1000:
                whole, frac = divmod(ns, div)
                digits = len(str(div)) - 1
                text = str(whole)
                if frac and digits:
                    text += "." + f"{frac:0{digits}d}".rstrip("0")
                return sign + text + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds, frac = divmod(rest, 1_000_000_000)
    text = f"{seconds}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    text += "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def rfc3339(dt: datetime) -> str:
    """Go's RFC3339Nano: fraction trimmed, ``Z`` for UTC."""
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    offset = dt.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def local_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts).astimezone()


def utc_now() -> str:
    return rfc3339(datetime.now(timezone.utc))


def far_future() -> datetime:
    # Go: now + MaxInt64 ns (~292 years) for keep_alive < 0.
    return datetime.now().astimezone() + timedelta(microseconds=(2**63 - 1) // 1000)


def human_bytes(n: float) -> str:
    """Ollama's ``format.HumanBytes2``."""
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{int(n)} B"


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: list[Any] = [-1, ""]


def http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        t = time.gmtime(now)
        _date_cache[1] = (
            f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
        _date_cache[0] = now
    return str(_date_cache[1])


class HTTPError(Exception):
    """An error a handler answers with: ``{"error": message}`` (or the OpenAI shape on /v1)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body  # sent verbatim (cloud passthrough), whatever the endpoint


# --------------------------------------------------------------------------------------------
# Connection I/O
# --------------------------------------------------------------------------------------------

class BadRequest(Exception):
    def __init__(self, status_line: str, body: str) -> None:
        super().__init__(body)
        self.status_line = status_line
        self.body = body


class ClientGone(Exception):
    pass


class Conn:
    """A connection with its own read buffer, so a disconnect watcher can read ahead."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        # One reader at a time: a disconnect watcher (scheduler) and a handler that waits for
        # the peer to leave (a hang fault) may both read; asyncio forbids two waiting reads.
        self._read_lock = asyncio.Lock()
        peer = writer.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""

    async def _fill(self) -> bool:
        async with self._read_lock:
            if self.eof:
                return False
            try:
                data = await self.reader.read(65536)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True

    async def read_head(self) -> bytes | None:
        scan = 0
        while True:
            idx = self.buf.find(b"\r\n\r\n", scan)
            if idx >= 0:
                if idx > MAX_HEADER_BYTES:
                    raise BadRequest("431 Request Header Fields Too Large", "")
                head = bytes(self.buf[:idx])
                del self.buf[: idx + 4]
                return head
            if len(self.buf) > MAX_HEADER_BYTES:
                raise BadRequest("431 Request Header Fields Too Large", "")
            # Go reads the request line first and answers a malformed one at once; a TLS
            # ClientHello (record type 0x16) is malformed from its first byte. That quick
            # 400 is what clients print as "SSL: WRONG_VERSION_NUMBER".
            if self.buf[:1] == b"\x16" or (
                b"\n" in self.buf and not _REQUEST_LINE.match(bytes(self.buf.split(b"\n", 1)[0]))
            ):
                raise BadRequest("400 Bad Request", "")
            scan = max(0, len(self.buf) - 3)
            if not await self._fill():
                if self.buf.strip():
                    raise ClientGone
                return None

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise ClientGone
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + 2]
                return line
            if len(self.buf) > 4096 or not await self._fill():
                raise ClientGone

    async def wait_eof(self) -> None:
        """Return once the peer has closed (reading ahead into the buffer meanwhile)."""
        while not self.eof:
            if len(self.buf) > MAX_BODY_BYTES:
                await asyncio.sleep(0.05)  # a pipelining client: stop buffering, keep waiting
                continue
            await self._fill()


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes
    start: float  # perf_counter at the end of the headers
    keep_alive: bool


REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_STATUS_LINES = {code: f"HTTP/1.1 {code} {text}\r\n" for code, text in REASONS.items()}


def status_line_for(code: int) -> str:
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"HTTP/1.1 {code} status code {code}\r\n"


_REQUEST_LINE = re.compile(rb"^[A-Za-z]+ \S+ HTTP/\d\.\d\r?$")


def parse_head(head: bytes, start: float) -> Request:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise BadRequest("400 Bad Request", "") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise BadRequest("400 Bad Request", "")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise BadRequest("505 HTTP Version Not Supported", "unsupported protocol version")
        raise BadRequest("400 Bad Request", "")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise BadRequest("400 Bad Request", "malformed MIME header line: " + line)
        key = name.lower()
        value = value.strip(" \t")
        if key in headers and key != "host":
            headers[key] = headers[key] + ", " + value
        elif key not in headers:
            headers[key] = value
        elif key == "host":
            raise BadRequest("400 Bad Request", "too many Host headers")
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest("400 Bad Request", "missing required Host header")
    if not target.startswith("/"):
        if target.startswith(("http://", "https://")):
            split = urlsplit(target)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        elif target != "*":
            raise BadRequest("400 Bad Request", "")
    raw_path, _sep, query = target.partition("?")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return Request(
        method=method,
        target=target,
        path=unquote(raw_path),
        query=query,
        version=version,
        headers=headers,
        body=b"",
        start=start,
        keep_alive=keep,
    )


def clean_path(path: str) -> str:
    """Go's ``cleanPath`` (``http.ServeMux`` redirects unclean paths with a 301)."""
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    cleaned = posixpath.normpath(re.sub(r"/{2,}", "/", path))
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned




class Hung(Exception):
    """The response was deliberately left unfinished (hang-after-headers)."""


class Responder:
    """Writes one response with Go net/http's framing and header order."""

    __slots__ = ("close", "conn", "extra", "f", "log", "logger", "req", "status", "streaming")

    def __init__(self, conn: Conn, req: Request, faults: Faults) -> None:
        self.conn = conn
        self.req = req
        self.f = faults
        self.extra: list[tuple[str, str]] = []  # CORS headers set by the middleware
        self.status = 0
        self.close = not req.keep_alive
        self.streaming = False
        self.log = True  # False once the access line is written, or when gin never logs
        self.logger: Callable[[int], None] | None = None

    def finish_log(self) -> None:
        """Write the [GIN] line before the last bytes leave, so a reader of the log who has
        the full response also has its access line."""
        if self.log and self.logger is not None and self.status:
            self.log = False
            self.logger(self.status)

    def _head(
        self, status: int, headers: list[tuple[str, str]], length: int | None, chunked: bool
    ) -> bytes:
        # Go writes the handler's headers sorted by key, then Date, Content-Length,
        # Connection and Transfer-Encoding.
        all_headers = self.extra + headers if self.extra else headers
        if len(all_headers) > 1:
            all_headers = sorted(all_headers, key=lambda kv: kv[0])
        out = [status_line_for(status)]
        out += [f"{k}: {v}\r\n" for k, v in all_headers]
        out.append(f"Date: {http_date()}\r\n")
        if length is not None:
            out.append(f"Content-Length: {length}\r\n")
        if self.close:
            out.append("Connection: close\r\n")
        elif self.req.version == "HTTP/1.0":
            out.append("Connection: keep-alive\r\n")
        if chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        out.append("\r\n")
        return "".join(out).encode("latin-1")

    async def hang(self, head: bytes) -> None:
        self.conn.writer.write(head)
        await self.conn.writer.drain()
        await self.conn.wait_eof()
        raise Hung

    async def send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        is_json: bool = False,
    ) -> None:
        if is_json:
            if self.f.garbage and status == 200:
                body = GARBAGE
            if self.f.truncated_json:
                body = body[: len(body) // 2]
        hdrs = list(headers)
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        self.status = status
        head_only = self.req.method == "HEAD"
        if status == 204 or status == 304:
            head = self._head(status, hdrs, None, False)
            payload = b""
        elif len(body) > CHUNKING_THRESHOLD:
            head = self._head(status, hdrs, None, not head_only)
            payload = b"" if head_only else b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
        else:
            # Go omits Content-Length on a HEAD answer when the handler wrote nothing.
            length = None if head_only and not body else len(body)
            head = self._head(status, hdrs, length, False)
            payload = b"" if head_only else body
        if self.f.hang_after_headers:
            await self.hang(head)
        self.finish_log()
        self.conn.writer.write(head + payload if payload else head)

    async def send_json(self, status: int, obj: Any) -> None:
        await self.send(status, go_json(obj), CT_JSON, is_json=True)

    async def error(self, status: int, message: str) -> None:
        await self.send_json(status, {"error": message})

    async def start_stream(self, content_type: str) -> None:
        self.status = 200
        self.streaming = True
        head = self._head(200, [("Content-Type", content_type)], None, True)
        if self.f.hang_after_headers:
            await self.hang(head)
        self.conn.writer.write(head)
        await self.conn.writer.drain()

    async def chunk(self, data: bytes) -> None:
        self.conn.writer.write(b"%x\r\n%b\r\n" % (len(data), data))
        await self.conn.writer.drain()

    async def end_stream(self) -> None:
        self.finish_log()
        self.conn.writer.write(b"0\r\n\r\n")
        await self.conn.writer.drain()


# --------------------------------------------------------------------------------------------
# The handler's view of one request, and the two error shapes
# --------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    req: Request
    rsp: Responder
    f: Faults
    conn: Conn
    param: str
    t0: float  # perf_counter when the handler started
    v1: bool = False  # OpenAI-compatible error shape



_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def openai_error(status: int, message: str) -> dict[str, Any]:
    """``openai.NewError`` (openai/openai.go, v0.33): the type follows the status."""
    kind = _OPENAI_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def fail(ctx: Ctx, status: int, message: str, *, middleware: bool = False) -> None:
    """An error in Ollama's shape, or the OpenAI shape on ``/v1``."""
    if not ctx.v1:
        await ctx.rsp.error(status, message)
        return
    obj = openai_error(status, message)
    if middleware:  # c.AbortWithStatusJSON in the middleware
        await ctx.rsp.send_json(status, obj)
    else:  # BaseWriter.writeError: json.NewEncoder(...).Encode
        await ctx.rsp.send(status, go_json(obj) + b"\n", CT_PLAIN_JSON, is_json=True)
