"""Runs probes: order, prerequisites, concurrency, deadline, crash capture, timing.

A probe starts as soon as every probe it ``needs`` or runs ``after`` has finished, so
independent probes (the proxy comparison, local host checks, the reachability probe) overlap.
A probe whose prerequisite did not pass is recorded as ``skip`` with ``blocked_by`` and never
runs. A probe that raises becomes status ``error`` with the exception's type and message (and
the traceback with ``--debug``); the run goes on. Results come back in registry order.

Time: the run has a budget of ``1.3 × --timeout + RUN_SLACK`` seconds from the moment it
starts (``run_budget``); with process start and rendering a whole run ends within
``1.3 × --timeout + 1.5 s``. A probe still running at the end of its budget is recorded as
``error`` ("timed out after N s"), keeping any partial outcome it left under
``partial_key(id)`` in ``ctx.memo``, and its thread is abandoned: probes run in daemon threads
that nobody joins, so a hung socket can neither hold the report nor the process's exit. Two
documented exceptions extend a probe's budget: the time its thread spent waiting for the
response headers of a model load (``net.excused``; bounded by ``--load-timeout``), and the
opt-in load ramp's own limits (``EXTRA_BUDGET``). Probes not started when the run's time is
spent are recorded as ``skip``.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ollama_doctor import net
from ollama_doctor._exit import exit_process as exit_process
from ollama_doctor.context import Context, Options
from ollama_doctor.registry import REGISTRY, ProbeSpec
from ollama_doctor.result import Outcome, ProbeError, ProbeResult, Status

MAX_WORKERS = 4
RUN_SLACK = 0.5  # seconds of the run's budget beyond 1.3 × --timeout
# Network operations are timed to end this share of the budget before the runner's cut, so a
# probe whose last wait runs to its timeout still returns what it found instead of being cut.
OP_MARGIN = 0.15
POLL = 0.1  # how often a probe in an excused wait is looked at again

# Probes whose own documented limits go beyond the run's budget (they run only when asked).
EXTRA_BUDGET: dict[str, Callable[[Options], float]] = {
    "load": lambda o: o.load_max_seconds + o.timeout,
}

Hook = Callable[[str, ProbeResult | None], None]


def run_budget(options: Options) -> float:
    """Seconds a run may take, probes included, before unfinished probes are cut."""
    return 1.3 * options.timeout + RUN_SLACK


def partial_key(probe_id: str) -> str:
    """Where a probe may leave a partial ``Outcome`` (``ctx.memo``), kept if it is cut."""
    return f"partial:{probe_id}"


@dataclass
class _Running:
    spec: ProbeSpec
    started: float
    limit: float  # monotonic time past which the probe is cut, before excused time
    thread: threading.Thread | None = None
    ident: int = 0
    ready: threading.Event = field(default_factory=threading.Event)


def run_probes(
    ctx: Context,
    probe_ids: Iterable[str],
    *,
    prerequisites: Iterable[str] = (),
    on_event: Hook | None = None,
    registry: tuple[ProbeSpec, ...] = REGISTRY,
    budget: float | None = None,
) -> list[ProbeResult]:
    """Run ``probe_ids`` (plus ``prerequisites``, marked as such) and return their results,
    within ``budget`` seconds (default ``run_budget``) except for the documented waits."""
    wanted = set(probe_ids)
    prereq = set(prerequisites) - wanted
    selected = [spec for spec in registry if spec.id in wanted | prereq]
    pending = {spec.id: spec for spec in selected}
    done: dict[str, ProbeResult] = ctx.results
    running: dict[str, _Running] = {}
    finished: queue.SimpleQueue[tuple[str, ProbeResult]] = queue.SimpleQueue()

    budget = run_budget(ctx.options) if budget is None else budget
    stop_at = time.monotonic() + budget
    if ctx.deadline is not None:  # operations end before the run's cut, with room to report
        ctx.deadline = min(ctx.deadline, ctx.clock() + budget * (1 - OP_MARGIN))

    in_run = set(pending) | set(done)

    def deps(spec: ProbeSpec) -> list[str]:
        return [d for d in (*spec.needs, *spec.after) if d in in_run]

    def record(probe_id: str, result: ProbeResult) -> None:
        result.prerequisite = probe_id in prereq
        done[probe_id] = result
        if on_event:
            on_event("done", result)

    while pending or running:
        progress = True
        while progress:  # a skip can unblock a probe earlier in the order: pass again
            progress = False
            for spec in [s for s in selected if s.id in pending]:
                if any(d not in done for d in deps(spec)):
                    continue
                blocker = next((d for d in spec.needs if d in done and not done[d].ok), None)
                late = time.monotonic() >= stop_at
                if blocker is None and not late and len(running) >= MAX_WORKERS:
                    continue  # ready, waiting for a free slot
                del pending[spec.id]
                progress = True
                if blocker is not None:
                    record(spec.id, ProbeResult(
                        spec.id, spec.title, Status.SKIP, f"skipped: {blocker} did not pass",
                        blocked_by=blocker))
                elif late:
                    record(spec.id, ProbeResult(
                        spec.id, spec.title, Status.SKIP,
                        f"not run: the run's {budget:g} s were spent"))
                else:
                    if on_event:
                        on_event(spec.id, None)
                    running[spec.id] = _start(spec, ctx, finished, stop_at)
        if not running:
            if pending:  # a cycle or a missing dependency: a registry bug, reported as data
                for probe_id in list(pending):
                    spec = pending.pop(probe_id)
                    done[probe_id] = ProbeResult(
                        probe_id, spec.title, Status.ERROR, "unresolvable prerequisites",
                        error=ProbeError("RegistryError", "unresolvable prerequisites"))
            continue
        now = time.monotonic()
        cut_at = min(_cut_time(r) for r in running.values())
        try:
            probe_id, result = finished.get(timeout=max(0.0, min(cut_at - now, POLL)))
        except queue.Empty:
            pass
        else:
            if probe_id in running:
                del running[probe_id]
                record(probe_id, result)
            continue
        now = time.monotonic()
        for probe_id, item in list(running.items()):
            if now >= _cut_time(item):
                del running[probe_id]  # its thread is abandoned, never joined
                record(probe_id, _timed_out(item, ctx, now))
    return [done[spec.id] for spec in selected]


def _start(spec: ProbeSpec, ctx: Context, out: queue.SimpleQueue[tuple[str, ProbeResult]],
           stop_at: float) -> _Running:
    extra = EXTRA_BUDGET.get(spec.id)
    now = time.monotonic()
    item = _Running(spec, now, stop_at + (extra(ctx.options) if extra else 0.0))

    def work() -> None:
        item.ident = threading.get_ident()
        item.ready.set()
        net.set_policy(ctx.options.timeout)
        out.put((spec.id, _run_one(spec, ctx)))

    # A daemon thread nobody joins: a probe stuck in a read cannot hold the exit.
    item.thread = threading.Thread(target=work, name=f"od-probe-{spec.id}", daemon=True)
    item.thread.start()
    item.ready.wait()
    return item


def _cut_time(item: _Running) -> float:
    return item.limit + net.excused(item.ident)


def _timed_out(item: _Running, ctx: Context, now: float) -> ProbeResult:
    spec = item.spec
    elapsed = now - item.started
    message = f"timed out after {elapsed:.1f} s"
    partial = ctx.memo.get(partial_key(spec.id))
    result = ProbeResult(spec.id, spec.title, Status.ERROR, message,
                         error=ProbeError("Timeout", message))
    if isinstance(partial, Outcome):  # what the probe had established before the cut
        result.facts = dict(partial.facts)
        result.findings = list(partial.findings)
        result.summary = f"{message}; {partial.summary}"
    result.duration_ms = elapsed * 1000
    return result


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
