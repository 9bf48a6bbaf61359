"""``latency``: how long a call takes on the path to the server, how steady it is, and TLS.

Sampling
--------
``--samples N`` (default 5) requests ``GET {root}/api/version``, the cheapest call Ollama answers,
on **fresh connections** (a new client each time, so each pays name resolution, TCP connect and
TLS, like a client that does not reuse connections), interleaved with N requests on **one
kept-alive connection** (opened by a warm-up request that is not counted, so these pay only the
round trip and the server). The probe dials one address: the first resolved address that the
reachability probe could connect to (address-family fallbacks are the dns probe's business).

Phases carry blackbox_exporter's names and are timed from httpcore's trace events
(``extensions={"trace": …}``):

- ``resolve``: ``getaddrinfo`` for the host name, each fresh sample (absent for IP literals);
- ``connect``: ``connection.connect_tcp.started`` → ``.complete``;
- ``tls``: ``connection.start_tls.started`` → ``.complete`` (``https`` only);
- ``processing``: connection ready (or, on the kept-alive connection, ``http11.
  send_request_headers.started``) → ``http11.receive_response_headers.complete``;
- ``transfer``: response headers → ``http11.receive_response_body.complete``;
- ``ttfb``: resolve plus connect start → response headers: what ``curl -w
  '%{time_starttransfer}'`` reports; ``total``: ``ttfb`` + ``transfer``.

Each phase gets ``min``, ``median``, ``p95`` (nearest rank: with 5 samples it is the max),
``max`` and ``jitter``, all in milliseconds. **Jitter** is the mean absolute difference between
consecutive samples, in the order they were taken (RFC 3550's inter-arrival jitter without its
1/16 smoothing). A failed sample is counted with its error kind (``net.ErrorKind``, or
``http-NNN`` for a non-2xx answer) and the phase it failed in.

Every request is bounded by ``ctx.op_timeout()``. Before each sample the probe compares what is
left of the run's deadline (``ctx.remaining()``) with the slowest sample so far, and stops early
when another would not fit; ``stopped_early`` and the summary say so. A sample cut short by the
deadline itself is dropped, not counted as a failure.

Thresholds for ``high-latency``
-------------------------------
The limit applies to the **median time to first byte over fresh connections**; the target's
class comes from the address dialled:

=========================================================  ===========  ==========
target class                                               median TTFB  jitter
=========================================================  ===========  ==========
``loopback`` (127.0.0.0/8, ::1, ``localhost``)             50 ms        25 ms
``private`` (RFC 1918, ULA fc00::/7, link-local)           200 ms       100 ms
``remote`` (anything else)                                 1000 ms      500 ms
=========================================================  ===========  ==========

``--latency-threshold MS`` replaces the median limit; the jitter limit is always half of it.
Median over the limit → ``warning``. Jitter over its limit → ``warning``, judged on the smaller
of the fresh and the kept-alive series' jitter (one stall in one series is not a jittery path);
for a loopback target under the default limit it is only a note (``info``): there is no network
path, so the variation is a busy server or machine. Failed samples: any → ``warning``; 50 % or
more → ``error`` (calls break). A first byte slower than ``--client-timeout`` → ``error`` (that
call would have timed out in the user's client). All reasons go into one ``high-latency``
finding, whose severity is the worst of them.

TLS
---
For ``https`` targets the client is built like httpx's default (what ollama-python uses): the
CA file in ``SSL_CERT_FILE`` (or directory in ``SSL_CERT_DIR``), else certifi's bundle. When
reachability passed, ``tls`` facts hold the protocol version, cipher and the certificate
(subject, issuer, validity, subjectAltName). When reachability failed in a way TLS can explain,
this probe looks closer with ``ssl`` sockets, without sampling:

- ``https`` and verification fails → ``tls-error``, naming the issuer the client saw (the peer
  certificate is fetched again without verification and decoded here). A chain that does not
  lead to a CA the client trusts points to a TLS-intercepting proxy (named when the issuer is a
  known product) or a private CA; the fix installs that CA (``SSL_CERT_FILE`` /
  ``REQUESTS_CA_BUNDLE``). Expired certificates and name mismatches are told apart.
- ``https`` and the port answers plain HTTP → ``wrong-port-scheme`` (proved by a plain request).
- ``http`` and the port completes a TLS handshake → ``wrong-port-scheme`` (use ``https``).
- ``SSL_CERT_FILE`` naming a file that cannot be loaded → ``tls-error``: httpx-based clients
  fail as they are created, whatever the scheme.

For any other reachability failure the probe skips (nothing to time).

The client's path
-----------------
Samples go along the path the chosen client takes (``Context.route``, ``--client``): when its
proxy applies to the target, every sample is sent through that proxy (absolute-form for
``http://``, ``CONNECT`` for ``https://``) to the target's own name, which the proxy resolves,
so ``resolve`` is absent and ``connect`` is the connect to the proxy; for ``https://``,
``tls`` is the handshake with the server inside the ``CONNECT`` tunnel (the ``CONNECT``
exchange itself counts only in ``ttfb``). The summary and the ``path`` fact say which path it was.

An HTTP answer is not a lost request: a sample answered 401, 403, 404 or 5xx got through the
path (its timings count), and it is listed under ``answers`` (status → count), never as a
failure; the probe that owns that status (auth, models, reachability) says why. Only samples
that got no answer at all (refused, reset, timed out) are failures.

Facts: ``url``, ``address``, ``target_class``, ``threshold`` (limits and why), ``samples_wanted``,
``fresh`` and ``kept_alive`` (``count``, ``ok``, per-phase ``phases`` stats, ``ttfb_ms`` and
``total_ms`` series; ``reconnects`` for the kept-alive one), ``failures`` (``count``, ``kinds``,
``phases``, ``first``), ``stopped_early``, ``definitions``, ``ca_bundle`` and ``tls`` for https;
``reachability_tls`` when reachability's TLS check failed but the client's trust store (say,
``SSL_CERT_FILE``) verifies the server, in which case the probe samples as usual; ``answers``
(non-2xx statuses by count); ``path``.

Cause ids: ``high-latency``, ``tls-error``, ``wrong-port-scheme``.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ollama_doctor import net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.facts import ReachabilityFacts

if TYPE_CHECKING:  # annotations only: a refused port loads no HTTP or TLS library
    import ssl

    import httpx
from ollama_doctor.result import (
    Confidence,
    Finding,
    FixStep,
    Outcome,
    ProbeResult,
    Severity,
    Status,
)
from ollama_doctor.target import Target, ip_or_none

PATH = "/api/version"
MAX_BODY = 64 * 1024

PHASES = ("resolve", "connect", "tls", "processing", "transfer")
SERIES = (*PHASES, "ttfb", "total")

#: Median time to first byte (ms) above which a target class counts as slow.
THRESHOLDS_MS: dict[str, float] = {"loopback": 50.0, "private": 200.0, "remote": 1000.0}
JITTER_SHARE = 0.5  # jitter limit = this share of the median limit
FAILED_ERROR_SHARE = 0.5  # this share of failed samples or more → error

CLASS_NAMES = {"loopback": "loopback", "private": "private-network", "remote": "remote"}

_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "169.254.0.0/16", "fe80::/10",  # link-local
    "fc00::/7",  # unique local (ULA)
))

DEFINITIONS = {
    "jitter": "mean absolute difference between consecutive samples, in the order taken (ms)",
    "p95": "nearest rank: the ceil(0.95 × n)-th smallest sample",
    "ttfb": "resolve + connect start → response headers received (curl's time_starttransfer)",
    "processing": "connection ready (or request start on a reused connection) → response "
                  "headers received",
}

# The reachability failures TLS can explain; any other one leaves nothing to time.
_TLS_SUSPECTS = {"tls-error", "wrong-port-scheme", "server-unresponsive", "not-ollama"}

# httpcore trace event prefix → the phase a failure in it belongs to.
_EVENT_PHASE = {
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
    "proxy.start_tls": "tls",  # TLS with the server inside a proxy's CONNECT tunnel
    "http11.send_request_headers": "processing",
    "http11.send_request_body": "processing",
    "http11.receive_response_headers": "processing",
    "http11.receive_response_body": "transfer",
}

# Error kinds (``net.ErrorKind``) as words for messages; the ids stay in the evidence.
KIND_WORDS = {
    "refused": "refused", "connect-timeout": "connect timed out",
    "read-timeout": "no answer in time", "dns": "name did not resolve",
    "unreachable": "unreachable", "reset": "connection reset",
    "protocol": "closed without a complete answer", "proxy": "proxy error",
    "tls-verify": "TLS failed", "tls-plain": "not TLS",
}

# OpenSSL verify codes that mean "the chain does not lead to a CA this client trusts".
_UNTRUSTED_CODES = {2, 18, 19, 20, 21, 24, 27}
_EXPIRED_CODES = {9, 10}  # not yet valid, expired
_NAME_CODES = {62, 63, 64}  # hostname, e-mail, IP address mismatch



# ---------------------------------------------------------------------------------------------
# Pure helpers: statistics, thresholds, target class


def stats(values: list[float]) -> dict[str, float | int] | None:
    """min / median / p95 (nearest rank) / max / jitter of a series, in ms; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {"n": len(values), "min": _r(ordered[0]), "median": _r(median(ordered)),
            "p95": _r(p95), "max": _r(ordered[-1]), "jitter": _r(jitter(values))}


def median(values: list[float]) -> float:
    """The median, as ``statistics.median`` computes it (the mean of the middle two for an even
    count), without importing ``statistics``: its ``fractions`` and ``decimal`` imports cost
    more CPU than a whole sample on loopback."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def jitter(values: list[float]) -> float:
    """Mean absolute difference between consecutive values (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    return sum(abs(b - a) for a, b in itertools.pairwise(values)) / (len(values) - 1)


def target_class(host: str, address: str | None) -> str:
    """``loopback``, ``private`` (RFC 1918, ULA, link-local) or ``remote``, by the address
    dialled (the name when no address is known)."""
    name = host.lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    ip = ip_or_none(address or host)
    if ip is None:
        return "remote"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if any(ip.version == n.version and ip in n for n in _PRIVATE_NETS):
        return "private"
    return "remote"


def thresholds(klass: str, override_ms: float | None) -> dict[str, Any]:
    """The limits used for a target class, and why."""
    limit = override_ms if override_ms is not None else THRESHOLDS_MS[klass]
    source = ("--latency-threshold" if override_ms is not None
              else f"default for a {CLASS_NAMES[klass]} target")
    return {"ttfb_median_ms": limit, "jitter_ms": limit * JITTER_SHARE,
            "failed_warning": "any failed sample",
            "failed_error_share": FAILED_ERROR_SHARE, "source": source,
            "explicit": override_ms is not None}


def _r(value: float) -> float:
    return round(value, 2)


# ---------------------------------------------------------------------------------------------
# One sample


@dataclass
class Sample:
    fresh: bool
    phases: dict[str, float] = field(default_factory=dict)  # ms, only phases that happened
    status: int | None = None
    error: str | None = None  # an ErrorKind, or "http-NNN"
    failed_phase: str | None = None
    message: str | None = None
    reconnected: bool = False
    tls: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def answered(self) -> bool:
        """An HTTP answer arrived (any status): the path worked, and the timings are real."""
        return self.status is not None and "ttfb" in self.phases


class _Tracer:
    """httpcore's trace callback: the first time each event fired, and where a failure was."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.failed: str | None = None
        self.last_started: str | None = None

    def __call__(self, name: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.marks.setdefault(name, now)
        stem = name.rsplit(".", 1)[0]
        if name.endswith(".started"):
            self.last_started = stem
        elif name.endswith(".failed") and self.failed is None:
            self.failed = stem

    def failed_phase(self) -> str | None:
        stem = self.failed or self.last_started
        return _EVENT_PHASE.get(stem or "")

    def span(self, start: str, end: str) -> float | None:
        if start in self.marks and end in self.marks:
            return (self.marks[end] - self.marks[start]) * 1000
        return None


@dataclass
class _Dial:
    """Where and how samples are sent."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]
    resolve_host: str | None  # a name to resolve each fresh sample, None for IP literals
    port: int
    fallback_address: str
    proxied: bool = False  # samples go through the client's proxy


def _sample(client: httpx.Client, dial: _Dial, timeout: float, *, fresh: bool,
            resolve_ms: float | None = None, want_tls: bool = False) -> Sample:
    tracer = _Tracer()
    sample = Sample(fresh)
    try:
        with client.stream("GET", dial.url, headers=dial.headers, timeout=timeout,
                           extensions={**dial.extensions, "trace": tracer}) as response:
            sample.status = response.status_code
            if want_tls:
                sample.tls = _tls_of(response)
            size = 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > MAX_BODY:
                    break
            ended = time.perf_counter()
    except Exception as exc:
        error = net.classify(exc)
        sample.error, sample.message = error.kind, error.message
        sample.failed_phase = tracer.failed_phase()
        return sample
    marks = tracer.marks
    headers_done = marks.get("http11.receive_response_headers.complete", ended)
    body_done = marks.get("http11.receive_response_body.complete", ended)
    phases: dict[str, float] = {}
    if resolve_ms is not None:
        phases["resolve"] = resolve_ms
    connect = tracer.span("connection.connect_tcp.started", "connection.connect_tcp.complete")
    tls = (tracer.span("connection.start_tls.started", "connection.start_tls.complete")
           or tracer.span("proxy.start_tls.started", "proxy.start_tls.complete"))
    if connect is not None:
        phases["connect"] = connect
        sample.reconnected = not fresh
    if tls is not None:
        phases["tls"] = tls
    ready = (marks.get("connection.start_tls.complete")
             or marks.get("proxy.start_tls.complete")
             or marks.get("connection.connect_tcp.complete")
             or marks.get("http11.send_request_headers.started"))
    first = (marks.get("connection.connect_tcp.started")
             or marks.get("http11.send_request_headers.started"))
    if ready is None or first is None:  # no trace at all: an unexpected transport
        sample.error, sample.message = "other", "httpcore sent no trace events"
        return sample
    phases["processing"] = (headers_done - ready) * 1000
    phases["transfer"] = max(0.0, body_done - headers_done) * 1000
    phases["ttfb"] = (resolve_ms or 0.0) + (headers_done - first) * 1000
    phases["total"] = phases["ttfb"] + phases["transfer"]
    sample.phases = phases
    if not 200 <= response.status_code < 300:
        sample.error = f"http-{response.status_code}"
        sample.failed_phase = "processing"
        sample.message = f"HTTP {response.status_code}"
    return sample


def _tls_of(response: httpx.Response) -> dict[str, Any] | None:
    stream = response.extensions.get("network_stream")
    obj = stream.get_extra_info("ssl_object") if stream is not None else None
    if obj is None:
        return None
    cipher = obj.cipher()
    out: dict[str, Any] = {"version": obj.version(), "cipher": cipher[0] if cipher else None}
    cert = obj.getpeercert()
    if cert:
        from ollama_doctor.tlsinfo import cert_from_dict

        out["certificate"] = cert_from_dict(cert)
    return out


# ---------------------------------------------------------------------------------------------
# The probe


def run(ctx: Context) -> Outcome:
    return ctx.on_path(_run(ctx))


def _run(ctx: Context) -> Outcome:
    target = ctx.target
    facts: dict[str, Any] = {"url": target.root_url + PATH,
                             "samples_wanted": ctx.options.samples}
    findings: list[Finding] = []
    verify: ssl.SSLContext | None = None  # plain http: none until a sample needs one
    if target.scheme == "https" or ctx.env.get("SSL_CERT_FILE"):
        verify, bundle, bundle_problem = client_ssl_context(ctx.env)
        if bundle_problem is not None:
            findings.append(bundle_problem)
    else:  # plain http never verifies; loading certifi's bundle per run would cost ~20 ms
        bundle = "none (plain http)"
    if target.scheme == "https":
        facts["ca_bundle"] = bundle

    reach = ctx.result("reachability")
    if reach is not None and not reach.ok:
        early = _after_failed_reachability(ctx, reach, verify, bundle, facts, findings)
        if early is not None:
            return early

    dial = _dial_plan(ctx)
    facts["address"] = dial.fallback_address
    klass = target_class(target.host, dial.fallback_address)
    limits = thresholds(klass, ctx.options.latency_threshold_ms)
    facts["target_class"] = klass
    facts["threshold"] = limits
    facts["definitions"] = DEFINITIONS

    verify = verify or net.no_tls_context()
    fresh, kept, tls_info, stopped = _collect(ctx, dial, verify)
    facts["fresh"] = _series_facts(fresh)
    facts["kept_alive"] = _series_facts(kept)
    facts["kept_alive"]["reconnects"] = sum(1 for s in kept if s.reconnected)
    failed = [s for s in (*fresh, *kept) if not s.ok]
    facts["failures"] = _failure_facts([s for s in failed if not s.answered])
    facts["answers"] = dict(Counter(str(s.status) for s in failed if s.answered))
    facts["stopped_early"] = stopped
    if target.scheme == "https":
        facts["tls"] = tls_info

    if not fresh and not kept:
        why = stopped["reason"] if stopped else "no sample ran"
        return Outcome(Status.FAIL if findings else Status.SKIP, f"skipped: {why}", facts,
                       findings)

    findings.extend(_tls_from_samples(ctx, dial, verify, failed, facts))
    latency = _judge(ctx, fresh, kept, failed, klass, limits, facts)
    if latency is not None:
        findings.append(latency)

    return Outcome.from_findings(_summary(fresh, kept, failed, klass, limits, stopped), facts,
                                 findings)


def _dial_plan(ctx: Context) -> _Dial:
    """The URL, Host header and SNI for samples: dial one address, keep the user's host name."""
    target = ctx.target
    host = target.dial_host
    if ctx.route().proxied:  # the proxy resolves and dials: send the client's own URL
        return _Dial(target.root_url + PATH, ctx.client_headers(with_origin=False), {}, None,
                     target.port, host, proxied=True)
    address: str | None = host if ip_or_none(host) is not None else None
    seen = ctx.facts(ReachabilityFacts)
    if address is None and seen is not None:
        address = seen.working_address
    if address is None:
        res = ctx.resolve(host, target.port)
        address = res.addresses[0] if res.addresses else host
    bracketed = f"[{address}]" if ":" in address else address
    url = f"{target.scheme}://{bracketed}:{target.port}{PATH}"
    headers = ctx.client_headers(with_origin=False)
    extensions: dict[str, Any] = {}
    resolve_host = None
    if ip_or_none(host) is None:
        resolve_host = host
        default = 443 if target.scheme == "https" else 80
        headers["Host"] = host if target.port == default else f"{host}:{target.port}"
        if target.scheme == "https":
            extensions["sni_hostname"] = host
    return _Dial(url, headers, extensions, resolve_host, target.port, address)


def _collect(ctx: Context, dial: _Dial, verify: ssl.SSLContext
             ) -> tuple[list[Sample], list[Sample], dict[str, Any] | None, dict[str, Any] | None]:
    """Fresh and kept-alive samples, interleaved, within the run's deadline."""
    wanted = max(1, ctx.options.samples)
    fresh: list[Sample] = []
    kept: list[Sample] = []
    tls_info: dict[str, Any] | None = None
    slowest = 0.0  # seconds, the slowest sample so far: what the next one may cost

    def room() -> str | None:
        left = ctx.remaining()
        if left is not None and left < max(0.05, 1.5 * slowest):
            return f"the run's deadline left {max(left, 0):.2f} s, too little for another sample"
        return None

    def take(client: httpx.Client, *, is_fresh: bool, want_tls: bool = False) -> Sample | None:
        nonlocal slowest
        timeout = ctx.op_timeout()
        cut = timeout < ctx.options.timeout
        started = time.perf_counter()
        resolve_ms = None
        if is_fresh and dial.resolve_host is not None:
            res = net.resolve(ctx.getaddrinfo, dial.resolve_host, dial.port, timeout)
            if res.error is not None:
                return Sample(True, error=res.error.kind, failed_phase="resolve",
                              message=res.error.message)
            resolve_ms = res.elapsed_ms
        sample = _sample(client, dial, timeout, fresh=is_fresh, resolve_ms=resolve_ms,
                         want_tls=want_tls)
        slowest = max(slowest, time.perf_counter() - started)
        if cut and sample.error in ("read-timeout", "connect-timeout"):
            return None  # the deadline, not the path, ended it
        return sample

    stopped: dict[str, Any] | None = None
    kept_client = _client(ctx, verify, ctx.op_timeout())
    try:
        warm = take(kept_client, is_fresh=False, want_tls=True)
        if warm is not None and warm.tls is not None:
            tls_info = warm.tls
        for _ in range(wanted):
            for is_fresh in (True, False):
                reason = room()
                sample: Sample | None = None
                if reason is None and is_fresh:
                    with _client(ctx, verify, ctx.op_timeout()) as client:
                        sample = take(client, is_fresh=True, want_tls=tls_info is None)
                elif reason is None:
                    sample = take(kept_client, is_fresh=False)
                if sample is None:
                    stopped = {"reason": reason or "the run's deadline cut a sample short",
                               "fresh_done": len(fresh), "kept_alive_done": len(kept),
                               "wanted": wanted}
                    break
                if sample.tls is not None and tls_info is None:
                    tls_info = sample.tls
                (fresh if is_fresh else kept).append(sample)
            if stopped is not None:
                break
    finally:
        kept_client.close()
    return fresh, kept, tls_info, stopped


def _client(ctx: Context, verify: ssl.SSLContext, timeout: float) -> httpx.Client:
    """A client along the user's client's path to the target (``Context.http_client``)."""
    return ctx.http_client(timeout=timeout, verify=verify)


def _series_facts(samples: list[Sample]) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    phases = {name: stats([s.phases[name] for s in ok if name in s.phases]) for name in SERIES}
    return {"count": len(samples), "ok": len(ok),
            "phases": {k: v for k, v in phases.items() if v is not None},
            "ttfb_ms": [_r(s.phases["ttfb"]) for s in ok],
            "total_ms": [_r(s.phases["total"]) for s in ok]}


def _failure_facts(failed: list[Sample]) -> dict[str, Any]:
    first = failed[0] if failed else None
    return {
        "count": len(failed),
        "kinds": dict(Counter(str(s.error) for s in failed)),
        "phases": dict(Counter(s.failed_phase or "unknown" for s in failed)),
        "first": None if first is None else {
            "kind": first.error, "phase": first.failed_phase, "message": first.message,
            "connection": "fresh" if first.fresh else "kept-alive"},
    }


def _judge(ctx: Context, fresh: list[Sample], kept: list[Sample], failed: list[Sample],
           klass: str, limits: dict[str, Any], facts: dict[str, Any]) -> Finding | None:
    """One ``high-latency`` finding holding every reason, or ``None`` when the path is fine."""
    target = ctx.target
    # An HTTP answer (401 from an auth proxy, say) is not a lost request: its owner explains it.
    path_failed = [s for s in failed
                   if not s.answered and s.error not in ("tls-verify", "tls-plain")]
    fresh_ttfb = [s.phases["ttfb"] for s in fresh if s.answered]
    reasons = latency_reasons(
        fresh_ttfb=fresh_ttfb,
        kept_ttfb=[s.phases["ttfb"] for s in kept if s.answered and not s.reconnected],
        every_ttfb=[s.phases["ttfb"] for s in (*fresh, *kept) if "ttfb" in s.phases],
        failed_kinds=[str(s.error) for s in path_failed], total=len(fresh) + len(kept),
        klass=klass, limits=limits, client_timeout_s=ctx.options.client_timeout,
        where=_where(fresh, kept) if fresh_ttfb else "")
    if not reasons:
        return None
    severity = reasons[0][0]
    text = "; ".join(r for _, r in reasons)
    message = f"Calls to {target.root_url} are slow or lossy: {text}."
    statuses = Counter(s.status for s in path_failed if s.status is not None)
    code = statuses.most_common(1)[0][0] if statuses else None
    evidence = {
        "url": facts["url"], "target_class": klass, "threshold": limits,
        "fresh_ttfb_ms": facts["fresh"]["phases"].get("ttfb"),
        "kept_alive_ttfb_ms": facts["kept_alive"]["phases"].get("ttfb"),
        "failures": facts["failures"], "reasons": [r for _, r in reasons],
    }
    return Finding("high-latency", severity, message, evidence, _latency_fix(ctx, fresh, kept),
                   Confidence.HIGH, code)


def latency_reasons(*, fresh_ttfb: list[float], kept_ttfb: list[float],
                    every_ttfb: list[float], failed_kinds: list[str], total: int, klass: str,
                    limits: dict[str, Any], client_timeout_s: float | None,
                    where: str = "") -> list[tuple[Severity, str]]:
    """The ``high-latency`` rules (module docstring), worst first. Pure.

    ``fresh_ttfb``/``kept_ttfb``: first-byte times (ms) of the successful samples, kept-alive
    ones without those that had to reconnect; ``every_ttfb``: every sample that got an answer;
    ``failed_kinds``: one error kind per failed sample; ``total``: samples taken.
    """
    reasons: list[tuple[Severity, str]] = []
    if failed_kinds:
        kinds = Counter(failed_kinds)
        listed = ", ".join(f"{_kind_words(k)} ×{n}" for k, n in kinds.most_common())
        share = len(failed_kinds) / max(total, 1)
        sev = Severity.ERROR if share >= FAILED_ERROR_SHARE else Severity.WARNING
        reasons.append((sev, f"{len(failed_kinds)} of {total} requests to GET {PATH} failed "
                             f"({listed})"))
    if client_timeout_s is not None and every_ttfb and max(every_ttfb) >= client_timeout_s * 1000:
        slow = sum(1 for v in every_ttfb if v >= client_timeout_s * 1000)
        reasons.append((Severity.ERROR,
                        f"{slow} of {len(every_ttfb)} first bytes took longer than your "
                        f"client's {client_timeout_s:g} s timeout (slowest "
                        f"{max(every_ttfb):.0f} ms)"))
    limit = limits["ttfb_median_ms"]
    if fresh_ttfb and median(fresh_ttfb) > limit:
        reasons.append((Severity.WARNING,
                        f"the median time to first byte over fresh connections is "
                        f"{median(fresh_ttfb):.1f} ms, above the {limit:g} ms limit "
                        f"({limits['source']}){where}"))
    # Both series must vary: one stall in one series is not a jittery path.
    series = [s for s in (fresh_ttfb, kept_ttfb) if len(s) >= 2]
    jit = min((jitter(s) for s in series), default=0.0)
    if jit > limits["jitter_ms"]:
        quiet = klass == "loopback" and not limits["explicit"]
        text = (f"time to first byte varies by {jit:.1f} ms from one call to the next (jitter "
                f"limit {limits['jitter_ms']:g} ms for a {CLASS_NAMES[klass]} target)")
        if quiet:  # no network path to blame: a busy server or machine; a note, not a warning
            text += ("; on loopback there is no network path, so the server or this machine "
                     "is busy")
        reasons.append((Severity.INFO if quiet else Severity.WARNING, text))
    reasons.sort(key=lambda r: -r[0].rank)
    return reasons


def _kind_words(kind: str) -> str:
    if kind.startswith("http-"):
        return f"HTTP {kind[5:]}"
    return KIND_WORDS.get(kind, kind)


def _where(fresh: list[Sample], kept: list[Sample]) -> str:
    """Which phase the time goes to, as a clause for the message."""
    medians = {name: median(vals) for name in ("resolve", "connect", "tls",
                                                          "processing")
               if (vals := [s.phases[name] for s in fresh if s.ok and name in s.phases])}
    if not medians:
        return ""
    phase = max(medians, key=lambda k: medians[k])
    what = {
        "resolve": "name resolution (DNS) is slow",
        "connect": "the network round trip (TCP connect) is slow",
        "tls": "the TLS handshake is slow",
        "processing": "the server (or a proxy in front) is slow to answer",
    }[phase]
    out = f"; most of it is {phase}, {medians[phase]:.1f} ms: {what}"
    kept_ttfb = [s.phases["ttfb"] for s in kept if s.ok and not s.reconnected]
    fresh_ttfb = [s.phases["ttfb"] for s in fresh if s.ok]
    if kept_ttfb and fresh_ttfb and median(kept_ttfb) < \
            0.5 * median(fresh_ttfb):
        out += (f" (a kept-alive connection needs only {median(kept_ttfb):.1f} ms: "
                "reuse connections)")
    return out


def _latency_fix(ctx: Context, fresh: list[Sample], kept: list[Sample]) -> list[FixStep]:
    target = ctx.target
    every = [s.phases["ttfb"] for s in (*fresh, *kept) if s.ok]
    slowest = max(every, default=0.0) / 1000
    budget = max(10, math.ceil(slowest * 4))
    url = target.root_url + PATH
    steps = [
        FixStep("Measure the same call yourself, phase by phase.",
                (R.curl(url, extra="-o /dev/null -s -w 'connect %{time_connect}s  tls "
                        "%{time_appconnect}s  first byte %{time_starttransfer}s  total "
                        "%{time_total}s\\n'"),
                 R.sh(f"ollama-doctor probe latency --host {R.q(target.url)} --samples 20 -v"))),
        FixStep("Give calls a timeout well above the slowest first byte seen "
                f"({slowest * 1000:.0f} ms), reuse one client (keep-alive), and retry transient "
                "failures with backoff.",
                (R.python(f"ollama.Client(host={target.url!r}, timeout=httpx.Timeout({budget}, "
                          "connect=10))"),)),
    ]
    if not target.is_loopback:
        steps.append(FixStep("Find the slow or lossy hop (VPN, Wi-Fi, proxy) between this "
                             "machine and the server.",
                             (R.sh(f"mtr -rwc 20 {R.q(target.dial_host)}"),
                              R.sh(f"ping -c 20 {R.q(target.dial_host)}"))))
    return steps


def _summary(fresh: list[Sample], kept: list[Sample], failed: list[Sample], klass: str,
             limits: dict[str, Any], stopped: dict[str, Any] | None) -> str:
    def med(samples: list[Sample]) -> str:
        vals = [s.phases["ttfb"] for s in samples if s.answered]
        return f"{median(vals):.1f} ms" if vals else "n/a"

    text = (f"first byte {med(fresh)} fresh / {med(kept)} kept-alive (median of "
            f"{len(fresh)}+{len(kept)}; {CLASS_NAMES[klass]} limit "
            f"{limits['ttfb_median_ms']:g} ms)")
    lost = [s for s in failed if not s.answered]
    if lost:
        text += f", {len(lost)} failed"
    answers = Counter(s.status for s in failed if s.answered)
    if answers:
        text += ", answered " + ", ".join(f"HTTP {code} ×{n}" for code, n in answers.items())
    if stopped is not None:
        text += f"; stopped early: {stopped['reason']}"
    return text


# ---------------------------------------------------------------------------------------------
# TLS: the client's trust store, and a closer look when TLS may be what fails


def client_ssl_context(env: Any) -> tuple[ssl.SSLContext, str, Finding | None]:
    """The verifying context httpx builds by default (what ollama-python uses), the bundle's
    name, and a finding when ``SSL_CERT_FILE`` cannot be loaded."""
    import ssl

    import certifi

    cafile = env.get("SSL_CERT_FILE", "")
    capath = env.get("SSL_CERT_DIR", "")
    if cafile:
        try:
            return ssl.create_default_context(cafile=cafile), f"SSL_CERT_FILE={cafile}", None
        except (OSError, ssl.SSLError) as exc:
            problem = Finding(
                "tls-error", Severity.CRITICAL,
                f"SSL_CERT_FILE={cafile} cannot be loaded ({exc}): httpx-based clients such as "
                "ollama-python fail as soon as they are created, before any call.",
                {"SSL_CERT_FILE": cafile, "error": str(exc)},
                [FixStep("Point SSL_CERT_FILE at a readable PEM bundle, or unset it.",
                         (R.sh("unset SSL_CERT_FILE"),
                          R.sh('export SSL_CERT_FILE="$(python3 -m certifi)"')))])
            return (ssl.create_default_context(cafile=certifi.where()),
                    "certifi (SSL_CERT_FILE unusable)", problem)
    if capath:
        return ssl.create_default_context(capath=capath), f"SSL_CERT_DIR={capath}", None
    return ssl.create_default_context(cafile=certifi.where()), "certifi", None


def _after_failed_reachability(ctx: Context, reach: ProbeResult, verify: ssl.SSLContext | None,
                               bundle: str,
                               facts: dict[str, Any], findings: list[Finding]
                               ) -> Outcome | None:
    """Look at TLS when it may explain reachability's failure; ``None`` means the user's
    client would get through after all (its trust store verifies the server): go on sampling."""
    target = ctx.target
    causes = {f.cause for f in reach.findings}
    seen = ctx.facts(ReachabilityFacts) or ReachabilityFacts()
    address = seen.working_address
    silent = seen.root_error in ("read-timeout", "connect-timeout")
    # A TLS port answers plain HTTP with an alert or a close, never with silence: a silent
    # http:// server is not a TLS question, and must not cost another timeout here.
    if address is None or not causes & _TLS_SUSPECTS or (silent and target.scheme == "http"):
        status = Status.FAIL if findings else Status.SKIP
        return Outcome(status, f"skipped: reachability did not pass ({reach.summary}); "
                               "nothing to time", facts, findings,
                       blocked_by="reachability")
    facts["address"] = address
    # A plain server may sit waiting for the end of a line in a TLS hello: look briefly.
    timeout = min(ctx.op_timeout(), 1.0) if silent else ctx.op_timeout()
    port = target.port
    from ollama_doctor.tlsinfo import inspect_tls, tls_on_plain_scheme

    if target.scheme == "https":
        verify = verify or client_ssl_context(ctx.env)[0]  # (https always has one already)
        info = inspect_tls(target.dial_host, address, port, timeout, verify, plain_first=silent)
        if info.get("verified") and "tls-error" in causes:
            facts["reachability_tls"] = (
                f"reachability's TLS check failed, but the trust store the user's client "
                f"uses ({bundle}) verifies this server; samples use the client's trust store")
            return None
        found = _https_findings(target, info)
        cert = info.get("certificate") or {}
        if info.get("plain_http"):
            summary = f"port {port} answers plain HTTP, not TLS"
        else:
            summary = (f"TLS verification failed: certificate issued by "
                       f"{cert.get('issuer') or '?'}")
    else:
        info = tls_on_plain_scheme(target.dial_host, address, port, timeout)
        found = [_speaks_tls_finding(target, info)] if info.get("speaks_tls") else []
        summary = f"port {port} speaks TLS, not plain HTTP"
    facts["tls"] = info
    findings.extend(found)
    if not found:
        status = Status.FAIL if findings else Status.SKIP
        return Outcome(status, f"skipped: reachability did not pass ({reach.summary}); "
                               "TLS does not explain it", facts, findings,
                       blocked_by="reachability")
    return Outcome(Status.FAIL, summary, facts, findings)


def _tls_from_samples(ctx: Context, dial: _Dial, verify: ssl.SSLContext, failed: list[Sample],
                      facts: dict[str, Any]) -> list[Finding]:
    """Samples that failed in TLS (reachability passed, so this is rare: a flapping server)."""
    if not any(s.error in ("tls-verify", "tls-plain") for s in failed):
        return []
    from ollama_doctor.tlsinfo import inspect_tls

    target = ctx.target
    info = inspect_tls(target.dial_host, dial.fallback_address, target.port, ctx.op_timeout(),
                       verify)
    facts["tls_failure"] = info
    return _https_findings(target, info)


def _https_findings(target: Target, info: dict[str, Any]) -> list[Finding]:
    hostport = f"{target.bracketed_host}:{target.port}"
    plain = info.get("plain_http")
    if plain:
        bracketed = target.bracketed_host
        return [Finding(
            "wrong-port-scheme", Severity.CRITICAL,
            f"https:// was spoken to {hostport}, which answers plain HTTP ({plain!r} to a plain "
            "request): Ollama serves no TLS of its own.",
            {"tls": info},
            [FixStep("Use http:// for this port (or the port of a TLS-terminating proxy in "
                     "front of Ollama).",
                     (R.export_host(f"http://{bracketed}:{target.port}"),
                      R.curl(f"http://{bracketed}:{target.port}/api/version")))])]
    if info.get("verified", True):
        return []
    cert = info.get("certificate") or {}
    issuer = cert.get("issuer") or "an issuer that could not be read"
    subject = cert.get("common_name") or cert.get("subject") or "?"
    code = info.get("verify_code")
    reason = info.get("verify_message") or (info.get("handshake_error") or {}).get("message")
    head = f"TLS verification of {hostport} failed ({reason})"
    evidence: dict[str, Any] = {"tls": info}
    fixes: list[FixStep]
    confidence = Confidence.HIGH
    if code in _UNTRUSTED_CODES:
        from ollama_doctor.tlsinfo import interceptor_for

        product = interceptor_for(issuer)
        if product:
            who = f"the TLS-intercepting proxy {product}"
        elif cert.get("self_signed"):
            who = ("a self-signed certificate: the server's own, or a TLS-intercepting proxy's "
                   "(corporate gateway, antivirus)")
        else:
            who = ("not a public CA this client trusts: typically a TLS-intercepting proxy "
                   "(corporate gateway, antivirus) or a private CA")
        message = (f"{head}: the certificate for {subject!r} was issued by {issuer!r}, "
                   f"{who}.")
        evidence["interceptor"] = product
        fixes = _ca_fixes(target, issuer)
    elif code in _EXPIRED_CODES:
        message = (f"{head}: the certificate for {subject!r} issued by {issuer!r} is valid from "
                   f"{cert.get('not_before', '?')} to {cert.get('not_after', '?')}.")
        fixes = [FixStep("Renew the server's certificate, or correct this machine's clock.",
                         (R.sh("date -u"),))]
    elif code in _NAME_CODES:
        names = ", ".join(cert.get("san") or []) or subject
        message = (f"{head}: the certificate issued by {issuer!r} is for {names}, not "
                   f"{target.host}.")
        first = next((n.split(":", 1)[1] for n in cert.get("san") or []
                      if n.startswith("DNS:") and "*" not in n), None)
        fixes = [FixStep("Call the server by a name its certificate is for.",
                         (R.export_host(f"https://{first}:{target.port}"),) if first
                         else ())]
    elif code is not None:
        message = f"{head}: the certificate for {subject!r} was issued by {issuer!r}."
        fixes = _ca_fixes(target, issuer)
    elif (info.get("handshake_error") or {}).get("kind") == "tls-verify":
        # an SSL-level refusal without a certificate: versions or ciphers do not match
        message = (f"The TLS handshake with {hostport} failed ({reason}): the server's TLS "
                   "settings (protocol version, ciphers) and this client's do not match.")
        fixes = [FixStep("See what the server offers.",
                         (R.sh(f"openssl s_client -connect {R.q(hostport)} </dev/null"),
                          R.curl(f"https://{hostport}/api/version", extra="-v")))]
        confidence = Confidence.MEDIUM
    else:
        return []  # a reset or a silence: TLS does not explain it, reachability has said so
    return [Finding("tls-error", Severity.CRITICAL, message, evidence, fixes, confidence)]


def _ca_fixes(target: Target, issuer: str) -> list[FixStep]:
    name = target.host if ip_or_none(target.host) is None else None
    servername = f" -servername {name}" if name else ""
    return [
        FixStep(f"Get the CA certificate of {issuer!r} (from your IT department, or from the "
                "chain below) and add it to the bundle Python clients use: httpx and "
                "ollama-python read certifi's bundle, not the system store, unless "
                "SSL_CERT_FILE is set.",
                (R.sh(f"openssl s_client -connect "
                      f"{R.q(f'{target.bracketed_host}:{target.port}')}{servername} "
                      "-showcerts </dev/null"),
                 R.sh('cat "$(python3 -m certifi)" PROXY_CA.pem > ~/ca-bundle.pem'),
                 R.sh("export SSL_CERT_FILE=~/ca-bundle.pem"),
                 R.sh("export REQUESTS_CA_BUNDLE=~/ca-bundle.pem"))),
        FixStep("For curl and the ollama CLI, install it in the system store as well.",
                (R.sh("sudo cp PROXY_CA.pem /usr/local/share/ca-certificates/proxy-ca.crt"),
                 R.sh("sudo update-ca-certificates"))),
    ]


def _speaks_tls_finding(target: Target, info: dict[str, Any]) -> Finding:
    hostport = f"{target.bracketed_host}:{target.port}"
    cert = info.get("certificate") or {}
    about = f", certificate for {cert['common_name']!r}" if cert.get("common_name") else ""
    return Finding(
        "wrong-port-scheme", Severity.CRITICAL,
        f"http:// was spoken to {hostport}, which speaks TLS (a handshake succeeded"
        f"{about}): use https:// for this port.",
        {"tls": info},
        [FixStep("Use https:// for this port.",
                 (R.export_host(f"https://{target.bracketed_host}:{target.port}"),
                  R.curl(f"https://{target.bracketed_host}:{target.port}/api/version")))])
