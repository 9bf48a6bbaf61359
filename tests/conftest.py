"""Shared fixtures: a clean environment, the emulator on 127.0.0.1:0, and the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# pytest keeps the assertion-rewritten test modules in __pycache__ only when bytecode may be
# written; PYTHONDONTWRITEBYTECODE=1 (this machine, CI's) made every run, in every xdist
# worker, parse and rewrite the whole suite again: 8.3 s of CPU to collect, against 2.7 s
# with the cache. This process's own files may be cached; the package's are compiled by
# compileall at session start either way.
sys.dont_write_bytecode = False

# Variables from the developer's own shell that would change what the probes see, in lower
# case: a name is compared in lower case (HTTP_PROXY and http_proxy alike).
LEAKY_PREFIXES = ("OLLAMA_",)
LEAKY_NAMES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
               "ssl_cert_file", "ssl_cert_dir", "requests_ca_bundle", "kubernetes_service_host"}


def is_leaky(name: str) -> bool:
    return name.startswith(LEAKY_PREFIXES) or name.lower() in LEAKY_NAMES


def clean_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not is_leaky(k)}
    env["COLUMNS"] = "100"
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): two workers a core, at most 8. Most tests wait on
    sockets, child processes and timeouts rather than on the CPU."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the package's bytecode before any test starts a ``python -m ollama_doctor``.

    With ``PYTHONDONTWRITEBYTECODE=1`` (set on this machine and on CI's), an editable install
    has no ``.pyc`` files and never gets any: every child process would compile the whole
    package from source again, ~0.35 s per command line (measured: a healthy ``check``
    0.92 s without them, 0.55 s with). An installed wheel has them;
    ``compileall`` writes them whatever that variable says, and only for changed sources."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller did it
        return
    import compileall

    root = Path(__file__).resolve().parent.parent
    compileall.compile_dir(str(root / "ollama_doctor"), quiet=1)
    # and the test helpers children run (python -m tests.…); not tests/data's fixture files
    compileall.compile_dir(str(root / "tests"), quiet=1, rx=re.compile(r"[/\\]data[/\\]"))


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """In-process traffic may reach loopback only (child processes run in test namespaces)."""
    from tests.support.guard import loopback_only

    with loopback_only():
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if is_leaky(name):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def emulator() -> Iterator[Callable[..., Any]]:
    """``emulator(models=[...], **faults)`` → a started Emulator; all are stopped at the end."""
    from ollama_doctor.emulator import Emulator, EmulatorConfig, ModelSpec

    started: list[Any] = []

    def start(*, models: list[str] | None = None, log_file: str | None = None,
              time_scale: float = 1.0, **faults: str) -> Any:
        config = EmulatorConfig(
            models=[ModelSpec.parse(m) for m in models] if models is not None
            else [ModelSpec.parse("llama3.2:latest;size=2019393189")],
            faults={k.replace("_", "-"): v for k, v in faults.items()},
            log_file=log_file, time_scale=time_scale)
        emu = Emulator(config)
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            stdin: str | None = None, cwd: str | Path | None = None,
            process: bool = False) -> CliRun:
    """The real command line with a clean environment: in this process (``main(argv)``),
    or with ``process=True`` in a subprocess (``python -m ollama_doctor``).

    In-process is what most tests want: the same ``main``, environment, stdin and captured
    output as the subprocess, without ~1 s of interpreter and import start-up per call. Tests
    of what only a process shows use the subprocess: exit codes under signals, closed pipes
    and full disks, stdout purity byte for byte, import budgets, runs inside a namespace.
    ``timeout`` bounds the subprocess; in-process, pytest's own timeout catches a hang. A call
    from another thread, or while another in-process call runs, falls back to a subprocess
    (the standard streams and the environment are process-wide)."""
    if not process and threading.current_thread() is threading.main_thread() \
            and _IN_PROCESS.acquire(blocking=False):
        try:
            return _run_in_process(list(args), clean_environ(env), stdin, cwd)
        finally:
            _IN_PROCESS.release()
    return run_cli_process(*args, env=env, timeout=timeout, stdin=stdin, cwd=cwd)


def run_cli_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
                    stdin: str | None = None, cwd: str | Path | None = None) -> CliRun:
    """The real command line in a subprocess, with a clean environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_doctor", *args], capture_output=True, text=True,
        env=clean_environ(env), timeout=timeout, input=stdin, cwd=cwd)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


_IN_PROCESS = threading.Lock()
# What the command line may install and a test process must get back afterwards.
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE",
                                                    "SIGQUIT", "SIGUSR1", "SIGUSR2")
                 if hasattr(signal, name))


def _run_in_process(argv: list[str], env: dict[str, str], stdin: str | None,
                    cwd: str | Path | None) -> CliRun:
    """``ollama_doctor.cli.main(argv)`` as a subprocess would run it: ``env`` as the whole
    environment, ``stdin`` (else an empty stdin, as pytest gives children /dev/null) and
    stdout/stderr on real files that are not terminals (a ``watch --on-change`` hook writes
    to stderr's descriptor), with the encodings and error handlers of a child's streams in
    this locale; the output decoded as ``subprocess.run(text=True)`` does (universal
    newlines). Exits (``SystemExit``, and ``os._exit`` turned into one by
    ``_exit.IN_PROCESS``) give the code; an uncaught exception prints its traceback on stderr
    and gives 1, as the interpreter does. The environment, the working directory, the
    standard streams and signal handlers are put back afterwards."""
    from ollama_doctor import _exit
    from ollama_doctor.cli import main

    saved_env = dict(os.environ)
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_cwd = os.getcwd()
    saved_signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    saved_flag = _exit.IN_PROCESS
    with contextlib.ExitStack() as files:
        out_file, err_file, in_file = (
            files.enter_context(tempfile.TemporaryFile(buffering=0)) for _ in range(3))
        in_file.write((stdin or "").encode("utf-8", "surrogateescape"))
        in_file.seek(0)
        # a child's streams in this locale (C.UTF-8): surrogateescape, and stderr
        # backslashreplace and line-buffered; no newline translation on writing
        streams = (
            files.enter_context(open(in_file.fileno(), encoding="utf-8", newline="\n",
                                     errors="surrogateescape", closefd=False)),
            files.enter_context(open(out_file.fileno(), "w", encoding="utf-8", newline="\n",
                                     errors="surrogateescape", closefd=False)),
            files.enter_context(open(err_file.fileno(), "w", encoding="utf-8", newline="\n",
                                     errors="backslashreplace", buffering=1, closefd=False)))
        code = 0
        try:
            os.environ.clear()
            os.environ.update(env)
            if cwd is not None:
                os.chdir(cwd)
            sys.stdin, sys.stdout, sys.stderr = streams
            _exit.IN_PROCESS = True
            try:
                main(argv)
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except Exception:
                traceback.print_exc()
                code = 1
        finally:
            _exit.IN_PROCESS = saved_flag
            for stream in streams[1:]:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
            for sig, handler in saved_signals.items():
                if signal.getsignal(sig) is not handler and handler is not None:
                    signal.signal(sig, handler)
        return CliRun(code, _text(out_file), _text(err_file))


def _exit_code(code: object) -> int:
    """The status a process leaving with ``sys.exit(code)`` would have."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def _text(file: Any) -> str:
    """A captured stream as ``subprocess.run(text=True)`` reads a pipe: decoded, with
    ``\\r\\n`` and ``\\r`` as ``\\n``."""
    file.seek(0)
    data: bytes = file.read()
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


@pytest.fixture
def cli() -> Callable[..., CliRun]:
    """The command line, in-process (see ``run_cli``)."""
    return run_cli


@pytest.fixture
def cli_process() -> Callable[..., CliRun]:
    """The command line in a subprocess: for what only a real process shows."""
    return run_cli_process


def free_port() -> int:
    """A loopback port for a server the test starts on it afterwards (prometheus's
    ``--web.listen-address``, ``emulate --port``, a watch test that brings its server up later).

    The port is bound and released at once, so it races: until the test's own server binds it,
    the kernel may hand it to any other socket bound to port 0 (another test, another xdist
    worker). A server that can bind port 0 itself and report its port should do that instead.
    For a port that must refuse connections, use ``closed_port()``."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# The sockets behind closed_port(): held for the whole session, closed at interpreter exit.
_CLOSED_PORTS: list[Any] = []


def closed_port() -> int:
    """A loopback port that refuses connections for the rest of the test session.

    The port stays bound on 127.0.0.1 and, where this machine has an IPv6 loopback, on ``[::1]``
    too (the same number), and never listens: a connect gets a RST ("connection refused") and
    no other socket can bind it, so no server started later, by this test, another test or
    another xdist worker, can take the port over. The sockets are never released because a
    released port can be handed to the next socket bound to port 0, and then the "closed"
    target answers. Both families are held because a refusal on 127.0.0.1 makes the doctor try
    ``[::1]`` on the same port (``probes/dns.py`` ``_other_loopback_findings``), and back."""
    import atexit
    import errno
    import socket

    if not _CLOSED_PORTS:
        atexit.register(lambda: [sock.close() for sock in _CLOSED_PORTS])
    for _ in range(100):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        port: int = v4.getsockname()[1]
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:  # no IPv6 at all here: nothing can answer on [::1]
            _CLOSED_PORTS.append(v4)
            return port
        try:
            v6.bind(("::1", port))
        except OSError as exc:
            v6.close()
            if exc.errno == errno.EADDRINUSE:  # taken on ::1 only: try another number
                v4.close()
                continue
            _CLOSED_PORTS.append(v4)  # no IPv6 loopback here: nothing can answer on [::1]
            return port
        _CLOSED_PORTS.extend((v4, v6))
        return port
    raise RuntimeError("no loopback port is free on both 127.0.0.1 and [::1]")
