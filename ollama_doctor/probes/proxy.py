"""``proxy``: does a proxy setting stand between the user's client and Ollama, and does it break?

Checks, in order:

1. every proxy setting a client on this machine honours: ``*_proxy`` variables in either case,
   ``NODE_USE_ENV_PROXY``, and on macOS/Windows the OS settings Python falls back to;
2. for the target URL, which proxy each client family uses (``proxyenv``: httpx, requests,
   curl, Go, Node), and whether they disagree ("curl works but my Python app fails");
3. whether ``httpx.Client()`` can even be built under these settings: a SOCKS proxy without
   ``socksio`` or an unknown scheme in *any* proxy variable breaks ``import ollama`` itself;
4. when a proxy applies (the chosen client's — ``--client``, default ollama-python — first, else
   another family's), a TCP connect to the proxy, then ``GET /`` directly and through the
   proxy, compared. The other API probes then go along the client's own path
   (``Context.route``); this comparison is the evidence for the path not taken.

The verdicts: direct ``Ollama is running`` + a proxied failure or a different answer →
``proxy-captures-local`` (code = the proxy's status); the proxy refuses connections or its name
does not resolve → ``proxy-unreachable``; the target is reachable only through the proxy (the
client cannot resolve or reach it directly) and the proxy refuses → ``proxy-blocks`` (403 with
the proxy's own page, or 407 when it wants credentials); the target reachable only through the
proxy, which relays the server's own answer (an empty-body 403 is Ollama's Host or Origin check,
not the proxy's) → no finding here: the other probes judge that answer along the proxy path; a
proxy that relays a local target correctly → an info note.

Facts: ``variables`` (redacted), ``system_proxies``, ``target``, ``clients`` (family → route,
proxy, source, reason, used_by: the per-client table), ``families_disagree`` and ``routes``,
``recommended_no_proxy``, and when a comparison ran ``comparison`` (proxy, families,
``proxy_connect``, ``direct``, ``proxied``, ``fingerprints``, ``verdict``).

Cause ids: ``proxy-unsupported``, ``proxy-unreachable``, ``proxy-captures-local``,
``proxy-blocks``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ollama_doctor import net
from ollama_doctor import remedies as R
from ollama_doctor.context import Context
from ollama_doctor.facts import ProxyFacts
from ollama_doctor.proxyenv import (
    FAMILIES,
    HTTPX_SCHEMES,
    SOCKS_SCHEMES,
    USED_BY,
    ClientError,
    Decision,
    Family,
    decide_all,
    disagreement,
    httpx_client_error,
    proxy_scheme,
    proxy_variables,
    recommended_no_proxy,
    redact_proxy,
    with_scheme,
)
from ollama_doctor.redact import redact_value
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import ip_or_none

OLLAMA_BODY = "Ollama is running"
FINGERPRINT_HEADERS = ("server", "via", "proxy-agent", "x-squid-error", "x-cache",
                       "proxy-authenticate", "content-type")
UNREACHED = ("dns", "refused", "connect-timeout", "unreachable")
PROXY_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


def socksio_importable() -> bool:
    """Whether httpx could load SOCKS support in this interpreter (tests replace this)."""
    import importlib

    try:  # imported by name: socksio is optional, so the type checker may not have it
        importlib.import_module("socksio")
    except Exception:
        return False
    return True


_OS_FUNCTIONS = {"darwin": ("getproxies_macosx_sysconf", "proxy_bypass_macosx_sysconf"),
                 "win32": ("getproxies_registry", "proxy_bypass_registry")}


def system_settings(platform: str) -> tuple[dict[str, str], Callable[[str], bool] | None]:
    """The OS proxy settings ``urllib.request.getproxies()`` falls back to (macOS System
    Settings, the Windows registry), and the matching bypass test. Linux has none: there
    ``getproxies()`` is the environment alone, which ``proxyenv`` reads from ``ctx.env``."""
    if platform not in _OS_FUNCTIONS:
        return {}, None
    import urllib.request as ur  # only here: http.client and email come with it (~10 ms)

    get_name, bypass_name = _OS_FUNCTIONS[platform]
    try:
        found: dict[str, str] = dict(getattr(ur, get_name)())
        bypass: Callable[[str], bool] = getattr(ur, bypass_name)
    except Exception:
        return {}, None
    return found, bypass


def run(ctx: Context) -> Outcome:
    outcome = _run(ctx)
    return outcome.with_evidence(evidence_of(outcome.facts))


def evidence_of(facts: dict[str, Any]) -> ProxyFacts:
    """The typed part of this probe's facts (``ctx.facts(ProxyFacts)`` for the others)."""
    return ProxyFacts.from_result(facts)


def _run(ctx: Context) -> Outcome:
    target = ctx.target
    client_url = f"{target.scheme}://{target.bracketed_host}:{target.port}"
    system, system_bypass = system_settings(sys.platform)
    variables = proxy_variables(ctx.env)
    decisions = decide_all(client_url + "/", ctx.env, system=system, system_bypass=system_bypass)
    routes = disagreement(decisions)
    no_proxy = recommended_no_proxy(ctx.env, target.host)
    facts: dict[str, Any] = {
        "variables": {name: _shown(name, value) for name, value in variables.items()},
        "system_proxies": {k: redact_proxy(v) for k, v in system.items()},
        "target": client_url,
        "clients": {family: decisions[family].to_dict(family) for family in FAMILIES},
        "families_disagree": len(routes) > 1,
        "routes": routes,
        "recommended_no_proxy": no_proxy,
    }
    if not variables and not system:
        return Outcome(Status.PASS, "no proxy settings found: every client connects directly",
                       facts)

    broken = (httpx_client_error(ctx.env, system, socksio_importable())
              if ctx.client.proxy_family == "httpx" else None)
    if broken is not None:
        finding = _unsupported(ctx, broken)
        return Outcome(Status.FAIL, f"httpx cannot use {broken.variable} "
                                    f"({broken.kind.replace('-', ' ')})", facts, [finding])

    client = ctx.client
    facts["client"] = {"name": client.name, "proxy_family": client.proxy_family}
    mine = decisions[client.proxy_family] if client.proxy_family else None
    if mine is not None and mine.proxy_url is not None:
        proxy, families = mine.proxy_url, _families_using(decisions, mine.proxy_url)
    else:
        others = [(f, d) for f, d in decisions.items() if d.proxy_url is not None]
        why = mine.reason if mine is not None else f"{client.label} reads no proxy variable"
        if not others:
            return Outcome(Status.PASS, f"no client proxies {client_url}: {why}", facts)
        proxy = others[0][1].proxy_url or ""
        families = _families_using(decisions, proxy)
        scheme = proxy_scheme(proxy)
        if scheme not in HTTPX_SCHEMES or (scheme in SOCKS_SCHEMES and not socksio_importable()):
            return Outcome(Status.PASS, f"{client.name} connects directly; {', '.join(families)} "
                                        f"would use {redact_proxy(proxy)}, which this tool "
                                        "cannot test", facts)

    comparison = _compare(ctx, proxy, client_url)
    facts["comparison"] = {"proxy": redact_proxy(proxy), "families": families,
                           **comparison.facts()}
    findings = _judge(ctx, comparison, decisions, families, no_proxy, client_url)
    facts["comparison"]["verdict"] = comparison.verdict
    return Outcome.from_findings(comparison.summary, facts, findings)


def _shown(name: str, value: str) -> str:
    return value if name.lower() == "no_proxy" or not name.lower().endswith("_proxy") \
        else redact_proxy(value)


def _families_using(decisions: dict[Family, Decision], proxy: str) -> list[Family]:
    return [f for f, d in decisions.items() if d.proxy_url == proxy]


def _names(families: list[Family]) -> str:
    return "; ".join(f"{family} ({USED_BY[family]})" for family in families)


# --------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Comparison:
    proxy: str
    connect: dict[str, Any]
    proxy_error: net.NetError | None  # the proxy itself cannot be reached
    direct: net.HttpReply
    proxied: net.HttpReply | None
    verdict: str = ""
    summary: str = ""

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"proxy_connect": self.connect,
                               "direct": _evidence(self.direct)}
        if self.proxied is not None:
            out["proxied"] = _evidence(self.proxied)
            out["fingerprints"] = fingerprints(self.proxied)
        return out


def _evidence(reply: net.HttpReply) -> dict[str, Any]:
    data: dict[str, Any] = redact_value(reply.to_evidence())
    return data


def _compare(ctx: Context, proxy: str, client_url: str) -> Comparison:
    target = ctx.target
    parts = urlsplit(with_scheme(proxy))
    host = parts.hostname or ""
    try:
        port = parts.port or PROXY_DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    except ValueError:
        port = PROXY_DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    connect, proxy_error = _reach_proxy(ctx, host, port)
    headers = ctx.client_headers(with_origin=False)

    def direct() -> net.HttpReply:
        url = target.root_url + "/"
        if ip_or_none(target.dial_host) is None:
            res = ctx.resolve(target.dial_host, target.port)
            if res.error is not None:
                return net.HttpReply("GET", url, error=res.error, elapsed_ms=res.elapsed_ms)
        return ctx.http("GET", url, headers=headers, max_bytes=64 * 1024, direct=True)

    def proxied() -> net.HttpReply:
        return ctx.http("GET", client_url + "/", headers=headers, proxy=with_scheme(proxy),
                        max_bytes=64 * 1024)

    if proxy_error is not None:
        return Comparison(proxy, connect, proxy_error, direct(), None)
    from concurrent.futures import ThreadPoolExecutor  # only when used: ~7 ms

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="od-proxy") as pool:
        direct_future = pool.submit(direct)
        proxied_future = pool.submit(proxied)
        return Comparison(proxy, connect, None, direct_future.result(), proxied_future.result())


def _reach_proxy(ctx: Context, host: str, port: int) -> tuple[dict[str, Any], net.NetError | None]:
    """Resolve the proxy's name and TCP-connect to it: can the client reach its proxy at all?"""
    out: dict[str, Any] = {"host": host, "port": port}
    if not host:
        error = net.NetError("invalid", "the proxy URL has no host", "ValueError")
        out["error"] = error.to_dict()
        return out, error
    if ip_or_none(host) is not None:
        addresses = [host.strip("[]")]
    else:
        res = net.resolve(ctx.getaddrinfo, host, port, ctx.op_timeout())
        if res.error is not None:
            out["error"] = res.error.to_dict()
            return out, res.error
        addresses = res.addresses
    out["addresses"] = addresses
    last: net.Connect | None = None
    for address in addresses[:4]:
        last = net.tcp_connect(address, port, ctx.op_timeout())
        if last.ok:
            out["connect"] = last.to_dict()
            return out, None
    assert last is not None
    out["connect"] = last.to_dict()
    return out, last.error or net.NetError("other", "connect failed", "OSError")


# --------------------------------------------------------------------------------------------
# Judging


def genuine(reply: net.HttpReply | None) -> bool:
    return (reply is not None and reply.error is None and reply.status == 200
            and reply.text == OLLAMA_BODY)


def fingerprints(reply: net.HttpReply) -> dict[str, Any]:
    """What identifies the answering proxy: status, telltale headers, the kind of body."""
    out: dict[str, Any] = {}
    if reply.error is not None:
        out["error"] = reply.error.kind
        code = _status_in_message(reply.error.message)
        if code is not None:
            out["status"] = code
        return out
    out["status"] = reply.status
    for name in FINGERPRINT_HEADERS:
        if name in reply.headers:
            out[name] = reply.headers[name]
    out["body"] = _body_kind(reply)
    return out


def _status_in_message(message: str) -> int | None:
    """httpcore reports a refused CONNECT as ``ProxyError('403 Forbidden')``."""
    head = message.strip().split(" ", 1)[0]
    return int(head) if head.isdigit() and len(head) == 3 else None


def _body_kind(reply: net.HttpReply) -> str:
    text = reply.text.lstrip()[:500].lower()
    if not text:
        return "empty"
    if "<html" in text or text.startswith("<!doctype"):
        return "html"
    return "text"


def _status_of(reply: net.HttpReply | None) -> int | None:
    if reply is None:
        return None
    if reply.error is not None:
        return _status_in_message(reply.error.message)
    return reply.status


def _who(reply: net.HttpReply) -> str:
    """``squid/5.7``, ``Privoxy``… from the reply, for messages."""
    for name in ("server", "proxy-agent", "via"):
        if reply.headers.get(name):
            return reply.headers[name]
    if "privoxy" in reply.text[:2000].lower():
        return "Privoxy"
    return "the proxy"


def _answer(reply: net.HttpReply) -> str:
    """One phrase for what the proxy answered: ``HTTP 502 from squid/5.7 (ERR_CONNECT_FAIL)``."""
    if reply.error is not None:
        return f"a failure ({reply.error.kind}: {reply.error.message})"
    text = f"HTTP {reply.status} from {_who(reply)}"
    squid = reply.headers.get("x-squid-error")
    if squid:
        text += f" ({squid.split()[0]})"
    elif reply.status == 200:
        text += f" with {reply.snippet(60)!r} instead of {OLLAMA_BODY!r}"
    return text


def _local(ctx: Context) -> bool:
    """Loopback, a private address, or a name that can only be local (no dot, .local, .lan)."""
    target = ctx.target
    if target.is_loopback or target.is_unspecified:
        return True
    ip = ip_or_none(target.host)
    if ip is not None:
        return ip.is_private or ip.is_link_local
    host = target.host.rstrip(".")
    return "." not in host or host.endswith((".local", ".lan", ".internal", ".home.arpa",
                                             ".docker.internal"))


def _judge(ctx: Context, cmp: Comparison, decisions: dict[Family, Decision],
           families: list[Family], no_proxy: str, client_url: str) -> list[Finding]:
    target = ctx.target
    proxy = redact_proxy(cmp.proxy)
    source = next((decisions[f].source for f in families if decisions[f].source), None) or "?"
    client = ctx.client
    httpx_uses = client.proxy_family in families  # the chosen client takes this proxy
    caller = client.name if httpx_uses else ", ".join(families)
    who_calls = (f"{client.name} ({client.proxy_family})" if httpx_uses
                 else f"{caller} ({client.name} itself connects directly)")
    evidence: dict[str, Any] = {"proxy": proxy, "source": source, "families": families,
                                "direct": _evidence(cmp.direct)}
    if cmp.proxied is not None:
        evidence["proxied"] = _evidence(cmp.proxied)
        evidence["fingerprints"] = fingerprints(cmp.proxied)
    direct_ok = genuine(cmp.direct)
    local = _local(ctx)
    exclude = _exclude_fix(no_proxy, client_url, target.host)

    # 1. the proxy itself cannot be reached
    if cmp.proxy_error is not None:
        evidence["proxy_connect"] = cmp.connect
        how = {"dns": "does not resolve", "refused": "refuses connections",
               "connect-timeout": "does not answer (connect timed out)",
               "unreachable": "is unreachable (no route)"}.get(
                   cmp.proxy_error.kind, f"cannot be reached ({cmp.proxy_error.message})")
        cmp.verdict = "proxy-unreachable"
        cmp.summary = f"the proxy {proxy} ({source}) {how}"
        message = (f"The proxy {proxy} set in {source} {how}, and {who_calls} sends every call "
                   f"to {client_url} through it, so they fail before reaching Ollama")
        message += (" (directly, the server answers 'Ollama is running')." if direct_ok
                    else ".")
        fix = [FixStep("Start the proxy or correct its address, or exclude the Ollama host "
                       "from proxying.", exclude.commands)]
        fix += _client_fixes(client_url)
        severity = Severity.CRITICAL if httpx_uses else Severity.WARNING
        confidence = Confidence.HIGH if httpx_uses else Confidence.MEDIUM
        return [Finding("proxy-unreachable", severity, message, evidence, fix, confidence)]

    proxied = cmp.proxied
    assert proxied is not None
    proxied_ok = genuine(proxied)
    code = _status_of(proxied)

    # 2. both paths answer like Ollama: the proxy relays correctly
    if direct_ok and proxied_ok:
        cmp.verdict = "relays"
        cmp.summary = (f"{caller} reaches {client_url} through {proxy}, "
                       "which answers as the direct path does")
        if not local:
            return []
        return [Finding(
            "proxy-captures-local", Severity.INFO,
            f"Calls to the local server {client_url} go through the proxy {proxy} ({source}); "
            "it relays them correctly now, but a local server is better excluded from "
            f"proxying (proxies can buffer streamed answers and time out long model loads): "
            f"NO_PROXY={no_proxy}.",
            evidence, [exclude], Confidence.HIGH)]

    # 3. the direct path works, the proxied one does not: the proxy captures the call
    if direct_ok:
        cmp.verdict = "proxy-captures-local"
        cmp.summary = (f"direct GET / answers Ollama, through {proxy} it gets "
                       f"{_short(proxied)}")
        differs = proxied.error is None and proxied.status == 200
        if httpx_uses:
            severity = Severity.ERROR if differs else Severity.CRITICAL
            confidence = Confidence.HIGH
        else:
            severity, confidence = Severity.WARNING, Confidence.MEDIUM
        message = (f"{who_calls} sends {client_url} through the proxy {proxy} ({source}), "
                   f"which answers {_answer(proxied)}; directly, the server answers "
                   f"'{OLLAMA_BODY}'. Exclude it: NO_PROXY={no_proxy}.")
        fix = [exclude, *_client_fixes(client_url), _server_side_fix()]
        return [Finding("proxy-captures-local", severity, message, evidence, fix, confidence,
                        code=code)]

    # 4. the client cannot reach the target directly; the proxy is its only way
    direct_unreached = cmp.direct.error is not None and cmp.direct.error.kind in UNREACHED
    if direct_unreached and proxied_ok:
        cmp.verdict = "proxy-only-path"
        cmp.summary = (f"{client_url} is reachable only through {proxy} "
                       f"(directly: {cmp.direct.describe()}), and the proxy relays it")
        return []
    if direct_unreached and not target.is_loopback and _refusal(proxied):
        cmp.verdict = "proxy-blocks"
        cmp.summary = f"only {proxy} can reach {client_url}, and it answers {_short(proxied)}"
        return [_blocks(ctx, cmp, proxied, evidence, source, who_calls, client_url, code,
                        httpx_uses)]
    if (direct_unreached and proxied.error is None and proxied.status is not None
            and not _refusal(proxied)):
        # The proxy relays and the server behind it answers for itself (an empty-body 403 is
        # Ollama's Host/Origin check): the probes that follow judge it along the proxy path.
        cmp.verdict = "proxy-only-path"
        cmp.summary = (f"{client_url} is reachable only through {proxy} "
                       f"(directly: {cmp.direct.describe()}); through it the server answers "
                       f"HTTP {proxied.status}")
        return []

    # 5. neither path works: not the proxy's doing, but it will be in the way once fixed
    cmp.verdict = "both-fail"
    cmp.summary = (f"neither direct ({cmp.direct.describe()}) nor through {proxy} "
                   f"({_short(proxied)}) answers like Ollama")
    if local and not proxied_ok:
        return [Finding(
            "proxy-captures-local", Severity.WARNING,
            f"{who_calls} sends {client_url} through the proxy {proxy} ({source}), which "
            f"answers {_answer(proxied)}; the direct path fails too "
            f"({cmp.direct.describe()}), so fix the server first, then exclude it from "
            f"proxying: NO_PROXY={no_proxy}.",
            evidence, [exclude, *_client_fixes(client_url)], Confidence.MEDIUM, code=code)]
    return []


def _short(reply: net.HttpReply) -> str:
    if reply.error is not None:
        return reply.error.kind
    return f"HTTP {reply.status}"


def _refusal(reply: net.HttpReply) -> bool:
    """An answer the proxy made itself: 403/407, or an error status with proxy fingerprints."""
    status = _status_of(reply)
    if status == 407 or (status == 403 and reply.error is not None):
        return True
    if status == 403:  # an empty body without a proxy's marks is the server's own check
        own = ("x-squid-error", "proxy-agent")
        return any(reply.headers.get(m) for m in own) or _body_kind(reply) != "empty"
    if reply.error is not None:
        return status is not None and status >= 400
    if status is None or status < 400:
        return False
    marks = ("x-squid-error", "proxy-agent", "via", "server")
    return any(reply.headers.get(m) for m in marks) or _body_kind(reply) == "html"


def _blocks(ctx: Context, cmp: Comparison, proxied: net.HttpReply, evidence: dict[str, Any],
            source: str, who_calls: str, client_url: str, code: int | None,
            httpx_uses: bool) -> Finding:
    target = ctx.target
    proxy = redact_proxy(cmp.proxy)
    host_port = f"{target.bracketed_host}:{target.port}"
    direct = cmp.direct.describe()
    if code == 407:
        has_credentials = "@" in cmp.proxy.split("://", 1)[-1]
        proxy_hostport = urlsplit(with_scheme(cmp.proxy)).netloc.rsplit("@", 1)[-1]
        what = ("rejects the credentials in" if has_credentials else "demands credentials "
                "(407 Proxy Authentication Required) that are not in")
        message = (f"The proxy {proxy} {what} {source}, and {who_calls} can reach {client_url} "
                   f"only through it (directly: {direct}).")
        fix = [FixStep("Put the proxy's user name and password in the proxy URL (quote special "
                       "characters with %XX).",
                       (R.export(source, "http://USER:PASSWORD@" + proxy_hostport),))]
    else:
        message = (f"The proxy {proxy} ({source}) refuses the call to {client_url}: it answers "
                   f"{_answer(proxied)}, and this machine cannot reach {host_port} without it "
                   f"(directly: {direct}). The proxy's policy has to allow the Ollama host.")
        fix = [FixStep(f"Ask the proxy's administrators to allow {host_port} (an allow-list "
                       "entry); on squid, for example:",
                       (R.config(f"acl ollama dstdomain {target.host}"),
                        R.config(f"acl ollama_port port {target.port}"),
                        R.config("http_access allow ollama ollama_port"))),
               FixStep("Or reach the server another way (VPN, an SSH tunnel), then exclude it "
                       "from proxying.",
                       (R.sh(f"ssh -N -L {target.port}:localhost:11434 "
                             f"{R.q('USER@' + target.host)}"),))]
    high = code in (403, 407) and bool(fingerprints(proxied).get("status"))
    severity = Severity.CRITICAL if httpx_uses else Severity.WARNING
    confidence = Confidence.HIGH if high and httpx_uses else Confidence.MEDIUM
    return Finding("proxy-blocks", severity, message, evidence, fix, confidence,
                   code=code if code is not None else 403)


def _exclude_fix(no_proxy: str, client_url: str, host: str) -> FixStep:
    return FixStep(
        "Exclude the Ollama host from proxying, keeping the entries already there. Set both "
        "spellings: httpx, requests and curl read no_proxy first, Go reads NO_PROXY first.",
        (R.export_both("NO_PROXY", no_proxy),
         R.curl(f"{client_url}/", note=f"should print: {OLLAMA_BODY}")))


def _client_fixes(client_url: str) -> list[FixStep]:
    return [FixStep(
        "Or stop one client from reading proxy variables at all:",
        (R.python(f"ollama.Client(host={client_url!r}, trust_env=False)   # ollama-python"),
         R.python("httpx.Client(trust_env=False)   # httpx, and openai-python via http_client="),
         R.python("session.trust_env = False   # requests"))),
        FixStep("curl:", (R.curl(f"{client_url}/", extra="--noproxy '*'"),))]


def _server_side_fix() -> FixStep:
    return FixStep(
        "If the proxy is only needed for model pulls, set HTTPS_PROXY in the Ollama server's "
        "environment alone and keep HTTP_PROXY out of clients' (Ollama's FAQ).",
        (R.systemd_edit("HTTPS_PROXY", "http://PROXY_HOST:PORT"),))


def _unsupported(ctx: Context, broken: ClientError) -> Finding:
    evidence: dict[str, Any] = {"variable": broken.variable, "proxy": broken.proxy_url,
                                "error": broken.message, "python": sys.executable}
    # a system proxy (macOS/Windows settings) has no variable to unset: say where instead
    unset = ((R.unset(broken.variable.upper(), broken.variable.lower()),)
             if broken.variable != "system" else ())
    where = " (remove it from the system proxy settings)" if not unset else ""
    if broken.kind == "socks-missing":
        message = (f"{broken.variable}={broken.proxy_url} is a SOCKS proxy and the 'socksio' "
                   "package cannot be imported here, so httpx.Client() raises ImportError: "
                   "`import ollama` itself fails, whatever host it calls.")
        fix = [FixStep("Install SOCKS support into the Python environment that runs your app.",
                       (R.sh("pip install 'httpx[socks]'"),)),
               FixStep("Or, if this client needs no proxy, remove the variable (NO_PROXY does "
                       "not help: httpx builds every proxy when the client is created; only "
                       "NO_PROXY='*' avoids it, by turning all proxies off)" + where + ".", unset)]
        confidence = Confidence.MEDIUM  # socksio may exist in the app's own environment
    else:
        scheme = proxy_scheme(broken.proxy_url)
        message = (f"{broken.variable}={broken.proxy_url} uses the scheme {scheme}://, which "
                   "httpx does not support, so httpx.Client() raises ValueError: `import ollama` "
                   "itself fails, whatever host it calls.")
        address = broken.proxy_url.split("://", 1)[-1]
        fix = [FixStep("Use a scheme httpx supports, whichever the proxy speaks: http://, "
                       "https://, socks5:// or socks5h:// (socks5h needs httpx ≥ 0.28).",
                       (R.export(broken.variable, f"http://{address}"),
                        R.export(broken.variable, f"socks5://{address}"))),
               FixStep("Or remove the variable for this client (NO_PROXY does not help; only "
                       "NO_PROXY='*' avoids it)" + where + ".", unset)]
        confidence = Confidence.HIGH
    return Finding("proxy-unsupported", Severity.CRITICAL, message, evidence, fix, confidence)
