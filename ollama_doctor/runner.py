"""Runs probes: order, prerequisites, concurrency, deadline, crash capture, timing.

A probe starts as soon as every probe it ``needs`` or runs ``after`` has finished, so
independent probes (the proxy comparison, local host checks, the reachability probe) overlap.
A probe whose prerequisite did not pass is recorded as ``skip`` with ``blocked_by`` and never
runs. A probe that raises becomes status ``error`` with the exception's type and message (and
the traceback with ``--debug``); the run goes on. Message and traceback are outside text (a
server's bytes, a credential in an exception's message), so they are stripped of control
characters and redacted where they are recorded. Results come back in registry order.

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
    budget = run_budget(ctx.options) if budget is None else budget
    if ctx.deadline is not None:  # operations end before the run's cut, with room to report
        ctx.deadline = min(ctx.deadline, ctx.clock() + budget * (1 - OP_MARGIN))
    run = _Schedule(ctx, selected, prereq, on_event, budget, time.monotonic() + budget)
    while run.pending or run.running:
        run.start_ready()
        if run.running:
            run.wait_for_one()
        else:
            run.give_up_on_pending()
    return [run.done[spec.id] for spec in selected]


@dataclass
class _Schedule:
    """The state of one ``run_probes``: what waits, what runs, what is done."""

    ctx: Context
    selected: list[ProbeSpec]
    prereq: set[str]
    on_event: Hook | None
    budget: float
    stop_at: float  # monotonic time at which the run's budget is spent
    pending: dict[str, ProbeSpec] = field(init=False)
    in_run: set[str] = field(init=False)  # ids this run knows: selected or already done
    running: dict[str, _Running] = field(default_factory=dict)
    finished: queue.SimpleQueue[tuple[str, ProbeResult]] = field(
        default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self.pending = {spec.id: spec for spec in self.selected}
        self.in_run = set(self.pending) | set(self.done)

    @property
    def done(self) -> dict[str, ProbeResult]:
        return self.ctx.results

    def deps(self, spec: ProbeSpec) -> list[str]:
        return [d for d in (*spec.needs, *spec.after) if d in self.in_run]

    def record(self, probe_id: str, result: ProbeResult) -> None:
        result.prerequisite = probe_id in self.prereq
        self.done[probe_id] = result
        if self.on_event:
            self.on_event("done", result)

    def start_ready(self) -> None:
        """Start, skip or record as not run every probe whose prerequisites are done."""
        progress = True
        while progress:  # a skip can unblock a probe earlier in the order: pass again
            progress = False
            for spec in [s for s in self.selected if s.id in self.pending]:
                if any(d not in self.done for d in self.deps(spec)):
                    continue
                blocker = next((d for d in spec.needs
                                if d in self.done and not self.done[d].ok), None)
                late = time.monotonic() >= self.stop_at
                if blocker is None and not late and len(self.running) >= MAX_WORKERS:
                    continue  # ready, waiting for a free slot
                del self.pending[spec.id]
                progress = True
                self._begin(spec, blocker, late)

    def _begin(self, spec: ProbeSpec, blocker: str | None, late: bool) -> None:
        if blocker is not None:
            self.record(spec.id, ProbeResult(
                spec.id, spec.title, Status.SKIP, f"skipped: {blocker} did not pass",
                blocked_by=blocker))
        elif late:
            self.record(spec.id, ProbeResult(
                spec.id, spec.title, Status.SKIP,
                f"not run: the run's {self.budget:g} s were spent"))
        else:
            if self.on_event:
                self.on_event(spec.id, None)
            self.running[spec.id] = _start(spec, self.ctx, self.finished, self.stop_at)

    def give_up_on_pending(self) -> None:
        """Nothing runs and nothing can start: a cycle or a missing dependency, a registry
        bug, reported as data."""
        for probe_id in list(self.pending):
            spec = self.pending.pop(probe_id)
            self.done[probe_id] = ProbeResult(
                probe_id, spec.title, Status.ERROR, "unresolvable prerequisites",
                error=ProbeError("RegistryError", "unresolvable prerequisites"))

    def wait_for_one(self) -> None:
        """Record the next probe to finish, or cut those past their time, whichever first."""
        now = time.monotonic()
        cut_at = min(_cut_time(r) for r in self.running.values())
        try:
            probe_id, result = self.finished.get(timeout=max(0.0, min(cut_at - now, POLL)))
        except queue.Empty:
            pass
        else:
            if probe_id in self.running:
                del self.running[probe_id]
                self.record(probe_id, result)
            return
        now = time.monotonic()
        for probe_id, item in list(self.running.items()):
            if now >= _cut_time(item):
                del self.running[probe_id]  # its thread is abandoned, never joined
                self.record(probe_id, _timed_out(item, self.ctx, now))


def _start(spec: ProbeSpec, ctx: Context, out: queue.SimpleQueue[tuple[str, ProbeResult]],
           stop_at: float) -> _Running:
    extra = EXTRA_BUDGET.get(spec.id)
    now = time.monotonic()
    item = _Running(spec, now, stop_at + (extra(ctx.options) if extra else 0.0))
    ctx.memo.pop(partial_key(spec.id), None)  # none left over from an earlier run of it

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
        result.evidence = partial.evidence
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
        message = _outside_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        trace = (_outside_text(traceback.format_exc(), keep_newlines=True)
                 if ctx.options.debug else None)
        result = ProbeResult(
            spec.id, spec.title, Status.ERROR, f"probe crashed: {type(exc).__name__}: {message}",
            error=ProbeError(type(exc).__name__, message, trace))
    result.duration_ms = (time.perf_counter() - started) * 1000
    return result


def _outside_text(text: str, *, keep_newlines: bool = False) -> str:
    """An exception's message or traceback, made safe once, where it is recorded: it can carry
    a server's bytes (escape sequences) and, in a traceback's frames or an exception's
    message, an ``Authorization`` value or an API key."""
    from ollama_doctor.redact import redact_text
    from ollama_doctor.sanitize import clean

    return redact_text(clean(text, keep_newlines=keep_newlines))
