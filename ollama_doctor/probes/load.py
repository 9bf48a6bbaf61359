"""``load`` (opt-in): the request rate at which calls start failing, within hard bounds.

Ramps the request rate, step by step, against one cheap call — ``GET /api/version`` by default,
which finds a gateway's rate limit without touching a model; ``--load-call generate`` sends a
one-token ``/api/generate`` for ``--model``, which is what fills Ollama's queue of calls waiting
for a model load (docs/ollama-wire.md §2, the 503 row: ``sched.go`` queues only calls waiting
for a load, so requests for a loaded model never get 503). The sender is
open-loop (``ollama_doctor.pacing``): requests leave at scheduled times, so the achieved rate
matches the target whatever the answers do; the last rate is held for the rest of the budget,
so that a limiter's burst allowance drains.

It stops at the first 429 or 503 (after ``CONFIRM_S`` more at that rate, to measure the
limit), at a latency knee (median latency ``pacing.KNEE_ADDED_S`` and ``KNEE_FACTOR``× above
the best step), at other errors, or at a hard bound: ``--load-max-rate`` (default 500/s),
``--load-max-requests`` (2,000), ``--load-max-seconds`` (20; answers still in flight then get
``DRAIN_S`` more seconds before they are abandoned), ``MAX_IN_FLIGHT`` calls at once. When
this machine itself falls behind the schedule (``pacing.sender_behind``), slow answers are its
own queue, not the server's: it says so (status ``warn``) instead of naming a knee.

Facts: ``call``, ``bounds``, ``rates`` and ``durations_s`` (the plan), ``steps`` (target and
achieved rate, answers by status, p50/p90 latency, p90 lateness of the sender per step),
``requests``, ``elapsed_s``, ``stopped`` (``limit``, ``knee``, ``sender``, ``errors``,
``max-rate``, ``max-requests``, ``max-seconds``, ``in-flight``), ``sustainable_rate``,
``limit`` (status, the rate and time errors began, the estimated limit, ``Retry-After`` values,
the server's message, calls in flight), ``lone_refusals`` (429s that did not recur at
their rate: a burst allowance earlier calls had used up, never taken for the limit),
``recommendation`` (a client-side token bucket and a
backoff schedule, or a concurrency cap for 503s), ``path`` (requests go along the client's own
path, ``Context.async_client``: through its proxy when one applies).

Cause ids: ``rate-limited`` (429), ``server-busy`` (503), ``high-latency`` (a knee, or calls
failing under load), and for other server errors what ``warmup.classify_server_error`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from ollama_doctor import net, pacing
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.probes.warmup import classify_server_error
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import base_path_kind

LIMIT_STATUSES = (429, 503)
START_RATE = {"version": 10.0, "generate": 2.0}
CONFIRM_S = 1.5
DRAIN_S = 2.0
MAX_IN_FLIGHT = 128  # also the connection pool's size: httpcore scans it on every request
BUCKET_SHARE = 0.9  # the token bucket's rate, as a share of the measured limit
BACKOFF_S = (1, 2, 4, 8, 16, 30)
MAX_BODY = 64 * 1024


def limited(sample: pacing.Sample) -> bool:
    return sample.status in LIMIT_STATUSES


def token_bucket(limit_per_s: float) -> dict[str, int]:
    """A client-side bucket safely under ``limit_per_s``: 90 % of it, a burst of 0.1 s of it."""
    rate = max(1, math.floor(limit_per_s * BUCKET_SHARE))
    return {"rate_per_s": rate, "burst": max(1, rate // 10)}


def in_flight_at(samples: list[pacing.Sample], when: float) -> int:
    """Calls started before ``when`` and not answered by then (the concurrency it met)."""
    return sum(1 for s in samples if s.started <= when and not (s.done and s.finished < when))


def run(ctx: Context) -> Outcome:
    return ctx.on_path(_run(ctx))


def _run(ctx: Context) -> Outcome:
    opts = ctx.options
    call = opts.load_call
    if call not in START_RATE:
        return Outcome(Status.SKIP, f"skipped: unknown --load-call {call!r} (version or "
                                    "generate)")
    if call == "generate" and not opts.model:
        return Outcome(Status.SKIP, "skipped: --load-call generate needs the model (-m MODEL)")
    target = ctx.target
    api = target.base_url if base_path_kind(target.path) == "other" else target.root_url
    rates = pacing.ladder_rates(min(START_RATE[call], opts.load_max_rate), opts.load_max_rate)
    steps = pacing.durations(rates, opts.load_max_requests, opts.load_max_seconds, CONFIRM_S)
    drain = min(DRAIN_S, opts.timeout)
    plan = pacing.Plan(rates=rates, durations=steps, max_requests=opts.load_max_requests,
                       max_seconds=opts.load_max_seconds, confirm_s=CONFIRM_S,
                       max_in_flight=MAX_IN_FLIGHT, drain_s=drain)
    if call == "version":
        method, url, body = "GET", api + "/api/version", None
        per_call = opts.timeout
    else:
        method, url = "POST", api + "/api/generate"
        body = {"model": opts.model, "prompt": "Hi", "stream": False,
                "options": {"num_predict": 1}}
        per_call = opts.load_timeout  # a call may wait for a load; the drain bounds it
    facts: dict[str, Any] = {
        "call": f"{method} {url}",
        "bounds": {"max_rate": opts.load_max_rate, "max_requests": opts.load_max_requests,
                   "max_seconds": opts.load_max_seconds},
        "rates": list(rates), "durations_s": list(steps),
    }
    facts["path"] = ctx.route().to_dict()
    result = asyncio.run(_drive(plan, method, url, body, ctx.client_headers(with_origin=False),
                                per_call, opts.timeout, api + "/api/version", ctx))
    return _judge(ctx, plan, result, facts, call)


async def _drive(plan: pacing.Plan, method: str, url: str, body: Any, headers: dict[str, str],
                 per_call: float, connect: float, warm_url: str,
                 ctx: Context | None = None) -> pacing.RampResult:
    import httpx

    # Keep every connection: httpcore 1.0 closes idle connections whenever the pool holds more
    # than max_keepalive_connections in all (it counts busy ones too), and reconnecting then
    # costs the sender the CPU it needs to stay on schedule.
    limits = httpx.Limits(max_connections=plan.max_in_flight,
                          max_keepalive_connections=plan.max_in_flight)
    timeout = httpx.Timeout(per_call, connect=connect)
    # Along the client's path (through its proxy when one applies): Context.async_client.
    client_cm = (ctx.async_client(limits=limits, timeout=timeout, headers=headers)
                 if ctx is not None else
                 httpx.AsyncClient(trust_env=False, limits=limits, timeout=timeout,
                                   headers=headers, follow_redirects=False))
    async with client_cm as client:
        # One unscheduled GET /api/version first: it opens the first pooled connection and
        # pulls in the modules httpx imports on first use, so the ramp's first step is not late.
        with contextlib.suppress(Exception):
            await client.get(warm_url)
        # Built once, sent many times: skips URL parsing and header merging per request.
        request = client.build_request(method, url, json=body)

        async def send() -> pacing.Answer:
            try:
                response = await client.send(request, stream=True)
                try:
                    data = b""
                    async for chunk in response.aiter_raw():
                        data += chunk
                        if len(data) > MAX_BODY:
                            break
                finally:
                    await response.aclose()
                answer = pacing.Answer(status=response.status_code,
                                       retry_after=response.headers.get("retry-after"))
                if not 200 <= response.status_code < 300:
                    reply = net.HttpReply(method, url, status=response.status_code,
                                          body=data[:MAX_BODY])
                    answer.message = (reply.error_message() or reply.snippet(200))[:300]
                return answer
            except Exception as exc:
                return pacing.Answer(error=net.classify(exc).kind)

        baseline: list[float] = []

        def on_step_end(step: int, samples: list[pacing.Sample]) -> str | None:
            return _step_verdict(step, samples, baseline)

        return await pacing.ramp(send, plan, limited=limited, on_step_end=on_step_end)


def _step_verdict(step: int, samples: list[pacing.Sample], baseline: list[float]) -> str | None:
    """At the end of a step: errors other than 429/503 stop the ramp; so does a knee."""
    mine = [s for s in samples if s.step == step]
    if not mine:
        return None
    done = [s for s in mine if s.done]
    if any(not s.ok and not limited(s) for s in done):
        return "errors"
    now = max(s.started for s in mine)
    # Unanswered calls count with the time they have waited so far, so a server that stops
    # answering shows up as a knee too.
    waited = [s.latency if s.done else now - s.started for s in mine]
    p50 = pacing.percentile(waited, 0.5)
    best = min(baseline) if baseline else None
    if pacing.is_knee(p50, best):
        # Late answers while this machine was itself behind schedule are its own queue.
        return "sender" if pacing.sender_behind(samples, step) else "knee"
    ok = [s.latency for s in done if s.ok]
    if len(ok) >= 3:
        median = pacing.percentile(ok, 0.5)
        if median is not None:
            baseline.append(median)
    return None


def _judge(ctx: Context, plan: pacing.Plan, result: pacing.RampResult, facts: dict[str, Any],
           call: str) -> Outcome:
    samples = result.samples
    steps = [pacing.step_stats(samples, i, plan.rates[i]) for i in range(result.steps_run)]
    facts["steps"] = [s for s in steps if s["sent"]]
    facts["requests"] = len(samples)
    facts["elapsed_s"] = round(result.elapsed_s, 2)
    facts["stopped"] = result.stopped
    facts["abandoned"] = result.cancelled
    findings: list[Finding] = []
    clean = [st for st in steps if st["sent"] and st["ok"] == st["answered"] == st["sent"]]
    best_clean = max((st["target_rate"] for st in clean), default=None)
    backoff = list(BACKOFF_S)
    target = ctx.target

    # the confirmed limit's first refusal; a lone one before it was a used-up burst allowance
    since = result.first_limit_at if result.first_limit_at is not None else math.inf
    first = min((s for s in samples if limited(s) and s.started >= since),
                key=lambda s: s.started, default=None)
    if result.lone_refusals:
        facts["lone_refusals"] = len(result.lone_refusals)
    if first is not None:
        status = first.status or 0
        at_rate = plan.rates[first.step]
        estimate = pacing.limit_rate(samples, first) if first.status == 429 else None
        retry_after = sorted({s.retry_after for s in samples if limited(s) and s.retry_after})
        flight = in_flight_at(samples, first.started)
        limit: dict[str, Any] = {
            "status": status, "at_rate": at_rate, "after_s": round(first.started, 2),
            "estimated_rate": None if estimate is None else round(estimate, 1),
            "retry_after": retry_after[:5], "message": first.message, "in_flight": flight,
            "answers": sum(1 for s in samples if s.status == status),
        }
        facts["limit"] = limit
        sustainable = estimate if estimate else best_clean
        facts["sustainable_rate"] = None if sustainable is None else round(sustainable, 1)
        evidence = {"limit": limit, "steps": facts["steps"]}
        wait = (f"wait Retry-After ({', '.join(retry_after[:3])} s) when given, else back off "
                if retry_after else "back off ")
        backoff_text = wait + ", ".join(str(b) for b in backoff) + " s (capped at 30 s)"
        if status == 429:
            rate_text = (f"about {estimate:.0f} requests/s" if estimate
                         else f"below {at_rate:g} requests/s")
            bucket = token_bucket(estimate or best_clean or at_rate)
            facts["recommendation"] = {"token_bucket": bucket, "backoff_s": backoff,
                                       "honour_retry_after": True}
            who = ("Ollama Cloud's quota" if call == "generate" and _is_cloud(ctx)
                   else "Something in front of Ollama (a gateway; local Ollama never sends 429)")
            findings.append(Finding(
                "rate-limited", Severity.ERROR,
                f"{who} limits calls to {rate_text}: driven at {at_rate:g}/s, 429s began after "
                f"{first.started:.1f} s. Pace the client with a token bucket of "
                f"{bucket['rate_per_s']}/s (burst {bucket['burst']}) and {backoff_text}.",
                evidence, [
                    FixStep(f"Pace calls on the client: a token bucket of {bucket['rate_per_s']} "
                            f"requests/s with a burst of {bucket['burst']}, at or below the "
                            "measured limit.",
                            (R.python(f"aiolimiter.AsyncLimiter({bucket['rate_per_s']}, 1)"),)),
                    FixStep("The same in Node (bottleneck):",
                            (R.javascript(f"new Bottleneck({{ reservoir: {bucket['burst']}, "
                                          f"minTime: {math.ceil(1000 / bucket['rate_per_s'])} "
                                          "})"),)),
                    FixStep(f"On 429, {backoff_text}, with jitter; never retry at once."),
                    FixStep("Or ask the gateway's owner for a higher limit for this client."),
                ], Confidence.HIGH, 429))
        else:
            ollama_queue = classify_server_error(status, first.message or "") == "server-busy" \
                and "server busy" in (first.message or "")
            limit_conc = max(1, flight - 1)
            facts["recommendation"] = {"max_concurrency": limit_conc, "backoff_s": backoff}
            if ollama_queue:
                message = (f"Ollama's queue of calls waiting for a model load is full: with "
                           f"{flight} calls in flight ({at_rate:g}/s of {call}), it answered "
                           f"503 'server busy'. Keep fewer than {flight} calls waiting for a "
                           f"load, keep the model loaded, and {backoff_text}.")
                confidence = Confidence.HIGH
            else:
                message = (f"Calls get 503 from {target.root_url} above {at_rate:g}/s "
                           f"({flight} in flight): something in front of Ollama, or Ollama's "
                           f"queue, sheds load. {backoff_text[0].upper() + backoff_text[1:]}.")
                confidence = Confidence.MEDIUM
            fixes = [FixStep(f"Limit the client to {limit_conc} concurrent calls (a semaphore), "
                             f"and on 503 {backoff_text}."),
                     FixStep("Keep the model loaded so calls skip the load queue,",
                             (_preload(ctx),)),
                     FixStep("or raise the queue in the server's environment.",
                             (R.env_line("OLLAMA_MAX_QUEUE", "1024"),
                              R.env_line("OLLAMA_NUM_PARALLEL", "4")))]
            findings.append(Finding("server-busy", Severity.ERROR, message, evidence, fixes,
                                    confidence, status))
        if status == 429:
            summary = (f"rate-limited (429) at about {estimate:.0f} requests/s" if estimate
                       else f"429 from {at_rate:g}/s")
        else:
            summary = f"503 at {flight} calls in flight ({at_rate:g} {call} calls/s)"
        return _outcome(findings, facts, summary)

    errors = [s for s in samples if s.done and not s.ok]
    if errors:
        bad = min(errors, key=lambda s: s.started)
        at_rate = plan.rates[bad.step]
        facts["sustainable_rate"] = best_clean
        kinds: dict[str, int] = {}
        for s in errors:
            key = str(s.status) if s.status is not None else (s.error or "error")
            kinds[key] = kinds.get(key, 0) + 1
        facts["errors"] = {"at_rate": at_rate, "after_s": round(bad.started, 2),
                           "kinds": kinds, "message": bad.message}
        evidence = {"errors": facts["errors"], "steps": facts["steps"]}
        if bad.status is not None:
            cause = classify_server_error(bad.status, bad.message or "")
            findings.append(Finding(
                cause, Severity.ERROR,
                f"At {at_rate:g} {call} calls/s the server answered HTTP {bad.status}: "
                f"{(bad.message or '')[:200]!r}.", evidence, code=bad.status))
        else:
            findings.append(Finding(
                "high-latency", Severity.WARNING,
                f"At {at_rate:g} calls/s, {sum(kinds.values())} calls failed "
                f"({', '.join(f'{k}: {v}' for k, v in kinds.items())}): the server or the "
                f"path to it breaks under load; stay below "
                f"{best_clean or at_rate:g}/s.", evidence,
                [FixStep("Limit the client's rate and concurrency, and back off on failures.")],
                Confidence.MEDIUM))
        return _outcome(findings, facts, f"calls failed from {at_rate:g}/s")

    if result.stopped == "in-flight" and pacing.sender_behind(samples, result.steps_run - 1):
        result.stopped = facts["stopped"] = "sender"
    if result.stopped == "sender":
        last = steps[-1]
        facts["sustainable_rate"] = best_clean
        facts["sender_limited"] = {"at_rate": last["target_rate"],
                                   "achieved_rate": last["achieved_rate"],
                                   "lag_p90_ms": last["lag_p90_ms"]}
        return Outcome(
            Status.WARN,
            f"this machine could not keep up {last['target_rate']:g} calls/s (requests left "
            f"up to {last['lag_p90_ms']:g} ms late, p90); no limit up to "
            f"{best_clean or 0:g}/s — rerun on a less busy machine for more", facts, findings)
    if result.stopped in ("knee", "in-flight"):
        knee_step = steps[-1]
        earlier = [st for st in steps[:-1] if st["p50_ms"] is not None]
        best = min(earlier, key=lambda st: st["p50_ms"]) if earlier else None
        before = steps[-2]["target_rate"] if len(steps) > 1 else None
        facts["sustainable_rate"] = before
        facts["knee"] = {"at_rate": knee_step["target_rate"],
                         "p50_ms": knee_step["p50_ms"],
                         "best_p50_ms": best["p50_ms"] if best else None}
        findings.append(Finding(
            "high-latency", Severity.INFO,
            f"Latency climbs at {knee_step['target_rate']:g} {call} calls/s "
            f"(median {best['p50_ms'] if best else '?'} ms before): the server saturates; "
            f"keep clients at or below about {before or knee_step['target_rate']:g}/s.",
            {"knee": facts["knee"], "steps": facts["steps"]},
            [FixStep("Cap the client's rate and concurrency below the knee.")],
            Confidence.MEDIUM))
        return _outcome(findings, facts, f"latency knee at {knee_step['target_rate']:g}/s")

    top_step = max((st for st in steps if st["sent"]), key=lambda st: st["target_rate"],
                   default=None)
    top = top_step["target_rate"] if top_step else 0.0
    facts["sustainable_rate"] = top
    why = {"max-rate": "the highest rate tried", "max-requests": "--load-max-requests reached",
           "max-seconds": "--load-max-seconds reached"}.get(result.stopped, result.stopped)
    summary = f"no limit up to {top:g} {call} calls/s ({why}; {len(samples)} requests)"
    achieved = top_step["achieved_rate"] if top_step else None
    if achieved is not None and achieved < 0.95 * top:
        summary += f"; this machine sent only {achieved:g}/s at the top step"
    return _outcome(findings, facts, summary)


def _is_cloud(ctx: Context) -> bool:
    from ollama_doctor.modelname import is_cloud

    return bool(ctx.options.model) and is_cloud(ctx.options.model or "")


def _preload(ctx: Context) -> R.Command:
    return R.preload(ctx.target.root_url, ctx.options.model or "MODEL")


def _outcome(findings: list[Finding], facts: dict[str, Any], summary: str) -> Outcome:
    return Outcome.from_findings(summary, facts, findings)
