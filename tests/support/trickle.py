"""A loopback HTTP server that answers too slowly to ever finish, over real sockets.

Modes (one per server; every path answers the same way unless said otherwise):

- ``status``: the status line itself arrives one byte every ``interval`` seconds;
- ``headers``: the status line at once, then header bytes one every ``interval``, never ending;
- ``body``: complete headers (``Content-Length: 4096``), then one body byte every ``interval``;
- ``endless``: an Ollama look-alike (``/``, ``/api/version``, ``/api/tags``, ``/api/ps``,
  ``/api/show``) whose ``/api/generate``, ``/api/chat`` and ``/api/embed`` stream NDJSON lines
  without end, one every ``interval``.

httpx's read timeout restarts with every byte, so only a total deadline per exchange ends
these. Every wait is interruptible: ``stop()`` ends the server at once.
"""

from __future__ import annotations

import json
import socket

from tests.support._http import HTTPError, Reader, parse_request_head, read_request_body
from tests.support._server import ThreadedTCPServer

MODES = ("status", "headers", "body", "endless")
MODEL = {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189,
         "digest": "a80c4f17acd5", "modified_at": "2026-01-01T00:00:00Z",
         "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B",
                     "quantization_level": "Q4_K_M"}}


class TrickleServer(ThreadedTCPServer):
    def __init__(self, mode: str, interval: float = 0.5) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        super().__init__(f"trickle-{mode}")
        self.mode = mode
        self.interval = interval
        self.requests: list[str] = []

    def start(self) -> TrickleServer:
        self.start_listening()
        return self

    def __enter__(self) -> TrickleServer:
        return self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        reader = Reader(conn)
        conn.settimeout(30)
        while not self.tracker.stopping.is_set():
            try:
                raw = reader.read_head()
                if raw is None:
                    return
                head = parse_request_head(raw)
                read_request_body(reader, head.headers)
            except HTTPError:
                return
            self.requests.append(f"{head.method} {head.target}")
            if not self._answer(conn, head.target.split("?")[0]):
                return

    def _drip(self, conn: socket.socket, data: bytes) -> bool:
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            if not self.tracker.sleep(self.interval):
                return False
        return True

    def _answer(self, conn: socket.socket, path: str) -> bool:
        """Answer one request; True when the connection may carry another."""
        if self.mode == "status":
            self._drip(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"s" * 100_000)
            return False
        if self.mode == "headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            self._drip(conn, b"X-Slow: " + b"s" * 100_000)
            return False
        if self.mode == "body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 4096\r\n\r\n")
            self._drip(conn, b"{" + b" " * 4095)
            return False
        if path in ("/api/generate", "/api/chat", "/api/embed"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            line = json.dumps({"model": MODEL["name"], "response": "a", "done": False})
            chunk = (line + "\n").encode()
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while True:
                conn.sendall(frame)
                if not self.tracker.sleep(self.interval):
                    return False
        body = self._ollama(path)
        status = b"200 OK" if body is not None else b"404 Not Found"
        data = (body if body is not None else '{"error":"not found"}').encode()
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        return True

    @staticmethod
    def _ollama(path: str) -> str | None:
        if path == "/":
            return "Ollama is running"
        if path == "/api/version":
            return json.dumps({"version": "0.33.0"})
        if path == "/api/tags":
            return json.dumps({"models": [MODEL]})
        if path == "/api/ps":
            return json.dumps({"models": []})
        if path == "/api/show":
            return json.dumps({"capabilities": ["completion"], "details": MODEL["details"],
                               "model_info": {"llama.context_length": 131072}})
        return None
