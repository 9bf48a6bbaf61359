"""Shared fixtures: a clean environment, the emulator on 127.0.0.1:0, and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Variables from the developer's own shell that would change what the probes see.
LEAKY_PREFIXES = ("OLLAMA_",)
LEAKY_NAMES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
               "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "KUBERNETES_SERVICE_HOST"}


def clean_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(LEAKY_PREFIXES) and k.lower() not in LEAKY_NAMES}
    env["COLUMNS"] = "100"
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    """In-process traffic may reach loopback only (child processes run in test namespaces)."""
    from tests.support.guard import loopback_only

    with loopback_only():
        yield


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(LEAKY_PREFIXES) or name.lower() in LEAKY_NAMES:
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
            stdin: str | None = None, cwd: str | Path | None = None) -> CliRun:
    """The real command line in a subprocess, with a clean environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "ollama_doctor", *args], capture_output=True, text=True,
        env=clean_environ(env), timeout=timeout, input=stdin, cwd=cwd)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli() -> Callable[..., CliRun]:
    return run_cli


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
