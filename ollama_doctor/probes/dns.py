"""``dns``: does the target's name resolve the same way for every client, and to a server?

Checks, for a target given by name (an IP literal is skipped, and the facts say so, except
for step 6):

1. who resolves the name: when the ``proxy`` probe found that ollama-python's client (httpx)
   sends the target through a proxy, the *proxy* resolves it, so a local failure is reported as
   a note, never as ``dns-failure``;
2. the ``/etc/hosts`` entry for the name (read bounded) and whether ``files`` comes before
   ``dns`` in ``/etc/nsswitch.conf``, i.e. whether the file decides the answer;
3. the system resolver (``getaddrinfo``; its order is the order clients dial);
4. each configured DNS server (``--nameserver ADDR[:PORT]``, else ``/etc/resolv.conf``'s first
   three, as glibc uses), asked directly with dnspython for A and AAAA with the search list and
   ``ndots`` of ``resolv.conf``: NXDOMAIN, SERVFAIL, NODATA, timeout, the CNAME chain, timings.
   ``localhost`` and ``*.localhost`` are never sent to DNS (RFC 6761: resolvers answer them
   locally, and a DNS answer for them says nothing about what clients get). Other names found
   in ``/etc/hosts`` are still asked, because a stale hosts entry is what the comparison finds;
   when the file decides the answer, clients never wait for DNS, so the servers get at most
   ``HOSTS_DECIDE_WAIT`` seconds (a silent server then costs the run 1 s, not ``--timeout``);
5. the per-address connects of the ``reachability`` probe (not repeated here): the first
   address refused while the other address family answers is ``ipv6-localhost``;
6. a target whose addresses are all loopback of one family (``[::1]``, ``OLLAMA_HOST=::1``,
   ``localhost`` that resolves to ``::1`` only) and all refused: one TCP connect to the other
   family's loopback on the same port. Accepted there means the server listens on the other
   family only (``ipv6-localhost``, the fix "use 127.0.0.1" or "use [::1]").

Facts: ``host``, ``ip_literal``, ``proxied`` (who resolves instead), ``hosts_file`` (entries,
whether it decides), ``nsswitch``, ``resolv_conf``, ``nameservers`` and where they came from,
``system`` (addresses in order, timing, error), ``dns`` (one answer per server: outcome, A,
AAAA, CNAME chain, name that answered, timing), ``cname_chain``, ``address_order``,
``other_family`` (the connect of step 6, when made).

Cause ids: ``dns-failure`` (critical when the system resolver fails; a warning when the system
resolver and DNS disagree or a configured server fails while another answers; critical when
the system's answer does not connect but DNS's does, as with a stale ``/etc/hosts``),
``ipv6-localhost`` (a warning when the other family answers at another address of the name,
which Python clients fall back to; an error when every address of the target, an IP literal
such as ``[::1]`` included, is loopback of one family and refused while the other family's
loopback accepts on that port), ``high-latency`` (a resolution slower than ``SLOW_MS``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ollama_doctor import net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.facts import ConnectFact, ProxyFacts, ReachabilityFacts
from ollama_doctor.resolvconf import (
    ResolvConf,
    files_decide,
    hosts_entries,
    nsswitch_hosts,
    parse_nameserver,
    parse_resolv_conf,
    read_text,
)
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import ip_or_none

SLOW_MS = 1000.0  # a lookup this slow delays every new connection noticeably
MAX_NAMESERVERS = 3  # glibc's MAXNS: later nameserver lines are ignored
MAX_ALTERNATIVES = 4  # DNS-only addresses tried when the system's answer does not connect
# DNS is asked only for comparison when /etc/hosts decides: no client waits for it then.
HOSTS_DECIDE_WAIT = 1.0
DOCKER_DNS = "127.0.0.11"  # Docker's embedded DNS on user-defined (compose) networks

Outcome_ = Literal["answer", "nxdomain", "servfail", "nodata", "timeout", "refused", "error"]

# When A and AAAA end differently, the combined outcome is the first of these present.
_OUTCOME_ORDER: tuple[Outcome_, ...] = ("nxdomain", "servfail", "refused", "timeout", "error",
                                        "nodata")

_GAI_OUTCOME: dict[str, Outcome_] = {"not-found": "nxdomain", "no-address": "nodata",
                                      "temporary": "servfail", "timeout": "timeout"}

_WORDING: dict[str, str] = {
    "nxdomain": "NXDOMAIN, no such name",
    "servfail": "SERVFAIL, it could not get an answer",
    "nodata": "NODATA, the name has no A or AAAA record",
    "timeout": "nothing before the timeout",
    "refused": "a refusal",
    "error": "an error",
}


# --------------------------------------------------------------------------------------------
# Pure parsers and deciders


def is_localhost_name(name: str) -> bool:
    low = name.lower().rstrip(".")
    return low == "localhost" or low.endswith(".localhost")


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
    neighbours each cost 1 (``lcoalhost`` is one slip from ``localhost``, not two)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


NameHint = Literal["host-docker-internal", "localhost-typo", "single-label"]


def name_hint(name: str) -> NameHint | None:
    """Names users get wrong, recognised from the name alone."""
    low = name.lower().rstrip(".")
    if low in ("host.docker.internal", "gateway.docker.internal"):
        return "host-docker-internal"
    if is_localhost_name(low):
        return None
    if 1 <= edit_distance(low, "localhost") <= 2:
        return "localhost-typo"
    if "." not in low and ip_or_none(low) is None:
        return "single-label"
    return None


def gai_kind(error: net.NetError) -> str:
    """What a ``getaddrinfo`` failure means, from its errno/text (glibc and other libcs)."""
    text = error.message.lower()
    if error.exception == "TimeoutError":
        return "timeout"
    if "errno -2]" in text or "not known" in text or "nodename nor servname" in text \
            or "errno 11001]" in text:
        return "not-found"  # EAI_NONAME: NXDOMAIN, or no address of any kind
    if "errno -5]" in text or "no address associated" in text:
        return "no-address"  # EAI_NODATA
    if "errno -3]" in text or "temporary failure" in text or "errno 11002]" in text:
        return "temporary"  # EAI_AGAIN: SERVFAIL or no nameserver answered
    return "other"


def _family(address: str) -> int:
    return 6 if ":" in address else 4


# --------------------------------------------------------------------------------------------
# Asking one DNS server


@dataclass
class DnsAnswer:
    server: str  # "ADDR:PORT" as dialled
    outcome: Outcome_
    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    per_type: dict[str, str] = field(default_factory=dict)
    qname: str | None = None  # the name that answered (after the search list)
    tried: list[str] = field(default_factory=list)
    cname_chain: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    error: str | None = None

    @property
    def addresses(self) -> list[str]:
        return self.a + self.aaaa

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "outcome": self.outcome, "a": self.a, "aaaa": self.aaaa,
                "per_type": self.per_type, "qname": self.qname, "tried": self.tried,
                "cname_chain": self.cname_chain, "elapsed_ms": round(self.elapsed_ms, 2),
                "error": self.error}


@dataclass
class _TypeResult:
    outcome: Outcome_
    addresses: list[str]
    qname: str | None
    tried: list[str]
    chain: list[str]
    error: str | None
    elapsed_ms: float


def _chain_from(response: Any, qname: Any) -> list[str]:
    """The CNAME chain in ``response`` starting at ``qname``: [qname, target, target, …]."""
    import dns.rdatatype

    links: dict[str, str] = {}
    for rrset in getattr(response, "answer", []):
        if rrset.rdtype == dns.rdatatype.CNAME and len(rrset) > 0:
            links[rrset.name.to_text().lower()] = next(iter(rrset)).target.to_text().lower()
    current = qname.to_text().lower()
    chain = [current]
    while current in links and len(chain) < 10:
        current = links[current]
        if current in chain:
            break
        chain.append(current)
    return chain if len(chain) > 1 else []


def _ask(name: str, rdtype: str, address: str, port: int, conf: ResolvConf,
         timeout: float) -> _TypeResult:
    import dns.exception
    import dns.name
    import dns.nameserver
    import dns.rcode
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)  # never reads this machine's config
    resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.retry_servfail = False
    resolver.cache = None
    resolver.search = []
    for domain in conf.search:
        try:
            resolver.search.append(dns.name.from_text(domain))
        except dns.exception.DNSException:
            continue  # glibc skips a search domain it cannot use, and so do we
    resolver.ndots = conf.ndots
    started = time.perf_counter()

    def done(outcome: Outcome_, addresses: list[str] | None = None, qname: str | None = None,
             tried: list[str] | None = None, chain: list[str] | None = None,
             error: str | None = None) -> _TypeResult:
        return _TypeResult(outcome, addresses or [], qname, tried or [], chain or [], error,
                           (time.perf_counter() - started) * 1000)

    try:
        answer = resolver.resolve(name, rdtype, search=True, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN as exc:
        qnames = exc.kwargs.get("qnames", [])
        responses = exc.kwargs.get("responses", {})
        chain = _chain_from(responses.get(qnames[0]), qnames[0]) if qnames else []
        return done("nxdomain", tried=[q.to_text() for q in qnames], chain=chain,
                    error=str(exc))
    except dns.resolver.LifetimeTimeout as exc:
        return done("timeout", error=f"no answer within {timeout:g} s ({exc.msg})")
    except dns.resolver.NoNameservers as exc:
        outcome: Outcome_ = "error"
        detail = str(exc)
        for item in exc.kwargs.get("errors", []):
            err = item[3] if len(item) > 3 else None
            response = item[4] if len(item) > 4 else None
            if response is not None:
                rcode = dns.rcode.to_text(response.rcode())
                outcome = "servfail" if rcode == "SERVFAIL" else "refused"
                detail = f"{rcode} from {address}:{port}"
            elif isinstance(err, ConnectionRefusedError):
                outcome, detail = "refused", f"{address}:{port} refused the query (port closed)"
            elif isinstance(err, dns.exception.Timeout):
                outcome = "timeout"
        return done(outcome, error=detail[:300])
    except dns.exception.DNSException as exc:
        return done("error", error=f"{type(exc).__name__}: {exc}"[:300])
    except (OSError, ValueError) as exc:
        return done("refused" if isinstance(exc, ConnectionRefusedError) else "error",
                    error=f"{type(exc).__name__}: {exc}"[:300])
    addresses = [rdata.to_text() for rdata in answer.rrset] if answer.rrset is not None else []
    return done("answer" if addresses else "nodata", addresses, answer.qname.to_text(),
                [answer.qname.to_text()], _chain_from(answer.response, answer.qname))


def query_server(name: str, address: str, port: int, conf: ResolvConf,
                 timeout: float) -> DnsAnswer:
    """A and AAAA for ``name`` from one server, asked at the same time."""
    from concurrent.futures import ThreadPoolExecutor  # only when used: ~7 ms

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="od-dns") as pool:
        a_future = pool.submit(_ask, name, "A", address, port, conf, timeout)
        aaaa_future = pool.submit(_ask, name, "AAAA", address, port, conf, timeout)
        a, aaaa = a_future.result(), aaaa_future.result()
    server = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    outcomes = {a.outcome, aaaa.outcome}
    if "answer" in outcomes:
        outcome: Outcome_ = "answer"
    else:
        outcome = next(o for o in _OUTCOME_ORDER if o in outcomes)
    lead = a if a.outcome == outcome or (a.outcome == "answer") else aaaa
    return DnsAnswer(
        server, outcome, a.addresses, aaaa.addresses,
        {"A": a.outcome, "AAAA": aaaa.outcome},
        a.qname or aaaa.qname, lead.tried or a.tried or aaaa.tried,
        a.chain or aaaa.chain, max(a.elapsed_ms, aaaa.elapsed_ms),
        None if outcome in ("answer", "nodata", "nxdomain") else (lead.error or a.error))


# --------------------------------------------------------------------------------------------
# The probe


def run(ctx: Context) -> Outcome:
    target = ctx.target
    host = target.dial_host
    facts: dict[str, Any] = {"host": host, "ip_literal": ip_or_none(host) is not None}
    if facts["ip_literal"]:
        summary = f"{host} is an IP address: there is no name to resolve"
        other = _other_loopback_findings(ctx, facts)
        if not other:
            return Outcome(Status.SKIP, summary, facts)
        seen = other[0].evidence
        return Outcome(Status.FAIL, f"{summary}; {_fmt(seen['first'], target.port)} is "
                                    f"refused, {_fmt(seen['working'], target.port)} answers",
                       facts, other)

    proxied = _proxied_by(ctx)
    facts["proxied"] = proxied
    findings: list[Finding] = []

    # /etc/hosts and nsswitch
    hosts_text = _read(ctx, "/etc/hosts")
    entries = hosts_entries(hosts_text or "", host)
    sources = nsswitch_hosts(_read(ctx, "/etc/nsswitch.conf") or "")
    decides = bool(entries) and files_decide(sources)
    facts["nsswitch"] = sources
    facts["hosts_file"] = {"path": "/etc/hosts", "readable": hosts_text is not None,
                           "entries": [{"line": n, "address": a} for n, a in entries],
                           "decides": decides}

    # which DNS servers, with which search list
    conf = parse_resolv_conf(_read(ctx, "/etc/resolv.conf") or "")
    facts["resolv_conf"] = conf.to_dict()
    servers, bad = _nameservers(ctx, conf)
    facts["nameservers"] = [_fmt(a, p) for a, p in servers]
    facts["nameservers_from"] = "--nameserver" if ctx.options.nameservers else "/etc/resolv.conf"
    if bad:
        facts["nameserver_errors"] = bad

    # the system resolver and the DNS servers, at the same time
    timeout = ctx.op_timeout()
    skip_dns = None
    if is_localhost_name(host):
        skip_dns = "localhost names are answered locally, never by DNS (RFC 6761)"
    elif not servers:
        skip_dns = "no nameserver configured"
    from concurrent.futures import ThreadPoolExecutor  # only when used: ~7 ms

    with ThreadPoolExecutor(max_workers=1 + len(servers), thread_name_prefix="od-dns") as pool:
        system_future = pool.submit(ctx.resolve, host, target.port, timeout)
        dns_wait = min(timeout, HOSTS_DECIDE_WAIT) if decides else timeout
        dns_futures = [] if skip_dns else [
            pool.submit(query_server, host, a, p, conf, dns_wait) for a, p in servers]
        system = system_future.result()
        answers = [f.result() for f in dns_futures]
    facts["system"] = {"addresses": system.addresses, "elapsed_ms": round(system.elapsed_ms, 2),
                       "error": system.error.to_dict() if system.error else None,
                       "source": "/etc/hosts" if decides else "resolver"}
    facts["dns"] = {"skipped": skip_dns} if skip_dns else [a.to_dict() for a in answers]
    chain = next((a.cname_chain for a in answers if a.cname_chain), [])
    facts["cname_chain"] = chain
    facts["address_order"] = system.addresses

    if system.error is not None:
        if proxied:
            facts["local_failure_ignored"] = True
            return Outcome(Status.WARN,
                           f"{host} does not resolve here, but ollama-python's client sends it "
                           f"through {proxied['proxy']}, which resolves it", facts, findings)
        findings.append(_failure_finding(ctx, system, answers, facts))
    else:
        findings.extend(_compare(ctx, system, answers, entries, decides))
        findings.extend(_ipv6_findings(ctx))
        findings.extend(_other_loopback_findings(ctx, facts))
    findings.extend(_server_findings(ctx, system, answers))
    findings.extend(_slow_findings(host, system, answers))

    summary = _summary(host, system, answers, decides, proxied, skip_dns)
    for finding in findings:
        if finding.cause == "ipv6-localhost":
            seen = finding.evidence
            summary += f"; {seen['first']} is {seen['failure']}, {seen['working']} answers"
    return Outcome.from_findings(summary, facts, findings)


def _read(ctx: Context, name: str) -> str | None:
    return read_text(ctx.path(name))


def _fmt(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _nameservers(ctx: Context, conf: ResolvConf) -> tuple[list[tuple[str, int]], list[str]]:
    given = ctx.options.nameservers or conf.nameservers[:MAX_NAMESERVERS]
    servers: list[tuple[str, int]] = []
    bad: list[str] = []
    for value in given:
        try:
            parsed = parse_nameserver(value)
        except ValueError as exc:
            bad.append(str(exc))
            continue
        if parsed not in servers:
            servers.append(parsed)
    return servers[:MAX_NAMESERVERS], bad


def _proxied_by(ctx: Context) -> dict[str, Any] | None:
    """The proxy ollama-python's client (httpx) sends the target through, from the ``proxy``
    probe's per-family routes (``ProxyFacts``); when that probe did not run, from the same pure
    decision over ``ctx.env``. ``None``: direct."""
    routes = ctx.facts(ProxyFacts)
    if routes is not None:
        return _proxy_fact(routes.proxy_of("httpx"))
    try:
        from ollama_doctor.proxyenv import proxy_for

        decision = proxy_for(ctx.target.base_url + "/", ctx.env, "httpx")
    except Exception:  # a bad proxy value is the proxy probe's finding, not ours
        return None
    return _proxy_fact(decision.proxy_url)


def _proxy_fact(proxy: str | None) -> dict[str, Any] | None:
    if not proxy:
        return None
    from ollama_doctor.redact import redact_url

    shown = redact_url(proxy if "://" in proxy else f"http://{proxy}")
    return {"client": "httpx (ollama-python)", "proxy": shown}


def _connect_facts(ctx: Context) -> tuple[list[str], dict[str, ConnectFact]] | None:
    """Reachability's resolved addresses and its connect to each, by address."""
    reach = ctx.facts(ReachabilityFacts)
    if reach is None or reach.addresses is None or reach.connects is None:
        return None
    return list(reach.addresses), {c.address: c for c in reach.connects}


# -- failures ----------------------------------------------------------------------------------


def _failure_finding(ctx: Context, system: net.Resolution, answers: list[DnsAnswer],
                     facts: dict[str, Any]) -> Finding:
    """The system resolver failed: say how, in the words of what the DNS servers answered."""
    assert system.error is not None
    target = ctx.target
    host = target.dial_host
    kind = gai_kind(system.error)
    evidence: dict[str, Any] = {"host": host, "system": system.error.to_dict(),
                                "dns": [a.to_dict() for a in answers],
                                "nameservers": facts["nameservers"]}
    answering = [a for a in answers if a.outcome == "answer"]
    check = FixStep("See what this machine resolves, then what each DNS server says.",
                    (R.getent(host),
                     *(R.sh(f"dig +search {R.q(host)} @{a.server.rsplit(':', 1)[0].strip('[]')} "
                            f"-p {a.server.rsplit(':', 1)[1]}") for a in answers[:1])))
    if answering:
        found = answering[0]
        return Finding(
            "dns-failure", Severity.CRITICAL,
            f"The system resolver cannot resolve {host!r} ({system.error.message}), although "
            f"DNS server {found.server} answers {', '.join(found.addresses)}: this machine "
            "resolves through something else (nsswitch.conf, systemd-resolved, a VPN).",
            evidence, [check, FixStep("Until the resolver is fixed, use the address.",
                                      (R.export_host(_url(target, found.addresses[0])),))])
    outcome: Outcome_
    if answers:
        outcome = next(o for o in _OUTCOME_ORDER if o in {a.outcome for a in answers})
        what = f"{answers[0].server if len(answers) == 1 else 'every DNS server'} answered " \
               f"{_WORDING[outcome]}"
        if outcome == "timeout":
            what = (f"no DNS server answered within {ctx.op_timeout():g} s "
                    f"({', '.join(a.server for a in answers)})")
    else:
        outcome = _GAI_OUTCOME.get(kind, "error")
        what = f"getaddrinfo says {system.error.message!r}"
        if kind == "timeout":
            what = f"the system resolver gave no answer within {ctx.op_timeout():g} s"
    evidence["outcome"] = outcome
    hint = name_hint(host)
    port = target.port
    if hint == "host-docker-internal":
        return Finding(
            "dns-failure", Severity.CRITICAL,
            f"{host!r} does not resolve here ({what}): Docker defines it only in Docker Desktop, "
            "or on Linux in containers started with "
            "--add-host=host.docker.internal:host-gateway.",
            evidence,
            [FixStep("Start the client's container with the host-gateway mapping (compose: "
                     "extra_hosts: [\"host.docker.internal:host-gateway\"]).",
                     (R.sh("docker run --add-host=host.docker.internal:host-gateway IMAGE"),)),
             FixStep("The host's Ollama must then listen beyond loopback, since the mapping "
                     "reaches the docker0 bridge address.",
                     (R.serve_with("OLLAMA_HOST", f"0.0.0.0:{port}"),))])
    if hint == "localhost-typo":
        return Finding(
            "dns-failure", Severity.CRITICAL,
            f"{host!r} does not resolve ({what}); it looks like a typo of 'localhost'.",
            evidence, [FixStep("Spell the host correctly (or use the IPv4 address).",
                               (R.export_host(f"http://127.0.0.1:{port}"),))])
    if hint == "single-label":
        docker = DOCKER_DNS in facts["resolv_conf"]["nameservers"]
        where = ("Docker's embedded DNS here does not know it" if docker
                 else "no resolver here knows it")
        return Finding(
            "dns-failure", Severity.CRITICAL,
            f"{host!r} does not resolve ({what}): a compose service name resolves only inside "
            f"the compose network of that service, and {where}. Is the client on the same "
            "compose network?",
            evidence,
            [FixStep("Put the client in the service's network (same compose file, or connect "
                     "the container), or call the port the service publishes on the host.",
                     (R.sh("docker network ls"), R.sh("docker network connect NETWORK CONTAINER"),
                      R.export_host(f"http://127.0.0.1:{port}"))), check])
    messages = {
        "nxdomain": f"{host!r} does not exist in DNS: {what}.",
        "nodata": f"{host!r} exists in DNS but has no address: {what}.",
        "servfail": f"The resolver failed for {host!r}: {what}; the name may be fine but "
                    "cannot be resolved now.",
        "timeout": f"Name resolution for {host!r} times out: {what}.",
        "refused": f"The DNS server refuses to resolve {host!r}: {what}.",
        "error": f"{host!r} does not resolve on this machine: {what}.",
    }
    fix = [check, FixStep("Use a name that resolves from where the client runs, or the "
                          "server's IP address.", (R.export_host(f"http://IP:{port}"),))]
    return Finding("dns-failure", Severity.CRITICAL, messages[outcome], evidence, fix)


def _url(target: Any, address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{target.scheme}://{host}:{target.port}"


# -- the system resolver against DNS --------------------------------------------------------


def _compare(ctx: Context, system: net.Resolution, answers: list[DnsAnswer],
             entries: list[tuple[int, str]], decides: bool) -> list[Finding]:
    host = ctx.target.dial_host
    answering = [a for a in answers if a.outcome == "answer"]
    if not answering:
        return []
    ours = set(system.addresses)
    theirs = next((a for a in answering if not set(a.addresses) & ours), None)
    if theirs is None:
        return []  # every server shares an address with the system's answer (round robin)
    source = (f"/etc/hosts (line {', '.join(str(n) for n, _ in entries)})" if decides
              else "the system resolver")
    evidence: dict[str, Any] = {
        "host": host, "system": {"addresses": system.addresses, "source": source},
        "dns": {"server": theirs.server, "addresses": theirs.addresses,
                "cname_chain": theirs.cname_chain}}
    if decides:
        evidence["hosts_entries"] = [{"line": n, "address": a} for n, a in entries]
    stale = "a stale /etc/hosts entry" if decides else "split-horizon DNS or another resolver"
    # Does the system's answer work at all? The reachability probe connected to each address.
    seen = _connect_facts(ctx)
    system_dead = seen is not None and bool(seen[1]) and not any(
        c.ok for c in seen[1].values())
    fix_hosts = (FixStep(f"Remove or correct the {host} line in /etc/hosts.",
                         (R.sh(f"grep -n {R.q(host)} /etc/hosts"), R.getent(host)))
                 if decides else
                 FixStep("Find which resolver answers what.", (R.getent(host),
                                                               R.sh("resolvectl status"))))
    if system_dead:
        alive = _try_alternatives(ctx, [a for a in theirs.addresses if a not in ours])
        evidence["alternatives"] = [c.to_dict() for c in alive]
        working = [c.address for c in alive if c.ok]
        if working:
            return [Finding(
                "dns-failure", Severity.CRITICAL,
                f"{host!r} resolves here to {', '.join(system.addresses)} (from {source}), "
                f"which does not connect, while DNS server {theirs.server} says "
                f"{', '.join(theirs.addresses)}, which does: {stale}.",
                evidence, [fix_hosts, FixStep("Or call the working address directly.", (
                    R.export_host(_url(ctx.target, working[0])),))])]
    return [Finding(
        "dns-failure", Severity.WARNING,
        f"{host!r} resolves here to {', '.join(system.addresses)} (from {source}) but DNS "
        f"server {theirs.server} says {', '.join(theirs.addresses)}: {stale}; clients on other "
        "machines or with other resolvers reach a different server.",
        evidence, [fix_hosts], confidence=Confidence.MEDIUM)]


def _try_alternatives(ctx: Context, addresses: list[str]) -> list[net.Connect]:
    return net.tcp_connect_all(addresses[:MAX_ALTERNATIVES], ctx.target.port, ctx.op_timeout())


def _server_findings(ctx: Context, system: net.Resolution,
                     answers: list[DnsAnswer]) -> list[Finding]:
    """A configured server that fails while another answers slows or breaks some lookups."""
    good = [a for a in answers if a.outcome in ("answer", "nodata", "nxdomain")]
    bad = [a for a in answers if a.outcome in ("servfail", "timeout", "refused", "error")]
    if not good or not bad:
        return []
    first_bad = answers[0].outcome not in ("answer", "nodata", "nxdomain")
    names = ", ".join(f"{a.server} ({a.outcome.upper()})" for a in bad)
    return [Finding(
        "dns-failure", Severity.WARNING if first_bad else Severity.INFO,
        f"Configured DNS server {names} fails while {good[0].server} answers: "
        + ("every lookup waits for it to time out before the next server is asked."
           if first_bad else "lookups that reach it fail or wait."),
        {"host": ctx.target.dial_host, "dns": [a.to_dict() for a in answers]},
        [FixStep("Remove the failing nameserver from the resolver configuration.",
                 (R.sh("cat /etc/resolv.conf"), R.sh("resolvectl status")))],
        confidence=Confidence.HIGH)]


def _slow_findings(host: str, system: net.Resolution, answers: list[DnsAnswer]) -> list[Finding]:
    slow_system = system.error is None and system.elapsed_ms >= SLOW_MS
    slow_dns = [a for a in answers if a.outcome == "answer" and a.elapsed_ms >= SLOW_MS]
    if not slow_system and not slow_dns:
        return []
    parts = []
    if slow_system:
        parts.append(f"the system resolver took {system.elapsed_ms:.0f} ms")
    parts += [f"{a.server} took {a.elapsed_ms:.0f} ms" for a in slow_dns]
    return [Finding(
        "high-latency", Severity.WARNING,
        f"Resolving {host!r} is slow ({'; '.join(parts)}): every new connection waits that long "
        "before it starts.",
        {"host": host, "system_ms": round(system.elapsed_ms, 1),
         "dns_ms": {a.server: round(a.elapsed_ms, 1) for a in answers}},
        [FixStep("Use a closer or faster resolver, a local cache, or the address itself.",
                 (R.getent(host),))])]


# -- ::1 versus 127.0.0.1 ---------------------------------------------------------------------


def _ipv6_findings(ctx: Context) -> list[Finding]:
    """The first address refused while the other family answers (reachability's connects)."""
    seen = _connect_facts(ctx)
    if seen is None:
        return []
    addresses, by_address = seen
    if len(addresses) < 2 or not all(a in by_address for a in addresses):
        return []
    first = addresses[0]
    first_family = _family(first)
    failed_first = [a for a in addresses if _family(a) == first_family
                    and not by_address[a].ok]
    other_ok = [a for a in addresses if _family(a) != first_family and by_address[a].ok]
    same_ok = [a for a in addresses if _family(a) == first_family and by_address[a].ok]
    if first not in failed_first or not other_ok or same_ok:
        return []
    target = ctx.target
    host, port = target.dial_host, target.port
    working = other_ok[0]
    how = {"refused": "refused", "connect-timeout": "timing out"}.get(
        str(by_address[first].error), "unreachable")
    node_error = {"refused": "ECONNREFUSED", "timing out": "ETIMEDOUT"}.get(how, "ENETUNREACH")
    evidence = {"host": host, "address_order": addresses, "first": first, "failure": how,
                "working": working,
                "connects": [asdict(by_address[a]) for a in addresses]}
    if first_family == 6:
        message = (f"{host!r} resolves to {first} first, and [{first}]:{port} is {how} while "
                   f"{working}:{port} answers: Python clients fall back to IPv4, but Node 17-19 "
                   f"(ollama-js, fetch) dial only the first address and fail with "
                   f"{node_error} {first}:{port}.")
        fix = [FixStep("Point clients at the IPv4 address, which every client dials the same "
                       "way.", (R.export_host(_url(target, working)),)),
               FixStep("Or make the server listen on both families.",
                       (R.serve_with("OLLAMA_HOST", f"[::]:{port}"),))]
    else:
        message = (f"{host!r} resolves to {first} first, and {first}:{port} is {how} while "
                   f"[{working}]:{port} answers: Python clients fall back to IPv6, but Node "
                   "17-19 (ollama-js, fetch) dial only the first address and fail with "
                   f"{node_error} {first}:{port}.")
        fix = [FixStep("Point clients at the IPv6 address the server listens on.",
                       (R.export_host(_url(target, working)),)),
               FixStep("Or make the server listen on both families.",
                       (R.serve_with("OLLAMA_HOST", f"[::]:{port}"),))]
    return [Finding("ipv6-localhost", Severity.WARNING, message, evidence, fix)]


def _other_loopback_findings(ctx: Context, facts: dict[str, Any]) -> list[Finding]:
    """Every address of the target is loopback of one family and refused: one TCP connect to
    the other family's loopback (``127.0.0.1`` for ``::1``, and back) on the same port. When it
    answers, the server listens on the other family only. Ollama binds ``127.0.0.1:11434``
    unless ``OLLAMA_HOST`` says otherwise (``envconfig/config.go`` ``Host()``; ``cmd/cmd.go``
    ``RunServer`` listens on that one address), so ``[::1]`` is refused for every client: with
    no other address to fall back to, the call fails. Records ``facts["other_family"]``."""
    seen = _connect_facts(ctx)
    if seen is None:
        return []
    addresses, by_address = seen
    if not addresses or not all(a in by_address for a in addresses):
        return []
    ips = [ip_or_none(a) for a in addresses]
    if not all(ip is not None and ip.is_loopback for ip in ips):
        return []
    families = {_family(a) for a in addresses}
    if len(families) != 1 or any(by_address[a].error != "refused" for a in addresses):
        return []
    family = families.pop()
    target = ctx.target
    port = target.port
    other = "127.0.0.1" if family == 6 else "::1"
    result = net.tcp_connect(other, port, ctx.op_timeout())
    facts["other_family"] = result.to_dict()
    if not result.ok:
        return []
    first = addresses[0]
    host = target.dial_host
    refused = ", ".join(_fmt(a, port) for a in addresses)
    if ip_or_none(host) is not None:
        dialled = f"The client dials {refused}"
    else:
        dialled = (f"{host!r} resolves to {', '.join(addresses)} only here, and the client "
                   f"dials {refused}")
    holder = _holder(port, other)
    if family == 6:
        message = (f"{dialled}, which refuses connections, while {_fmt(other, port)} accepts "
                   f"them{holder}: the server listens on IPv4 loopback only (Ollama's default "
                   "bind is 127.0.0.1), and no client falls back to it from an IPv6 address. "
                   "Use 127.0.0.1.")
        fix = [FixStep("Use 127.0.0.1, the address the server listens on.",
                       (R.export_host(_url(target, other)),
                        R.curl(f"{_url(target, other)}/"))),
               FixStep("Or make the server listen on both families ([::] takes IPv4 too). "
                       "That opens the port to your network: allow it in the firewall only "
                       "for trusted hosts.", (R.serve_with("OLLAMA_HOST", f"[::]:{port}"),))]
    else:
        message = (f"{dialled}, which refuses connections, while {_fmt(other, port)} accepts "
                   f"them{holder}: the server listens on IPv6 loopback only, and no client "
                   "falls back to it from an IPv4 address. Use [::1], or make the server "
                   "listen on both families.")
        fix = [FixStep("Use [::1], the address the server listens on.",
                       (R.export_host(_url(target, other)),
                        R.curl(f"{_url(target, other)}/"))),
               FixStep("Or make the server listen on both families ([::] takes IPv4 too), or "
                       "on 127.0.0.1 (Ollama's default). [::] opens the port to your network: "
                       "allow it in the firewall only for trusted hosts.",
                       (R.serve_with("OLLAMA_HOST", f"[::]:{port}"),
                        R.serve_with("OLLAMA_HOST", f"127.0.0.1:{port}")))]
    evidence = {"host": host, "address_order": addresses, "first": first,
                "failure": "refused", "working": other,
                "connects": [asdict(by_address[a]) for a in addresses],
                "other_family": result.to_dict()}
    return [Finding("ipv6-localhost", Severity.ERROR, message, evidence, fix, Confidence.HIGH)]


def _holder(port: int, address: str) -> str:
    """`` (python3, pid 123)``: who listens on ``address``:``port``, when psutil can tell."""
    try:
        from ollama_doctor.local import covers, listeners_on

        listeners, _ = listeners_on(port)
    except Exception:  # naming the process is a courtesy; the connect is the proof
        return ""
    for listener in listeners:
        if covers(listener.address, address) and listener.pid is not None:
            return f" ({listener.name or 'a process'}, pid {listener.pid})"
    return ""


# -- summary ---------------------------------------------------------------------------------


def _summary(host: str, system: net.Resolution, answers: list[DnsAnswer], decides: bool,
             proxied: dict[str, Any] | None, skip_dns: str | None) -> str:
    if system.error is not None:
        text = f"{host} does not resolve ({system.error.message})"
    else:
        source = "/etc/hosts" if decides else "the system resolver"
        text = (f"{host} → {', '.join(system.addresses)} via {source} "
                f"({system.elapsed_ms:.1f} ms)")
    ours = set(system.addresses)
    parts = []
    for a in answers:
        if a.outcome != "answer":
            parts.append(f"{a.server} {a.outcome.upper()}")
        elif ours and not set(a.addresses) & ours:
            parts.append(f"{a.server} says {', '.join(a.addresses)}")
        else:
            parts.append(f"{a.server} agrees" if ours else
                         f"{a.server} answers {', '.join(a.addresses)}")
    if parts:
        text += "; DNS: " + ", ".join(parts)
    elif skip_dns:
        text += "; DNS not asked (" + skip_dns.split(",")[0].split(" (")[0] + ")"
    if proxied:
        text += f"; ollama-python goes through {proxied['proxy']}, which resolves it"
    return text
