"""``warmup``: how long ``--model`` takes to load, to answer, and where it runs.

Runs only when a model is given; it loads that model into the server's memory and never pulls
one. Every call goes along the client's path (``Context.http_client``: through the client's
proxy when one applies), and the summary says which. Steps (docs/ollama-wire.md §1.3,
§1.5–§1.7):

1. ``GET /api/ps``: is the model loaded already (and with which context, on GPU or CPU, until
   when)? ``POST /api/show`` for its capabilities (an embedding-only model is warmed with
   ``/api/embed`` and an empty input: ``generate`` answers it 400 even to load it).
2. With ``--cold``, unload it first (a load-only request with ``keep_alive: 0``) and wait until
   ``/api/ps`` no longer lists it.
3. A load-only request (empty prompt), timed on the client side, because its answer carries no
   ``load_duration``. It may wait up to ``--load-timeout``: a client that hangs up aborts the
   load, so the doctor never hangs up early.
4. A one-token generation with ``stream: true``, twice: time to first byte, tokens/s from
   ``eval_count / eval_duration``, and ``load_duration`` of each (a warm call spends a few ms
   there; seconds mean the model was reloaded).
5. ``GET /api/ps`` again: context length, ``size_vram`` against ``size`` (the CLI's PROCESSOR
   rules), ``expires_at``.
6. Only with ``--prompt-tokens N`` (opt-in: the test may cost seconds, and without N the doctor
   cannot know whether a cut matters): N against the context length from step 5. N within it:
   nothing more. N beyond it: ``prompt-truncated`` (warning). When cheap (the context is at
   most ``TRUNCATION_MAX_CTX`` tokens and the measured prompt speed says the test costs under
   ``TRUNCATION_BUDGET_S``), one prompt of 1.5 × the context length (not N: that is enough to
   see it, and a cut prompt costs the same whatever N is) shows what the server does with it —
   cuts it (``prompt_eval_count`` pinned at the context length) or refuses it (400): HIGH
   confidence; evaluates it whole: no finding. Not sent (too costly, no prompt speed), or sent
   without a complete answer or a ``prompt_eval_count``, the finding rests on N alone: MEDIUM.

A cloud model (``:cloud`` / ``-cloud``) loads nothing here: the server relays it to ollama.com
(``server/cloud_proxy.go`` ``cloudPassthroughMiddleware``, v0.33). For one the probe makes a
single minimal real call instead — ``POST /api/generate`` with ``num_predict: 1``, which
**spends one token of the account's cloud quota** (the summary and the ``cloud`` fact say so) —
and maps the answer: 401 (with ``signin_url``) → ``cloud-signin-required``; 403 ``ollama cloud
is disabled`` → ``cloud-disabled``; 429 (``… reached your … usage limit``) → ``rate-limited``;
502 (the server could not reach ollama.com) → ``bad-gateway`` with the upstream's words.

Every call has one total deadline (``net.Cutoff``, as every exchange of the doctor). A streamed
answer is bounded twice once its headers have arrived: by ``STREAM_MAX_BYTES`` and by a wall
clock of ``--timeout``, cut to what is left of the run's deadline (a stream that never ends, or
stalls after its headers, is cut there and reported as such, not read for minutes, and the
probe ends before the runner's cut).

What the probe has established is left for the runner as it goes (``runner.partial_key``): the
model's state before, the load's time and its judgement, the warm calls' timings; a probe cut
at its budget keeps them and its summary says how far it got.

Every call the doctor makes sends a keep-alive (``"10m"``, or what the model already had when
that is longer) so that measuring does not shorten how long the user's model stays loaded.

Facts: ``model``, ``loaded_before``, ``unloaded``, ``load_s`` (client-measured), ``load_kind``
(``cold``, ``warm``, ``reload``), ``first_chunk_ms`` (a generate: request sent → first
streamed line) or ``total_ms`` (an embedding model: request sent → answer complete),
``tokens_per_s``, ``warm_load_ms`` (the
``load_duration`` of each warm call), ``prompt_eval_count``, ``ps_before``/``ps`` (size,
size_vram, processor, context_length, expires_at, expires_in_s), ``keep_alive_sent``,
``client_timeout`` comparison, ``truncation`` (``ran``, ``context_length``, ``why`` when
nothing was sent; with ``--prompt-tokens`` also ``prompt_tokens``, ``fits``, ``estimated_s``,
``words_sent``, ``prompt_eval_count`` or ``rejected``); ``stopped`` (what the run's deadline
interrupted) when it ended the probe; in a cut probe's partial outcome also
``warm_call_pending`` (a warm call that had answered its headers, and when).

Cause ids: ``slow-model-load``, ``reload-churn``, ``prompt-truncated``, ``gpu-offload``,
``runner-crashed``, ``out-of-memory``, ``server-busy``, ``server-error``, ``model-capability``,
``model-not-found``, ``ollama-outdated``, ``bad-request``, ``cloud-signin-required``,
``cloud-disabled``, ``rate-limited``, ``bad-gateway``, ``auth-required`` — server errors through
``classify_server_error``, a table the pasted-error reader can reuse.

What is read on the wire — that table, ``/api/ps``'s entries and the bounded NDJSON stream — is
in ``warmup_wire``; this module holds the probe's steps and its judgements, and re-exports those
names (``X as X``: the load probe, ``retry`` and the tests import them from here).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ollama_doctor import modelname, net
from ollama_doctor import remedies as R
from ollama_doctor.context import OP_FLOOR, Context
from ollama_doctor.probes import v1
from ollama_doctor.probes.warmup_wire import _STATUS_CAUSES as _STATUS_CAUSES
from ollama_doctor.probes.warmup_wire import STREAM_MAX_BYTES as STREAM_MAX_BYTES
from ollama_doctor.probes.warmup_wire import PsEntry as PsEntry
from ollama_doctor.probes.warmup_wire import Stream as Stream
from ollama_doctor.probes.warmup_wire import _ns as _ns
from ollama_doctor.probes.warmup_wire import classify_server_error as classify_server_error
from ollama_doctor.probes.warmup_wire import cpu_percent as cpu_percent
from ollama_doctor.probes.warmup_wire import exchange as exchange
from ollama_doctor.probes.warmup_wire import find_ps_entry as find_ps_entry
from ollama_doctor.probes.warmup_wire import other_models as other_models
from ollama_doctor.probes.warmup_wire import parse_rfc3339 as parse_rfc3339
from ollama_doctor.probes.warmup_wire import processor as processor
from ollama_doctor.probes.warmup_wire import stream_call as stream_call
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import base_path_kind

# --------------------------------------------------------------------------------------------
# Timeouts: rounding a recommendation, and the client families' defaults (pure)

# Round figures a timeout is raised to: a 24 s load needs 30 s (1.25 × 24 = 30).
ROUND_TIMEOUTS: tuple[int, ...] = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300,
                                   450, 600, 900, 1200, 1800, 2700, 3600)
TIMEOUT_MARGIN = 1.25


def recommended_timeout(load_s: float) -> int:
    """The smallest round figure ≥ 1.25 × ``load_s`` (beyond an hour: whole quarter hours).

    The load counts to two significant figures, so that a measured 24.1 s gets the same
    30 s as the 24 s it is: a few milliseconds of HTTP around a load must not move the advice
    up a whole step.
    """
    load = float(f"{max(load_s, 0.0):.2g}")
    need = round(load * TIMEOUT_MARGIN, 6)  # 2.4 × 1.25 is 3.0000000000000004
    for value in ROUND_TIMEOUTS:
        if value >= need:
            return value
    return int(math.ceil(need / 900.0) * 900)


@dataclass(frozen=True)
class ClientDefault:
    family: str
    timeout_s: float
    note: str


# What a client waits for response headers when the user set nothing (docs/failure-modes.md mode 3).
CLIENT_DEFAULTS: tuple[ClientDefault, ...] = (
    ClientDefault("httpx", 5.0, "httpx.Client() without timeout= (LangChain, LiteLLM, raw httpx)"),
    ClientDefault("nginx", 60.0, "nginx proxy_read_timeout in front of Ollama"),
    ClientDefault("node-undici", 300.0, "Node fetch (undici headersTimeout)"),
    ClientDefault("openai-python", 600.0,
                  "openai-python, which retries twice: each retry aborts the load again"),
)


def clients_timing_out(load_s: float) -> list[ClientDefault]:
    """The client families whose default timeout is shorter than a load of ``load_s``."""
    return [c for c in CLIENT_DEFAULTS if c.timeout_s < load_s]


FOREVER_S = 50 * 365 * 86400  # Ollama's "forever" is now + MaxInt64 ns (about 292 years)
KEEP_ALIVE = "10m"


def keep_alive_for(expires_in_s: float | None) -> str | int:
    """The keep-alive the doctor sends: ``"10m"``, unless the model already stays longer.

    Each request's keep-alive replaces the runner's (docs/ollama-wire.md §1.6), so sending ``"10m"``
    to a model kept forever would shorten it: keep forever as ``-1`` and longer as seconds.
    """
    if expires_in_s is None or expires_in_s <= 600:
        return KEEP_ALIVE
    if expires_in_s >= FOREVER_S:
        return -1
    return math.ceil(expires_in_s)
# --------------------------------------------------------------------------------------------
# Churn and truncation deciders (pure)

RELOAD_S = 0.2  # a warm call's load_duration is a few ms; this much means a (re)load
TRUNCATION_MAX_CTX = 8192
TRUNCATION_BUDGET_S = 5.0


def is_reload(load_duration_s: float | None) -> bool:
    return load_duration_s is not None and load_duration_s >= RELOAD_S


def truncation_cost_s(context_length: int, prompt_tokens: int, prompt_seconds: float) -> float:
    """Seconds a prompt of ``context_length`` tokens takes at the measured prompt speed."""
    if prompt_tokens <= 0 or prompt_seconds <= 0:
        return math.inf
    return context_length * prompt_seconds / prompt_tokens


def is_truncated(prompt_eval_count: int, context_length: int) -> bool:
    """A prompt of ≥ 1.5 × the context evaluated as at most the context: it was cut."""
    return 0 < prompt_eval_count <= context_length * 1.05


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")


def long_prompt(words: int) -> str:
    """A prompt of ``words`` common words: at least one token each in every tokenizer."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


# The warm calls' prompt: long enough (about 50 tokens) for its prompt_eval_duration to give a
# usable prompt speed, short enough to cost a GPU a few milliseconds.
WARM_PROMPT = long_prompt(48) + ". Answer OK."


# --------------------------------------------------------------------------------------------
# The probe


@dataclass
class _Run:
    ctx: Context
    model: str
    api: str
    headers: dict[str, str]
    client: Any  # one httpx.Client (keep-alive) for every call of the probe
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    embedding: bool = False
    keep_alive: str | int = KEEP_ALIVE
    others: list[str] = field(default_factory=list)  # other models /api/ps lists
    cut_short: bool = False  # the last body limit was below --timeout: the run's deadline
    # Judged for a cut probe's partial outcome before the probe itself records them.
    provisional_facts: dict[str, Any] = field(default_factory=dict)
    provisional: list[Finding] = field(default_factory=list)

    @property
    def quick(self) -> float:
        return self.ctx.options.timeout

    def limit(self) -> float:
        """Seconds for an ordinary call, or a body once its headers are in: ``--timeout``, cut
        to what is left before the run's deadline (``Context.deadline``), so that the probe
        ends, and reports what it found, before the runner cuts it. Time this thread spent
        waiting for a model load's headers (``net.excused``) moves that deadline as it moves
        the runner's cut: a load of ``--load-timeout`` seconds may outlast the run's budget
        (issue 2: loads are bounded separately). Past the deadline a call still gets
        ``min(--timeout, OP_FLOOR)``, as ``Context.op_timeout`` gives."""
        left = self.ctx.remaining()
        if left is None:
            return self.quick
        left += net.excused(threading.get_ident())
        return min(self.quick, max(left, min(self.quick, OP_FLOOR)))

    def body_limit(self) -> float:
        """``limit`` for a body, asked when its headers arrive; remembers whether the run's
        deadline made it shorter than ``--timeout`` (see ``out_of_time``)."""
        value = self.limit()
        self.cut_short = value < self.quick
        return value

    def out_of_time(self, status: int | None, error: net.NetError | None) -> bool:
        """Was a body cut by the doctor's own deadline, shortened for the run's, rather than
        given its full ``--timeout``? Then the server is not to blame."""
        return (self.cut_short and status is not None and error is not None
                and error.exception in ("DeadlineExceeded", "StreamDeadline"))

    def call(self, method: str, path: str, body: Any = None, *,
             timeout: float | None = None) -> net.HttpReply:
        return exchange(self.client, method, self.api + path, timeout=timeout or self.limit(),
                        connect_timeout=self.limit(), headers=self.headers, json_body=body,
                        body_timeout=self.body_limit)

    def stream(self, body: dict[str, Any], timeout: float,
               on_headers: Callable[[Stream], None] | None = None) -> Stream:
        return stream_call(self.client, self.api + "/api/generate", body, headers=self.headers,
                           timeout=timeout, connect_timeout=self.limit(),
                           body_wall_s=self.body_limit, on_headers=on_headers)

    def ps(self) -> tuple[PsEntry | None, net.HttpReply]:
        reply = self.call("GET", "/api/ps")
        data = reply.json()
        if reply.ok:
            self.others = other_models(data, self.model)
        return find_ps_entry(data, self.model, datetime.now(timezone.utc)), reply

    def checkpoint(self, summary: str, **extra: Any) -> None:
        """Leave what is established so far, and ``extra`` facts, for the runner: if the probe
        is cut at its budget, its result keeps these facts and findings, and ``summary`` says
        how far it got (``runner.partial_key``). A copy: the probe goes on changing its own."""
        from ollama_doctor.runner import partial_key

        facts = copy.deepcopy(self.facts)
        facts.update(copy.deepcopy(self.provisional_facts))
        facts.update(extra)
        self.ctx.memo[partial_key("warmup")] = Outcome.from_findings(
            summary, facts, [*self.findings, *self.provisional])

    def free_memory_fix(self, what: str) -> FixStep:
        stops = tuple(R.sh(f"ollama stop {R.q(name)}") for name in self.others[:3])
        text = (f"Free {what}: stop the other loaded models ({', '.join(self.others[:3])}) and "
                "other GPU users." if self.others else
                f"Free {what}: no other model is loaded here; look for other GPU users.")
        return FixStep(text, (*stops, R.sh("ollama ps"), R.sh("nvidia-smi")))


def run(ctx: Context) -> Outcome:
    return ctx.on_path(_run(ctx))


def _run(ctx: Context) -> Outcome:
    model = ctx.options.model or _model_the_server_has(ctx)
    if not model:
        return Outcome(Status.SKIP, "skipped: no model given (-m MODEL); warm-up loads a model "
                                    "into memory and never pulls one")
    target = ctx.target
    api = target.base_url if base_path_kind(target.path) == "other" else target.root_url
    if modelname.is_cloud(model):
        return _cloud_call(ctx, model, api)
    with ctx.http_client(timeout=ctx.options.timeout) as client:
        r = _Run(ctx, model, api, ctx.client_headers(with_origin=False), client)
        r.facts["model"] = model
        if not ctx.options.model:
            r.facts["model_chosen"] = ("the server's only model, since the pasted error names "
                                       "none and only a load can reproduce it")
        try:
            return _probe(r)
        except _OutOfTime as exc:
            return _out_of_time(r, str(exc))


class _OutOfTime(Exception):
    """The run's deadline, not the server, ended a call: stop and report what is known."""


def _out_of_time(r: _Run, what: str) -> Outcome:
    """The last partial outcome, said to be one: at least a warning, since the probe could
    not finish, and no finding blames the server for the doctor's own deadline."""
    from ollama_doctor.runner import partial_key

    partial = r.ctx.memo.get(partial_key("warmup"))
    head = f"stopped at the run's deadline ({what})"
    if not isinstance(partial, Outcome):
        return Outcome.from_findings(head, r.facts, r.findings, floor=Status.WARN)
    facts = dict(partial.facts)
    facts["stopped"] = what
    return Outcome.from_findings(f"{head}; {partial.summary}", facts, list(partial.findings),
                                 floor=Status.WARN)


# Causes a pasted error may show that only a model load or a generation can reproduce.
_NEEDS_A_MODEL = frozenset({"runner-crashed", "out-of-memory", "memory-limit", "server-error",
                            "slow-model-load", "high-latency", "server-busy", "gpu-offload",
                            "ollama-outdated", "prompt-truncated"})


def _model_the_server_has(ctx: Context) -> str | None:
    """The model to warm when none was named: only when the pasted error is a failure that
    only a load or a generation can reproduce (a bare ``500 Server Error``, a read timeout, a
    stream cut mid-way — texts from requests, httpx or Node that never show the model), and
    the server has exactly one local model, so there is no guessing which."""
    from ollama_doctor.facts import ModelsFacts

    error = ctx.error
    if error is None or not _NEEDS_A_MODEL & set(error.causes[:3]):
        return None
    seen = ctx.facts(ModelsFacts)
    local = [m.name for m in seen.models if not modelname.is_cloud(m.name)] if seen else []
    return local[0] if len(local) == 1 else None


# -- cloud models -----------------------------------------------------------------------------

CLOUD_QUOTA_NOTE = "spends one token of the account's Ollama Cloud quota"
CLOUD_TIMEOUT_S = 60.0  # the relay to ollama.com and one token; bounded by --load-timeout


def _cloud_call(ctx: Context, model: str, api: str) -> Outcome:
    """One minimal real call for a cloud model (one token), mapped to its cause."""
    body = {"model": model, "prompt": "Hi", "stream": False, "options": {"num_predict": 1},
            "keep_alive": KEEP_ALIVE}
    timeout = min(max(ctx.options.timeout, CLOUD_TIMEOUT_S), ctx.options.load_timeout)
    reply = ctx.http("POST", api + "/api/generate", headers=ctx.client_headers(with_origin=False),
                     json_body=body, timeout=timeout, connect_timeout=ctx.op_timeout())
    facts: dict[str, Any] = {"model": model, "cloud": {
        "call": "POST /api/generate, num_predict 1", "quota": CLOUD_QUOTA_NOTE,
        "answer": reply.to_evidence()}}
    if reply.ok:
        return Outcome(Status.PASS, f"{model} (cloud) answered a one-token call through the "
                                    f"server ({CLOUD_QUOTA_NOTE})", facts)
    finding = cloud_finding(model, api, reply)
    return Outcome(Status.FAIL, f"{model} (cloud): {reply.describe()} to a one-token call "
                                f"({finding.cause}; the call {CLOUD_QUOTA_NOTE})",
                   facts, [finding])


def cloud_finding(model: str, api: str, reply: net.HttpReply) -> Finding:
    """What a failed call for a cloud model means, from its status and Ollama's words."""
    data = reply.json()
    message = reply.error_message() or reply.snippet(200)
    evidence: dict[str, Any] = {"model": model, "call": reply.to_evidence(),
                                "quota": CLOUD_QUOTA_NOTE}
    status = reply.status
    local = FixStep("Or use a local model instead of the cloud one.")
    if reply.error is not None:
        return Finding("server-error", Severity.ERROR,
                       f"The one-token call for the cloud model {model} through {api} failed: "
                       f"{reply.error.message}.", evidence, [local], Confidence.MEDIUM)
    signin = data.get("signin_url") if isinstance(data, dict) else None
    if status == 401 and (isinstance(signin, str) or reply.json() is not None):
        if isinstance(signin, str):
            evidence["signin_url"] = signin
        return R.signin_finding(model, api, evidence,
                                seen=f"a one-token call got 401 {message!r}", then=(local,))
    if status == 403 and "cloud is disabled" in message.lower():
        # cloud_proxy.go proxyCloudRequestWithPath (v0.33): OLLAMA_NO_CLOUD=1 or
        # disable_ollama_cloud in the server's config refuses every cloud model.
        return Finding(
            "cloud-disabled", Severity.ERROR,
            f"The server at {api} has cloud models turned off: a one-token call for {model} "
            f"got 403 {message!r} (OLLAMA_NO_CLOUD=1 or disable_ollama_cloud in its config).",
            evidence,
            [FixStep("Turn cloud models back on where the server runs, then restart it.",
                     (R.systemd_unset("OLLAMA_NO_CLOUD"),
                      *R.systemd_restart())), local], code=403)
    if status == 429:
        evidence["retry_after"] = reply.headers.get("retry-after")
        return Finding(
            "rate-limited", Severity.ERROR,
            f"Ollama Cloud refuses calls for {model}: the account's usage limit is reached "
            f"(429 {message[:200]!r}); local Ollama never sends 429.", evidence,
            [FixStep("Wait for the quota to reset or upgrade the plan "
                     "(https://ollama.com/upgrade)."), local], code=429)
    if status == 502:
        # cloud_proxy.go: the relay to ollama.com failed; the body is Go's *url.Error text.
        return Finding(
            "bad-gateway", Severity.ERROR,
            f"The server at {api} could not reach Ollama Cloud for {model}: 502 "
            f"{message[:300]!r}. The server relays cloud models to ollama.com, and that hop "
            "failed (DNS, firewall, or the server's own proxy settings).", evidence,
            [FixStep("Check that the server's machine reaches ollama.com (with HTTPS_PROXY "
                     "in the server's environment if it needs a proxy).",
                     (R.curl("https://ollama.com", extra="-sI"),
                      R.systemd_edit("HTTPS_PROXY", "http://PROXY_HOST:PORT"))),
             local], code=502)
    cause = classify_server_error(status, message)
    return Finding(cause, Severity.ERROR,
                   f"A one-token call for the cloud model {model} got {status} {message!r}.",
                   evidence, [local], code=status)


def _probe(r: _Run) -> Outcome:
    ctx = r.ctx

    before, ps_reply = r.ps()
    r.facts["ps_before"] = before.to_dict() if before else None
    if not ps_reply.ok:
        r.facts["ps_error"] = ps_reply.describe()
    r.facts["loaded_before"] = before is not None
    r.keep_alive = keep_alive_for(before.expires_in_s if before else None)
    r.facts["keep_alive_sent"] = r.keep_alive
    r.embedding = _embedding_only(r)
    r.facts["warmed_with"] = "/api/embed" if r.embedding else "/api/generate"

    loaded = before is not None
    r.checkpoint(f"{_state_before(r, ps_reply)}; the load had not finished")
    if ctx.options.cold and loaded:
        stop = _unload(r)
        if stop is not None:
            return stop
        loaded = False
    r.facts["unloaded"] = ctx.options.cold and before is not None

    # 3. the load, timed here: the answer to a load-only request carries no load_duration
    load = _load_only(r)
    r.facts["load_s"] = round(load.elapsed_ms / 1000, 3)
    if (not load.ok and load.status == 400 and not r.embedding
            and "does not support generate" in (load.error_message() or "")):
        r.embedding = True  # /api/show did not say so; generate just did
        r.facts["warmed_with"] = "/api/embed"
        load = _load_only(r)
        r.facts["load_s"] = round(load.elapsed_ms / 1000, 3)
    if not load.ok:
        return _load_failed(r, load)
    load_s = load.elapsed_ms / 1000
    if not loaded:
        r.facts["load_kind"] = "cold"
    elif is_reload(load_s):
        r.facts["load_kind"] = "reload"
    else:
        r.facts["load_kind"] = "warm"
    _checkpoint_load(r, load_s)

    # 4. two warm calls: first-token time, speed, and whether they reload
    calls = _warm_calls(r)
    r.checkpoint(f"{_summary(r)}; /api/ps after the warm calls had not answered")
    after, _ = r.ps()
    r.facts["ps"] = after.to_dict() if after else None

    r.provisional_facts, r.provisional = {}, []  # judged for real now
    if r.facts["load_kind"] in ("cold", "reload"):
        _judge_load_time(r, load_s)
    else:
        r.facts["client_timeout"] = {"given": ctx.options.client_timeout,
                                     "compared": False,
                                     "why": "the model was already loaded; --cold times a "
                                            "true cold load"}
    _judge_churn(r, before, after, load_s, calls)
    if after is not None:
        _judge_offload(r, after)
    if calls and after is not None and not r.embedding:
        _truncation_test(r, after, calls[0])
    return _outcome(r)


def _state_before(r: _Run, ps_reply: net.HttpReply) -> str:
    if r.facts["loaded_before"]:
        return f"{r.model} was loaded already"
    if ps_reply.ok:
        return f"{r.model} was not loaded"
    return f"{r.model}'s state is unknown (/api/ps: {ps_reply.describe()})"


def _checkpoint_load(r: _Run, load_s: float) -> None:
    """The load is timed: with its judgement against the client's timeout (made for real
    after the warm calls, whose findings come first), it is what a cut probe keeps."""
    if r.facts["load_kind"] in ("cold", "reload"):
        scratch = dataclasses.replace(r, facts={"load_kind": r.facts["load_kind"]},
                                      findings=[])
        _judge_load_time(scratch, load_s)
        del scratch.facts["load_kind"]
        r.provisional_facts, r.provisional = scratch.facts, scratch.findings
    r.checkpoint(f"{_summary(r)}; the warm calls had not finished")


def _embedding_only(r: _Run) -> bool:
    show = r.call("POST", "/api/show", {"model": r.model})
    data = show.json()
    caps = data.get("capabilities") if show.ok and isinstance(data, dict) else None
    if isinstance(caps, list):
        r.facts["capabilities"] = [c for c in caps if isinstance(c, str)][:20]
        return "completion" not in caps and "embedding" in caps
    return False


def _load_body(r: _Run, keep_alive: str | int) -> tuple[str, dict[str, Any]]:
    if r.embedding:
        return "/api/embed", {"model": r.model, "input": [], "keep_alive": keep_alive}
    return "/api/generate", {"model": r.model, "prompt": "", "stream": False,
                             "keep_alive": keep_alive}


def _unload(r: _Run) -> Outcome | None:
    path, body = _load_body(r, 0)
    reply = r.call("POST", path, body)
    r.facts["unload"] = reply.describe()
    if not reply.ok:
        return _load_failed(r, reply, during="unloading")
    # The unload is asynchronous on the server: wait until /api/ps stops listing the model,
    # for at most 10 s and never past the run's deadline (the load after it is the slow part).
    wait = min(10.0, r.ctx.options.load_timeout)
    left = r.ctx.remaining()
    if left is not None:  # (time spent waiting on a load's headers moves the deadline: limit)
        wait = min(wait, max(left + net.excused(threading.get_ident()), 0.0))
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        entry, _ = r.ps()
        if entry is None:
            return None
        r.ctx.sleep(0.05)
    r.facts["unload_pending"] = True  # still listed: the load below may be partly warm
    return None


def _load_only(r: _Run) -> net.HttpReply:
    path, body = _load_body(r, r.keep_alive)
    return r.call("POST", path, body, timeout=r.ctx.options.load_timeout)


def _warm_calls(r: _Run) -> list[dict[str, Any]]:
    """Two identical warm calls; each one's timings. Stops at the first that fails."""
    out: list[dict[str, Any]] = []
    for _ in range(2):
        if r.embedding:
            reply = r.call("POST", "/api/embed",
                           {"model": r.model, "input": "warm-up", "keep_alive": r.keep_alive},
                           timeout=r.ctx.options.load_timeout)
            if not reply.ok:
                if r.out_of_time(reply.status, reply.error):
                    raise _OutOfTime(f"reading the answer to warm call {len(out) + 1}")
                _call_failed(r, reply.status, reply.error_message() or reply.snippet(),
                             reply.error, {"embed": reply.to_evidence()})
                break
            data = reply.json() if isinstance(reply.json(), dict) else {}
            out.append({"total_ms": round(reply.elapsed_ms, 1),
                        "load_duration_ms": round(_ns(data, "load_duration") / 1e6, 1),
                        "prompt_eval_count": _ns(data, "prompt_eval_count")})
            continue
        stream = r.stream({"model": r.model, "prompt": WARM_PROMPT, "stream": True,
                           "options": {"num_predict": 1}, "keep_alive": r.keep_alive},
                          r.ctx.options.load_timeout, on_headers=_on_warm_headers(r, out))
        if stream.status == 200 and stream.error is not None and stream.stream_error is None:
            if r.out_of_time(stream.status, stream.error):
                raise _OutOfTime(f"reading the answer to warm call {len(out) + 1}")
            _stream_cut(r, stream)
            break
        if stream.error is not None or stream.status != 200 or stream.stream_error is not None:
            message = stream.stream_error or stream.body_error or (
                stream.error.message if stream.error else "")
            _call_failed(r, None if stream.stream_error else stream.status, message,
                         stream.error, {"generate": stream.to_evidence()},
                         mid_stream=stream.stream_error is not None)
            break
        final = stream.final
        seen = v1.thinking_exhausted(final, budget=1, capabilities=r.facts.get("capabilities"))
        if not out and seen:  # a reasoning model: a small budget returns empty content
            r.findings.append(v1.thinking_finding(seen, r.model))
        eval_count, eval_ns = _ns(final, "eval_count"), _ns(final, "eval_duration")
        out.append({
            "first_chunk_ms": (None if stream.first_chunk_ms is None
                               else round(stream.first_chunk_ms, 1)),
            "load_duration_ms": round(_ns(final, "load_duration") / 1e6, 1),
            "tokens_per_s": round(eval_count / eval_ns * 1e9, 1) if eval_ns else None,
            "prompt_eval_count": _ns(final, "prompt_eval_count"),
            "prompt_eval_ms": round(_ns(final, "prompt_eval_duration") / 1e6, 1),
        })
    if out:
        first = out[0]
        timing = "total_ms" if "total_ms" in first else "first_chunk_ms"
        r.facts[timing] = first[timing]
        r.facts["tokens_per_s"] = first.get("tokens_per_s")
        r.facts["prompt_eval_count"] = first["prompt_eval_count"]
        r.facts["warm_load_ms"] = [c["load_duration_ms"] for c in out]
    r.facts["warm_calls"] = out
    return out


def _on_warm_headers(r: _Run, done: list[dict[str, Any]]) -> Callable[[Stream], None]:
    """A warm call's headers are in: say so in the partial outcome (no token has come yet),
    with the timings of the warm calls ``done`` before it."""
    def seen(stream: Stream) -> None:
        headers_ms = round(stream.headers_ms or 0.0, 1)
        call = len(done) + 1
        extra: dict[str, Any] = {"warm_calls": list(done)} if done else {}
        r.checkpoint(f"{_summary(r)}; warm call {call} answered HTTP {stream.status} "
                     f"after {headers_ms:g} ms, then no complete answer",
                     warm_call_pending={"call": call, "status": stream.status,
                                        "headers_ms": headers_ms}, **extra)
    return seen


# -- failures ---------------------------------------------------------------------------------


def _load_failed(r: _Run, reply: net.HttpReply, during: str = "loading") -> Outcome:
    ctx = r.ctx
    if r.out_of_time(reply.status, reply.error):
        raise _OutOfTime("reading the answer to the "
                         f"{'unload' if during == 'unloading' else 'load'}")
    evidence = {"request": reply.to_evidence()}
    if reply.error is not None and reply.error.kind == "read-timeout" and reply.status is None:
        limit = ctx.options.load_timeout
        r.findings.append(Finding(
            "slow-model-load", Severity.ERROR,
            f"{r.model} did not finish loading within {limit:g} s (--load-timeout); clients "
            "with shorter timeouts abort the load on every try.",
            evidence, [
                FixStep("Find out what the server is doing: Ollama logs the load and its "
                        "own 5-minute stall timeout.", (R.journal(),)),
                FixStep("If the load is slow but progressing, let it take longer in the "
                        "server's environment,", (R.env_line("OLLAMA_LOAD_TIMEOUT", "15m"),)),
                FixStep("and wait longer here.",
                        (R.sh(f"ollama-doctor probe warmup -m {R.q(r.model)} "
                              f"--load-timeout {int(limit * 3)}"),)),
                *_preload_fix(r),
            ]))
        return _outcome(r, f"{r.model} did not load within {limit:g} s")
    if reply.error is not None:
        r.findings.append(Finding(
            "server-error", Severity.ERROR,
            f"The connection failed while {during} {r.model}: {reply.error.message}.",
            evidence, confidence=Confidence.MEDIUM))
        return _outcome(r, f"{during} {r.model} failed: {reply.error.kind}")
    message = reply.error_message() or reply.snippet()
    _call_failed(r, reply.status, message, None, evidence, during=during)
    return _outcome(r, f"{during} {r.model} failed: HTTP {reply.status}")


def _stream_cut(r: _Run, stream: Stream) -> None:
    """A 200 stream that broke off without an error line: a network event, not an answer."""
    assert stream.error is not None
    seconds = stream.elapsed_ms / 1000
    evidence = {"generate": stream.to_evidence(), "server": stream.intermediary}
    if stream.intermediary:
        r.findings.append(Finding(
            "gateway-timeout", Severity.ERROR,
            f"'{stream.intermediary}' in front of Ollama cut a streamed answer from {r.model} "
            f"off after {seconds:.1f} s while the model was still generating "
            f"({stream.error.message}): its read timeout is shorter than the wait between "
            "tokens.", evidence,
            [FixStep("Give the proxy a read timeout longer than the slowest call, and let it "
                     "pass the stream through unbuffered.",
                     (R.nginx("proxy_read_timeout 600s;"), R.nginx("proxy_buffering off;")))],
            Confidence.MEDIUM))
        return
    r.findings.append(Finding(
        "server-error", Severity.ERROR,
        f"A streamed answer from {r.model} broke off after {seconds:.1f} s without an error "
        f"line ({stream.error.message}); the server log says why.", evidence,
        [FixStep("Read the server log for that moment.", (R.journal(),))],
        Confidence.MEDIUM))


def _call_failed(r: _Run, status: int | None, message: str, error: net.NetError | None,
                 evidence: dict[str, Any], *, during: str = "generating with",
                 mid_stream: bool = False) -> None:
    if error is not None and status is None and not mid_stream:
        kind = "slow-model-load" if error.kind == "read-timeout" else "server-error"
        r.findings.append(Finding(
            kind, Severity.ERROR,
            f"A one-token call to {r.model} failed: {error.message}.", evidence,
            confidence=Confidence.MEDIUM))
        return
    cause = classify_server_error(status, message)
    where = "in the middle of the stream (HTTP 200)" if mid_stream else f"with HTTP {status}"
    text = f"Ollama answered {during} {r.model} {where}: {message[:300]!r}"
    fix: list[FixStep] = []
    # A mid-stream error arrives on HTTP 200: no status was observed for it, so the
    # catalogue's typical code (500 for a crash) stands in.
    code = status if status and status > 0 and not mid_stream else None
    severity = Severity.ERROR
    if cause == "out-of-memory":
        text += " — the model does not fit in the memory available to the server."
        fix = [FixStep("Use a smaller model or quantisation, or a smaller context (in the "
                       "server's environment).",
                       (R.env_line("OLLAMA_CONTEXT_LENGTH", "4096"),
                        R.env_line("OLLAMA_FLASH_ATTENTION", "1"),
                        R.env_line("OLLAMA_KV_CACHE_TYPE", "q8_0"))),
               r.free_memory_fix("memory")]
    elif cause == "runner-crashed":
        text += " — the model runner crashed; the server log says why."
        fix = [FixStep("Read the server log around the crash (exit status, CUDA errors).",
                       (R.journal(),)),
               FixStep("Upgrade Ollama, or try a smaller model or quantisation.",
                       (R.sh(f"ollama run {R.q(r.model)} ''"),))]
    elif cause == "slow-model-load":
        text += " — the server's own load timeout (OLLAMA_LOAD_TIMEOUT, 5 m) expired."
        fix = [FixStep("Give slow loads more time in the server's environment,",
                       (R.env_line("OLLAMA_LOAD_TIMEOUT", "15m"),)),
               FixStep("and read why it stalls.", (R.journal(),))]
    elif cause == "server-busy":
        text += " — the queue of calls waiting for a model load is full."
        fix = [FixStep("Limit how many calls wait for a load at once, keep the model loaded,",
                       (_preload_command(r),)),
               FixStep("or raise the queue in the server's environment.",
                       (R.env_line("OLLAMA_MAX_QUEUE", "1024"),))]
    elif cause == "model-capability":
        text += " — this model cannot serve that kind of call."
        fix = [FixStep("Check what the model can do.", (R.sh(f"ollama show {R.q(r.model)}"),))]
    elif cause == "model-not-found":
        fix = [FixStep("Pull the exact name, or pick one ollama list shows.",
                       (R.pull(r.model), R.sh("ollama list")))]
    r.findings.append(Finding(cause, severity, text, evidence, fix, Confidence.HIGH, code))


# -- judging ----------------------------------------------------------------------------------


def _preload_command(r: _Run) -> R.Command:
    return R.preload(r.api, r.model, embedding=r.embedding)


def _preload_fix(r: _Run) -> list[FixStep]:
    return [FixStep("Preload the model once with a client that waits, and keep it loaded "
                    "(keep_alive -1 = until the server stops),", (_preload_command(r),)),
            FixStep("or keep every model loaded, in the server's environment.",
                    (R.env_line("OLLAMA_KEEP_ALIVE", "-1"),))]


def _judge_load_time(r: _Run, load_s: float) -> None:
    ctx = r.ctx
    given = ctx.options.client_timeout
    need = recommended_timeout(load_s)
    what = "A cold load" if r.facts.get("load_kind") == "cold" else "A reload"
    comparison: dict[str, Any] = {"given": given, "load_s": round(load_s, 3),
                                  "recommended_s": need}
    r.facts["client_timeout"] = comparison
    raise_fix = [FixStep(
        f"Raise the client's timeout to at least {need} s (1.25 × the {load_s:.1f} s load, "
        "rounded up).",
        (R.python(f"ollama.Client(host={r.api!r}, timeout={need})"),
         R.python(f"OpenAI(base_url={r.api + '/v1'!r}, api_key='ollama', timeout={need})"))),
        FixStep("and in a reverse proxy in front of Ollama (nginx):",
                (R.nginx(f"proxy_read_timeout {need}s;"),))]
    stream_fix = FixStep(
        "Stream responses (\"stream\": true): headers still wait for the load, but then the "
        "wait is the load alone, not the load plus the whole answer.")
    fixes = [*raise_fix, *_preload_fix(r), stream_fix]
    never = ("Retrying with the same timeout cannot succeed: each time the client hangs up, "
             "Ollama aborts the load.")
    client = ctx.client
    if given is not None:
        comparison["compared"] = True
        if load_s > given:
            retries = ""
            evidence: dict[str, Any] = {"load_s": round(load_s, 3), "client_timeout_s": given,
                                        "recommended_timeout_s": need}
            if client.retries:  # openai's SDKs: DEFAULT_MAX_RETRIES = 2
                retries = (f" {client.label} retries {client.retries} times by itself, and "
                           "each retry aborts the load and starts it again: the call fails "
                           f"after {client.retries + 1} × {given:g} s.")
                comparison["client_retries"] = evidence["client_retries"] = client.retries
                evidence["client"] = client.name
            r.findings.append(Finding(
                "slow-model-load", Severity.ERROR,
                f"{what} of {r.model} takes {load_s:.1f} s, longer than the client's "
                f"{given:g} s timeout. {never}{retries}", evidence, fixes))
        elif load_s > 0.8 * given:
            r.findings.append(Finding(
                "slow-model-load", Severity.WARNING,
                f"{what} of {r.model} takes {load_s:.1f} s, close to the client's {given:g} s "
                "timeout: a busier disk or machine pushes it over.",
                {"load_s": round(load_s, 3), "client_timeout_s": given,
                 "recommended_timeout_s": need}, fixes, Confidence.MEDIUM))
        return
    comparison["compared"] = False
    late = clients_timing_out(load_s)
    comparison["defaults_exceeded"] = [c.family for c in late]
    if late:
        names = ", ".join(f"{c.family} ({c.timeout_s:g} s)" for c in late)
        r.findings.append(Finding(
            "slow-model-load", Severity.WARNING,
            f"{what} of {r.model} takes {load_s:.1f} s: clients left at their default "
            f"timeouts would give up first — {names}. {never} Give --client-timeout to "
            "compare with yours.",
            {"load_s": round(load_s, 3), "client_timeout_s": None,
             "defaults_exceeded": [{"family": c.family, "timeout_s": c.timeout_s,
                                    "note": c.note} for c in late],
             "recommended_timeout_s": need}, fixes, Confidence.MEDIUM))


def _judge_churn(r: _Run, before: PsEntry | None, after: PsEntry | None, load_s: float,
                 calls: list[dict[str, Any]]) -> None:
    """Reloads the doctor can see without knowing the user's options.

    - The model was loaded (by the user's client) and a call with default options reloaded
      it: the runner's options differ from a default call's (``needsReload``,
      docs/ollama-wire.md §1.5), so clients that alternate the two reload every time.
      ``/api/ps`` showing another context length afterwards proves it.
    - Two identical, consecutive warm calls that each spent seconds in ``load_duration``:
      something between them keeps reloading the model.
    """
    warm = [c["load_duration_ms"] / 1000 for c in calls]
    r.facts["reload_threshold_s"] = RELOAD_S
    ctx_before = before.context_length if before else None
    ctx_after = after.context_length if after else None
    evidence: dict[str, Any] = {"load_s": round(load_s, 3), "warm_load_s": warm,
                                "context_before": ctx_before, "context_after": ctx_after}
    reloads = [s for s in warm if is_reload(s)]
    same = ctx_before or ctx_after or 8192
    fix = [FixStep("Make every client send the same options (num_ctx above all) — or none,",
                   (R.json_line(f'"options": {{"num_ctx": {same}}}'),)),
           FixStep("and set the context once, in the server's environment.",
                   (R.env_line("OLLAMA_CONTEXT_LENGTH", str(same)),)),
           FixStep("Check that no client sends keep_alive 0 and that other models do not "
                   "evict this one.", (R.sh("ollama ps"),))]
    if len(warm) >= 2 and len(reloads) == len(warm):
        r.findings.append(Finding(
            "reload-churn", Severity.WARNING,
            f"Two identical consecutive calls to {r.model} each spent "
            f"{min(warm):.1f} s or more reloading it: something reloads the model between "
            "calls (clients with differing options, or other models evicting it).",
            evidence, fix, Confidence.HIGH))
        return
    if r.facts.get("load_kind") == "reload":
        changed = ctx_before is not None and ctx_after is not None and ctx_before != ctx_after
        detail = (f" (context {ctx_before} → {ctx_after})" if changed else "")
        r.findings.append(Finding(
            "reload-churn", Severity.WARNING,
            f"{r.model} was loaded, yet a call without options reloaded it in {load_s:.1f} s"
            f"{detail}: clients that send different options (num_ctx, num_gpu …) reload the "
            "model each time they alternate.",
            evidence, fix, Confidence.HIGH if changed else Confidence.MEDIUM))
        return
    if reloads:
        r.findings.append(Finding(
            "reload-churn", Severity.WARNING,
            f"A warm call to {r.model} spent {max(reloads):.1f} s reloading it: another client "
            "changed the model's options or evicted it in between.",
            evidence, fix, Confidence.MEDIUM))


def _judge_offload(r: _Run, entry: PsEntry) -> None:
    if entry.size <= 0:
        return  # nothing in memory to place (the CLI's "100% CPU" would mislead here)
    share = cpu_percent(entry.size, entry.size_vram)
    if share is None or share == 0:
        return
    gib = entry.size / (1 << 30)
    evidence = {"ps": entry.to_dict(), "other_loaded": r.others}
    smaller = max(2048, (entry.context_length or 8192) // 2)
    ctx_line = R.env_line("OLLAMA_CONTEXT_LENGTH", str(smaller))
    if entry.size_vram == 0:
        message = (f"{r.model} runs 100% CPU ({gib:.1f} GiB in system memory, none on a GPU): "
                   "no usable GPU was found, or the model does not fit on it.")
        fix = [FixStep("Check the GPU the server found: look for 'inference compute' lines in "
                       "its log (library=cpu means no GPU).",
                       (R.journal(),
                        R.sh("nvidia-smi"))),
               FixStep("If there is a GPU, use a smaller model, quantisation or context so it "
                       "fits (in the server's environment).", (ctx_line,))]
        if r.others:  # they may hold the VRAM this model did not get
            fix.append(r.free_memory_fix("VRAM"))
    else:
        message = (f"{r.model} runs {entry.processor} ({share}% of its {gib:.1f} GiB in system "
                   "memory): it does not fit in VRAM, so every token is slower.")
        fix = [FixStep("Make it fit: a smaller quantisation or model, a smaller context, or a "
                       "quantised KV cache (in the server's environment).",
                       (ctx_line, R.env_line("OLLAMA_FLASH_ATTENTION", "1"),
                        R.env_line("OLLAMA_KV_CACHE_TYPE", "q8_0"))),
               r.free_memory_fix("VRAM")]
    r.findings.append(Finding("gpu-offload", Severity.WARNING, message, evidence, fix,
                              Confidence.HIGH))


def _truncation_test(r: _Run, entry: PsEntry, first: dict[str, Any]) -> None:
    """Compare ``--prompt-tokens`` with the loaded context; when the prompts are longer and
    the test is cheap, send a prompt longer than the context and see whether it is cut.

    Without ``--prompt-tokens`` nothing is sent: the doctor does not know how long the user's
    prompts are, and the test may cost seconds on every run. The test prompt is 1.5 × the
    context (not the user's N tokens): that is enough to see the cut or the refusal, and it
    costs the same whatever N is, since a cut prompt is evaluated up to the context only.
    """
    ctx_len = entry.context_length
    wanted = r.ctx.options.prompt_tokens
    info: dict[str, Any] = {"ran": False, "context_length": ctx_len}
    r.facts["truncation"] = info
    if wanted is None:
        info["why"] = "not asked: --prompt-tokens N compares your prompts with the context"
        return
    info["prompt_tokens"] = wanted
    if ctx_len is None:
        info["why"] = "/api/ps gives no context_length (Ollama older than 0.10)"
        return
    info["fits"] = wanted <= ctx_len
    if info["fits"]:
        info["why"] = f"prompts of {wanted} tokens fit the {ctx_len}-token context"
        return
    why = _truncation_skipped(ctx_len, first, info)
    if why is not None:
        info["why"] = why
        _prompts_too_long(r, ctx_len, wanted, info, f"No test prompt was sent: {why}.")
        return
    words = int(ctx_len * 1.5)
    r.checkpoint(f"{_summary(r)}; the prompt-truncation test had not finished")
    stream = r.stream({"model": r.model, "prompt": long_prompt(words), "stream": True,
                       "options": {"num_predict": 1}, "keep_alive": r.keep_alive},
                      max(r.quick, 4 * TRUNCATION_BUDGET_S))
    info.update({"ran": True, "words_sent": words})
    head = _too_long(r, ctx_len, wanted)
    # The runner cuts a long prompt and logs "truncating input prompt" (runner.go), unless
    # context shift is off: then v0.30+ answers 400 "the prompt is longer than the context
    # length …" (llm/llama_server.go).
    message = stream.stream_error or stream.body_error or ""
    if stream.status == 400 and classify_server_error(400, message) == "prompt-truncated":
        info["rejected"] = message[:300]
        r.findings.append(Finding(
            "prompt-truncated", Severity.WARNING,
            f"{head}, and the server rejects such prompts (HTTP 400) unless the client asks "
            "for a larger context.",
            {"truncation": info}, _ctx_fix(wanted), Confidence.HIGH, 400))
        return
    if stream.final is None:
        info["result"] = stream.to_evidence()
        _prompts_too_long(r, ctx_len, wanted, info,
                          "The test prompt got no complete answer, so how the server treats "
                          "them was not seen.")
        return
    count = _ns(stream.final, "prompt_eval_count")
    info["prompt_eval_count"] = count
    if is_truncated(count, ctx_len):
        r.findings.append(Finding(
            "prompt-truncated", Severity.WARNING,
            f"{head}, and the server cuts longer prompts without an error: a {words}-word "
            f"test prompt was evaluated as {count} tokens. Send a larger options.num_ctx.",
            {"truncation": info}, _ctx_fix(wanted), Confidence.HIGH))
    elif count == 0:  # no count to judge by (a cached prompt, or a server that omits it)
        _prompts_too_long(r, ctx_len, wanted, info,
                          "The test prompt's answer gave no prompt_eval_count to judge by.")
    # else: all of it was evaluated; the server holds more than /api/ps says — no finding


def _truncation_skipped(ctx_len: int, first: dict[str, Any], info: dict[str, Any]) -> str | None:
    """Why the live test is not worth its cost here, or ``None`` when it is cheap."""
    if ctx_len > TRUNCATION_MAX_CTX:
        return f"a context of {ctx_len} tokens makes a longer prompt too costly to send"
    cost = truncation_cost_s(ctx_len, first.get("prompt_eval_count", 0),
                             first.get("prompt_eval_ms", 0.0) / 1000)
    info["estimated_s"] = None if math.isinf(cost) else round(cost, 2)
    if math.isinf(cost):
        return "the warm call gave no prompt speed to estimate its cost by"
    if cost > TRUNCATION_BUDGET_S:
        return (f"the server's prompt speed makes a {ctx_len}-token prompt cost more than "
                f"{TRUNCATION_BUDGET_S:g} s")
    return None


def _prompts_too_long(r: _Run, ctx_len: int, wanted: int, info: dict[str, Any],
                      untested: str) -> None:
    """``--prompt-tokens`` above the context, not seen on the wire: MEDIUM confidence."""
    r.findings.append(Finding(
        "prompt-truncated", Severity.WARNING,
        f"{_too_long(r, ctx_len, wanted)}: Ollama cuts such prompts without an error, or "
        f"refuses them (HTTP 400), unless the client asks for a larger context. {untested}",
        {"truncation": info}, _ctx_fix(wanted), Confidence.MEDIUM))


def _too_long(r: _Run, ctx_len: int, wanted: int) -> str:
    """The head of every ``prompt-truncated`` message from ``--prompt-tokens``."""
    return (f"Your prompts ({wanted} tokens) are longer than the {ctx_len}-token context "
            f"{r.model} is loaded with")


def _ctx_fix(wanted: int) -> list[FixStep]:
    """Ask for a context holding the prompts and room for an answer (1024 tokens): the next
    power of two, 8192 at least."""
    bigger = max(8192, 1 << (wanted + 1024 - 1).bit_length())
    return [FixStep("Ask for a context that holds your prompts, per call",
                    (R.json_line(f'"options": {{"num_ctx": {bigger}}}'),)),
            FixStep("or as the server's default (in its environment).",
                    (R.env_line("OLLAMA_CONTEXT_LENGTH", str(bigger)),))]


def _outcome(r: _Run, summary: str | None = None) -> Outcome:
    return Outcome.from_findings(_summary(r) if summary is None else summary, r.facts,
                                 r.findings)


def _summary(r: _Run) -> str:
    f = r.facts
    kind = f.get("load_kind")
    if kind == "cold":
        head = f"{r.model} loaded cold in {f['load_s']:.2f} s"
    elif kind == "reload":
        head = f"{r.model} was reloaded in {f['load_s']:.2f} s"
    else:
        head = f"{r.model} was already loaded"
    parts = [head]
    if f.get("first_chunk_ms") is not None:
        parts.append(f"first token {f['first_chunk_ms']:.0f} ms")
    elif f.get("total_ms") is not None:
        parts.append(f"answered in {f['total_ms']:.0f} ms")
    if f.get("tokens_per_s"):
        parts.append(f"{f['tokens_per_s']:g} tokens/s")
    ps = f.get("ps")
    if isinstance(ps, dict):
        parts.append(str(ps.get("processor")))
    return ", ".join(parts)
