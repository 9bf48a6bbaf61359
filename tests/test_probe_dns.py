"""The ``dns`` probe against a real DNS server on loopback, and inside network namespaces.

Three layers:

- the pure parsers and deciders, table-driven;
- the probe in-process against ``tests.support.dns_server.DNSServer`` on ``127.0.0.1:0``. The
  system resolver is the context's ``getaddrinfo``: outside a namespace the real one would ask
  this machine's nameserver, which tests must never do, so here it is ``LoopbackResolver``, a
  stand-in for glibc's ``files dns`` that reads the fixture's ``etc/hosts`` and then asks the
  test DNS servers;
- the real CLI inside a network namespace (root; skipped with a reason elsewhere, failed under
  ``CI=true``), where the real ``getaddrinfo`` reads the namespace's ``/etc/hosts`` and asks a
  DNS server started inside it: S04, S10, S11 and their healthy variants.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import pytest

from ollama_doctor import diagnosis, net, resolvconf
from ollama_doctor.context import Context, Options
from ollama_doctor.facts import ClientRoute, ProxyFacts
from ollama_doctor.probes import dns as probe
from ollama_doctor.probes import reachability
from ollama_doctor.result import Outcome, ProbeResult, Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, clean_environ, closed_port
from tests.support.canned import OLLAMA_ROOT, CannedServer
from tests.support.dns_server import DNSServer
from tests.support.guard import loopback_only
from tests.support.netns import Netns, require_netns

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    with loopback_only():
        yield


# ---------------------------------------------------------------------------------------------
# pure functions


@pytest.mark.parametrize(("text", "expected"), [
    ("", resolvconf.ResolvConf()),
    ("nameserver 10.0.0.1\nnameserver ::1\n", resolvconf.ResolvConf(("10.0.0.1", "::1"))),
    ("# comment\nnameserver 127.0.0.53 # stub\noptions edns0 trust-ad ndots:2\nsearch a.b c.\n",
     resolvconf.ResolvConf(("127.0.0.53",), ("a.b", "c"), 2)),
    ("domain corp.example\nsearch lan\n", resolvconf.ResolvConf((), ("lan",), 1)),
    ("nameserver\noptions ndots:x\n", resolvconf.ResolvConf()),
])
def test_parse_resolv_conf(text: str, expected: resolvconf.ResolvConf) -> None:
    assert resolvconf.parse_resolv_conf(text) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    ("[fe80::1%eth0]", ("fe80::1", 53)),
    (" 10.0.0.2 ", ("10.0.0.2", 53)),
])
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert resolvconf.parse_nameserver(value) == expected


@pytest.mark.parametrize("value", [
    "dns.example", "127.0.0.1:x", "127.0.0.1:0", "[::1]5353", "[::1]:70000", "", "1.2.3",
])
def test_parse_nameserver_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        resolvconf.parse_nameserver(value)


HOSTS = """\
127.0.0.1   localhost
::1         localhost ip6-localhost   # both families
10.0.0.9    ollama.lan OLLAMA.lan.   # stale
# 10.0.0.8  ollama.lan
bogus       ollama.lan
10.0.0.7
"""


@pytest.mark.parametrize(("name", "expected"), [
    ("localhost", [(1, "127.0.0.1"), (2, "::1")]),
    ("LOCALHOST.", [(1, "127.0.0.1"), (2, "::1")]),
    ("ollama.lan", [(3, "10.0.0.9")]),
    ("ip6-localhost", [(2, "::1")]),
    ("missing", []),
])
def test_hosts_entries(name: str, expected: list[tuple[int, str]]) -> None:
    assert resolvconf.hosts_entries(HOSTS, name) == expected


@pytest.mark.parametrize(("text", "sources", "decides"), [
    ("", None, True),
    ("passwd: files\nhosts: files dns\n", ["files", "dns"], True),
    ("hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n",
     ["files", "mdns4_minimal", "dns", "myhostname"], True),
    ("hosts: dns files\n", ["dns", "files"], False),
    ("hosts: resolve [!UNAVAIL=return] files\n", ["resolve", "files"], False),
    ("hosts: dns\n", ["dns"], False),
])
def test_nsswitch(text: str, sources: list[str] | None, decides: bool) -> None:
    assert resolvconf.nsswitch_hosts(text) == sources
    assert resolvconf.files_decide(sources) is decides


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("localhost", "localhost", 0), ("locahost", "localhost", 1), ("lcoalhost", "localhost", 1),
    ("localhots", "localhost", 1), ("localhost1", "localhost", 1), ("lcalhst", "localhost", 2),
    ("host", "localhost", 5), ("", "ab", 2),
])
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert probe.edit_distance(a, b) == distance


@pytest.mark.parametrize(("name", "hint"), [
    ("host.docker.internal", "host-docker-internal"),
    ("HOST.DOCKER.INTERNAL.", "host-docker-internal"),
    ("locahost", "localhost-typo"),
    ("localhots", "localhost-typo"),
    ("lcalhst", "localhost-typo"),
    ("ollama", "single-label"),
    ("localhost", None),
    ("app.localhost", None),
    ("ollama.example.com", None),
    ("localhost.example.com", None),
])
def test_name_hint(name: str, hint: str | None) -> None:
    assert probe.name_hint(name) == hint


@pytest.mark.parametrize(("message", "exception", "kind"), [
    ("[Errno -2] Name or service not known", "gaierror", "not-found"),
    ("[Errno 8] nodename nor servname provided, or not known", "gaierror", "not-found"),
    ("[Errno 11001] getaddrinfo failed", "gaierror", "not-found"),
    ("[Errno -5] No address associated with hostname", "gaierror", "no-address"),
    ("[Errno -3] Temporary failure in name resolution", "gaierror", "temporary"),
    ("resolver did not answer within 1 s", "TimeoutError", "timeout"),
    ("[Errno -9] Address family for hostname not supported", "gaierror", "other"),
])
def test_gai_kind(message: str, exception: str, kind: str) -> None:
    assert probe.gai_kind(net.NetError("dns", message, exception)) == kind


# ---------------------------------------------------------------------------------------------
# in-process, against the test DNS server


class LoopbackResolver:
    """A stand-in for ``socket.getaddrinfo`` with glibc's ``files dns``: the fixture's hosts
    file, then each test DNS server in turn. It never leaves loopback."""

    def __init__(self, hosts: Path, servers: list[tuple[str, int]], timeout: float = 1.0,
                 search: tuple[str, ...] = ()) -> None:
        self.hosts, self.servers, self.timeout, self.search = hosts, servers, timeout, search
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        found: list[str] = []
        if self.hosts.exists():
            for line in self.hosts.read_text().splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and host.lower() in (w.lower() for w in words[1:]):
                    found.append(words[0])
        if not found:
            found = self._dns(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in found]

    def _dns(self, host: str) -> list[str]:
        for address, port in self.servers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)]
            resolver.lifetime = resolver.timeout = self.timeout
            resolver.retry_servfail = False
            resolver.search = [dns.name.from_text(s) for s in self.search]
            out: list[str] = []
            try:
                for rdtype in ("A", "AAAA"):
                    answer = resolver.resolve(host, rdtype, search=True,
                                              raise_on_no_answer=False)
                    out += [r.to_text() for r in answer.rrset or []]
            except dns.resolver.NXDOMAIN:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            except dns.exception.DNSException:
                continue  # SERVFAIL, timeout: glibc asks the next server
            if not out:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return out
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


RECORDS: dict[str, list[tuple[str, str]]] = {
    "ollama.test.": [("A", "127.0.0.1")],
    "dual.test.": [("A", "127.0.0.1"), ("AAAA", "::1")],
    "www.ollama.test.": [("CNAME", "edge.ollama.test.")],
    "edge.ollama.test.": [("CNAME", "ollama.test.")],
    "dangling.test.": [("CNAME", "gone.test.")],
    "mailonly.test.": [("MX", "10 mx.test.")],
    "slow.test.": [("A", "127.0.0.1")],
    "stale.test.": [("A", "127.0.0.1")],
    "ollama.corp.example.": [("A", "127.0.0.1")],
}


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer(RECORDS, servfail=["broken.test."], drop=["drop.test."],
                   slow={"slow.test.": 0.3}) as server:
        yield server


@pytest.fixture
def root(tmp_path: Path, dns_server: DNSServer) -> Path:
    """A filesystem root whose resolv.conf names the test DNS server (port 53 is implied by
    resolv.conf, so the port comes from ``--nameserver`` in these tests)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "resolv.conf").write_text(
        "nameserver 127.0.0.1\nsearch corp.example\noptions ndots:1\n")
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    return tmp_path


def make_ctx(host: str, root: Path, servers: list[tuple[str, int]], *, timeout: float = 2.0,
             search: tuple[str, ...] = ("corp.example",), system_timeout: float | None = None,
             getaddrinfo: Callable[..., Any] | None = None) -> Context:
    options = Options(timeout=timeout,
                      nameservers=tuple(f"{a}:{p}" for a, p in servers))
    resolver = getaddrinfo or LoopbackResolver(root / "etc" / "hosts", servers,
                                               system_timeout or timeout, search)
    return Context(parse_target(host), options, env={}, fs_root=root, getaddrinfo=resolver)


def run_probe(ctx: Context, *, with_reachability: bool = False) -> Outcome:
    if with_reachability:
        outcome = reachability.run(ctx)
        ctx.results["reachability"] = ProbeResult(
            "reachability", "Server reachable", outcome.status, outcome.summary,
            facts=outcome.facts, findings=outcome.findings)
    return probe.run(ctx)


def dns_facts(outcome: Outcome) -> list[dict[str, Any]]:
    """The per-server answers without their timings."""
    answers = outcome.facts["dns"]
    assert isinstance(answers, list)
    return [{k: v for k, v in a.items() if k != "elapsed_ms"} for a in answers]


def only_finding(outcome: Outcome) -> Any:
    assert len(outcome.findings) == 1, [f.to_dict() for f in outcome.findings]
    return outcome.findings[0]


def test_normal_records_pass(dns_server: DNSServer, root: Path) -> None:
    server = dns_server.address
    ctx = make_ctx(f"http://ollama.test:{closed_port()}", root, [server])
    outcome = run_probe(ctx)
    assert outcome.status == Status.PASS, outcome.summary
    assert outcome.findings == []
    where = f"127.0.0.1:{dns_server.port}"
    assert dns_facts(outcome) == [{
        "server": where, "outcome": "answer", "a": ["127.0.0.1"], "aaaa": [],
        "per_type": {"A": "answer", "AAAA": "nodata"}, "qname": "ollama.test.",
        "tried": ["ollama.test."], "cname_chain": [], "error": None}]
    facts = outcome.facts
    assert facts["system"]["addresses"] == ["127.0.0.1"]
    assert facts["system"]["source"] == "resolver"
    assert facts["address_order"] == ["127.0.0.1"]
    assert facts["nameservers"] == [where]
    assert facts["nameservers_from"] == "--nameserver"
    assert facts["resolv_conf"] == {"nameservers": ["127.0.0.1"], "search": ["corp.example"],
                                    "ndots": 1}
    assert facts["hosts_file"] == {"path": "/etc/hosts", "readable": True, "entries": [],
                                   "decides": False}
    assert outcome.summary.startswith("ollama.test → 127.0.0.1 via the system resolver (")
    assert outcome.summary.endswith(f"; DNS: {where} agrees")
    assert {(q.name, q.rdtype) for q in dns_server.queries} >= {
        ("ollama.test.", "A"), ("ollama.test.", "AAAA")}


def test_cname_chain_is_recorded(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://www.ollama.test:11434", root, [dns_server.address]))
    assert outcome.status == Status.PASS
    chain = ["www.ollama.test.", "edge.ollama.test.", "ollama.test."]
    assert outcome.facts["cname_chain"] == chain
    assert dns_facts(outcome)[0]["a"] == ["127.0.0.1"]
    assert dns_facts(outcome)[0]["cname_chain"] == chain


def test_search_list_from_resolv_conf(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://ollama:11434", root, [dns_server.address]))
    assert outcome.status == Status.PASS, outcome.summary
    assert dns_facts(outcome)[0]["qname"] == "ollama.corp.example."


def test_nxdomain_s10(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://ollama.invalid:11434", root, [dns_server.address]))
    assert outcome.status == Status.FAIL
    finding = only_finding(outcome)
    where = f"127.0.0.1:{dns_server.port}"
    assert (finding.cause, finding.severity, finding.code) == (
        "dns-failure", Severity.CRITICAL, None)
    assert finding.message == (
        f"'ollama.invalid' does not exist in DNS: {where} answered NXDOMAIN, no such name.")
    assert finding.evidence["outcome"] == "nxdomain"
    assert finding.evidence["system"]["message"] == "[Errno -2] Name or service not known"
    assert dns_facts(outcome)[0]["tried"] == ["ollama.invalid.", "ollama.invalid.corp.example."]
    assert outcome.summary == ("ollama.invalid does not resolve ([Errno -2] Name or service not "
                               f"known); DNS: {where} NXDOMAIN")


def test_dangling_cname_is_nxdomain_with_its_chain(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://dangling.test:11434", root, [dns_server.address]))
    assert only_finding(outcome).evidence["outcome"] == "nxdomain"
    assert outcome.facts["cname_chain"] == ["dangling.test.", "gone.test."]


def test_servfail(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://broken.test:11434", root, [dns_server.address]))
    finding = only_finding(outcome)
    where = f"127.0.0.1:{dns_server.port}"
    assert (finding.cause, finding.severity) == ("dns-failure", Severity.CRITICAL)
    assert finding.message == (
        f"The resolver failed for 'broken.test': {where} answered SERVFAIL, it could not get an "
        "answer; the name may be fine but cannot be resolved now.")
    assert dns_facts(outcome)[0]["error"] == f"SERVFAIL from {where}"


def test_nodata(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://mailonly.test:11434", root, [dns_server.address]))
    finding = only_finding(outcome)
    assert finding.evidence["outcome"] == "nodata"
    assert finding.message.startswith("'mailonly.test' exists in DNS but has no address: ")
    assert dns_facts(outcome)[0]["per_type"] == {"A": "nodata", "AAAA": "nodata"}


def test_resolver_timeout(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://drop.test:11434", root, [dns_server.address],
                                 timeout=0.5))
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity) == ("dns-failure", Severity.CRITICAL)
    assert finding.evidence["outcome"] == "timeout"
    assert finding.message == (
        "Name resolution for 'drop.test' times out: no DNS server answered within 0.5 s "
        f"(127.0.0.1:{dns_server.port}).")
    answer = outcome.facts["dns"][0]
    assert answer["outcome"] == "timeout" and answer["elapsed_ms"] >= 450


def test_slow_answer_is_timed(dns_server: DNSServer, root: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe, "SLOW_MS", 250.0)
    outcome = run_probe(make_ctx("http://slow.test:11434", root, [dns_server.address]))
    assert outcome.status == Status.WARN
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity) == ("high-latency", Severity.WARNING)
    assert outcome.facts["dns"][0]["elapsed_ms"] >= 290
    assert outcome.facts["system"]["elapsed_ms"] >= 290
    assert "every new connection waits that long" in finding.message


def test_failing_first_nameserver_is_a_warning(dns_server: DNSServer, root: Path) -> None:
    with DNSServer({}, drop=["ollama.test."]) as dead:
        servers = [dead.address, dns_server.address]
        outcome = run_probe(make_ctx("http://ollama.test:11434", root, servers, timeout=1.0,
                                     system_timeout=0.3))
    assert outcome.status == Status.WARN
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity) == ("dns-failure", Severity.WARNING)
    assert finding.message == (
        f"Configured DNS server 127.0.0.1:{dead.port} (TIMEOUT) fails while "
        f"127.0.0.1:{dns_server.port} answers: every lookup waits for it to time out before "
        "the next server is asked.")


@pytest.mark.parametrize(("host", "needle", "command"), [
    ("host.docker.internal",
     "Docker defines it only in Docker Desktop, or on Linux in containers started with "
     "--add-host=host.docker.internal:host-gateway.",
     "docker run --add-host=host.docker.internal:host-gateway IMAGE"),
    ("locahost", "it looks like a typo of 'localhost'.",
     "export OLLAMA_HOST=http://127.0.0.1:11434"),
    ("ollama", "Is the client on the same compose network?",
     "docker network connect NETWORK CONTAINER"),
])
def test_names_users_get_wrong(dns_server: DNSServer, root: Path, host: str, needle: str,
                               command: str) -> None:
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    outcome = run_probe(make_ctx(f"http://{host}:11434", root, [dns_server.address],
                                 search=()))
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity) == ("dns-failure", Severity.CRITICAL)
    assert finding.message.endswith(needle), finding.message
    assert "answered NXDOMAIN, no such name" in finding.message
    assert command in [c for step in finding.fix for c in step.commands]


def test_compose_name_inside_docker_names_embedded_dns(dns_server: DNSServer,
                                                        root: Path) -> None:
    (root / "etc" / "resolv.conf").write_text("nameserver 127.0.0.11\noptions ndots:0\n")
    outcome = run_probe(make_ctx("http://ollama:11434", root, [dns_server.address], search=()))
    assert "Docker's embedded DNS here does not know it" in only_finding(outcome).message


def test_system_fails_while_dns_answers(dns_server: DNSServer, root: Path) -> None:
    def files_only(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    outcome = run_probe(make_ctx("http://ollama.test:8080", root, [dns_server.address],
                                 getaddrinfo=files_only))
    finding = only_finding(outcome)
    assert finding.severity == Severity.CRITICAL
    assert finding.message == (
        "The system resolver cannot resolve 'ollama.test' ([Errno -2] Name or service not "
        f"known), although DNS server 127.0.0.1:{dns_server.port} answers 127.0.0.1: this "
        "machine resolves through something else (nsswitch.conf, systemd-resolved, a VPN).")
    assert finding.fix[1].commands == ("export OLLAMA_HOST=http://127.0.0.1:8080",)


def test_resolv_conf_nameserver_is_used_without_option(dns_server: DNSServer,
                                                        root: Path) -> None:
    """A fixture resolv.conf naming the test server (on an IPv6-free ``[::1]``-less form)."""
    (root / "etc" / "resolv.conf").write_text(f"nameserver 127.0.0.1:{dns_server.port}\n")
    ctx = make_ctx("http://ollama.test:11434", root, [dns_server.address])
    ctx.options = Options(timeout=2.0)
    outcome = run_probe(ctx)
    assert outcome.facts["nameservers_from"] == "/etc/resolv.conf"
    assert outcome.facts["nameservers"] == [f"127.0.0.1:{dns_server.port}"]
    assert dns_facts(outcome)[0]["outcome"] == "answer"


def test_bad_nameserver_option_is_recorded(dns_server: DNSServer, root: Path) -> None:
    ctx = make_ctx("http://ollama.test:11434", root, [dns_server.address])
    ctx.options = Options(timeout=2.0, nameservers=("dns.example", f"127.0.0.1:{dns_server.port}"))
    outcome = run_probe(ctx)
    assert outcome.facts["nameserver_errors"] == ["nameserver 'dns.example' is not an IP address"]
    assert outcome.facts["nameservers"] == [f"127.0.0.1:{dns_server.port}"]


def test_localhost_is_never_sent_to_dns(dns_server: DNSServer, root: Path) -> None:
    outcome = run_probe(make_ctx("http://localhost:11434", root, [dns_server.address]))
    assert outcome.status == Status.PASS
    assert outcome.facts["dns"] == {
        "skipped": "localhost names are answered locally, never by DNS (RFC 6761)"}
    assert outcome.facts["hosts_file"]["entries"] == [{"line": 1, "address": "127.0.0.1"}]
    assert outcome.facts["hosts_file"]["decides"] is True
    assert dns_server.queries == []


def test_ip_literal_is_skipped(dns_server: DNSServer, root: Path) -> None:
    for host, literal in (("http://127.0.0.1:11434", "127.0.0.1"), ("http://[::1]:1", "::1"),
                          ("0.0.0.0:11434", "127.0.0.1")):
        outcome = run_probe(make_ctx(host, root, [dns_server.address]))
        assert outcome.status == Status.SKIP
        assert outcome.summary == f"{literal} is an IP address: there is no name to resolve"
        assert outcome.facts == {"host": literal, "ip_literal": True}
    assert dns_server.queries == []


def test_garbage_configuration_does_not_crash(dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "resolv.conf").write_text("search a..b ..\nnameserver not-an-ip\n\0\xff\n")
    (root / "etc" / "hosts").write_bytes(b"\xff\xfe\x00garbage\n127.0.0.1\n" + b"x" * 400_000)
    (root / "etc" / "nsswitch.conf").write_bytes(b"hosts:\n")
    long_label = "a" * 70 + ".test"
    for host in ("ollama.test", long_label):
        outcome = run_probe(make_ctx(f"http://{host}:11434", root, [dns_server.address]))
        assert outcome.status in (Status.PASS, Status.FAIL), outcome.summary
    assert outcome.facts["dns"][0]["outcome"] == "error"


# -- /etc/hosts against DNS ---------------------------------------------------------------------


def test_stale_hosts_entry_disagrees_with_dns(dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n10.0.0.9 stale.test\n")
    outcome = run_probe(make_ctx("http://stale.test:11434", root, [dns_server.address]))
    assert outcome.status == Status.WARN
    finding = only_finding(outcome)
    where = f"127.0.0.1:{dns_server.port}"
    assert (finding.cause, finding.severity, finding.confidence.value) == (
        "dns-failure", Severity.WARNING, "medium")
    assert finding.message == (
        f"'stale.test' resolves here to 10.0.0.9 (from /etc/hosts (line 2)) but DNS server "
        f"{where} says 127.0.0.1: a stale /etc/hosts entry; clients on other machines or with "
        "other resolvers reach a different server.")
    assert finding.evidence == {
        "host": "stale.test",
        "system": {"addresses": ["10.0.0.9"], "source": "/etc/hosts (line 2)"},
        "dns": {"server": where, "addresses": ["127.0.0.1"], "cname_chain": []},
        "hosts_entries": [{"line": 2, "address": "10.0.0.9"}],
    }
    assert outcome.summary.endswith(f"; DNS: {where} says 127.0.0.1")


def test_hosts_only_name_is_not_a_disagreement(dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost box.lan\n")
    outcome = run_probe(make_ctx("http://box.lan:11434", root, [dns_server.address]))
    assert outcome.status == Status.PASS
    assert outcome.findings == []
    assert outcome.facts["system"]["source"] == "/etc/hosts"
    assert dns_facts(outcome)[0]["outcome"] == "nxdomain"


def test_dns_gets_a_short_wait_when_hosts_decides(dns_server: DNSServer, root: Path) -> None:
    """No client waits for DNS when /etc/hosts answers: a silent server is asked for
    ``HOSTS_DECIDE_WAIT`` seconds, not ``--timeout`` (a silent server cost healthy runs in
    host.docker.internal set-ups the whole timeout, and the probe's budget under load)."""
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost drop.test\n")
    outcome = run_probe(make_ctx("http://drop.test:11434", root, [dns_server.address],
                                 timeout=5.0))
    assert (outcome.status, outcome.findings) == (Status.PASS, [])
    answer = dns_facts(outcome)[0]
    assert answer["outcome"] == "timeout"
    assert answer["error"].startswith(f"no answer within {probe.HOSTS_DECIDE_WAIT:g} s (")
    assert "drop.test." in {q.name for q in dns_server.queries}


def tiny_ollama(host: str, *, dual: bool = False) -> CannedServer:
    """Answers like Ollama at ``/`` and ``/api/version``; IPv4 or IPv6 only, or both."""
    server = CannedServer(OLLAMA_ROOT, host=host, dual_stack=dual)
    server.start()
    return server


def test_stale_hosts_entry_that_does_not_connect_is_critical(dns_server: DNSServer,
                                                              root: Path) -> None:
    """The hosts file points at an address where nothing listens; DNS's address answers."""
    server = tiny_ollama("127.0.0.1")
    try:
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.0.2 stale.test\n")
        ctx = make_ctx(f"http://stale.test:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity) == ("dns-failure", Severity.CRITICAL)
    assert finding.message.endswith("which does: a stale /etc/hosts entry.")
    assert finding.evidence["alternatives"][0]["ok"] is True
    assert finding.fix[1].commands == (f"export OLLAMA_HOST=http://127.0.0.1:{server.port}",)
    ranked = diagnosis.rank([ctx.results["reachability"],
                             ProbeResult("dns", "Name resolution", outcome.status,
                                         outcome.summary, findings=outcome.findings)])
    assert [d.cause for d in ranked] == ["dns-failure", "server-not-running"]


# -- ::1 first ----------------------------------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


@needs_ipv6
def test_ipv6_first_refused_ipv4_works(dns_server: DNSServer, root: Path) -> None:
    """S11 in-process: ``::1 localhost`` first, the server on 127.0.0.1 only."""
    (root / "etc" / "hosts").write_text("::1 localhost\n127.0.0.1 localhost\n")
    server = tiny_ollama("127.0.0.1")
    try:
        ctx = make_ctx(f"http://localhost:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    assert ctx.results["reachability"].status == Status.PASS  # Python falls back to IPv4
    assert outcome.status == Status.WARN
    finding = only_finding(outcome)
    port = server.port
    assert (finding.cause, finding.severity) == ("ipv6-localhost", Severity.WARNING)
    assert finding.message == (
        f"'localhost' resolves to ::1 first, and [::1]:{port} is refused while 127.0.0.1:{port} "
        "answers: Python clients fall back to IPv4, but Node 17-19 (ollama-js, fetch) dial only "
        f"the first address and fail with ECONNREFUSED ::1:{port}.")
    assert [s.commands for s in finding.fix] == [
        (f"export OLLAMA_HOST=http://127.0.0.1:{port}",),
        (f"OLLAMA_HOST='[::]:{port}' ollama serve",)]
    assert finding.evidence["address_order"] == ["::1", "127.0.0.1"]
    assert outcome.summary.endswith("; ::1 is refused, 127.0.0.1 answers")


@needs_ipv6
def test_ipv4_first_refused_ipv6_works(dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "hosts").write_text("127.0.0.1 dual.test\n::1 dual.test\n")
    server = tiny_ollama("::1")
    try:
        ctx = make_ctx(f"http://dual.test:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    finding = next(f for f in outcome.findings if f.cause == "ipv6-localhost")
    assert finding.message.startswith(
        f"'dual.test' resolves to 127.0.0.1 first, and 127.0.0.1:{server.port} is refused while "
        f"[::1]:{server.port} answers")
    assert finding.fix[0].commands == (f"export OLLAMA_HOST='http://[::1]:{server.port}'",)


@needs_ipv6
def test_both_families_listening_is_healthy(dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "hosts").write_text("::1 localhost\n127.0.0.1 localhost\n")
    server = tiny_ollama("::", dual=True)
    try:
        ctx = make_ctx(f"http://localhost:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    assert outcome.status == Status.PASS, outcome.findings
    assert [c["ok"] for c in ctx.results["reachability"].facts["connects"]] == [True, True]


def _this_process() -> str:
    import psutil

    return f" ({psutil.Process().name()}, pid {os.getpid()})"


@needs_ipv6
@pytest.mark.parametrize(("listen", "host", "other"), [
    ("127.0.0.1", "[::1]", "127.0.0.1"),  # --host [::1]:PORT, Ollama's default bind
    ("::1", "127.0.0.1", "::1"),  # the reverse
])
def test_loopback_literal_refused_while_the_other_family_answers(
        dns_server: DNSServer, root: Path, listen: str, host: str, other: str) -> None:
    """The target's only address is refused; one connect to the other loopback proves the
    server listens there: an error (no client falls back), and it explains the refusal."""
    server = tiny_ollama(listen)
    try:
        ctx = make_ctx(f"http://{host}:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    port = server.port
    dialled = "::1" if other == "127.0.0.1" else "127.0.0.1"
    dialled_at = f"[::1]:{port}" if dialled == "::1" else f"127.0.0.1:{port}"
    other_at = f"[::1]:{port}" if other == "::1" else f"127.0.0.1:{port}"
    other_url = f"http://[::1]:{port}" if other == "::1" else f"http://127.0.0.1:{port}"
    assert outcome.status == Status.FAIL
    assert outcome.summary == (f"{dialled} is an IP address: there is no name to resolve; "
                               f"{dialled_at} is refused, {other_at} answers")
    assert outcome.facts["other_family"]["ok"] is True
    finding = only_finding(outcome)
    assert (finding.cause, finding.severity, finding.confidence.value) == (
        "ipv6-localhost", Severity.ERROR, "high")
    head = (f"The client dials {dialled_at}, which refuses connections, while {other_at} "
            f"accepts them{_this_process()}: ")
    if other == "127.0.0.1":
        assert finding.message == head + (
            "the server listens on IPv4 loopback only (Ollama's default bind is 127.0.0.1), "
            "and no client falls back to it from an IPv6 address. Use 127.0.0.1.")
        assert [s.commands for s in finding.fix] == [
            (f"export OLLAMA_HOST={other_url}", f"curl {other_url}/"),
            (f"OLLAMA_HOST='[::]:{port}' ollama serve",)]
    else:
        assert finding.message == head + (
            "the server listens on IPv6 loopback only, and no client falls back to it from an "
            "IPv4 address. Use [::1], or make the server listen on both families.")
        assert [s.commands for s in finding.fix] == [
            (f"export OLLAMA_HOST='{other_url}'", f"curl '{other_url}/'"),
            (f"OLLAMA_HOST='[::]:{port}' ollama serve",
             f"OLLAMA_HOST=127.0.0.1:{port} ollama serve")]
    assert (finding.evidence["first"], finding.evidence["working"]) == (dialled, other)
    ranked = diagnosis.rank([ctx.results["reachability"],
                             ProbeResult("dns", "Name resolution", outcome.status,
                                         outcome.summary, facts=outcome.facts,
                                         findings=outcome.findings)])
    assert [(d.cause, d.severity) for d in ranked] == [("ipv6-localhost", Severity.ERROR)]
    assert [e["cause"] for e in ranked[0].evidence["explains"]] == ["server-not-running"]


@needs_ipv6
def test_name_with_one_loopback_family_refused_while_the_other_answers(
        dns_server: DNSServer, root: Path) -> None:
    (root / "etc" / "hosts").write_text("::1 ip6only.test\n")
    server = tiny_ollama("127.0.0.1")
    try:
        ctx = make_ctx(f"http://ip6only.test:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    port = server.port
    finding = next(f for f in outcome.findings if f.cause == "ipv6-localhost")
    assert finding.severity == Severity.ERROR
    assert finding.message.startswith(
        f"'ip6only.test' resolves to ::1 only here, and the client dials [::1]:{port}, which "
        f"refuses connections, while 127.0.0.1:{port} accepts them")
    assert outcome.summary.endswith("; ::1 is refused, 127.0.0.1 answers")


@needs_ipv6
def test_no_other_family_finding_when_nothing_or_everything_listens(
        dns_server: DNSServer, root: Path) -> None:
    # nothing on either family: the refusal stays server-not-running (reachability's)
    port = closed_port()
    ctx = make_ctx(f"http://[::1]:{port}", root, [dns_server.address])
    outcome = run_probe(ctx, with_reachability=True)
    assert outcome.status == Status.SKIP and outcome.findings == []
    assert (outcome.facts["other_family"]["address"], outcome.facts["other_family"]["error"]) == (
        "127.0.0.1", "refused")
    # a dual-stack server answers [::1]: reachability passes, nothing more is dialled
    server = tiny_ollama("::", dual=True)
    try:
        ctx = make_ctx(f"http://[::1]:{server.port}", root, [dns_server.address])
        outcome = run_probe(ctx, with_reachability=True)
    finally:
        server.stop()
    assert ctx.results["reachability"].status == Status.PASS
    assert outcome.status == Status.SKIP and "other_family" not in outcome.facts
    # without reachability's connects there is nothing to compare: the old skip
    outcome = run_probe(make_ctx(f"http://[::1]:{port}", root, [dns_server.address]))
    assert outcome.facts == {"host": "::1", "ip_literal": True}


# -- who resolves: the proxy ---------------------------------------------------------------------


PROXY = "http://user:s3cret@127.0.0.1:3128"
PROXY_SHOWN = "http://user:***@127.0.0.1:3128"


@pytest.mark.parametrize("clients", [
    {"curl": {"route": "direct", "proxy": None},
     "httpx": {"route": "proxy", "proxy": PROXY_SHOWN}},
    ProxyFacts({"curl": ClientRoute("direct", None, None),  # typed, as the proxy probe hands it
                "httpx": ClientRoute("proxy", PROXY_SHOWN, "HTTP_PROXY")}),
    None,  # the proxy probe did not run: the same decision from the environment
])
def test_proxy_resolves_instead_of_the_client(dns_server: DNSServer, root: Path,
                                              clients: Any) -> None:
    ctx = make_ctx("http://ollama.invalid:11434", root, [dns_server.address])
    if clients is None:
        ctx.env = {"HTTP_PROXY": PROXY}
    elif isinstance(clients, ProxyFacts):
        ctx.results["proxy"] = ProbeResult("proxy", "Proxy settings", Status.PASS, "",
                                           evidence=clients)
    else:
        ctx.results["proxy"] = ProbeResult("proxy", "Proxy settings", Status.PASS, "",
                                           facts={"clients": clients})
    outcome = run_probe(ctx)
    assert outcome.status == Status.WARN
    assert outcome.findings == []
    assert outcome.facts["proxied"] == {"client": "httpx (ollama-python)", "proxy": PROXY_SHOWN}
    assert outcome.facts["local_failure_ignored"] is True
    assert outcome.summary == ("ollama.invalid does not resolve here, but ollama-python's client "
                               f"sends it through {PROXY_SHOWN}, which resolves it")
    assert "s3cret" not in json.dumps(outcome.facts)


def test_direct_client_with_proxy_probe_facts_is_not_proxied(dns_server: DNSServer,
                                                              root: Path) -> None:
    ctx = make_ctx("http://ollama.invalid:11434", root, [dns_server.address])
    ctx.env = {"HTTP_PROXY": PROXY}  # the proxy probe's table wins over the environment
    ctx.results["proxy"] = ProbeResult("proxy", "Proxy settings", Status.PASS, "", facts={
        "clients": {"httpx": {"route": "direct", "proxy": None}}})
    outcome = run_probe(ctx)
    assert outcome.facts["proxied"] is None
    assert only_finding(outcome).cause == "dns-failure"


# ---------------------------------------------------------------------------------------------
# the real CLI, outside and inside a network namespace


def test_cli_ip_literal_skips(cli: Callable[..., CliRun]) -> None:
    port = closed_port()
    run = cli("probe", "dns", "--host", f"http://127.0.0.1:{port}", "--json")
    checks = {c["id"]: c for c in run.json()["checks"]}
    assert checks["dns"]["status"] == "skip"
    assert checks["dns"]["summary"] == "127.0.0.1 is an IP address: there is no name to resolve"
    facts = checks["dns"]["facts"]
    # refused at 127.0.0.1: the other loopback was tried once, and refuses too
    other = facts.pop("other_family")
    assert facts == {"host": "127.0.0.1", "ip_literal": True}
    assert (other["address"], other["port"], other["ok"]) == ("::1", port, False)
    if _has_ipv6_loopback():
        assert other["error"] == "refused"


def test_cli_localhost_with_fixture_root(cli: Callable[..., CliRun], dns_server: DNSServer,
                                         root: Path) -> None:
    """localhost through the real CLI: the fixture's resolv.conf and hosts are read, DNS is not
    asked, and a healthy server gives no error-level cause."""
    real_hosts = Path("/etc/hosts").read_text(errors="replace").split()
    if "localhost" not in real_hosts:
        pytest.skip("this machine's /etc/hosts has no localhost line: getaddrinfo would ask DNS")
    server = tiny_ollama("127.0.0.1")
    try:
        run = cli("check", "--host", f"http://localhost:{server.port}", "--fs-root", str(root),
                  "--nameserver", f"127.0.0.1:{dns_server.port}", "--json")
    finally:
        server.stop()
    doc = run.json()
    checks = {c["id"]: c for c in doc["checks"]}
    dns_check = checks["dns"]
    assert dns_check["facts"]["dns"] == {
        "skipped": "localhost names are answered locally, never by DNS (RFC 6761)"}
    assert dns_check["facts"]["resolv_conf"]["search"] == ["corp.example"]
    assert dns_server.queries == []
    assert all(d["severity"] not in ("error", "critical") for d in doc["diagnosis"]), doc
    assert run.code == 0, run.stderr


# -- inside a network namespace -----------------------------------------------------------------


def _cli_in(ns: Netns, *args: str, timeout: float = 60) -> CliRun:
    done = ns.run([sys.executable, "-m", "ollama_doctor", *args], timeout=timeout, cwd=REPO,
                  env=clean_environ())
    return CliRun(done.returncode, done.stdout, done.stderr)


def _emulator_in(ns: Netns, *extra: str) -> str:
    """The emulator inside ``ns``: on 127.0.0.1 and a free port unless ``extra`` says else."""
    server = ns.start_server([sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0",
                              *extra], cwd=REPO, env=clean_environ())
    return server.first_line.rstrip("/")


def _dns_in(ns: Netns, records: dict[str, list[list[str]]], *extra: str) -> None:
    server = ns.start_server([sys.executable, "-m", "tests.support.dns_server", "--records",
                              json.dumps(records), *extra], cwd=REPO)
    assert server.first_line == "127.0.0.1:53"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _check(doc: dict[str, Any], probe_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["checks"] if c["id"] == probe_id)
    return found


@pytest.mark.netns
def test_netns_s11_ipv6_localhost_first_server_ipv4_only() -> None:
    require_netns()
    with Netns(hosts="::1 localhost\n127.0.0.1 localhost\n") as ns:
        port = _port(_emulator_in(ns))
        run = _cli_in(ns, "check", "--host", f"http://localhost:{port}", "--json")
    doc = run.json()
    assert doc["summary"]["top_cause"] == "ipv6-localhost", doc["diagnosis"]
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("ipv6-localhost", "warning", None)
    assert top["evidence"]["address_order"] == ["::1", "127.0.0.1"]
    assert (top["evidence"]["first"], top["evidence"]["failure"], top["evidence"]["working"]) \
        == ("::1", "refused", "127.0.0.1")
    assert top["fix"][0]["commands"] == [f"export OLLAMA_HOST=http://127.0.0.1:{port}"]
    assert _check(doc, "reachability")["status"] == "pass"
    assert _check(doc, "dns")["facts"]["hosts_file"]["decides"] is True
    assert run.code == 0, run.stderr


@pytest.mark.netns
def test_netns_s11_healthy_server_on_both_families() -> None:
    require_netns()
    with Netns(hosts="::1 localhost\n127.0.0.1 localhost\n") as ns:
        port = _port(_emulator_in(ns))  # 127.0.0.1, then the same port on ::1
        assert _port(_emulator_in(ns, "--bind", "::1", "--port", str(port))) == port
        run = _cli_in(ns, "check", "--host", f"http://localhost:{port}", "--json")
    doc = run.json()
    assert [c["ok"] for c in _check(doc, "reachability")["facts"]["connects"]] == [True, True]
    assert all(d["cause"] != "ipv6-localhost" for d in doc["diagnosis"]), doc["diagnosis"]
    assert all(d["severity"] not in ("error", "critical") for d in doc["diagnosis"])
    assert run.code == 0, run.stderr


@pytest.mark.netns
def test_netns_ollama_host_ipv6_loopback_while_the_server_has_ollamas_default_bind() -> None:
    """``OLLAMA_HOST=::1`` (port 11434) while the server listens on 127.0.0.1:11434 only."""
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n::1 localhost\n") as ns:
        assert _port(_emulator_in(ns, "--port", "11434")) == 11434
        done = ns.run([sys.executable, "-m", "ollama_doctor", "check", "--json"], timeout=60,
                      cwd=REPO, env=clean_environ({"OLLAMA_HOST": "::1"}))
    run = CliRun(done.returncode, done.stdout, done.stderr)
    doc = run.json()
    assert run.code == 1, run.stderr
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["confidence"], top["code"]) == (
        "ipv6-localhost", "error", "high", None), doc["diagnosis"]
    assert [e["cause"] for e in top["evidence"]["explains"]] == ["server-not-running"]
    assert top["explanation"].startswith(
        "The client dials [::1]:11434, which refuses connections, while 127.0.0.1:11434 "
        "accepts them (")
    assert top["fix"][0]["commands"] == ["export OLLAMA_HOST=http://127.0.0.1:11434",
                                         "curl http://127.0.0.1:11434/"]
    assert all(d["cause"] != "server-not-running" for d in doc["diagnosis"])


@pytest.mark.netns
def test_netns_s10_nxdomain_from_the_dns_server() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        _dns_in(ns, {"ollama.test.": [["A", "127.0.0.1"]]})
        run = _cli_in(ns, "check", "--host", "http://ollama.invalid:11434", "--json")
    doc = run.json()
    assert doc["summary"]["top_cause"] == "dns-failure", doc["diagnosis"]
    assert doc["diagnosis"][0]["severity"] == "critical"
    finding = _check(doc, "dns")["findings"][0]
    assert finding["evidence"]["outcome"] == "nxdomain"
    assert finding["message"] == (
        "'ollama.invalid' does not exist in DNS: 127.0.0.1:53 answered NXDOMAIN, no such name.")
    assert run.code == 1


@pytest.mark.netns
def test_netns_s04_host_docker_internal() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        _dns_in(ns, {})
        run = _cli_in(ns, "check", "--host", "http://host.docker.internal:11434", "--json")
    doc = run.json()
    assert doc["summary"]["top_cause"] == "dns-failure", doc["diagnosis"]
    finding = _check(doc, "dns")["findings"][0]
    assert finding["cause"] == "dns-failure"
    assert "--add-host=host.docker.internal:host-gateway" in finding["message"]
    commands = [c for step in finding["fix"] for c in step["commands"]]
    assert "docker run --add-host=host.docker.internal:host-gateway IMAGE" in commands
    assert run.code == 1


@pytest.mark.netns
def test_netns_resolver_timeout() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n",
               resolv_conf="nameserver 127.0.0.1\noptions timeout:1 attempts:1\n") as ns:
        _dns_in(ns, {}, "--drop", "ollama.test.")
        run = _cli_in(ns, "probe", "dns", "--host", "http://ollama.test:11434", "--timeout", "2",
                      "--json")
    doc = run.json()
    finding = _check(doc, "dns")["findings"][0]
    assert finding["cause"] == "dns-failure"
    assert finding["evidence"]["outcome"] == "timeout"
    assert finding["evidence"]["system"]["message"] == (
        "[Errno -3] Temporary failure in name resolution")
    assert run.code == 1


@pytest.mark.netns
def test_netns_name_that_resolves_and_works() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        # *.internal: a Host that Ollama's DNS-rebinding check accepts on a loopback bind
        _dns_in(ns, {"ollama.internal.": [["A", "127.0.0.1"]]})
        port = _port(_emulator_in(ns))
        run = _cli_in(ns, "probe", "dns", "--host", f"http://ollama.internal:{port}", "--json")
    doc = run.json()
    dns_check = _check(doc, "dns")
    assert dns_check["status"] == "pass", dns_check
    assert dns_check["summary"].endswith("; DNS: 127.0.0.1:53 agrees")
    assert all(d["severity"] not in ("error", "critical") for d in doc["diagnosis"])
    assert run.code == 0, run.stderr


@pytest.mark.netns
def test_netns_name_only_in_namespace_hosts_file() -> None:
    """A name only in ``/etc/netns/NAME/hosts``: the file decides, DNS's NXDOMAIN is normal."""
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n127.0.0.1 box.internal\n") as ns:
        _dns_in(ns, {})
        port = _port(_emulator_in(ns))
        run = _cli_in(ns, "probe", "dns", "--host", f"http://box.internal:{port}", "--json")
    doc = run.json()
    facts = _check(doc, "dns")["facts"]
    assert facts["system"]["addresses"] == ["127.0.0.1"]
    assert facts["hosts_file"]["entries"] == [{"line": 2, "address": "127.0.0.1"}]
    assert facts["dns"][0]["outcome"] == "nxdomain"
    assert _check(doc, "dns")["status"] == "pass"
    assert run.code == 0, run.stderr


@pytest.mark.netns
def test_netns_stale_hosts_entry_is_the_top_cause() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n127.0.0.2 ollama.test\n") as ns:
        _dns_in(ns, {"ollama.test.": [["A", "127.0.0.1"]]})
        port = _port(_emulator_in(ns))
        run = _cli_in(ns, "probe", "dns", "--host", f"http://ollama.test:{port}", "--json")
    doc = run.json()
    assert doc["summary"]["top_cause"] == "dns-failure", doc["diagnosis"]
    top = doc["diagnosis"][0]
    assert top["explanation"].endswith("which does: a stale /etc/hosts entry.")
    assert [d["cause"] for d in doc["diagnosis"]][:2] == ["dns-failure", "server-not-running"]
    assert run.code == 1
