"""The scheduler: runner state, model loads, the pending-load queue and keep-alive.

Mirrors ``server/sched.go`` (v0.33) as far as a client can tell: a request for a model that is
not loaded (or loaded with other ``num_ctx``/``num_gpu``/``num_batch``) waits for a load; while
it waits it counts against ``OLLAMA_MAX_QUEUE`` (503 ``server busy`` beyond it, ``sched.go`` 88
and 203–208); a client that hangs up during the load aborts it; a runner stays for
``keep_alive`` after its last request. Load failures (``runner-crash``, ``oom``) and the
``busy`` fault are decided here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from .faults import Faults
from .logs import Log
from .models import ModelSpec, layer_count
from .wire import ClientGone, Ctx, HTTPError

_T = TypeVar("_T")

DEFAULT_KEEP_ALIVE = 300.0
NUM_KEEP = 4
# sched.go ErrMaxQueue; note the two spaces after "again." (docs/ollama-wire.md §2).
BUSY = "server busy, please try again.  maximum pending requests exceeded"


@dataclass
class LoadedModel:
    """A runner: a model in memory with the options it was loaded with."""

    name: str  # display name
    spec: ModelSpec
    num_ctx: int
    num_gpu: int
    num_batch: int
    size: int  # bytes in memory (weights + KV cache)
    size_vram: int
    state: str  # "loading" | "ready"
    keep_alive: float  # seconds; math.inf = forever
    expires_at: float  # time.time(); math.inf = forever
    refs: int = 0

    @property
    def options(self) -> tuple[int, int, int]:
        return (self.num_ctx, self.num_gpu, self.num_batch)

    def expired(self, now: float) -> bool:
        return self.state == "ready" and self.refs == 0 and self.expires_at <= now


@dataclass
class RunOptions:
    """The runner options a request asks for (a change of the first three forces a reload)."""

    num_ctx: int
    num_gpu: int
    num_batch: int
    num_predict: int
    num_keep: int


def int_option(options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return int(value)


class Scheduler:
    """Runners by display name, and the loads that make them."""

    def __init__(self, log: Log, time_scale: float) -> None:
        self.log = log
        self.time_scale = time_scale
        self.loaded: dict[str, LoadedModel] = {}
        self.pending = 0
        self.model_locks: dict[str, asyncio.Lock] = {}

    def ctx_len(self, spec: ModelSpec, f: Faults) -> int:
        return f.context if f.context is not None else spec.context_length

    def options(self, raw: dict[str, Any], spec: ModelSpec, f: Faults) -> RunOptions:
        options = raw.get("options") or {}
        num_ctx = int_option(options, "num_ctx", 0)
        return RunOptions(
            num_ctx=num_ctx if num_ctx > 0 else self.ctx_len(spec, f),
            num_gpu=int_option(options, "num_gpu", -1),
            num_batch=int_option(options, "num_batch", 512),
            num_predict=int_option(options, "num_predict", -1),
            num_keep=int_option(options, "num_keep", NUM_KEEP),
        )

    def purge(self) -> None:
        now = time.time()
        for name, runner in list(self.loaded.items()):
            if runner.expired(now):
                del self.loaded[name]

    async def guard(self, ctx: Ctx, work: Awaitable[_T]) -> _T:
        """Run ``work`` while watching the client; raise ClientGone if it hangs up first."""
        task = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(ctx.conn.wait_eof())
        try:
            done, _pending = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            watch.cancel()
            raise
        if task in done:
            # The watcher must be gone before anyone reads the connection again.
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientGone

    async def acquire(
        self, ctx: Ctx, spec: ModelSpec, opts: RunOptions, keep_alive: float | None
    ) -> LoadedModel:
        """Return a ready runner (refs incremented), loading it first if needed."""
        f = ctx.f
        ka = DEFAULT_KEEP_ALIVE if keep_alive is None else keep_alive
        if spec.is_cloud:  # relayed to ollama.com: nothing to load
            return LoadedModel(
                spec.name,
                spec,
                opts.num_ctx,
                opts.num_gpu,
                opts.num_batch,
                0,
                0,
                "ready",
                ka,
                math.inf,
            )
        self.purge()
        if f.runner_crash or f.oom:
            # The runner has died: whatever was loaded is gone.
            self.loaded.pop(spec.name, None)
        runner = self.ready(spec, opts)
        if runner is None:
            # The busy fault: the pending-load queue is full (sched.go GetRunner, ErrMaxQueue).
            if f.busy or self.pending > f.queue:
                raise HTTPError(503, BUSY)
            self.pending += 1
            try:
                runner = await self.guard(ctx, self.load_locked(ctx, spec, opts, ka))
            finally:
                self.pending -= 1
        runner.refs += 1
        runner.keep_alive = ka
        runner.expires_at = time.time() + ka
        return runner

    def ready(self, spec: ModelSpec, opts: RunOptions) -> LoadedModel | None:
        runner = self.loaded.get(spec.name)
        if runner is None or runner.state != "ready":
            return None
        if runner.options != (opts.num_ctx, opts.num_gpu, opts.num_batch):
            return None
        if runner.expired(time.time()):
            return None
        return runner

    async def load_locked(
        self, ctx: Ctx, spec: ModelSpec, opts: RunOptions, keep_alive: float
    ) -> LoadedModel:
        lock = self.model_locks.setdefault(spec.name, asyncio.Lock())
        async with lock:
            runner = self.ready(spec, opts)
            if runner is not None:
                return runner
            return await self.load(ctx, spec, opts, keep_alive)

    def legacy(self, f: Faults) -> bool:
        nums = re.findall(r"\d+", f.version)[:2]
        major, minor = (int(nums[0]), int(nums[1])) if len(nums) == 2 else (0, 33)
        return (major, minor) < (0, 30)

    async def load(
        self, ctx: Ctx, spec: ModelSpec, opts: RunOptions, keep_alive: float
    ) -> LoadedModel:
        f = ctx.f
        log = self.log
        offload = 100 if f.offload is None else f.offload
        if opts.num_gpu == 0:
            offload = 0
        mem = spec.size + opts.num_ctx * 65536
        runner = LoadedModel(
            name=spec.name,
            spec=spec,
            num_ctx=opts.num_ctx,
            num_gpu=opts.num_gpu,
            num_batch=opts.num_batch,
            size=mem,
            size_vram=mem * offload // 100,
            state="loading",
            keep_alive=keep_alive,
            expires_at=time.time() + keep_alive,
        )
        self.loaded[spec.name] = runner  # a reload replaces the old runner
        legacy = self.legacy(f)
        server = "llama runner" if legacy else "llama-server"
        layers = layer_count(spec)
        gpu_layers = math.floor(layers * offload / 100 + 0.5)
        blob = f"/root/.ollama/models/blobs/sha256-{spec.digest}"
        log.slog(
            "INFO",
            "sched.go:613",
            "system memory",
            total="31.3 GiB",
            free="24.6 GiB",
            free_swap="2.0 GiB",
        )
        if offload > 0:
            log.slog(
                "INFO",
                "sched.go:620",
                "gpu memory",
                id="GPU-5f1c8a3e-emulated",
                library="CUDA",
                available="7.2 GiB",
                free="7.6 GiB",
                minimum="457.0 MiB",
                overhead="0 B",
            )
        if legacy:
            log.slog(
                "INFO",
                "server.go:398",
                "starting llama server",
                cmd=f"/usr/local/bin/ollama runner --model {blob} --ctx-size {opts.num_ctx}"
                f" --batch-size {opts.num_batch} --n-gpu-layers {gpu_layers}",
            )
        else:
            log.slog(
                "INFO",
                "llama_server.go:1187",
                "starting llama-server",
                cmd=f"/usr/local/lib/ollama/llama-server --model {blob} "
                f"--ctx-size {opts.num_ctx} --batch-size {opts.num_batch} "
                f"--n-gpu-layers {gpu_layers}",
            )
        log.slog("INFO", "llama_server.go:1280", f"waiting for {server} to start responding")
        load_time = f.cold_load * self.time_scale
        started = time.perf_counter()
        try:
            failure = self.load_failure(f, blob)
            if failure is not None:
                await asyncio.sleep(load_time / 2)
                raise failure
            log.raw(f"load_tensors: offloaded {gpu_layers}/{layers} layers to GPU")
            await asyncio.sleep(load_time)
        except asyncio.CancelledError:
            if self.loaded.get(spec.name) is runner:
                del self.loaded[spec.name]
            what = "server" if legacy else "llama-server"
            log.slog(
                "WARN",
                "llama_server.go:1300",
                f"client connection closed before {what} finished loading, aborting load",
            )
            log.slog(
                "ERROR", "sched.go:736", "error loading llama server", error="context canceled"
            )
            raise
        except HTTPError:
            if self.loaded.get(spec.name) is runner:
                del self.loaded[spec.name]
            raise
        runner.state = "ready"
        seconds = time.perf_counter() - started
        log.slog("INFO", "llama_server.go:1362", f"{server} started in {seconds:.2f} seconds")
        return runner

    def load_failure(self, f: Faults, blob: str) -> HTTPError | None:
        log = self.log
        message: str | None = None
        if f.oom == "old":
            message = "model requires more system memory (4.6 GiB) than is available (1.9 GiB)"
            log.slog(
                "WARN",
                "server.go:157",
                "model request too large for system",
                requested="4.6 GiB",
                available="1.9 GiB",
                total="7.7 GiB",
                free="1.9 GiB",
                swap="0 B",
            )
        elif f.oom == "new":
            log.raw(
                "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4608.00 MiB on "
                "device 0: cudaMalloc failed: out of memory"
            )
            message = (
                "llama-server reported out-of-memory during startup: cudaMalloc failed: "
                "out of memory"
            )
        elif f.oom == "killed":
            message = "llama-server process has terminated: signal: killed"
        elif f.runner_crash == "old":
            message = "llama runner process has terminated: exit status 2"
        elif f.runner_crash == "new":
            message = "llama-server process has terminated: exit status 2"
        if message is None:
            return None
        log.slog("ERROR", "sched.go:484", "error loading llama server", error=message)
        log.slog("INFO", "sched.go:470", "Load failed", model=blob, error=message)
        return HTTPError(500, message)

    def release(self, runner: LoadedModel) -> None:
        runner.refs = max(0, runner.refs - 1)
        if runner.refs == 0:
            if runner.keep_alive == 0:
                if self.loaded.get(runner.name) is runner:
                    del self.loaded[runner.name]
            else:
                runner.expires_at = time.time() + runner.keep_alive

    def unload(self, spec: ModelSpec) -> None:
        self.loaded.pop(spec.name, None)

    # ---- handlers ---------------------------------------------------------------------------
