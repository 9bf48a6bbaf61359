"""Bounded: a trickling or endless server cannot hold a run, Ctrl-C ends one at once, and a
failing output is one line, never a traceback.

The time limits here are generous (several times the documented bound of 1.3 × --timeout +
1.5 s) so that a busy machine passes; they catch hangs, not speed. The bound itself is
measured in ``benchmarks/bench_bounds.py``.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor import net
from tests.conftest import CliRun, clean_environ, closed_port
from tests.support._http import RequestHead, http_date, render_head
from tests.support.reverse_proxy import ReverseProxy
from tests.support.trickle import TrickleServer

HANG_LIMIT = 15.0  # seconds: a run at --timeout 2 that takes this long has hung


@pytest.fixture
def trickle() -> Iterator[Callable[..., TrickleServer]]:
    servers: list[TrickleServer] = []

    def start(mode: str, interval: float = 0.5) -> TrickleServer:
        server = TrickleServer(mode, interval).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("mode", ["status", "headers", "body"])
def test_one_exchange_is_cut_at_its_total_deadline(trickle: Callable[..., TrickleServer],
                                                   mode: str) -> None:
    server = trickle(mode)
    started = time.perf_counter()
    reply = net.request("GET", server.url + "/api/version", timeout=1.0)
    took = time.perf_counter() - started
    assert reply.error is not None
    assert (reply.error.kind, reply.error.exception) == ("read-timeout", "DeadlineExceeded")
    assert reply.error.message == ("no complete answer within 1 s (the exchange's total time "
                                   "limit)")
    # a trickled body keeps its status and what came
    assert reply.status == (200 if mode == "body" else None)
    assert took < 8, took


def test_a_body_after_slow_headers_gets_its_own_limit(
        trickle: Callable[..., TrickleServer]) -> None:
    """A model load may wait --load-timeout for its headers; its body only --timeout."""
    server = trickle("body")
    started = time.perf_counter()
    reply = net.request("GET", server.url + "/", timeout=60, body_timeout=1.0)
    assert reply.status == 200
    assert reply.error is not None and reply.error.kind == "read-timeout"
    assert reply.error.message == "the body did not complete within 1 s of the response headers"
    assert reply.body.startswith(b"{")  # what came is kept
    assert time.perf_counter() - started < 8


def test_a_healthy_exchange_is_not_cut(emulator: object) -> None:
    emu = emulator()  # type: ignore[operator]
    reply = net.request("GET", emu.url + "/api/version", timeout=5)
    assert reply.ok and reply.error is None and reply.json() == {"version": "0.33.0"}


def _check(url: str, *extra: str) -> tuple[float, CliRun]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_doctor", "check", "--host", url, "--timeout", "2",
         "--json", *extra], capture_output=True, text=True, env=clean_environ(),
        timeout=60)
    return time.perf_counter() - started, CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("mode", ["status", "headers", "body"])
def test_check_against_a_trickling_server_ends_and_says_unresponsive(
        trickle: Callable[..., TrickleServer], mode: str) -> None:
    took, run = _check(trickle(mode).url)
    assert took < HANG_LIMIT, took
    assert run.code == 1, run.stderr
    doc = run.json()
    assert doc["summary"]["top_cause"] == "server-unresponsive"
    reach = next(c for c in doc["checks"] if c["id"] == "reachability")
    assert reach["status"] == "fail"
    # on a busy machine a local probe may be cut at the run's budget: said so, never a crash
    assert not [c["id"] for c in doc["checks"]
                if c["status"] == "error" and not c["summary"].startswith("timed out after ")]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("model", [False, True])
def test_check_against_an_endless_stream_ends(trickle: Callable[..., TrickleServer],
                                              model: bool) -> None:
    took, run = _check(trickle("endless", 0.2).url, *(["-m", "llama3.2"] if model else []))
    assert took < HANG_LIMIT, took
    doc = run.json()
    assert run.code in (0, 1), run.stderr
    statuses = {c["id"]: c["status"] for c in doc["checks"]}
    assert statuses["reachability"] == "pass"
    if model:  # the endless answer to the load is cut; warm-up ends, whatever it concludes
        assert statuses["warmup"] in ("fail", "warn", "error")


def test_ctrl_c_ends_a_run_at_once_without_a_report(trickle: Callable[..., TrickleServer],
                                                    tmp_path: Path) -> None:
    server = trickle("status")
    out = tmp_path / "report.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "check", "--host", server.url,
         "--timeout", "30", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ())
    deadline = time.monotonic() + 20
    while not server.requests and time.monotonic() < deadline:  # the run is under way
        time.sleep(0.05)
    assert server.requests
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)  # catches a run that keeps going
    assert proc.returncode == 130
    assert stderr == "ollama-doctor: interrupted\n"
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []  # no report, no temporary file


def test_json_to_a_full_disk_is_one_line_exit_2() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "ollama_doctor", "check", "--host",
             f"127.0.0.1:{closed_port()}", "--timeout", "1", "--json"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=clean_environ(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("ollama-doctor: error: cannot write the output: No space left on "
                           "device\n")


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "check", "--host", f"127.0.0.1:{closed_port()}",
         "--timeout", "1", "--json", "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_environ())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the report is written, as with `| head`
    stderr = proc.stderr.read()
    assert proc.wait(timeout=30) in (0, 1)
    assert stderr == b""


def test_classify_maps_httpx_exceptions_by_class_most_specific_first() -> None:
    import httpx

    class CustomReadTimeout(httpx.ReadTimeout):  # a subclass: a name comparison misses it
        pass

    table: list[tuple[BaseException, str]] = [
        (httpx.ConnectTimeout("timed out"), "connect-timeout"),
        (CustomReadTimeout("timed out"), "read-timeout"),
        (httpx.PoolTimeout("pool"), "read-timeout"),
        (httpx.ProxyError("502 Bad Gateway"), "proxy"),
        (httpx.ProxyError("Unknown SOCKS version"), "proxy-unsupported"),
        (httpx.RemoteProtocolError("Server disconnected"), "protocol"),
        (httpx.LocalProtocolError("Illegal header value"), "protocol"),
        (httpx.ReadError("boom"), "reset"),
        (httpx.UnsupportedProtocol("Request URL is missing a scheme"), "invalid"),
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
    ]
    for exc, kind in table:
        assert net.classify(exc).kind == kind, exc


def test_connect_all_keeps_the_order_and_needs_no_pool_for_one_address() -> None:
    """reachability and dns connect to every address at once through one helper; the order of
    the answers is the order of the addresses (the facts list them so)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        assert net.tcp_connect_all([], port, 1.0) == []
        one = net.tcp_connect_all(["127.0.0.1"], port, 1.0)
        assert [(c.address, c.ok) for c in one] == [("127.0.0.1", True)]
        refused = closed_port()
        both = net.tcp_connect_all(["127.0.0.1", "127.0.0.1"], refused, 1.0)
        assert [(c.address, c.ok, c.error.kind if c.error else None) for c in both] == [
            ("127.0.0.1", False, "refused"), ("127.0.0.1", False, "refused")]


def test_a_tls_error_is_told_apart_while_another_thread_imports_ssl(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ssl is imported only where TLS is spoken, so a probe may classify an error while another
    probe's thread is half way through importing it: sys.modules then holds an ``ssl`` module
    without its attributes. The classifier reads the C module ``_ssl`` (listed only whole):
    with ``ssl`` half imported it still tells the TLS errors apart, where reading ``ssl``
    crashed a proxy probe under load (AttributeError: partially initialized module 'ssl')."""
    import ssl
    import types

    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    monkeypatch.setitem(sys.modules, "ssl", types.ModuleType("ssl"))  # half imported
    assert net.classify(verify).kind == "tls-verify"
    assert net.classify(plain).kind == "tls-plain"
    assert net.classify(ConnectionRefusedError(111, "Connection refused")).kind == "refused"


# --------------------------------------------------------------------------------------------
# A server with a very large model store


def tags_body(count: int) -> bytes:
    """Ollama's ``GET /api/tags`` answer for ``count`` models, compact as Go writes it
    (``api.ListResponse``, ``api/types.go``; docs/ollama-wire.md §1): ~380 bytes a model,
    100,000 → 38 MB."""
    rows = []
    for i in range(count):
        name = f"model-{i:06d}:latest"
        digest = hashlib.sha256(name.encode()).hexdigest()
        rows.append(
            f'{{"name":"{name}","model":"{name}","modified_at":"2026-01-01T00:00:00.'
            f'{i:09d}+01:00","size":{2019393189 + i},"digest":"{digest}","details":'
            '{"parent_model":"","format":"gguf","family":"llama","families":["llama"],'
            '"parameter_size":"3.2B","quantization_level":"Q4_K_M"},'
            '"capabilities":["completion","tools"]}')
    return ('{"models":[' + ",".join(rows) + "]}").encode()


def store_names(count: int) -> list[str]:
    """The emulator's models for a store of ``count``: the first three of ``tags_body``."""
    return [f"model-{i:06d}:latest;size={2019393189 + i}" for i in range(min(count, 3))]


class BigStore(ReverseProxy):
    """An emulator behind a front that answers ``GET /api/tags`` from prebuilt bytes (the
    emulator would build and encode a large list on every request) and passes every other call
    through. Counts the ``/api/tags`` requests it answers."""

    def __init__(self, upstream: str, body: bytes) -> None:
        super().__init__(upstream, server_header="")
        self._tags = (render_head("HTTP/1.1 200 OK", [
            ("Content-Type", "application/json; charset=utf-8"), ("Date", http_date()),
            ("Content-Length", str(len(body)))]) + body)
        self.tags_requests: list[str] = []  # each one's method (list.append is atomic)

    def _forward(self, conn: socket.socket, head: RequestHead, body: bytes) -> bool:
        if head.target.split("?")[0] == "/api/tags" and head.method in ("GET", "HEAD"):
            self.tags_requests.append(head.method)
            conn.sendall(self._tags if head.method == "GET" else
                         self._tags[: self._tags.index(b"\r\n\r\n") + 4])
            return True
        return super()._forward(conn, head, body)


# ru_maxrss of a child counts the pages of the process it was forked from (Linux records the
# old image's high-water mark at exec), so a child of this process, which holds a 38 MB answer
# twice, would show 150 MB before doing anything. A small wrapper starts the child instead and
# reports the child's own peak, and its wall time, on its stderr's last line.
_MEASURE = """\
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
sys.stderr.write(f"\\nmeasured {time.perf_counter() - started:.4f} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Measured:
    wall: float  # seconds, process start included
    peak_mb: float  # peak resident set size
    run: CliRun


def measured_check(url: str, *args: str, timeout: float = 120) -> Measured:
    """One ``check`` process against ``url``: its wall time, peak RSS and output."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "ollama_doctor", "check",
         "--host", url, *args], capture_output=True, text=True, env=clean_environ(),
        timeout=timeout)
    head, _, last = proc.stderr.rstrip("\n").rpartition("\n")
    _, wall, kib = last.split()
    return Measured(float(wall), int(kib) / 1024, CliRun(proc.returncode, proc.stdout, head))


@pytest.mark.slow
def test_a_store_of_100000_models_is_read_once_within_the_memory_bound(
        emulator: Callable[..., Any]) -> None:
    """A 38 MB /api/tags: fetched once for the models and auth probes, parsed within 150 MB.
    The wall time against a 3-model store (at most 2×) is measured in benchmarks/
    bench_bounds.py; a generous --timeout here keeps a busy machine from cutting the probe."""
    emu = emulator(models=store_names(3))
    with BigStore(emu.url, tags_body(100_000)) as store:
        got = measured_check(store.url, "--timeout", "20", "--json")
    assert got.wall < 90, got.wall  # a hang, not a speed
    assert got.run.code == 0, got.run.stderr
    models_check = next(c for c in got.run.json()["checks"] if c["id"] == "models")
    assert (models_check["status"], models_check["summary"]) == (
        "pass", f"100000 models on {store.url} — direct")
    assert models_check["facts"]["count"] == 100_000
    assert len(models_check["facts"]["models"]) == 200
    assert models_check["facts"]["models"][0] == {
        "name": "model-000000:latest", "size": 2019393189, "size_human": "2.0 GB",
        "family": "llama", "parameter_size": "3.2B", "quantization": "Q4_K_M",
        "capabilities": ["completion", "tools"]}
    assert store.tags_requests == ["GET"]
    assert got.peak_mb < 150, got.peak_mb


# --------------------------------------------------------------------------------------------
# Warm-up against an endless answer (one deadline per call, net.Cutoff)


def test_an_endless_answer_to_the_load_is_never_called_a_slow_load(
        trickle: Callable[..., TrickleServer]) -> None:
    """The load's headers came at once; a body that never ends is the server's (or, cut
    short by the run's deadline, nobody's) doing — not a load that outlasts --load-timeout."""
    took, run = _check(trickle("endless", 0.2).url, "-m", "llama3.2")
    assert took < HANG_LIMIT, took
    warm = next(c for c in run.json()["checks"] if c["id"] == "warmup")
    assert warm["status"] in ("fail", "warn", "error")
    assert "did not load within" not in warm["summary"]
    assert "slow-model-load" not in [f["cause"] for f in warm["findings"]]
