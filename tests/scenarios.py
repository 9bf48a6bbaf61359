"""The scenario matrix of failure-modes.md §4, reproducible on one machine.

Each scenario builds real components — the emulator, the loopback forward and reverse proxies,
fixture ``/proc`` and cgroup trees, subprocesses under low limits, network namespaces with their
own hosts files, addresses and firewall rules — then runs the real CLI (``check --json``) and
reads the top cause, its HTTP code and the rank of the expected cause. Most scenarios have a
healthy variant: the same setup without the fault, which must produce no error-level cause.

Used by ``tests/test_scenarios.py`` and ``benchmarks/accuracy.py``. Expected cause ids are those
at the end of failure-modes.md. All traffic stays on loopback or inside namespaces created here.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FS = REPO / "tests" / "data" / "fs"
ERROR_LEVELS = ("error", "critical")


@dataclass
class Run:
    """How to run the CLI for one scenario."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    netns: Any = None  # a tests.support.netns.Netns to run inside, or None
    timeout: float = 90.0


@dataclass
class Result:
    scenario: str
    variant: str  # "fault" or "healthy"
    expected: str | None
    top: str | None
    code: int | None
    rank: int | None  # rank of the expected cause, None when absent
    error_causes: list[str]
    seconds: float
    exit_code: int
    doc: dict[str, Any]


class Lab:
    """Owns everything a scenario starts; closing it stops all of it."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odt-scn-")))

    def closed_port(self) -> int:
        """A loopback port that refuses connections: bound, never listening, on 127.0.0.1 and
        ::1 (the doctor dials both after a refusal), held for the session
        (``conftest.closed_port``). (A port bound and released at once could be handed to the
        next server the scenario, or another xdist worker, starts: S03 once found its own
        candidate emulator on its "closed" target port.)"""
        from tests.conftest import closed_port

        return closed_port()

    def emulator(self, *, models: list[str] | None = None, **faults: str) -> Any:
        from ollama_doctor.emulator import Emulator, EmulatorConfig, ModelSpec

        config = EmulatorConfig(
            models=[ModelSpec.parse(m) for m in models] if models is not None
            else [ModelSpec.parse("llama3.2:latest;size=2019393189")],
            faults={k.replace("_", "-"): v for k, v in faults.items()})
        emu = Emulator(config)
        emu.start()
        self.stack.callback(emu.stop)
        return emu

    def emulator_process(self, *args: str, nofile: int | None = None) -> tuple[str, int]:
        """``ollama-doctor emulate`` in its own process (to be named with --server-pid)."""
        def lower() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
            preexec_fn=lower)
        self.stack.callback(_stop, proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), url
        return url, proc.pid

    def proxy(self, mode: str, **kwargs: Any) -> str:
        from tests.support.proxy import ForwardProxy

        proxy = ForwardProxy(mode, **kwargs)
        url = proxy.start()
        self.stack.callback(proxy.stop)
        return url

    def reverse(self, upstream: str, **kwargs: Any) -> str:
        from tests.support.reverse_proxy import ReverseProxy

        rp = ReverseProxy(upstream, **kwargs)
        url = rp.start()
        self.stack.callback(rp.stop)
        return url

    def netns(self, **kwargs: Any) -> Any:
        from tests.support.netns import Netns, require_netns

        require_netns()
        return self.stack.enter_context(Netns(**kwargs))

    def ns_emulator(self, ns: Any, *args: str) -> tuple[str, int]:
        server = ns.start_server([sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0",
                                  *args], cwd=REPO)
        return server.first_line.strip(), server.proc.pid

    def fake_ollama_cli(self, listing: str) -> dict[str, str]:
        bindir = self.tmp / "bin"
        bindir.mkdir(exist_ok=True)
        script = bindir / "ollama"
        body = "".join(f"printf '%s\\n' '{line}'\n" for line in listing.splitlines())
        script.write_text(f'#!/bin/sh\n[ "$1" = list ] || exit 2\n{body}')
        script.chmod(0o755)
        return {"PATH": f"{bindir}:/usr/bin:/bin"}

    def no_socksio(self) -> dict[str, str]:
        (self.tmp / "socksio.py").write_text(
            "raise ModuleNotFoundError(\"No module named 'socksio'\", name='socksio')\n")
        return {"PYTHONPATH": str(self.tmp)}


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


Setup = Callable[[Lab], Run]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    expected: str
    code: int | None
    fault: Setup
    healthy: Setup | None = None
    netns: bool = False
    model_load: bool = False  # waits for a model load: bounded by --load-timeout, not 2 × timeout


# ---------------------------------------------------------------------------------------------
# the setups

HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
MODEL = "llama3.2:latest"


def s01(lab: Lab) -> Run:
    return Run(["--host", f"127.0.0.1:{lab.closed_port()}"])


def healthy_emulator(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "-m", "llama3.2"])


def s02(lab: Lab, bind: str = "127.0.0.1") -> Run:
    ns = lab.netns(hosts=HOSTS)
    ns.add_address("10.77.0.2")
    url, pid = lab.ns_emulator(ns, "--bind", bind)
    port = url.rsplit(":", 1)[1]
    return Run(["--host", f"http://10.77.0.2:{port}", "--server-pid", str(pid)], netns=ns)


def s02n(lab: Lab, bind: str = "127.0.0.1") -> Run:
    """S02 without ``--server-pid``: the emulator is not named ``ollama``, so the sockets alone
    (the port held on loopback only, the machine's other address refused) must prove it."""
    run = s02(lab, bind)
    return Run(run.args[:2], netns=run.netns)


def s03(lab: Lab) -> Run:
    return Run(["--host", f"127.0.0.1:{lab.closed_port()}", "--fs-root", str(FS / "cgroup-v2"),
                "--discover", "--candidate", lab.emulator().url])


def s03_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "--fs-root", str(FS / "cgroup-v2")])


def s04(lab: Lab) -> Run:
    ns = lab.netns(hosts=HOSTS)
    return Run(["--host", "http://host.docker.internal:11434", "--timeout", "2"], netns=ns)


def s04_healthy(lab: Lab) -> Run:
    ns = lab.netns(hosts=HOSTS + "127.0.0.1 host.docker.internal\n")
    url, _ = lab.ns_emulator(ns)
    port = url.rsplit(":", 1)[1]
    return Run(["--host", f"http://host.docker.internal:{port}", "--timeout", "2"], netns=ns)


def s06(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url], {"HTTP_PROXY": lab.proxy("bad-gateway")})


def s06_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url], {"HTTP_PROXY": lab.proxy("bad-gateway"),
                                                 "NO_PROXY": "localhost,127.0.0.1,::1"})


def s07(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url], {"HTTP_PROXY": lab.proxy("deny")})


def s07_relay(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url], {"HTTP_PROXY": lab.proxy("relay")})


def s07_gateway(lab: Lab, mode: str = "deny", *args: str, **faults: str) -> Run:
    """The corporate gateway: the target's name resolves only on the proxy, so the client's
    every request goes through it. The server behind it listens on every interface (as one
    reached through a gateway does), so Ollama's Host check is off unless ``host_check="on"``
    (a loopback-bound server the proxy forwards the public Host to). ``args`` are more CLI
    options (``-m MODEL``…), ``faults`` the emulator's."""
    ns = lab.netns(hosts=HOSTS)
    faults = {"host_check": "off", **faults}
    code = ("import json,sys,threading;sys.path.insert(0,sys.argv[1]);"
            "from tests.support.proxy import ForwardProxy;"
            "from ollama_doctor.emulator import Emulator;"
            "e=Emulator(**json.loads(sys.argv[3]));e.start();"
            "p=ForwardProxy(sys.argv[2],resolve={'ollama.corp.example':('127.0.0.1',e.port)});"
            "print(p.start(),flush=True);threading.Event().wait()")
    emulator_faults = json.dumps({k.replace("_", "-"): v for k, v in faults.items()})
    proxy = ns.start_server([sys.executable, "-c", code, str(REPO), mode, emulator_faults],
                            cwd=REPO)
    return Run(["--host", "http://ollama.corp.example:11434", "--timeout", "2", *args],
               {"HTTP_PROXY": proxy.first_line.strip()}, netns=ns)


def s07_gateway_healthy(lab: Lab) -> Run:
    """Through a relaying gateway, with a model: models, auth and warm-up all run, via it."""
    return s07_gateway(lab, "relay", "-m", "llama3.2", "--timeout", "5")


def s07_gateway_missing_model(lab: Lab) -> Run:
    return s07_gateway(lab, "relay", "-m", "llama3.1")


def s07_gateway_cold_load(lab: Lab) -> Run:
    return s07_gateway(lab, "relay", "-m", "llama3.2", "--client-timeout", "1",
                       cold_load="2.4")


def s07_gateway_host_check(lab: Lab) -> Run:
    """A loopback-bound server (Host check on) behind a proxy that forwards the public Host."""
    return s07_gateway(lab, "relay", host_check="on")


def s08(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url], {"HTTP_PROXY": f"http://127.0.0.1:{lab.closed_port()}"})


def s09(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url],
               {"ALL_PROXY": f"socks5://127.0.0.1:{lab.closed_port()}", **lab.no_socksio()})


def s10(lab: Lab) -> Run:
    ns = lab.netns(hosts=HOSTS)
    return Run(["--host", "http://ollama.invalid:11434", "--timeout", "2"], netns=ns)


def s11(lab: Lab, bind: str = "127.0.0.1") -> Run:
    ns = lab.netns(hosts="::1 localhost\n127.0.0.1 localhost\n")
    url, _ = lab.ns_emulator(ns, "--bind", bind)
    port = url.rsplit(":", 1)[1]
    return Run(["--host", f"http://localhost:{port}"], netns=ns)


def s12(lab: Lab) -> Run:
    return Run(["--host", f"0.0.0.0:{lab.emulator().port}"])


def s13(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "-m", "llama3.1"])


def s14(lab: Lab) -> Run:
    empty, _ = lab.emulator(models=[]), lab.emulator()
    listing = ("NAME               ID              SIZE      MODIFIED\n"
               "llama3.2:latest    a80c4f17acd5    2.0 GB    2 days ago")
    return Run(["--host", empty.url, "-m", "llama3.2", "--server-pid", str(os.getpid())],
               lab.fake_ollama_cli(listing))


def s15(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url + "/api"])


def s15_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url + "/v1"])


def s16(lab: Lab) -> Run:
    emu = lab.emulator(cold_load="2.4")
    return Run(["--host", emu.url, "-m", "llama3.2", "--client-timeout", "1"])


def s16_healthy(lab: Lab) -> Run:
    emu = lab.emulator(cold_load="0.5")
    return Run(["--host", emu.url, "-m", "llama3.2", "--client-timeout", "10"])


def s17(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "--origin", "chrome-extension://abcdefgh"])


def s17_healthy(lab: Lab) -> Run:
    emu = lab.emulator(origins="chrome-extension://*")
    return Run(["--host", emu.url, "--origin", "chrome-extension://abcdefgh"])


def s18(lab: Lab) -> Run:
    return Run(["--host", lab.reverse(lab.emulator().url),
                "--header", "Host: ollama.example.com"])


def s18_healthy(lab: Lab) -> Run:
    emu = lab.emulator()
    return Run(["--host", lab.reverse(emu.url, host_header=f"localhost:{emu.port}"),
                "--header", "Host: ollama.example.com"])


def s19(lab: Lab) -> Run:
    emu = lab.emulator(cold_load="1.5", queue="1")
    return Run(["--host", emu.url, "-m", "llama3.2", "--load", "--load-call", "generate",
                "--load-max-rate", "40", "--load-max-requests", "120",
                "--load-max-seconds", "6"])


def s20(lab: Lab) -> Run:
    # Rates any busy 2-core machine reaches: the probe's own pacing check says when this machine
    # fell behind, and a 150/s gateway made the matrix fail on a loaded CI machine.
    emu = lab.emulator(rate_limit="20")
    return Run(["--host", emu.url, "--load", "--load-max-rate", "30",
                "--load-max-requests", "300", "--load-max-seconds", "8"])


def s20_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "--load", "--load-max-rate", "30",
                "--load-max-requests", "200", "--load-max-seconds", "5"])


def s21(lab: Lab) -> Run:
    return Run(["--host", lab.emulator(auth="s3cret-token").url])


def s21_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator(auth="s3cret-token").url],
               {"OLLAMA_API_KEY": "s3cret-token"})


def s22(lab: Lab) -> Run:
    emu = lab.emulator(slow_generate="3")
    return Run(["--host", lab.reverse(emu.url, read_timeout=1.0), "-m", "llama3.2"])


def s23(lab: Lab) -> Run:
    return Run(["--host", lab.emulator(runner_crash="new").url, "-m", "llama3.2"])


def s23_old(lab: Lab) -> Run:
    return Run(["--host", lab.emulator(runner_crash="old").url, "-m", "llama3.2"])


def s24(lab: Lab) -> Run:
    emu = lab.emulator(models=["llama3.2:latest;size=4.7G"], oom="killed")
    return Run(["--host", emu.url, "-m", "llama3.2", "--fs-root", str(FS / "cgroup-v2")])


def s24_oom_only(lab: Lab) -> Run:
    emu = lab.emulator(oom="new")
    return Run(["--host", emu.url, "-m", "llama3.2"])


def s25(lab: Lab, nofile: int | None = 1024) -> Run:
    url, pid = lab.emulator_process(nofile=nofile)
    return Run(["--host", url, "--server-pid", str(pid), "--concurrency", "1000"])


def s26(lab: Lab) -> Run:
    return Run(["--host", lab.emulator(offload="40").url, "-m", "llama3.2"])


def s29(lab: Lab) -> Run:
    emu = lab.emulator(models=["llama3.2:latest;caps=completion"])
    return Run(["--host", emu.url, "-m", "llama3.2", "--needs", "tools"])


def s29_healthy(lab: Lab) -> Run:
    return Run(["--host", lab.emulator().url, "-m", "llama3.2", "--needs", "tools"])


def s30(lab: Lab) -> Run:
    return Run(["--host", f"https://127.0.0.1:{lab.emulator().port}"])


def firewall(lab: Lab) -> Run:
    ns = lab.netns(hosts=HOSTS)
    ns.drop_tcp_port(11434)
    return Run(["--host", "127.0.0.1:11434", "--timeout", "1"], netns=ns)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("S01", "server not running", "server-not-running", None, s01, healthy_emulator),
    Scenario("S02", "bound to 127.0.0.1, client uses another address", "bound-to-loopback",
             None, s02, lambda lab: s02(lab, "0.0.0.0"), netns=True),
    Scenario("S02n", "S02 found from the sockets alone (no --server-pid)", "bound-to-loopback",
             None, s02n, lambda lab: s02n(lab, "0.0.0.0"), netns=True),
    Scenario("S03", "client in a container uses localhost", "container-localhost", None, s03,
             s03_healthy),
    Scenario("S04", "host.docker.internal does not resolve", "dns-failure", None, s04,
             s04_healthy, netns=True),
    Scenario("S06", "HTTP_PROXY captures loopback, proxy answers 502", "proxy-captures-local",
             502, s06, s06_healthy),
    Scenario("S07", "proxy answers its own 403 page", "proxy-captures-local", 403, s07,
             s07_relay),
    Scenario("S07g", "corporate gateway refuses the Ollama host", "proxy-blocks", 403,
             s07_gateway, s07_gateway_healthy, netns=True, model_load=True),
    Scenario("S07m", "model typo, server reachable only through the gateway",
             "model-not-found", 404, s07_gateway_missing_model, netns=True),
    Scenario("S07s", "cold load longer than the client timeout, through the gateway",
             "slow-model-load", 504, s07_gateway_cold_load, netns=True, model_load=True),
    Scenario("S07h", "gateway forwards the public Host to a loopback-bound server",
             "host-forbidden", 403, s07_gateway_host_check, netns=True),
    Scenario("S08", "proxy variable points at a dead proxy", "proxy-unreachable", None, s08),
    Scenario("S09", "SOCKS proxy without socksio", "proxy-unsupported", None, s09),
    Scenario("S10", "the name does not resolve (NXDOMAIN)", "dns-failure", None, s10,
             s04_healthy, netns=True),
    Scenario("S11", "localhost is ::1 first, server IPv4 only", "ipv6-localhost", None, s11,
             lambda lab: s11(lab, "::1"), netns=True),
    Scenario("S12", "client dials 0.0.0.0", "unspecified-address", None, s12),
    Scenario("S13", "model typo", "model-not-found", 404, s13, healthy_emulator),
    Scenario("S14", "another server instance answers", "wrong-instance", 404, s14),
    Scenario("S15", "base URL doubles /api", "wrong-base-path", 404, s15, s15_healthy),
    Scenario("S16", "cold load longer than the client timeout", "slow-model-load", 504, s16,
             s16_healthy, model_load=True),
    Scenario("S17", "browser extension Origin not allowed", "origin-forbidden", 403, s17,
             s17_healthy),
    Scenario("S18", "reverse proxy forwards a public Host", "host-forbidden", 403, s18,
             s18_healthy),
    Scenario("S19", "queue full while the model loads", "server-busy", 503, s19,
             model_load=True),
    Scenario("S20", "gateway rate limit", "rate-limited", 429, s20, s20_healthy),
    Scenario("S21", "auth proxy wants a bearer token", "auth-required", 401, s21, s21_healthy),
    Scenario("S22", "reverse proxy times out a long generation", "gateway-timeout", 504, s22,
             model_load=True),
    Scenario("S23", "runner crash (new wording)", "runner-crashed", 500, s23, healthy_emulator,
             model_load=True),
    Scenario("S23o", "runner crash (old wording)", "runner-crashed", 500, s23_old,
             model_load=True),
    Scenario("S24", "container memory limit below the model", "memory-limit", 500, s24,
             model_load=True),
    Scenario("S24o", "OOM message, no limit found", "out-of-memory", 500, s24_oom_only,
             model_load=True),
    Scenario("S25", "server open-file limit 1024 for 1000 calls", "fd-limit-low", None, s25,
             lambda lab: s25(lab, None)),
    Scenario("S26", "model partly on CPU", "gpu-offload", None, s26, model_load=True),
    Scenario("S29", "tools on a model without tools", "model-capability", 400, s29,
             s29_healthy),
    Scenario("S30", "https:// to the plain port", "wrong-port-scheme", None, s30),
    Scenario("FW", "firewall drops packets", "connect-timeout", None, firewall, netns=True),
)

BY_ID = {s.id: s for s in SCENARIOS}


@contextmanager
def lab() -> Iterator[Lab]:
    with ExitStack() as stack:
        yield Lab(stack)


def execute(run: Run, *, process: bool = False) -> tuple[int, dict[str, Any], float]:
    """``check --json`` for ``run``: inside its namespace when it has one (a subprocess there),
    else in this process (``tests.conftest.run_cli``), or in a subprocess with ``process``
    (the whole process's seconds, as the accuracy benchmark reports them)."""
    from tests.conftest import clean_environ, run_cli

    args = ["check", "--json", *run.args]
    started = time.perf_counter()
    if run.netns is not None:
        done = run.netns.run([sys.executable, "-m", "ollama_doctor", *args],
                             timeout=run.timeout, cwd=REPO, env=clean_environ(run.env))
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        ran = run_cli(*args, env=run.env, timeout=run.timeout, cwd=REPO, process=process)
        code, stdout, stderr = ran.code, ran.stdout, ran.stderr
    seconds = time.perf_counter() - started
    try:
        doc: dict[str, Any] = json.loads(stdout)
    except ValueError as exc:
        raise AssertionError(f"no JSON (exit {code}): {stderr[-2000:]}") from exc
    return code, doc, seconds


def run_scenario(scenario: Scenario, variant: str = "fault", *, process: bool = False) -> Result:
    setup = scenario.fault if variant == "fault" else scenario.healthy
    assert setup is not None
    with lab() as the_lab:
        code, doc, seconds = execute(setup(the_lab), process=process)
    diagnosis = doc["diagnosis"]
    ranked = [d for d in diagnosis if d["severity"] != "info"]
    top = ranked[0] if ranked else None
    rank = next((d["rank"] for d in diagnosis if d["cause"] == scenario.expected), None)
    return Result(
        scenario.id, variant, scenario.expected if variant == "fault" else None,
        top["cause"] if top else None, top["code"] if top else None, rank,
        [d["cause"] for d in diagnosis if d["severity"] in ERROR_LEVELS], seconds, code, doc)
