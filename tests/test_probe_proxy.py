"""The ``proxy`` probe against a real forward proxy on loopback (``tests/support/proxy.py``).

In-process runs of ``probe.run`` cover every verdict quickly (with an injected resolver where a
name must not resolve); the real CLI covers the scenarios of docs/failure-modes.md's scenario
table: S06 (the proxy answers 502; Privoxy's 500, a reset and an RST in-process), S07 (a 403 page:
on a loopback target it is the proxy capturing local traffic; on a name only the proxy can resolve
it is the proxy blocking, staged in a network namespace so the client's failed lookup never leaves
it), S08 (a dead proxy), S09 (SOCKS without socksio), plus healthy setups that must raise no error,
and proxy passwords that must appear in no output.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ollama_doctor import diagnosis
from ollama_doctor.context import Context, Options
from ollama_doctor.probes import proxy as probe
from ollama_doctor.result import Outcome, ProbeResult, Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, clean_environ, closed_port
from tests.support.canned import OLLAMA_ROOT, CannedServer, Reply
from tests.support.guard import loopback_only
from tests.support.netns import Netns, require_netns
from tests.support.proxy import ForwardProxy
from tests.support.report import check_of

REPO = Path(__file__).resolve().parent.parent
SECRET = "hunter2-Pr0xy"
CORP = "ollama.corp.test"  # a name only the proxy can resolve


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    with loopback_only():
        yield


# --------------------------------------------------------------------------------------------
# small servers


# Ollama (docs/ollama-wire.md §5): "/", "/api/version" and an empty model list.
OLLAMA_ROUTES = {**OLLAMA_ROOT, "/api/tags": Reply(200, '{"models":[]}')}
# A forward proxy that answers every request itself: 200 with its own HTML page.
PORTAL = Reply(200, "<html><body>Welcome! Accept the terms to continue.</body></html>",
               "text/html", (("Server", "portal/1.0"),))


def tiny_ollama() -> CannedServer:
    server = CannedServer(OLLAMA_ROUTES, name="tiny-ollama")
    server.start()
    return server


@pytest.fixture
def ollama() -> Iterator[CannedServer]:
    server = tiny_ollama()
    yield server
    server.stop()


@pytest.fixture
def socks_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """socksio may well be installed in the dev venv: decide its absence here."""
    monkeypatch.setattr(probe, "socksio_importable", lambda: False)


def unresolvable(*names: str) -> Callable[..., list[tuple[Any, ...]]]:
    """A resolver for which ``names`` do not exist (as NXDOMAIN); others are loopback-only."""
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return socket.getaddrinfo(host, port, *args, **kwargs)
    return getaddrinfo


def run(url: str, env: dict[str, str], getaddrinfo: Callable[..., Any] | None = None) -> Outcome:
    ctx = Context(target=parse_target(url), options=Options(timeout=3.0), env=env)
    if getaddrinfo is not None:
        ctx.getaddrinfo = getaddrinfo
    return probe.run(ctx)


def causes(outcome: Outcome) -> list[tuple[str, str, str, int | None]]:
    return [(f.cause, f.severity.value, f.confidence.value, f.code) for f in outcome.findings]


def verdict(outcome: Outcome) -> str:
    return str(outcome.facts["comparison"]["verdict"])


def with_password(proxy_url: str, user: str = "bob", password: str = SECRET) -> str:
    return proxy_url.replace("://", f"://{user}:{password}@", 1)


# --------------------------------------------------------------------------------------------
# in-process: every verdict


def test_no_settings_pass(ollama: CannedServer) -> None:
    outcome = run(ollama.url, {})
    assert (outcome.status, outcome.findings) == (Status.PASS, [])
    assert outcome.summary == "no proxy settings found: every client connects directly"
    assert {f: row["route"] for f, row in outcome.facts["clients"].items()} == dict.fromkeys(
        ("httpx", "requests", "curl", "go", "node"), "direct")
    assert "comparison" not in outcome.facts


def test_correct_no_proxy_means_no_request_through_the_proxy(ollama: CannedServer) -> None:
    with ForwardProxy("deny") as proxy:
        outcome = run(ollama.url, {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url,
                                   "NO_PROXY": "localhost,127.0.0.1,::1",
                                   "no_proxy": "localhost,127.0.0.1,::1"})
        assert proxy.requests == []
    assert (outcome.status, outcome.findings) == (Status.PASS, [])
    assert outcome.summary == (f"no client proxies {ollama.url}: NO_PROXY entry '127.0.0.1' "
                               "covers 127.0.0.1")
    assert outcome.facts["families_disagree"] is False


def test_relay_on_a_local_target_is_only_an_info_note(ollama: CannedServer) -> None:
    with ForwardProxy("relay") as proxy:
        outcome = run(ollama.url, {"HTTP_PROXY": proxy.url})
        assert [r.target for r in proxy.requests] == [ollama.url + "/"]
    assert outcome.status == Status.PASS
    assert causes(outcome) == [("proxy-captures-local", "info", "high", None)]
    assert verdict(outcome) == "relays"
    assert outcome.facts["comparison"]["fingerprints"]["via"] == "1.1 proxy (squid/5.7)"


@pytest.mark.parametrize(("mode", "code", "marks"), [
    ("bad-gateway", 502, {"x-squid-error": "ERR_CONNECT_FAIL 111", "server": "squid/5.7"}),  # S06
    ("privoxy-500", 500, {"body": "html"}),  # S06, Privoxy
    ("deny", 403, {"x-squid-error": "ERR_ACCESS_DENIED 0"}),  # S07 on a loopback target
    ("reset", None, {"error": "protocol"}),
    ("rst", None, {"error": "reset"}),
])
def test_proxy_failing_a_local_target_captures_it(ollama: CannedServer, mode: str,
                                                  code: int | None,
                                                  marks: dict[str, str]) -> None:
    with ForwardProxy(mode) as proxy:  # type: ignore[arg-type]
        outcome = run(ollama.url, {"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost"})
    assert outcome.status == Status.FAIL
    assert causes(outcome) == [("proxy-captures-local", "critical", "high", code)]
    assert verdict(outcome) == "proxy-captures-local"
    prints = outcome.facts["comparison"]["fingerprints"]
    assert {k: prints.get(k) for k in marks} == marks
    finding = outcome.findings[0]
    assert finding.evidence["direct"]["body"] == "Ollama is running"
    assert finding.fix[0].commands[0] == (
        "export NO_PROXY='localhost,127.0.0.1,::1' no_proxy='localhost,127.0.0.1,::1'")
    assert f"ollama.Client(host='{ollama.url}', trust_env=False)   # ollama-python" in \
        finding.fix[1].commands
    assert finding.fix[2].commands == (f"curl --noproxy '*' {ollama.url}/",)


def test_privoxy_is_named_in_the_message(ollama: CannedServer) -> None:
    with ForwardProxy("privoxy-500") as proxy:
        outcome = run(ollama.url, {"http_proxy": proxy.url})
    assert ("which answers HTTP 500 from Privoxy; directly, the server answers 'Ollama is "
            "running'. Exclude it: NO_PROXY=localhost,127.0.0.1,::1."
            in outcome.findings[0].message)


def test_proxy_answering_its_own_page_with_200_is_an_error(ollama: CannedServer) -> None:
    portal = CannedServer(lambda request: PORTAL, name="portal")
    portal.start()
    try:
        outcome = run(ollama.url, {"ALL_PROXY": portal.url})
    finally:
        portal.stop()
    assert causes(outcome) == [("proxy-captures-local", "error", "high", 200)]
    assert "HTTP 200 from portal/1.0 with '<html><body>Welcome!" in outcome.findings[0].message


def test_dead_proxy_is_unreachable(ollama: CannedServer) -> None:  # S08
    port = closed_port()
    outcome = run(ollama.url, {"HTTP_PROXY": f"http://127.0.0.1:{port}"})
    assert outcome.status == Status.FAIL
    assert causes(outcome) == [("proxy-unreachable", "critical", "high", None)]
    assert verdict(outcome) == "proxy-unreachable"
    assert outcome.summary == f"the proxy http://127.0.0.1:{port} (HTTP_PROXY) refuses connections"
    connect = outcome.findings[0].evidence["proxy_connect"]
    assert connect["connect"]["error"] == "refused"
    assert outcome.findings[0].message.endswith(
        "(directly, the server answers 'Ollama is running').")


def test_proxy_name_that_does_not_resolve_is_unreachable(ollama: CannedServer) -> None:
    outcome = run(ollama.url, {"HTTPS_PROXY": "http://proxy.corp.test:3128",
                               "HTTP_PROXY": "http://proxy.corp.test:3128"},
                  unresolvable("proxy.corp.test"))
    assert causes(outcome) == [("proxy-unreachable", "critical", "high", None)]
    assert outcome.summary == "the proxy http://proxy.corp.test:3128 (HTTP_PROXY) does not resolve"
    assert outcome.findings[0].evidence["proxy_connect"]["error"]["kind"] == "dns"


def test_socks_without_socksio_is_unsupported(socks_missing: None) -> None:  # S09
    port = closed_port()  # never dialled: the client cannot even be built
    outcome = run(f"http://127.0.0.1:{port}", {"ALL_PROXY": f"socks5://127.0.0.1:{port}",
                                               "NO_PROXY": "localhost,127.0.0.1"})
    assert outcome.status == Status.FAIL
    assert causes(outcome) == [("proxy-unsupported", "critical", "medium", None)]
    assert outcome.summary == "httpx cannot use ALL_PROXY (socks missing)"
    finding = outcome.findings[0]
    assert finding.evidence["error"].startswith("ImportError: Using SOCKS proxy, but the "
                                                "'socksio' package is not installed.")
    assert finding.fix[0].commands == ("pip install 'httpx[socks]'",)
    assert finding.fix[1].commands == ("unset ALL_PROXY all_proxy",)


def test_unknown_scheme_is_unsupported() -> None:
    outcome = run("http://127.0.0.1:11434", {"all_proxy": "socks4://127.0.0.1:1080"})
    assert causes(outcome) == [("proxy-unsupported", "critical", "high", None)]
    assert outcome.findings[0].evidence["error"] == (
        "ValueError: Unknown scheme for proxy URL URL('socks4://127.0.0.1:1080')")


def test_s07_proxy_blocks_a_target_only_it_can_reach(ollama: CannedServer) -> None:
    with ForwardProxy("deny", resolve={CORP: ("127.0.0.1", ollama.port)}) as proxy:
        outcome = run(f"http://{CORP}:11434", {"HTTP_PROXY": proxy.url}, unresolvable(CORP))
    assert outcome.status == Status.FAIL
    assert causes(outcome) == [("proxy-blocks", "critical", "high", 403)]
    assert verdict(outcome) == "proxy-blocks"
    finding = outcome.findings[0]
    assert finding.evidence["direct"]["error"]["kind"] == "dns"
    assert finding.evidence["fingerprints"]["x-squid-error"] == "ERR_ACCESS_DENIED 0"
    assert finding.fix[0].commands == (f"acl ollama dstdomain {CORP}", "acl ollama_port port 11434",
                                       "http_access allow ollama ollama_port")


def test_target_reachable_only_through_a_working_proxy_passes(ollama: CannedServer) -> None:
    with ForwardProxy("relay", resolve={CORP: ("127.0.0.1", ollama.port)}) as proxy:
        outcome = run(f"http://{CORP}:11434", {"HTTP_PROXY": proxy.url}, unresolvable(CORP))
    assert (outcome.status, outcome.findings) == (Status.PASS, [])
    assert verdict(outcome) == "proxy-only-path"


@pytest.mark.parametrize(("credentials", "status", "found"), [
    (None, Status.FAIL, [("proxy-blocks", "critical", "high", 407)]),
    (("alice", "wrong"), Status.FAIL, [("proxy-blocks", "critical", "high", 407)]),
    (("alice", SECRET), Status.PASS, []),
])
def test_proxy_that_wants_credentials(ollama: CannedServer, credentials: tuple[str, str] | None,
                                      status: Status, found: list[Any]) -> None:
    with ForwardProxy("relay", require_auth=("alice", SECRET),
                      resolve={CORP: ("127.0.0.1", ollama.port)}) as proxy:
        url = with_password(proxy.url, *credentials) if credentials else proxy.url
        outcome = run(f"http://{CORP}:11434", {"HTTP_PROXY": url}, unresolvable(CORP))
    assert (outcome.status, causes(outcome)) == (status, found)
    if credentials is None:
        assert "demands credentials (407 Proxy Authentication Required) that are not in " \
               "HTTP_PROXY" in outcome.findings[0].message
        assert outcome.findings[0].fix[0].commands == (
            f"export HTTP_PROXY=http://USER:PASSWORD@127.0.0.1:{proxy.port}",)
    elif status == Status.FAIL:
        assert "rejects the credentials in HTTP_PROXY" in outcome.findings[0].message
    assert SECRET not in json.dumps([outcome.facts, [f.to_dict() for f in outcome.findings]])


def test_407_on_a_local_target_is_still_capture(ollama: CannedServer) -> None:
    with ForwardProxy("relay", require_auth=("alice", SECRET)) as proxy:
        outcome = run(ollama.url, {"HTTP_PROXY": proxy.url})
    assert causes(outcome) == [("proxy-captures-local", "critical", "high", 407)]


def test_server_down_behind_a_capturing_proxy_is_a_warning() -> None:
    port = closed_port()
    with ForwardProxy("deny") as proxy:
        outcome = run(f"http://127.0.0.1:{port}", {"HTTP_PROXY": proxy.url})
    assert outcome.status == Status.WARN
    assert causes(outcome) == [("proxy-captures-local", "warning", "medium", 403)]
    assert verdict(outcome) == "both-fail"


def test_other_families_through_a_failing_proxy_warn(ollama: CannedServer) -> None:
    """ollama-python matches the port entry and goes direct; requests and curl do not."""
    with ForwardProxy("bad-gateway") as proxy:
        env = {"http_proxy": proxy.url, "NO_PROXY": f"127.0.0.1:{ollama.port}"}
        outcome = run(ollama.url, env)
    assert outcome.status == Status.WARN
    assert causes(outcome) == [("proxy-captures-local", "warning", "medium", 502)]
    assert outcome.facts["comparison"]["families"] == ["requests", "curl"]
    assert outcome.facts["routes"] == {"direct": ["httpx", "go", "node"],
                                       proxy.url: ["requests", "curl"]}
    assert outcome.findings[0].message.startswith(
        "requests, curl (ollama-python itself connects directly) sends")


def test_passwords_never_reach_facts_or_findings(ollama: CannedServer) -> None:
    with ForwardProxy("bad-gateway") as proxy:
        outcome = run(ollama.url, {"HTTP_PROXY": with_password(proxy.url),
                                   "https_proxy": f"bob:{SECRET}@127.0.0.1:9"})
    text = json.dumps([outcome.summary, outcome.facts, [f.to_dict() for f in outcome.findings]])
    assert SECRET not in text
    assert f"http://bob:***@127.0.0.1:{proxy.port}" in text
    assert outcome.facts["variables"]["https_proxy"] == "bob:***@127.0.0.1:9"


def test_proxy_fingerprints_from_a_refused_connect() -> None:
    """httpcore reports a refused CONNECT (https targets) as ProxyError('403 Forbidden')."""
    from ollama_doctor import net

    reply = net.HttpReply("GET", "https://x/", error=net.NetError("proxy", "403 Forbidden",
                                                                   "ProxyError"))
    assert probe.fingerprints(reply) == {"error": "proxy", "status": 403}


def test_captures_local_absorbs_the_proxys_symptoms_in_the_diagnosis(ollama: CannedServer) -> None:
    with ForwardProxy("bad-gateway") as proxy:
        outcome = run(ollama.url, {"HTTP_PROXY": proxy.url})
    mine = ProbeResult("proxy", "Proxy settings", outcome.status, outcome.summary,
                       facts=outcome.facts, findings=outcome.findings)
    ranked = diagnosis.rank([mine])
    assert [(d.cause, d.code, d.severity) for d in ranked] == [
        ("proxy-captures-local", 502, Severity.CRITICAL)]


# --------------------------------------------------------------------------------------------
# the real CLI


def cli_json(cli: Callable[..., CliRun], *args: str, env: dict[str, str]) -> tuple[int, Any]:
    result = cli(*args, "--json", env=env)
    assert result.stdout, result.stderr
    return result.code, result.json()


def top(doc: dict[str, Any]) -> tuple[str, int | None, str]:
    first = doc["diagnosis"][0]
    return first["cause"], first["code"], first["severity"]


def test_cli_s06_proxy_502_captures_local(cli: Callable[..., CliRun],
                                          ollama: CannedServer) -> None:
    with ForwardProxy("bad-gateway") as proxy:
        code, doc = cli_json(cli, "check", "--host", ollama.url,
                             env={"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost"})
    assert code == 1
    assert top(doc) == ("proxy-captures-local", 502, "critical")
    assert doc["summary"]["top_cause"] == "proxy-captures-local"
    # The client's path is the proxy: reachability goes that way and gets the proxy's 502,
    # which the diagnosis folds into proxy-captures-local (the direct path is the evidence).
    reach = check_of(doc, "reachability")
    assert reach["status"] == "fail"
    assert [f["cause"] for f in reach["findings"]] == ["bad-gateway"]
    assert reach["summary"] == f"502 from an intermediary — via proxy {proxy.url} (HTTP_PROXY)"
    assert reach["facts"]["path"]["route"] == "proxy"
    assert [d["cause"] for d in doc["diagnosis"]].count("bad-gateway") == 0
    assert check_of(doc, "proxy")["facts"]["comparison"]["direct"]["status"] == 200
    facts = check_of(doc, "proxy")["facts"]
    used_by = {"httpx": "ollama-python, langchain-ollama, openai-python, LiteLLM (httpx)",
               "requests": "requests, urllib3 and the tools built on them",
               "curl": "curl and libcurl", "go": "the ollama CLI and other Go programs",
               "node": "ollama-js and other Node programs (fetch, http)"}
    assert facts["clients"] == {
        "httpx": {"route": "proxy", "proxy": proxy.url, "source": "HTTP_PROXY",
                  "reason": "HTTP_PROXY applies to http:// URLs; no NO_PROXY entry matches "
                            "127.0.0.1 (httpx does not treat 'localhost' as covering IP "
                            "addresses)", "used_by": used_by["httpx"]},
        "requests": {"route": "proxy", "proxy": proxy.url, "source": "HTTP_PROXY",
                     "reason": "HTTP_PROXY applies; no NO_PROXY entry covers 127.0.0.1",
                     "used_by": used_by["requests"]},
        "curl": {"route": "direct", "proxy": None, "source": None,
                 "reason": "curl ignores upper-case HTTP_PROXY (httpoxy); http_proxy is not set",
                 "used_by": used_by["curl"]},
        "go": {"route": "direct", "proxy": None, "source": None,
               "reason": "Go never proxies loopback addresses (127.0.0.1)",
               "used_by": used_by["go"]},
        "node": {"route": "direct", "proxy": None, "source": None,
                 "reason": "Node ignores proxy variables unless NODE_USE_ENV_PROXY=1 (Node ≥ 24, "
                           "or 22.21) or --use-env-proxy", "used_by": used_by["node"]},
    }
    assert facts["families_disagree"] is True
    assert facts["variables"] == {"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost"}
    assert facts["recommended_no_proxy"] == "localhost,127.0.0.1,::1"
    evidence = doc["diagnosis"][0]["evidence"]
    assert evidence["proxied"]["status"] == 502
    assert evidence["proxied"]["headers"]["x-squid-error"] == "ERR_CONNECT_FAIL 111"
    assert evidence["direct"]["body"] == "Ollama is running"


def test_cli_s07_proxy_403_on_a_loopback_target(cli: Callable[..., CliRun],
                                                ollama: CannedServer) -> None:
    with ForwardProxy("deny") as proxy:
        code, doc = cli_json(cli, "check", "--host", ollama.url, env={"ALL_PROXY": proxy.url})
    assert code == 1
    assert top(doc) == ("proxy-captures-local", 403, "critical")


def test_cli_s08_dead_proxy(cli: Callable[..., CliRun], ollama: CannedServer) -> None:
    port = closed_port()
    code, doc = cli_json(cli, "check", "--host", ollama.url,
                         env={"HTTP_PROXY": f"http://127.0.0.1:{port}"})
    assert code == 1
    assert top(doc) == ("proxy-unreachable", None, "critical")


def test_cli_s09_socks_without_socksio(cli: Callable[..., CliRun], ollama: CannedServer,
                                       tmp_path: Path) -> None:
    # Make socksio unimportable for the CLI's interpreter, whatever the venv holds.
    (tmp_path / "socksio.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'socksio'\", name='socksio')\n")
    code, doc = cli_json(cli, "check", "--host", ollama.url,
                         env={"ALL_PROXY": f"socks5://127.0.0.1:{closed_port()}",
                              "PYTHONPATH": str(tmp_path)})
    assert code == 1
    assert top(doc) == ("proxy-unsupported", None, "critical")
    reach = check_of(doc, "reachability")  # ollama-python would fail before any request
    assert reach["status"] == "fail"
    assert [f["cause"] for f in reach["findings"]] == ["proxy-unsupported"]
    assert [d["cause"] for d in doc["diagnosis"]].count("proxy-unsupported") == 1


def test_cli_healthy_relay_with_correct_no_proxy(cli: Callable[..., CliRun],
                                                 ollama: CannedServer) -> None:
    with ForwardProxy("relay") as proxy:
        code, doc = cli_json(cli, "check", "--host", ollama.url,
                             env={"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url,
                                  "NO_PROXY": "localhost,127.0.0.1,::1"})
        assert proxy.requests == []
    assert code == 0
    assert doc["summary"]["status"] == "healthy"
    assert [d for d in doc["diagnosis"] if d["severity"] in ("error", "critical")] == []
    proxy_check = check_of(doc, "proxy")
    assert (proxy_check["status"], proxy_check["findings"]) == ("pass", [])
    assert {f: row["route"] for f, row in proxy_check["facts"]["clients"].items()} == \
        dict.fromkeys(("httpx", "requests", "curl", "go", "node"), "direct")


def test_cli_relaying_proxy_on_a_local_target_raises_no_error(cli: Callable[..., CliRun],
                                                              ollama: CannedServer) -> None:
    with ForwardProxy("relay") as proxy:
        code, doc = cli_json(cli, "check", "--host", ollama.url, env={"HTTP_PROXY": proxy.url})
    assert code == 0
    assert doc["summary"]["status"] == "healthy"
    assert {d["severity"] for d in doc["diagnosis"]} <= {"info"}
    assert check_of(doc, "proxy")["facts"]["comparison"]["verdict"] == "relays"


def test_cli_proxy_password_in_no_output_and_table_in_verbose(cli: Callable[..., CliRun],
                                                              ollama: CannedServer) -> None:
    with ForwardProxy("bad-gateway") as proxy:
        env = {"HTTP_PROXY": with_password(proxy.url), "NO_PROXY": "localhost"}
        verbose = cli("check", "--host", ollama.url, "-v", env=env)
        as_json = cli("probe", "proxy", "--host", ollama.url, "--json", env=env)
    for result in (verbose, as_json):
        assert result.code == 1
        assert SECRET not in result.stdout + result.stderr
    assert " 1. proxy-captures-local — A proxy captures traffic meant for Ollama" in verbose.stdout
    shown = f"http://bob:***@127.0.0.1:{proxy.port}"
    # the per-client table is in -v output, as key/value rows …
    for key, value in (("clients.httpx.route", "proxy"), ("clients.httpx.proxy", shown),
                       ("clients.curl.reason", "curl ignores upper-case HTTP_PROXY (httpoxy);"),
                       ("clients.go.reason", "Go never proxies loopback addresses (127.0.0.1)"),
                       ("families_disagree", "yes")):
        assert re.search(rf"^ +{re.escape(key)} +{re.escape(value)}", verbose.stdout,
                         re.MULTILINE), (key, value)
    # … and in the JSON facts
    clients = check_of(as_json.json(), "proxy")["facts"]["clients"]
    assert clients["httpx"]["proxy"] == shown


# --------------------------------------------------------------------------------------------
# S07, proxy-blocks: the client's own lookup must fail without asking the host's nameserver, so
# the client runs in a network namespace whose resolv.conf points at nothing.

_SERVERS = r"""
import sys, threading
sys.path.insert(0, sys.argv[1])
from tests.support.proxy import ForwardProxy
from tests.test_probe_proxy import tiny_ollama
ollama = tiny_ollama()
proxy = ForwardProxy(sys.argv[2], resolve={sys.argv[3]: ("127.0.0.1", ollama.port)})
print(proxy.start(), flush=True)
threading.Event().wait()
"""


def _cli_in(ns: Netns, *args: str, env: dict[str, str]) -> CliRun:
    done = ns.run([sys.executable, "-m", "ollama_doctor", *args], timeout=60, cwd=REPO,
                  env=clean_environ(env))
    return CliRun(done.returncode, done.stdout, done.stderr)


@pytest.mark.netns
@pytest.mark.parametrize("mode", ["deny", "relay"])
def test_netns_s07_corporate_gateway(mode: str) -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n::1 localhost\n") as ns:
        proxy_url = ns.start_server([sys.executable, "-c", _SERVERS, str(REPO), mode, CORP],
                                    cwd=REPO).first_line
        env = {"HTTP_PROXY": proxy_url}
        target = f"http://{CORP}:11434"
        if mode == "deny":
            run_ = _cli_in(ns, "check", "--host", target, "--timeout", "2", "--json", env=env)
        else:
            run_ = _cli_in(ns, "probe", "proxy", "--host", target, "--json", env=env)
    doc = run_.json()
    proxy_check = check_of(doc, "proxy")
    if mode == "deny":
        assert run_.code == 1
        assert top(doc) == ("proxy-blocks", 403, "critical"), doc["diagnosis"]
        assert proxy_check["facts"]["comparison"]["direct"]["error"]["kind"] == "dns"
    else:
        # the proxy is the way there and it works: the proxy probe raises nothing
        assert (proxy_check["status"], proxy_check["findings"]) == ("pass", [])
        assert proxy_check["facts"]["comparison"]["verdict"] == "proxy-only-path"


# --------------------------------------------------------------------------------------------
# the client's path: every API probe goes the way the chosen client goes (Context.route)

API_PROBES = ("reachability", "latency", "models", "auth", "warmup")


def test_every_api_probe_goes_through_the_clients_proxy(cli: Callable[..., CliRun],
                                                        emulator: Callable[..., Any]) -> None:
    emu = emulator()
    with ForwardProxy("relay") as proxy:
        code, doc = cli_json(cli, "check", "--host", emu.url, "-m", "llama3.2",
                             env={"HTTP_PROXY": proxy.url})
        paths = {urlsplit(r.target).path for r in proxy.requests}
    assert code == 0, [(d["cause"], d["severity"]) for d in doc["diagnosis"]]
    # absolute-form requests to the server, exactly as ollama-python (httpx) sends them
    assert {"/", "/api/version", "/api/tags", "/api/show", "/api/ps", "/api/generate"} <= paths
    for probe_id in API_PROBES:
        check = check_of(doc, probe_id)
        assert check["status"] == "pass", (probe_id, check["summary"])
        assert check["summary"].endswith(f"— via proxy {proxy.url} (HTTP_PROXY)"), probe_id
        assert check["facts"]["path"] == {
            "client": "ollama-python", "route": "proxy", "proxy": proxy.url,
            "source": "HTTP_PROXY", "described": f"via proxy {proxy.url} (HTTP_PROXY)",
            "reason": "HTTP_PROXY applies to http:// URLs; NO_PROXY is not set, and httpx has "
                      "no loopback bypass"}
    # the direct path is still tried, as the proxy probe's evidence
    assert check_of(doc, "proxy")["facts"]["comparison"]["direct"]["status"] == 200


@pytest.mark.parametrize(("client", "why"), [
    ("curl", "curl ignores upper-case HTTP_PROXY (httpoxy); http_proxy is not set"),
    ("ollama-js", "Node ignores proxy variables unless NODE_USE_ENV_PROXY=1 (Node ≥ 24, or "
                  "22.21) or --use-env-proxy"),
])
def test_a_client_that_ignores_http_proxy_is_probed_directly(cli: Callable[..., CliRun],
                                                             emulator: Callable[..., Any],
                                                             client: str, why: str) -> None:
    emu = emulator()
    with ForwardProxy("deny") as proxy:
        code, doc = cli_json(cli, "check", "--host", emu.url, "--client", client,
                             env={"HTTP_PROXY": proxy.url})
        through = [urlsplit(r.target).path for r in proxy.requests]
    assert through == ["/"]  # only the proxy probe's comparison for the families that use it
    for probe_id in ("reachability", "models", "auth"):
        check = check_of(doc, probe_id)
        assert check["summary"].endswith("— direct"), (probe_id, check["summary"])
        assert check["facts"]["path"]["reason"] == why
    # ollama-python would be captured; this client is not: a warning, not an error
    assert code == 0
    assert top(doc)[0] == "proxy-captures-local" and top(doc)[2] == "warning"


def test_default_client_through_a_denying_proxy_fails(cli: Callable[..., CliRun],
                                                      emulator: Callable[..., Any]) -> None:
    emu = emulator()
    with ForwardProxy("deny") as proxy:
        code, doc = cli_json(cli, "check", "--host", emu.url, env={"HTTP_PROXY": proxy.url})
    assert code == 1
    assert top(doc) == ("proxy-captures-local", 403, "critical")


def test_dead_proxy_on_the_path_is_named_by_reachability_too(cli: Callable[..., CliRun],
                                                              emulator: Callable[..., Any]
                                                              ) -> None:
    emu = emulator()
    dead = f"http://127.0.0.1:{closed_port()}"
    code, doc = cli_json(cli, "check", "--host", emu.url, env={"HTTP_PROXY": dead})
    assert code == 1
    assert top(doc) == ("proxy-unreachable", None, "critical")
    reach = check_of(doc, "reachability")
    assert [f["cause"] for f in reach["findings"]] == ["proxy-unreachable"]
    assert reach["summary"] == f"the client's proxy refuses connections — via proxy {dead} " \
                               "(HTTP_PROXY)"
    for probe_id in ("models", "auth"):  # nothing to check beyond a proxy that is not there
        assert (check_of(doc, probe_id)["status"], check_of(doc, probe_id)["blocked_by"]) == \
            ("skip", "reachability")


def test_unknown_client_is_a_usage_error(cli: Callable[..., CliRun]) -> None:
    run = cli("check", "--client", "netscape")
    assert run.code == 2
    assert run.stderr.startswith("ollama-doctor: error: unknown client 'netscape'; valid "
                                 "clients: ollama-python, openai-python, langchain-ollama,")
    assert "Traceback" not in run.stderr


def test_probes_lists_the_client_families(cli: Callable[..., CliRun]) -> None:
    run = cli("probes", "--json")
    assert run.code == 0
    doc = json.loads(run.stdout)
    assert doc["default_client"] == "ollama-python"
    rows = {row["name"]: row for row in doc["clients"]}
    assert (rows["curl"]["proxy_family"], rows["ollama-js"]["proxy_family"]) == ("curl", "node")
    assert (rows["openai-python"]["base_path"], rows["openai-python"]["retries"],
            rows["openai-python"]["default_timeout_s"]) == ("/v1", 2, 600.0)
    assert (rows["ollama-python"]["host_env"], rows["ollama-python"]["key_env"]) == \
        ("OLLAMA_HOST", "OLLAMA_API_KEY")
    assert rows["openai-python"]["reads_api_key"] is False
    assert [p["id"] for p in doc["probes"]][:2] == ["proxy", "reachability"]
    text = cli("probes", env={"COLUMNS": "200"}).stdout
    assert "Client families (--client NAME; default ollama-python):" in text
    assert "curl (http_proxy in lower case only; ignores HTTP_PROXY)" in text


def test_probes_text_wraps_and_lists_each_familys_pitfalls(cli: Callable[..., CliRun]) -> None:
    """The text list wraps at the width with the names in a column of their own (the longest
    family name, ollama-ai-provider, once ran into its text), and says each family's pitfalls
    with the versions they apply to, as ``probes --json`` does."""
    from ollama_doctor.clients import CLIENTS

    text = cli("probes", env={"COLUMNS": "72"}).stdout
    lines = text.splitlines()
    assert all(len(line) <= 72 or " " not in line.strip() for line in lines), \
        [line for line in lines if len(line) > 72]
    wide = 1 + max(len(c.name) for c in CLIENTS)
    for client in CLIENTS:  # every family's text starts in the same column, after its name
        head = next(line for line in lines if line.startswith(client.name + " "))
        assert head[:wide].rstrip() == client.name and head[wide] != " ", head
    joined = " ".join(text.split())  # the words, whatever the wrapping
    for client in CLIENTS:
        for pitfall in client.pitfalls:
            assert (f"pitfall ({pitfall.versions or 'all versions'}, {pitfall.cause}): "
                    f"{' '.join(pitfall.message.split())}") in joined, (client.name, pitfall.id)
    assert any(c.pitfalls for c in CLIENTS)


# -- the corporate gateway: a server only the client's proxy reaches (netns) -----------------


@pytest.mark.netns
def test_gateway_healthy_runs_models_auth_and_warmup_through_the_proxy() -> None:
    from tests.scenarios import BY_ID, run_scenario

    result = run_scenario(BY_ID["S07g"], "healthy")
    assert result.exit_code == 0, result.error_causes
    for probe_id in ("reachability", "models", "auth", "warmup", "latency"):
        check = check_of(result.doc, probe_id)
        assert check["status"] == "pass", (probe_id, check["summary"])
        assert "— via proxy http://127.0.0.1:" in check["summary"], probe_id
        assert check["facts"]["path"]["route"] == "proxy"
    assert check_of(result.doc, "warmup")["facts"]["load_kind"] == "cold"
    assert check_of(result.doc, "proxy")["facts"]["comparison"]["verdict"] == "proxy-only-path"


@pytest.mark.netns
@pytest.mark.parametrize(("scenario_id", "cause", "code", "probe_id"), [
    ("S07m", "model-not-found", 404, "models"),
    ("S07s", "slow-model-load", 504, "warmup"),
    ("S07h", "host-forbidden", 403, "auth"),
])
def test_gateway_faults_are_found_through_the_proxy(scenario_id: str, cause: str, code: int,
                                                    probe_id: str) -> None:
    from tests.scenarios import BY_ID, run_scenario

    result = run_scenario(BY_ID[scenario_id])
    assert (result.top, result.code) == (cause, code), result.error_causes
    assert "proxy-blocks" not in result.error_causes
    check = check_of(result.doc, probe_id)
    assert cause in [f["cause"] for f in check["findings"]]
    assert "— via proxy http://127.0.0.1:" in check["summary"]


@pytest.mark.parametrize(("url", "env", "trusts"), [
    ("http://127.0.0.1:11434/", {}, None),
    ("http://127.0.0.1:11434/", {"HTTP_PROXY": "http://127.0.0.1:3128",
                                 "NO_PROXY": ""}, None),
    # httpx never uses the client's context for the connection to the proxy (httpcore
    # builds its own for an https:// proxy): an http:// server still needs none
    ("http://gpu.lan:11434/", {"HTTP_PROXY": "https://proxy.lan:3128"}, None),
    ("https://gpu.lan:11434/", {}, "store"),
    ("https://gpu.lan:11434/", {"HTTPS_PROXY": "http://proxy.lan:3128"}, "store"),
])
def test_only_a_path_with_tls_on_it_loads_the_ca_bundle(
        url: str, env: dict[str, str], trusts: str | None) -> None:
    """Loading the CA bundle costs 45-70 ms of CPU on reachability's critical path: an
    http:// server, which is never spoken TLS to, gets a context that trusts nothing instead;
    an https:// one the client's trust store."""
    from ollama_doctor import net

    ctx = Context(target=parse_target(url), options=Options(timeout=3.0), env=env)
    context = ctx._verify_for(url)
    if trusts is None:
        assert context is net.no_tls_context()
        assert context.cert_store_stats()["x509_ca"] == 0
        assert context.verify_mode == ssl.CERT_REQUIRED  # never an unchecked connection
    else:
        assert context is net.trust_store(env)
        assert context.cert_store_stats()["x509_ca"] > 0
