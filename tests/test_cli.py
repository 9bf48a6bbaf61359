"""End to end: the real CLI in a subprocess against real sockets on loopback."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ollama_doctor import __version__
from ollama_doctor.report import schema
from tests.conftest import CliRun, closed_port

VOLATILE = {"generated_at", "duration_ms", "elapsed_ms", "resolve_ms", "environment",
            "started_ms", "finished_ms", "waited_ms", "prepare"}


def stable(value: Any) -> Any:
    """The document without what changes from run to run (timings, clock, machine)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema()).validate(doc)


# ---------------------------------------------------------------------------------------------
# nothing listening


def test_closed_port_whole_document(cli: Callable[..., CliRun]) -> None:
    port = closed_port()
    run = cli("probe", "reachability", "--host", f"127.0.0.1:{port}", "--json")
    assert run.code == 1, run.stderr
    doc = run.json()
    validate(doc)
    connects = [{"address": "127.0.0.1", "port": port, "ok": False, "error": "refused"}]
    evidence = {"target": f"http://127.0.0.1:{port}", "connects": connects,
                "ollama_processes": []}
    message = f"Nothing listens on port {port} on this machine: every connection was refused."
    fix = [
        {"text": "Start Ollama on that address, then check that it answers.", "kind": "shell",
         "commands": [f"OLLAMA_HOST=127.0.0.1:{port} ollama serve",
                      f"curl http://127.0.0.1:{port}/"]},
        {"text": "If it runs as a service, look at why it stopped.", "kind": "shell",
         "commands": ["systemctl status ollama", "journalctl -u ollama -n 50"]},
    ]
    assert stable(doc) == {
        "schema_version": 1,
        "tool": {"name": "ollama-doctor", "version": __version__},
        "command": "probe reachability",
        "target": {"url": f"http://127.0.0.1:{port}", "source": "option", "model": None,
                   "dialed": f"http://127.0.0.1:{port}"},
        "checks": [{
            "id": "reachability", "title": "Server reachable", "status": "fail",
            "summary": f"connection refused at 127.0.0.1:{port} — direct",
            "prerequisite": False, "blocked_by": None, "error": None,
            "facts": {"dial_host": "127.0.0.1", "port": port, "addresses": ["127.0.0.1"],
                      "connects": connects,
                      "path": {"client": "ollama-python", "route": "direct", "proxy": None,
                               "source": None, "described": "direct",
                               "reason": "no proxy variable applies to http:// URLs"}},
            "findings": [{"cause": "server-not-running", "severity": "critical",
                          "confidence": "high", "message": message, "code": None,
                          "evidence": evidence, "fix": fix}],
        }],
        "diagnosis": [{
            "rank": 1, "cause": "server-not-running", "code": None, "severity": "critical",
            "confidence": "high", "title": "No server is listening", "explanation": message,
            "why_ranked": "critical at the transport layer, proved by a probe.",
            "evidence": evidence, "fix": fix,
            "retry": {"helps": False, "advice": "Retrying does not help until a server listens."},
            "probes": ["reachability"],
        }],
        "summary": {"status": "failing", "exit_code": 1, "top_cause": "server-not-running",
                    "headline": message,
                    "checks": {"pass": 0, "warn": 0, "fail": 1, "skip": 0, "error": 0},
                    "crashed": []},
    }


def test_closed_port_text_screen(cli: Callable[..., CliRun]) -> None:
    port = closed_port()
    run = cli("probe", "reachability", "--host", f"127.0.0.1:{port}")
    assert run.code == 1
    lines = [line.rstrip() for line in run.stdout.splitlines()]
    # the timing column varies; everything else is compared whole
    lines[2] = re.sub(r"  \d+ ms  ", "  <ms>  ", lines[2])
    found = re.search(r"elapsed_ms=([0-9.]+)", lines[11])
    assert found is not None, lines[11]
    assert lines == [
        f"ollama-doctor {__version__} — target http://127.0.0.1:{port} (from option)",
        "",
        "  ✗ reachability  <ms>  No server is listening (server-not-running)",
        "",
        "Diagnosis",
        " 1. server-not-running — No server is listening (critical · high confidence)",
        f"    Nothing listens on port {port} on this machine: every connection was refused.",
        "    Why here: critical at the transport layer, proved by a probe.",
        "    Retry: Retrying does not help until a server listens.",
        "    Evidence:",
        f"      target: http://127.0.0.1:{port}",
        f"      connects: address=127.0.0.1, port={port}, ok=no, elapsed_ms={found[1]}, "
        "error=refused",
        "      ollama_processes: (none)",
        "    Fix:",
        "      Start Ollama on that address, then check that it answers.",
        f"        $ OLLAMA_HOST=127.0.0.1:{port} ollama serve",
        f"        $ curl http://127.0.0.1:{port}/",
        "      If it runs as a service, look at why it stopped.",
        "        $ systemctl status ollama",
        "        $ journalctl -u ollama -n 50",
        "",
        "FAILING — server-not-running: No server is listening. (exit 1)",
    ]
    assert run.stderr == ""


def test_closed_port_check_blocks_the_rest(cli: Callable[..., CliRun]) -> None:
    """One root cause, not five failures: probes that need a server are skipped."""
    port = closed_port()
    run = cli("check", "--host", f"127.0.0.1:{port}", "--json", "-m", "llama3.2")
    doc = run.json()
    validate(doc)
    assert run.code == 1
    assert doc["diagnosis"][0]["cause"] == "server-not-running"
    assert doc["summary"]["top_cause"] == "server-not-running"
    statuses = {c["id"]: (c["status"], c["blocked_by"]) for c in doc["checks"]}
    assert statuses["reachability"] == ("fail", None)
    for probe_id in ("latency", "models", "auth", "warmup"):
        if probe_id in statuses:
            assert statuses[probe_id][0] == "skip", probe_id
            assert statuses[probe_id][1] in ("reachability", "models"), probe_id
    errors = [d["cause"] for d in doc["diagnosis"] if d["severity"] in ("error", "critical")]
    # on a machine that is itself a container (CI here is), container-localhost follows
    assert errors in (["server-not-running"], ["server-not-running", "container-localhost"])


def test_ollama_host_env_is_the_target_and_source(cli: Callable[..., CliRun]) -> None:
    port = closed_port()
    doc = cli("check", "--json", env={"OLLAMA_HOST": f"127.0.0.1:{port}"}).json()
    assert doc["target"]["source"] == "OLLAMA_HOST"
    assert doc["target"]["url"] == f"http://127.0.0.1:{port}"
    option = cli("check", "--json", "--host", f"127.0.0.1:{port}",
                 env={"OLLAMA_HOST": "127.0.0.1:1"}).json()
    assert option["target"]["source"] == "option"


# ---------------------------------------------------------------------------------------------
# against the emulator


def test_healthy_emulator_exits_zero(cli: Callable[..., CliRun], emulator: Any) -> None:
    emu = emulator()
    run = cli("check", "--host", emu.url, "--json")
    doc = run.json()
    validate(doc)
    assert run.code == 0, doc["diagnosis"]
    assert doc["summary"]["status"] == "healthy"
    assert [d for d in doc["diagnosis"] if d["severity"] in ("error", "critical")] == []
    reach = doc["checks"][[c["id"] for c in doc["checks"]].index("reachability")]
    assert reach["status"] == "pass"
    assert reach["facts"]["version"] == "0.33.0"
    assert reach["facts"]["looks_like_ollama"] is True


def test_html_page_is_not_ollama(cli: Callable[..., CliRun], emulator: Any) -> None:
    emu = emulator(html="")
    run = cli("check", "--host", emu.url, "--json")
    doc = run.json()
    assert run.code == 1
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("not-ollama", "critical", None)
    assert "nginx" in top["explanation"] and "HTML page" in top["explanation"]
    assert top["evidence"]["root"]["headers"]["server"].startswith("nginx")


def test_silent_server_costs_one_timeout(cli: Callable[..., CliRun], emulator: Any) -> None:
    """The bound is the run's own clock (what it says it waited), not this test's wall clock:
    the suite never times the machine (pytest-timeout catches a hang)."""
    emu = emulator(hang="")
    run = cli("check", "--host", emu.url, "--json", "--timeout", "1")
    assert run.code == 1
    top = run.json()["diagnosis"][0]
    assert top["cause"] == "server-unresponsive"
    waited = re.search(r"sent no answer to GET / within ([0-9.]+) s\.$", top["explanation"])
    assert waited is not None and float(waited.group(1)) <= 2 * 1


def test_unspecified_address_is_dialled_as_loopback(cli: Callable[..., CliRun],
                                                     emulator: Any) -> None:
    emu = emulator()
    run = cli("check", "--host", f"0.0.0.0:{emu.port}", "--json")
    doc = run.json()
    assert run.code == 0
    causes = [(d["cause"], d["severity"]) for d in doc["diagnosis"]]
    assert causes[0] == ("unspecified-address", "warning")
    assert doc["target"]["url"] == f"http://0.0.0.0:{emu.port}"
    assert doc["target"]["dialed"] == f"http://127.0.0.1:{emu.port}"


def test_scheme_without_port_goes_to_80(cli: Callable[..., CliRun]) -> None:
    run = cli("check", "--host", "http://127.0.0.1", "--json", "--timeout", "1")
    doc = run.json()
    top = doc["diagnosis"][0]
    reach = next(c for c in doc["checks"] if c["id"] == "reachability")
    if reach["facts"]["connects"][0]["ok"]:
        pytest.skip("something listens on port 80 here")
    assert (top["cause"], top["severity"]) == ("wrong-port-scheme", "critical")
    assert "port 80" in top["explanation"]
    assert top["evidence"]["explains"][0]["cause"] == "server-not-running"


def test_openai_base_is_right_and_api_suffix_is_wrong(cli: Callable[..., CliRun],
                                                       emulator: Any) -> None:
    emu = emulator()
    good = cli("check", "--host", emu.url + "/v1", "--json")
    assert good.code == 0
    assert all(d["cause"] != "wrong-base-path" for d in good.json()["diagnosis"])
    bad = cli("check", "--host", emu.url + "/api", "--json")
    top = bad.json()["diagnosis"][0]
    assert bad.code == 1
    assert (top["cause"], top["code"]) == ("wrong-base-path", 404)
    assert "plain-text 404 page not found" in top["explanation"]


def test_markdown_and_json_outputs(cli: Callable[..., CliRun], tmp_path: Path) -> None:
    port = closed_port()
    md = tmp_path / "report.md"
    js = tmp_path / "report.json"
    assert cli("check", "--host", f"127.0.0.1:{port}", "-o", str(md)).code == 1
    assert cli("check", "--host", f"127.0.0.1:{port}", "-o", str(js), "--json").code == 1
    text = md.read_text()
    assert text.startswith("## ollama-doctor report\n\n**FAILING** — `server-not-running`: "
                           "No server is listening\n")
    assert "### Most likely cause: `server-not-running` — No server is listening" in text
    assert text.index("**Evidence**") < text.index("**Fix**") < text.index("### Checks")
    assert "| ✗ | reachability | fail |" in text
    validate(json.loads(js.read_text()))
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_probe_runs_one_probe(cli: Callable[..., CliRun], emulator: Any) -> None:
    emu = emulator()
    run = cli("probe", "reachability", "--host", emu.url, "--json")
    doc = run.json()
    assert run.code == 0
    assert doc["command"] == "probe reachability"
    assert [c["id"] for c in doc["checks"]] == ["reachability"]


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit 2, never a traceback


@pytest.mark.parametrize(("args", "message"), [
    (["check", "--host", "ftp://x"], "unknown scheme 'ftp'"),
    (["check", "--host", "http://"], "the host is empty"),
    (["check", "--host", "127.0.0.1:0"], "port 0 is out of range"),
    (["check", "--host", "127.0.0.1:99999"], "port 99999 is out of range"),
    (["check", "--header", "NoColonHere"], "invalid --header 'NoColonHere'"),
    (["check", "--timeout", "-1"], "--timeout must be a positive number"),
    (["check", "--timeout", "abc"], "Invalid value for '--timeout'"),
    (["check", "--timeout=abc"], "'abc'"),  # the value the user gave, whatever click's wording
    (["probe", "nosuch"], "unknown probe 'nosuch'; valid probes: "),
    (["probe"], "probe needs a NAME; valid probes: proxy, reachability, dns"),
    (["explain"], "explain needs a status code or a cause id, e.g. `explain 429`, or --error "
                  "TEXT (`explain --list` lists them)"),
    (["watch", "--interval", "0"], "--interval must be a positive number of seconds, not 0.0"),
    (["watch", "--webhook", "ftp://x"], "--webhook must be an http:// or https:// URL"),
    (["logs", "--log-lines", "ten"], "Invalid value for '--log-lines'"),
    (["explain", "418"], "no entry for HTTP 418"),
    (["explain", "no-such-cause"], "unknown topic 'no-such-cause': give an HTTP status (e.g. "
                                   "429) or a cause id (`ollama-doctor explain --list` lists"),
    (["check", "-o", "/nonexistent-dir/r.json"], "folder '/nonexistent-dir' does not exist"),
    (["check", "-o", "report.txt"], "unknown extension '.txt'"),
    (["check", "--error-file", "/nonexistent/err.txt"], "cannot read --error-file"),
    (["check", "--nosuch"], "--nosuch"),
    (["check", "--needs", "banana"], "--needs 'banana' is not a capability; valid values: "
                                     "completion, tools,"),
    # control characters: refused once, here, instead of failing every request later
    (["check", "--header", "X-Trace: a\r\nInjected: 1"],
     "invalid --header 'X-Trace: a\\r\\nInjected: 1': it holds a carriage return (\\r) at "
     "position 2; header names and values cannot contain control characters"),
    (["check", "--header", "X-Api-Key: PLANTEDk\x01"],  # (argv cannot hold a NUL)
     "invalid --header 'X-Api-Key: ***': it holds a control character (U+0001) at the end"),
    (["check", "--header", "X\x1bName: v"], "it holds an escape (\\x1b) at position 2"),
    (["check", "--header", "Bad Name: v"], "the name holds ' ', which header names cannot"),
    (["check", "--origin", "http://app.example\r"],
     "invalid --origin 'http://app.example\\r': it holds a carriage return (\\r) at the end"),
    (["check", "-m", "llama3.2\n"],
     "invalid --model 'llama3.2\\n': it holds a line feed (\\n) at the end"),
    (["check", "--host", "http://u:PLANTEDpw@127.0.0.1:1\x07"],
     "invalid --host 'http://u:***@127.0.0.1:1\\x07': it holds a control character (U+0007)"),
])
def test_bad_input_is_one_line_exit_2(cli: Callable[..., CliRun], args: list[str],
                                      message: str) -> None:
    run = cli(*args)
    assert run.code == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("ollama-doctor: error: ")
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert "PLANTED" not in run.stderr


def test_ollama_host_with_a_stray_character_is_a_usage_error(
        cli: Callable[..., CliRun]) -> None:
    run = cli("check", env={"OLLAMA_HOST": "127.0.0.1:11434\r"})
    assert (run.code, run.stdout) == (2, "")
    assert run.stderr == ("ollama-doctor: error: invalid OLLAMA_HOST '127.0.0.1:11434\\r': it "
                          "holds a carriage return (\\r) at the end\n")


def test_version_and_help(cli: Callable[..., CliRun]) -> None:
    assert cli("--version").stdout == f"ollama-doctor {__version__}\n"
    run = cli("check", "--help")
    assert run.code == 0
    assert "--client-timeout" in run.stdout and "Exit codes" not in run.stderr


def test_explain_offline(cli: Callable[..., CliRun]) -> None:
    run = cli("explain", "429")
    assert run.code == 0
    assert run.stdout.splitlines()[0] == "HTTP 429 Too Many Requests"
    assert "Produced by: intermediary — Never from local Ollama" in run.stdout
    data = json.loads(cli("explain", "slow-model-load", "--json").stdout)
    assert data["code"] == 504 and data["retry"]["helps"] is False
    assert data["found_by"] == [] or "warmup" in data["found_by"]


def test_schema_command_prints_the_shipped_schema(cli: Callable[..., CliRun]) -> None:
    assert json.loads(cli("schema").stdout) == schema()


# ---------------------------------------------------------------------------------------------
# a server that sends garbage or far too much


@pytest.fixture
def raw_server() -> Iterator[Callable[[bytes], int]]:
    """A TCP server that answers every connection with fixed bytes, then closes."""
    socks: list[socket.socket] = []

    def start(payload: bytes) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        socks.append(srv)

        def serve() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(2)
                    try:
                        conn.recv(65536)
                        conn.sendall(payload)
                    except OSError:
                        pass

        threading.Thread(target=serve, daemon=True).start()
        port: int = srv.getsockname()[1]
        return port

    yield start
    for srv in socks:
        srv.close()


def test_garbage_bytes_are_a_finding_not_a_crash(cli: Callable[..., CliRun],
                                                 raw_server: Callable[[bytes], int]) -> None:
    port = raw_server(b"\x00\xffgarbage that is not HTTP\r\n\r\n")
    run = cli("check", "--host", f"127.0.0.1:{port}", "--json", "--timeout", "2")
    assert run.code == 1
    top = run.json()["diagnosis"][0]
    assert top["cause"] == "server-unresponsive"
    assert "Traceback" not in run.stderr


def test_huge_body_is_read_bounded(cli: Callable[..., CliRun],
                                   raw_server: Callable[[bytes], int]) -> None:
    body = b"x" * (8 * 1024 * 1024)
    port = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    run = cli("check", "--host", f"127.0.0.1:{port}", "--json", "--timeout", "3")
    top = run.json()["diagnosis"][0]
    assert top["cause"] == "not-ollama"
    assert len(run.stdout) < 200_000


def test_logs_command_classifies_and_sets_the_exit_code(cli: Callable[..., CliRun],
                                                        tmp_path: Path) -> None:
    bad = tmp_path / "server.log"
    bad.write_text('time=2026-11-25T10:00:00Z level=ERROR source=sched.go:1 msg="Load failed" '
                   'model=x error="llama-server process has terminated: signal: killed"\n')
    run = cli("logs", "--log-file", str(bad), "--json")
    assert run.code == 1
    causes = {c["cause"] for c in json.loads(run.stdout)["causes"]}
    assert {"out-of-memory", "runner-crashed"} <= causes
    good = tmp_path / "ok.log"
    good.write_text('time=2026-11-25T10:00:00Z level=INFO source=routes.go:1 '
                    'msg="Listening on 127.0.0.1:11434 (version 0.33.0)"\n')
    assert cli("logs", "--log-file", str(good)).code == 0
    missing = cli("logs", "--log-file", str(tmp_path / "nope.log"))
    assert (missing.code, missing.stdout) == (2, "")
    assert missing.stderr.startswith("ollama-doctor: error: cannot read")


# ---------------------------------------------------------------------------------------------
# the in-process runner (tests/conftest.py): what the subprocess gives, and nothing left behind


@pytest.mark.parametrize("args", [
    ("--help",), ("check", "-h"), ("explain", "429"), ("explain", "--list", "--json"),
    ("explain", "--error-file", "-"), ("--version",), ("check", "--timeout", "abc"),
    ("probe", "nope"), ("check", "--header", "X-Key: a\x01b", "--host", "127.0.0.1:1"),
    ("explain", "--request", "-", "--json"),
], ids=lambda args: " ".join(args)[:30])
def test_in_process_runs_give_what_the_subprocess_gives(
        cli: Callable[..., CliRun], cli_process: Callable[..., CliRun],
        args: tuple[str, ...]) -> None:
    stdin = ('{"model": "llama3.2", "messages": "hi"}\r\n' if "--request" in args
             else "httpx.ConnectError: [Errno 111] Connection refused\r\n")
    env = {"OLLAMA_HOST": "http://127.0.0.1:1"}
    assert cli(*args, stdin=stdin, env=env) == cli_process(*args, stdin=stdin, env=env)


def test_in_process_runs_leave_the_process_as_they_found_it(
        cli: Callable[..., CliRun], tmp_path: Path) -> None:
    import os
    import signal
    import sys

    from ollama_doctor import _exit

    def state() -> tuple[Any, ...]:
        return (dict(os.environ), os.getcwd(), sys.stdin, sys.stdout, sys.stderr,
                signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT),
                _exit.IN_PROCESS)

    before = state()
    port = closed_port()
    run = cli("watch", "--host", f"127.0.0.1:{port}", "--count", "1", "--confirm", "1",
              "--interval", "0.1", "--state", str(tmp_path / "state.json"), "--json",
              env={"OLLAMA_HOST": "http://127.0.0.1:1", "NO_COLOR": "1"}, cwd=tmp_path)
    assert run.code == 1, run.stderr
    assert "server-not-running" in run.stdout
    assert state() == before


def test_a_stuck_thread_ends_the_run_not_the_test_process() -> None:
    """``exit_process`` leaves with ``os._exit`` when a thread is stuck; run in-process it
    raises ``SystemExit`` instead (``_exit.IN_PROCESS``), and still flushes first."""
    from ollama_doctor import _exit

    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="od-probe-stuck", daemon=True)
    stuck.start()
    _exit.IN_PROCESS = True
    try:
        with pytest.raises(SystemExit) as exited:
            _exit.exit_process(1)
        assert exited.value.code == 1
    finally:
        _exit.IN_PROCESS = False
        release.set()
        stuck.join(5)


def test_httpx_version_is_the_installed_one_without_importing_httpx(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's ``environment.packages.httpx``: read from httpx's own ``__version__.py``
    when httpx is not loaded (a refused port loads none), the module's attribute when it is;
    both agree with the package metadata."""
    import importlib.metadata

    from ollama_doctor import report

    installed = importlib.metadata.version("httpx")
    import httpx

    assert report.httpx_version() == installed == httpx.__version__
    monkeypatch.delitem(sys.modules, "httpx")
    assert report.httpx_version() == installed
    assert "httpx" not in sys.modules


@pytest.mark.parametrize("name", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY",
                                  "https_proxy", "KUBERNETES_SERVICE_HOST", "OLLAMA_HOST"])
def test_the_developers_shell_does_not_leak_into_the_tests(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable that changes what the probes see (a CA bundle, a proxy, a cluster) is
    dropped from every child's environment, whatever its case. SSL_CERT_FILE once leaked:
    the list was compared in lower case but spelt some names in upper case."""
    from tests.conftest import clean_environ

    monkeypatch.setenv(name, "/planted")
    assert name not in clean_environ()
    assert clean_environ({name: "given"})[name] == "given"  # a test may still set it
