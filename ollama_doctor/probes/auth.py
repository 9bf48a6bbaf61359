"""``auth``: what the client sends, and why the server refuses it (401 and 403, told apart).

Checks:

1. What the user's client sends (``ctx.client_headers``, by ``--client``): credentials (its key
   variable as a bearer token — ``OLLAMA_API_KEY`` for ollama-python and langchain-ollama,
   ``OPENAI_API_KEY`` for OpenAI's SDKs, none for curl, requests, httpx or ollama-js — or
   ``--header`` values), the ``Origin`` (``--origin``), the ``Content-Type`` — all redacted in
   facts. A 401 while ``OLLAMA_API_KEY`` is set for a client that does not read it says so.
2. One representative call as the client would make it, along its path (through its proxy when
   one applies): ``POST /api/show`` for ``--model`` (never a generate or chat: those load the
   model), else ``GET /api/tags`` (``GET {base}/models`` for an OpenAI-style ``/v1`` base, or
   for an OpenAI client, whose base path is ``/v1``). ``GET /api/tags`` is the models probe's
   request too: made once per run for both (``Context.tags``).
3. **401.** Local Ollama never checks ``Authorization``, so a 401 without Ollama's
   ``signin_url`` proves an intermediary (``auth-required``): its ``WWW-Authenticate``
   challenge, whether credentials were sent, and whether sending them changed the answer.
   A 401 with ``signin_url`` is Ollama Cloud (``cloud-signin-required``).
4. **403.** Never reported before re-probing: the call is repeated (a) without ``Origin``,
   (b) with ``Host: localhost:<port>``, (c) with both changes. Whichever flips it decides
   ``origin-forbidden`` (fix: the exact ``OLLAMA_ORIGINS`` value, in the server's environment)
   or ``host-forbidden`` (fix: rewrite Host in nginx, ngrok, cloudflared, Caddy). When nothing
   flips: an empty body is Ollama's Host check by elimination (CORS needs an Origin), medium
   confidence; a body with proxy fingerprints (``Server``, ``Via``, ``X-Squid-Error``, HTML) is
   ``proxy-blocks``; Ollama's JSON ``ollama cloud is disabled`` for a cloud model is
   ``cloud-disabled``; any other body ``forbidden``.
5. With ``--origin`` and access granted: the CORS answer (``Access-Control-Allow-Origin``) and a
   browser's preflight (``OPTIONS``), which carries no credentials.

Facts: ``client`` (headers redacted, credentials source, origin, content type), ``call``,
``reprobes`` (each variant's status), ``origins`` (Ollama's default allow-list, whether the given
origin is in it), ``without_credentials``, ``preflight``.

Cause ids: ``auth-required``, ``cloud-signin-required``, ``cloud-disabled``,
``origin-forbidden``, ``host-forbidden``, ``forbidden``, ``proxy-blocks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ollama_doctor import modelname, net
from ollama_doctor import remedies as R
from ollama_doctor.context import SHARED_KEEP_BYTES, Context
from ollama_doctor.facts import AuthFacts
from ollama_doctor.local import Launcher
from ollama_doctor.redact import is_secret_name, redact_headers
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import base_path_kind

# Always appended to OLLAMA_ORIGINS by the server (envconfig AllowedOrigins;
# docs/ollama-wire.md §3).
DEFAULT_ORIGINS: tuple[str, ...] = (
    *(f"{scheme}://{host}{port}" for host in ("localhost", "127.0.0.1", "0.0.0.0")
      for port in ("", ":*") for scheme in ("http", "https")),
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)
# Schemes gin-contrib/cors accepts in an entry without '*'; others panic the server at start.
_PLAIN_OK = ("http", "https", "chrome-extension", "safari-extension", "moz-extension",
             "ms-browser-extension")
_EXTENSIONS = ("chrome-extension", "moz-extension", "safari-extension", "safari-web-extension",
               "ms-browser-extension")


# --------------------------------------------------------------------------------------------
# pure helpers


def wildcard_match(pattern: str, value: str) -> bool:
    """gin-contrib/cors matching: exact, ``*`` alone, or one ``*`` splitting prefix and suffix."""
    if pattern == "*":
        return True
    if "*" not in pattern:
        return pattern == value
    prefix, _, suffix = pattern.partition("*")
    return (len(value) >= len(prefix) + len(suffix) and value.startswith(prefix)
            and value.endswith(suffix))


def allowed_by_default(origin: str) -> bool:
    """Whether Ollama allows ``origin`` with an empty ``OLLAMA_ORIGINS``."""
    return any(wildcard_match(p, origin) for p in DEFAULT_ORIGINS)


def origins_entry(origin: str) -> str:
    """The ``OLLAMA_ORIGINS`` entry that admits ``origin``.

    Extension ids differ per browser profile (Firefox makes a new one per install), so an
    extension gets ``scheme://*``. A scheme cors would reject without ``*`` (``capacitor://``,
    ``obsidian://``) gets ``scheme://*`` too, because the plain entry would crash the server.
    ``null`` (sandboxed frames, ``file:`` pages) only ever matches ``*``.
    """
    value = origin.strip().rstrip("/")
    if not value or value.lower() == "null" or "://" not in value:
        return "*"
    scheme = value.split("://", 1)[0].lower()
    if scheme in _EXTENSIONS or scheme not in _PLAIN_OK:
        return f"{scheme}://*"
    return value


def proxy_fingerprints(reply: net.HttpReply) -> list[str]:
    """Signs that something other than Ollama wrote this answer (docs/ollama-wire.md §5)."""
    signs: list[str] = []
    for name in ("server", "via", "x-squid-error", "x-cache", "cf-ray", "proxy-agent"):
        if reply.headers.get(name):
            signs.append(f"{name}: {reply.headers[name][:80]}")
    head = reply.text.lstrip()[:512].lower()
    if head.startswith("<!doctype html") or "<html" in head:
        signs.append("HTML body")
    return signs


def flips(status: int | None) -> bool:
    """A re-probe that got past the access check (a 404 for a missing model counts)."""
    return status is not None and status not in (401, 403, 407) and status < 500


@dataclass(frozen=True)
class Verdict403:
    cause: str
    confidence: Confidence
    reason: str
    also_origin: bool = False  # both checks refuse: fixing one alone is not enough


def decide_403(*, origin_sent: bool, no_origin: int | None, localhost_host: int | None,
               both: int | None, body: str, fingerprints: list[str],
               ollama_error: str | None) -> Verdict403:
    """Which check refused the call, from what the re-probes answered (statuses or ``None``
    when a variant was not sent)."""
    if origin_sent and flips(no_origin):
        return Verdict403("origin-forbidden", Confidence.HIGH,
                          "the same call without the Origin header gets through")
    if flips(localhost_host):
        return Verdict403("host-forbidden", Confidence.HIGH,
                          "the same call with Host: localhost gets through")
    if origin_sent and flips(both):
        return Verdict403("host-forbidden", Confidence.HIGH,
                          "only the call without Origin and with Host: localhost gets through: "
                          "both the Host and the Origin checks refuse it", also_origin=True)
    if ollama_error is not None:
        return Verdict403("forbidden", Confidence.HIGH,
                          f"Ollama itself refuses it: {ollama_error!r}")
    if not body.strip():
        why = ("no Origin was sent, and Ollama's CORS check applies only to calls with one"
               if not origin_sent else
               "removing the Origin header changes nothing")
        return Verdict403("host-forbidden", Confidence.MEDIUM,
                          f"an empty-body 403 is Ollama's Host or Origin check, and {why}; "
                          "Host: localhost did not get through either (a tunnel or proxy may "
                          "set Host itself)")
    if fingerprints:
        return Verdict403("proxy-blocks", Confidence.HIGH,
                          "the 403 carries a body and signs of a proxy ("
                          + ", ".join(fingerprints) + "); Ollama's own 403s have no body")
    return Verdict403("forbidden", Confidence.MEDIUM,
                      "the 403 carries a body, so neither Ollama's Origin nor its Host check "
                      "wrote it")


# --------------------------------------------------------------------------------------------
# the calls


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: dict[str, Any] | None


def representative_call(ctx: Context) -> Call:
    from ollama_doctor.probes.models import native_base

    target = ctx.target
    if base_path_kind(target.path) == "openai" or (
            not target.path and ctx.client.base_path == "/v1"):  # an OpenAI SDK's own base
        return Call("GET", ctx.client_base_url() + "/models", None)
    base = native_base(ctx)
    if ctx.options.model:
        return Call("POST", base + "/api/show", {"model": ctx.options.model.strip()})
    return Call("GET", base + "/api/tags", None)


def native_base_of(ctx: Context) -> str:
    from ollama_doctor.probes.models import native_base

    return native_base(ctx)


def _headers(ctx: Context, *, credentials: bool = True, origin: bool = True,
             host: str | None = None) -> dict[str, str]:
    headers = ctx.client_headers(with_origin=origin)
    if not origin:
        headers = {k: v for k, v in headers.items() if k.lower() != "origin"}
    if not credentials:
        headers = {k: v for k, v in headers.items() if not is_secret_name(k)}
    if host is not None:
        headers = {k: v for k, v in headers.items() if k.lower() != "host"}
        headers["Host"] = host
    return headers


def _send(ctx: Context, call: Call, headers: dict[str, str]) -> net.HttpReply:
    return ctx.http(call.method, call.url, headers=headers, json_body=call.body,
                    max_bytes=SHARED_KEEP_BYTES)


def _first(ctx: Context, call: Call, headers: dict[str, str]) -> net.HttpReply:
    """The representative call as the client makes it. ``GET /api/tags`` is also the models
    probe's request (the same one unless ``--origin`` adds a header): it is made once per run
    and shared (``models.shared_tags``). Its reply keeps the body's first 64 KiB, as much as
    this probe reads of any answer."""
    if call.method == "GET" and call.body is None and urlsplit(call.url).path.endswith(
            "/api/tags"):
        from ollama_doctor.probes.models import shared_tags

        return shared_tags(ctx, call.url, headers, parsed=False).reply
    return _send(ctx, call, headers)


def _credentials_source(ctx: Context) -> str | None:
    given = [name for name, _ in ctx.options.headers if is_secret_name(name)]
    if given:
        return "--header " + ", ".join(given)
    variable = ctx.key_variable()
    if variable and "Authorization" in ctx.client_headers():
        return f"{variable}, which {ctx.client.name} sends in its Authorization header"
    return None


def _client_facts(ctx: Context) -> dict[str, Any]:
    sent = ctx.client_headers()
    content_type = next((v for k, v in ctx.options.headers if k.lower() == "content-type"), None)
    out: dict[str, Any] = {
        "headers": redact_headers(sent),
        "credentials": _credentials_source(ctx),
        "origin": ctx.options.origin,
        "content_type": content_type,
    }
    if content_type is None:
        out["content_type_note"] = ("not given; ollama-python, ollama-js and the OpenAI SDKs "
                                    "send application/json, and Ollama reads the body as JSON "
                                    "whatever the header says")
    elif "application/json" not in content_type.lower():
        out["content_type_note"] = ("Ollama reads the body as JSON whatever Content-Type says, "
                                    "but a proxy or a browser's CORS preflight may treat "
                                    f"{content_type!r} differently")
    return out


# --------------------------------------------------------------------------------------------
# the probe


def run(ctx: Context) -> Outcome:
    outcome = ctx.on_path(_run(ctx))
    broken = _broken_key(ctx)
    if broken is not None:  # the doctor left the key out (context.client_headers); say why
        outcome.findings.insert(0, broken)
        if outcome.status in (Status.PASS, Status.WARN):
            outcome.status = Status.FAIL
            outcome.summary += f"; {broken.evidence['variable']} holds a stray character"
    return outcome.with_evidence(AuthFacts.from_result(outcome.facts, outcome.findings))


def _broken_key(ctx: Context) -> Finding | None:
    """The key variable this client sends, when it holds a control character (a trailing
    ``\\r`` from a ``.env`` saved on Windows)."""
    from ollama_doctor.sanitize import api_key_finding

    variable = ctx.key_variable()
    return api_key_finding(ctx.env, variable) if variable else None


def _run(ctx: Context) -> Outcome:
    facts: dict[str, Any] = {"client": _client_facts(ctx)}
    findings: list[Finding] = []
    call = representative_call(ctx)
    sent = _headers(ctx)
    reply = _first(ctx, call, sent)
    facts["call"] = reply.to_evidence()
    origin = ctx.options.origin
    facts["origins"] = _origin_facts(origin)

    if reply.error is not None:
        return Outcome(Status.WARN, f"{call.method} {call.url} failed ({reply.describe()}); "
                                    "access could not be checked", facts)
    if reply.status == 401:
        _judge_401(ctx, call, reply, facts, findings)
        return Outcome(Status.FAIL, f"{call.method} {urlsplit(call.url).path} answered 401",
                       facts, findings)
    if reply.status == 403 and "cloud is disabled" in (reply.error_message() or "").lower():
        from ollama_doctor.probes.warmup import cloud_finding

        # Ollama's own JSON 403 for a cloud model on a server with cloud turned off
        # (server/cloud_proxy.go, v0.33): not an Origin, Host or proxy question.
        findings.append(cloud_finding(ctx.options.model or "?", native_base_of(ctx), reply))
        return Outcome(Status.FAIL, f"{call.method} {urlsplit(call.url).path} answered 403 "
                                    "(cloud-disabled)", facts, findings)
    if reply.status == 403:
        _judge_403(ctx, call, reply, facts, findings)
        return Outcome(Status.FAIL, f"{call.method} {urlsplit(call.url).path} answered 403 "
                                    f"({findings[0].cause})", facts, findings)

    # access granted: what the credentials and the Origin change
    if facts["client"]["credentials"]:
        bare = _send(ctx, call, _headers(ctx, credentials=False))
        facts["without_credentials"] = bare.describe()
        if bare.status == 401:
            facts["credentials_needed"] = True
    if origin:
        _check_cors(ctx, call, reply, facts, findings)
    summary = f"{call.method} {urlsplit(call.url).path} answers {reply.status}"
    if facts["client"]["credentials"]:
        summary += " with the client's credentials"
    if origin:
        summary += f" for Origin {origin}"
    return Outcome.from_findings(summary, facts, findings)


def _origin_facts(origin: str | None) -> dict[str, Any]:
    if origin is None:
        return {"given": None, "allowed_by_default": list(DEFAULT_ORIGINS),
                "note": "Browsers, extensions and some desktop apps send an Origin: pass "
                        "--origin to test yours. Extensions (chrome-extension://, "
                        "moz-extension://) and web sites are not allowed by default."}
    return {"given": origin, "in_default_list": allowed_by_default(origin),
            "entry_to_allow_it": origins_entry(origin)}


def _judge_401(ctx: Context, call: Call, reply: net.HttpReply, facts: dict[str, Any],
               findings: list[Finding]) -> None:
    data = reply.json()
    signin = data.get("signin_url") if isinstance(data, dict) else None
    model = ctx.options.model
    cloud_model = bool(model) and modelname.is_cloud(model or "")
    if isinstance(signin, str) or (cloud_model and reply.error_message() == "unauthorized"):
        evidence: dict[str, Any] = {"call": reply.to_evidence()}
        if isinstance(signin, str):
            evidence["signin_url"] = signin
        findings.append(R.signin_finding(model, ctx.target.root_url, evidence))
        return

    source = facts["client"]["credentials"]
    challenge = reply.headers.get("www-authenticate")
    scheme, params = parse_challenge(challenge)
    # kept as scheme + parameters: "Bearer realm=…" as one string reads like a token to redact
    evidence = {"call": reply.to_evidence(),
                "www_authenticate": {"scheme": scheme, "params": params} if challenge else None,
                "credentials_sent": source is not None, "credentials_source": source}
    fingerprints = proxy_fingerprints(reply)
    if fingerprints:
        evidence["intermediary"] = fingerprints
    who = reply.headers.get("server") or "An intermediary"
    base = f"{who} in front of Ollama at {ctx.target.root_url}"
    if source is not None:
        bare = _send(ctx, call, _headers(ctx, credentials=False))
        evidence["without_credentials"] = bare.describe()
        changed = bare.status != reply.status or (
            bare.headers.get("www-authenticate") != challenge)
        evidence["credentials_change_the_answer"] = changed
        facts["without_credentials"] = bare.describe()
        versus = ("and a different answer without them" if changed
                  else "the same as without them")
        message = (f"{base} rejects the credentials your client sends ({source}): 401 "
                   f"{_challenge_text(scheme, params)}, {versus}. "
                   "Local Ollama never checks Authorization.")
    else:
        message = (f"{base} demands credentials and your client sends none: 401 "
                   f"{_challenge_text(scheme, params)}. Local Ollama never checks "
                   "Authorization, so the token is for that proxy.")
        client = ctx.client
        if ctx.env.get("OLLAMA_API_KEY") and not client.reads_api_key:
            message += (f" OLLAMA_API_KEY is set, but {client.name} does not read it: it "
                        "must be given the token itself.")
            evidence["unread_variable"] = "OLLAMA_API_KEY"
    url = call.url
    if (scheme or "").lower() == "basic":
        fixes = [FixStep("Send the proxy's user and password as a Basic Authorization header "
                         "(ollama-python: Client(headers={'Authorization': 'Basic …'})).",
                         (R.curl(url, method=call.method, body=call.body,
                                 extra="-u 'USER:PASSWORD'"),
                          R.sh("ollama-doctor check --header \"Authorization: Basic "
                               "$(printf %s 'USER:PASSWORD' | base64)\"")))]
    else:
        key_env = ctx.client.key_env or "OLLAMA_API_KEY"
        fixes = [FixStep(f"Give the client the proxy's token: {ctx.client.name} "
                         + (f"sends {key_env} as 'Authorization: Bearer …'"
                            if ctx.client.key_env else "reads no key variable; pass a header")
                         + "; other clients take a header.",
                         (R.api_key_export(key_env),
                          R.curl(url, method=call.method, body=call.body,
                                 headers=(f"Authorization: Bearer {R.SECRET_PLACEHOLDER}",))))]
    if source is not None:
        fixes.insert(0, FixStep("Check the token: it is wrong, expired, or for another proxy."))
    findings.append(Finding("auth-required", Severity.ERROR, message, evidence, fixes,
                            code=401))


def parse_challenge(value: str | None) -> tuple[str | None, str | None]:
    """``WWW-Authenticate: Bearer realm="ollama"`` → ``("Bearer", 'realm="ollama"')``."""
    if not value or not value.strip():
        return None, None
    scheme, _, params = value.strip().partition(" ")
    return scheme, params.strip() or None


def _challenge_text(scheme: str | None, params: str | None) -> str:
    # "Bearer <word>" would read as a token to the redactor, so the scheme is quoted
    if scheme is None:
        return "without a WWW-Authenticate challenge"
    return f"with the challenge {scheme!r}" + (f" ({params})" if params else "")


def _judge_403(ctx: Context, call: Call, reply: net.HttpReply, facts: dict[str, Any],
               findings: list[Finding]) -> None:
    origin_sent = any(k.lower() == "origin" for k in _headers(ctx))
    localhost = f"localhost:{ctx.target.port}"
    variants: dict[str, net.HttpReply] = {}
    if origin_sent:
        variants["without_origin"] = _send(ctx, call, _headers(ctx, origin=False))
    variants["host_localhost"] = _send(ctx, call, _headers(ctx, host=localhost))
    if origin_sent:
        variants["without_origin_host_localhost"] = _send(
            ctx, call, _headers(ctx, origin=False, host=localhost))
    facts["reprobes"] = {name: r.describe() for name, r in variants.items()}

    def status(name: str) -> int | None:
        r = variants.get(name)
        return r.status if r is not None else None

    body = reply.text
    ollama_error = reply.error_message() if not proxy_fingerprints(reply) else None
    fingerprints = proxy_fingerprints(reply)
    verdict = decide_403(origin_sent=origin_sent, no_origin=status("without_origin"),
                         localhost_host=status("host_localhost"),
                         both=status("without_origin_host_localhost"), body=body,
                         fingerprints=fingerprints, ollama_error=ollama_error)
    evidence: dict[str, Any] = {
        "call": reply.to_evidence(), "body_empty": not body.strip(),
        "reprobes": {name: r.to_evidence(body=False) for name, r in variants.items()},
        "decided_by": verdict.reason,
    }
    if fingerprints:
        evidence["intermediary"] = fingerprints
    sent_host = next((v for k, v in ctx.options.headers if k.lower() == "host"),
                     f"{ctx.target.bracketed_host}:{ctx.target.port}")
    if verdict.cause == "origin-forbidden":
        findings.append(_origin_finding(ctx, evidence, verdict))
    elif verdict.cause == "host-forbidden":
        findings.append(_host_finding(ctx, evidence, verdict, sent_host))
        if verdict.also_origin:
            findings.append(_origin_finding(ctx, dict(evidence), verdict))
    elif verdict.cause == "proxy-blocks":
        who = reply.headers.get("server") or reply.headers.get("via") or "A proxy"
        findings.append(Finding(
            "proxy-blocks", Severity.ERROR,
            f"{who} between the client and Ollama refuses the call with its own 403 page; "
            "Ollama never sees it.", evidence,
            [FixStep("Ask the proxy's administrators to allow this host, or reach Ollama "
                     "without that proxy (NO_PROXY, a direct route)."),
             FixStep("See the page it sent for the policy that blocked it.",
                     (R.curl(call.url, method=call.method, body=call.body, extra="-i"),))],
            verdict.confidence, code=403))
    else:
        cloud_off = ollama_error is not None and "cloud is disabled" in ollama_error
        fix = ([FixStep("Ollama Cloud is disabled on this server: unset OLLAMA_NO_CLOUD (or "
                        "disable_ollama_cloud in ~/.ollama/server.json) and restart it, or use "
                        "a local model.", (R.pull("llama3.2"),))] if cloud_off else
               [FixStep("Read the 403 body: it names the policy that refused the call.",
                        (R.curl(call.url, method=call.method, body=call.body, extra="-i"),))])
        findings.append(Finding(
            "forbidden", Severity.ERROR,
            f"The call is refused by policy (403): {verdict.reason}.", evidence, fix,
            verdict.confidence, code=403))


def _origin_finding(ctx: Context, evidence: dict[str, Any], verdict: Verdict403) -> Finding:
    origin = ctx.options.origin or ""
    entry = origins_entry(origin)
    evidence = {**evidence, "origin": origin, "ollama_origins_entry": entry,
                "in_default_list": allowed_by_default(origin)}
    warn_all = " ('*' lets every web page call the server)" if entry == "*" else ""
    message = (f"Ollama refuses the Origin {origin!r} (its CORS check answers an empty-body 403): "
               f"{verdict.reason}. Add {entry}{warn_all} to OLLAMA_ORIGINS in the server's "
               "environment.")
    steps = [
        FixStep("Set OLLAMA_ORIGINS where the *server* starts, then restart it. Keep entries "
                "already there, comma-separated with no spaces: a space after a comma crashes "
                "the server.",
                (R.systemd_edit("OLLAMA_ORIGINS", entry), *R.systemd_restart())),
        *R.server_env(Launcher("launchd", ""), "OLLAMA_ORIGINS", entry),
        FixStep("Started by hand or in Docker:",
                (R.serve_with("OLLAMA_ORIGINS", entry),
                 R.docker_run("-d", f"-e OLLAMA_ORIGINS={R.q(entry)}", "-p 11434:11434",
                              "-v ollama:/root/.ollama", "--name ollama"))),
    ]
    return Finding("origin-forbidden", Severity.ERROR, message, evidence, steps,
                   verdict.confidence, code=403)


def _host_finding(ctx: Context, evidence: dict[str, Any], verdict: Verdict403,
                  sent_host: str) -> Finding:
    port = ctx.target.port if ctx.target.is_loopback and not any(
        k.lower() == "host" for k, _ in ctx.options.headers) else 11434
    up = f"localhost:{port}"
    evidence = {**evidence, "host_sent": sent_host}
    message = (f"Ollama refuses the Host header {sent_host!r} (a loopback-bound server accepts "
               f"only local names; empty-body 403): {verdict.reason}. Rewrite Host to {up} "
               "in the proxy or tunnel.")
    steps = [
        FixStep(f"Make the reverse proxy or tunnel send Host: {up} to Ollama. nginx:",
                (R.nginx(f"proxy_set_header Host {up};"),)),
        FixStep("A tunnel:",
                (R.sh(f'ngrok http {port} --host-header="{up}"'),
                 R.sh(f'cloudflared tunnel --url http://{up} --http-host-header="{up}"'))),
        FixStep("Caddy (in the site block of the Caddyfile):",
                (R.config(f"reverse_proxy {up} {{ header_up Host {up} }}"),)),
        FixStep("Or make Ollama listen on all interfaces, which turns the Host check off "
                "(firewall the port then).", (R.serve_with("OLLAMA_HOST", f"0.0.0.0:{port}"),)),
    ]
    return Finding("host-forbidden", Severity.ERROR, message, evidence, steps,
                   verdict.confidence, code=403)


def _check_cors(ctx: Context, call: Call, reply: net.HttpReply, facts: dict[str, Any],
                findings: list[Finding]) -> None:
    """Access granted for a call with an Origin: will a browser also accept the answer?"""
    origin = ctx.options.origin or ""
    acao = reply.headers.get("access-control-allow-origin")
    facts["origins"]["allow_origin_header"] = acao
    same_origin = origin.rstrip("/").lower() in (
        f"http://{ctx.target.bracketed_host}:{ctx.target.port}".lower(),
        f"https://{ctx.target.bracketed_host}:{ctx.target.port}".lower())
    wanted = ["content-type"]
    if facts["client"]["credentials"]:
        wanted.append("authorization")
    preflight = ctx.http("OPTIONS", call.url, headers={
        "Origin": origin, "Access-Control-Request-Method": call.method,
        "Access-Control-Request-Headers": ",".join(wanted)}, max_bytes=16 * 1024)
    allow_headers = preflight.headers.get("access-control-allow-headers", "")
    facts["preflight"] = {"answer": preflight.describe(),
                          "allow_origin": preflight.headers.get("access-control-allow-origin"),
                          "allow_headers": allow_headers or None}
    if same_origin:
        return
    if preflight.status is not None and not 200 <= preflight.status < 300:
        cause = "auth-required" if preflight.status == 401 else "origin-forbidden"
        findings.append(Finding(
            cause, Severity.WARNING,
            f"A browser's CORS preflight (OPTIONS, which carries no credentials) for Origin "
            f"{origin!r} answers {preflight.status}, so a browser app would be blocked although "
            "the call itself works.",
            {"preflight": preflight.to_evidence(), "call": reply.to_evidence(body=False)},
            [FixStep("Let the proxy answer OPTIONS without credentials, or call from outside "
                     "a browser.")], Confidence.MEDIUM, code=preflight.status))
    elif acao is None or (acao != "*" and acao != origin):
        findings.append(Finding(
            "origin-forbidden", Severity.WARNING,
            f"The answer carries no Access-Control-Allow-Origin for {origin!r}, so a browser "
            "would refuse to hand it to the page although the server answered.",
            {"call": reply.to_evidence(body=False), "allow_origin": acao},
            [FixStep("Allow the Origin in the server's environment, then restart it.",
                     (R.systemd_edit("OLLAMA_ORIGINS", origins_entry(origin)),
                      *R.systemd_restart()))], Confidence.MEDIUM, code=reply.status))
