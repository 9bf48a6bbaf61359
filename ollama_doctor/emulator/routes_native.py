"""Ollama's own API: ``/``, ``/api/version``, ``/api/status``, ``/api/tags``, ``/api/ps``,
``/api/show``, ``/api/generate``, ``/api/chat``, ``/api/embed``, ``/api/embeddings``,
``/api/pull`` — bodies and errors as ``server/routes.go`` (v0.33) writes them
(``docs/ollama-wire.md`` §1–§2).

Each handler is ``async def h_…(app, ctx)``; ``HANDLERS`` maps route keys to them.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import cloud
from .cloud import cloud_check
from .decode import (
    CHAT_FIELDS,
    EMBED_FIELDS,
    EMBEDDINGS_FIELDS,
    GENERATE_FIELDS,
    PULL_FIELDS,
    SHOW_FIELDS,
    bind_json,
)
from .generation import (
    PROMPT_TOKEN_SECONDS,
    WARM_LOAD_NS,
    completion,
    native_chat,
    native_generate,
    ns_since,
    options_error,
    truncate,
    vector,
)
from .models import ModelSpec, details, display_name, show_body, split_name, tags_entry
from .wire import (
    CT_JSON,
    CT_NDJSON,
    CT_TEXT,
    Ctx,
    HTTPError,
    far_future,
    go_json,
    local_time,
    rfc3339,
)

if TYPE_CHECKING:
    from .server import Emulator, Handler


async def h_root(app: Emulator, ctx: Ctx) -> None:
    await ctx.rsp.send(200, b"Ollama is running", CT_TEXT)


async def h_version(app: Emulator, ctx: Ctx) -> None:
    await ctx.rsp.send(200, app.version_body, CT_JSON, is_json=True)


async def h_status(app: Emulator, ctx: Ctx) -> None:
    # routes.go StatusHandler: the cloud fault's "disabled" mode is OLLAMA_NO_CLOUD=1.
    disabled = ctx.f.cloud == "disabled"
    source = "env" if disabled else "none"
    await ctx.rsp.send_json(200, {"cloud": {"disabled": disabled, "source": source}})


async def h_tags(app: Emulator, ctx: Ctx) -> None:
    models = [tags_entry(spec, app.modified(i)) for i, spec in enumerate(app.config.models)]
    await ctx.rsp.send_json(200, {"models": models})


async def h_ps(app: Emulator, ctx: Ctx) -> None:
    app.sched.purge()
    now = datetime.now().astimezone()
    rows = []
    for runner in app.sched.loaded.values():
        if not math.isfinite(runner.keep_alive):
            expires = far_future()
        elif runner.refs > 0 or runner.state == "loading":
            expires = now + timedelta(seconds=runner.keep_alive)  # sched.go estimate
        else:
            expires = local_time(runner.expires_at)
        rows.append((expires, runner))
    rows.sort(key=lambda pair: pair[0], reverse=True)
    models = [
        {
            "name": r.name,
            "model": r.name,
            "size": r.size,
            "digest": r.spec.digest,
            "details": details(r.spec),
            "expires_at": rfc3339(expires),
            "size_vram": r.size_vram,
            "context_length": r.num_ctx,
        }
        for expires, r in rows
    ]
    await ctx.rsp.send_json(200, {"models": models})


def show_model(app: Emulator, ctx: Ctx, name: str) -> ModelSpec:
    """ShowHandler's lookup (also behind ``/v1/models/{model}``): cloud checks, then 404."""
    cloud_check(name, ctx.f, method=ctx.req.method, path=ctx.req.path, operation=cloud.DETAILS)
    spec = app.find(name)
    if spec is None:
        raise HTTPError(404, f"model '{display_name(name) or name}' not found")
    return spec


async def h_show(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "ShowRequest", SHOW_FIELDS)
    name = raw.get("name") or raw.get("model") or ""
    if not name:
        raise HTTPError(400, "model is required")
    spec = show_model(app, ctx, name)
    index = app.config.models.index(spec)
    body = show_body(spec, app.sched.ctx_len(spec, ctx.f), app.modified(index))
    await ctx.rsp.send_json(200, body)


async def h_generate(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "GenerateRequest", GENERATE_FIELDS)
    await completion(app, ctx, raw, chat=False, produce=native_generate)


async def h_chat(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "ChatRequest", CHAT_FIELDS)
    await completion(app, ctx, raw, chat=True, produce=native_chat)


def _embed_inputs(value: Any) -> list[str]:
    inputs: list[str] = []
    if isinstance(value, str):
        if value:
            inputs.append(value)
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise HTTPError(400, "invalid input type")
            inputs.append(item)
    elif value is not None:
        raise HTTPError(400, "invalid input type")
    return inputs


async def embed(app: Emulator, ctx: Ctx, raw: dict[str, Any]) -> dict[str, Any]:
    """EmbedHandler (``/api/embed``, and ``/v1/embeddings`` behind EmbeddingsMiddleware)."""
    name: str = raw.get("model", "")
    if split_name(name) is None:
        raise HTTPError(404, f"model '{name}' not found")
    # EmbedHandler (routes.go v0.33) checks the input's type after the model reference.
    inputs = _embed_inputs(raw.get("input"))
    cloud_check(name, ctx.f, method=ctx.req.method, path=ctx.req.path)
    spec = app.find(name)
    if spec is None:
        raise HTTPError(404, f"model {json.dumps(name)} not found, try pulling it first")
    problem = options_error(raw.get("options"))
    if problem:
        raise HTTPError(500, problem)
    opts = app.sched.options(raw, spec, ctx.f)
    runner = await app.sched.acquire(ctx, spec, opts, raw.get("keep_alive"))
    try:
        load_ns = ns_since(ctx.t0) + WARM_LOAD_NS
        if not inputs:
            return {"model": name, "embeddings": []}
        counts = [max(1, math.ceil(len(s) / 4)) for s in inputs]
        if raw.get("truncate") is False and max(counts) > opts.num_ctx:
            # EmbedHandler embedWithRetry: truncate=false refuses instead of cutting.
            raise HTTPError(400, "the input length exceeds the context length")
        count = sum(truncate(app.log, c, opts) for c in counts)
        await asyncio.sleep(count * PROMPT_TOKEN_SECONDS * app.config.time_scale)
        return {
            "model": name,
            "embeddings": [vector(s) for s in inputs],
            "total_duration": ns_since(ctx.t0) + WARM_LOAD_NS,
            "load_duration": load_ns,
            "prompt_eval_count": count,
        }
    finally:
        app.sched.release(runner)


async def h_embed(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "EmbedRequest", EMBED_FIELDS)
    await ctx.rsp.send_json(200, await embed(app, ctx, raw))


async def h_embeddings(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "EmbeddingRequest", EMBEDDINGS_FIELDS)
    name: str = raw.get("model", "")
    if not name:
        raise HTTPError(400, "model is required")
    cloud_check(name, ctx.f, method=ctx.req.method, path=ctx.req.path)
    spec = app.find(name)
    if spec is None:
        raise HTTPError(404, f"model {json.dumps(name)} not found, try pulling it first")
    problem = options_error(raw.get("options"))
    if problem:
        raise HTTPError(500, problem)
    opts = app.sched.options(raw, spec, ctx.f)
    runner = await app.sched.acquire(ctx, spec, opts, raw.get("keep_alive"))
    try:
        prompt: str = raw.get("prompt", "")
        await ctx.rsp.send_json(200, {"embedding": vector(prompt) if prompt else []})
    finally:
        app.sched.release(runner)


async def h_pull(app: Emulator, ctx: Ctx) -> None:
    raw = bind_json(ctx.req.body, "PullRequest", PULL_FIELDS)
    name = raw.get("model") or raw.get("name") or ""
    if split_name(name) is None:
        raise HTTPError(400, "invalid model name")
    spec = app.find(name)
    stream = raw.get("stream", True) is not False
    error = None if spec is not None else "pull model manifest: file does not exist"
    if not stream:
        if error:
            raise HTTPError(500, error)
        await ctx.rsp.send_json(200, {"status": "success"})
        return
    await ctx.rsp.start_stream(CT_NDJSON)
    await ctx.rsp.chunk(go_json({"status": "pulling manifest"}) + b"\n")
    if error:
        await ctx.rsp.chunk(go_json({"error": error}) + b"\n")
    else:
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            await ctx.rsp.chunk(go_json({"status": status}) + b"\n")
    await ctx.rsp.end_stream()


HANDLERS: dict[str, Handler] = {
    "/": h_root,
    "/api/version": h_version,
    "/api/status": h_status,
    "/api/tags": h_tags,
    "/api/ps": h_ps,
    "/api/show": h_show,
    "/api/generate": h_generate,
    "/api/chat": h_chat,
    "/api/embed": h_embed,
    "/api/embeddings": h_embeddings,
    "/api/pull": h_pull,
}
