"""The load probe and its pacing engine: arithmetic by table, the open-loop sender against an
in-memory server, then the real CLI against the emulator's rate limit and load queue."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from ollama_doctor import pacing
from ollama_doctor.pacing import Answer, Plan, Sample
from ollama_doctor.probes import load

# ---------------------------------------------------------------------------------------------
# planning


@pytest.mark.parametrize(("start", "top", "rates"), [
    (10, 200, (10, 15, 20, 30, 50, 75, 100, 150, 200)),
    (10, 500, (10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500)),
    (10, 160, (10, 15, 20, 30, 50, 75, 100, 150, 160)),
    (2, 20, (2, 3, 5, 7.5, 10, 15, 20)),
    (10, 7, (7,)),
    (10, 10, (10,)),
    (0.5, 3, (0.5, 0.75, 1, 1.5, 2, 3)),
])
def test_ladder_rates(start: float, top: float, rates: tuple[float, ...]) -> None:
    assert pacing.ladder_rates(start, top) == rates


@pytest.mark.parametrize(("top", "max_requests", "max_seconds"), [
    (200.0, 1000, 5.0), (500.0, 2000, 20.0), (500.0, 100, 20.0), (20.0, 2000, 5.0),
    (50.0, 2000, 3.0), (1000.0, 500, 2.0),
])
def test_durations_fit_both_budgets(top: float, max_requests: int, max_seconds: float) -> None:
    rates = pacing.ladder_rates(10.0, top)
    steps = pacing.durations(rates, max_requests, max_seconds, load.CONFIRM_S)
    assert len(steps) == len(rates)
    assert all(d >= 0.2 for d in steps)
    assert len(set(steps[:-1])) <= 1  # equal ramp steps, then the hold at the top rate
    # within budget unless the 0.2 s floor forces more (then the hard bounds cut the ramp)
    if steps[0] > 0.2:
        assert sum(steps) + load.CONFIRM_S <= max_seconds + 1e-6
        sent = sum(r * d for r, d in zip(rates, steps, strict=True))
        assert sent + top * load.CONFIRM_S <= max_requests * 1.01


def test_durations_hold_the_top_rate_longest() -> None:
    steps = pacing.durations(pacing.ladder_rates(10, 200), 1000, 5.0, 1.5)
    assert steps[:-1] == (0.2,) * 8 and steps[-1] == pytest.approx(1.9)


# ---------------------------------------------------------------------------------------------
# measuring


def test_achieved_rate_and_percentile() -> None:
    assert pacing.achieved_rate([0.0, 0.01, 0.02, 0.03]) == pytest.approx(100.0)
    assert pacing.achieved_rate([0.5, math.nan, 0.0]) == pytest.approx(2.0)
    assert pacing.achieved_rate([1.0]) is None and pacing.achieved_rate([1.0, 1.0]) is None
    assert pacing.percentile([], 0.5) is None
    assert pacing.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert pacing.percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


@pytest.mark.parametrize(("p50", "best", "knee"), [
    (0.002, 0.001, False), (0.2, 0.001, False), (0.26, 0.001, True),
    (1.9, 0.5, False), (2.5, 0.5, True), (None, 0.001, False), (1.0, None, False),
])
def test_is_knee(p50: float | None, best: float | None, knee: bool) -> None:
    assert pacing.is_knee(p50, best) is knee


def _sample(started: float, finished: float, status: int | None, step: int = 0) -> Sample:
    return Sample(step, started, started, finished, status)


def test_limit_rate_counts_accepted_answers_after_the_first_refusal() -> None:
    # a sender at 200/s against a limiter at 150/s: from t = 1 s, 3 of every 4 accepted
    samples = [_sample(i / 200, i / 200 + 0.001, 200) for i in range(200)]
    samples += [_sample(1 + i / 200, 1 + i / 200 + 0.001, 429 if i % 4 == 0 else 200)
                for i in range(400)]
    first = next(s for s in samples if s.status == 429)
    assert pacing.limit_rate(samples, first) == pytest.approx(150.0, rel=0.01)
    assert pacing.limit_rate([first], first) is None


def _bucket_statuses(times: list[float], rate: float, burst: float) -> list[int]:
    """What a token bucket (the emulator's and most gateways') answers at ``times``."""
    tokens, stamp, out = burst, 0.0, []
    for t in times:
        tokens = min(burst, tokens + (t - stamp) * rate)
        stamp = t
        out.append(200 if tokens >= 1 else 429)
        tokens -= 1 if tokens >= 1 else 0
    return out


@pytest.mark.parametrize("stall", [0.0, 0.6, 1.5])
def test_limit_rate_leaves_out_the_senders_stalls(stall: float) -> None:
    """A busy machine stalls the sender; the limiter fills up meanwhile and wastes its refill.
    Counting that time gave 10/s for a 20/s gateway in CI; only the dense runs of refusals
    count now."""
    times = [i / 30 for i in range(60)] + [2 + stall + i / 30 for i in range(60)]
    samples = [_sample(t, t + 0.002, status)
               for t, status in zip(times, _bucket_statuses(times, 20.0, 2.0), strict=True)]
    first = next(s for s in samples if s.status == 429)
    assert pacing.limit_rate(samples, first) == pytest.approx(20.0, rel=0.1)


def test_dense_spans_split_at_stalls() -> None:
    assert pacing.dense_spans([0.0, 0.1, 0.2, 0.3, 2.0, 2.1, 2.2]) == [(0.0, 0.3), (2.0, 2.2)]
    assert pacing.dense_spans([0.0, 1.0]) == []


def test_step_stats() -> None:
    samples = [_sample(0.0, 0.010, 200), _sample(0.1, 0.120, 200), _sample(0.2, 0.201, 429),
               Sample(0, 0.3, 0.3, math.nan, None), Sample(1, 0.4, 0.4, 0.5, 200)]
    samples[2].status = 429
    stats = pacing.step_stats(samples, 0, 10.0)
    assert stats == {"target_rate": 10.0, "achieved_rate": 10.0, "sent": 4, "answered": 3,
                     "ok": 2, "statuses": {"200": 2, "429": 1}, "p50_ms": 15.0, "p90_ms": 19.0,
                     "lag_p90_ms": 0.0}


def test_sender_behind() -> None:
    on_time = [Sample(0, i / 100, i / 100 + 0.001) for i in range(50)]
    late = [Sample(0, i / 100, i / 100 + 0.002 * i) for i in range(50)]  # 0 … 98 ms late
    assert not pacing.sender_behind(on_time, 0)
    assert pacing.sender_behind(late, 0)
    assert not pacing.sender_behind(late, 1)  # no samples in that step


def test_token_bucket_and_concurrency() -> None:
    assert load.token_bucket(150.0) == {"rate_per_s": 135, "burst": 13}
    assert load.token_bucket(0.5) == {"rate_per_s": 1, "burst": 1}
    samples = [_sample(0.0, 5.0, 200), _sample(0.5, 0.6, 200), _sample(1.0, 1.1, 503),
               Sample(0, 0.9, 0.9, math.nan, None)]
    assert load.in_flight_at(samples, 1.0) == 3  # the first, the unanswered one, itself


# ---------------------------------------------------------------------------------------------
# the open-loop sender, against an in-memory server (no sockets: the schedule is under test)


def _ramp(plan: Plan, latency: float = 0.0, limit: float | None = None,
          tokens: float = 1.0) -> pacing.RampResult:
    state = {"tokens": tokens, "stamp": time.perf_counter()}

    async def send() -> Answer:
        if limit is not None:
            now = time.perf_counter()
            state["tokens"] = min(limit / 10, state["tokens"] + (now - state["stamp"]) * limit)
            state["stamp"] = now
            if state["tokens"] < 1:
                return Answer(status=429, retry_after="1")
            state["tokens"] -= 1
        await asyncio.sleep(latency)
        return Answer(status=200)

    return asyncio.run(pacing.ramp(send, plan, limited=load.limited))


def test_open_loop_keeps_the_rate_when_answers_are_slow() -> None:
    # each answer takes 50 ms: a closed loop would manage 20/s; the schedule sends 100/s
    plan = Plan(rates=(100.0,), durations=(0.5,), max_requests=1000, max_seconds=2.0)
    result = _ramp(plan, latency=0.05)
    assert result.stopped == "max-rate"
    assert 48 <= len(result.samples) <= 52
    assert pacing.achieved_rate([s.started for s in result.samples]) == pytest.approx(100, 0.05)
    assert all(s.done and s.ok for s in result.samples)


@pytest.mark.parametrize(("plan", "stopped", "sent"), [
    (Plan(rates=(200.0,), durations=(5.0,), max_requests=30, max_seconds=5.0), "max-requests",
     30),
    (Plan(rates=(100.0,), durations=(5.0,), max_requests=1000, max_seconds=0.3), "max-seconds",
     30),
    (Plan(rates=(200.0,), durations=(5.0,), max_requests=1000, max_seconds=5.0,
          max_in_flight=10), "in-flight", 10),
])
def test_hard_bounds(plan: Plan, stopped: str, sent: int) -> None:
    started = time.perf_counter()
    result = _ramp(plan, latency=1.0 if plan.max_in_flight == 10 else 0.0)
    assert result.stopped == stopped
    assert abs(len(result.samples) - sent) <= 1
    assert time.perf_counter() - started < plan.max_seconds + plan.drain_s + 0.5


def test_a_lone_refusal_is_a_used_up_burst_not_a_limit() -> None:
    """The run's earlier calls emptied the bucket: the first request gets a 429 that never
    recurs at that rate. The ramp goes on and finds the real limit (CI saw 'limit at 10/s,
    about 10 requests/s' for a 20/s gateway)."""
    plan = Plan(rates=(5.0, 10.0, 80.0), durations=(0.5, 0.5, 3.0), max_requests=1000,
                max_seconds=6.0, confirm_s=0.5)
    result = _ramp(plan, limit=50.0, tokens=0.0)
    assert result.stopped == "limit"
    assert len(result.lone_refusals) == 1 and result.lone_refusals[0] < 0.1
    assert result.first_limit_at is not None and result.first_limit_at > 1.0
    first = min((s for s in result.samples if s.status == 429 and s.started > 0.5),
                key=lambda s: s.started)
    assert first.step == 2
    assert pacing.limit_rate(result.samples, first) == pytest.approx(50.0, rel=0.15)


def test_ramp_confirms_a_limit_then_stops() -> None:
    plan = Plan(rates=(20.0, 40.0, 80.0), durations=(0.25, 0.25, 3.0), max_requests=1000,
                max_seconds=6.0, confirm_s=0.5)
    result = _ramp(plan, limit=50.0)
    assert result.stopped == "limit"
    assert result.first_limit_at is not None
    first = min((s for s in result.samples if s.status == 429), key=lambda s: s.started)
    assert first.step == 2  # not at 20/s or 40/s
    last = max(s.started for s in result.samples)
    assert last == pytest.approx(result.first_limit_at + 0.5, abs=0.05)
    assert pacing.limit_rate(result.samples, first) == pytest.approx(50.0, rel=0.15)


# ---------------------------------------------------------------------------------------------
# end to end: the real CLI against the emulator


def _top(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["diagnosis"], doc["checks"]
    top: dict[str, Any] = doc["diagnosis"][0]
    return top


def _load_check(doc: dict[str, Any]) -> dict[str, Any]:
    (check,) = [c for c in doc["checks"] if c["id"] == "load"]
    return dict(check)


def test_s20_gateway_rate_limit_found_near_150_per_second(emulator: Any, cli: Any) -> None:
    """The guide's case (a gateway allowing 150/s, driven at 200/s), scaled to rates any
    machine reaches: a gateway allowing 20/s, driven up to 30/s. A busy machine that still
    falls behind gets the probe's own "this machine could not keep up" answer, never a
    wrong limit."""
    emu = emulator(rate_limit="20")
    run = cli("probe", "load", "--host", emu.url, "--load-max-rate", "30",
              "--load-max-requests", "400", "--load-max-seconds", "8", "--json")
    doc = run.json()
    check = _load_check(doc)
    facts = check["facts"]
    assert facts["requests"] <= 400
    assert len(emu.requests) <= 400 + 10  # the probe's own, plus reachability's few
    if facts["stopped"] == "sender":  # the machine fell behind before the limit: said so
        assert run.code == 0, run.stderr
        assert check["status"] == "warn"
        assert "this machine could not keep up" in check["summary"]
        return
    assert run.code == 1, run.stderr
    top = _top(doc)
    assert (top["cause"], top["code"], top["severity"]) == ("rate-limited", 429, "error")
    limit = facts["limit"]
    assert limit["status"] == 429 and limit["retry_after"] == ["1"]
    assert limit["estimated_rate"] == pytest.approx(20, rel=0.15)
    assert limit["at_rate"] > 20
    bucket = facts["recommendation"]["token_bucket"]
    assert bucket["rate_per_s"] <= limit["estimated_rate"]
    assert facts["recommendation"]["backoff_s"] == [1, 2, 4, 8, 16, 30]
    assert f"token bucket of {bucket['rate_per_s']}" in top["explanation"]
    # the steps below the limit were clean, but for a lone 429 when reachability's calls had
    # used up the bucket's burst just before (said in the facts, never taken for the limit)
    below = [s for s in facts["steps"] if s["target_rate"] < 20]
    refused = sum(s["statuses"].get("429", 0) for s in below)
    assert below and refused == facts.get("lone_refusals", 0) <= 1


def test_s19_queue_full_with_generate_calls(emulator: Any, cli: Any) -> None:
    # Two calls may wait for a load (OLLAMA_MAX_QUEUE=2); the model takes 2 s to load.
    emu = emulator(queue="2", cold_load="2")
    run = cli("check", "--load", "--load-call", "generate", "--host", emu.url, "-m", "llama3.2",
              "--load-max-rate", "20", "--load-max-seconds", "4", "--json")
    assert run.code == 1, run.stderr
    doc = run.json()
    top = _top(doc)
    assert (top["cause"], top["code"], top["severity"]) == ("server-busy", 503, "error")
    assert "Ollama's queue of calls waiting for a model load is full" in top["explanation"]
    limit = _load_check(doc)["facts"]["limit"]
    assert limit["message"] == ("server busy, please try again.  maximum pending requests "
                                "exceeded")
    assert limit["in_flight"] >= 3
    assert not [r for r in emu.requests if r.path == "/api/pull"]


def test_healthy_server_within_bounds(emulator: Any, cli: Any) -> None:
    emu = emulator()
    run = cli("probe", "load", "--host", emu.url, "--load-max-rate", "100",
              "--load-max-requests", "300", "--load-max-seconds", "2", "--json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert not [d for d in doc["diagnosis"] if d["severity"] in ("error", "critical")]
    check = _load_check(doc)
    assert check["status"] == "pass"
    assert check["summary"].startswith("no limit up to 100 version calls/s")
    assert check["facts"]["requests"] <= 300
    assert check["duration_ms"] < (2 + load.DRAIN_S + 1) * 1000


def test_load_is_opt_in(emulator: Any, cli: Any) -> None:
    emu = emulator()
    doc = cli("check", "--host", emu.url, "--json").json()
    assert "load" not in [c["id"] for c in doc["checks"]]
    skipped = cli("probe", "load", "--host", emu.url, "--load-call", "generate", "--json").json()
    check = _load_check(skipped)
    assert check["status"] == "skip" and "needs the model" in check["summary"]
