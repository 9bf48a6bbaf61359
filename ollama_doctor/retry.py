"""The recommended retry policy, per status and per cause, and a judge of a client's policy.

Data: which statuses to retry (``RETRY_CODES``), the backoff schedule (``SCHEDULE``: 1, 2, 4, 8,
16, 30, 30 s, each with ±``JITTER`` random jitter), the total time it implies, the idempotency
rule for writes, and the causes where no retry can help (``NEVER_HELPS``). ``policy()`` returns
all of it as data and ``policy_text()`` as the text of ``explain retry``; per-cause advice comes
from the cause catalogue (``causes.retry_for``), so there is one source for it.

``judge(load_seconds, client_timeout, client_retries)`` is pure. It reproduces what Ollama does
with a client whose timeout is shorter than the model's cold load: the server waits for the load
on the request's context, so a client that hangs up aborts the load
(``client connection closed before llama-server finished loading, aborting load``,
``llm/llama_server.go`` and ``server/sched.go``, v0.33) and the next try starts it again from
zero. Every try fails, however many there are. Cause id: ``slow-model-load``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from ollama_doctor.causes import CATALOGUE, retry_for

SCHEDULE: tuple[float, ...] = (1, 2, 4, 8, 16, 30, 30)
CAP_SECONDS = 30.0
JITTER = 0.2  # each wait is multiplied by a random factor in [1 - JITTER, 1 + JITTER]
RETRY_CODES: dict[int, str] = {
    408: "the request timed out at an intermediary; retry with backoff",
    429: "throttled: wait for `Retry-After` when given, else back off",
    500: "the server failed (often a load); back off, and stop when the same error repeats",
    502: "an intermediary could not reach Ollama; back off",
    503: "Ollama's load queue is full (`server busy`); back off and send fewer calls at once",
    504: "a gateway gave up waiting; back off, and raise its timeout or stream",
}
NO_RETRY_CODES: dict[int, str] = {
    400: "the body is wrong; it fails the same way until it changes",
    401: "credentials are missing or wrong",
    403: "refused by policy (Origin, Host, proxy, cloud disabled)",
    404: "the model or the path does not exist",
    405: "wrong method (often a redirect that turned POST into GET)",
}
CONNECTION_ERRORS = ("connection refused or reset, and read timeouts: retry with backoff while "
                     "the server starts or restarts; a connect timeout to a wrong address never "
                     "heals")
IDEMPOTENCY = (
    "Inference (POST /api/generate, /api/chat, /api/embed, /v1/*) and reads (GET, HEAD) change "
    "nothing on the server, so they are safe to repeat (a repeated generation costs its time "
    "again). Writes are retried only when they are idempotent or known not to have happened: "
    "/api/pull resumes where it stopped and /api/delete of a deleted model answers 404, so both "
    "may be retried; /api/create, /api/copy and /api/push are retried only after checking "
    "(GET /api/tags) that the first attempt did not complete. Never retry a write after a "
    "timeout without that check: the server may have finished it."
)
NEVER_HELPS: dict[str, str] = {
    "slow-model-load": "a cold load longer than the client's timeout: each retry aborts the load "
                       "and the next one starts it from zero, so no number of retries succeeds",
    "bad-request": "the same body is rejected the same way",
    "model-not-found": "the model stays absent until it is pulled",
    "model-capability": "the model does not gain the capability",
    "out-of-memory": "the model does not fit until memory is freed or the model is smaller",
    "proxy-captures-local": "every retry goes through the same proxy",
    "host-forbidden": "the Host header is refused every time",
    "origin-forbidden": "the Origin is refused every time",
}


def total_seconds(retries: int, schedule: Sequence[float] = SCHEDULE) -> float:
    """Nominal total of the waits before ``retries`` retries (the schedule's last step repeats)."""
    return float(sum(wait_for(i, schedule) for i in range(max(0, retries))))


def wait_for(retry: int, schedule: Sequence[float] = SCHEDULE) -> float:
    """The nominal wait before retry number ``retry`` (0-based)."""
    if not schedule:
        return 0.0
    return float(schedule[min(retry, len(schedule) - 1)])


def jittered(retry: int, rand: float, schedule: Sequence[float] = SCHEDULE) -> float:
    """The wait with jitter; ``rand`` is a uniform number in [0, 1) supplied by the caller."""
    base = wait_for(retry, schedule)
    return min(CAP_SECONDS * (1 + JITTER), base * (1 - JITTER + 2 * JITTER * rand))


def policy() -> dict[str, Any]:
    """The whole recommended policy as data (``explain retry --json``)."""
    causes = []
    for entry in CATALOGUE:
        advice = retry_for(entry.id, entry.code)
        causes.append({"cause": entry.id, "code": entry.code, "retry": advice.helps,
                       "advice": advice.advice,
                       "never_helps": NEVER_HELPS.get(entry.id)})
    n = len(SCHEDULE)
    return {
        "retry_codes": {str(code): why for code, why in RETRY_CODES.items()},
        "no_retry_codes": {str(code): why for code, why in NO_RETRY_CODES.items()},
        "connection_errors": CONNECTION_ERRORS,
        "schedule_seconds": list(SCHEDULE),
        "cap_seconds": CAP_SECONDS,
        "jitter": JITTER,
        "retries": n,
        "total_seconds": total_seconds(n),
        "total_range_seconds": [round(total_seconds(n) * (1 - JITTER), 1),
                                round(total_seconds(n) * (1 + JITTER), 1)],
        "idempotency": IDEMPOTENCY,
        "never_helps": NEVER_HELPS,
        "causes": causes,
    }


def policy_text() -> str:
    """The text ``explain retry`` prints."""
    data = policy()
    waits = ", ".join(f"{w:g}" for w in SCHEDULE)
    low, high = data["total_range_seconds"]
    lines = [
        "Retry policy for calls to Ollama",
        "",
        f"Backoff: wait {waits} s before retries 1–{len(SCHEDULE)} (capped at "
        f"{CAP_SECONDS:g} s), each wait ±{JITTER:.0%} random jitter so that clients do not "
        "retry in step.",
        f"Total: {data['total_seconds']:g} s of waiting for {len(SCHEDULE)} retries "
        f"({low:g}–{high:g} s with jitter), plus each try's own time.",
        "",
        "Retry these statuses:",
        *[f"  {code} {HTTPStatus(code).phrase}: {why}" for code, why in RETRY_CODES.items()],
        f"  connection errors: {CONNECTION_ERRORS}",
        "Never retry these (fix the call instead):",
        *[f"  {code} {HTTPStatus(code).phrase}: {why}" for code, why in NO_RETRY_CODES.items()],
        "",
        "Writes: " + IDEMPOTENCY,
        "",
        "When retrying can never help:",
        *[f"  {cause}: {why}" for cause, why in NEVER_HELPS.items()],
        "",
        "Per cause:",
        *[f"  {c['cause']}: {'retry' if c['retry'] else 'do not retry'} — {c['advice']}"
          for c in data["causes"]],
    ]
    return "\n".join(lines)


# ---- judging a client's policy against a measured load ----------------------------------------


@dataclass(frozen=True)
class Attempt:
    number: int  # 1 = the first try
    start: float  # seconds from the first try
    end: float
    outcome: str  # "load aborted" | "succeeded" | "succeeded warm"


@dataclass
class Verdict:
    succeeds: bool
    attempts: list[Attempt]
    seconds: float  # until success, or until the client gives up
    cause: str | None
    message: str
    recommended_timeout: float | None
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "succeeds": self.succeeds,
            "cause": self.cause,
            "message": self.message,
            "seconds": round(self.seconds, 2),
            "recommended_timeout": self.recommended_timeout,
            "attempts": [{"number": a.number, "start": round(a.start, 2), "end": round(a.end, 2),
                          "outcome": a.outcome} for a in self.attempts],
            "advice": self.advice,
        }


def recommended_timeout(load_seconds: float) -> float:
    """A client timeout that outlasts the load: the warm-up probe's rule (the smallest round
    figure ≥ 1.25 × the load), imported so that both give the same advice."""
    from ollama_doctor.probes.warmup import recommended_timeout as warmup_rule

    return float(warmup_rule(load_seconds))


def _margin() -> float:
    from ollama_doctor.probes.warmup import TIMEOUT_MARGIN

    return TIMEOUT_MARGIN


def judge(load_seconds: float, client_timeout: float | None, client_retries: int,
          backoff: Sequence[float] = SCHEDULE, generate_seconds: float = 0.0) -> Verdict:
    """Will a client with this timeout and these retries ever get an answer? Pure.

    ``load_seconds`` is the model's cold-load time (the warm-up probe's wall clock, or
    ``llama-server started in N seconds`` in the log); ``generate_seconds`` the time to answer
    once loaded. ``client_timeout`` ``None`` means the client waits forever.
    """
    if load_seconds < 0 or client_retries < 0 or (client_timeout is not None and
                                                   client_timeout <= 0):
        raise ValueError("load_seconds, client_timeout and client_retries must be positive")
    need = load_seconds + generate_seconds
    recommended = recommended_timeout(need)
    warm = ("Warm the model at start-up and keep it loaded: POST /api/generate "
            '{"model": MODEL, "keep_alive": "30m"} (an empty prompt only loads it).')
    if client_timeout is None or client_timeout > need:
        end = need
        attempt = Attempt(1, 0.0, end, "succeeded")
        advice = []
        if client_timeout is None:
            advice.append(f"The client waits forever; set a timeout of {recommended:g} s so a "
                          "stuck server is noticed.")
        elif client_timeout < need * _margin():
            advice.append(f"The {client_timeout:g} s timeout leaves little margin over the "
                          f"{need:g} s load; use {recommended:g} s.")
        return Verdict(True, [attempt], end, None,
                       f"The first try succeeds after about {need:g} s (the cold load).",
                       recommended, [*advice, warm])
    attempts = []
    t = 0.0
    for i in range(client_retries + 1):
        attempts.append(Attempt(i + 1, t, t + client_timeout, "load aborted"))
        t += client_timeout
        if i < client_retries:
            t += wait_for(i, backoff)
    tries = client_retries + 1
    message = (f"The model needs {load_seconds:g} s to load but the client gives up after "
               f"{client_timeout:g} s: each of the {tries} tries aborts the load, so the call "
               f"never succeeds (the client gives up after {t:g} s).")
    advice = [f"Set the client timeout to {recommended:g} s (it must outlast the "
              f"{need:g} s load).", warm,
              "More retries do not help: each one starts the load from zero."]
    return Verdict(False, attempts, t, "slow-model-load", message, recommended, advice)
