"""Tests of the test-support servers themselves, over real loopback sockets.

Each server must reproduce what ``failure-modes.md`` says users see (statuses, headers, bodies) and
must stop cleanly. Tests that need root and network namespaces skip without them (fail on CI).
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import httpx
import pytest

from tests.conftest import closed_port
from tests.support import netns
from tests.support._http import connect_loopback, is_loopback
from tests.support._server import THREAD_PREFIX
from tests.support.dns_server import DNSQuery, DNSServer
from tests.support.guard import NonLoopbackTraffic, loopback_only
from tests.support.netns import Netns, require_iptables, require_netns
from tests.support.proxy import ForwardProxy
from tests.support.reverse_proxy import ReverseProxy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _loopback_only_and_no_leaks() -> Iterator[None]:
    with loopback_only():
        yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert leaked == [], f"threads left running: {leaked}"


# -- a tiny Ollama-like origin -------------------------------------------------------------------


class Origin(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins handler threads
    release: threading.Event
    seen: list[tuple[str, str, dict[str, str]]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class OriginHandler(BaseHTTPRequestHandler):
    """``/`` → ``Ollama is running``; ``/host`` echoes Host; ``/echo`` echoes the body;
    ``/stream?n=&gap=`` chunked NDJSON; ``/slow?delay=`` withholds headers; ``/stall`` stops
    after one chunk."""

    server: Origin
    protocol_version = "HTTP/1.1"
    timeout = 5.0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _record(self) -> urllib.parse.SplitResult:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append((self.command, self.path, headers))
        return urllib.parse.urlsplit(self.path)

    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        url = self._record()
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/":
            self._send(200, b"Ollama is running")
        elif url.path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif url.path == "/slow":
            if self.server.release.wait(float(query.get("delay", "1"))):
                return  # test over
            self._send(200, b"late")
        elif url.path in ("/stream", "/stall"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if url.path == "/stall":
                self._chunk(b'{"response":"a","done":false}\n')
                self.server.release.wait(3)
                self.close_connection = True
                return
            n, gap = int(query.get("n", "3")), float(query.get("gap", "0"))
            for i in range(n):
                if gap and self.server.release.wait(gap):
                    return
                self._chunk(json.dumps({"response": str(i), "done": i == n - 1}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(404, b"404 page not found")

    def do_POST(self) -> None:
        self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, body, "application/json; charset=utf-8")


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin(("127.0.0.1", 0), OriginHandler)
    server.release = threading.Event()
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def client(proxy: str | None = None, **kwargs: object) -> httpx.Client:
    return httpx.Client(proxy=proxy, trust_env=False, timeout=5.0, **kwargs)  # type: ignore[arg-type]


# -- closed_port (tests/conftest.py) ------------------------------------------------------------


def _loopbacks() -> list[tuple[socket.AddressFamily, str]]:
    found = [(socket.AF_INET, "127.0.0.1")]
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return found
    return [*found, (socket.AF_INET6, "::1")]


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "SO_REUSEADDR"])
def test_closed_port_refuses_and_no_server_can_take_it(reuse: bool) -> None:
    port = closed_port()
    assert closed_port() != port  # each call holds a port of its own
    for family, host in _loopbacks():
        with socket.socket(family) as dial:
            dial.settimeout(5)
            with pytest.raises(ConnectionRefusedError):
                dial.connect((host, port))
        # a server binding it (http.server sets SO_REUSEADDR) is refused the address
        with socket.socket(family) as rival:
            if reuse:
                rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError) as info:
                rival.bind((host, port))
        assert info.value.errno == errno.EADDRINUSE, (host, info.value)


# -- forward proxy -------------------------------------------------------------------------------


def test_proxy_relays_to_loopback_origin(origin: Origin) -> None:
    with ForwardProxy() as proxy, client(proxy.url) as c:
        r = c.get(origin.url + "/")
        r2 = c.post(origin.url + "/echo", json={"model": "m"})
        assert proxy.errors == []
    assert r.status_code == 200
    assert r.text == "Ollama is running"
    assert r.headers["via"] == "1.1 proxy (squid/5.7)"
    assert r2.json() == {"model": "m"}
    assert [(m, t) for m, t, _ in proxy.requests] == [
        ("GET", origin.url + "/"),
        ("POST", origin.url + "/echo"),
    ]
    method, path, headers = origin.seen[0]
    assert (method, path) == ("GET", "/")
    assert headers["host"] == f"127.0.0.1:{origin.port}"
    assert headers["via"] == "1.1 proxy (squid/5.7)"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "proxy-connection" not in headers


def test_proxy_streams_chunked_ndjson(origin: Origin) -> None:
    with ForwardProxy() as proxy, client(proxy.url) as c:
        with c.stream("GET", origin.url + "/stream?n=3") as r:
            lines = [json.loads(line) for line in r.iter_lines()]
        assert r.headers["transfer-encoding"] == "chunked"
    assert [d["response"] for d in lines] == ["0", "1", "2"]


def test_proxy_resolves_names_the_client_cannot(origin: Origin) -> None:
    resolve = {"ollama.corp": ("127.0.0.1", origin.port)}
    with ForwardProxy(resolve=resolve) as proxy, client(proxy.url) as c:
        r = c.get("http://ollama.corp:11434/host")
    assert r.status_code == 200
    assert r.text == "ollama.corp:11434"  # Host keeps the name, like a real proxy


def test_proxy_upstream_refused_gives_squid_502() -> None:
    port = closed_port()
    with ForwardProxy() as proxy, client(proxy.url) as c:
        r = c.get(f"http://127.0.0.1:{port}/api/chat")
    assert r.status_code == 502
    assert r.headers["server"] == "squid/5.7"
    assert r.headers["x-squid-error"] == "ERR_CONNECT_FAIL 111"
    assert r.headers["via"] == "1.1 proxy (squid/5.7)"
    assert r.headers["content-type"] == "text/html;charset=utf-8"
    assert "The requested URL could not be retrieved" in r.text
    assert "Connection to 127.0.0.1 failed" in r.text
    assert "(111) Connection refused" in r.text
    with pytest.raises(httpx.HTTPStatusError, match="502 Bad Gateway"):
        r.raise_for_status()


def test_proxy_connect_fail_status_can_be_squids_real_503() -> None:
    with ForwardProxy(connect_fail_status=503) as proxy, client(proxy.url) as c:
        r = c.get(f"http://127.0.0.1:{closed_port()}/")
    assert (r.status_code, r.headers["x-squid-error"]) == (503, "ERR_CONNECT_FAIL 111")


def test_proxy_unknown_name_is_dns_fail_without_any_lookup() -> None:
    with ForwardProxy() as proxy, client(proxy.url) as c:
        r = c.get("http://ollama.invalid:11434/")
    assert r.status_code == 502
    assert r.headers["x-squid-error"] == "ERR_DNS_FAIL 0"
    assert "Unable to determine IP address from host name <q>ollama.invalid</q>" in r.text


def test_proxy_never_dials_non_loopback() -> None:
    # TEST-NET-1 address; loopback_only() would raise (and the test fail) if the proxy dialled it.
    with ForwardProxy() as proxy, client(proxy.url) as c:
        r = c.get("http://192.0.2.10:11434/")
        assert proxy.errors == []
    assert (r.status_code, r.headers["x-squid-error"]) == (502, "ERR_CONNECT_FAIL 101")
    with pytest.raises(ValueError, match="loopback"):
        ForwardProxy(resolve={"x": ("192.0.2.10", 80)})


def test_proxy_deny_gives_squid_403(origin: Origin) -> None:
    with ForwardProxy("deny") as proxy, client(proxy.url) as c:
        r = c.get(origin.url + "/api/chat")
    assert r.status_code == 403
    assert r.headers["server"] == "squid/5.7"
    assert r.headers["x-squid-error"] == "ERR_ACCESS_DENIED 0"
    assert r.headers["via"] == "1.1 proxy (squid/5.7)"
    assert "<b>Access Denied.</b>" in r.text
    assert origin.seen == []


def test_proxy_bad_gateway_always_502(origin: Origin) -> None:
    with ForwardProxy("bad-gateway") as proxy, client(proxy.url) as c:
        r = c.get(origin.url + "/api/chat")
    assert r.status_code == 502
    assert r.headers["x-squid-error"] == "ERR_CONNECT_FAIL 111"
    assert "Connection to 127.0.0.1 failed" in r.text
    assert origin.seen == []


def test_proxy_privoxy_500(origin: Origin) -> None:
    with ForwardProxy("privoxy-500") as proxy, client(proxy.url) as c:
        r = c.get(origin.url + "/api/chat")
    assert (r.status_code, r.reason_phrase) == (500, "Internal Privoxy Error")
    assert "server" not in r.headers
    assert r.headers["content-type"] == "text/html"
    assert "<title>500 Internal Privoxy Error</title>" in r.text
    with pytest.raises(httpx.HTTPStatusError, match="500 Internal Privoxy Error"):
        r.raise_for_status()


def test_proxy_reset_closes_without_answer(origin: Origin) -> None:
    with ForwardProxy("reset") as proxy, client(proxy.url) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            c.get(origin.url + "/api/chat")
        assert len(proxy.requests) == 1


def test_proxy_rst_resets_connection(origin: Origin) -> None:
    with ForwardProxy("rst") as proxy, client(proxy.url) as c:
        with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
            c.get(origin.url + "/api/chat")
        assert len(proxy.requests) == 1


def test_proxy_requires_basic_auth(origin: Origin) -> None:
    with ForwardProxy(require_auth=("alice", "s3cret")) as proxy:
        with client(proxy.url) as c:
            r = c.get(origin.url + "/")
        assert r.status_code == 407
        assert r.headers["proxy-authenticate"] == 'Basic realm="proxy"'
        assert r.headers["x-squid-error"] == "ERR_CACHE_ACCESS_DENIED 0"
        with client(f"http://alice:wrong@127.0.0.1:{proxy.port}") as c:
            assert c.get(origin.url + "/").status_code == 407
        with client(f"http://alice:s3cret@127.0.0.1:{proxy.port}") as c:
            r = c.get(origin.url + "/")
        assert proxy.requests[-1].headers["proxy-authorization"].startswith("Basic ")
    assert (r.status_code, r.text) == (200, "Ollama is running")
    assert len(origin.seen) == 1
    assert "proxy-authorization" not in origin.seen[0][2]


def _raw_exchange(port: int, data: bytes, then: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        if then:
            while b"\r\n\r\n" not in reply:
                reply += sock.recv(4096)
            sock.sendall(then)
        while chunk := sock.recv(65536):
            reply += chunk
            if len(reply) > 1 << 20:
                break
    return reply


def test_proxy_connect_tunnel(origin: Origin) -> None:
    with ForwardProxy() as proxy:
        reply = _raw_exchange(
            proxy.port,
            f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        refused = _raw_exchange(
            proxy.port, f"CONNECT 127.0.0.1:{closed_port()} HTTP/1.1\r\n\r\n".encode()
        )
    assert reply.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert reply.endswith(b"Ollama is running")
    assert refused.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"X-Squid-Error: ERR_CONNECT_FAIL 111" in refused
    assert proxy.requests[0].method == "CONNECT"


def test_proxy_rejects_origin_form_and_garbage() -> None:
    with ForwardProxy() as proxy:
        origin_form = _raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        garbage = _raw_exchange(proxy.port, b"hello\r\n\r\n")
    assert origin_form.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"ERR_INVALID_URL" in origin_form
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")


# -- reverse proxy -------------------------------------------------------------------------------


def test_reverse_proxy_passes_host_through(origin: Origin) -> None:
    with ReverseProxy(origin.url) as rp, client() as c:
        r = c.get(rp.url + "/")
        host = c.get(rp.url + "/host", headers={"Host": "ollama.example.com"})
        own = c.get(rp.url + "/host")
        assert rp.errors == []
    assert (r.status_code, r.text) == (200, "Ollama is running")
    assert r.headers["server"] == "nginx/1.25.3"  # the origin's own Server header is replaced
    assert host.text == "ollama.example.com"
    assert own.text == f"127.0.0.1:{rp.port}"


def test_reverse_proxy_host_header_override(origin: Origin) -> None:
    with ReverseProxy(origin.url, host_header="localhost:11434") as rp, client() as c:
        r = c.get(rp.url + "/host", headers={"Host": "ollama.example.com"})
        echoed = c.post(rp.url + "/echo", content=b'{"stream":false}')
    assert r.text == "localhost:11434"
    assert echoed.content == b'{"stream":false}'
    assert rp.requests[0].headers["host"] == "ollama.example.com"


def test_reverse_proxy_answers_expect_100_continue(origin: Origin) -> None:
    body = b'{"model":"m"}'
    with ReverseProxy(origin.url) as rp, socket.create_connection(("127.0.0.1", rp.port), 5) as s:
        s.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\n")
    assert reply.endswith(b"\r\n\r\n" + body)
    assert "expect" not in origin.seen[0][2]


def test_reverse_proxy_streams_while_chunks_keep_coming(origin: Origin) -> None:
    with (
        ReverseProxy(origin.url, read_timeout=0.5) as rp,
        client() as c,
        c.stream("GET", rp.url + "/stream?n=5&gap=0.15") as r,
    ):
        lines = [json.loads(line) for line in r.iter_lines()]
    assert r.status_code == 200
    assert r.headers["server"] == "nginx/1.25.3"
    assert len(lines) == 5 and lines[-1]["done"] is True


def test_reverse_proxy_504_when_headers_are_late(origin: Origin) -> None:
    with ReverseProxy(origin.url, read_timeout=0.3) as rp, client() as c:
        start = time.monotonic()
        r = c.get(rp.url + "/slow?delay=30")
        elapsed = time.monotonic() - start
    # after the proxy's read timeout, long before the origin's 30 s answer: the proxy gave up
    # (the upper bound only catches a hang; the 504 itself says who answered)
    assert 0.25 <= elapsed < 10.0
    assert r.status_code == 504
    assert r.reason_phrase == "Gateway Time-out"
    assert r.headers["server"] == "nginx/1.25.3"
    assert r.headers["content-type"] == "text/html"
    assert r.text == (
        "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
        "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def test_reverse_proxy_cuts_a_stalled_stream(origin: Origin) -> None:
    with (
        ReverseProxy(origin.url, read_timeout=0.3) as rp,
        client() as c,
        c.stream("GET", rp.url + "/stall") as r,
    ):
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            list(r.iter_lines())


def test_reverse_proxy_502_when_upstream_refuses() -> None:
    with ReverseProxy(f"http://127.0.0.1:{closed_port()}") as rp, client() as c:
        r = c.get(rp.url + "/api/tags")
    assert r.status_code == 502
    assert r.headers["server"] == "nginx/1.25.3"
    assert "<title>502 Bad Gateway</title>" in r.text
    assert "<hr><center>nginx/1.25.3</center>" in r.text
    with pytest.raises(ValueError, match="loopback"):
        ReverseProxy("http://192.0.2.10:11434")


def test_reverse_proxy_bearer_auth(origin: Origin) -> None:
    with ReverseProxy(origin.url, require_bearer="tok") as rp, client() as c:
        missing = c.get(rp.url + "/")
        wrong = c.get(rp.url + "/", headers={"Authorization": "Bearer nope"})
        ok = c.get(rp.url + "/", headers={"Authorization": "Bearer tok"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="ollama"'
    assert missing.headers["server"] == "nginx/1.25.3"
    assert "<title>401 Authorization Required</title>" in missing.text
    assert (ok.status_code, ok.text) == (200, "Ollama is running")
    assert len(origin.seen) == 1
    assert origin.seen[0][2]["authorization"] == "Bearer tok"


# -- DNS server ----------------------------------------------------------------------------------

RECORDS: dict[str, list[tuple[str, str]]] = {
    "ollama.test.": [("A", "127.0.0.1")],
    "v6.test.": [("AAAA", "::1"), ("A", "127.0.0.1")],
    "alias.test.": [("CNAME", "ollama.test.")],
    "dangling.test.": [("CNAME", "gone.test.")],
    "big.test.": [("TXT", f'"{"x" * 200}{i}"') for i in range(5)],
}


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer(
        RECORDS, servfail={"broken.test"}, slow={"slow.test.": 0.3}, drop={"drop.test."}
    ) as server:
        yield server
        assert server.errors == []


def resolver_for(server: DNSServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.address[0]]
    resolver.port = server.port
    resolver.lifetime = 2.0
    return resolver


def udp(server: DNSServer, name: str, rdtype: str, timeout: float = 2.0) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, server.address[0], timeout=timeout, port=server.port)


def test_dns_answers_over_udp_and_tcp(dns_server: DNSServer) -> None:
    host, port = dns_server.address
    over_udp = udp(dns_server, "ollama.test.", "A")
    query = dns.message.make_query("OLLAMA.Test.", "A")
    over_tcp = dns.query.tcp(query, host, timeout=2.0, port=port)
    for reply in (over_udp, over_tcp):
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert [rr.to_text() for rrset in reply.answer for rr in rrset] == ["127.0.0.1"]
    assert dns_server.queries == [
        DNSQuery("ollama.test.", "A", "udp"),
        DNSQuery("ollama.test.", "A", "tcp"),
    ]


def test_dns_resolver_records_and_cname(dns_server: DNSServer) -> None:
    resolver = resolver_for(dns_server)
    assert [r.to_text() for r in resolver.resolve("v6.test", "AAAA")] == ["::1"]
    assert [r.to_text() for r in resolver.resolve("v6.test", "A")] == ["127.0.0.1"]
    alias = resolver.resolve("alias.test", "A")
    assert [r.to_text() for r in alias] == ["127.0.0.1"]
    assert alias.canonical_name.to_text() == "ollama.test."
    reply = udp(dns_server, "alias.test.", "A")
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]


def test_dns_nxdomain_nodata_servfail(dns_server: DNSServer) -> None:
    nx = udp(dns_server, "missing.test.", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert nx.answer == []
    assert [rrset.rdtype for rrset in nx.authority] == [dns.rdatatype.SOA]
    dangling = udp(dns_server, "dangling.test.", "A")
    assert dangling.rcode() == dns.rcode.NXDOMAIN
    assert [rrset.rdtype for rrset in dangling.answer] == [dns.rdatatype.CNAME]
    nodata = udp(dns_server, "ollama.test.", "AAAA")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])
    assert [rrset.rdtype for rrset in nodata.authority] == [dns.rdatatype.SOA]
    assert udp(dns_server, "broken.test.", "A").rcode() == dns.rcode.SERVFAIL
    resolver = resolver_for(dns_server)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("missing.test", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("ollama.test", "AAAA")
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("broken.test", "A")


def test_dns_slow_and_dropped(dns_server: DNSServer) -> None:
    start = time.monotonic()
    assert udp(dns_server, "slow.test.", "A").rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - start >= 0.29
    with pytest.raises(dns.exception.Timeout):
        udp(dns_server, "drop.test.", "A", timeout=0.3)
    resolver = resolver_for(dns_server)
    resolver.lifetime = 0.4
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("drop.test", "A")


def test_dns_truncates_large_udp_answers(dns_server: DNSServer) -> None:
    reply = udp(dns_server, "big.test.", "TXT")
    assert reply.flags & dns.flags.TC and reply.answer == []
    full = dns.query.tcp(
        dns.message.make_query("big.test.", "TXT"),
        dns_server.address[0],
        timeout=2.0,
        port=dns_server.port,
    )
    assert len(full.answer[0]) == 5


def test_dns_stop_is_prompt_with_queries_in_flight() -> None:
    server = DNSServer({}, slow={"slow.test.": 30.0})
    host, port = server.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(dns.message.make_query("slow.test.", "A").to_wire(), (host, port))
        deadline = time.monotonic() + 2
        while not server.queries and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        server.stop()
    assert server.queries == [DNSQuery("slow.test.", "A", "udp")]
    assert time.monotonic() - start < 10.0  # not the 30 s answer: a hang catcher, load-proof


# -- shared plumbing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.0.2.10", False),
        ("::", False),
        ("localhost", False),
    ],
)
def test_is_loopback(address: str, expected: bool) -> None:
    assert is_loopback(address) is expected


def test_connect_loopback_refuses_before_creating_a_socket() -> None:
    def never(sock: socket.socket) -> None:
        raise AssertionError("a socket was created for a non-loopback address")

    with pytest.raises(PermissionError):
        connect_loopback("192.0.2.10", 80, 0.1, never)


def test_guard_blocks_non_loopback_traffic() -> None:
    with pytest.raises(NonLoopbackTraffic):
        socket.getaddrinfo("example.com", 80)
    with socket.socket() as sock, pytest.raises(NonLoopbackTraffic):
        sock.connect(("192.0.2.10", 80))
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        pytest.raises(NonLoopbackTraffic),
    ):
        sock.sendto(b"x", ("192.0.2.10", 53))
    assert socket.getaddrinfo("localhost", 80)


# -- network namespaces (root) -------------------------------------------------------------------


def test_require_netns_fails_instead_of_skipping_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no netns here"):
        netns._skip_or_fail("no netns here")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no netns here"):
        netns._skip_or_fail("no netns here")


def test_require_netns_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "_checked", {})
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        require_netns()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="need root"):
        require_netns()


@pytest.mark.netns
def test_netns_drop_times_out_while_refused_is_immediate() -> None:
    require_iptables()
    with Netns() as ns:
        _, port = ns.listen_tcp("127.0.0.1")
        assert ns.tcp_connect("127.0.0.1", port) == "connected"
        ns.drop_tcp_port(port)
        outcome, seconds = ns.tcp_connect_timed("127.0.0.1", port, timeout=0.5)
        assert outcome == "timeout" and seconds >= 0.5
        other = port + 1 if port < 65535 else port - 1
        outcome, seconds = ns.tcp_connect_timed("127.0.0.1", other, timeout=0.5)
        # refused answers before the timeout that a dropped SYN runs into (not a clock bound)
        assert outcome == "refused" and seconds < 0.5


@pytest.mark.netns
def test_netns_hosts_file_orders_localhost() -> None:
    require_netns()
    with Netns(hosts="::1 localhost\n127.0.0.1 localhost\n") as ns:
        assert ns.run(["getent", "hosts", "localhost"]).stdout.split()[0] == "::1"
        assert ns.run(["getent", "ahosts", "localhost"]).stdout.split()[0] == "::1"
        resolv = ns.run(["cat", "/etc/resolv.conf"]).stdout
        assert resolv == netns.DEFAULT_RESOLV_CONF
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        assert ns.run(["getent", "hosts", "localhost"]).stdout.split()[0] == "127.0.0.1"


@pytest.mark.netns
def test_netns_non_loopback_address_reaches_only_wildcard_binds() -> None:
    require_netns()
    with Netns() as ns:
        ns.add_address("10.77.0.2")
        _, any_port = ns.listen_tcp("0.0.0.0")
        _, lo_port = ns.listen_tcp("127.0.0.1")
        assert ns.tcp_connect("10.77.0.2", any_port) == "connected"
        assert ns.tcp_connect("10.77.0.2", lo_port) == "refused"
        assert ns.tcp_connect("127.0.0.1", lo_port) == "connected"
        local, peer = ns.add_veth("10.77.1.1/24", "10.77.1.2/24")
        assert (local, peer) == ("odt0a", "odt0b")
        assert ns.tcp_connect("10.77.1.2", any_port) == "connected"
        assert ns.tcp_connect("10.77.1.2", lo_port) == "refused"


@pytest.mark.netns
def test_netns_system_resolver_uses_dns_server_inside() -> None:
    require_netns()
    records = json.dumps({"ollama.test.": [["A", "127.0.0.1"]]})
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        server = ns.start_server(
            [sys.executable, "-m", "tests.support.dns_server", "--records", records],
            cwd=REPO,
        )
        assert server.first_line == "127.0.0.1:53"
        found = ns.run(["getent", "ahosts", "ollama.test"])
        assert found.stdout.split()[0] == "127.0.0.1"
        assert ns.run(["getent", "hosts", "missing.test"]).returncode == 2


@pytest.mark.netns
def test_netns_cleans_up_everything() -> None:
    require_netns()
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        server, _ = ns.listen_tcp("127.0.0.1")
        name, etc = ns.name, ns.etc_dir
        assert etc.is_dir()
    assert server.proc.poll() is not None
    assert not etc.exists()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    assert name not in listed.stdout.split()
    with pytest.raises(RuntimeError, match="before printing a line"), Netns() as ns:
        ns.start_server([sys.executable, "-c", "import sys; sys.exit(3)"])


def test_proxies_stop_promptly_with_connections_open(origin: Origin) -> None:
    outcomes: list[str] = []

    def slow_call(url: str, proxy: str | None) -> None:
        with client(proxy) as c:
            try:
                outcomes.append(str(c.get(url).status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)

    rp = ReverseProxy(origin.url)  # nginx's default 60 s read timeout
    fp = ForwardProxy()
    rp.start()
    fp.start()
    callers = [
        threading.Thread(target=slow_call, args=(rp.url + "/slow?delay=30", None)),
        threading.Thread(target=slow_call, args=(origin.url + "/slow?delay=30", fp.url)),
    ]
    with client(fp.url) as idle:  # a kept-alive, idle client connection
        assert idle.get(origin.url + "/").status_code == 200
        for t in callers:
            t.start()
        deadline = time.monotonic() + 2
        while len(origin.seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        rp.stop()
        fp.stop()
        elapsed = time.monotonic() - start
    for t in callers:
        t.join(5)
    assert elapsed < 10.0  # not the 30 s answers: a hang catcher, load-proof
    assert sorted(outcomes) == ["RemoteProtocolError", "RemoteProtocolError"]
