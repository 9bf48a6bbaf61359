"""The emulator as a server: dual-stack ``--bind ::``, the Host check's own-address rule, an
empty model store from the command line, and the ``busy`` and ``cloud=disabled|upstream``
faults on Ollama's native routes. Real sockets on loopback only.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ollama_doctor.emulator import FAULTS, Emulator, EmulatorConfig, ModelSpec, parse_fault
from ollama_doctor.emulator.middleware import GO_NETS_PRIVATE, host_allowed, local_addresses

FAST = 0.01
BUSY = "server busy, please try again.  maximum pending requests exceeded"
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


MODELS = ("llama3.2", "tiny:1b", "kimi:cloud")


@pytest.fixture
def make(emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    """The shared ``emulator`` fixture (tests/conftest.py) with this file's models and time
    scale. The bind tests start theirs in a ``with`` block (the fixture binds loopback only)."""

    def factory(models: tuple[str, ...] = MODELS, log_file: Path | None = None,
                **faults: str) -> Emulator:
        return emulator(models=list(models), time_scale=FAST,
                        log_file=None if log_file is None else str(log_file), **faults)

    return factory


def post(emu: Emulator, path: str, body: Any) -> httpx.Response:
    return httpx.post(emu.url + path, json=body, trust_env=False, timeout=10)


def get_status(family: socket.AddressFamily, addr: str, port: int, host: str = "localhost") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((addr, port))
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b" ", 2)[1])


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# ---- --bind :: is dual-stack -------------------------------------------------------------------


@pytest.mark.skipif(not _ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")
def test_bind_unspecified_v6_is_dual_stack() -> None:
    with _bound("::") as emu:
        assert emu.url == f"http://[::1]:{emu.port}"
        assert get_status(socket.AF_INET6, "::1", emu.port) == 200
        assert get_status(socket.AF_INET, "127.0.0.1", emu.port) == 200  # Go's [::]: IPv4 too
        # Not bound to loopback: the Host check is off, as for Ollama on [::].
        assert get_status(socket.AF_INET, "127.0.0.1", emu.port,
                          host="ollama.example.com") == 200


@pytest.mark.skipif(not _ipv6_loopback(), reason="this host has no IPv6 loopback (::1)")
def test_bind_v6_loopback_stays_v6_only() -> None:
    with _bound("::1") as emu:
        assert get_status(socket.AF_INET6, "::1", emu.port) == 200
        with pytest.raises(OSError):
            get_status(socket.AF_INET, "127.0.0.1", emu.port)


def _bound(bind: str) -> Emulator:
    """An emulator on ``bind`` (the shared fixture binds loopback only), for a ``with``."""
    return Emulator(EmulatorConfig(time_scale=FAST, bind=bind,
                                   models=[ModelSpec.parse(m) for m in MODELS]))


# ---- the Host check allows this machine's own addresses ---------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("203.0.113.7", None),  # one of "our" interface addresses: isLocalIP
        ("203.0.113.7:11434", None),
        ("[2001:db8::7]:11434", None),
        ("203.0.113.8", False),  # a public address that is not ours
        ("8.8.8.8", False),
        ("10.0.0.1", None),  # private
        ("box", True),  # os.Hostname()
        ("BOX:11434", True),
        ("ollama.example.com", False),
    ],
)
def test_host_allowed_table(host: str, expected: bool | None) -> None:
    ours = frozenset({"203.0.113.7", "2001:db8::7"})
    assert host_allowed(host, "box", lambda: ours) is expected


def _outside_go_allowed_nets(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    private = any(ip in net for net in GO_NETS_PRIVATE if net.version == ip.version)
    return not (ip.is_loopback or ip.is_unspecified or private)


def test_host_check_allows_own_interface_address(make: Callable[..., Emulator]) -> None:
    """A Host naming one of this machine's addresses passes, as ``isLocalIP`` lets it."""
    own = sorted(a for a in local_addresses() if _outside_go_allowed_nets(a))
    if not own:
        pytest.skip("no interface address outside loopback/private ranges on this host")
    emu = make()
    address = own[0]
    host = f"[{address}]:{emu.port}" if ":" in address else f"{address}:{emu.port}"
    assert get_status(socket.AF_INET, "127.0.0.1", emu.port, host=host) == 200
    assert get_status(socket.AF_INET, "127.0.0.1", emu.port, host="198.51.100.99") == 403


# ---- an empty model store from the command line ------------------------------------------------


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_no_models() -> None:
    proc = _start_cli("--no-models")
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
        with httpx.Client(base_url=url, trust_env=False, timeout=5) as c:
            assert c.get("/api/tags").json() == {"models": []}
            assert c.get("/v1/models").json() == {"object": "list", "data": None}
            r = c.post("/api/generate", json={"model": "llama3.2"})
            assert (r.status_code, r.json()) == (404, {"error": "model 'llama3.2' not found"})
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_no_models_with_model_is_a_usage_error() -> None:
    proc = _start_cli("--no-models", "--model", "llama3.2")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    assert err == "ollama-doctor: error: --no-models and --model exclude each other\n"


def test_cli_lists_the_new_faults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ollama_doctor", "emulate", "--list-faults"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert re.search(r"^busy +every request that needs a model load answers 503", out, re.M)
    assert re.search(r"^cloud=signin\|quota\|disabled\|upstream +", out, re.M)
    assert parse_fault("cloud=disabled") == ("cloud", "disabled")
    assert parse_fault("busy") == ("busy", "")
    with pytest.raises(ValueError) as info:
        parse_fault("cloud=off")
    assert str(info.value) == (
        "bad value 'off' for fault cloud: expected cloud=signin|quota|disabled|upstream"
    )
    with pytest.raises(ValueError) as info:
        parse_fault("busy=1")
    assert str(info.value) == "bad value '1' for fault busy: takes no value"
    assert {"busy", "cloud"} <= {f.name for f in FAULTS}


# ---- busy -------------------------------------------------------------------------------------


def test_busy_fault_native(make: Callable[..., Emulator], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    emu = make(log_file=log, busy="")
    for path, body in (
        ("/api/chat", CHAT),
        ("/api/generate", {"model": "llama3.2", "prompt": "hi"}),  # stream or not: before any byte
        ("/api/generate", {"model": "llama3.2"}),  # a warm-up needs scheduling too
        ("/api/embed", {"model": "llama3.2", "input": "x"}),
    ):
        r = post(emu, path, body)
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.content == json.dumps({"error": BUSY}, separators=(",", ":")).encode()
    assert emu.loaded == {}
    assert post(emu, "/api/show", {"model": "llama3.2"}).status_code == 200  # no scheduling
    assert re.search(r'\| 503 \| .*POST +"/api/chat"', log.read_text())
    emu.clear_fault("busy")
    assert post(emu, "/api/chat", CHAT).status_code == 200


# ---- cloud=disabled|upstream ------------------------------------------------------------------


def test_cloud_disabled(make: Callable[..., Emulator], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    emu = make(log_file=log, cloud="disabled")
    inference = {"error": "ollama cloud is disabled: remote model is unavailable"}
    details = {"error": "ollama cloud is disabled: remote model details are unavailable"}
    cloud_chat = {**CHAT, "model": "kimi:cloud"}
    for path, body, expected in (
        ("/api/chat", cloud_chat, inference),
        ("/api/generate", {"model": "kimi:cloud", "prompt": "x"}, inference),
        ("/api/embed", {"model": "kimi:cloud", "input": "x"}, inference),
        ("/api/show", {"model": "kimi:cloud"}, details),
    ):
        r = post(emu, path, body)
        assert (r.status_code, r.json()) == (403, expected), path
    r = httpx.get(emu.url + "/v1/models/kimi:cloud", trust_env=False, timeout=5)
    assert (r.status_code, r.json()) == (403, details)
    assert post(emu, "/api/chat", CHAT).status_code == 200  # local models are untouched
    status = httpx.get(emu.url + "/api/status", trust_env=False, timeout=5).json()
    assert status == {"cloud": {"disabled": True, "source": "env"}}
    text = log.read_text()
    assert 'msg="Ollama cloud disabled: true"' in text
    assert "OLLAMA_NO_CLOUD:true" in text


def test_cloud_upstream(make: Callable[..., Emulator]) -> None:
    emu = make(cloud="upstream")
    r = post(emu, "/api/chat", {**CHAT, "model": "kimi:cloud"})
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert re.fullmatch(
        r'Post "https://ollama\.com:443/api/chat\?ts=\d+": dial tcp: lookup ollama\.com: '
        r"no such host",
        r.json()["error"],
    )
    assert b'\\"https://' in r.content  # Go escapes the quotes of *url.Error
    r = httpx.get(emu.url + "/v1/models/kimi:cloud", trust_env=False, timeout=5)
    assert r.status_code == 502
    assert r.json()["error"].startswith('Get "https://ollama.com:443/v1/models/kimi:cloud?ts=')
    status = httpx.get(emu.url + "/api/status", trust_env=False, timeout=5).json()
    assert status == {"cloud": {"disabled": False, "source": "none"}}
