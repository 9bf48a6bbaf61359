"""The ``auth`` probe: the pure deciders by table, then the real CLI against the emulator, the
reverse proxy from ``tests/support`` and small servers that play a WAF or a corporate proxy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ollama_doctor import net
from ollama_doctor.probes import auth
from ollama_doctor.probes.auth import Verdict403, decide_403
from ollama_doctor.result import Confidence
from tests.conftest import CliRun
from tests.support.canned import CannedServer, Reply
from tests.support.report import check_of, commands, errors, top
from tests.support.reverse_proxy import ReverseProxy

# ---------------------------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(("pattern", "value", "match"), [
    ("*", "anything://at-all", True),
    ("http://localhost", "http://localhost", True),
    ("http://localhost", "http://localhost:3000", False),
    ("http://localhost:*", "http://localhost:3000", True),
    ("http://localhost:*", "http://localhost.evil.com", False),
    ("chrome-extension://*", "chrome-extension://abcdef", True),
    ("app://*", "app://obsidian.md", True),
    ("https://*.example.com", "https://a.example.com", True),
    ("https://*.example.com", "https://example.com", False),
])
def test_wildcard_match(pattern: str, value: str, match: bool) -> None:
    assert auth.wildcard_match(pattern, value) is match


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost", True), ("http://localhost:5173", True), ("https://127.0.0.1:8443", True),
    ("http://0.0.0.0:3000", True), ("app://obsidian.md", True), ("file://", True),
    ("tauri://localhost", True), ("vscode-webview://abc", True), ("vscode-file://vscode-app", True),
    ("chrome-extension://abc", False), ("moz-extension://1234", False),
    ("http://tauri.localhost", False), ("http://[::1]:3000", False),
    ("http://192.168.1.5:3000", False), ("https://chat.example.com", False), ("null", False),
])
def test_allowed_by_default(origin: str, allowed: bool) -> None:
    assert auth.allowed_by_default(origin) is allowed


@pytest.mark.parametrize(("origin", "entry"), [
    ("chrome-extension://abc", "chrome-extension://*"),
    ("moz-extension://0c7b-11ee", "moz-extension://*"),
    ("safari-web-extension://X", "safari-web-extension://*"),
    ("https://chat.example.com", "https://chat.example.com"),
    ("http://192.168.1.5:3000/", "http://192.168.1.5:3000"),
    ("http://tauri.localhost", "http://tauri.localhost"),
    ("capacitor://localhost", "capacitor://*"),  # a plain entry would crash the server
    ("null", "*"),
    ("", "*"),
])
def test_origins_entry(origin: str, entry: str) -> None:
    assert auth.origins_entry(origin) == entry


def _reply(status: int, body: str = "", **headers: str) -> net.HttpReply:
    return net.HttpReply("GET", "http://x/", status, {k.replace("_", "-"): v
                                                     for k, v in headers.items()}, body.encode())


def test_proxy_fingerprints() -> None:
    assert auth.proxy_fingerprints(_reply(403)) == []
    assert auth.proxy_fingerprints(_reply(403, '{"error":"x"}')) == []
    squid = _reply(403, "<!DOCTYPE html><html>Access denied</html>", server="squid/6.6",
                   x_squid_error="ERR_ACCESS_DENIED 0", via="1.1 proxy (squid/6.6)")
    assert auth.proxy_fingerprints(squid) == [
        "server: squid/6.6", "via: 1.1 proxy (squid/6.6)", "x-squid-error: ERR_ACCESS_DENIED 0",
        "HTML body"]


@pytest.mark.parametrize(("status", "flips"), [
    (200, True), (404, True), (204, True), (401, False), (403, False), (407, False),
    (502, False), (None, False),
])
def test_flips(status: int | None, flips: bool) -> None:
    assert auth.flips(status) is flips


HIGH, MEDIUM = Confidence.HIGH, Confidence.MEDIUM


@pytest.mark.parametrize(("kwargs", "cause", "confidence", "also_origin"), [
    # S17: removing the Origin flips it
    (dict(origin_sent=True, no_origin=200, localhost_host=403, both=200), "origin-forbidden",
     HIGH, False),
    # S18: Host: localhost flips it
    (dict(origin_sent=False, no_origin=None, localhost_host=200, both=None), "host-forbidden",
     HIGH, False),
    (dict(origin_sent=True, no_origin=403, localhost_host=200, both=200), "host-forbidden",
     HIGH, False),
    # only both changes together: both checks refuse
    (dict(origin_sent=True, no_origin=403, localhost_host=403, both=200), "host-forbidden",
     HIGH, True),
    # a 404 for a missing model still means access was granted
    (dict(origin_sent=True, no_origin=404, localhost_host=403, both=404), "origin-forbidden",
     HIGH, False),
    # nothing flips, empty body, no Origin sent: the Host check by elimination
    (dict(origin_sent=False, no_origin=None, localhost_host=403, both=None), "host-forbidden",
     MEDIUM, False),
    (dict(origin_sent=True, no_origin=403, localhost_host=403, both=403), "host-forbidden",
     MEDIUM, False),
])
def test_decide_403_by_flips(kwargs: dict[str, Any], cause: str, confidence: Confidence,
                             also_origin: bool) -> None:
    verdict = decide_403(body="", fingerprints=[], ollama_error=None, **kwargs)
    assert (verdict.cause, verdict.confidence, verdict.also_origin) == (cause, confidence,
                                                                        also_origin)


def test_decide_403_by_body() -> None:
    nothing = dict(origin_sent=False, no_origin=None, localhost_host=403, both=None)
    html = decide_403(body="<html>Access denied</html>", fingerprints=["server: squid/6.6"],
                      ollama_error=None, **nothing)  # type: ignore[arg-type]
    assert (html.cause, html.confidence) == ("proxy-blocks", HIGH)
    waf = decide_403(body="Request blocked.", fingerprints=[], ollama_error=None,
                     **nothing)  # type: ignore[arg-type]
    assert (waf.cause, waf.confidence) == ("forbidden", MEDIUM)
    cloud = decide_403(body='{"error":"ollama cloud is disabled: remote model is unavailable"}',
                       fingerprints=[],
                       ollama_error="ollama cloud is disabled: remote model is unavailable",
                       **nothing)  # type: ignore[arg-type]
    assert cloud == Verdict403(
        "forbidden", HIGH,
        "Ollama itself refuses it: 'ollama cloud is disabled: remote model is unavailable'")
    # a flip always wins over the body
    flipped = decide_403(body="<html>x</html>", fingerprints=["HTML body"], ollama_error=None,
                         origin_sent=False, no_origin=None, localhost_host=200, both=None)
    assert flipped.cause == "host-forbidden"


# ---------------------------------------------------------------------------------------------
# end to end: helpers




@pytest.fixture
def reverse_proxy() -> Iterator[Callable[..., ReverseProxy]]:
    started: list[ReverseProxy] = []

    def start(upstream: str, **kwargs: Any) -> ReverseProxy:
        proxy = ReverseProxy(upstream, **kwargs)
        proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def canned() -> Iterator[Callable[[Reply], CannedServer]]:
    """A server answering every request with one ``Reply`` (a WAF, a proxy, a tunnel)."""
    servers: list[CannedServer] = []

    def start(reply: Reply) -> CannedServer:
        server = CannedServer(lambda _request: reply, name="canned")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------------------------
# S17: a browser extension's Origin


def test_s17_extension_origin_forbidden(cli: Callable[..., CliRun],
                                        emulator: Callable[..., Any]) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "--origin", "chrome-extension://abc", "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("origin-forbidden", 403, "high")
    assert diag["explanation"] == (
        "Ollama refuses the Origin 'chrome-extension://abc' (its CORS check answers an "
        "empty-body 403): the same call without the Origin header gets through. Add "
        "chrome-extension://* to OLLAMA_ORIGINS in the server's environment.")
    assert commands(diag) == [
        "sudo systemctl edit ollama   # add: [Service]  "
        'Environment="OLLAMA_ORIGINS=chrome-extension://*"',
        "sudo systemctl restart ollama",
        "systemctl show ollama --property=Environment",
        'launchctl setenv OLLAMA_ORIGINS "chrome-extension://*"',
        "osascript -e 'quit app \"Ollama\"' && open -a Ollama",
        "OLLAMA_ORIGINS='chrome-extension://*' ollama serve",
        "docker run -d -e OLLAMA_ORIGINS='chrome-extension://*' -p 11434:11434 "
        "-v ollama:/root/.ollama --name ollama ollama/ollama"]
    assert "no spaces" in diag["fix"][0]["text"]
    assert diag["evidence"]["body_empty"] is True
    assert check_of(doc, "auth")["facts"]["reprobes"] == {
        "without_origin": "HTTP 200", "host_localhost": "HTTP 403",
        "without_origin_host_localhost": "HTTP 200"}
    assert errors(doc) == ["origin-forbidden"]


def test_s17_healthy_origin_allowed(cli: Callable[..., CliRun],
                                    emulator: Callable[..., Any]) -> None:
    emu = emulator(origins="chrome-extension://*")
    run = cli("probe", "auth", "--host", emu.url, "--origin", "chrome-extension://abc", "--json")
    assert run.code == 0, run.stdout
    doc = run.json()
    assert errors(doc) == []
    facts = check_of(doc, "auth")["facts"]
    assert facts["origins"] == {"given": "chrome-extension://abc", "in_default_list": False,
                                "entry_to_allow_it": "chrome-extension://*",
                                "allow_origin_header": "chrome-extension://abc"}
    assert facts["preflight"]["answer"] == "HTTP 204"
    assert facts["preflight"]["allow_origin"] == "chrome-extension://abc"


def test_default_origin_and_no_origin_pass(cli: Callable[..., CliRun],
                                           emulator: Callable[..., Any]) -> None:
    emu = emulator()
    run = cli("probe", "auth", "--host", emu.url, "--origin", "http://localhost:5173", "--json")
    assert run.code == 0
    assert check_of(run.json(), "auth")["status"] == "pass"
    run = cli("probe", "auth", "--host", emu.url, "--json")
    assert run.code == 0
    check = check_of(run.json(), "auth")
    assert (check["status"], check["summary"]) == ("pass", "GET /api/tags answers 200 — direct")
    assert check["facts"]["origins"]["allowed_by_default"][-1] == "vscode-file://*"
    assert "chrome-extension://" in check["facts"]["origins"]["note"]


# ---------------------------------------------------------------------------------------------
# S18: a reverse proxy passes a public Host to a loopback-bound Ollama


def test_s18_reverse_proxy_host_forbidden(cli: Callable[..., CliRun],
                                          emulator: Callable[..., Any],
                                          reverse_proxy: Callable[..., ReverseProxy]) -> None:
    emu = emulator()
    proxy = reverse_proxy(emu.url)
    run = cli("check", "--host", proxy.url, "--header", "Host: ollama.example.com", "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("host-forbidden", 403, "high")
    assert diag["explanation"] == (
        "Ollama refuses the Host header 'ollama.example.com' (a loopback-bound server accepts "
        "only local names; empty-body 403): the same call with Host: localhost gets through. "
        "Rewrite Host to localhost:11434 in the proxy or tunnel.")
    assert commands(diag) == [
        "proxy_set_header Host localhost:11434;",
        'ngrok http 11434 --host-header="localhost:11434"',
        'cloudflared tunnel --url http://localhost:11434 --http-host-header="localhost:11434"',
        "reverse_proxy localhost:11434 { header_up Host localhost:11434 }",
        "OLLAMA_HOST=0.0.0.0:11434 ollama serve"]
    # the re-probe really went through the proxy with Host: localhost
    assert any(r.headers.get("host") == f"localhost:{proxy.port}" for r in proxy.requests)


def test_s18_healthy_proxy_rewrites_host(cli: Callable[..., CliRun],
                                         emulator: Callable[..., Any],
                                         reverse_proxy: Callable[..., ReverseProxy]) -> None:
    emu = emulator()
    proxy = reverse_proxy(emu.url, host_header="localhost:11434")
    run = cli("probe", "auth", "--host", proxy.url, "--header", "Host: ollama.example.com",
              "--json")
    assert run.code == 0, run.stdout
    assert errors(run.json()) == []


def test_empty_403_that_nothing_flips_is_host_by_elimination(
        cli: Callable[..., CliRun], canned: Callable[[Reply], CannedServer]) -> None:
    # a tunnel that sets Host itself: Host: localhost cannot flip it
    tunnel = canned(Reply(403, content_type=None))
    run = cli("probe", "auth", "--host", tunnel.url, "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("host-forbidden", 403, "medium")
    assert "no Origin was sent" in diag["evidence"]["decided_by"]
    # never reported before the re-probe ran
    assert [r.headers.get("host") for r in tunnel.requests][-1] == f"localhost:{tunnel.port}"


# ---------------------------------------------------------------------------------------------
# 403 with a body: a proxy's page or a WAF


def test_proxy_page_403_is_proxy_blocks(cli: Callable[..., CliRun],
                                        canned: Callable[[Reply], CannedServer]) -> None:
    page = b"<!DOCTYPE html><html><body><h1>ERROR</h1>Access Denied.</body></html>"
    squid = canned(Reply(403, page, "text/html", (
        ("Server", "squid/6.6"), ("X-Squid-Error", "ERR_ACCESS_DENIED 0"),
        ("Via", "1.1 proxy.corp (squid/6.6)"))))
    run = cli("check", "--host", squid.url, "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"]) == ("proxy-blocks", 403)
    assert diag["explanation"] == ("squid/6.6 between the client and Ollama refuses the call with "
                                   "its own 403 page; Ollama never sees it.")
    assert diag["evidence"]["intermediary"] == [
        "server: squid/6.6", "via: 1.1 proxy.corp (squid/6.6)",
        "x-squid-error: ERR_ACCESS_DENIED 0", "HTML body"]
    assert set(check_of(doc, "auth")["facts"]["reprobes"]) == {"host_localhost"}


def test_waf_403_with_text_is_forbidden(cli: Callable[..., CliRun],
                                        canned: Callable[[Reply], CannedServer]) -> None:
    waf = canned(Reply(403, b"Request blocked by policy.", "text/plain"))
    run = cli("probe", "auth", "--host", waf.url, "--origin", "https://app.example.com",
              "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("forbidden", 403, "medium")
    assert len(waf.requests) >= 4  # the call and its three re-probes


# ---------------------------------------------------------------------------------------------
# S21: an auth proxy in front of Ollama


def test_s21_bearer_gate_auth_required(cli: Callable[..., CliRun],
                                       emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="TOKEN")
    run = cli("check", "--host", emu.url, "--json")
    doc = run.json()
    assert run.code == 1
    diag = top(doc)
    assert (diag["cause"], diag["code"], diag["confidence"]) == ("auth-required", 401, "high")
    assert diag["explanation"] == (
        f"An intermediary in front of Ollama at {emu.url} demands credentials and your client "
        "sends none: 401 with the challenge 'Bearer' (realm=\"ollama\"). Local Ollama never checks "
        "Authorization, so the token is for that proxy.")
    assert diag["evidence"]["www_authenticate"] == {"scheme": "Bearer",
                                                    "params": 'realm="ollama"'}
    assert diag["evidence"]["credentials_sent"] is False
    assert commands(diag) == ["export OLLAMA_API_KEY=YOUR_TOKEN",
                              f"curl -H 'Authorization: Bearer YOUR_TOKEN' {emu.url}/api/tags"]


def test_s21_healthy_with_the_key(cli: Callable[..., CliRun],
                                  emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="TOKEN")
    run = cli("check", "--host", emu.url, "--json", env={"OLLAMA_API_KEY": "TOKEN"})
    doc = run.json()
    assert run.code == 0, [(d["cause"], d["explanation"]) for d in doc["diagnosis"]]
    assert errors(doc) == []
    facts = check_of(doc, "auth")["facts"]
    assert facts["client"]["headers"] == {"Authorization": "***"}
    assert facts["client"]["credentials"].startswith("OLLAMA_API_KEY")
    assert (facts["without_credentials"], facts["credentials_needed"]) == ("HTTP 401", True)
    assert "TOKEN" not in run.stdout


def test_s21_wrong_key_is_rejected(cli: Callable[..., CliRun],
                                   emulator: Callable[..., Any]) -> None:
    emu = emulator(auth="TOKEN")
    secret = "wrong-secret-1234"
    run = cli("probe", "auth", "--host", emu.url, "--json", env={"OLLAMA_API_KEY": secret})
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("auth-required", 401)
    assert diag["explanation"].startswith(
        f"An intermediary in front of Ollama at {emu.url} rejects the credentials your client "
        "sends (OLLAMA_API_KEY, which ollama-python sends in its Authorization header): 401 with "
        "the challenge 'Bearer' (realm=\"ollama\"), the same as without them.")
    assert diag["evidence"]["credentials_change_the_answer"] is False
    assert diag["fix"][0]["text"].startswith("Check the token")
    assert secret not in run.stdout


def test_s21_reverse_proxy_require_bearer(cli: Callable[..., CliRun],
                                          emulator: Callable[..., Any],
                                          reverse_proxy: Callable[..., ReverseProxy]) -> None:
    emu = emulator()
    proxy = reverse_proxy(emu.url, require_bearer="s3cret-token")
    run = cli("probe", "auth", "--host", proxy.url, "-m", "llama3.2", "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("auth-required", 401)
    assert diag["explanation"].startswith(
        f"nginx/1.25.3 in front of Ollama at {proxy.url} demands credentials")
    assert diag["evidence"]["intermediary"] == ["server: nginx/1.25.3", "HTML body"]
    run = cli("probe", "auth", "--host", proxy.url, "-m", "llama3.2", "--json",
              "--header", "Authorization: Bearer s3cret-token")
    assert run.code == 0
    assert errors(run.json()) == []
    assert "s3cret-token" not in run.stdout


def test_cloud_signin_through_auth(cli: Callable[..., CliRun],
                                   emulator: Callable[..., Any]) -> None:
    emu = emulator(cloud="signin")
    run = cli("probe", "auth", "--host", emu.url, "-m", "gpt-oss:120b-cloud", "--json")
    diag = top(run.json())
    assert (diag["cause"], diag["code"]) == ("cloud-signin-required", 401)
    assert diag["evidence"]["signin_url"].startswith("https://ollama.com/connect?")


# -- the client's own key variable (--client) -------------------------------------------------


@pytest.mark.parametrize(("client", "env", "cause"), [
    # ollama-python reads OLLAMA_API_KEY: the gate opens
    ("ollama-python", {"OLLAMA_API_KEY": "TOKEN"}, None),
    # the OpenAI SDK never reads OLLAMA_API_KEY: the same environment gets 401
    ("openai-python", {"OLLAMA_API_KEY": "TOKEN"}, "auth-required"),
    # it sends OPENAI_API_KEY as its bearer token
    ("openai-python", {"OPENAI_API_KEY": "TOKEN"}, None),
    # curl sends nothing by itself
    ("curl", {"OLLAMA_API_KEY": "TOKEN", "OPENAI_API_KEY": "TOKEN"}, "auth-required"),
])
def test_only_the_clients_own_key_variable_is_sent(cli: Callable[..., CliRun],
                                                   emulator: Callable[..., Any], client: str,
                                                   env: dict[str, str], cause: str | None
                                                   ) -> None:
    emu = emulator(auth="TOKEN")
    run = cli("probe", "auth", "--host", emu.url, "--client", client, "--json", env=env)
    doc = run.json()
    check = check_of(doc, "auth")
    if cause is None:
        assert (run.code, check["status"]) == (0, "pass"), check["summary"]
        variable = next(iter(env))
        assert check["facts"]["client"]["credentials"] == (
            f"{variable}, which {client} sends in its Authorization header")
    else:
        assert run.code == 1
        assert top(doc)["cause"] == cause
        assert check["facts"]["client"]["credentials"] is None
        assert top(doc)["explanation"].endswith(
            f"OLLAMA_API_KEY is set, but {client} does not read it: it must be given the "
            "token itself.")
    assert "TOKEN" not in run.stdout


def test_api_key_with_a_trailing_carriage_return_is_named(emulator: Any, cli: Any) -> None:
    """A .env saved on Windows leaves OLLAMA_API_KEY='…\\r': httpx refuses every request
    carrying it ('Illegal header value'), which read as an unresponsive server. The doctor
    leaves the key out of its own requests and names the stray character."""
    emu = emulator()
    run = cli("check", "--json", "--host", emu.url, env={"OLLAMA_API_KEY": "sk-PLANTED123\r"})
    doc = json.loads(run.stdout)
    assert run.code == 1
    top = doc["diagnosis"][0]
    assert top["cause"] == "credential-malformed"
    assert "carriage return" in top["explanation"]
    assert "PLANTED123" not in run.stdout
    reach = next(c for c in doc["checks"] if c["id"] == "reachability")
    assert reach["status"] == "pass"
