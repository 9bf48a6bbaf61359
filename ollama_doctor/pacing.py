"""Open-loop pacing for the load probe: send at scheduled times, not after the previous answer.

A closed loop (send, wait, send) measures the server's latency, not what it does at a given
request rate: a slow answer silently lowers the rate. Here request *i* of a step at rate *r* is
due at ``start + i / r`` whatever happened to the others; whenever the event loop wakes, every
request that is due goes out (in batches of ``MAX_BATCH``), so a late wake-up (timers have
millisecond granularity) sends a small burst and keeps the average on target. The achieved
rate is measured from the times the requests actually started, and
``benchmarks/bench_load.py`` checks it against the target.

``ramp`` walks a list of rates, one step after another without a pause — the last rate is held
for the rest of the budget, because a limiter with a burst allowance (a token bucket starts
full) only answers 429 once the sender has outrun it for a while — and stops at the first
limiting answer (after ``confirm_s`` more at the same rate, to measure the limit; a refusal
that does not recur in that time was a burst allowance the run's earlier calls had used up,
and the ramp goes on: ``RampResult.lone_refusals``), at a step
the caller's ``on_step_end`` rejects (a latency knee, errors), or at a hard bound: the last
rate, ``max_requests``, ``max_seconds``, ``max_in_flight``. Everything else here is pure
arithmetic on the samples.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """What one request got: an HTTP status, or a network error kind."""

    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    message: str | None = None  # the error text of a non-2xx answer (bounded)


@dataclass
class Sample:
    step: int
    due: float  # seconds from the start of the ramp
    started: float = math.nan
    finished: float = math.nan
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None
    message: str | None = None

    @property
    def done(self) -> bool:
        return not math.isnan(self.finished)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def latency(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True)
class Plan:
    rates: tuple[float, ...]
    durations: tuple[float, ...]  # seconds per rate
    max_requests: int
    max_seconds: float
    confirm_s: float = 1.0
    max_in_flight: int = 256
    drain_s: float = 2.0


@dataclass
class RampResult:
    samples: list[Sample] = field(default_factory=list)
    stopped: str = ""  # limit, max-rate, max-requests, max-seconds, in-flight, or on_step_end's
    steps_run: int = 0
    elapsed_s: float = 0.0
    first_limit_at: float | None = None  # start time of the first limited request
    cancelled: int = 0  # requests still unanswered after the drain
    # limited answers that did not recur within confirm_s at the same rate: a burst
    # allowance the run's earlier calls had used up, not a limit at that rate (start times)
    lone_refusals: list[float] = field(default_factory=list)


# Requests launched per wake-up. A late wake-up (a busy machine) owes many requests at once;
# launching them all together would open as many connections at once, and a bigger pool costs
# the client more per request, so it falls further behind. Small batches with a yield between
# them keep the pool small and catch up just as fast when the machine can.
MAX_BATCH = 8

Send = Callable[[], Awaitable[Answer]]
StepCheck = Callable[[int, list[Sample]], "str | None"]


async def ramp(send: Send, plan: Plan, *, limited: Callable[[Sample], bool],
               on_step_end: StepCheck | None = None,
               clock: Callable[[], float] = time.perf_counter) -> RampResult:
    """Run ``plan`` against ``send``; see the module docstring."""
    return await _Ramp(send, plan, limited, on_step_end, clock).run()


class _Ramp:
    """One ramp's state: the step, its rate and end, the next due time, what is in flight."""

    def __init__(self, send: Send, plan: Plan, limited: Callable[[Sample], bool],
                 on_step_end: StepCheck | None, clock: Callable[[], float]) -> None:
        self.send, self.plan, self.limited = send, plan, limited
        self.on_step_end, self.clock = on_step_end, clock
        self.result = RampResult()
        self.pending: set[asyncio.Task[None]] = set()
        self.t0 = clock()
        self.step = 0
        self.rate = plan.rates[0]
        self.step_end = plan.durations[0]
        self.next_due = 0.0
        self.sent = 0

    def now(self) -> float:
        return self.clock() - self.t0

    async def one(self, sample: Sample) -> None:
        sample.started = self.now()
        try:
            answer = await self.send()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in send must not stop the ramp: keep it as data
            answer = Answer(error=f"{type(exc).__name__}: {exc}"[:200])
        sample.finished = self.now()
        sample.status, sample.error = answer.status, answer.error
        sample.retry_after, sample.message = answer.retry_after, answer.message
        if (self.result.first_limit_at is None and self.limited(sample)
                and sample.started not in self.result.lone_refusals):
            self.result.first_limit_at = sample.started

    def stop_at(self) -> float:
        """When to stop for a limit: ``confirm_s`` after the first limited request."""
        first = self.result.first_limit_at
        return math.inf if first is None else first + self.plan.confirm_s

    def bound(self, now: float, stop_at: float) -> str:
        """A hard bound reached: the limit confirmed, the time or the request budget."""
        if now >= stop_at:
            if self.confirmed():
                return "limit"
            self.forget_lone_refusal(now)
        if now >= self.plan.max_seconds:
            return "max-seconds"
        if self.sent >= self.plan.max_requests:
            return "max-requests"
        return ""

    def confirmed(self) -> bool:
        """A limit is real when limited answers recur while its rate is held: one lone 429
        is what a token bucket the run's other calls had emptied answers once."""
        first = self.result.first_limit_at
        return sum(1 for s in self.result.samples
                   if s.done and s.started >= (first or 0.0) and self.limited(s)) > 1

    def forget_lone_refusal(self, now: float) -> None:
        assert self.result.first_limit_at is not None
        self.result.lone_refusals.append(self.result.first_limit_at)
        self.result.first_limit_at = None
        if self.step_end == math.inf:  # the step ended while confirming: judge it now
            self.step_end = now

    def next_step(self, now: float) -> str:
        """At a step's end: the caller's verdict, the last rate reached, or the next rate.
        While a limit is being confirmed the rate stays until ``stop_at``."""
        if now < self.step_end:
            return ""
        if self.result.first_limit_at is not None:
            self.step_end = math.inf
            return ""
        verdict = self.on_step_end(self.step, self.result.samples) if self.on_step_end else None
        if verdict:
            return verdict
        if self.step + 1 >= len(self.plan.rates):
            return "max-rate"
        self.step += 1
        self.rate = self.plan.rates[self.step]
        self.step_end += self.plan.durations[self.step]
        return ""

    def launch_due(self, now: float) -> str:
        """Start every request due by ``now``, at most ``MAX_BATCH``; "in-flight" at the cap."""
        batch = 0
        while self.next_due <= now and self.sent < self.plan.max_requests and batch < MAX_BATCH:
            if len(self.pending) >= self.plan.max_in_flight:
                return "in-flight"
            batch += 1
            sample = Sample(self.step, self.next_due)
            self.result.samples.append(sample)
            task = asyncio.create_task(self.one(sample))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.sent += 1
            self.next_due += 1.0 / self.rate
        return ""

    async def run(self) -> RampResult:
        stop = ""
        while not stop:
            now = self.now()
            stop_at = self.stop_at()
            stop = self.bound(now, stop_at) or self.next_step(now) or self.launch_due(now)
            if stop:
                break
            wake = min(self.next_due, self.step_end, stop_at, self.plan.max_seconds)
            # Behind schedule, this is a bare yield: the requests just launched start, answers
            # are read, and the rest of the backlog follows in the next batch.
            await asyncio.sleep(max(0.0, wake - self.now()))
        result = self.result
        result.stopped = stop
        result.steps_run = self.step + 1
        if self.pending:
            _, still = await asyncio.wait(set(self.pending), timeout=self.plan.drain_s)
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
            result.cancelled = len(still)
        result.elapsed_s = self.now()
        return result


# --------------------------------------------------------------------------------------------
# Planning (pure)


_LADDER = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5)


def ladder_rates(start: float, max_rate: float) -> tuple[float, ...]:
    """Round rates from ``start`` up to ``max_rate`` (1, 1.5, 2, 3, 5, 7.5 × 10ⁿ, then the
    maximum itself): about × 1.5 a step, and figures a user can read back."""
    start = float(min(start, max_rate))
    rates = [start]
    decade = 10.0 ** math.floor(math.log10(start))
    while True:
        for mult in _LADDER:
            value = round(mult * decade, 6)
            if value <= rates[-1] * 1.0001:
                continue
            if value >= max_rate * 0.9999:
                if rates[-1] < max_rate:
                    rates.append(float(max_rate))
                return tuple(rates)
            rates.append(value)
        decade *= 10


RAMP_SHARE = 0.4  # of the time and request budgets, for the steps below the top rate


def durations(rates: Sequence[float], max_requests: int, max_seconds: float, confirm_s: float,
              longest: float = 1.0, shortest: float = 0.2) -> tuple[float, ...]:
    """Seconds per rate: equal ramp steps within ``RAMP_SHARE`` of both budgets (clamped to
    ``shortest`` … ``longest``), then the top rate for what is left, keeping ``confirm_s`` (and
    its requests) in reserve to measure a limit found at the very end."""
    time_left = max(max_seconds - confirm_s, max_seconds * 0.5)
    count_left = max(max_requests - rates[-1] * confirm_s, max_requests * 0.5)
    below = rates[:-1]
    if not below:
        return (max(shortest, min(time_left, count_left / rates[-1])),)
    step = min(longest, RAMP_SHARE * time_left / len(below),
               RAMP_SHARE * count_left / max(sum(below), 1e-9))
    step = max(shortest, step)
    hold = min(time_left - step * len(below), (count_left - step * sum(below)) / rates[-1])
    return (*([round(step, 3)] * len(below)), round(max(step, hold), 3))


# --------------------------------------------------------------------------------------------
# Measuring (pure)


def achieved_rate(starts: Sequence[float]) -> float | None:
    """Requests per second from their start times: (n − 1) / (last − first)."""
    times = sorted(t for t in starts if not math.isnan(t))
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0…1) by linear interpolation, or ``None`` for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def step_stats(samples: Sequence[Sample], step: int, rate: float) -> dict[str, Any]:
    """Target vs achieved rate, answers by status and latency of one step."""
    mine = [s for s in samples if s.step == step]
    done = [s for s in mine if s.done]
    statuses: dict[str, int] = {}
    for s in done:
        key = str(s.status) if s.status is not None else (s.error or "error").split(":")[0]
        statuses[key] = statuses.get(key, 0) + 1
    ok_lat = [s.latency for s in done if s.ok]
    achieved = achieved_rate([s.started for s in mine])
    p50, p90 = percentile(ok_lat, 0.5), percentile(ok_lat, 0.9)
    lag = percentile([s.started - s.due for s in mine if not math.isnan(s.started)], 0.9)
    return {
        "target_rate": rate,
        "achieved_rate": None if achieved is None else round(achieved, 1),
        "sent": len(mine), "answered": len(done), "ok": sum(1 for s in done if s.ok),
        "statuses": statuses,
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p90_ms": None if p90 is None else round(p90 * 1000, 1),
        "lag_p90_ms": None if lag is None else round(lag * 1000, 1),
    }


SENDER_LAG_S = 0.025


def sender_behind(samples: Sequence[Sample], step: int) -> bool:
    """Whether this machine fell behind the schedule in ``step``: requests started more than
    ``SENDER_LAG_S`` late (p90). Then slow answers may be the sender's own queue, not the
    server's, and the rate the server saw is below the target."""
    lags = [s.started - s.due for s in samples if s.step == step and not math.isnan(s.started)]
    lag = percentile(lags, 0.9)
    return lag is not None and lag > SENDER_LAG_S


KNEE_ADDED_S = 0.25
KNEE_FACTOR = 4.0


def is_knee(p50_s: float | None, baseline_s: float | None) -> bool:
    """Median latency well above the best step so far: ``KNEE_ADDED_S`` and ``KNEE_FACTOR``×."""
    if p50_s is None or baseline_s is None:
        return False
    return p50_s >= baseline_s + max(KNEE_ADDED_S, KNEE_FACTOR * baseline_s)


def limit_rate(samples: Sequence[Sample], first: Sample) -> float | None:
    """A limiter's rate: accepted answers per second while the sender outruns it.

    A limiter is empty at each refusal, so between two refusals it accepted at most what it
    refilled, and exactly that while the sender kept outrunning it. A sender that falters (a
    busy machine stalls this process) lets the limiter fill up and waste its refill, and
    accepted ÷ time then falls below the rate. So the span is taken only where refusals come
    densely (``dense_spans``: runs whose gaps stay within ``GAP_FACTOR`` × their median gap),
    and the stalls between runs are left out. Time is when answers came back (≈ when the
    limiter decided), not when requests left, so a server that falls behind and catches up
    does not inflate the figure. With too few refusals, the span runs from the first refusal
    to the last refusal or answer instead.
    """
    start = first.finished
    if math.isnan(start):
        return None
    refused = sorted(s.finished for s in samples if s.done and s.status == first.status
                     and s.finished >= start)
    accepted = sorted(s.finished for s in samples if s.done and s.ok and s.finished > start)
    spans = dense_spans(refused)
    if sum(b - a for a, b in spans) >= MIN_SPAN_S:
        count = sum(1 for t in accepted for a, b in spans if a < t <= b)
        return count / sum(b - a for a, b in spans)
    later = [t for t in refused if t > start]
    end = max(later) if later and max(later) - start >= MIN_SPAN_S else max(
        (s.finished for s in samples if s.done), default=start)
    span = end - start
    if span <= 0:
        return None
    return sum(1 for t in accepted if t <= end) / span


MIN_SPAN_S = 0.25  # less time than this between refusals says nothing about a rate
GAP_FACTOR = 4.0  # a gap this many times the median gap between refusals is a stall


def dense_spans(refused: Sequence[float]) -> list[tuple[float, float]]:
    """(first, last) of each run of refusals whose gaps stay within ``GAP_FACTOR`` × the
    median gap: the stretches where the sender kept the limiter empty."""
    if len(refused) < 3:
        return []
    gaps = sorted(b - a for a, b in itertools.pairwise(refused))
    limit = GAP_FACTOR * gaps[len(gaps) // 2]
    spans: list[tuple[float, float]] = []
    run_start = refused[0]
    for prev, now in itertools.pairwise(refused):
        if now - prev > limit:
            if prev > run_start:
                spans.append((run_start, prev))
            run_start = now
    if refused[-1] > run_start:
        spans.append((run_start, refused[-1]))
    return spans
