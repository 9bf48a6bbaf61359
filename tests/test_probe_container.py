"""The ``container`` probe: detection, cgroup limits, memory-limit and container-localhost.

In-process tests build a ``Context`` on the fixture trees under ``tests/data/fs`` (or a tmp copy
of one, spoiled on purpose); end-to-end tests run the real CLI with the hidden ``--fs-root``.
Discovery only ever contacts loopback servers started here, named with ``--candidate`` (or
names that an injected resolver maps to loopback): never the machine's real gateway.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.context import Context, Options
from ollama_doctor.probes import container
from ollama_doctor.result import Finding, ProbeResult, Severity, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun, closed_port
from tests.support.canned import CannedServer, Reply
from tests.support.guard import loopback_only

FS = Path(__file__).parent / "data" / "fs"
GIB = 1 << 30
MODEL = "llama3.1:8b"
MODEL_SIZE = 4_700_000_000  # 4.7 GB, as `ollama list` shows llama3.1:8b


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    with loopback_only():
        yield


def tree(tmp_path: Path, name: str) -> Path:
    """A private copy of a fixture tree, free to spoil."""
    dest = tmp_path / name
    shutil.copytree(FS / name, dest, symlinks=True)
    return dest


def make_ctx(root: Path, host: str | None = None, *, model: str | None = None,
             env: dict[str, str] | None = None, results: list[ProbeResult] | None = None,
             **options: Any) -> Context:
    ctx = Context(parse_target(host), Options(model=model, timeout=2.0, **options),
                  env=env or {}, fs_root=root)
    for result in results or []:
        ctx.results[result.id] = result
    return ctx


def refused(port: int = 11434) -> ProbeResult:
    """What the reachability probe records when nothing listens on loopback."""
    return ProbeResult(
        "reachability", "Server reachable", Status.FAIL, f"connection refused at 127.0.0.1:{port}",
        facts={"connects": [{"address": "127.0.0.1", "port": port, "ok": False,
                             "error": "refused"}]},
        findings=[Finding("server-not-running", Severity.CRITICAL, "Nothing listens.")])


def with_model(size: int = MODEL_SIZE, name: str = MODEL) -> ProbeResult:
    """What the models probe records for an installed model."""
    return ProbeResult("models", "Models", Status.PASS, "installed",
                       facts={"models": [{"name": name, "size": size}],
                              "model": {"requested": name, "installed_as": name}})


def causes(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.cause, f.severity.value, f.confidence.value) for f in findings]


# ---------------------------------------------------------------------------------------------
# detection and limits on each fixture tree


def test_v2_docker_with_limits() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2"))
    facts = out.facts
    assert facts["container"] == {"in_container": True, "wsl": False, "runtime": "docker",
                                  "signals": ["/.dockerenv exists"]}
    assert facts["cgroup"] == {"version": "v2", "of": "this process", "path": "/",
                               "dirs": {"memory": "/sys/fs/cgroup", "cpu": "/sys/fs/cgroup",
                                        "pids": "/sys/fs/cgroup"},
                               "fell_back_to_root": []}
    limits = facts["limits"]
    assert limits["memory_max"] == {"bytes": 2 * GIB, "human": "2.0 GiB",
                                    "file": "/sys/fs/cgroup/memory.max"}
    assert limits["memory_high"] == {"bytes": None, "human": "unlimited"}
    assert limits["cpu"] == {"quota_us": 150000, "period_us": 100000, "cpus": 1.5,
                             "human": "1.5 CPUs", "file": "/sys/fs/cgroup/cpu.max"}
    assert limits["pids_max"] == {"value": 512, "human": "512", "file": "/sys/fs/cgroup/pids.max"}
    assert limits["io_max"] == [{"device": "8:0", "rbps": 10485760, "wbps": None,
                                 "riops": None, "wiops": 120}]
    assert limits["memory_peak"] == {"bytes": 2147479552, "human": "2.0 GiB"}
    assert facts["oom"] == {"oom": 3, "oom_kill": 2}
    assert "unreadable" not in facts
    assert out.summary.startswith(
        "docker container; cgroup v2: memory 2.0 GiB, CPU 1.5 CPUs, pids 512, 2 OOM kill(s)")


def test_v2_systemd_takes_the_tightest_limit_up_the_tree() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2-systemd"))
    limits = out.facts["limits"]
    # ollama.service allows 8 GiB but its parent slice only 4 GiB: 4 GiB binds.
    assert limits["memory_max"] == {"bytes": 4 * GIB, "human": "4.0 GiB",
                                    "file": "/sys/fs/cgroup/system.slice/memory.max"}
    assert limits["memory_high"]["file"] == "/sys/fs/cgroup/system.slice/ollama.service/memory.high"
    assert limits["cpu"]["cpus"] == 4.0
    assert limits["pids_max"]["value"] == 4915
    assert out.facts["container"]["in_container"] is False
    assert out.facts["cgroup"]["path"] == "/system.slice/ollama.service"
    assert out.status is Status.PASS


def test_v1_docker_path_not_visible_falls_back_to_the_root() -> None:
    out = container.run(make_ctx(FS / "cgroup-v1"))
    facts = out.facts
    assert facts["container"]["runtime"] == "docker"
    assert facts["container"]["signals"][0].startswith("/proc/1/cgroup names docker: /docker/")
    assert facts["cgroup"]["version"] == "v1"
    assert facts["cgroup"]["fell_back_to_root"] == ["cpu", "memory", "pids"]
    assert facts["cgroup"]["dirs"] == {"memory": "/sys/fs/cgroup/memory",
                                       "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                                       "pids": "/sys/fs/cgroup/pids"}
    assert facts["limits"]["memory_max"]["bytes"] == 2 * GIB
    assert facts["limits"]["cpu"]["cpus"] == 2.0
    assert facts["limits"]["pids_max"] == {"value": None, "human": "unlimited"}
    assert facts["limits"]["memory_peak"]["bytes"] == 2147450880
    assert facts["oom"] == {"failcnt": 1873, "oom_kill": 4}


def test_hybrid_kubernetes_huge_v1_value_is_unlimited() -> None:
    out = container.run(make_ctx(FS / "hybrid"))
    facts = out.facts
    assert facts["container"]["runtime"] == "kubernetes"
    assert facts["cgroup"]["version"] == "hybrid"
    assert facts["limits"]["memory_max"] == {"bytes": None, "human": "unlimited"}
    assert facts["limits"]["cpu"]["cpus"] == 0.5
    assert facts["limits"]["pids_max"]["value"] == 1024
    assert facts["oom"] == {"failcnt": 0}
    assert out.status is Status.PASS
    assert out.findings == []


def test_kubernetes_from_the_environment() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2",
                                 env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}))
    assert out.facts["container"]["runtime"] == "kubernetes"
    assert "KUBERNETES_SERVICE_HOST is set" in out.facts["container"]["signals"]


def test_wsl() -> None:
    out = container.run(make_ctx(FS / "wsl"))
    assert out.facts["container"] == {"in_container": False, "wsl": True, "runtime": "wsl",
                                      "signals": ["/proc/version names Microsoft (WSL)"]}
    assert out.facts["cgroup"]["version"] == "v2"
    assert out.facts["limits"]["memory_max"]["human"] == "unlimited"
    assert out.summary.startswith("WSL; cgroup v2")


def test_nothing_mounted_is_a_skip_with_the_reason() -> None:
    out = container.run(make_ctx(FS / "missing"))
    assert out.status is Status.SKIP
    assert out.summary == ("skipped: no cgroup filesystem at /sys/fs/cgroup and no container "
                           "signs (not Linux, or /sys is not mounted)")
    assert out.facts["cgroup"]["version"] is None


def test_garbage_everywhere_is_a_warning_naming_each_file() -> None:
    out = container.run(make_ctx(FS / "garbage", model=MODEL, results=[with_model()]))
    assert out.status is Status.WARN
    bad = {p["file"]: p["reason"] for p in out.facts["unreadable"]}
    assert bad == {
        "/proc/1/cgroup": "cgroup membership: expected 'ID:CONTROLLERS:/PATH', got "
                          "'\\x00\\x00\\x00'",
        "/proc/self/cgroup": "cgroup membership: expected 'ID:CONTROLLERS:/PATH', got "
                             "'this is not a cgroup file'",
        "/sys/fs/cgroup/memory.max": "memory.max: expected a number or 'max', got '2 GiB'",
        "/sys/fs/cgroup/memory.high": "memory.high: expected a number or 'max', got "
                                      "'\ufffd\ufffd garbage'",
        "/sys/fs/cgroup/memory.events": "memory.events: expected 'name value' lines, got "
                                        "'???\\n'",
        "/sys/fs/cgroup/cpu.max": "cpu.max: bad quota 'banana'",
        "/sys/fs/cgroup/pids.max": "pids.max: expected a number or 'max', got '-5'",
        "/sys/fs/cgroup/io.max": "io.max: expected 'MAJ:MIN key=value…', got 'sda rbps=fast'",
    }
    # an unreadable limit is "unknown", never "unlimited", and never a finding
    assert out.facts["limits"]["memory_max"]["human"] == "unknown (unreadable)"
    assert out.facts["limits"]["cpu"]["human"] == "unknown (unreadable)"
    assert "memory unknown (unreadable)" in out.summary
    assert "could not read 8 file(s)" in out.summary
    assert out.findings == []


# ---------------------------------------------------------------------------------------------
# spoiled copies: directories, modes, FIFOs, a 10 GB file


def test_directory_where_memory_max_belongs(tmp_path: Path) -> None:
    root = tree(tmp_path, "cgroup-v2")
    target = root / "sys/fs/cgroup/memory.max"
    target.unlink()
    target.mkdir()
    out = container.run(make_ctx(root))
    assert out.status is Status.WARN
    assert {"file": "/sys/fs/cgroup/memory.max",
            "reason": "is a directory, not a file"} in out.facts["unreadable"]
    assert out.facts["limits"]["memory_max"]["human"] == "unknown (unreadable)"


def test_fifo_where_memory_max_belongs_does_not_hang(tmp_path: Path) -> None:
    root = tree(tmp_path, "cgroup-v2")
    target = root / "sys/fs/cgroup/memory.max"
    target.unlink()
    os.mkfifo(target)
    started = time.monotonic()
    out = container.run(make_ctx(root))
    assert time.monotonic() - started < 2
    assert {"file": "/sys/fs/cgroup/memory.max",
            "reason": "not a regular file"} in out.facts["unreadable"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; the "
                    "directory and FIFO tests cover unreadable files for root")
def test_unreadable_memory_max(tmp_path: Path) -> None:
    root = tree(tmp_path, "cgroup-v2")
    target = root / "sys/fs/cgroup/memory.max"
    target.chmod(0)
    try:
        out = container.run(make_ctx(root))
    finally:
        target.chmod(0o644)
    assert {"file": "/sys/fs/cgroup/memory.max",
            "reason": "permission denied"} in out.facts["unreadable"]


def test_unreadable_cgroup_folder(tmp_path: Path) -> None:
    """A cgroup folder that cannot be listed: as root too, a file where the folder should be."""
    root = tree(tmp_path, "cgroup-v2-systemd")
    slice_dir = root / "sys/fs/cgroup/system.slice"
    shutil.rmtree(slice_dir)
    slice_dir.write_text("not a folder\n")
    out = container.run(make_ctx(root))
    assert out.facts["cgroup"]["fell_back_to_root"] == ["cpu", "io", "memory", "pids"]
    assert out.facts["limits"]["memory_max"]["human"] == "unlimited"
    assert out.status is Status.PASS


def test_sparse_10gb_memory_max_is_read_bounded(tmp_path: Path) -> None:
    import resource

    root = tree(tmp_path, "cgroup-v2")
    target = root / "sys/fs/cgroup/memory.max"
    with target.open("wb") as handle:
        handle.truncate(10 * GIB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    out = container.run(make_ctx(root, model=MODEL, results=[with_model()]))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 16 * 1024  # KiB
    assert {"file": "/sys/fs/cgroup/memory.max",
            "reason": "longer than 64 KiB: not a kernel file"} in out.facts["unreadable"]
    assert [f.cause for f in out.findings] == []  # nothing decided on an unread limit


# ---------------------------------------------------------------------------------------------
# memory-limit


@pytest.mark.parametrize(("tree_name", "size", "expected"), [
    # 2 GiB limit, 4.7 GB model: cannot fit (S24); the OOM kills are evidence
    ("cgroup-v2", MODEL_SIZE, [("memory-limit", "error", "high")]),
    # 2 GiB limit, 1.5 GiB model: within the 1 GiB headroom, and kills recorded → error
    ("cgroup-v2", int(1.5 * GIB), [("memory-limit", "error", "medium")]),
    # 2 GiB limit, 0.5 GiB model: fits with room
    ("cgroup-v2", GIB // 2, []),
    # systemd: 4 GiB on the slice (no kills) and a 3 GiB memory.high, 3.5 GiB model: close
    ("cgroup-v2-systemd", int(3.5 * GIB), [("memory-limit", "warning", "medium")]),
    # systemd: memory.high 3 GiB below a 2.5 GiB model plus nothing: fits; 1 GiB: fine
    ("cgroup-v2-systemd", 1 * GIB, []),
    # v1: 2 GiB and 4 OOM kills, 4.7 GB model
    ("cgroup-v1", MODEL_SIZE, [("memory-limit", "error", "high")]),
    # no limit anywhere: nothing to say (an OOM from the server stays out-of-memory)
    ("hybrid", MODEL_SIZE, []),
    ("wsl", 100 * GIB, []),
])
def test_memory_limit_against_model_size(tree_name: str, size: int,
                                         expected: list[tuple[str, str, str]]) -> None:
    out = container.run(make_ctx(FS / tree_name, model=MODEL, results=[with_model(size)]))
    assert causes(out.findings) == expected
    assert out.facts["model"] == {"name": MODEL, "bytes": size,
                                  "human": out.facts["model"]["human"], "source": "models probe"}


def test_memory_limit_s24_message_evidence_and_fix() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2", model=MODEL, results=[with_model()]))
    [finding] = out.findings
    assert finding.message == (
        "The memory limit of this container is 2.0 GiB (/sys/fs/cgroup/memory.max), below the "
        "4.7 GB of llama3.1:8b; the kernel has OOM-killed 2 process(es) under it: the runner "
        "is killed while loading (signal: killed) or the load is refused for lack of memory.")
    assert finding.evidence == {
        "cgroup_version": "v2", "cgroup_of": "this process", "oom": {"oom": 3, "oom_kill": 2},
        "limit": {"bytes": 2 * GIB, "human": "2.0 GiB", "file": "/sys/fs/cgroup/memory.max"},
        "model": {"name": MODEL, "bytes": MODEL_SIZE, "human": "4.7 GB",
                  "source": "models probe"}}
    assert finding.fix[0].text.startswith("Raise the memory limit (/sys/fs/cgroup/memory.max) "
                                          "to at least 6 GiB")
    assert finding.fix[0].commands[0] == "docker update --memory=6g --memory-swap=6g CONTAINER"
    assert out.status is Status.FAIL


def test_memory_limit_fix_names_the_runtime() -> None:
    k8s = container.run(make_ctx(FS / "cgroup-v2", model=MODEL, results=[with_model()],
                                 env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}))
    assert k8s.findings[0].fix[0].commands == (
        "kubectl set resources deployment/DEPLOYMENT --limits=memory=6Gi",)
    systemd = container.run(make_ctx(FS / "cgroup-v2-systemd", model=MODEL,
                                     results=[with_model(5 * GIB)]))
    assert systemd.findings[0].fix[0].commands[0] == (
        "sudo systemctl edit ollama   # add: [Service]  MemoryMax=6G")


def test_oom_kills_without_a_model_are_a_warning() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2"))
    assert causes(out.findings) == [("memory-limit", "warning", "medium")]
    assert "give --model" in out.findings[0].message
    assert out.status is Status.WARN


def test_limits_here_do_not_bind_a_remote_server() -> None:
    out = container.run(make_ctx(FS / "cgroup-v2", "http://gpu-box.example:11434",
                                 model=MODEL, results=[with_model()]))
    assert out.findings == []
    assert out.facts["limits_note"].startswith("the target is not on this machine")


def test_model_not_installed_has_no_size() -> None:
    missing = ProbeResult("models", "Models", Status.FAIL, "not found",
                          facts={"models": [{"name": "other:latest", "size": 1}],
                                 "model": {"requested": MODEL, "installed_as": None}})
    out = container.run(make_ctx(FS / "cgroup-v2", model=MODEL, results=[missing]))
    assert out.facts["model"] == {"name": MODEL,
                                  "note": f"{MODEL} is not installed on the server (models probe)"}
    assert causes(out.findings) == [("memory-limit", "warning", "medium")]  # the kills alone


# ---------------------------------------------------------------------------------------------
# container-localhost


def dockerenv_only(tmp_path: Path) -> Path:
    """A container with no limits: only /.dockerenv and an unlimited cgroup v2 root."""
    root = tmp_path / "docker"
    (root / "proc/self").mkdir(parents=True)
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / ".dockerenv").write_text("")
    (root / "proc/self/cgroup").write_text("0::/\n")
    (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu memory pids\n")
    return root


def test_inferred_without_discover(tmp_path: Path) -> None:
    out = container.run(make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434",
                                 results=[refused()]))
    assert causes(out.findings) == [("container-localhost", "error", "medium")]
    finding = out.findings[0]
    assert finding.message == (
        "This client runs in a docker container, where 127.0.0.1 is the container itself and "
        "nothing listens on port 11434; if Ollama runs on the host, point the client at the "
        "host's address.")
    assert finding.fix[0].commands == (
        "ollama-doctor check --host http://127.0.0.1:11434 --discover",)
    assert "export OLLAMA_HOST=http://host.docker.internal:11434" in finding.fix[1].commands
    assert "docker run --add-host=host.docker.internal:host-gateway IMAGE" in \
        finding.fix[2].commands
    assert "docker run --network host IMAGE" in finding.fix[3].commands
    assert "discovery" not in out.facts  # nothing contacted without --discover
    assert out.facts["localhost"] == {
        "inside": "docker container", "loopback_target": True, "refused": True,
        "refused_note": "reachability: every connection refused (server-not-running)",
        "ollama_processes_here": 0}


def test_wsl_fix_speaks_of_windows(tmp_path: Path) -> None:
    out = container.run(make_ctx(FS / "wsl", "localhost", results=[refused()]))
    [finding] = out.findings
    assert finding.cause == "container-localhost"
    assert "runs in a WSL, where localhost is the WSL VM itself" in finding.message
    assert "wsl --shutdown" in finding.fix[2].commands


@pytest.mark.parametrize(("root", "host", "results", "pids"), [
    ("not-a-container", "127.0.0.1:11434", "refused", ()),  # no container signs
    ("docker", "http://gpu-box.example:11434", "refused", ()),  # not a loopback target
    ("docker", "127.0.0.1:11434", "reachable", ()),  # something answers
    ("docker", "127.0.0.1:11434", "none", ()),  # reachability did not run
    ("docker", "127.0.0.1:11434", "refused", "self"),  # an Ollama process runs here
])
def test_not_inferred(tmp_path: Path, root: str, host: str, results: str,
                      pids: Any) -> None:
    folder = dockerenv_only(tmp_path)
    if root == "not-a-container":
        (folder / ".dockerenv").unlink()
    given = {"refused": [refused()], "none": [],
             "reachable": [ProbeResult("reachability", "Server reachable", Status.PASS, "ok",
                                       facts={"connects": [{"ok": True, "error": None}]})]}
    ctx = make_ctx(folder, host, results=given[results],
                   server_pids=(os.getpid(),) if pids == "self" else ())
    out = container.run(ctx)
    assert [f.cause for f in out.findings] == []


@pytest.fixture
def http_server() -> Iterator[Callable[[bytes], CannedServer]]:
    """``http_server(body)`` → a loopback server answering every request with ``body``."""
    started: list[CannedServer] = []

    def start(body: bytes = b"Ollama is running") -> CannedServer:
        started.append(CannedServer(lambda request: Reply(200, body, "text/plain; charset=utf-8")))
        started[-1].start()
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_discover_finds_the_host_server(tmp_path: Path,
                                        http_server: Callable[[bytes], CannedServer]) -> None:
    other = http_server(b"<html>not ollama</html>")
    ollama = http_server(b"Ollama is running")
    good = f"http://127.0.0.1:{ollama.port}"
    closed = f"http://127.0.0.1:{closed_port()}"
    ctx = make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434", results=[refused()],
                   discover=True,
                   candidates=(closed, f"127.0.0.1:{other.port}", good))
    out = container.run(ctx)
    assert causes(out.findings) == [("container-localhost", "critical", "high")]
    finding = out.findings[0]
    assert finding.evidence["working_url"] == good
    assert finding.message == (
        f"Ollama answers at {good} but the client targets http://127.0.0.1:11434, which inside "
        f"this docker container is not the host: use {good}.")
    assert finding.fix[0].commands == (f"export OLLAMA_HOST={good}",)
    rows = out.facts["discovery"]["candidates"]
    assert [(r["url"], r["answers"]) for r in rows] == [
        (closed, False), (f"http://127.0.0.1:{other.port}", False), (good, True)]
    assert rows[0]["result"].startswith("refused")
    assert rows[1]["result"] == "HTTP 200: '<html>not ollama</html>'"
    assert out.summary.endswith(f"--discover tried 3 place(s): Ollama answers at {good}")


def test_discover_resolves_names_with_a_bound_and_sends_their_host(
        tmp_path: Path, http_server: Callable[[bytes], CannedServer]) -> None:
    ollama = http_server(b"Ollama is running")
    port = ollama.port

    def fake_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host == "host.docker.internal":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    ctx = make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434", results=[refused()],
                   discover=True, candidates=(f"host.docker.internal:{port}",
                                              f"nowhere.invalid:{port}"))
    ctx.getaddrinfo = fake_getaddrinfo
    out = container.run(ctx)
    rows = out.facts["discovery"]["candidates"]
    assert rows[0] == {"url": f"http://host.docker.internal:{port}", "from": "--candidate",
                       "answers": True, "address": "127.0.0.1", "result": "Ollama is running"}
    assert rows[1]["answers"] is False
    assert rows[1]["result"].startswith("does not resolve")
    assert [r.headers["host"] for r in ollama.requests] == [f"host.docker.internal:{port}"]
    assert out.findings[0].evidence["working_url"] == f"http://host.docker.internal:{port}"


def test_discover_with_no_answer_is_low_confidence(tmp_path: Path) -> None:
    ctx = make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434", results=[refused()],
                   discover=True, candidates=(f"127.0.0.1:{closed_port()}",))
    out = container.run(ctx)
    assert causes(out.findings) == [("container-localhost", "error", "low")]
    assert "OLLAMA_HOST=0.0.0.0:11434" in out.findings[0].fix[0].commands[0]
    assert out.summary.endswith("--discover tried 1 place(s): none answered")


def test_discover_is_concurrent_and_bounded(tmp_path: Path) -> None:
    """Four servers that accept and never answer cost one timeout, not four."""
    silent = []
    for _ in range(4):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel completes handshakes; nobody ever answers
        silent.append(sock)
    try:
        ctx = make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434", results=[refused()],
                       discover=True,
                       candidates=tuple(f"127.0.0.1:{s.getsockname()[1]}" for s in silent))
        ctx.options = Options(timeout=0.5, discover=True, candidates=ctx.options.candidates)
        started = time.monotonic()
        out = container.run(ctx)
        elapsed = time.monotonic() - started
    finally:
        for sock in silent:
            sock.close()
    assert elapsed < 1.5  # one after the other: 2 s
    rows = out.facts["discovery"]["candidates"]
    assert [r["result"].split(":")[0] for r in rows] == ["read-timeout"] * 4


def test_default_candidates_are_listed_not_contacted(tmp_path: Path) -> None:
    """Without --candidate: host.docker.internal, the gateway of /proc/net/route, docker0.
    Only the list is checked here; the real default gateway is never contacted by a test."""
    ctx = make_ctx(FS / "cgroup-v2", "127.0.0.1:11434")
    reader = container.Reader(ctx)
    detection = container.detect(ctx, reader)
    assert container._candidates(ctx, detection, reader) == [
        ("http://host.docker.internal:11434", "Docker's name for the host"),
        ("http://198.51.100.1:11434", "the default gateway (/proc/net/route)"),
        ("http://172.17.0.1:11434", "Docker's default bridge (docker0)"),
    ]


# ---------------------------------------------------------------------------------------------
# end to end through the CLI


def test_s01_in_a_container_server_not_running_then_container_localhost(
        cli: Callable[..., CliRun], tmp_path: Path) -> None:
    port = closed_port()
    run = cli("check", "--host", f"127.0.0.1:{port}", "--fs-root",
              str(dockerenv_only(tmp_path)), "--json")
    doc = run.json()
    ranked = [(d["cause"], d["severity"], d["confidence"]) for d in doc["diagnosis"]]
    assert ranked[:2] == [("server-not-running", "critical", "high"),
                          ("container-localhost", "error", "medium")], ranked
    second = doc["diagnosis"][1]
    assert second["fix"][0]["commands"] == [
        f"ollama-doctor check --host http://127.0.0.1:{port} --discover"]
    check = next(c for c in doc["checks"] if c["id"] == "container")
    assert "discovery" not in check["facts"]
    assert run.code == 1


def test_s03_discover_finds_the_host_server(cli: Callable[..., CliRun],
                                            emulator: Callable[..., Any],
                                            tmp_path: Path) -> None:
    emu = emulator()
    port = closed_port()
    run = cli("check", "--host", f"127.0.0.1:{port}", "--fs-root",
              str(dockerenv_only(tmp_path)), "--discover", "--candidate", emu.url, "--json")
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["confidence"]) == (
        "container-localhost", "critical", "high"), doc["diagnosis"]
    assert top["evidence"]["working_url"] == emu.url
    assert top["fix"][0]["commands"] == [f"export OLLAMA_HOST={emu.url}"]
    assert emu.url in top["explanation"]
    # server-not-running is explained by it, not ranked on its own
    assert "server-not-running" not in [d["cause"] for d in doc["diagnosis"]]
    assert [e["cause"] for e in top["evidence"]["explains"]] == ["server-not-running"]
    check = next(c for c in doc["checks"] if c["id"] == "container")
    assert check["summary"].endswith(f"--discover tried 1 place(s): Ollama answers at {emu.url}")
    assert [r["url"] for r in check["facts"]["discovery"]["candidates"]] == [emu.url]
    assert run.code == 1


def s24_check(doc: dict[str, Any]) -> None:
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["confidence"]) == (
        "memory-limit", "error", "high"), doc["diagnosis"]
    assert top["evidence"]["limit"] == {"bytes": 2 * GIB, "human": "2.0 GiB",
                                        "file": "/sys/fs/cgroup/memory.max"}
    assert top["evidence"]["model"]["bytes"] == 4_700_000_000
    assert top["evidence"]["oom"] == {"oom": 3, "oom_kill": 2}
    assert doc["summary"]["top_cause"] == "memory-limit"
    assert doc["summary"]["exit_code"] == 1


def test_s24_memory_limit_is_the_top_cause_of_check(cli: Callable[..., CliRun],
                                                    emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.1:8b;size=4.7G"], oom="killed")
    run = cli("check", "--host", emu.url, "-m", MODEL, "--fs-root", str(FS / "cgroup-v2"),
              "--json")
    doc = run.json()
    s24_check(doc)
    top = doc["diagnosis"][0]
    if any(c["id"] == "warmup" and c["status"] != "skip" for c in doc["checks"]):
        # the warm-up's 500 (out-of-memory) is explained by the limit, and gives the code
        assert top["code"] == 500
        assert "out-of-memory" in [e["cause"] for e in top["evidence"].get("explains", [])]
    else:
        assert top["code"] is None
    assert run.code == 1


def test_s24_probe_container(cli: Callable[..., CliRun], emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.1:8b;size=4.7G"], oom="killed")
    run = cli("probe", "container", "--host", emu.url, "-m", MODEL, "--fs-root",
              str(FS / "cgroup-v2"), "--json")
    s24_check(run.json())
    assert run.code == 1


def test_healthy_container_without_limits(cli: Callable[..., CliRun],
                                          emulator: Callable[..., Any]) -> None:
    emu = emulator(models=["llama3.1:8b;size=4.7G"])
    run = cli("probe", "container", "--host", emu.url, "-m", MODEL, "--fs-root",
              str(FS / "hybrid"), "--json")
    doc = run.json()
    assert [d["cause"] for d in doc["diagnosis"]
            if d["severity"] in ("warning", "error", "critical")] == []
    check = next(c for c in doc["checks"] if c["id"] == "container")
    assert check["status"] == "pass", check
    assert check["facts"]["model"]["bytes"] == 4_700_000_000
    assert run.code == 0


def test_this_real_machine(cli: Callable[..., CliRun]) -> None:
    """The issue's last "Done when": the real cgroup layout of the machine running the tests.
    No --fs-root, no --discover (the machine's own gateway is never contacted)."""
    run = cli("probe", "container", "--host", f"127.0.0.1:{closed_port()}", "--json")
    doc = run.json()
    check = next(c for c in doc["checks"] if c["id"] == "container")
    assert check["error"] is None
    assert check["status"] in ("pass", "warn", "fail")
    assert check["facts"]["cgroup"]["version"] in ("v1", "v2", "hybrid")
    assert check["summary"].split("; ")[1].startswith(
        f"cgroup {check['facts']['cgroup']['version']}: memory ")
    assert "discovery" not in check["facts"]
    # a failing check's line names its cause; -v adds the probe's own summary
    text = cli("probe", "container", "--host", f"127.0.0.1:{closed_port()}", "-v")
    assert f"cgroup {check['facts']['cgroup']['version']}" in text.stdout


def test_process_listing_denied_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from ollama_doctor import local

    def denied(ctx: Context) -> list[Any]:
        raise psutil.AccessDenied(1)

    monkeypatch.setattr(local, "find_servers", denied)
    out = container.run(make_ctx(dockerenv_only(tmp_path), "127.0.0.1:11434",
                                 results=[refused()]))
    assert out.facts["localhost"]["process_check"].startswith("AccessDenied")
    assert [f.cause for f in out.findings] == ["container-localhost"]


def test_namespace_path_outside_the_mount_is_not_followed(tmp_path: Path) -> None:
    root = tree(tmp_path, "cgroup-v2")
    (root / "proc/self/cgroup").write_text("0::/../../etc\n")
    out = container.run(make_ctx(root))
    assert out.facts["cgroup"]["dirs"]["memory"] == "/sys/fs/cgroup"
    assert out.facts["cgroup"]["fell_back_to_root"] == ["cpu", "io", "memory", "pids"]


def test_prepared_before_the_network_facts_the_same_outcome() -> None:
    """The runner's prepare step reads the container signs and cgroup files before models and
    reachability have answered; the judgement made from it is the one the probe makes alone."""
    from ollama_doctor.runner import prepare_key

    alone = container.run(make_ctx(FS / "cgroup-v2", model=MODEL, results=[with_model(),
                                                                              refused()]))
    early = make_ctx(FS / "cgroup-v2", model=MODEL)
    prepared = early.once(prepare_key("container"), lambda: container.prepare(early))
    assert prepared.limits.version == "v2" and early.results == {}
    for result in (with_model(), refused()):
        early.results[result.id] = result
    judged = container.run(early)
    assert (judged.status, judged.summary, judged.facts) == (alone.status, alone.summary,
                                                             alone.facts)
    assert [f.to_dict() for f in judged.findings] == [f.to_dict() for f in alone.findings]
    assert causes(judged.findings) == [("memory-limit", "error", "high"),
                                       ("container-localhost", "error", "medium")]
