"""Runs probes: order, prerequisites, concurrency, deadline, crash capture, timing.

A probe starts as soon as every probe it ``needs`` or runs ``after`` has finished, so
independent probes (the proxy comparison, local host checks, the reachability probe) overlap.
A probe whose prerequisite did not pass is recorded as ``skip`` with ``blocked_by`` and never
runs. A probe that raises becomes status ``error`` with the exception's type and message (and
the traceback with ``--debug``); the run goes on. Results come back in registry order.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from ollama_doctor.context import Context
from ollama_doctor.registry import REGISTRY, ProbeSpec
from ollama_doctor.result import Outcome, ProbeError, ProbeResult, Status

MAX_WORKERS = 4

Hook = Callable[[str, ProbeResult | None], None]


def run_probes(
    ctx: Context,
    probe_ids: Iterable[str],
    *,
    prerequisites: Iterable[str] = (),
    on_event: Hook | None = None,
    registry: tuple[ProbeSpec, ...] = REGISTRY,
) -> list[ProbeResult]:
    """Run ``probe_ids`` (plus ``prerequisites``, marked as such) and return their results."""
    wanted = set(probe_ids)
    prereq = set(prerequisites) - wanted
    selected = [spec for spec in registry if spec.id in wanted | prereq]
    pending = {spec.id: spec for spec in selected}
    done: dict[str, ProbeResult] = ctx.results
    running: dict[Future[ProbeResult], str] = {}

    in_run = set(pending) | set(done)

    def deps(spec: ProbeSpec) -> list[str]:
        return [d for d in (*spec.needs, *spec.after) if d in in_run]

    with ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="od-probe") as pool:
        while pending or running:
            progress = True
            while progress:  # a skip can unblock a probe earlier in the order: pass again
                progress = False
                for spec in [s for s in selected if s.id in pending]:
                    if any(d not in done for d in deps(spec)):
                        continue
                    del pending[spec.id]
                    progress = True
                    blocker = next((d for d in spec.needs if d in done and not done[d].ok),
                                   None)
                    if blocker is not None:
                        result = ProbeResult(
                            spec.id, spec.title, Status.SKIP,
                            f"skipped: {blocker} did not pass", blocked_by=blocker)
                        result.prerequisite = spec.id in prereq
                        done[spec.id] = result
                        if on_event:
                            on_event("done", result)
                        continue
                    if on_event:
                        on_event(spec.id, None)
                    running[pool.submit(_run_one, spec, ctx)] = spec.id
            if not running:
                if pending:  # a cycle or a missing dependency: a registry bug, reported as data
                    for probe_id in list(pending):
                        spec = pending.pop(probe_id)
                        done[probe_id] = ProbeResult(
                            probe_id, spec.title, Status.ERROR, "unresolvable prerequisites",
                            error=ProbeError("RegistryError", "unresolvable prerequisites"))
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                probe_id = running.pop(future)
                result = future.result()
                result.prerequisite = probe_id in prereq
                done[probe_id] = result
                if on_event:
                    on_event("done", result)
    return [done[spec.id] for spec in selected]


def _run_one(spec: ProbeSpec, ctx: Context) -> ProbeResult:
    started = time.perf_counter()
    try:
        outcome: Outcome = spec.load()(ctx)
        result = ProbeResult(spec.id, spec.title, outcome.status, outcome.summary,
                             facts=outcome.facts, findings=outcome.findings,
                             blocked_by=outcome.blocked_by)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result = ProbeResult(
            spec.id, spec.title, Status.ERROR, f"probe crashed: {type(exc).__name__}: {message}",
            error=ProbeError(type(exc).__name__, message,
                             traceback.format_exc() if ctx.options.debug else None))
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result
