"""The ``ulimit`` probe: open-file limits of this process and of a real server process.

The "server" is the emulator (``ollama-doctor emulate``) in its own process, started under a low
``RLIMIT_NOFILE`` (``preexec_fn``) and named with ``--server-pid``, so that ``check`` runs
against it end to end (S25).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ollama_doctor.context import Context, Options
from ollama_doctor.probes import ulimit
from ollama_doctor.result import Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, clean_environ


class LimitedServer:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url

    @property
    def pid(self) -> int:
        return self.proc.pid


@pytest.fixture
def limited_server() -> Iterator[Callable[[int], LimitedServer]]:
    """``limited_server(nofile)`` → a server process whose open-file limit is ``nofile``."""
    started: list[subprocess.Popen[str]] = []

    def start(nofile: int) -> LimitedServer:
        def lower() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0",
             "--model", "llama3.2:latest;size=2019393189"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=lower,
            env=clean_environ())
        started.append(proc)
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        return LimitedServer(proc, url)

    yield start
    for proc in started:
        proc.kill()
        proc.wait(10)


def make_ctx(**options: Any) -> Context:
    env = options.pop("env", {})
    root = options.pop("fs_root", Path("/"))
    return Context(parse_target("127.0.0.1:11434"), Options(**options), env=env, fs_root=root)


# ---------------------------------------------------------------------------------------------
# this process


def test_this_process_matches_getrlimit() -> None:
    mine = ulimit.this_process()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    assert mine["nofile"] == {"soft": None if soft == inf else soft,
                              "hard": None if hard == inf else hard}
    assert set(mine["nproc"]) == {"soft", "hard"}


def test_windows_has_no_rlimits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` fails, as on Windows
    out = ulimit.run(make_ctx(server_pids=(999_999_999,)))
    assert out.facts["this_process"]["skipped"].startswith("Windows has no RLIMIT_NOFILE")
    assert out.status is Status.SKIP
    assert out.summary.startswith("skipped: Windows has no RLIMIT_NOFILE")


# ---------------------------------------------------------------------------------------------
# the server's limits, read from a real process


def test_reads_a_real_server_process(limited_server: Callable[[int], LimitedServer]) -> None:
    server = limited_server(1024)
    out = ulimit.run(make_ctx(server_pids=(server.pid,)))
    [row] = out.facts["servers"]
    assert row["pid"] == server.pid
    assert row["nofile"] == {"soft": 1024, "hard": 1024, "units": "files"}
    assert isinstance(row["open_fds"], int) and 3 <= row["open_fds"] < 64
    assert row["launcher"] in ("shell", "docker", "systemd")
    # below the guide's 4096 without an expected concurrency: a low-confidence warning
    # (this process's own limit may add a note on machines where it is low too)
    assert [(f.cause, f.severity.value, f.confidence.value) for f in out.findings
            if f.evidence.get("pid") == server.pid] == [("fd-limit-low", "warning", "low")]
    assert out.status is Status.WARN
    assert f"server pid {server.pid}: 1024/1024, {row['open_fds']} open" in out.summary


def test_expected_concurrency_over_the_limit_is_an_error(
        limited_server: Callable[[int], LimitedServer]) -> None:
    server = limited_server(1024)
    out = ulimit.run(make_ctx(server_pids=(server.pid,), concurrency=1000))
    server_findings = [f for f in out.findings if f.evidence.get("pid") == server.pid]
    [finding] = server_findings
    assert (finding.cause, finding.severity.value, finding.confidence.value) == (
        "fd-limit-low", "error", "medium")
    open_now = out.facts["servers"][0]["open_fds"]
    allowed = (1024 - open_now - ulimit.RESERVE) // 2
    assert finding.evidence["allowed_calls"] == allowed
    assert finding.evidence["needed"] == open_now + ulimit.RESERVE + 2000
    assert finding.message == (
        f"The Ollama server (pid {server.pid}) may open only 1024 files, but 1000 concurrent "
        f"calls (--concurrency) need about {open_now + ulimit.RESERVE + 2000} (2 per call plus "
        f"{open_now + ulimit.RESERVE} held or reserved): beyond about {allowed} calls, "
        "connections fail with 'too many open files'.")
    commands = [c for step in finding.fix for c in step.commands]
    assert "ulimit -n 65536" in commands
    assert "sudo systemctl edit ollama   # add: [Service]  LimitNOFILE=65536" in commands
    assert ("docker run --ulimit nofile=65536:65536 -d -p 11434:11434 -v ollama:/root/.ollama "
            "--name ollama ollama/ollama") in commands
    assert out.status is Status.FAIL


def test_generous_limit_is_healthy(limited_server: Callable[[int], LimitedServer]) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if limit < ulimit.THRESHOLD:
        pytest.skip(f"this machine's hard limit ({hard}) is below {ulimit.THRESHOLD}")
    server = limited_server(limit)
    out = ulimit.run(make_ctx(server_pids=(server.pid,), concurrency=100))
    assert [f for f in out.findings if f.evidence.get("pid") == server.pid] == []


def test_concurrency_from_ollama_num_parallel() -> None:
    assert ulimit.expected_concurrency(make_ctx(env={"OLLAMA_NUM_PARALLEL": "8"})) == (
        8, "OLLAMA_NUM_PARALLEL")
    assert ulimit.expected_concurrency(make_ctx(env={"OLLAMA_NUM_PARALLEL": "lots"})) == (
        None, None)
    assert ulimit.expected_concurrency(make_ctx(concurrency=50,
                                                env={"OLLAMA_NUM_PARALLEL": "8"})) == (
        50, "--concurrency")


@pytest.mark.parametrize(("soft", "open_now", "expected", "result"), [
    (1024, 10, None, ("warning", "low")),  # below 4096, nothing else known
    (1024, 10, 400, ("warning", "low")),  # 400 calls fit in 1024
    (1024, 10, 600, ("error", "medium")),  # 600 × 2 + 42 > 1024
    (65536, 100, 1000, None),
    (65536, 60000, None, ("error", "high")),  # already at 90 % of the limit
    (4096, None, 2100, ("error", "medium")),  # open count unknown: reserve only
    (4096, None, None, None),
])
def test_server_decision_table(soft: int, open_now: int | None, expected: int | None,
                               result: tuple[str, str] | None) -> None:
    row = {"pid": 42, "nofile": {"soft": soft, "hard": soft, "units": "files"},
           "open_fds": open_now, "launcher": "systemd"}
    found = ulimit._server_findings(row, expected, "--concurrency" if expected else None)
    assert [(f.severity.value, f.confidence.value) for f in found] == (
        [result] if result else [])
    if found:
        assert found[0].fix[0].commands[0].startswith("sudo systemctl edit ollama")


@pytest.mark.parametrize(("nofile", "expected", "result"), [
    ({"soft": 256, "hard": None}, None, ("info", "low")),  # a macOS shell
    ({"soft": 256, "hard": None}, 1000, ("error", "medium")),
    ({"soft": 20000, "hard": 20000}, 1000, None),
    ({"soft": None, "hard": None}, 100000, None),  # unlimited
])
def test_client_decision_table(nofile: dict[str, Any], expected: int | None,
                               result: tuple[str, str] | None) -> None:
    found = ulimit._client_findings({"nofile": nofile}, expected,
                                    "--concurrency" if expected else None)
    assert [(f.severity.value, f.confidence.value) for f in found] == (
        [result] if result else [])


def test_fix_order_follows_the_launcher() -> None:
    assert [s.text.split(":")[0] for s in ulimit.fixes("docker", None)] == [
        "Started in a container", "Started by systemd", "Started from a shell"]
    shell = ulimit.fixes("shell", 4096)
    assert shell[0].commands == ("ulimit -n 65536", "ollama serve")
    assert "the hard limit is 4096: raise it first as root" in shell[0].text


# ---------------------------------------------------------------------------------------------
# what cannot be read


def test_unreadable_proc_limits_is_a_warning(tmp_path: Path) -> None:
    pid = os.getpid()
    (tmp_path / f"proc/{pid}/limits").mkdir(parents=True)  # a folder where the file belongs
    out = ulimit.run(make_ctx(server_pids=(pid,), fs_root=tmp_path))
    [row] = out.facts["servers"]
    assert row["skipped"] == f"cannot read /proc/{pid}/limits: is a directory, not a file"
    assert out.status is Status.WARN
    assert out.findings == [] or all(f.evidence.get("pid") != pid for f in out.findings)


def test_missing_and_garbage_proc_limits(tmp_path: Path) -> None:
    pid = os.getpid()
    out = ulimit.run(make_ctx(server_pids=(pid,), fs_root=tmp_path))
    assert out.facts["servers"][0]["skipped"] == f"cannot read /proc/{pid}/limits: missing"
    (tmp_path / f"proc/{pid}").mkdir(parents=True)
    (tmp_path / f"proc/{pid}/limits").write_bytes(b"\x00" * 100)
    out = ulimit.run(make_ctx(server_pids=(pid,), fs_root=tmp_path))
    assert out.facts["servers"][0]["skipped"].startswith(f"cannot parse /proc/{pid}/limits:")
    assert out.status is Status.WARN


def test_sparse_10gb_limits_file_is_bounded(tmp_path: Path) -> None:
    import time

    pid = os.getpid()
    (tmp_path / f"proc/{pid}").mkdir(parents=True)
    with (tmp_path / f"proc/{pid}/limits").open("wb") as handle:
        handle.truncate(10 << 30)
    started = time.monotonic()
    out = ulimit.run(make_ctx(server_pids=(pid,), fs_root=tmp_path))
    assert time.monotonic() - started < 1.0
    assert out.facts["servers"][0]["skipped"] == (
        f"cannot read /proc/{pid}/limits: longer than 64 KiB: not a kernel file")


def test_access_denied_counting_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: psutil.Process) -> int:
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "num_fds", denied)
    out = ulimit.run(make_ctx(server_pids=(os.getpid(),)))
    [row] = out.facts["servers"]
    assert row["open_fds"] is None
    assert row["open_fds_note"].startswith("AccessDenied: cannot count its descriptors")
    assert "nofile" in row  # the limit itself is still read


def test_vanished_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    out = ulimit.run(make_ctx(server_pids=(proc.pid,)))
    assert out.facts["servers"] == []  # psutil no longer lists it: nothing to read, no crash


# ---------------------------------------------------------------------------------------------
# end to end: S25


def test_s25_fd_limit_low_is_the_top_cause(cli: Callable[..., CliRun],
                                           limited_server: Callable[[int], LimitedServer]
                                           ) -> None:
    server = limited_server(1024)
    run = cli("check", "--host", server.url, "--server-pid", str(server.pid),
              "--concurrency", "1000", "--json")
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["code"]) == ("fd-limit-low", "error", None), \
        doc["diagnosis"]
    assert top["evidence"]["pid"] == server.pid
    assert top["evidence"]["nofile"] == {"soft": 1024, "hard": 1024, "units": "files"}
    assert doc["summary"]["top_cause"] == "fd-limit-low"
    assert run.code == 1
    check = next(c for c in doc["checks"] if c["id"] == "ulimit")
    assert check["status"] == "fail"


def test_probe_ulimit_healthy_server(cli: Callable[..., CliRun],
                                     limited_server: Callable[[int], LimitedServer]) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.skip(f"this machine's hard limit ({hard}) is below 8192")
    server = limited_server(8192)
    run = cli("probe", "ulimit", "--host", server.url, "--server-pid", str(server.pid),
              "--concurrency", "10", "--json")
    doc = run.json()
    assert [d["cause"] for d in doc["diagnosis"]
            if d["severity"] in ("warning", "error", "critical")] == []
    assert run.code == 0
    [check] = [c for c in doc["checks"] if c["id"] == "ulimit"]
    assert check["facts"]["servers"][0]["nofile"]["soft"] == 8192
