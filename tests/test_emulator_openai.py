"""The emulator's OpenAI-compatible routes over real sockets: ``/v1/completions``,
``/v1/embeddings``, the ``/v1/chat/completions`` and ``/v1/completions`` SSE streams byte for
byte, and every fault as an OpenAI client meets it.

Requests are made the way the ``openai`` packages make them (JSON body, ``Authorization:
Bearer …``, ``X-Stainless-*`` headers, ``stream`` + ``stream_options``), with httpx, against the
emulator on ``127.0.0.1:0``. Shapes follow Ollama's ``middleware/openai.go`` and
``openai/openai.go`` (v0.33).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_doctor.emulator import Emulator

FAST = 0.01
MODELS = ("llama3.2:latest", "nomic-embed-text:latest", "tiny:1b;caps=completion", "kimi:cloud",
          "qwen3:8b;think=2")
OPENAI_HEADERS = {
    "Authorization": "Bearer ollama",  # "required but ignored"
    "X-Stainless-Lang": "python",
    "X-Stainless-Retry-Count": "0",
    "User-Agent": "OpenAI/Python 1.99.0",
}
ANSWER = "Hello! How can I help you today?"
BUSY = "server busy, please try again.  maximum pending requests exceeded"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def make(emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    """The shared ``emulator`` fixture (tests/conftest.py) with this file's models and time
    scale."""

    def factory(log_file: Path | None = None, **faults: str) -> Emulator:
        return emulator(models=list(MODELS), time_scale=FAST,
                        log_file=None if log_file is None else str(log_file), **faults)

    return factory


@pytest.fixture
def emu(make: Callable[..., Emulator]) -> Emulator:
    return make()


def call(emu: Emulator, path: str, body: Any) -> httpx.Response:
    with httpx.Client(base_url=emu.url + "/v1", trust_env=False, timeout=10) as c:
        if isinstance(body, bytes):
            return c.post(path, content=body, headers=OPENAI_HEADERS)
        return c.post(path, json=body, headers=OPENAI_HEADERS)


def events(r: httpx.Response) -> list[Any]:
    """The ``data:`` payloads of an SSE body, ``[DONE]`` kept as a string."""
    assert r.text.endswith("\n\n")
    out: list[Any] = []
    for block in r.text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# ---- /v1/completions ---------------------------------------------------------------------------


def test_completions(emu: Emulator) -> None:
    r = call(emu, "/completions", {"model": "llama3.2", "prompt": "Say hi", "max_tokens": 50})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content.endswith(b"}\n")  # json.NewEncoder(w).Encode
    body = r.json()
    assert re.fullmatch(r"cmpl-\d{1,3}", body.pop("id"))
    assert isinstance(body.pop("created"), int)
    assert list(body) == ["object", "model", "system_fingerprint", "choices", "usage"]
    assert body == {
        "object": "text_completion",
        "model": "llama3.2",
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": ANSWER, "index": 0, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11},
    }
    short = call(emu, "/completions", {"model": "llama3.2", "prompt": "x", "max_tokens": 2})
    assert short.json()["choices"] == [{"text": "Hello!", "index": 0, "finish_reason": "length"}]
    assert "llama3.2:latest" in emu.loaded  # through the scheduler like /api/generate


def test_completions_stream(emu: Emulator) -> None:
    r = call(emu, "/completions", {"model": "llama3.2", "prompt": "Say hi", "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["transfer-encoding"] == "chunked"
    got = events(r)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    for c in chunks:
        assert list(c) == ["id", "object", "created", "choices", "model", "system_fingerprint"]
        assert (c["object"], c["model"]) == ("text_completion", "llama3.2")
    assert "".join(c["choices"][0]["text"] for c in chunks) == ANSWER
    reasons = [c["choices"][0]["finish_reason"] for c in chunks]
    assert reasons == [None] * 9 + ["stop"]
    assert chunks[-1]["choices"][0]["text"] == ""

    body = {"model": "llama3.2", "prompt": "Say hi", "stream": True,
            "stream_options": {"include_usage": True}}
    got = events(call(emu, "/completions", body))
    assert all(c["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
               for c in got[:-2])
    assert got[-2]["choices"] == []
    assert got[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11}
    assert got[-1] == "[DONE]"


def test_completions_empty_prompt_loads_the_model(emu: Emulator) -> None:
    r = call(emu, "/completions", {"model": "llama3.2", "prompt": ""})
    assert r.status_code == 200
    body = r.json()
    assert body["choices"] == [{"text": "", "index": 0, "finish_reason": "load"}]
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert "llama3.2:latest" in emu.loaded
    r = call(emu, "/completions", {"model": "llama3.2", "stream": True})
    assert r.headers["content-type"] == "text/event-stream"
    got = events(r)
    assert got[0]["choices"] == [{"text": "", "index": 0, "finish_reason": "load"}]
    assert got[1:] == ["[DONE]"]


@pytest.mark.parametrize(
    ("body", "status", "message", "content_type"),
    [
        # CompletionsMiddleware's own 400s: c.AbortWithStatusJSON (gin's JSON content type)
        (b"{", 400, "unexpected EOF", "application/json; charset=utf-8"),
        ({"model": "llama3.2", "prompt": ["a"]}, 400,
         "json: cannot unmarshal array into Go struct field CompletionRequest.prompt of type "
         "string", "application/json; charset=utf-8"),
        ({"model": "llama3.2", "prompt": "a", "stop": ["x", 1]}, 400,
         "invalid type for 'stop' field: float64", "application/json; charset=utf-8"),
        # max_tokens is *int: Go's UnmarshalTypeError names the pointed-to type, as for
        # ChatCompletionRequest.temperature (*float64) in test_request_check's Go table.
        ({"model": "llama3.2", "prompt": "a", "max_tokens": "9"}, 400,
         "json: cannot unmarshal string into Go struct field CompletionRequest.max_tokens of "
         "type int", "application/json; charset=utf-8"),
        # temperature is *float32: decoded by the same Go rules as every other field
        ({"model": "llama3.2", "prompt": "a", "temperature": "hot"}, 400,
         "json: cannot unmarshal string into Go struct field CompletionRequest.temperature of "
         "type float32", "application/json; charset=utf-8"),
        # the middleware's struct is openai's, and Go names its package
        ([1], 400, "json: cannot unmarshal array into Go value of type "
         "openai.CompletionRequest", "application/json; charset=utf-8"),
        # GenerateHandler's errors through BaseWriter.writeError
        ({"prompt": "a"}, 404, "model '' not found", "application/json"),
        ({"model": "nope", "prompt": "a"}, 404, "model 'nope' not found", "application/json"),
        ({"model": "nomic-embed-text", "prompt": "a"}, 400,
         '"nomic-embed-text" does not support generate', "application/json"),
        ({"model": "tiny:1b", "prompt": "a", "suffix": "b"}, 400,
         "registry.ollama.ai/library/tiny:1b does not support insert", "application/json"),
    ],
)
def test_completions_errors(
    emu: Emulator, body: Any, status: int, message: str, content_type: str
) -> None:
    r = call(emu, "/completions", body)
    assert (r.status_code, r.headers["content-type"]) == (status, content_type)
    assert r.json() == openai_error(status, message)


# ---- the SSE streams, byte for byte ------------------------------------------------------------
# What Ollama writes, from its source (v0.33.0-rc2, fb30760996871fa9460115c753afd2c60d4ab0f7):
# middleware/openai.go ChatWriter.writeResponse / CompleteWriter.writeResponse, and openai/openai.go
# toChunk / ToStreamChunks / FinishChunk / ToUsage / ToCompleteChunk / ToUsageGenerate. Each
# event is fmt.Sprintf("data: %s\n\n", json.Marshal(chunk)), so struct field order is byte order.

HI = [{"role": "user", "content": "hi"}]  # 5 prompt tokens in the emulator's count


def _chat_chunk(ident: str, created: int, choices: bytes, model: bytes = b"llama3.2") -> bytes:
    # openai.ChatCompletionChunk: id, object, created, model, system_fingerprint, choices, usage
    return (b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s",'
            b'"system_fingerprint":"fp_ollama","choices":%s}\n\n'
            % (ident.encode(), created, model, choices))


def _delta(delta: bytes, finish: bytes = b"null") -> bytes:
    # openai.ChunkChoice: index, delta, finish_reason (*string without omitempty: null)
    return b'[{"index":0,"delta":%s,"finish_reason":%s}]' % (delta, finish)


def _stream_call(emu: Emulator, path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The whole SSE body, and the first event (for the id and created to expect)."""
    r = call(emu, path, {**body, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream"
    assert r.content.startswith(b"data: {"), r.content
    first = json.loads(r.content.split(b"\n\n", 1)[0][len(b"data: "):])
    return r.content, first


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream_bytes(emu: Emulator, include_usage: bool) -> None:
    """The role on the first delta only (toChunk's includeRole = !w.firstChunkSent), content
    deltas after it, the finish chunk's empty Delta{} -> "delta":{} (FinishChunk), the usage
    chunk (the finish chunk again with "choices":[] and openai.ToUsage) only when asked, and
    [DONE]; created pinned to the first chunk's on every one (w.createdAt)."""
    body: dict[str, Any] = {"model": "llama3.2", "messages": HI, "max_tokens": 3}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    data, first = _stream_call(emu, "/chat/completions", body)
    ident, created = first["id"], first["created"]
    assert re.fullmatch(r"chatcmpl-\d{1,3}", ident)
    expected = (
        _chat_chunk(ident, created, _delta(b'{"role":"assistant","content":"Hello"}'))
        + _chat_chunk(ident, created, _delta(b'{"content":"!"}'))
        + _chat_chunk(ident, created, _delta(b'{"content":" How"}'))
        + _chat_chunk(ident, created, _delta(b"{}", b'"length"'))
    )
    if include_usage:
        expected += _chat_chunk(
            ident, created,
            b'[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}')
    expected += b"data: [DONE]\n\n"
    assert data == expected


def test_chat_stream_reasoning_bytes(emu: Emulator) -> None:
    """A thinking response is a chunk whose Delta.Content (an `any` holding "") survives
    omitempty next to "reasoning"; the role rides on the first of them only, and the usage
    counts the thinking tokens (eval_count)."""
    body = {"model": "qwen3:8b", "messages": HI, "max_tokens": 3,
            "stream_options": {"include_usage": True}}
    data, first = _stream_call(emu, "/chat/completions", body)
    ident, created = first["id"], first["created"]
    qwen = b"qwen3:8b"
    assert data == (
        _chat_chunk(ident, created,
                    _delta(b'{"role":"assistant","content":"","reasoning":"Okay"}'), qwen)
        + _chat_chunk(ident, created, _delta(b'{"content":"","reasoning":","}'), qwen)
        + _chat_chunk(ident, created, _delta(b'{"content":"Hello"}'), qwen)
        + _chat_chunk(ident, created, _delta(b"{}", b'"length"'), qwen)
        + _chat_chunk(ident, created,
                      b'[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}',
                      qwen)
        + b"data: [DONE]\n\n"
    )


def _completion_events(data: bytes) -> tuple[bytes, set[int]]:
    """The body with each chunk's created (ToCompleteChunk: time.Now() per chunk) replaced by
    0, and the values seen."""
    seen = {int(m) for m in re.findall(rb'"created":(\d+),', data)}
    return re.sub(rb'"created":\d+,', b'"created":0,', data), seen


def _completion_chunk(ident: str, choices: bytes, usage: bytes | None,
                      model: bytes = b"llama3.2") -> bytes:
    # openai.CompletionChunk: id, object, created, choices, model, system_fingerprint, usage
    tail = b',"usage":%s' % usage if usage is not None else b""
    return (b'data: {"id":"%s","object":"text_completion","created":0,"choices":%s,'
            b'"model":"%s","system_fingerprint":"fp_ollama"%s}\n\n'
            % (ident.encode(), choices, model, tail))


ZERO = b'{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


def _text(text: bytes, finish: bytes = b"null") -> bytes:
    return b'[{"text":"%s","index":0,"finish_reason":%s}]' % (text, finish)


@pytest.mark.parametrize("include_usage", [False, True])
def test_completions_stream_bytes(emu: Emulator, include_usage: bool) -> None:
    """CompleteWriter: every chunk carries an empty usage when include_usage is set (c.Usage =
    &openai.Usage{}), the done response is an ordinary chunk with the finish reason, then the
    same chunk with "choices":[] and ToUsageGenerate's counts, then [DONE]."""
    body: dict[str, Any] = {"model": "llama3.2", "prompt": "hi", "max_tokens": 2}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    raw, first = _stream_call(emu, "/completions", body)
    data, seen = _completion_events(raw)
    assert max(seen) - min(seen) <= 1, seen
    ident = first["id"]
    usage = ZERO if include_usage else None
    expected = (
        _completion_chunk(ident, _text(b"Hello"), usage)
        + _completion_chunk(ident, _text(b"!"), usage)
        + _completion_chunk(ident, _text(b"", b'"length"'), usage)
    )
    if include_usage:
        expected += _completion_chunk(
            ident, b"[]", b'{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}')
    assert data == expected + b"data: [DONE]\n\n"


def test_completions_stream_of_a_thinking_model(emu: Emulator) -> None:
    """FromCompleteRequest sets no Think, so GenerateHandler thinks by default; ToCompleteChunk
    has no thinking field: each thinking response is a chunk with empty text, and the usage
    counts those tokens (eval_count)."""
    raw, first = _stream_call(emu, "/completions", {
        "model": "qwen3:8b", "prompt": "hi", "max_tokens": 3,
        "stream_options": {"include_usage": True}})
    data, _seen = _completion_events(raw)
    ident, qwen = first["id"], b"qwen3:8b"
    assert data == (
        _completion_chunk(ident, _text(b""), ZERO, qwen) * 2
        + _completion_chunk(ident, _text(b"Hello"), ZERO, qwen)
        + _completion_chunk(ident, _text(b"", b'"length"'), ZERO, qwen)
        + _completion_chunk(
            ident, b"[]", b'{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}', qwen)
        + b"data: [DONE]\n\n"
    )
    r = call(emu, "/completions", {"model": "qwen3:8b", "prompt": "hi", "max_tokens": 3})
    assert r.json()["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}


def test_completions_load_only_stream_with_usage(emu: Emulator) -> None:
    """The empty-prompt answer is one c.JSON write through CompleteWriter: with include_usage
    its chunk carries the empty usage, and the usage chunk (zeros: no metrics) follows."""
    raw, first = _stream_call(emu, "/completions", {
        "model": "llama3.2", "prompt": "", "stream_options": {"include_usage": True}})
    data, _seen = _completion_events(raw)
    assert data == (
        _completion_chunk(first["id"], _text(b"", b'"load"'), ZERO)
        + _completion_chunk(first["id"], b"[]", ZERO)
        + b"data: [DONE]\n\n"
    )


def test_openai_sdk_parses_the_streams(emu: Emulator) -> None:
    """The real openai package reads both streams from the loopback emulator."""
    openai = pytest.importorskip(
        "openai", reason="the openai package is not installed in this environment")
    client = openai.OpenAI(base_url=emu.url + "/v1", api_key="ollama", max_retries=0,
                           timeout=10, http_client=httpx.Client(trust_env=False))
    chunks = list(client.chat.completions.create(
        model="llama3.2", messages=HI, max_tokens=3, stream=True,
        stream_options={"include_usage": True}))
    assert [c.choices[0].delta.role if c.choices else "-" for c in chunks] == [
        "assistant", None, None, None, "-"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    texts = list(client.completions.create(model="llama3.2", prompt="hi", max_tokens=2,
                                           stream=True))
    assert [t.choices[0].text for t in texts] == ["Hello", "!", ""]


# ---- /v1/embeddings ----------------------------------------------------------------------------


def test_embeddings(emu: Emulator) -> None:
    r = call(emu, "/embeddings", {"model": "nomic-embed-text", "input": ["hello", "world"]})
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    assert r.content.endswith(b"}\n")
    body = r.json()
    assert list(body) == ["object", "data", "model", "usage"]
    assert (body["object"], body["model"]) == ("list", "nomic-embed-text")
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert [(d["object"], d["index"], len(d["embedding"])) for d in body["data"]] == [
        ("embedding", 0, 32),
        ("embedding", 1, 32),
    ]
    native = httpx.post(emu.url + "/api/embed", json={"model": "nomic-embed-text",
                        "input": ["hello", "world"]}, trust_env=False, timeout=10).json()
    assert [d["embedding"] for d in body["data"]] == native["embeddings"]

    r = call(emu, "/embeddings", {"model": "nomic-embed-text", "input": "hello",
                                  "encoding_format": "BASE64", "dimensions": 4})
    packed = base64.b64decode(r.json()["data"][0]["embedding"])
    values = struct.unpack("<4f", packed)
    assert abs(sum(v * v for v in values) - 1.0) < 1e-4  # truncated, then renormalised
    one = call(emu, "/embeddings", {"model": "nomic-embed-text", "input": ""}).json()
    assert [d["index"] for d in one["data"]] == [0]  # "" is embedded as [""]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "nomic-embed-text"}, 400, "invalid input"),
        ({"model": "nomic-embed-text", "input": None}, 400, "invalid input"),
        ({"model": "nomic-embed-text", "input": []}, 400, "invalid input"),
        ({"model": "nomic-embed-text", "input": "x", "encoding_format": "hex"}, 400,
         "Invalid value for 'encoding_format' = hex. Supported values: ['float', 'base64']."),
        ({"model": "nomic-embed-text", "input": [1, 2]}, 400, "invalid input type"),
        ({"model": "nope", "input": "x"}, 404, 'model "nope" not found, try pulling it first'),
        ({"input": "x"}, 404, "model '' not found"),
    ],
)
def test_embeddings_errors(emu: Emulator, body: Any, status: int, message: str) -> None:
    r = call(emu, "/embeddings", body)
    assert (r.status_code, r.json()) == (status, openai_error(status, message))


# ---- every fault, as an OpenAI client meets it ------------------------------------------------

ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/chat/completions",
             {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    "completions": ("/completions", {"model": "llama3.2", "prompt": "hi"}),
    "embeddings": ("/embeddings", {"model": "nomic-embed-text", "input": "hi"}),
}
LOAD_FAULTS = [
    ("busy", "", 503, BUSY),
    ("oom", "new", 500,
     "llama-server reported out-of-memory during startup: cudaMalloc failed: out of memory"),
    ("oom", "killed", 500, "llama-server process has terminated: signal: killed"),
    ("runner-crash", "new", 500, "llama-server process has terminated: exit status 2"),
    ("runner-crash", "old", 500, "llama runner process has terminated: exit status 2"),
]


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize(("fault", "value", "status", "message"), LOAD_FAULTS)
def test_load_faults_on_v1(
    make: Callable[..., Emulator], route: str, fault: str, value: str, status: int, message: str
) -> None:
    emu = make(**{fault: value})
    path, body = ROUTES[route]
    r = call(emu, path, body)
    assert (r.status_code, r.headers["content-type"]) == (status, "application/json")
    assert r.json() == openai_error(status, message)


def test_busy_only_stops_loads(make: Callable[..., Emulator]) -> None:
    emu = make()
    for path, body in ROUTES.values():
        assert call(emu, path, body).status_code == 200
    emu.set_fault("busy")
    for path, body in ROUTES.values():  # loaded already: no scheduling, no 503
        assert call(emu, path, body).status_code == 200, path
    path, body = ROUTES["chat"]
    r = call(emu, path, {**body, "model": "tiny:1b"})
    assert (r.status_code, r.json()) == (503, openai_error(503, BUSY))


def test_mid_stream_error_on_v1(make: Callable[..., Emulator]) -> None:
    message = "an error was encountered while running the model: unexpected EOF"
    emu = make(**{"mid-stream-error": ""})
    for route in ("chat", "completions"):
        path, body = ROUTES[route]
        r = call(emu, path, body)
        assert (r.status_code, r.json()) == (500, openai_error(500, message))
        r = call(emu, path, {**body, "stream": True})
        assert r.status_code == 200
        got = events(r)
        # Ollama passes the {"error"} line through the OpenAI writer as a chunk: one empty
        # chunk, no [DONE], the message lost (docs/ollama-wire.md §1.8; the exact bytes are
        # pinned in tests/test_emulator_faults.py)
        last = got[-1]
        assert isinstance(last, dict) and last["model"] == ""
        text = (last["choices"][0]["delta"] if route == "chat" else last["choices"][0])
        assert text in ({"content": ""}, {"text": "", "index": 0, "finish_reason": None})
        assert "[DONE]" not in got and message not in r.text


@pytest.mark.parametrize(
    ("mode", "status", "body"),
    [
        ("disabled", 403, {"error": "ollama cloud is disabled: remote model is unavailable"}),
        ("quota", 429, {"error": "you (user) have reached your session usage limit, upgrade "
                                 "for higher limits: https://ollama.com/upgrade"}),
    ],
)
def test_cloud_faults_on_v1_keep_ollamas_shape(
    make: Callable[..., Emulator], mode: str, status: int, body: dict[str, Any]
) -> None:
    """cloudPassthroughMiddleware runs before the OpenAI middleware (routes.go, v0.33)."""
    emu = make(cloud=mode)
    for path, request in ROUTES.values():
        r = call(emu, path, {**request, "model": "kimi:cloud"})
        assert (r.status_code, r.json()) == (status, body), path
        assert r.headers["content-type"] == "application/json; charset=utf-8"
    emu.set_fault("cloud", "upstream")
    r = call(emu, "/completions", {"model": "kimi:cloud", "prompt": "x"})
    assert r.status_code == 502
    assert re.fullmatch(
        r'Post "https://ollama\.com:443/v1/completions\?ts=\d+": dial tcp: lookup ollama\.com: '
        r"no such host",
        r.json()["error"],
    )
    emu.set_fault("cloud", "signin")
    r = call(emu, "/embeddings", {"model": "kimi:cloud", "input": "x"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


def test_front_faults_reach_openai_clients(make: Callable[..., Emulator]) -> None:
    """An auth proxy or gateway in front answers every route alike, in its own words."""
    emu = make(auth="s3cret")
    for path, body in ROUTES.values():
        r = call(emu, path, body)
        assert (r.status_code, r.text) == (401, "401 Unauthorized"), path
    emu.clear_fault("auth")
    emu.set_fault("rate-limit", "0.001")
    codes = [call(emu, path, body).status_code for path, body in ROUTES.values()]
    assert codes == [200, 429, 429]


def test_cold_load_and_client_timeout_on_v1(
    make: Callable[..., Emulator], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    emu = make(log_file=log, **{"cold-load": "100"})  # 1 s at time_scale 0.01
    path, body = ROUTES["completions"]
    with pytest.raises(httpx.ReadTimeout), httpx.Client(trust_env=False, timeout=0.3) as c:
        c.post(emu.url + "/v1" + path, json=body)
    assert "llama3.2:latest" not in emu.loaded or emu.loaded["llama3.2:latest"].state == "loading"
    emu.set_fault("cold-load", "0")
    assert call(emu, path, body).status_code == 200
    text = log.read_text()
    assert "client connection closed before llama-server finished loading" in text
    assert re.search(r'\| 499 \| .*POST +"/v1/completions"', text)
