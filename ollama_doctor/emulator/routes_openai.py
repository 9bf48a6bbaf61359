"""The OpenAI-compatible routes: ``/v1/models``, ``/v1/models/{model}``,
``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``.

As in Ollama (``middleware/openai.go`` ``ChatMiddleware``, ``CompletionsMiddleware``,
``EmbeddingsMiddleware``, ``ListMiddleware``, ``RetrieveMiddleware``; ``openai/openai.go``,
v0.33), each route translates the request, runs the native handler's path (the same scheduler,
so every load fault reaches OpenAI clients) and rewrites the answer. Errors get the OpenAI shape
``{"error":{"message","type","param":null,"code":null}}``: the middleware's own 400s through
``c.AbortWithStatusJSON``, the handler's errors through ``BaseWriter.writeError`` (JSON plus a
newline, ``Content-Type: application/json``). An error after a stream has started loses its
message: the client gets one chunk with empty content and no ``data: [DONE]`` (see
``_run_openai``). Cloud-proxy errors keep Ollama's shape (see ``cloud.py``).

Streams (``ChatWriter`` / ``CompleteWriter.writeResponse``, read at v0.33.0-rc2, commit
fb30760996871fa9460115c753afd2c60d4ab0f7): chat sends ``delta.role`` on its first chunk only,
then a finish chunk with ``"delta":{}``; completions send the done response as an ordinary chunk
(and, with ``include_usage``, an empty usage on every chunk). With
``stream_options.include_usage`` both repeat their last chunk with ``"choices":[]`` and the real
usage before ``data: [DONE]`` (``_stream_tail``).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ollama_doctor.godecode import go_type_name

from .decode import (
    OPENAI_CHAT_FIELDS,
    OPENAI_COMPLETION_FIELDS,
    OPENAI_EMBEDDING_FIELDS,
    bind_json,
)
from .generation import DoneOnly, Producer, completion, run_model
from .models import ModelSpec
from .routes_native import embed, show_model
from .scheduler import LoadedModel, RunOptions
from .wire import CT_PLAIN_JSON, CT_SSE, Ctx, HTTPError, fail, go_json

if TYPE_CHECKING:
    from .server import Emulator, Handler



async def _write_json(ctx: Ctx, body: dict[str, Any]) -> None:
    # The OpenAI writers use json.NewEncoder(w).Encode: a trailing newline, plain
    # "application/json".
    await ctx.rsp.send(200, go_json(body) + b"\n", CT_PLAIN_JSON, is_json=True)


def _sse_bytes(obj: dict[str, Any] | str) -> bytes:
    # fmt.Sprintf("data: %s\n\n", d) around json.Marshal (no trailing newline of its own).
    data = obj.encode() if isinstance(obj, str) else go_json(obj)
    return b"data: " + data + b"\n\n"


async def _sse(ctx: Ctx, obj: dict[str, Any] | str) -> None:
    await ctx.rsp.chunk(_sse_bytes(obj))


def _model_entry(app: Emulator, spec: ModelSpec, model_id: str | None = None) -> dict[str, Any]:
    owner = spec.name.split("/")[0] if "/" in spec.name else "library"
    index = app.config.models.index(spec)
    return {
        "id": model_id or spec.name,
        "object": "model",
        "created": int(app.modified(index).timestamp()),
        "owned_by": owner,
    }


async def h_models(app: Emulator, ctx: Ctx) -> None:
    data = [_model_entry(app, s) for s in app.config.models]
    await _write_json(ctx, {"object": "list", "data": data or None})  # nil slice -> null


async def h_model(app: Emulator, ctx: Ctx) -> None:
    # RetrieveMiddleware runs ShowHandler: the same cloud checks and 404.
    spec = show_model(app, ctx, ctx.param)
    await _write_json(ctx, _model_entry(app, spec, ctx.param))


async def _run_openai(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    runner: LoadedModel,
    opts: RunOptions,
    stream: bool,
    chunk: Callable[[str, str | None], dict[str, Any]],
    error_chunk: Callable[[], dict[str, Any]],
    *,
    chat: bool,
    thinking: Callable[[str], dict[str, Any]] | None = None,
    thought: list[str] | None = None,
) -> tuple[list[str], str, int] | None:
    """Run the model, streaming ``chunk(token, None)`` (and ``thinking(token)``) as SSE; None
    once an error was sent (streamed: as ``error_chunk()``, see below). The thinking tokens are
    appended to ``thought``."""
    emit: Callable[[str], Awaitable[None]] | None = None
    emit_thinking: Callable[[str], Awaitable[None]] | None = None
    if stream:
        await ctx.rsp.start_stream(CT_SSE)

        async def emit_token(token: str) -> None:
            await _sse(ctx, chunk(token, None))

        emit = emit_token
        if thinking is not None:
            make = thinking

            async def emit_thought(token: str) -> None:
                await _sse(ctx, make(token))

            emit_thinking = emit_thought
    try:
        tokens, reason, prompt_count, _p, _e, thoughts = await run_model(
            app, ctx, raw, runner, opts, chat, emit, emit_thinking
        )
        if thought is not None:
            thought.extend(thoughts)
    except HTTPError:
        if not stream:
            raise
        # After the first event the status is sent, and the message is lost (docs/ollama-wire.md
        # §1.8): streamResponse (routes.go) Encodes {"error":"…"} through the OpenAI writer,
        # whose Write sees status 200 and calls writeResponse (middleware/openai.go, v0.33);
        # api.ChatResponse / GenerateResponse have no "error" field, so the line unmarshals as
        # an empty, not-done response: one chunk with empty content, no finish chunk, no
        # [DONE]; then the handler returns and the chunked body ends cleanly.
        await _sse(ctx, error_chunk())
        await ctx.rsp.end_stream()
        return None
    return tokens, reason, prompt_count


# ---- /v1/chat/completions ---------------------------------------------------------------------


class _ChatChunks:
    """The chunks ``ChatWriter.writeResponse`` (``middleware/openai.go``) writes, built by
    ``openai.toChunk`` / ``FinishChunk`` (``openai/openai.go``, v0.33.0-rc2, fb307609).

    - ``delta.role`` is ``"assistant"`` on the stream's first chunk only (``includeRole :=
      !w.firstChunkSent``); ``delta.content`` is an ``any`` holding the response's string, so
      ``omitempty`` keeps ``""`` (a reasoning chunk is ``{"content":"","reasoning":…}``).
    - ``created`` is pinned to the first response's timestamp for every chunk (``w.createdAt``).
    - The finish chunk has an empty ``Delta{}`` (every field omitempty: ``"delta":{}``) and the
      finish reason; the metrics-only done response before it sends no chunk of its own unless
      it is the stream's first (``isEmptyTrailer``).
    """

    def __init__(self, ident: str, name: str) -> None:
        self.ident, self.name = ident, name
        self.created = 0  # unset until the first chunk (Go's zero time.Time)
        self.first_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None, *, model: str | None = None
               ) -> dict[str, Any]:
        if not self.created:
            self.created = int(time.time())
        # ChatCompletionChunk's field order: id, object, created, model, system_fingerprint,
        # choices, usage (omitempty); ChunkChoice: index, delta, finish_reason (a *string, no
        # omitempty: null on every chunk but the finish chunk).
        return {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.name if model is None else model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _delta(self, content: str, reasoning: str = "") -> dict[str, Any]:
        # Delta's field order: role, content, reasoning, tool_calls.
        delta: dict[str, Any] = {} if self.first_sent else {"role": "assistant"}
        delta["content"] = content
        if reasoning:
            delta["reasoning"] = reasoning
        self.first_sent = True
        return delta

    def content(self, token: str, finish: str | None = None) -> dict[str, Any]:
        return self._chunk(self._delta(token), finish)

    def reasoning(self, token: str) -> dict[str, Any]:
        # openai.go ChatCompletionChunk: the thinking travels in delta.reasoning (omitempty).
        return self._chunk(self._delta("", token), None)

    def error(self) -> dict[str, Any]:
        # ChatWriter.writeResponse on a mid-stream {"error":"…"} line: openai.ToStreamChunks of
        # a zero api.ChatResponse (no role after the first chunk; "model" is ""; Delta.Content
        # is an `any` holding "", which omitempty keeps); created stays pinned to the first's.
        return self._chunk(self._delta(""), None, model="")

    def done(self, reason: str) -> list[dict[str, Any]]:
        """The done response's chunks: a role chunk if nothing was sent yet, then FinishChunk."""
        out = [] if self.first_sent else [self.content("")]
        return [*out, self._chunk({}, reason)]


def _chat_producer(include_usage: bool) -> Producer:
    """ChatWriter: chat.completion (or chat.completion.chunk events ending ``[DONE]``);
    ``include_usage`` is the OpenAI request's ``stream_options.include_usage`` (the producer
    sees only the native request ChatMiddleware made of it)."""

    async def produce(
        app: Emulator,
        ctx: Ctx,
        raw: dict[str, Any],
        spec: ModelSpec,
        runner: LoadedModel,
        opts: RunOptions,
        stream: bool,
        load_ns: int,
    ) -> None:
        await _chat_produce(app, ctx, raw, runner, opts, stream, include_usage)

    return produce


async def _chat_produce(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    runner: LoadedModel,
    opts: RunOptions,
    stream: bool,
    include_usage: bool,
) -> None:
    ident = f"chatcmpl-{app.id_rng.randrange(999)}"
    created = int(time.time())
    name = raw.get("model", "")
    chunks = _ChatChunks(ident, name)
    thought: list[str] = []
    result = await _run_openai(
        app, ctx, raw, runner, opts, stream, chunks.content, chunks.error, chat=True,
        thinking=chunks.reasoning, thought=thought,
    )
    if result is None:
        return
    tokens, reason, prompt_count = result
    # openai.ToUsage: prompt_eval_count and eval_count (which counts the thinking tokens too).
    usage = _usage(prompt_count, len(tokens) + len(thought))
    if stream:
        *head, finish = chunks.done(reason)
        for event in head:
            await _sse(ctx, event)
        await _end_stream(ctx, finish, usage if include_usage else None)
        return
    message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
    if thought:
        message["reasoning"] = "".join(thought)
    await _write_json(
        ctx,
        {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reason,
                }
            ],
            "usage": usage,
        },
    )


def _stream_tail(last: dict[str, Any], usage: dict[str, int] | None) -> list[dict[str, Any] | str]:
    """What both OpenAI writers send for the done response, shared by chat and completions:
    its last chunk; with ``stream_options.include_usage`` that same chunk again with
    ``choices: []`` and the real usage (``ChatWriter.writeResponse``: ``finishChunk.Usage = &u;
    finishChunk.Choices = []openai.ChunkChoice{}``; ``CompleteWriter.writeResponse`` likewise on
    ``c``, middleware/openai.go, v0.33.0-rc2); then ``[DONE]``."""
    events: list[dict[str, Any] | str] = [last]
    if usage is not None:
        events.append({**last, "choices": [], "usage": usage})  # usage stays the last field
    events.append("[DONE]")
    return events


async def _end_stream(ctx: Ctx, last: dict[str, Any], usage: dict[str, int] | None) -> None:
    for event in _stream_tail(last, usage):
        await _sse(ctx, event)
    await ctx.rsp.end_stream()


def _usage(prompt: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


_EFFORTS = ("", "none", "minimal", "low", "medium", "high", "max", "xhigh", "ultra")


def _from_chat_request_error(raw: dict[str, Any]) -> str | None:
    """openai.FromChatRequest's errors, in its order (messages, then reasoning effort)."""
    for message in raw["messages"]:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                url = part.get("image_url") if isinstance(part, dict) else None
                url = url.get("url") if isinstance(url, dict) else url
                if isinstance(url, str) and url.startswith(("http://", "https://")):
                    return ("image URLs are not currently supported, please use base64 "
                            "encoded data instead")
        elif content is not None and not isinstance(content, str):
            return f"invalid message content type: {go_type_name(content)}"
    reasoning = raw.get("reasoning")
    effort = raw.get("reasoning_effort", "")
    if isinstance(reasoning, dict):
        effort = reasoning.get("effort", "")
    if isinstance(effort, str) and effort not in _EFFORTS:
        return (
            f"invalid reasoning value: {json.dumps(effort)} (must be \"minimal\", \"low\", "
            '"medium", "high", "xhigh", "ultra", "max", or "none")'
        )
    return None


async def h_chat(app: Emulator, ctx: Ctx) -> None:
    try:
        raw = bind_json(ctx.req.body, "ChatCompletionRequest", OPENAI_CHAT_FIELDS,
                        package="openai")
    except HTTPError as err:
        await fail(ctx, 400, err.message, middleware=True)
        return
    if not raw.get("messages"):
        await fail(ctx, 400, "[] is too short - 'messages'", middleware=True)
        return
    problem = _from_chat_request_error(raw)
    if problem:
        await fail(ctx, 400, problem, middleware=True)
        return
    options: dict[str, Any] = {}
    max_tokens = raw.get("max_tokens")
    if isinstance(max_tokens, int):
        options["num_predict"] = max_tokens
    chat_raw: dict[str, Any] = {
        "model": raw.get("model", ""),
        "messages": raw["messages"],
        "stream": bool(raw.get("stream", False)),
        "options": options,
    }
    if raw.get("tools"):
        chat_raw["tools"] = raw["tools"]
    effort = raw.get("reasoning_effort")
    reasoning = raw.get("reasoning")
    if isinstance(reasoning, dict):
        effort = reasoning.get("effort", effort)
    if isinstance(effort, str) and effort:
        # openai.FromChatRequest: "none" turns thinking off, any other effort asks for it.
        chat_raw["think"] = False if effort == "none" else effort
    await completion(app, ctx, chat_raw, chat=True,
                     produce=_chat_producer(_include_usage(raw)))


# ---- /v1/completions --------------------------------------------------------------------------


def _completion_object(
    ident: str, created: int, name: str, text: str, finish: str | None, *, chunk: bool
) -> dict[str, Any]:
    """openai.Completion / openai.CompletionChunk (their field orders differ)."""
    choices = [{"text": text, "index": 0, "finish_reason": finish or None}]
    head = {"id": ident, "object": "text_completion", "created": created}
    tail = {"system_fingerprint": "fp_ollama"}
    if chunk:
        return {**head, "choices": choices, "model": name, **tail}
    return {**head, "model": name, **tail, "choices": choices}


def _include_usage(raw: dict[str, Any]) -> bool:
    options = raw.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _completion_chunk(
    ident: str, name: str, text: str, finish: str | None, usage: bool
) -> dict[str, Any]:
    """CompleteWriter's chunk: ToCompleteChunk stamps ``time.Now()`` on each one; with
    ``include_usage`` every chunk carries an empty usage (``c.Usage = &openai.Usage{}``, a
    non-nil pointer that ``omitempty`` keeps; middleware/openai.go, v0.33.0-rc2)."""
    obj = _completion_object(ident, int(time.time()), name, text, finish, chunk=True)
    if usage:
        obj["usage"] = _usage(0, 0)
    return obj


def _completions_producer(ident: str, usage: bool) -> Producer:
    """CompleteWriter: text_completion (or events of ToCompleteChunk ending ``[DONE]``)."""

    async def produce(
        app: Emulator,
        ctx: Ctx,
        raw: dict[str, Any],
        spec: ModelSpec,
        runner: LoadedModel,
        opts: RunOptions,
        stream: bool,
        load_ns: int,
    ) -> None:
        name = raw.get("model", "")

        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            return _completion_chunk(ident, name, text, finish, usage)

        def error_chunk() -> dict[str, Any]:
            # CompleteWriter.writeResponse on a mid-stream {"error":"…"} line: ToCompleteChunk
            # of a zero api.GenerateResponse ("model" is "", empty text, no finish_reason;
            # the empty usage when include_usage is set), and no [DONE].
            return {**chunk("", None), "model": ""}

        def thinking(token: str) -> dict[str, Any]:
            # FromCompleteRequest sets no Think, so GenerateHandler thinks by default on a
            # thinking model; each thinking-only response reaches ToCompleteChunk, which has
            # no thinking field: a chunk with empty text (openai/openai.go, v0.33.0-rc2).
            return chunk("", None)

        created = int(time.time())
        thought: list[str] = []
        result = await _run_openai(app, ctx, raw, runner, opts, stream, chunk, error_chunk,
                                   chat=False, thinking=thinking, thought=thought)
        if result is None:
            return
        tokens, reason, prompt_count = result
        # openai.ToUsageGenerate: prompt_eval_count and eval_count (thinking tokens included).
        totals = _usage(prompt_count, len(tokens) + len(thought))
        if not stream:
            body = _completion_object(ident, created, name, "".join(tokens), reason, chunk=False)
            body["usage"] = totals
            await _write_json(ctx, body)
            return
        # The done response (empty text, the finish reason) is a chunk like any other.
        await _end_stream(ctx, chunk("", reason), totals if usage else None)

    return produce


def _completions_done_only(ident: str, usage: bool) -> DoneOnly:
    """GenerateHandler's load-only answer (empty prompt), through CompleteWriter."""

    async def done(ctx: Ctx, body: dict[str, Any], stream: bool) -> None:
        name, reason, created = body["model"], body["done_reason"], int(time.time())
        if not stream:
            obj = _completion_object(ident, created, name, "", reason, chunk=False)
            obj["usage"] = _usage(0, 0)
            await _write_json(ctx, obj)
            return
        # One c.JSON write through CompleteWriter: the chunk, the usage chunk (all zeros: the
        # load-only response has no metrics) when include_usage is set, [DONE].
        last = _completion_chunk(ident, name, "", reason, usage)
        tail = _stream_tail(last, _usage(0, 0) if usage else None)
        payload = b"".join(_sse_bytes(event) for event in tail)
        await ctx.rsp.send(200, payload, CT_SSE)

    return done


def _completion_options(raw: dict[str, Any]) -> dict[str, Any]:
    """openai.FromCompleteRequest's options (only what the emulator reads, plus the check)."""
    options: dict[str, Any] = {}
    stop = raw.get("stop")
    if isinstance(stop, list):
        for item in stop:
            if not isinstance(item, str):
                raise HTTPError(400, f"invalid type for 'stop' field: {go_type_name(item)}")
    max_tokens = raw.get("max_tokens")
    if isinstance(max_tokens, int):
        options["num_predict"] = max_tokens
    return options


async def h_completions(app: Emulator, ctx: Ctx) -> None:
    """CompletionsMiddleware + GenerateHandler."""
    try:
        raw = bind_json(ctx.req.body, "CompletionRequest", OPENAI_COMPLETION_FIELDS,
                        package="openai")
        options = _completion_options(raw)
    except HTTPError as err:
        await fail(ctx, 400, err.message, middleware=True)
        return
    ident = f"cmpl-{app.id_rng.randrange(999)}"  # CompletionsMiddleware: rand.Intn(999)
    gen_raw: dict[str, Any] = {
        "model": raw.get("model", ""),
        "prompt": raw.get("prompt", ""),
        "stream": bool(raw.get("stream", False)),
        "options": options,
    }
    if raw.get("suffix"):
        gen_raw["suffix"] = raw["suffix"]
    usage = _include_usage(raw)
    await completion(
        app,
        ctx,
        gen_raw,
        chat=False,
        produce=_completions_producer(ident, usage),
        done=_completions_done_only(ident, usage),
    )


# ---- /v1/embeddings ---------------------------------------------------------------------------


def _embed_request(raw: dict[str, Any]) -> dict[str, Any]:
    """EmbeddingsMiddleware's checks; the api.EmbedRequest it forwards."""
    fmt = raw.get("encoding_format", "")
    if fmt and fmt.lower() not in ("float", "base64"):
        raise HTTPError(
            400,
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].",
        )
    value = raw.get("input")
    if value == "":
        value = [""]
    if value is None or value == []:
        raise HTTPError(400, "invalid input")
    return {"model": raw.get("model", ""), "input": value}


def _shorten(values: list[float], dims: int) -> list[float]:
    # EmbedHandler: 0 < dimensions < len -> truncate and renormalise.
    if not 0 < dims < len(values):
        return values
    cut = values[:dims]
    norm = math.sqrt(sum(v * v for v in cut)) or 1.0
    return [round(v / norm, 6) for v in cut]


def _encode(values: list[float], fmt: str) -> list[float] | str:
    if fmt.lower() == "base64":  # openai.floatsToBase64: little-endian float32
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


async def h_embeddings(app: Emulator, ctx: Ctx) -> None:
    """EmbeddingsMiddleware + EmbedHandler, answered by openai.ToEmbeddingList."""
    try:
        raw = bind_json(ctx.req.body, "EmbedRequest", OPENAI_EMBEDDING_FIELDS,
                        package="openai")
        request = _embed_request(raw)
    except HTTPError as err:
        await fail(ctx, 400, err.message, middleware=True)
        return
    result = await embed(app, ctx, request)
    fmt = str(raw.get("encoding_format", ""))
    dims = int(raw.get("dimensions", 0))
    data = [
        {"object": "embedding", "embedding": _encode(_shorten(e, dims), fmt), "index": i}
        for i, e in enumerate(result["embeddings"])
    ]
    count = int(result.get("prompt_eval_count", 0))
    await _write_json(
        ctx,
        {
            "object": "list",
            "data": data or None,
            "model": request["model"],
            "usage": {"prompt_tokens": count, "total_tokens": count},
        },
    )


HANDLERS: dict[str, Handler] = {
    "/v1/models": h_models,
    "/v1/models/:param": h_model,
    "/v1/chat/completions": h_chat,
    "/v1/completions": h_completions,
    "/v1/embeddings": h_embeddings,
}
