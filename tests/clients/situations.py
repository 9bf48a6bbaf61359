"""The failure situations of the real-client tier, each in its own fresh network namespace.

Every situation is built from real components inside a private namespace, at fixed addresses
and ports so its fixtures are reproducible: the Ollama emulator at ``127.0.0.1:11434``
(``ollama-doctor emulate --fault …``), ``tinyproxy``, ``dnsmasq``, ``iptables`` DROP rules, the
loopback forward and reverse proxies of ``tests/support`` (started by ``tests.clients.servers``
at a fixed port). Nothing inside a namespace can reach any other network.

Each situation says what cause the doctor must name, how the client's call is made (``Call``),
which environment the client — and later the doctor — runs with, and, per client, the server
that client called (``target``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from tests.clients.apps import CLIENTS, NODE_CLIENTS, Call
from tests.support.netns import Netns

REPO = Path(__file__).resolve().parents[2]
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
DEFAULT_OLLAMA = "http://127.0.0.1:11434"  # ollama-python's and ollama-js's default host
LITERAL_DEFAULT = "http://localhost:11434"  # what people write in a URL (Ollama's docs do)
PROXY = "http://127.0.0.1:3128"
OOM_MID_STREAM = ("an error was encountered while running the model: "
                  "CUDA error: out of memory")
SECRET = "s3cret-token"
START_TIMEOUT = 60.0  # a server's start-up, generous: the machine may be busy with the clients
DEFAULT_CALL = Call(None, None)  # the client's default host, no timeout


def proxy_env(url: str) -> dict[str, str]:
    """Proxy variables as a corporate machine sets them: both spellings, no NO_PROXY."""
    return {"HTTP_PROXY": url, "http_proxy": url, "HTTPS_PROXY": url, "https_proxy": url}


class Build:
    """What a situation's setup may start; everything stops when the stack closes."""

    def __init__(self, stack: ExitStack, situation: Situation) -> None:
        self.stack = stack
        self.ns: Netns = stack.enter_context(
            Netns(hosts=situation.hosts, resolv_conf=situation.resolv_conf))
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odt-rc-")))

    def emulator(self, *faults: str, models: tuple[str, ...] = (), ns: Netns | None = None,
                 bind: str = "127.0.0.1") -> None:
        argv = [sys.executable, "-m", "ollama_doctor", "emulate", "--bind", bind,
                "--port", "11434"]
        for model in models:
            argv += ["--model", model]
        for fault in faults:
            argv += ["--fault", fault]
        (ns or self.ns).start_server(argv, cwd=REPO, timeout=START_TIMEOUT)

    def server(self, *args: str, ns: Netns | None = None) -> None:
        (ns or self.ns).start_server([sys.executable, "-m", "tests.clients.servers", *args],
                                     cwd=REPO, timeout=START_TIMEOUT)

    def daemon(self, argv: list[str], port: int, *, udp: bool = False,
               ns: Netns | None = None) -> None:
        """A real tool that prints nothing when ready: wait until it listens on ``port``."""
        ns = ns or self.ns
        log = (self.tmp / f"{Path(argv[0]).name}.log").open("wb")
        self.stack.callback(log.close)
        proc = ns.popen(argv, stdout=log, stderr=subprocess.STDOUT)
        proto = "-Hlun" if udp else "-Hltn"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: "
                                   f"{(self.tmp / (Path(argv[0]).name + '.log')).read_text()}")
            if ns.run(["ss", proto, f"sport = :{port}"]).stdout.strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{argv[0]} did not listen on {port} within {START_TIMEOUT:g} s")

    def python(self, code: str, *, background: bool = False) -> None:
        if background:
            self.ns.popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        else:
            self.ns.run([sys.executable, "-c", code])

    def peer_namespace(self) -> Netns:
        """A second namespace joined to this one by a veth: 10.77.1.1 here, 10.77.1.2 there."""
        peer: Netns = self.stack.enter_context(Netns(hosts=HOSTS))
        self.ns.ip("link", "add", "rc0a", "type", "veth", "peer", "name", "rc0b",
                   "netns", peer.name)
        self.ns.ip("addr", "add", "10.77.1.1/24", "dev", "rc0a")
        self.ns.ip("link", "set", "rc0a", "up")
        peer.ip("addr", "add", "10.77.1.2/24", "dev", "rc0b")
        peer.ip("link", "set", "rc0b", "up")
        return peer

    def tinyproxy(self, listen: str, allow: str, ns: Netns | None = None,
                  deny_all: bool = False) -> None:
        conf = self.tmp / "tinyproxy.conf"
        lines = ["Port 3128", f"Listen {listen}", f"Allow {allow}", "Timeout 10",
                 "MaxClients 20", "LogLevel Critical", "User nobody", "Group nogroup"]
        if deny_all:
            (self.tmp / "filter").write_text(".*\n")
            os.chmod(self.tmp, 0o755)
            lines += [f'Filter "{self.tmp / "filter"}"', "FilterDefaultDeny No",
                      "FilterExtended Yes", "FilterURLs Yes"]
        conf.write_text("\n".join(lines) + "\n")
        os.chmod(conf, 0o644)
        tinyproxy = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        self.daemon([tinyproxy, "-d", "-c", str(conf)], 3128, ns=ns)

    def dnsmasq_nxdomain(self, domain: str) -> None:
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.daemon([dnsmasq, "-k", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
                     "--bind-interfaces", "--pid-file=", "--user=root",
                     f"--address=/{domain}/", "--log-facility=-"], 53, udp=True)

    def drop(self, proto: str, port: int) -> None:
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool):
                result = self.ns.run([tool, "-w", "5", "-A", "INPUT", "-p", proto, "--dport",
                                      str(port), "-j", "DROP"])
                if result.returncode != 0:
                    raise RuntimeError(f"{tool}: {result.stderr.strip()}")


@dataclass(frozen=True)
class Situation:
    id: str
    title: str
    expected: str  # the cause id (ollama_doctor.causes.CAUSES) the doctor must name
    setup: Callable[[Build], None]
    call: Call = DEFAULT_CALL
    env: dict[str, str] = field(default_factory=dict)  # for the client and the doctor
    hosts: str = HOSTS
    resolv_conf: str = RESOLV
    expected_for: dict[str, str] = field(default_factory=dict)  # per-client exceptions
    # What in a printed text names the cause (an HTTP status with its message, a proxy's page,
    # a resolver error…): a fixture whose text matches has "text" evidence, others "live".
    # None: no text can, only a live check decides (a read timeout, a refused 10.77.0.2).
    names_cause: str | None = None
    kill_after: float = 60.0  # seconds before a call still waiting is stopped
    fresh_per_client: bool = False  # each call needs its own server (a cold load)
    may_succeed: frozenset[str] = frozenset()  # clients whose call gets an answer here
    doctor_args: tuple[str, ...] = ()
    # Per client, added to ``doctor_args``: a client whose printed error shows no address
    # (ollama-js's ResponseError, node's "fetch failed") and that reads no variable the doctor
    # could, calling a server set in its code: its user must say where it points (--host).
    doctor_args_for: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def expected_cause(self, client: str) -> str:
        return self.expected_for.get(client, self.expected)

    def doctor_args_of(self, client: str) -> tuple[str, ...]:
        """The arguments the user gives ``check`` besides the pasted error."""
        return (*self.doctor_args, *self.doctor_args_for.get(client, ()))

    def base_url(self, client: str) -> str:
        """The base URL this client uses (before its own API path)."""
        if client in ("openai-python", "openai-node"):
            return self.call.openai_url or f"{LITERAL_DEFAULT}/v1"
        if self.call.url is not None:
            return self.call.url
        if client in ("ollama-python", "ollama-python-async", "langchain-ollama", "ollama-js"):
            return DEFAULT_OLLAMA
        return LITERAL_DEFAULT

    def target(self, client: str) -> str:
        """scheme://host:port of the server this client called."""
        parts = urlsplit(self.base_url(client))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}:{port}"

    def client_env(self, client: str) -> dict[str, str]:
        env = dict(self.env)
        if client in ("ollama-python", "ollama-python-async", "langchain-ollama") \
                and self.call.url is not None:
            env["OLLAMA_HOST"] = self.call.url
        if client in ("openai-python", "openai-node"):
            env["OPENAI_BASE_URL"] = self.base_url(client)
        return env


def _url(base: str, openai: str | None = None, **kw: object) -> Call:
    return Call(base, openai if openai is not None else f"{base}/v1", **kw)  # type: ignore[arg-type]


# -- setups --------------------------------------------------------------------------------

def nothing(b: Build) -> None:
    pass


def emulator(*faults: str, models: tuple[str, ...] = ()) -> Callable[[Build], None]:
    def setup(b: Build) -> None:
        b.emulator(*faults, models=models)
    return setup


def dropped_syn(b: Build) -> None:
    b.drop("tcp", 11434)


def dns_nxdomain(b: Build) -> None:
    b.dnsmasq_nxdomain("lan")


def dns_timeout(b: Build) -> None:
    b.drop("udp", 53)
    b.drop("tcp", 53)


def forward_proxy(mode: str) -> Callable[[Build], None]:
    def setup(b: Build) -> None:
        b.emulator()
        b.server("forward", mode, "127.0.0.1", "3128")
    return setup


def tinyproxy_elsewhere(b: Build) -> None:
    """The proxy runs on another host (a second namespace); its own 127.0.0.1:11434 is closed."""
    b.emulator()
    peer = b.peer_namespace()
    b.tinyproxy("10.77.1.2", "10.77.1.0/24", ns=peer)


def tinyproxy_filter(b: Build) -> None:
    b.emulator()
    b.tinyproxy("127.0.0.1", "127.0.0.1", deny_all=True)


def dead_proxy(b: Build) -> None:
    b.emulator()


def gateway(b: Build) -> None:
    b.server("forward", "deny", "127.0.0.1", "3128", "ollama.corp.example=0@emulator")


def json_service(b: Build) -> None:
    b.server("json", "127.0.0.1", "11434")


def reverse(*faults: str, dead: bool = False, read_timeout: str | None = None
            ) -> Callable[[Build], None]:
    def setup(b: Build) -> None:
        b.ns.add_address("10.77.0.2")
        if not dead:
            b.emulator(*faults)
        args = ["reverse", "10.77.0.2", "80", "http://127.0.0.1:11434"]
        b.server(*args, *([read_timeout] if read_timeout else []))
    return setup


def rate_limited(b: Build) -> None:
    b.emulator("rate-limit=0.001")
    # The bucket holds one token: spend it, so the user's call is the one beyond the limit.
    b.python("import urllib.request as u; u.urlopen('http://127.0.0.1:11434/api/version', "
             "timeout=5).read()")


def queue_full(b: Build) -> None:
    b.emulator("queue=0", "cold-load=60")
    # Another app's request is loading the model; with OLLAMA_MAX_QUEUE=0 the next one is 503.
    b.python("import urllib.request as u; u.urlopen(u.Request("
             "'http://127.0.0.1:11434/api/generate', data=b'{\"model\": \"llama3.2\", "
             "\"prompt\": \"hi\", \"stream\": false}'), timeout=90).read()", background=True)
    time.sleep(1.0)


def bound_to_loopback(b: Build) -> None:
    b.ns.add_address("10.77.0.2")
    b.emulator()


CLOUD = "gpt-oss:120b-cloud"
WITH_CLOUD = ("llama3.2:latest", CLOUD)
PUBLIC = "http://ollama.example.com"
PUBLIC_HOSTS = HOSTS + "10.77.0.2 ollama.example.com\n"

SITUATIONS: tuple[Situation, ...] = (
    Situation("refused", "nothing listens on the port", "server-not-running", nothing),
    Situation("dropped-syn", "a firewall drops the SYNs", "connect-timeout", dropped_syn,
              kill_after=60.0),
    Situation("hang", "the server accepts and never answers (client timeout 3 s)",
              "server-unresponsive", emulator("hang"), Call(None, None, timeout=3)),
    Situation("dns-nxdomain", "the name does not exist (dnsmasq answers NXDOMAIN)",
              "dns-failure", dns_nxdomain, _url("http://ollama.lan:11434")),
    Situation("dns-timeout", "the DNS server never answers", "dns-failure", dns_timeout,
              _url("http://ollama.lan:11434")),
    Situation("proxy-captures-502", "HTTP_PROXY captures localhost; the proxy answers 502",
              "proxy-captures-local", forward_proxy("bad-gateway"), env=proxy_env(PROXY)),
    Situation("proxy-captures-tinyproxy",
              "HTTP_PROXY captures localhost; tinyproxy on another host cannot connect",
              "proxy-captures-local", tinyproxy_elsewhere,
              env=proxy_env("http://10.77.1.2:3128")),
    Situation("proxy-dead", "the proxy variable points at a dead proxy", "proxy-unreachable",
              dead_proxy, env=proxy_env(PROXY)),
    Situation("proxy-blocks-local", "HTTP_PROXY captures localhost; the proxy's 403 page",
              "proxy-captures-local", forward_proxy("deny"), env=proxy_env(PROXY)),
    Situation("proxy-blocks-tinyproxy", "HTTP_PROXY captures localhost; tinyproxy filters it",
              "proxy-captures-local", tinyproxy_filter, env=proxy_env(PROXY)),
    Situation("proxy-gateway", "a server reachable only via the corporate proxy, which blocks it",
              "proxy-blocks", gateway, _url("http://ollama.corp.example:11434"),
              env=proxy_env(PROXY),
              # Node's fetch reads no proxy variable: it looks the name up itself and fails.
              expected_for={"ollama-js": "dns-failure", "openai-node": "dns-failure"}),
    Situation("html", "an nginx HTML page on the port", "not-ollama", emulator("html")),
    Situation("json-service", "another JSON service on the port", "not-ollama", json_service),
    Situation("auth-401", "an auth proxy wants a bearer token", "auth-required",
              emulator(f"auth={SECRET}")),
    Situation("host-403", "a reverse proxy forwards a public Host to a loopback-bound server",
              "host-forbidden", reverse(), _url(PUBLIC), hosts=PUBLIC_HOSTS),
    Situation("model-missing", "the model is not pulled", "model-not-found",
              emulator(models=("mistral:7b",))),
    Situation("base-path", "the base URL carries /api (OpenAI: lacks /v1)", "wrong-base-path",
              emulator(), _url(f"{LITERAL_DEFAULT}/api", LITERAL_DEFAULT)),
    Situation("rate-limit", "a gateway rate limit answers 429", "rate-limited", rate_limited),
    Situation("cloud-quota", "a cloud model's hourly quota is used up", "rate-limited",
              emulator("cloud=quota", models=WITH_CLOUD), Call(None, None, model=CLOUD)),
    Situation("cloud-signin", "the server is not signed in to ollama.com",
              "cloud-signin-required", emulator("cloud=signin", models=WITH_CLOUD),
              Call(None, None, model=CLOUD)),
    Situation("runner-crash", "the model runner crashes at load", "runner-crashed",
              emulator("runner-crash=new")),
    Situation("oom", "out of memory at load", "out-of-memory", emulator("oom=new")),
    Situation("oom-mid-stream", "out of memory in the middle of a streamed answer",
              "out-of-memory", emulator(f"mid-stream-error={OOM_MID_STREAM}"),
              Call(None, None, stream=True)),
    Situation("reverse-502", "a reverse proxy whose upstream is down", "bad-gateway",
              reverse(dead=True), _url(PUBLIC), hosts=PUBLIC_HOSTS),
    Situation("queue-503", "the queue is full while a model loads (OLLAMA_MAX_QUEUE=0)",
              "server-busy", queue_full),
    Situation("gateway-504", "a reverse proxy times out a slow generation", "gateway-timeout",
              reverse("slow-generate=3", "host-check=off", read_timeout="1"), _url(PUBLIC),
              hosts=PUBLIC_HOSTS),
    Situation("cold-load", "a cold load (5 s) longer than the client timeout (2 s)",
              "slow-model-load", emulator("cold-load=5"), Call(None, None, timeout=2),
              fresh_per_client=True),
    Situation("https-plain", "https:// to Ollama's plain-HTTP port", "wrong-port-scheme",
              emulator(), _url("https://localhost:11434")),
    Situation("bound-loopback", "server bound to 127.0.0.1, client uses 10.77.0.2",
              "bound-to-loopback", bound_to_loopback, _url("http://10.77.0.2:11434")),
)

BY_ID = {s.id: s for s in SITUATIONS}

PROXY_WORDS = r"[Pp]roxy|squid|ERR_[A-Z_]+|ProxyError"
# An answer that is not Ollama's: a page, or an app crashing on the shape of another JSON.
NOT_OLLAMA = (r"<html|<!DOCTYPE|nginx|JSONDecodeError|Expecting value|is not valid JSON|"
              r"Unexpected token|KeyError|ValidationError|Field required|Cannot read properties|"
              r"AttributeError|object is not subscriptable|inventory-api")
# Per situation: the words that, printed, name its cause (see Situation.names_cause).
NAMES_CAUSE: dict[str, str] = {
    "refused": r"ECONNREFUSED|Connection refused|Couldn't connect|Errno 111|actively refused",
    "dropped-syn": r"ConnectTimeout|Connect Timeout|CONNECT_TIMEOUT|ETIMEDOUT|"
                   r"Connection timed out|connect timed out",
    "dns-nxdomain": r"ENOTFOUND|Name or service not known|NameResolutionError|Failed to resolve|"
                    r"Could not resolve host|Errno -2\b|getaddrinfo",
    "dns-timeout": r"EAI_AGAIN|Temporary failure in name resolution|NameResolutionError|"
                   r"Could not resolve host|Errno -3\b",
    "proxy-captures-502": PROXY_WORDS,
    "proxy-captures-tinyproxy": r"[Tt]inyproxy|" + PROXY_WORDS,
    "proxy-dead": PROXY_WORDS + r"|:3128\b",
    "proxy-blocks-local": PROXY_WORDS,
    "proxy-blocks-tinyproxy": r"[Tt]inyproxy|Filtered|" + PROXY_WORDS,
    "proxy-gateway": PROXY_WORDS + r"|EAI_AGAIN|ENOTFOUND",
    "html": NOT_OLLAMA,
    "json-service": NOT_OLLAMA,
    "auth-401": r"\b401\b|Unauthorized|unauthorized",
    "model-missing": r"model ['\"]?[\w.:-]+['\"]? not found|try pulling",
    "base-path": r"/api/api/|404 page not found",
    "rate-limit": r"\b429\b|Too Many Requests|rate limit",
    "cloud-quota": r"\b429\b|usage limit|Too Many Requests",
    "cloud-signin": r"signin_url|sign ?in|-cloud|:cloud",
    "runner-crash": r"process has terminated|exit status",
    "oom": r"out of memory|system memory|OOM",
    "oom-mid-stream": r"out of memory",
    "reverse-502": r"\b502\b|Bad Gateway",
    "queue-503": r"\b503\b|server busy|Service Unavailable|maximum pending",
    "gateway-504": r"\b504\b|Gateway Time-?out",
    "https-plain": r"WRONG_VERSION_NUMBER|wrong version number|SSL|TLS|EPROTO",
    # none: "hang", "cold-load" (a read timeout cannot tell a hung server from a slow load),
    # "host-403" (an empty-body 403: Host, Origin or another check), "bound-loopback" (a
    # refused non-loopback address: only the listeners tell).
}
# Node's fetch reads no proxy variable, so a proxy in front of localhost does not touch its
# call; langchain-ollama streams, so a reverse proxy's read timeout between chunks is not hit.
MAY_SUCCEED: dict[str, frozenset[str]] = {
    **dict.fromkeys(("proxy-captures-502", "proxy-captures-tinyproxy", "proxy-dead",
                     "proxy-blocks-local", "proxy-blocks-tinyproxy"), frozenset(NODE_CLIENTS)),
    "gateway-504": frozenset({"langchain-ollama"}),
    # On /v1 Ollama turns a mid-stream {"error"} into one empty chunk and ends the stream
    # without [DONE] (docs/ollama-wire.md §1.8): the OpenAI SDKs print the truncated answer
    # and exit 0; the error never reaches the client.
    "oom-mid-stream": frozenset({"openai-python", "openai-node"}),
}
# ollama-js prints neither the URL nor the address it called (``ResponseError: <body>``,
# ``TypeError: fetch failed`` with only the TLS cause) and reads no OLLAMA_HOST: where its
# host is set in code and the text shows no address, the user passes it to ``check``.
NO_ADDRESS_SHOWN: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("reverse-502", "host-403", "gateway-504", "https-plain"), ("ollama-js",))


def _host_args(s: Situation) -> dict[str, tuple[str, ...]]:
    return {c: ("--host", s.base_url(c)) for c in NO_ADDRESS_SHOWN.get(s.id, ())}


SITUATIONS = tuple(replace(s, names_cause=NAMES_CAUSE.get(s.id),
                           may_succeed=MAY_SUCCEED.get(s.id, frozenset()),
                           doctor_args_for=_host_args(s)) for s in SITUATIONS)
BY_ID = {s.id: s for s in SITUATIONS}
assert all(c in CLIENTS for s in SITUATIONS for c in s.expected_for)
