"""Emulator faults that leave a response unfinished hold the connection open, as a stuck
server does, instead of closing it (a close is a different failure for every client)."""

from __future__ import annotations

import json
import re
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


# -- mid-stream-error on the OpenAI streams ---------------------------------------------------
# Ollama (v0.33.0-rc2): streamResponse (server/routes.go) Encodes {"error":"…"} through the
# OpenAI writer once the stream has started; ChatWriter/CompleteWriter.Write see status 200 and
# call writeResponse (middleware/openai.go), which unmarshals the line as an empty, not-done
# response. The client gets one chunk with empty content, no finish chunk, no [DONE], and the
# message nowhere (docs/ollama-wire.md §1.8).

OOM = "an error was encountered while running the model: CUDA error: out of memory"


def _read_all(sock: socket.socket, limit: int = 1 << 20) -> tuple[bytes, bytes]:
    """The response head and its de-chunked body, read up to the chunked terminator."""
    sock.settimeout(10)
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n") and len(raw) < limit:
        more = sock.recv(65536)
        if not more:
            break
        raw += more
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head, head
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", rest  # the terminator, and nothing after it
            return head, body
        body, rest = body + rest[:size], rest[size + 2:]


def _stream(emu: Any, path: str, body: dict[str, Any]) -> tuple[bytes, list[bytes]]:
    with _post(emu.url, path, {**body, "stream": True}) as sock:
        head, data = _read_all(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"Content-Type: text/event-stream" in head, head
    assert data.endswith(b"\n\n"), data
    return data, [b + b"\n\n" for b in data.split(b"\n\n")[:-1]]


@pytest.mark.parametrize("usage", [False, True])
def test_mid_stream_error_on_v1_chat_ends_with_an_empty_chunk(
        emulator: Callable[..., Any], usage: bool) -> None:
    emu = emulator(mid_stream_error=OOM)
    request: dict[str, Any] = {"model": "llama3.2",
                               "messages": [{"role": "user", "content": "hi"}]}
    if usage:  # ChatWriter adds usage only to the Done chunk: never to this one
        request["stream_options"] = {"include_usage": True}
    data, got = _stream(emu, "/v1/chat/completions", request)
    assert len(got) == 2, data  # the one token, then the error's chunk
    first = json.loads(got[0][len(b"data: "):])
    assert first["model"] == "llama3.2" and first["choices"][0]["delta"]["content"]
    assert got[1] == (
        b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":"",'
        b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"content":""},'
        b'"finish_reason":null}]}\n\n' % (first["id"].encode(), first["created"]))
    assert b"[DONE]" not in data and b"error" not in data and b"out of memory" not in data


@pytest.mark.parametrize("usage", [False, True])
def test_mid_stream_error_on_v1_completions_ends_with_an_empty_chunk(
        emulator: Callable[..., Any], usage: bool) -> None:
    emu = emulator(mid_stream_error=OOM)
    request: dict[str, Any] = {"model": "llama3.2", "prompt": "hi"}
    if usage:  # CompleteWriter puts an empty usage on every chunk
        request["stream_options"] = {"include_usage": True}
    data, got = _stream(emu, "/v1/completions", request)
    assert len(got) == 2, data
    first = json.loads(got[0][len(b"data: "):])
    assert first["model"] == "llama3.2" and first["choices"][0]["text"]
    tail = (b',"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}' if usage
            else b"")
    # ToCompleteChunk stamps time.Now() on each chunk: the second may differ from the first.
    match = re.fullmatch(
        rb'data: \{"id":"%s","object":"text_completion","created":(\d+),'
        rb'"choices":\[\{"text":"","index":0,"finish_reason":null\}\],"model":"",'
        rb'"system_fingerprint":"fp_ollama"%s\}\n\n'
        % (re.escape(first["id"].encode()), re.escape(tail)), got[1])
    assert match is not None, got[1]
    assert int(match[1]) - first["created"] in (0, 1)
    assert b"[DONE]" not in data and b"error" not in data and b"out of memory" not in data
