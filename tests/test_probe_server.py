"""The ``server`` probe: local Ollama processes, listeners, environment and log.

Servers come through the context: the tests start the emulator (``python -m ollama_doctor
emulate``) as a subprocess with a chosen environment and name it with ``--server-pid``; fixture
``/proc`` trees come in through ``--fs-root``. ``bound-to-loopback`` runs inside a network
namespace the test creates (root only; skipped with a reason elsewhere, required under CI)."""

from __future__ import annotations

import io
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from ollama_doctor import logread
from ollama_doctor.context import Context, Options
from ollama_doctor.local import (
    Launcher,
    Listener,
    ServerProcess,
    covers,
    launcher_from,
    launcher_of_pid,
    parse_environ,
)
from ollama_doctor.probes import reachability, server
from ollama_doctor.report import schema
from ollama_doctor.result import Finding, FixStep, ProbeResult, Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, clean_environ, closed_port, free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "logs"


# ---------------------------------------------------------------------------------------------
# helpers


class Emulators:
    """Emulator subprocesses, each with its own environment; all stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None,
              port: int = 0) -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "emulate", "--port", str(port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_environ(env),
            cwd=ROOT)
        self.procs.append(proc)
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(15), "the emulator printed no URL"
        url = proc.stdout.readline().decode().strip()
        assert url.startswith("http://"), url
        return proc.pid, url

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    group = Emulators()
    yield group
    group.stop()


def server_check(run: CliRun) -> dict[str, Any]:
    doc = run.json()
    [check] = [c for c in doc["checks"] if c["id"] == "server"]
    result: dict[str, Any] = check
    return result


def top(run: CliRun) -> dict[str, Any]:
    diagnosis: list[dict[str, Any]] = run.json()["diagnosis"]
    return diagnosis[0]


def serious(run: CliRun) -> list[str]:
    return [d["cause"] for d in run.json()["diagnosis"] if d["severity"] in ("error", "critical")]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def context(url: str, *, pids: Sequence[int], env: Mapping[str, str] | None = None,
            fs_root: Path = Path("/"), **options: Any) -> Context:
    """A context whose reachability facts come from the real probe against ``url``."""
    ctx = Context(target=parse_target(url), options=Options(server_pids=tuple(pids), **options),
                  env=dict(env or {}), fs_root=fs_root)
    outcome = reachability.run(ctx)
    ctx.results["reachability"] = ProbeResult("reachability", "Server reachable",
                                              outcome.status, outcome.summary,
                                              facts=outcome.facts, findings=outcome.findings)
    return ctx


def write_environ(root: Path, pid: int, env: Mapping[str, str]) -> None:
    proc = root / "proc" / str(pid)
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0"
                                            for k, v in env.items()))


# ---------------------------------------------------------------------------------------------
# pure pieces


@pytest.mark.parametrize(("cgroup", "parent", "unit_file", "platform", "kind", "unit"), [
    ("0::/system.slice/ollama.service\n", "systemd", False, "linux", "systemd",
     "ollama.service"),
    ("12:memory:/system.slice/my-llm.service\n0::/system.slice/my-llm.service\n", None, False,
     "linux", "systemd", "my-llm.service"),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n", "bash",
     False, "linux", "shell", None),
    ("0::/user.slice/user-1000.slice/session-3.scope\n", "systemd", True, "linux", "systemd",
     "ollama.service"),
    ("0::/system.slice/docker-0123abcd.scope\n", "containerd-shim", True, "linux", "docker",
     None),
    ("0::/kubepods/burstable/pod1/abc\n", None, False, "linux", "docker", None),
    (None, "systemd", False, "linux", "systemd", "ollama.service"),
    (None, "launchd", False, "darwin", "launchd", None),
    (None, "ollama app.exe", False, "win32", "windows", None),
    (None, "zsh", False, "linux", "shell", None),
    ("0::/\n", "python", False, "linux", "shell", None),
])
def test_launcher_from(cgroup: str | None, parent: str | None, unit_file: bool, platform: str,
                       kind: str, unit: str | None) -> None:
    got = launcher_from(cgroup, parent, unit_file, platform)
    assert (got.kind, got.unit) == (kind, unit)


def test_launcher_fix_says_where_to_set_it() -> None:
    fix = server.launcher_fix(Launcher("systemd", "x", "ollama.service"), "OLLAMA_HOST",
                              "0.0.0.0:11434", 11434)
    assert fix == [FixStep(
        "Ollama runs as the systemd service ollama: a variable exported in a shell never "
        "reaches it. Add it to the service (under [Service]) and restart it.",
        ('sudo systemctl edit ollama   # add: [Service]  Environment="OLLAMA_HOST=0.0.0.0:11434"',
         "sudo systemctl restart ollama", "systemctl show ollama --property=Environment"))]
    mac = server.launcher_fix(Launcher("launchd", "x"), "OLLAMA_HOST", "0.0.0.0:11434", 11434)
    assert mac[0].commands == ('launchctl setenv OLLAMA_HOST "0.0.0.0:11434"',
                               "osascript -e 'quit app \"Ollama\"' && open -a Ollama")
    win = server.launcher_fix(Launcher("windows", "x"), "OLLAMA_HOST", "0.0.0.0:11434", 11434)
    assert win[0].commands == ('setx OLLAMA_HOST "0.0.0.0:11434"',)
    assert "quit Ollama from the tray icon" in win[0].text
    docker = server.launcher_fix(Launcher("docker", "x"), "OLLAMA_HOST", "0.0.0.0:11434", 8080)
    assert docker[0].commands == (
        "docker run -d -p 8080:11434 -v ollama:/root/.ollama --name ollama ollama/ollama",)
    assert "already sets OLLAMA_HOST=0.0.0.0" in docker[0].text
    shell = server.launcher_fix(Launcher("shell", "x"), "OLLAMA_ORIGINS", "app://*", 11434)
    assert shell[0].commands == ("OLLAMA_ORIGINS='app://*' ollama serve",)
    secret = server.launcher_fix(Launcher("shell", "x"), "OLLAMA_SECRET_TOKEN", "s3cr3t", 1)
    assert secret[0].commands == ("OLLAMA_SECRET_TOKEN=YOUR_TOKEN ollama serve",)


@pytest.mark.parametrize(("name", "shell", "theirs", "same"), [
    ("OLLAMA_HOST", "0.0.0.0", "http://0.0.0.0:11434", True),
    ("OLLAMA_HOST", "0.0.0.0:11434", None, False),  # unset: the default 127.0.0.1:11434
    ("OLLAMA_HOST", "127.0.0.1:11434", None, True),
    ("OLLAMA_HOST", "localhost:11434", "http://127.0.0.1:11434", True),
    ("OLLAMA_HOST", "http://192.168.1.5:11434", "http://0.0.0.0:11434", True),  # bind covers
    ("OLLAMA_HOST", "0.0.0.0:11434", "http://127.0.0.1:11434", False),
    ("OLLAMA_HOST", "0.0.0.0:11435", "0.0.0.0:11434", False),
    ("OLLAMA_HOST", "http://0.0.0.0", "0.0.0.0:11434", False),  # http:// without port → :80
    ("OLLAMA_ORIGINS", "chrome-extension://*", ["http://localhost", "app://*"], False),
    ("OLLAMA_ORIGINS", "chrome-extension://*,app://*",
     ["chrome-extension://*", "app://*", "http://localhost"], True),
    ("OLLAMA_ORIGINS", "chrome-extension://*", "http://a.example", False),
    ("OLLAMA_ORIGINS", "chrome-extension://*", "chrome-extension://*", True),
    ("OLLAMA_KEEP_ALIVE", "300", "5m0s", True),
    ("OLLAMA_KEEP_ALIVE", "24h", "5m0s", False),
    ("OLLAMA_KEEP_ALIVE", "5m", None, True),
    ("OLLAMA_LOAD_TIMEOUT", "15m", "15m0s", True),
    ("OLLAMA_FLASH_ATTENTION", "1", "true", True),
    ("OLLAMA_FLASH_ATTENTION", "yes", "false", False),  # Ollama reads "yes" as true
    ("OLLAMA_DEBUG", "1", "DEBUG", True),
    ("OLLAMA_DEBUG", "2", "INFO", False),
    ("OLLAMA_NUM_PARALLEL", " '4' ", "4", True),  # Var() trims spaces and quotes
    ("OLLAMA_NUM_PARALLEL", "4", None, False),
    ("HTTPS_PROXY", "http://proxy:3128", "", False),
    ("NO_PROXY", "localhost", "localhost", True),
])
def test_same_setting(name: str, shell: str, theirs: Any, same: bool) -> None:
    assert server.same_setting(name, shell, theirs) is same


@pytest.mark.parametrize(("value", "expected"), [
    ("", ("127.0.0.1", 11434)), ("0.0.0.0", ("0.0.0.0", 11434)),
    (":8080", ("", 8080)), ("http://0.0.0.0", ("0.0.0.0", 80)),
    ("https://ollama.example", ("ollama.example", 443)), ("[::]:11434", ("::", 11434)),
    ("http://[::1]", ("::1", 80)), ("::1", ("::1", 11434)),
    ('"0.0.0.0:1234"', ("0.0.0.0", 1234)), ("host:99999", ("host", 11434)),
])
def test_split_ollama_host(value: str, expected: tuple[str, int]) -> None:
    assert server.split_ollama_host(value) == expected


@pytest.mark.parametrize(("value", "seconds"), [
    ("5m0s", 300.0), ("300", 300.0), ("1h30m", 5400.0), ("-1", -1.0), ("1.5s", 1.5),
    ("250ms", 0.25), ("", None), ("5 m", None), ("abc", None), ("300x", None),
])
def test_go_duration_seconds(value: str, seconds: float | None) -> None:
    assert server.go_duration_seconds(value) == seconds


def test_env_differences_complete_versus_log_map() -> None:
    shell = {"OLLAMA_HOST": "0.0.0.0:11434", "OLLAMA_API_KEY": "k", "ALL_PROXY": "socks5://p",
             "HTTPS_PROXY": "http://user:pw@proxy:3128", "PATH": "/bin", "OLLAMA_MODELS": ""}
    from_environ = server.env_differences(shell, {"PATH": "/usr/bin"}, complete=True)
    assert [d.to_dict() for d in from_environ] == [
        {"name": "ALL_PROXY", "shell": "socks5://p", "server": None},
        {"name": "HTTPS_PROXY", "shell": "http://user:***@proxy:3128", "server": None},
        {"name": "OLLAMA_HOST", "shell": "0.0.0.0:11434", "server": None},
    ]
    # the log's map does not print ALL_PROXY: what it does not print is unknown, not unset
    log_map: dict[str, str | list[str]] = {"OLLAMA_HOST": "http://127.0.0.1:11434",
                                           "HTTPS_PROXY": ""}
    from_log = server.env_differences(shell, log_map, complete=False)
    assert [d.name for d in from_log] == ["HTTPS_PROXY", "OLLAMA_HOST"]


def test_parse_environ_and_version_output_and_covers() -> None:
    assert parse_environ(b"A=1\0B=x=y\0junk\0=v\0C=\xff\0") == {"A": "1", "B": "x=y",
                                                                 "C": "\ufffd"}
    assert server.parse_version_output("ollama version is 0.33.0\n") == ("0.33.0", "0.33.0")
    assert server.parse_version_output(
        "ollama version is 0.33.0\nWarning: client version is 0.32.1\n") == ("0.32.1", "0.33.0")
    assert server.parse_version_output(
        "Warning: could not connect to a running Ollama instance\n"
        "Warning: client version is 0.30.1\n") == ("0.30.1", None)
    assert server.parse_version_output("garbage") == (None, None)
    assert covers("0.0.0.0", "10.0.0.2") and not covers("0.0.0.0", "::1")
    assert covers("::", "10.0.0.2") and covers("::", "::1")
    assert covers("::ffff:127.0.0.1", "127.0.0.1") and not covers("127.0.0.1", "10.0.0.2")


# ---------------------------------------------------------------------------------------------
# end to end through the CLI


def test_healthy_server_named_by_pid(cli: Callable[..., CliRun], emulators: Emulators,
                                     tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    pid, url = emulators.start("--log-file", str(log))
    port = int(url.rsplit(":", 1)[1])
    run = cli("probe", "server", "--host", url, "--server-pid", str(pid), "--log-file",
              str(log), "--json")
    assert run.code == 0, run.stderr
    check = server_check(run)
    assert check["status"] == "pass", check
    assert check["summary"] == f"Ollama server pid {pid}, user {psutil.Process(pid).username()} "\
                               f"listens on 127.0.0.1:{port}"
    facts = check["facts"]
    assert facts["processes"][0]["pid"] == pid
    assert facts["processes"][0]["listeners"] == [f"127.0.0.1:{port}"]
    assert facts["processes"][0]["launcher"]["kind"] == "shell"
    assert facts["listeners"] == [{"address": f"127.0.0.1:{port}", "pid": pid,
                                   "process": psutil.Process(pid).name()}]
    assert facts["target"] == {"addresses": ["127.0.0.1"], "this_machine": True,
                               "local_addresses": ["127.0.0.1"], "refused": []}
    assert facts["api_version"] == "0.33.0"
    assert facts["environment"]["source"] == f"/proc/{pid}/environ"
    assert facts["environment"]["differences"] == []
    assert facts["log"]["source"] == str(log) and facts["log"]["matches_server"] is True
    assert facts["log"]["listening"][-1]["address"] == f"127.0.0.1:{port}"
    assert check["findings"] == []
    assert serious(run) == []
    jsonschema.Draft202012Validator(schema()).validate(run.json())


def test_a_target_that_is_not_this_machine(emulator: Callable[..., Any]) -> None:
    emu = emulator()
    ctx = Context(target=parse_target("http://192.0.2.10:11434"),
                  options=Options(server_pids=(os.getpid(),)))
    ctx.results["reachability"] = ProbeResult(
        "reachability", "Server reachable", Status.FAIL, "refused",
        facts={"addresses": ["192.0.2.10"], "connects": [
            {"address": "192.0.2.10", "port": 11434, "ok": False, "error": "refused"}]})
    outcome = server.inspect(ctx)
    assert outcome.status == Status.PASS and outcome.findings == []
    assert outcome.summary == ("1 Ollama server runs here, but the target 192.0.2.10 is not "
                               "this machine: its server is not examined")
    assert outcome.facts["target"]["this_machine"] is False
    assert emu.port  # the local server (this process) was found


def test_shell_origins_not_in_the_server(cli: Callable[..., CliRun], emulators: Emulators) -> None:
    proxy = "http://bob:pw-planted-1234@proxy.invalid:3128"  # the same on both sides
    pid, url = emulators.start(env={"OLLAMA_ORIGINS": "http://a.example", "HTTPS_PROXY": proxy})
    env = {"OLLAMA_ORIGINS": "chrome-extension://*", "HTTPS_PROXY": proxy}
    run = cli("probe", "server", "--host", url, "--server-pid", str(pid), "--json", env=env)
    assert run.code == 0, run.stderr  # a warning: nothing shows it breaks a call
    assert "pw-planted-1234" not in run.stdout
    assert server_check(run)["facts"]["environment"]["server"] == {
        "HTTPS_PROXY": "http://bob:***@proxy.invalid:3128", "OLLAMA_ORIGINS": "http://a.example"}
    [finding] = server_check(run)["findings"]
    assert finding["cause"] == "setting-not-applied" and finding["severity"] == "warning"
    assert finding["evidence"] == {
        "variable": "OLLAMA_ORIGINS", "shell": "chrome-extension://*",
        "server": "http://a.example", "source": f"/proc/{pid}/environ", "pid": pid,
        "launcher": finding["evidence"]["launcher"]}
    assert finding["message"] == (
        f"OLLAMA_ORIGINS is 'chrome-extension://*' in this shell, but 'http://a.example' for "
        f"the server (pid {pid}, /proc/{pid}/environ): a shell's setting never reaches a server "
        "started elsewhere.")
    # the browser's Origin is refused (the auth probe's finding): now the difference explains
    # a failure
    ctx = context(url, pids=[pid], env=env)
    forbidden = Finding("origin-forbidden", Severity.ERROR, "403 for the Origin", code=403)
    ctx.results["auth"] = ProbeResult("auth", "Auth and access", Status.FAIL, "403",
                                      findings=[forbidden])
    [finding] = server.inspect(ctx).findings
    assert (finding.cause, finding.severity) == ("setting-not-applied", Severity.ERROR)
    assert finding.message.endswith("; the auth probe saw the server refuse the Origin (403).")


def test_shell_host_not_in_the_server(cli: Callable[..., CliRun], emulators: Emulators) -> None:
    port = free_port()
    pid, url = emulators.start(port=port, env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    run = cli("probe", "server", "--host", url, "--server-pid", str(pid), "--json",
              env={"OLLAMA_HOST": f"0.0.0.0:{port}"})
    assert run.code == 1, run.stderr
    diag = top(run)
    assert (diag["cause"], diag["severity"], diag["confidence"]) == (
        "setting-not-applied", "error", "high")
    assert diag["evidence"]["shell"] == f"0.0.0.0:{port}"
    assert diag["evidence"]["server"] == f"127.0.0.1:{port}"
    assert diag["explanation"].endswith(f"; the server listens on 127.0.0.1:{port} only.")
    assert diag["fix"][0]["commands"] == [f"OLLAMA_HOST=0.0.0.0:{port} ollama serve"]
    # healthy: the same value on both sides
    run = cli("probe", "server", "--host", url, "--server-pid", str(pid), "--json",
              env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert run.code == 0 and server_check(run)["findings"] == []


def test_no_server_is_a_skip_but_a_given_log_is_still_read(cli: Callable[..., CliRun]) -> None:
    pid = dead_pid()
    port = closed_port()
    run = cli("probe", "server", "--host", f"127.0.0.1:{port}", "--server-pid", str(pid),
              "--json")
    check = server_check(run)
    assert check["status"] == "skip"
    assert check["summary"] == f"skipped: no process with pid {pid} (--server-pid) runs"
    stdin = (DATA / "sig-oom.log").read_text()
    for log_args, kwargs in ((["--log-file", str(DATA / "sig-oom.log")], {}),
                             (["--log-file", "-"], {"stdin": stdin})):
        run = cli("probe", "server", "--host", f"127.0.0.1:{port}", "--server-pid", str(pid),
                  *log_args, "--json", **kwargs)
        check = server_check(run)
        assert check["status"] == "fail"
        assert check["facts"]["log"]["lines_read"] == 9
        assert [f["cause"] for f in check["findings"]] == ["out-of-memory"]
        oom = next(d for d in run.json()["diagnosis"] if d["cause"] == "out-of-memory")
        assert (oom["severity"], oom["code"]) == ("error", 500)


def test_server_on_another_port(cli: Callable[..., CliRun], emulators: Emulators) -> None:
    pid, url = emulators.start()
    port = int(url.rsplit(":", 1)[1])
    other = closed_port()
    run = cli("probe", "server", "--host", f"127.0.0.1:{other}", "--server-pid", str(pid),
              "--json")
    assert run.code == 1
    causes = [(d["cause"], d["severity"]) for d in run.json()["diagnosis"]]
    # probe server: its own answer first, then the prerequisite's error that it explains
    assert causes == [("wrong-port-scheme", "warning"), ("server-not-running", "critical")]
    diag = run.json()["diagnosis"][0]
    assert diag["explanation"] == (f"The Ollama server (pid {pid}) listens on 127.0.0.1:{port}, "
                                   f"not on port {other} that the client dials: connections "
                                   "there are refused.")
    assert diag["fix"][0]["commands"] == [f"export OLLAMA_HOST=http://127.0.0.1:{port}",
                                          f"curl http://127.0.0.1:{port}/"]
    # --fs-root: a /proc without this process is no crash, only an unknown environment
    run = cli("probe", "server", "--host", url, "--server-pid", str(pid), "--fs-root",
              str(ROOT / "tests" / "data" / "logs"), "--json")
    check = server_check(run)
    assert (run.code, check["status"], check["findings"]) == (0, "warn", [])
    assert check["facts"]["environment"] == {"pid": pid, "source": None,
                                             "error": f"/proc/{pid}/environ: missing"}


# ---------------------------------------------------------------------------------------------
# in-process: fixture /proc trees, other processes, injected runner, psutil failures


@pytest.fixture
def listener() -> Iterator[Callable[[], tuple[int, int]]]:
    """``listener()`` → (pid, port) of a bare TCP listener in its own process."""
    procs: list[subprocess.Popen[str]] = []
    code = ("import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\n"
            "print(s.getsockname()[1],flush=True)\nsys.stdin.read()\n")

    def start() -> tuple[int, int]:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        return proc.pid, int(proc.stdout.readline())

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_environment_from_the_log_when_proc_is_unreadable(emulator: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    emu = emulator()
    pid = os.getpid()
    root = tmp_path / "root"
    (root / "proc" / str(pid) / "environ").mkdir(parents=True)  # unreadable as a file
    log = tmp_path / "server.log"
    log.write_text(
        'time=2026-11-25T10:00:00.101Z level=INFO source=routes.go:1951 msg="server config" '
        'env="map[HTTPS_PROXY: OLLAMA_HOST:http://127.0.0.1:11434 OLLAMA_ORIGINS:[http://a.'
        'example http://localhost] http_proxy:]"\n'
        'time=2026-11-25T10:00:00.103Z level=INFO source=routes.go:2008 msg="Listening on '
        f'127.0.0.1:{emu.port} (version 0.33.0)"\n')
    env = {"OLLAMA_ORIGINS": "chrome-extension://*"}
    outcome = server.inspect(context(emu.url, pids=[pid], env=env, fs_root=root,
                                     log_file=str(log)))
    facts = outcome.facts["environment"]
    assert facts["source"] == f"server config line 1 of {log}"
    assert facts["error"] == f"/proc/{pid}/environ: not a regular file"
    assert facts["differences"] == [{"name": "OLLAMA_ORIGINS", "shell": "chrome-extension://*",
                                     "server": ["http://a.example", "http://localhost"]}]
    [finding] = outcome.findings
    assert finding.confidence.value == "medium"  # from a log line, not the process itself
    assert "[http://a.example http://localhost] for the server" in finding.message
    # the log of another server (another port) is not taken as this server's environment
    other = tmp_path / "other.log"
    other.write_text(log.read_text().replace(f":{emu.port} (", ":1 ("))
    outcome = server.inspect(context(emu.url, pids=[pid], env=env, fs_root=root,
                                     log_file=str(other)))
    assert outcome.facts["log"]["matches_server"] is False
    assert outcome.facts["environment"]["source"] is None
    # neither /proc nor a log: a clear warn, never a crash
    outcome = server.inspect(context(emu.url, pids=[pid], env=env, fs_root=root))
    assert outcome.status == Status.WARN and outcome.findings == []
    assert outcome.summary.endswith(f"; the server's environment is unknown: /proc/{pid}/"
                                    "environ: not a regular file")


def test_systemd_server_gets_a_systemd_fix(emulator: Callable[..., Any],
                                           tmp_path: Path) -> None:
    emu = emulator()
    pid = os.getpid()
    root = tmp_path / "root"
    write_environ(root, pid, {"LANG": "C.UTF-8", "OLLAMA_KEEP_ALIVE": "5m"})
    (root / "proc" / str(pid) / "cgroup").write_text("0::/system.slice/ollama.service\n")
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "systemd" / "system" / "ollama.service").write_text("[Service]\n")
    outcome = server.inspect(context(emu.url, pids=[pid], fs_root=root,
                                     env={"OLLAMA_KEEP_ALIVE": "24h"}))
    assert outcome.facts["processes"][0]["launcher"] == {
        "kind": "systemd", "evidence": "cgroup /system.slice/ollama.service",
        "unit": "ollama.service"}
    [finding] = outcome.findings
    assert (finding.cause, finding.severity) == ("setting-not-applied", Severity.WARNING)
    assert finding.fix[0].commands == (
        'sudo systemctl edit ollama   # add: [Service]  Environment="OLLAMA_KEEP_ALIVE=24h"',
        "sudo systemctl restart ollama", "systemctl show ollama --property=Environment")


def test_two_servers_are_a_wrong_instance_warning(emulator: Callable[..., Any],
                                                  listener: Callable[[], tuple[int, int]],
                                                  tmp_path: Path) -> None:
    emu = emulator()
    other_pid, other_port = listener()
    outcome = server.inspect(context(emu.url, pids=[os.getpid(), other_pid], fs_root=tmp_path))
    [finding] = outcome.findings
    assert (finding.cause, finding.severity) == ("wrong-instance", Severity.WARNING)
    assert sorted(s["pid"] for s in finding.evidence["servers"]) == sorted(
        [os.getpid(), other_pid])
    assert finding.message.startswith("2 Ollama servers run on this machine (")
    assert f"pid {other_pid} on 127.0.0.1:{other_port}" in finding.message


def test_target_port_held_by_another_process(emulator: Callable[..., Any],
                                             listener: Callable[[], tuple[int, int]],
                                             tmp_path: Path) -> None:
    pid, port = listener()
    other = emulator()  # in this test process: its port is held by pytest, not by pid
    outcome = server.inspect(context(other.url, pids=[pid], fs_root=tmp_path))
    [finding] = outcome.findings
    assert (finding.cause, finding.severity) == ("wrong-instance", Severity.WARNING)
    assert finding.message == (
        f"Port {other.port} at 127.0.0.1 is held by {psutil.Process().name()} "
        f"(pid {os.getpid()}), not by the Ollama server found (pid {pid}, on "
        f"127.0.0.1:{port}): calls reach another program or another Ollama.")


def fake_ollama(tmp_path: Path, script: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ollama"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return {"PATH": str(bin_dir)}


def test_version_of_the_binary_on_path(emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = emulator()
    env = fake_ollama(tmp_path, "echo 'Warning: could not connect to a running Ollama "
                                "instance'\necho 'Warning: client version is 0.30.1'\n")
    outcome = server.inspect(context(emu.url, pids=[os.getpid()], env=env, fs_root=tmp_path))
    assert outcome.facts["binary"]["version"] == "0.30.1"
    [finding] = outcome.findings
    assert (finding.cause, finding.severity.value) == ("wrong-instance", "info")
    assert finding.evidence == {"binary": str(tmp_path / "bin" / "ollama"),
                                "binary_version": "0.30.1", "api_version": "0.33.0"}
    # an injected runner sees the argv; the same version is no finding
    calls: list[list[str]] = []

    def runner(argv: Sequence[str], timeout: float,
               env: Mapping[str, str]) -> logread.CommandResult:
        calls.append(list(argv))
        return logread.CommandResult(0, b"ollama version is 0.33.0\n")

    outcome = server.inspect(context(emu.url, pids=[os.getpid()], env=env, fs_root=tmp_path),
                             runner=runner)
    assert calls == [[str(tmp_path / "bin" / "ollama"), "-v"]]
    assert outcome.findings == [] and outcome.facts["binary"]["version"] == "0.33.0"


def test_prepared_early_or_looked_up_on_its_own_the_same_outcome(
        emulator: Callable[..., Any], tmp_path: Path) -> None:
    """The runner's prepare step (process scan, sockets, ``ollama -v``, the log) runs before
    reachability has answered; the judgement made from it is the one the probe makes alone."""
    from ollama_doctor.runner import prepare_key

    emu = emulator()
    env = fake_ollama(tmp_path, "echo 'Warning: client version is 0.30.1'\n")
    log = tmp_path / "server.log"
    log.write_text((DATA / "sig-too-many-open-files.log").read_text())
    alone = server.inspect(context(emu.url, pids=[os.getpid()], env=env, fs_root=tmp_path,
                                   log_file=str(log)))
    early = Context(target=parse_target(emu.url),
                    options=Options(server_pids=(os.getpid(),), log_file=str(log)),
                    env=env, fs_root=tmp_path)
    gathered = early.once(prepare_key("server"), lambda: server.prepare(early))
    assert "reachability" not in early.results  # prepared before any network fact
    assert gathered.listeners is not None and gathered.log is not None
    assert gathered.version_run is not None and gathered.version_run[0] == env["PATH"] + "/ollama"
    outcome = reachability.run(early)
    early.results["reachability"] = ProbeResult("reachability", "Server reachable",
                                                outcome.status, outcome.summary,
                                                facts=outcome.facts, findings=outcome.findings)
    judged = server.inspect(early)
    assert (judged.status, judged.summary) == (alone.status, alone.summary)
    assert judged.facts == alone.facts
    assert [f.to_dict() for f in judged.findings] == [f.to_dict() for f in alone.findings]
    assert sorted(f.cause for f in judged.findings) == ["fd-limit-low", "wrong-instance"]


def test_nothing_is_prepared_for_a_target_elsewhere(tmp_path: Path) -> None:
    """A target that is not this machine gets no socket table, ``ollama -v`` or log read."""
    ctx = Context(target=parse_target("http://192.0.2.7:11434"),
                  options=Options(server_pids=(os.getpid(),)),
                  env=fake_ollama(tmp_path, "exit 3\n"), fs_root=tmp_path)
    gathered = server.prepare(ctx)
    assert [s.pid for s in gathered.servers] == [os.getpid()]
    assert (gathered.listeners, gathered.version_run, gathered.log) == (None, None, None)


def test_a_hanging_binary_costs_one_timeout(emulator: Callable[..., Any],
                                            tmp_path: Path) -> None:
    emu = emulator()
    ctx = context(emu.url, pids=[os.getpid()], env=fake_ollama(tmp_path, "/bin/sleep 30\n"),
                  fs_root=tmp_path)
    ctx.deadline = ctx.clock() + 0.5
    started = time.monotonic()
    outcome = server.inspect(ctx)
    assert time.monotonic() - started < 3
    assert "did not finish within " in outcome.facts["binary"]["error"]


def test_psutil_access_denied_is_a_warn(emulator: Callable[..., Any], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator()

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise psutil.AccessDenied(pid=1)

    monkeypatch.setattr(psutil.Process, "net_connections", denied)
    monkeypatch.setattr(psutil, "net_connections", denied)
    outcome = server.inspect(context(emu.url, pids=[os.getpid()], fs_root=tmp_path))
    assert outcome.status == Status.WARN and outcome.findings == []
    assert outcome.facts["processes"][0]["access_error"] == "AccessDenied: cannot read sockets"
    assert outcome.facts["listeners_error"] == "AccessDenied: cannot list this machine's sockets"
    assert outcome.summary == (f"Ollama server pid {os.getpid()}, user "
                               f"{psutil.Process().username()} listens on no visible socket; "
                               f"pid {os.getpid()}: AccessDenied: cannot read sockets")
    monkeypatch.setattr(psutil, "process_iter", denied)
    outcome = server.inspect(context(emu.url, pids=[os.getpid()], fs_root=tmp_path))
    assert outcome.status == Status.WARN
    assert outcome.summary.startswith("cannot list processes (AccessDenied")


def test_log_from_stdin_in_process(emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = emulator()
    ctx = context(emu.url, pids=[os.getpid()], fs_root=tmp_path, log_file="-")
    stdin = io.StringIO((DATA / "sig-too-many-open-files.log").read_text())
    outcome = server.inspect(ctx, stdin=stdin)
    assert outcome.facts["log"]["source"] == "stdin"
    assert [(f.cause, f.severity.value) for f in outcome.findings] == [("fd-limit-low", "error")]
    assert outcome.status == Status.FAIL


# ---------------------------------------------------------------------------------------------
# bound-to-loopback (S02, S05): a namespace with a non-loopback address of its own


# --timeout bounds the whole run (1.3 x timeout): generous, so that a loaded machine does not cut
# a probe; refused connects and loopback answers take milliseconds whatever it is.
NETNS_TIMEOUT = "5"


def netns_check(ns: Any, target: str, pid: int) -> CliRun:
    env = clean_environ()
    result = ns.run([sys.executable, "-m", "ollama_doctor", "check", "--host", target,
                     "--server-pid", str(pid), "--timeout", NETNS_TIMEOUT, "--json"], timeout=60,
                    cwd=ROOT, env=env)
    return CliRun(result.returncode, result.stdout, result.stderr)


@pytest.mark.netns
@pytest.mark.parametrize("scenario", ["S02", "S05"])
def test_bound_to_loopback_in_a_namespace(scenario: str) -> None:
    from tests.support.netns import Netns, require_netns

    require_netns()
    hosts = "127.0.0.1 localhost\n10.77.1.1 host.docker.internal\n"
    with Netns(hosts=hosts) as ns:
        if scenario == "S02":  # the machine's LAN address
            ns.add_address("10.77.0.2")
            address, name = "10.77.0.2", "10.77.0.2"
        else:  # host.docker.internal → the bridge address of this machine
            ns.add_veth("10.77.1.1/24", "10.77.1.2/24")
            address, name = "10.77.1.1", "host.docker.internal"
        emu = ns.start_server([sys.executable, "-m", "ollama_doctor", "emulate", "--bind",
                               "127.0.0.1", "--port", "0"], cwd=ROOT, env=clean_environ())
        port = int(emu.first_line.rsplit(":", 1)[1])
        run = netns_check(ns, f"http://{name}:{port}", emu.pid)
        assert run.code == 1, run.stderr
        diag = top(run)
        assert (diag["cause"], diag["severity"], diag["confidence"], diag["code"]) == (
            "bound-to-loopback", "critical", "high", None)
        assert diag["explanation"] == (
            f"The Ollama server (pid {emu.pid}) listens on 127.0.0.1:{port} only, so "
            f"{address}:{port}, an address of this machine, refuses connections: set "
            f"OLLAMA_HOST=0.0.0.0:{port} in the command that starts the server, then restart "
            "it.")
        assert diag["fix"][0]["commands"] == [f"OLLAMA_HOST=0.0.0.0:{port} ollama serve"]
        assert diag["fix"][1]["commands"] == [f"curl http://{address}:{port}/"]
        assert [e["cause"] for e in diag["evidence"]["explains"]] == ["server-not-running"]
        assert diag["evidence"]["refused"] == [f"{address}:{port}"]

        # healthy: the same server on every interface answers at that address
        emu = ns.start_server([sys.executable, "-m", "ollama_doctor", "emulate", "--bind",
                               "0.0.0.0", "--port", "0"], cwd=ROOT, env=clean_environ())
        port = int(emu.first_line.rsplit(":", 1)[1])
        run = netns_check(ns, f"http://{name}:{port}", emu.pid)
        assert run.code == 0, run.stdout
        assert serious(run) == []
        check = server_check(run)
        assert check["status"] == "pass" and check["findings"] == []
        assert check["facts"]["target"]["local_addresses"] == [address]


# ---------------------------------------------------------------------------------------------
# bound-to-loopback from the sockets alone, whatever holds the port; the network namespace


@pytest.mark.parametrize(("servers", "listeners", "expected"), [
    ([], [("127.0.0.1", 5, "python3")], (["127.0.0.1"], (5, "python3", False))),
    ([], [("::1", 5, "socat"), ("127.0.0.1", 5, "socat")],
     (["127.0.0.1", "::1"], (5, "socat", False))),
    ([], [("127.0.0.1", None, None)], (["127.0.0.1"], (None, None, False))),
    ([], [("127.0.0.1", 5, "python3"), ("0.0.0.0", 6, "ollama")], None),
    ([], [("10.0.0.2", 5, "python3")], None),
    ([], [], None),
    ([(7, [("127.0.0.1", 1)])], [("127.0.0.1", 7, "ollama")], (["127.0.0.1"], (7, "ollama", True))),
    ([(7, [("127.0.0.1", 2)])], [("127.0.0.1", None, None)], (["127.0.0.1"], (None, None, False))),
])
def test_loopback_bound_reads_the_sockets(servers: list[tuple[int, list[tuple[str, int]]]],
                                          listeners: list[tuple[str, int | None, str | None]],
                                          expected: Any) -> None:
    """Port 1: every socket on it (a server's or any process's) decides, not the name."""
    procs = [ServerProcess(pid, "ollama", None, ["ollama", "serve"], socks)
             for pid, socks in servers]
    port_listeners = [Listener(a, 1, pid, name) for a, pid, name in listeners]
    got = server._loopback_bound(procs, port_listeners, 1)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got[0], (got[1].pid, got[1].name, got[1].server)) == expected


def test_bound_to_loopback_wording_for_each_holder() -> None:
    ctx = Context(target=parse_target("http://10.0.0.5:8080"))
    cases = [
        (server.Holder(7, "ollama", True), Launcher("shell", "x"),
         "The Ollama server (pid 7) listens on 127.0.0.1:8080 only, so 10.0.0.5:8080, an address "
         "of this machine, refuses connections: set OLLAMA_HOST=0.0.0.0:8080 in the command that "
         "starts the server, then restart it."),
        (server.Holder(9, "docker-proxy", False), launcher_from(None, "dockerd", False,
                                                                 name="docker-proxy"),
         "The process docker-proxy (pid 9) listens on 127.0.0.1:8080 only, so 10.0.0.5:8080, an "
         "address of this machine, refuses connections: the container's port is published on "
         "loopback only; publish it on every interface (-p 8080:11434, not -p "
         "127.0.0.1:8080:11434)."),
        (server.Holder(None, None, False), launcher_of_pid(ctx, None, None),
         "A process we cannot inspect listens on 127.0.0.1:8080 only, so 10.0.0.5:8080, an "
         "address of this machine, refuses connections: if it is Ollama, set "
         "OLLAMA_HOST=0.0.0.0:8080 where the server starts (its service, app or command), then "
         "restart it; if it is a proxy or wrapper in front of Ollama, make it listen on "
         "0.0.0.0:8080."),
    ]
    for holder, launcher, message in cases:
        finding = server._bound_to_loopback(ctx, holder, ["127.0.0.1"], ["10.0.0.5"], launcher)
        assert (finding.cause, finding.severity, finding.confidence.value) == (
            "bound-to-loopback", Severity.CRITICAL, "high")
        assert finding.message == message
        assert finding.evidence["holder"] == {"pid": holder.pid, "name": holder.name,
                                              "ollama_server": holder.server}
        assert finding.fix[-1].commands == ("curl http://10.0.0.5:8080/",)
    docker = server._bound_to_loopback(ctx, cases[1][0], ["127.0.0.1"], ["10.0.0.5"],
                                       cases[1][1])
    assert docker.fix[0].commands == (
        "docker run -d -p 8080:11434 -v ollama:/root/.ollama --name ollama ollama/ollama",)
    unknown = server._bound_to_loopback(ctx, cases[2][0], ["127.0.0.1"], ["10.0.0.5"],
                                        cases[2][1])
    assert unknown.fix[0].commands == (
        'sudo systemctl edit ollama   # add: [Service]  Environment="OLLAMA_HOST=0.0.0.0:8080"',
        "OLLAMA_HOST=0.0.0.0:8080 ollama serve")


def test_netns_links_decide_which_server_is_this_machines(emulator: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    """``/proc/<pid>/ns/net`` against ``/proc/self/ns/net``, read through the context's root: a
    pid named with --server-pid in another namespace is kept (the user named it) with a note;
    an unreadable link counts the process (nothing says it is elsewhere)."""
    emu = emulator()
    pid = os.getpid()
    root = tmp_path / "root"
    (root / "proc" / "self" / "ns").mkdir(parents=True)
    (root / "proc" / str(pid) / "ns").mkdir(parents=True)
    os.symlink("net:[4026531840]", root / "proc" / "self" / "ns" / "net")
    os.symlink("net:[4026532999]", root / "proc" / str(pid) / "ns" / "net")
    outcome = server.inspect(context(emu.url, pids=[pid], fs_root=root))
    proc = outcome.facts["processes"][0]
    assert (proc["pid"], proc["netns"], proc["same_netns"]) == (pid, "net:[4026532999]", False)
    assert (f"pid {pid} (--server-pid) runs in another network namespace (net:[4026532999]): "
            "its sockets and its loopback are not this machine's") in outcome.facts["notes"]
    assert outcome.status == Status.WARN
    # the same namespace: no note
    os.unlink(root / "proc" / str(pid) / "ns" / "net")
    os.symlink("net:[4026531840]", root / "proc" / str(pid) / "ns" / "net")
    outcome = server.inspect(context(emu.url, pids=[pid], fs_root=root))
    assert outcome.facts["processes"][0]["same_netns"] is True
    assert not any("network namespace" in n for n in outcome.facts.get("notes", []))
    # unreadable: counted, undecided
    outcome = server.inspect(context(emu.url, pids=[pid], fs_root=tmp_path))
    assert (outcome.facts["processes"][0]["netns"],
            outcome.facts["processes"][0]["same_netns"]) == (None, None)


LISTEN = """
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind((sys.argv[1], 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    s.accept()[0].close()
"""


def named_program(tmp_path: Path, name: str) -> Path:
    """A link called ``name`` to this Python: the process it starts is called ``name`` (the
    kernel names a process after the file it executes), as a renamed binary or a port
    forwarder is."""
    bin_dir = tmp_path / "named"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / name
    link.symlink_to(sys.executable)
    return link


def ollama_serve(tmp_path: Path) -> tuple[list[str], Path, dict[str, str]]:
    """argv, cwd and environment of an emulator that the process table shows as ``ollama
    serve``, so it is found by name, as a real server is: ``ollama`` is a link to Python and
    ``serve`` the script it runs from the working directory."""
    import sysconfig

    work = tmp_path / "serve-cwd"
    work.mkdir()
    (work / "serve").write_text(
        "import runpy, sys\n"
        "sys.argv = ['ollama', 'emulate', '--port', '0', '--bind', '127.0.0.1']\n"
        "runpy.run_module('ollama_doctor', run_name='__main__', alter_sys=True)\n")
    path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]])
    return ([str(named_program(tmp_path, "ollama")), "serve"], work,
            clean_environ({"PYTHONPATH": path}))


def netns_cli(ns: Any, *args: str, user: int | None = None) -> CliRun:
    """The CLI inside ``ns``; ``user``: as that uid (an unprivileged user sees other users'
    sockets without their pid)."""
    argv = [sys.executable, "-m", "ollama_doctor", *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    result = ns.run(argv, timeout=60, cwd=ROOT, env=clean_environ())
    return CliRun(result.returncode, result.stdout, result.stderr)


@pytest.mark.netns
@pytest.mark.parametrize("holder", ["renamed", "wrapper", "ipv6", "docker-proxy", "uninspectable"])
def test_bound_to_loopback_without_server_pid(holder: str, tmp_path: Path) -> None:
    """No process named ``ollama serve`` and no --server-pid: the port held on loopback only,
    and the machine's other address refused, prove it whatever holds the socket."""
    import shutil

    from tests.support.netns import Netns, require_netns

    require_netns()
    user = None
    if holder == "uninspectable":
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to run the doctor as another user")
        probe_run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                    "--clear-groups", sys.executable, "-c", "import psutil"],
                                   capture_output=True, timeout=30, cwd=ROOT)
        if probe_run.returncode != 0:
            pytest.skip("user nobody cannot run this Python (it lives in a private folder)")
        user = 65534
    with Netns(hosts="127.0.0.1 localhost\n") as ns:
        ns.add_address("10.77.0.2")
        if holder == "renamed":  # the emulator as plain Python: not named ollama
            emu = ns.start_server([sys.executable, "-m", "ollama_doctor", "emulate", "--bind",
                                   "127.0.0.1", "--port", "0"], cwd=ROOT, env=clean_environ())
            pid, port = emu.pid, int(emu.first_line.rsplit(":", 1)[1])
            where = f"127.0.0.1:{port}"
        else:  # a TCP wrapper or forwarder in front of nothing
            program = (str(named_program(tmp_path, "docker-proxy"))
                       if holder == "docker-proxy" else sys.executable)
            bind = "::1" if holder == "ipv6" else "127.0.0.1"
            listener = ns.start_server([program, "-c", LISTEN, bind])
            pid, port = listener.pid, int(listener.first_line)
            where = f"[::1]:{port}" if holder == "ipv6" else f"127.0.0.1:{port}"
        name = psutil.Process(pid).name()
        run = netns_cli(ns, "check", "--host", f"http://10.77.0.2:{port}", "--timeout",
                        NETNS_TIMEOUT, "--json", user=user)
        assert run.code == 1, run.stderr
        diag = top(run)
        assert (diag["cause"], diag["severity"], diag["confidence"], diag["code"]) == (
            "bound-to-loopback", "critical", "high", None), run.json()["diagnosis"]
        assert [e["cause"] for e in diag["evidence"]["explains"]] == ["server-not-running"]
        assert diag["evidence"]["listens"] == [where]
        assert diag["evidence"]["refused"] == [f"10.77.0.2:{port}"]
        head = (f"listens on {where} only, so 10.77.0.2:{port}, an address of this machine, "
                "refuses connections: ")
        launcher = diag["evidence"]["launcher"]
        if holder == "uninspectable":
            assert diag["evidence"]["holder"] == {"pid": None, "name": None,
                                                  "ollama_server": False}
            assert launcher["kind"] == "unknown"
            assert diag["explanation"] == (
                f"A process we cannot inspect {head}if it is Ollama, set "
                f"OLLAMA_HOST=0.0.0.0:{port} where the server starts (its service, app or "
                f"command), then restart it; if it is a proxy or wrapper in front of Ollama, "
                f"make it listen on 0.0.0.0:{port}.")
        elif holder == "docker-proxy":
            assert name == "docker-proxy"
            assert launcher["kind"] == "docker"
            assert diag["explanation"] == (
                f"The process docker-proxy (pid {pid}) {head}the container's port is published "
                f"on loopback only; publish it on every interface (-p {port}:11434, not -p "
                f"127.0.0.1:{port}:11434).")
        else:
            assert diag["evidence"]["holder"] == {"pid": pid, "name": name,
                                                  "ollama_server": False}
            where_phrase = server._where_phrase(Launcher(launcher["kind"], "",
                                                         launcher["unit"]))
            assert diag["explanation"] == (
                f"The process {name} (pid {pid}) {head}if it is Ollama, set "
                f"OLLAMA_HOST=0.0.0.0:{port} {where_phrase}; if it is a proxy or wrapper in "
                f"front of Ollama, make it listen on 0.0.0.0:{port}.")
        check = server_check(run)
        assert check["status"] == "fail"
        assert check["summary"].endswith(f" {where} only; found bound-to-loopback")


# It starts two processes named ``ollama serve``. A doctor that cannot read their network
# namespace (one run as another user, or on a fixture tree: --fs-root) rightly counts them as
# servers here, so other tests' doctors must not run beside it: it runs alone, in its own
# step of .ci/run (pytest -m alone -n 0), not among the default selection's workers.
@pytest.mark.alone
@pytest.mark.netns
def test_only_servers_in_this_network_namespace_count(tmp_path: Path) -> None:
    """Two ``ollama serve`` processes share the PID namespace, each in its own network
    namespace (two containers): each is the other's neighbour, not a second server here."""
    from tests.support.netns import Netns, require_netns

    require_netns()
    argv, cwd, env = ollama_serve(tmp_path)
    with Netns(hosts="127.0.0.1 localhost\n") as here, Netns() as there:
        mine = here.start_server(argv, cwd=cwd, env=env)
        theirs = there.start_server(argv, cwd=cwd, env=env)
        assert psutil.Process(theirs.pid).name() == "ollama"
        assert psutil.Process(theirs.pid).cmdline()[1:] == ["serve"]
        theirs_netns = os.readlink(f"/proc/{theirs.pid}/ns/net")
        assert theirs_netns != os.readlink(f"/proc/{mine.pid}/ns/net")
        run = netns_cli(here, "check", "--host", mine.first_line, "--timeout", NETNS_TIMEOUT,
                        "--json")
        assert run.code == 0, run.stdout
        check = server_check(run)
        facts = check["facts"]
        assert [(p["pid"], p["same_netns"]) for p in facts["processes"]] == [(mine.pid, True)]
        assert {"pid": theirs.pid, "name": "ollama", "netns": theirs_netns} in \
            facts["other_namespaces"]
        assert check["status"] == "pass" and check["findings"] == []
        assert all(d["cause"] != "wrong-instance" for d in run.json()["diagnosis"])
        assert serious(run) == []
        # named with --server-pid it is examined (the user said so), with a note saying where
        run = netns_cli(here, "probe", "server", "--host", mine.first_line, "--server-pid",
                        str(theirs.pid), "--timeout", NETNS_TIMEOUT, "--json")
        check = server_check(run)
        assert [(p["pid"], p["same_netns"]) for p in check["facts"]["processes"]] == [
            (theirs.pid, False)]
        assert (f"pid {theirs.pid} (--server-pid) runs in another network namespace "
                f"({theirs_netns}): its sockets and its loopback are not this machine's") in \
            check["facts"]["notes"]
