"""``reachability``: is an Ollama server answering at the target, and is it really Ollama?

Checks, in order, each step only when the one before it worked:

1. the target itself: a bind address (``0.0.0.0``/``::``), a scheme without a port (→ 80/443),
   a value the Go client reads differently;
2. resolution of the host (``getaddrinfo``, in the order clients try the addresses);
3. a TCP connect to **every** resolved address, telling refused, timeout and unreachable apart;
4. ``GET /`` at the server root, expecting exactly ``Ollama is running`` and no ``Server``
   header (docs/ollama-wire.md §5); then ``GET /api/version``;
5. when the target has a path, whether calls under it reach Ollama's routes.

Along the client's path (``Context.route``): when the chosen client's proxy applies to the
target, the client never resolves or dials the target itself, so steps 2–3 are the proxy's
business; ``GET /`` and ``/api/version`` go through the proxy as the client sends them, and the
check line says so. A failure to reach the proxy itself is named as the proxy's
(``proxy-unreachable``, ``proxy-unsupported``, ``proxy-blocks`` for a refused ``CONNECT``), the
same causes the proxy probe finds from its side; an answer the proxy makes (its 502 page, say)
is judged like any answer, and the diagnosis folds it into the proxy probe's root cause.

Facts: ``addresses``, ``connects`` (per address), ``root`` (status, headers, body), ``version``,
``looks_like_ollama``, ``intermediary`` (a ``Server``/``Via`` header in front), ``base_path``,
``path`` (the route: direct, or the proxy and the variable it came from).

Cause ids: ``unspecified-address``, ``wrong-port-scheme``, ``client-parsing-differs``,
``dns-failure``, ``server-not-running``, ``connect-timeout``, ``server-unresponsive``,
``tls-error``, ``not-ollama``, ``bad-gateway``, ``gateway-timeout``, ``wrong-base-path``;
along a proxy path also ``proxy-unreachable``, ``proxy-unsupported``, ``proxy-blocks``.
401 and 403 at the root are left to the ``auth`` probe, which re-probes before naming a cause.

A probe cut at its budget keeps what it had established (``runner.partial_key``): cut while
``GET /`` is unanswered, its result still says ``server-unresponsive``.
"""

from __future__ import annotations

from typing import Any

from ollama_doctor import net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.facts import ReachabilityFacts
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import base_path_kind, go_client_note, ip_or_none

OLLAMA_BODY = "Ollama is running"


def run(ctx: Context) -> Outcome:
    outcome = ctx.on_path(_run(ctx))
    return outcome.with_evidence(evidence_of(outcome.facts))


def evidence_of(facts: dict[str, Any]) -> ReachabilityFacts:
    """The typed part of this probe's facts (``ctx.facts(ReachabilityFacts)`` for the others)."""
    return ReachabilityFacts.from_result(facts)


def _run(ctx: Context) -> Outcome:
    target = ctx.target
    findings = _target_findings(ctx)
    facts: dict[str, Any] = {"dial_host": target.dial_host, "port": target.port}
    if ctx.route().proxied:
        facts["resolved_by"] = "the proxy"  # the client neither resolves nor dials the target
        return _identity(ctx, facts, findings)

    # 2. resolve
    if ip_or_none(target.dial_host) is not None:
        addresses = [target.dial_host]
    else:
        res = ctx.resolve(target.dial_host, target.port)
        facts["resolve_ms"] = round(res.elapsed_ms, 2)
        if res.error is not None:
            findings.append(Finding(
                "dns-failure", Severity.CRITICAL,
                f"{target.dial_host!r} does not resolve on this machine: {res.error.message}.",
                {"host": target.dial_host, "error": res.error.to_dict()}))
            return Outcome(Status.FAIL, f"{target.dial_host} does not resolve", facts, findings)
        addresses = res.addresses
    facts["addresses"] = addresses

    # 3. TCP to every address, in parallel so that one dropped address costs one timeout
    connects = net.tcp_connect_all(addresses, target.port, ctx.op_timeout())
    facts["connects"] = [c.to_dict() for c in connects]
    working = [c for c in connects if c.ok]
    if not working:
        return _connect_failed(ctx, connects, facts, findings)
    return _identity(ctx, facts, findings)


PROXY_ERRORS = {"refused": "refuses connections", "connect-timeout": "does not answer",
                "unreachable": "is unreachable", "dns": "does not resolve"}


def _proxy_error(ctx: Context, root: net.HttpReply, facts: dict[str, Any],
                 findings: list[Finding]) -> Outcome | None:
    """Along a proxy path, a transport failure before any answer is the proxy's, not Ollama's:
    the client only ever dials the proxy."""
    route = ctx.route()
    error = root.error
    if not route.proxied or error is None:
        return None
    evidence = {"root": root.to_evidence(), "path": route.to_dict()}
    proxy = f"its proxy {route.shown} ({route.source})"
    if error.kind in PROXY_ERRORS:
        cause, how = "proxy-unreachable", PROXY_ERRORS[error.kind]
    elif error.kind == "proxy-unsupported":
        cause, how = "proxy-unsupported", f"cannot be used ({error.message})"
    elif error.kind == "proxy":
        cause, how = "proxy-blocks", f"refused the request ({error.message})"
    else:
        return None
    facts["looks_like_ollama"] = False
    findings.append(Finding(
        cause, Severity.CRITICAL,
        f"The client's requests to {ctx.target.root_url} go through {proxy}, which {how}: "
        "GET / never reached a server.", evidence,
        confidence=Confidence.MEDIUM if cause == "proxy-blocks" else Confidence.HIGH))
    return Outcome(Status.FAIL, f"the client's proxy {how}", facts, findings)


def _identity(ctx: Context, facts: dict[str, Any], findings: list[Finding]) -> Outcome:
    target = ctx.target
    # 4. identity
    headers = ctx.client_headers(with_origin=False)
    _partial(ctx, Outcome(Status.FAIL, f"GET / to {target.root_url} had no answer", facts,
                          [*findings, _unanswered(ctx)]))
    root = ctx.http("GET", target.root_url + "/", headers=headers, max_bytes=64 * 1024)
    facts["root"] = root.to_evidence()
    outcome = _proxy_error(ctx, root, facts, findings) or _judge_root(ctx, root, facts, findings)
    if outcome is not None:
        return outcome
    _partial(ctx, Outcome.from_findings(
        f"a server answers GET / at {target.root_url}; the rest had not answered", facts,
        findings))
    if facts.get("access_refused"):
        code = facts["access_refused"]
        return Outcome(Status.WARN, f"a server answers at {target.root_url} but refuses access "
                                    f"(HTTP {code}); the auth probe tells why", facts, findings)
    version = ctx.http("GET", target.root_url + "/api/version", headers=headers,
                       max_bytes=64 * 1024)
    data = version.json()
    if version.ok and isinstance(data, dict) and isinstance(data.get("version"), str):
        facts["version"] = data["version"]
    else:
        facts["version"] = None
        findings.append(Finding(
            "not-ollama", Severity.ERROR,
            "GET / looks like Ollama but /api/version does not answer Ollama's JSON "
            f"({version.describe()}); something between the client and Ollama alters answers.",
            {"version": version.to_evidence()}, confidence=Confidence.MEDIUM))

    # 5. the user's base path
    if target.path:
        _check_base_path(ctx, facts, findings)

    summary = f"Ollama {facts.get('version') or '?'} answers at {target.root_url}"
    if facts.get("intermediary"):
        summary += f" (through {facts['intermediary']})"
    return Outcome.from_findings(summary, facts, findings)


def _partial(ctx: Context, outcome: Outcome) -> None:
    """What is established so far, kept by the runner if the probe is cut at its budget
    (``runner.partial_key``; a copy of the facts, which the probe goes on filling)."""
    from ollama_doctor.runner import partial_key

    outcome.facts = dict(outcome.facts)
    outcome.findings = list(outcome.findings)
    ctx.memo[partial_key("reachability")] = outcome


def _unanswered(ctx: Context) -> Finding:
    """A cut probe's ``GET /`` that had no answer: still ``server-unresponsive``."""
    target = ctx.target
    return Finding(
        "server-unresponsive", Severity.CRITICAL,
        f"GET / to {target.root_url} had no answer when the probe's time ran out.",
        {"request": f"GET {target.root_url}/", "path": ctx.route().describe()},
        R.unresponsive_fix(target.port))


def _target_findings(ctx: Context) -> list[Finding]:
    target = ctx.target
    out: list[Finding] = []
    if target.is_unspecified:
        out.append(Finding(
            "unspecified-address", Severity.WARNING,
            f"The target {target.host} is a bind address, not a destination: it works on Linux "
            "and macOS but fails on Windows (WinError 10049) and in some clients.",
            {"target": target.url, "dialed_instead": target.dial_host},
            [FixStep("Give the client a real address; keep 0.0.0.0 for the server's own "
                     "OLLAMA_HOST.", (R.export_host(f"http://127.0.0.1:{target.port}"),))]))
    if target.scheme_explicit and not target.port_explicit:
        out.append(Finding(
            "wrong-port-scheme", Severity.INFO,
            f"{target.scheme}:// without a port means port {target.port}, not 11434 "
            "(ollama-python and ollama-js both do this).",
            {"target": target.raw, "port": target.port},
            [FixStep("Name the port.",
                     (R.export_host(f"{target.scheme}://{target.bracketed_host}:11434"),))]))
    note = go_client_note(target)
    if note:
        out.append(Finding("client-parsing-differs", Severity.INFO, note, {"target": target.raw}))
    return out


def _escalate_port_finding(findings: list[Finding]) -> None:
    """A scheme without a port is only a note, unless nothing answers on the port it implies."""
    for finding in findings:
        if finding.cause == "wrong-port-scheme":
            finding.severity = Severity.CRITICAL
            finding.message += " Nothing usable answers there."


def _connect_failed(ctx: Context, connects: list[net.Connect], facts: dict[str, Any],
                    findings: list[Finding]) -> Outcome:
    target = ctx.target
    kinds = {c.error.kind for c in connects if c.error}
    evidence = {"target": target.base_url, "connects": [c.to_dict() for c in connects]}
    if target.scheme_explicit and not target.port_explicit:
        _escalate_port_finding(findings)
    if kinds == {"refused"} or ("refused" in kinds and not kinds & {"connect-timeout"}):
        where = "on this machine" if target.is_loopback else f"at {target.dial_host}"
        if target.is_loopback:
            from ollama_doctor.local import find_servers

            try:
                servers = find_servers(ctx)
            except Exception as exc:
                evidence["process_check"] = f"{type(exc).__name__}: {exc}"
            else:
                evidence["ollama_processes"] = [s.to_dict() for s in servers]
                if servers:
                    where += " (an Ollama process runs, but not on this port)"
        if target.is_loopback:
            start = FixStep("Start Ollama on that address, then check that it answers.",
                            (R.serve_with("OLLAMA_HOST", f"{target.dial_host}:{target.port}"
                                          if ":" not in target.dial_host else
                                          f"[{target.dial_host}]:{target.port}"),
                             R.curl(f"{target.root_url}/")))
        else:
            start = FixStep(f"On {target.dial_host}, start Ollama listening on every interface "
                            "(the default, 127.0.0.1, refuses other machines).",
                            (R.serve_with("OLLAMA_HOST", f"0.0.0.0:{target.port}"),
                             R.curl(f"{target.root_url}/")))
        findings.append(Finding(
            "server-not-running", Severity.CRITICAL,
            f"Nothing listens on port {target.port} {where}: every connection was refused.",
            evidence, [start, FixStep("If it runs as a service, look at why it stopped.",
                                      (R.service_status(),
                                       R.journal()))]))
        return Outcome(Status.FAIL, f"connection refused at {target.dial_host}:{target.port}",
                       facts, findings)
    if "connect-timeout" in kinds:
        findings.append(Finding(
            "connect-timeout", Severity.CRITICAL,
            f"Connecting to {target.dial_host}:{target.port} timed out after "
            f"{_secs(max(c.elapsed_ms for c in connects) / 1000)}: packets are dropped "
            "(a firewall) or the address or route is wrong.", evidence))
        return Outcome(Status.FAIL, f"connect timed out at {target.dial_host}:{target.port}",
                       facts, findings)
    findings.append(Finding(
        "connect-timeout", Severity.CRITICAL,
        f"{target.dial_host}:{target.port} is unreachable from this machine (no route).",
        evidence, confidence=Confidence.MEDIUM))
    return Outcome(Status.FAIL, f"{target.dial_host} unreachable", facts, findings)


def _judge_root(ctx: Context, root: net.HttpReply, facts: dict[str, Any],
                findings: list[Finding]) -> Outcome | None:
    """Decide from ``GET /`` whether Ollama answers; an ``Outcome`` ends the probe early."""
    target = ctx.target
    server = root.headers.get("server")
    via = root.headers.get("via")
    if server or via:
        facts["intermediary"] = server or via
    if root.error is not None:
        kind = root.error.kind
        evidence = {"root": root.to_evidence()}
        if kind == "tls-plain" or (kind == "protocol" and target.scheme == "https"):
            cause, sev, msg = ("wrong-port-scheme", Severity.CRITICAL,
                               f"https:// was spoken to port {target.port}, which answers plain "
                               "HTTP: Ollama has no TLS of its own.")
        elif kind == "tls-verify":
            cause, sev, msg = ("tls-error", Severity.CRITICAL,
                               f"TLS verification failed: {root.error.message}.")
        elif kind == "read-timeout":
            cause, sev, msg = ("server-unresponsive", Severity.CRITICAL,
                               f"{target.dial_host}:{target.port} accepts connections but sent no "
                               f"answer to GET / within {_secs(root.elapsed_ms / 1000)}.")
        else:
            cause, sev, msg = ("server-unresponsive", Severity.CRITICAL,
                               f"{target.dial_host}:{target.port} accepted the connection, then "
                               f"failed: {root.error.message}.")
        if target.scheme_explicit and not target.port_explicit:
            _escalate_port_finding(findings)
        fix = R.unresponsive_fix(target.port) if cause == "server-unresponsive" else []
        findings.append(Finding(cause, sev, msg, evidence, fix))
        facts["looks_like_ollama"] = False
        return Outcome(Status.FAIL, msg.rstrip("."), facts, findings)

    body = root.text
    genuine = root.status == 200 and body == "Ollama is running"
    facts["looks_like_ollama"] = genuine and not server
    if genuine:
        return None
    evidence = {"root": root.to_evidence()}
    status = root.status or 0
    if status in (401, 403):
        facts["access_refused"] = status
        return None  # decided by the auth probe's re-probes
    if status == 502:
        findings.append(Finding(
            "bad-gateway", Severity.CRITICAL,
            f"{server or 'An intermediary'} at the target answers 502: it cannot reach Ollama "
            "behind it.", evidence, code=502))
        return Outcome(Status.FAIL, "502 from an intermediary", facts, findings)
    if status == 504:
        findings.append(Finding(
            "gateway-timeout", Severity.CRITICAL,
            f"{server or 'An intermediary'} at the target answers 504 to GET /.", evidence,
            code=504))
        return Outcome(Status.FAIL, "504 from an intermediary", facts, findings)
    if target.scheme_explicit and not target.port_explicit:
        _escalate_port_finding(findings)
    what = f"'{server}'" if server else "something else"
    findings.append(Finding(
        "not-ollama", Severity.CRITICAL,
        f"{target.dial_host}:{target.port} is answered by {what}, not Ollama: GET / gave "
        f"HTTP {root.status} {_kind_of_body(root)} instead of 'Ollama is running'.",
        evidence))
    return Outcome(Status.FAIL, f"not Ollama at {target.dial_host}:{target.port}", facts,
                   findings)


def _secs(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.2g} s"


def _kind_of_body(reply: net.HttpReply) -> str:
    text = reply.text.lstrip()[:200].lower()
    if text.startswith("<!doctype html") or text.startswith("<html") or "<html" in text:
        return "with an HTML page"
    if not text:
        return "with an empty body"
    return f"with {reply.snippet(60)!r}"


def _check_base_path(ctx: Context, facts: dict[str, Any], findings: list[Finding]) -> None:
    target = ctx.target
    kind = base_path_kind(target.path)
    headers = ctx.client_headers(with_origin=False)
    facts["base_path"] = {"path": target.path, "kind": kind}
    root_fix = [
        FixStep("Use the server root for Ollama's clients,", (R.export_host(target.root_url),)),
        FixStep("and the root plus /v1 for OpenAI SDKs.",
                (R.python(f"openai.OpenAI(base_url={target.root_url + '/v1'!r}, "
                          "api_key='ollama')"),))]
    if kind == "openai":
        probe = ctx.http("GET", target.base_url + "/models", headers=headers, max_bytes=256 * 1024)
        data = probe.json()
        works = probe.ok and isinstance(data, dict) and data.get("object") == "list"
        facts["base_path"]["openai_models"] = probe.describe()
        if works:
            return  # a correct OpenAI-style base
        findings.append(Finding(
            "wrong-base-path", Severity.ERROR,
            f"OpenAI-style calls under {target.path} miss: GET {target.path}/models gave "
            f"{probe.describe()}.", {"probe": probe.to_evidence()}, root_fix, code=probe.status))
        return
    probe = ctx.http("GET", target.base_url + "/api/version", headers=headers,
                     max_bytes=64 * 1024)
    facts["base_path"]["api_version"] = probe.describe()
    data = probe.json()
    if probe.ok and isinstance(data, dict) and "version" in data:
        return  # a reverse-proxy prefix that reaches Ollama
    plain_404 = probe.status == 404 and probe.text.strip() == "404 page not found"
    doubled = {"api": f"{target.path}/api/…", "other": f"{target.path}/api/…"}[kind]
    findings.append(Finding(
        "wrong-base-path", Severity.ERROR,
        f"Calls under the base path {target.path!r} miss Ollama's routes ({doubled} gave "
        f"{'plain-text 404 page not found' if plain_404 else probe.describe()}).",
        {"probe": probe.to_evidence()}, root_fix, code=probe.status or 404))
