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

Slots: at most ``MAX_WORKERS`` network probes run at once; when more are ready, the one that
more probes wait for (directly or not) starts first, so the critical path reachability →
models/auth → warmup never queues behind a probe nothing waits for. Local probes
(``ProbeSpec.local``: container, server, ulimit, resources) never take one of those slots, and
their ``prepare`` steps — the expensive local work, which reads no other probe — run in threads
of their own (``Context.claim``/``once``); the probe itself, started when its network facts are
in, only judges. Local work starts once the lead network probe (the one most probes wait for:
reachability) is done, or ``LOCAL_GRACE`` seconds into the run: Python threads share one
interpreter lock, and a process scan beside reachability's imports and TLS set-up at the start
of the run made reachability 100–200 ms slower, while after it the network probes mostly wait on
sockets and the local work fills those waits.

Timeline: every result carries when it started and finished, in ms from the run's start, and
how long it waited for a free slot once its prerequisites were done (``started_ms``,
``finished_ms``, ``waited_ms``; its prepare step's span in ``prepare_ms``, ``prepare`` in the
JSON). ``-v`` prints them.

Progress: ``on_event(text, None)`` whenever the status line changes — what runs now, with its
elapsed time and, for a model load or the load ramp, its limit (``status_line``) — and
``on_event("done", result)`` when a probe's result is recorded.
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

MAX_WORKERS = 4  # network probes at once; local probes and prepare steps are not counted
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
SHOWN_AFTER = 1.0  # seconds a probe runs before the status line shows its elapsed time
LOCAL_GRACE = 1.0  # seconds local work waits at most for the lead network probe


def run_budget(options: Options) -> float:
    """Seconds a run may take, probes included, before unfinished probes are cut."""
    return 1.3 * options.timeout + RUN_SLACK


def partial_key(probe_id: str) -> str:
    """Where a probe may leave a partial ``Outcome`` (``ctx.memo``), kept if it is cut."""
    return f"partial:{probe_id}"


def prepare_key(probe_id: str) -> str:
    """Where a probe's prepare step keeps its work (``Context.once``)."""
    return f"prepared:{probe_id}"


@dataclass
class _Running:
    spec: ProbeSpec
    started: float
    limit: float  # monotonic time past which the probe is cut, before excused time
    thread: threading.Thread | None = None
    ident: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    loading_since: float | None = None  # in a model load's header wait since (monotonic)
    ended: float | None = None  # when its thread had its result (monotonic)


# --------------------------------------------------------------------------------------------
# The status line


@dataclass(frozen=True)
class Activity:
    """One thing running now, as the status line tells it."""

    probe: str
    elapsed: float  # seconds it has been at it (a model load: since the load began)
    what: str = ""  # "loading llama3.2", "ramp"; empty for a plain probe
    limit: float | None = None  # the most it may take, in seconds
    limit_option: str = ""  # the option that sets the limit


def status_line(activities: list[Activity], *, shown_after: float = SHOWN_AFTER) -> str:
    """The live status line: what runs now. A model load or the load ramp with its elapsed
    time and limit first ("warmup: loading llama3.2 — 12 s of up to 300 s (--load-timeout)"),
    then probes running over ``shown_after`` seconds, longest first ("models — 2 s"), then the
    others by name. Pure: the runner passes what it sees, a test passes what it likes."""
    def told(a: Activity) -> str:
        head = f"{a.probe}: {a.what}" if a.what else a.probe
        if a.limit is not None:
            option = f" ({a.limit_option})" if a.limit_option else ""
            return f"{head} — {int(a.elapsed)} s of up to {a.limit:g} s{option}"
        if a.elapsed >= shown_after:
            return f"{head} — {int(a.elapsed)} s"
        return head

    order = sorted(activities, key=lambda a: (a.limit is None, a.elapsed < shown_after,
                                              -a.elapsed if a.elapsed >= shown_after else 0.0,
                                              a.probe))
    return " · ".join(told(a) for a in order)


def _activity(item: _Running, options: Options, now: float) -> Activity:
    probe = item.spec.id
    if item.loading_since is not None:
        model = f"loading {options.model}" if options.model else "waiting for a model load"
        return Activity(probe, now - item.loading_since, model, options.load_timeout,
                        "--load-timeout")
    if probe == "load":
        return Activity(probe, now - item.started, "ramp", options.load_max_seconds,
                        "--load-max-seconds")
    return Activity(probe, now - item.started)


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
    start = time.monotonic()
    run = _Schedule(ctx, selected, prereq, on_event, budget, start + budget, start)
    while run.pending or run.running:
        run.start_ready()
        run.tell_status()
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
    start: float  # monotonic time at which the run started: the timeline's zero
    pending: dict[str, ProbeSpec] = field(init=False)
    in_run: set[str] = field(init=False)  # ids this run knows: selected or already done
    running: dict[str, _Running] = field(default_factory=dict)
    finished: queue.SimpleQueue[tuple[str, ProbeResult]] = field(
        default_factory=queue.SimpleQueue)
    ready_at: dict[str, float] = field(default_factory=dict)  # ready, waiting for a slot
    waited: dict[str, float] = field(default_factory=dict)  # seconds each waited for a slot
    prepared: dict[str, list[float]] = field(default_factory=dict)  # id → [start, end]
    shown: str = ""  # the status line last told
    prepares_started: bool = False

    def __post_init__(self) -> None:
        self.pending = {spec.id: spec for spec in self.selected}
        self.in_run = set(self.pending) | set(self.done)
        self.order, waiting = _by_urgency(self.selected)
        # The network probe local work follows: the root most probes wait for (reachability)
        self.lead = next((s.id for s in self.order if not s.local and waiting[s.id]
                          and not self.deps(s)), None)

    @property
    def done(self) -> dict[str, ProbeResult]:
        return self.ctx.results

    def deps(self, spec: ProbeSpec) -> list[str]:
        return [d for d in (*spec.needs, *spec.after) if d in self.in_run]

    def ms(self, moment: float) -> float:
        return (moment - self.start) * 1000

    def record(self, probe_id: str, result: ProbeResult) -> None:
        result.prerequisite = probe_id in self.prereq
        span = self.prepared.get(probe_id)
        if span is not None and len(span) == 2:
            result.prepare_ms = (self.ms(span[0]), self.ms(span[1]))
        self.done[probe_id] = result
        if self.on_event:
            self.on_event("done", result)

    def local_open(self) -> bool:
        """Whether local work may start: once the lead network probe is done, or
        ``LOCAL_GRACE`` seconds into the run, whichever comes first. One interpreter lock: at
        the start of a run the lead is busy importing the HTTP stack and building its TLS
        context, and a process scan or cgroup reads beside it only slow it down (measured:
        +100–200 ms on reachability); after it, the network probes mostly wait on sockets."""
        return (self.lead is None or self.lead in self.done
                or time.monotonic() >= self.start + LOCAL_GRACE)

    def start_prepares(self) -> None:
        """Start every selected probe's prepare step, each in a thread of its own: local work
        that reads no other probe, so it runs while the network facts it is judged with are
        still coming in."""
        if self.prepares_started or not self.local_open():
            return
        self.prepares_started = True
        for spec in self.selected:
            if spec.prepare and spec.id in self.pending:
                self.ctx.memo.pop(prepare_key(spec.id), None)  # none from an earlier run
                fulfil = self.ctx.claim(prepare_key(spec.id))
                if fulfil is not None:
                    self.prepared[spec.id] = []
                    _prepare(spec, self.ctx, fulfil, self.prepared[spec.id])

    def start_ready(self) -> None:
        """Start, skip or record as not run every probe whose prerequisites are done: the
        network probes first (a thread's start waits for the interpreter lock), then the
        prepare steps, then the local probes, which find their prepared work claimed."""
        self._start_ready(local=False)
        self.start_prepares()
        self._start_ready(local=True)

    def _start_ready(self, *, local: bool) -> None:
        progress = True
        while progress:  # a skip can unblock a probe earlier in the order: pass again
            progress = False
            for spec in [s for s in self.order if s.id in self.pending and s.local == local]:
                if any(d not in self.done for d in self.deps(spec)):
                    continue
                if spec.local and not self.local_open():
                    continue  # local work follows the lead network probe
                blocker = next((d for d in spec.needs
                                if d in self.done and not self.done[d].ok), None)
                now = time.monotonic()
                late = now >= self.stop_at
                if blocker is None and not late and not spec.local and self.busy() >= MAX_WORKERS:
                    self.ready_at.setdefault(spec.id, now)
                    continue  # ready, waiting for a free slot
                del self.pending[spec.id]
                progress = True
                self.waited[spec.id] = now - self.ready_at.pop(spec.id, now)
                self._begin(spec, blocker, late)

    def busy(self) -> int:
        """Network probes running: the slots taken."""
        return sum(1 for item in self.running.values() if not item.spec.local)

    def tell_status(self) -> None:
        """Tell ``on_event`` the status line when it has changed."""
        if not self.on_event or not self.running:
            return
        now = time.monotonic()
        for item in self.running.values():  # a model load's header wait: excused time
            if net.excused(item.ident) == float("inf"):
                if item.loading_since is None:
                    item.loading_since = now
            else:
                item.loading_since = None
        line = status_line([_activity(item, self.ctx.options, now)
                            for item in self.running.values()])
        if line != self.shown:
            self.shown = line
            self.on_event(line, None)

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
                item = self.running.pop(probe_id)
                self._timed(result, item, item.ended or time.monotonic())
                self.record(probe_id, result)
            return
        now = time.monotonic()
        for probe_id, item in list(self.running.items()):
            if now >= _cut_time(item):
                del self.running[probe_id]  # its thread is abandoned, never joined
                result = _timed_out(item, self.ctx, now)
                self._timed(result, item, now)
                self.record(probe_id, result)

    def _timed(self, result: ProbeResult, item: _Running, ended: float) -> None:
        result.started_ms = self.ms(item.started)
        result.finished_ms = max(self.ms(ended), result.started_ms)
        result.waited_ms = self.waited.get(item.spec.id, 0.0) * 1000


def _by_urgency(specs: list[ProbeSpec]) -> tuple[list[ProbeSpec], dict[str, set[str]]]:
    """``specs`` with those more probes wait for (through ``needs`` or ``after``, directly
    or not) first, registry order among equals — when slots are short, the critical path
    starts first — and, for each, the probes that wait for it."""
    waiting: dict[str, set[str]] = {spec.id: set() for spec in specs}
    for spec in specs:
        for dep in (*spec.needs, *spec.after):
            if dep in waiting:
                waiting[dep].add(spec.id)
    changed = True
    while changed:  # the transitive closure: a handful of probes, a few passes
        changed = False
        for probe_id, later in waiting.items():
            grown = later.union(*(waiting[w] for w in later))
            if grown != later:
                waiting[probe_id] = grown
                changed = True
    index = {spec.id: n for n, spec in enumerate(specs)}
    return sorted(specs, key=lambda s: (-len(waiting[s.id]), index[s.id])), waiting


def _prepare(spec: ProbeSpec, ctx: Context, fulfil: Callable[[Callable[[], object]], None],
             span: list[float]) -> None:
    """Run ``spec``'s prepare step in a daemon thread of its own; its result (or exception)
    waits in ``ctx.memo`` for the probe (``Context.once``), which reports any failure."""
    def timed() -> object:
        span.append(time.monotonic())
        try:
            return spec.load_prepare()(ctx)
        finally:
            span.append(time.monotonic())

    threading.Thread(target=fulfil, args=(timed,), name=f"od-prepare-{spec.id}",
                     daemon=True).start()


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
        result = _run_one(spec, ctx)
        item.ended = time.monotonic()
        out.put((spec.id, result))

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
