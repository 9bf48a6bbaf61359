"""Throw-away network namespaces for tests that need root (``ip netns``).

Reproduces, inside a private network stack, the conditions of ``docs/failure-modes.md`` modes
8 and 18 and scenarios S02, S10, S11 that cannot be staged on the host's loopback alone:

- a firewall that *drops* SYNs (``drop_tcp_port``): a connect times out instead of being refused;
- an address of "this machine" that is not loopback (``add_address``, or ``add_veth`` for a pair of
  interfaces): a server bound to ``127.0.0.1`` refuses it, one bound to ``0.0.0.0`` answers;
- a private ``/etc/hosts`` and ``/etc/resolv.conf`` (``ip netns exec`` bind-mounts
  ``/etc/netns/<name>/*`` over ``/etc``): ``localhost`` → ``::1`` first, or a resolver that points
  at a DNS server the test runs inside the namespace.

The namespace has only its own interfaces, so nothing run inside can reach any other network; its
``resolv.conf`` always points at ``127.0.0.1`` *inside* the namespace unless the test writes
another, so even a stray lookup never goes to the host's nameserver.

Names are ``odt-<pid>-<n>``. Everything (processes started inside, the namespace, the
``/etc/netns/<name>`` folder) is removed on exit, also after a failure; namespaces left by a
killed test run (their pid is gone) are removed by ``require_netns``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

PREFIX = "odt"
NETNS_ETC = Path("/etc/netns")
RUN_NETNS = Path("/run/netns")
DEFAULT_RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
COMMAND_TIMEOUT = 10.0

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_checked: dict[str, str | None] = {}


def _skip_or_fail(reason: str) -> None:
    """Skip, except on CI (``CI=true``) where a missing capability must fail the run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _ip(*args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)


def _netns_problem() -> str | None:
    if os.geteuid() != 0:
        return "network-namespace tests need root"
    if shutil.which("ip") is None:
        return "network-namespace tests need iproute2 (`ip`)"
    cleanup_stale_namespaces()
    name = f"{PREFIX}-{os.getpid()}-probe"
    try:
        result = _ip("netns", "add", name)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns add` failed: {exc}"
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip()}"
    _ip("netns", "delete", name)
    return None


def require_netns() -> None:
    """Skip the calling test (fail it when ``CI=true``) unless namespaces can be created."""
    if "netns" not in _checked:
        _checked["netns"] = _netns_problem()
    problem = _checked["netns"]
    if problem:
        _skip_or_fail(problem)


def require_iptables() -> None:
    """As ``require_netns``, and also needs ``iptables``."""
    require_netns()
    if shutil.which("iptables") is None:
        _skip_or_fail("this test needs iptables (apt-get install -y iptables)")


def cleanup_stale_namespaces() -> list[str]:
    """Delete ``odt-<pid>-*`` namespaces whose creating process no longer exists."""
    removed: list[str] = []
    if not RUN_NETNS.is_dir():
        return removed
    for entry in RUN_NETNS.iterdir():
        parts = entry.name.split("-")
        if len(parts) < 3 or parts[0] != PREFIX or not parts[1].isdigit():
            continue
        if Path(f"/proc/{parts[1]}").exists():
            continue
        _ip("netns", "delete", entry.name)
        shutil.rmtree(NETNS_ETC / entry.name, ignore_errors=True)
        removed.append(entry.name)
    return removed


@dataclass
class NetnsServer:
    """A process started with ``Netns.start_server``: its first stdout line, and the process."""

    proc: subprocess.Popen[bytes]
    first_line: str
    _drain: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid


class Netns:
    """A network namespace with ``lo`` up; a context manager that always cleans up."""

    def __init__(self, *, hosts: str | None = None, resolv_conf: str | None = None) -> None:
        """``hosts``/``resolv_conf``: contents for the namespace's ``/etc/hosts`` and
        ``/etc/resolv.conf``; ``hosts=None`` keeps the host's file, ``resolv_conf=None`` writes
        ``nameserver 127.0.0.1`` (a loopback inside the namespace, never the host's nameserver).
        """
        with _counter_lock:
            n = next(_counter)
        self.name = f"{PREFIX}-{os.getpid()}-{n}"
        self.hosts = hosts
        self.resolv_conf = DEFAULT_RESOLV_CONF if resolv_conf is None else resolv_conf
        self._procs: list[subprocess.Popen[Any]] = []
        self._drains: list[threading.Thread] = []
        self._logs: list[IO[bytes]] = []
        self._veths = itertools.count(0)
        self._created = False

    @property
    def etc_dir(self) -> Path:
        return NETNS_ETC / self.name

    def __enter__(self) -> Netns:
        require_netns()
        try:
            self._check(_ip("netns", "add", self.name))
            self._created = True
            self.etc_dir.mkdir(parents=True, exist_ok=True)
            (self.etc_dir / "resolv.conf").write_text(self.resolv_conf)
            if self.hosts is not None:
                (self.etc_dir / "hosts").write_text(self.hosts)
            self.ip("link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- configuration ---------------------------------------------------------------------

    @staticmethod
    def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(result.args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``ip -n NAME ARGS…``; raises on failure."""
        return self._check(_ip("-n", self.name, *args))

    def add_address(self, address: str, dev: str = "lo") -> None:
        """Add an address (``10.77.0.2`` → ``/32``, ``fd00::2`` → ``/128`` unless given)."""
        if "/" not in address:
            address += "/128" if ":" in address else "/32"
        self.ip("addr", "add", address, "dev", dev)

    def add_veth(self, local_addr: str, peer_addr: str) -> tuple[str, str]:
        """A veth pair with both ends inside the namespace; returns the interface names.

        Give prefixes (``10.77.1.1/24``) for an on-link route between the two ends.
        """
        n = next(self._veths)
        local, peer = f"odt{n}a", f"odt{n}b"
        self.ip("link", "add", local, "type", "veth", "peer", "name", peer)
        for dev, address in ((local, local_addr), (peer, peer_addr)):
            self.add_address(address, dev)
            self.ip("link", "set", dev, "up")
        return local, peer

    def drop_tcp_port(self, port: int, *, ipv6: bool = True) -> None:
        """Drop (not reject) incoming TCP SYNs to ``port``: connects time out, as behind a
        firewall. Also for IPv6 when ``ip6tables`` exists."""
        require_iptables()
        rule = ["-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        self._check(self.run(["iptables", "-w", "5", *rule], timeout=COMMAND_TIMEOUT))
        if ipv6 and shutil.which("ip6tables") is not None:
            self._check(self.run(["ip6tables", "-w", "5", *rule], timeout=COMMAND_TIMEOUT))

    # -- processes -------------------------------------------------------------------------

    def command(self, argv: Sequence[str]) -> list[str]:
        """The argv that runs ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process inside; it is terminated (then killed) on exit if still running."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.command(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion inside (text output captured by default); no exit-code check."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result: subprocess.CompletedProcess[str] = subprocess.run(
            self.command(argv), timeout=timeout, **kwargs
        )
        return result

    def start_server(
        self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, **kwargs: Any
    ) -> NetnsServer:
        """Start a long-running process inside and wait (at most ``timeout``) for its first
        stdout line, e.g. the URL it serves. Later stdout is read and discarded so the process
        never blocks on a full pipe; stderr goes to a temporary file quoted on failure."""
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        proc: subprocess.Popen[bytes] = self.popen(
            argv, stdout=subprocess.PIPE, stderr=log, **kwargs
        )
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        line = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in line:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail_start(proc, log, f"no output line within {timeout} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    self._fail_start(proc, log, f"exited ({proc.wait(5)}) before printing a line")
                line += chunk
                if len(line) > 64 * 1024:
                    self._fail_start(proc, log, "first line longer than 64 KiB")
        os.set_blocking(proc.stdout.fileno(), True)
        drain = threading.Thread(
            target=_drain, args=(proc.stdout,), name=f"odt-netns-{self.name}-drain"
        )
        drain.start()
        self._drains.append(drain)
        first = line.split(b"\n", 1)[0].decode(errors="replace").strip()
        return NetnsServer(proc, first, drain)

    def _fail_start(self, proc: subprocess.Popen[bytes], log: IO[bytes], why: str) -> None:
        _terminate(proc)
        _close_streams(proc)
        log.seek(0)
        stderr = log.read(16 * 1024).decode(errors="replace")
        raise RuntimeError(f"{proc.args!r}: {why}; stderr:\n{stderr}")

    def tcp_connect(self, host: str, port: int, timeout: float = 0.5) -> str:
        """Try a TCP connect from inside: ``"connected"``, ``"refused"``, ``"timeout"`` or
        ``"error <errno> <text>"``."""
        return self.tcp_connect_timed(host, port, timeout)[0]

    def tcp_connect_timed(self, host: str, port: int, timeout: float = 0.5) -> tuple[str, float]:
        """As ``tcp_connect``, with the seconds the connect itself took (process start-up
        excluded)."""
        result = self.run([sys.executable, "-c", _CONNECT_CODE, host, str(port), str(timeout)])
        if result.returncode != 0:
            raise RuntimeError(f"connect probe failed: {result.stderr}")
        outcome, _, seconds = result.stdout.strip().rpartition(" ")
        return outcome, float(seconds)

    def listen_tcp(self, host: str, port: int = 0) -> tuple[NetnsServer, int]:
        """A TCP listener inside (accepts and closes); returns it and its port."""
        server = self.start_server([sys.executable, "-c", _LISTEN_CODE, host, str(port)])
        return server, int(server.first_line)

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop processes, delete the namespace and its ``/etc/netns`` folder. Idempotent."""
        errors: list[str] = []
        for proc in self._procs:
            _terminate(proc)
        for drain in self._drains:  # they end at EOF, once the processes are gone
            drain.join(5)
            if drain.is_alive():
                errors.append(f"{drain.name} did not finish (a child still holds its stdout?)")
        self._drains.clear()
        for proc in self._procs:
            _close_streams(proc)
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._created:
            result = _ip("netns", "delete", self.name)
            if result.returncode != 0:
                errors.append(f"ip netns delete {self.name}: {result.stderr.strip()}")
            self._created = False
        shutil.rmtree(self.etc_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only if empty: the folder did not exist before on most hosts
        if errors:
            raise RuntimeError("; ".join(errors))


def _terminate(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)


def _close_streams(proc: subprocess.Popen[Any]) -> None:
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


def _drain(stream: IO[bytes]) -> None:
    try:
        while stream.read(64 * 1024):
            pass
    except (OSError, ValueError):
        pass  # closed by _terminate


_CONNECT_CODE = """
import socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(timeout)
start = time.monotonic()
try:
    s.connect((host, port))
    outcome = "connected"
except ConnectionRefusedError:
    outcome = "refused"
except TimeoutError:
    outcome = "timeout"
except OSError as exc:
    outcome = f"error {exc.errno} {exc.strerror}"
finally:
    s.close()
print(outcome, f"{time.monotonic() - start:.3f}")
"""

_LISTEN_CODE = """
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    conn, _ = s.accept()
    conn.close()
"""
