"""The inference path shared by ``/api/generate``, ``/api/chat`` and the OpenAI routes.

``completion`` is Ollama's ``GenerateHandler``/``ChatHandler`` up to the point where output is
written: name and capability checks (``server/routes.go``, v0.33), load-only and unload
requests (``docs/ollama-wire.md`` §1.5), scheduling through the
:class:`~.scheduler.Scheduler` (so every load fault reaches every route), then a *producer*
that writes the answer in the route's format. ``run_model`` simulates prompt evaluation and
token generation, and is where ``mid-stream-error`` and ``slow-generate`` act.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .cloud import cloud_check
from .logs import Log
from .models import ModelSpec, full_name, split_name
from .scheduler import LoadedModel, RunOptions
from .wire import CT_NDJSON, CT_PLAIN_JSON, GARBAGE, ClientGone, Ctx, HTTPError, go_json, utc_now

if TYPE_CHECKING:
    from .server import Emulator

WARM_LOAD_NS = 2_000_000  # scheduler overhead reported on a warm call ("a few ms")
TOKEN_SECONDS = 0.01  # per generated token at time_scale 1 (100 tokens/s on the GPU)
PROMPT_TOKEN_SECONDS = 0.00005  # per prompt token
EMBED_DIMS = 32
ANSWER = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
JSON_ANSWER = ('{"', "answer", '":"', "Hello", '!"}')
THOUGHT = ("Okay", ",", " the", " user", " says", " hello", ".", " Let", " me", " think", ".")

# Writes the answer once a runner is ready: (app, ctx, raw, spec, runner, opts, stream, load_ns).
Producer = Callable[
    ["Emulator", Ctx, dict[str, Any], ModelSpec, LoadedModel, RunOptions, bool, int],
    Awaitable[None],
]
# Sends the done-only object of a load-only or unload request.
DoneOnly = Callable[[Ctx, dict[str, Any], bool], Awaitable[None]]


def ns_since(start: float) -> int:
    return int((time.perf_counter() - start) * 1e9)


def vector(text: str) -> list[float]:
    """A deterministic unit vector for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    values = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(EMBED_DIMS)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def truncate(log: Log, count: int, opts: RunOptions) -> int:
    if count > opts.num_ctx:
        log.slog(
            "WARN",
            "runner.go:157",
            "truncating input prompt",
            limit=opts.num_ctx,
            prompt=count,
            keep=opts.num_keep,
            new=opts.num_ctx,
        )
        return opts.num_ctx
    return count


def done_only(name: str, created: str, chat: bool, reason: str) -> dict[str, Any]:
    if chat:
        return {
            "model": name,
            "created_at": created,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reason,
        }
    return {
        "model": name,
        "created_at": created,
        "response": "",
        "done": True,
        "done_reason": reason,
    }


async def send_done_only(ctx: Ctx, body: dict[str, Any], stream: bool) -> None:
    # routes.go: a load-only answer is one JSON object even when streaming was asked for.
    await ctx.rsp.send_json(200, body)


def prompt_tokens(raw: dict[str, Any], chat: bool) -> int:
    if chat:
        chars = 0
        messages = raw.get("messages") or []
        for m in messages:
            if isinstance(m, dict):
                chars += len(str(m.get("content") or "")) + len(str(m.get("role") or ""))
        return max(1, math.ceil(chars / 4) + 3 * len(messages))
    text = str(raw.get("system") or "") + str(raw.get("prompt") or "")
    context = raw.get("context") or []
    return max(1, math.ceil(len(text) / 4) + len(context))


def thinks(raw: dict[str, Any], spec: ModelSpec) -> bool:
    """Whether a reasoning model thinks on this call: unless ``think`` is false (or ``"none"``,
    which ``reasoning_effort`` maps to), as Ollama's thinking models do by default."""
    return spec.think_tokens > 0 and raw.get("think") not in (False, "none", "")


def _answer(
    raw: dict[str, Any], opts: RunOptions, spec: ModelSpec | None = None
) -> tuple[list[str], list[str], str]:
    """(thinking, content, done_reason). Thinking comes first and counts against
    ``num_predict`` (llm/server.go: one budget for every token the runner predicts)."""
    thought: list[str] = []
    if spec is not None and thinks(raw, spec):
        thought = [THOUGHT[i % len(THOUGHT)] for i in range(spec.think_tokens)]
    tokens = list(JSON_ANSWER if raw.get("format") else ANSWER)
    budget = opts.num_predict
    if 0 < budget <= len(thought):
        return thought[:budget], [], "length"
    if 0 < budget - len(thought) < len(tokens):
        return thought, tokens[: budget - len(thought)], "length"
    return thought, tokens, "stop"


def _check_caps(spec: ModelSpec, raw: dict[str, Any], chat: bool) -> None:
    """The capability checks of GenerateHandler/ChatHandler (routes.go), in their order."""
    name: str = raw.get("model", "")
    if "completion" not in spec.capabilities:
        what = "chat" if chat else "generate"
        raise HTTPError(400, f"{json.dumps(name)} does not support {what}")
    think = raw.get("think")
    if think not in (None, False, "") and "thinking" not in spec.capabilities:
        raise HTTPError(400, f"{json.dumps(name)} does not support thinking")
    messages: list[Any] = raw.get("messages") or []
    if chat:
        needed = [
            ("tools", bool(raw.get("tools"))),
            ("vision", any(isinstance(m, dict) and m.get("images") for m in messages)),
        ]
    else:
        needed = [("insert", bool(raw.get("suffix"))), ("vision", bool(raw.get("images")))]
    missing = [cap for cap, wanted in needed if wanted and cap not in spec.capabilities]
    if missing:
        # CheckCapabilities: errors.Join puts each missing capability on its own line.
        raise HTTPError(400, f"{full_name(spec)} does not support " + "\n".join(missing))


# api.Options (api/types.go v0.33): the Go kind FromMap converts each known option to.
OPTION_KINDS = {
    **dict.fromkeys(("num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread",
                     "draft_num_predict", "num_keep", "seed", "num_predict", "top_k",
                     "repeat_last_n"), "integer"),
    **dict.fromkeys(("top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                     "presence_penalty", "frequency_penalty"), "float32"),
    "use_mmap": "boolean",
    "stop": "array",
}


def options_error(options: Any) -> str | None:
    """``api.Options.FromMap``'s first error (unknown keys are only logged)."""
    if not isinstance(options, dict):
        return None
    for key, value in options.items():
        kind = OPTION_KINDS.get(key)
        if kind is None or value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {
            "integer": number,
            "float32": number,
            "boolean": isinstance(value, bool),
            "array": isinstance(value, list),
        }[kind]
        if not ok:
            return f"option {json.dumps(key)} must be of type {kind}"
        if kind == "array" and not all(isinstance(v, str) for v in value):
            return f"option {json.dumps(key)} must be of an array of strings"
    return None


def format_error(value: Any) -> str | None:
    """The runner's check of ``format`` (``llm/llama_server.go`` Completion, v0.33)."""
    if value is None or value == "" or value == "json" or isinstance(value, dict):
        return None
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    quoted = json.dumps(raw, ensure_ascii=False)
    return f'invalid format: {quoted}; expected "json" or a valid JSON Schema object'


def _find_model(app: Emulator, ctx: Ctx, raw: dict[str, Any], chat: bool) -> ModelSpec:
    name: str = raw.get("model", "")
    if chat and (not name or split_name(name) is None):
        raise HTTPError(400, "model is required")
    if not chat and split_name(name) is None:
        raise HTTPError(404, f"model '{name}' not found")
    cloud_check(name, ctx.f, method=ctx.req.method, path=ctx.req.path)
    spec = app.find(name)
    if spec is None:
        raise HTTPError(404, f"model '{name}' not found")
    return spec


async def completion(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    *,
    chat: bool,
    produce: Producer,
    done: DoneOnly = send_done_only,
) -> None:
    """GenerateHandler / ChatHandler: check, schedule, then ``produce`` the answer."""
    top = raw.get("top_logprobs", 0)
    if not 0 <= top <= 20:
        raise HTTPError(400, "top_logprobs must be between 0 and 20")
    spec = _find_model(app, ctx, raw, chat)
    name: str = raw.get("model", "")
    empty = not (raw.get("messages") if chat else raw.get("prompt"))
    keep_alive: float | None = raw.get("keep_alive")
    stream = raw.get("stream", True) is not False
    created = utc_now()
    if empty and keep_alive == 0:
        app.sched.unload(spec)
        await done(ctx, done_only(name, created, chat, "unload"), stream)
        return
    if not chat and raw.get("raw") and (
        raw.get("template") or raw.get("system") or raw.get("context")
    ):
        raise HTTPError(400, "raw mode does not support template, system, or context")
    _check_caps(spec, raw, chat)
    # scheduleRunner: CheckCapabilities, then modelOptions (FromMap) -> handleScheduleError 500.
    problem = options_error(raw.get("options"))
    if problem:
        raise HTTPError(500, problem)
    opts = app.sched.options(raw, spec, ctx.f)
    runner = await app.sched.acquire(ctx, spec, opts, keep_alive)
    try:
        load_ns = ns_since(ctx.t0) + WARM_LOAD_NS
        if empty:
            await done(ctx, done_only(name, created, chat, "load"), stream)
            return
        problem = format_error(raw.get("format"))
        if problem:
            # The runner rejects it before the first token, so the status is still unsent;
            # streamResponse sets "application/json" by hand before c.JSON (routes.go).
            if stream and not ctx.v1:
                await ctx.rsp.send(500, go_json({"error": problem}), CT_PLAIN_JSON, is_json=True)
                return
            raise HTTPError(500, problem)
        await app.sched.guard(ctx, produce(app, ctx, raw, spec, runner, opts, stream, load_ns))
    except ClientGone:
        if not empty:
            app.log.slog(
                "INFO",
                "llama_server.go:1712",
                "aborting completion request due to client closing the connection",
            )
        raise
    finally:
        app.sched.release(runner)


async def run_model(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    runner: LoadedModel,
    opts: RunOptions,
    chat: bool,
    emit: Callable[[str], Awaitable[None]] | None,
    emit_thinking: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[list[str], str, int, int, int, list[str]]:
    """Simulate prompt evaluation and generation; return the content tokens, reason,
    durations and the thinking tokens (emitted through ``emit_thinking`` first)."""
    f = ctx.f
    offload = 100 if runner.size == 0 else runner.size_vram * 100 // max(1, runner.size)
    prompt_count = truncate(app.log, prompt_tokens(raw, chat), opts)
    scale = app.config.time_scale
    t = time.perf_counter()
    await asyncio.sleep(prompt_count * PROMPT_TOKEN_SECONDS * scale * (1 + (100 - offload) / 10))
    prompt_ns = ns_since(t)
    thought, tokens, reason = _answer(raw, opts, runner.spec)
    if f.slow_generate is not None:
        delay = f.slow_generate * scale / max(1, len(tokens) + len(thought))
    else:
        delay = TOKEN_SECONDS * (1 + (100 - offload) / 10) * scale
    t = time.perf_counter()
    for token in thought:
        await asyncio.sleep(delay)
        if emit_thinking is not None:
            await emit_thinking(token)
    for token in tokens:
        await asyncio.sleep(delay)
        if f.mid_stream_error is not None:
            if emit is not None:
                await emit(token)
            app.log.slog("ERROR", "llama_server.go:1766", "post predict", error=f.mid_stream_error)
            raise HTTPError(500, f.mid_stream_error)
        if emit is not None:
            await emit(token)
    eval_ns = ns_since(t)
    return tokens, reason, prompt_count, prompt_ns, eval_ns, thought


async def native_generate(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    spec: ModelSpec,
    runner: LoadedModel,
    opts: RunOptions,
    stream: bool,
    load_ns: int,
) -> None:
    """``/api/generate`` output: NDJSON chunks, or one JSON object with ``stream:false``."""
    await _native(app, ctx, raw, runner, opts, stream, load_ns, chat=False)


async def native_chat(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    spec: ModelSpec,
    runner: LoadedModel,
    opts: RunOptions,
    stream: bool,
    load_ns: int,
) -> None:
    """``/api/chat`` output: NDJSON chunks, or one JSON object with ``stream:false``."""
    await _native(app, ctx, raw, runner, opts, stream, load_ns, chat=True)


async def _native(
    app: Emulator,
    ctx: Ctx,
    raw: dict[str, Any],
    runner: LoadedModel,
    opts: RunOptions,
    stream: bool,
    load_ns: int,
    *,
    chat: bool,
) -> None:
    name = raw.get("model", "")
    rsp = ctx.rsp

    def piece(token: str, done: bool, thinking: str = "") -> dict[str, Any]:
        # api.Message / GenerateResponse: "thinking" is omitempty, after the content.
        if chat:
            message = {"role": "assistant", "content": token}
            if thinking:
                message["thinking"] = thinking
            return {"model": name, "created_at": utc_now(), "message": message, "done": done}
        out = {"model": name, "created_at": utc_now(), "response": token}
        if thinking:
            out["thinking"] = thinking
        return {**out, "done": done}

    emit: Callable[[str], Awaitable[None]] | None = None
    emit_thinking: Callable[[str], Awaitable[None]] | None = None
    if stream:
        await rsp.start_stream(CT_NDJSON)

        async def emit_token(token: str) -> None:
            line = GARBAGE if ctx.f.garbage else go_json(piece(token, False)) + b"\n"
            await rsp.chunk(line)

        async def emit_thought(token: str) -> None:
            line = GARBAGE if ctx.f.garbage else go_json(piece("", False, token)) + b"\n"
            await rsp.chunk(line)

        emit, emit_thinking = emit_token, emit_thought
    tokens, reason, prompt_count, prompt_ns, eval_ns, thought = await run_model(
        app, ctx, raw, runner, opts, chat, emit, emit_thinking
    )
    final = piece("" if stream else "".join(tokens), True,
                  "" if stream else "".join(thought))
    final["done_reason"] = reason
    if not chat and not raw.get("raw"):
        final["context"] = [(i * 7919) % 32000 + 1 for i in range(prompt_count + len(tokens))]
    final["total_duration"] = ns_since(ctx.t0) + WARM_LOAD_NS
    final["load_duration"] = load_ns
    final["prompt_eval_count"] = prompt_count
    final["prompt_eval_duration"] = prompt_ns
    final["eval_count"] = len(tokens) + len(thought)
    final["eval_duration"] = eval_ns
    if stream:
        line = go_json(final) + b"\n"
        if ctx.f.garbage:
            line = GARBAGE
        if ctx.f.truncated_json:
            line = line[: len(line) // 2]
        await rsp.chunk(line)
        await rsp.end_stream()
    else:
        await rsp.send_json(200, final)
