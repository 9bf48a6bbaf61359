"""Emulator faults that leave a response unfinished hold the connection open, as a stuck
server does, instead of closing it (a close is a different failure for every client)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

QUIET_S = 0.5  # no byte and no EOF for this long: the connection is held, not closed


def _post(url: str, path: str, body: dict[str, Any]) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    data = json.dumps(body).encode()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: "
                 f"application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def _head_then_silence(sock: socket.socket) -> bytes:
    """The response head; then asserts the server neither sends nor closes for QUIET_S."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the headers ended: {got!r}"
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    assert rest == b""
    sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        more = sock.recv(4096)
        pytest.fail(f"expected silence, got {(more or 'EOF')!r}")
    return head


@pytest.mark.parametrize(("path", "body", "framing"), [
    ("/api/generate", {"model": "llama3.2", "prompt": "hi"}, b"Transfer-Encoding: chunked"),
    ("/api/chat", {"model": "llama3.2", "stream": False,
                   "messages": [{"role": "user", "content": "hi"}]}, b"Content-Length: "),
])
def test_hang_after_headers_holds_the_connection(emulator: Callable[..., Any], path: str,
                                                  body: dict[str, Any], framing: bytes) -> None:
    """A streamed generate ran under the scheduler's disconnect watcher, and the hang's own
    wait for EOF was a second reader: asyncio raised and the connection closed."""
    emu = emulator(hang_after_headers="")
    with _post(emu.url, path, body) as sock:
        head = _head_then_silence(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and framing in head
