"""What runs on this machine: Ollama server processes and their listening sockets (psutil).

``--server-pid`` names the server explicitly (tests name the emulator this way); otherwise any
process whose name or command line is an ``ollama serve`` / ``ollama runner`` counts, as long
as it shares this process's network namespace (``/proc/<pid>/ns/net``): a server in another
container that shares the PID namespace has its own loopback and its own ports, so it is not
this machine's server (it is listed apart, see ``servers_elsewhere``). Access errors are
recorded, never raised: an unprivileged user cannot see root's sockets.

Also here: every listener on a port (whoever owns it), the addresses of this machine's
interfaces, a process's environment from ``/proc/<pid>/environ`` (through the context's
filesystem root, bounded), and how a server was started (systemd, launchd, Windows, Docker or a
shell), which decides where its settings must go.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import stat
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from ollama_doctor.context import Context

MAX_PROC_BYTES = 1024 * 1024  # /proc/<pid>/environ is at most a few hundred KiB


@dataclass
class ServerProcess:
    pid: int
    name: str
    user: str | None
    cmdline: list[str]
    listeners: list[tuple[str, int]] = field(default_factory=list)
    access_error: str | None = None
    ppid: int | None = None
    parent: str | None = None  # the parent process's name
    netns: str | None = None  # "net:[4026531840]"; None when unreadable
    same_netns: bool | None = None  # None: one of the two links could not be read

    def details(self) -> dict[str, Any]:
        """``to_dict`` plus the parent process (how it was started) and its network
        namespace."""
        out = self.to_dict()
        out["ppid"] = self.ppid
        out["parent"] = self.parent
        out["netns"] = self.netns
        out["same_netns"] = self.same_netns
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "name": self.name, "user": self.user,
                "cmdline": " ".join(self.cmdline)[:200],
                "listeners": [f"{_fmt(a)}:{p}" for a, p in self.listeners],
                "access_error": self.access_error}


def _fmt(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def is_ollama_server(name: str, cmdline: list[str]) -> bool:
    """An ``ollama serve`` process (the app's server too), not the CLI talking to one."""
    base = name.lower()
    args = [a.rsplit("/", 1)[-1].lower() for a in cmdline[:3]]
    if base in ("ollama", "ollama.exe") or (args and args[0] in ("ollama", "ollama.exe")):
        return len(cmdline) < 2 or cmdline[1] in ("serve", "start")
    return False


def find_servers(ctx: Context) -> list[ServerProcess]:
    """Ollama server processes of this machine (this network namespace), with the TCP ports
    each listens on. A pid named with ``--server-pid`` counts wherever it runs: the user said
    it is the server.

    Scanning every process is the slowest local look-up, and several probes need it: the
    answer is kept for the run in ``ctx.memo``.
    """
    return _scanned(ctx)[0]


def servers_elsewhere(ctx: Context) -> list[ServerProcess]:
    """``ollama serve`` processes visible here (a shared PID namespace) that run in another
    network namespace: another container's server, not this machine's."""
    return _scanned(ctx)[1]


def _scanned(ctx: Context) -> tuple[list[ServerProcess], list[ServerProcess]]:
    lock = ctx.memo.setdefault("servers.lock", threading.Lock())
    with lock:
        if "servers" not in ctx.memo:
            ctx.memo["servers"], ctx.memo["servers.elsewhere"] = _scan(ctx)
        servers: list[ServerProcess] = ctx.memo["servers"]
        elsewhere: list[ServerProcess] = ctx.memo.get("servers.elsewhere", [])
        return servers, elsewhere


def netns_of(ctx: Context, pid: int | str) -> str | None:
    """The network namespace of ``pid`` (``"self"``: this process), ``net:[INODE]``, read from
    ``/proc/<pid>/ns/net`` under the context's root; None when it cannot be read (another
    user's process without privileges, a fixture tree without it, not Linux)."""
    try:
        return os.readlink(ctx.path(f"/proc/{pid}/ns/net"))
    except (OSError, ValueError):
        return None


def _scan(ctx: Context) -> tuple[list[ServerProcess], list[ServerProcess]]:
    import psutil

    found: list[ServerProcess] = []
    elsewhere: list[ServerProcess] = []
    wanted = set(ctx.options.server_pids)
    own_netns = netns_of(ctx, "self")
    # Name and command line of every process; the rest only for a server (the user's name
    # costs a /proc read and a passwd look-up each: half the scan, for processes skipped).
    for proc in psutil.process_iter(["name", "cmdline"]):
        info = proc.info
        cmdline = list(info.get("cmdline") or [])
        name = str(info.get("name") or "")
        if wanted:
            if proc.pid not in wanted:
                continue
        elif not is_ollama_server(name, cmdline):
            continue
        with contextlib.suppress(psutil.Error, OSError):  # gone since: its name is enough
            info.update(proc.as_dict(["username", "ppid"]))
        server = ServerProcess(int(proc.pid), name, info.get("username"), cmdline)
        server.netns = netns_of(ctx, server.pid)
        if own_netns is not None and server.netns is not None:
            server.same_netns = server.netns == own_netns
        if server.same_netns is False and not wanted:
            # Its 127.0.0.1 is another stack's: psutil would show none of its sockets (it reads
            # this namespace's /proc/net/tcp), and it never answers this machine's loopback.
            elsewhere.append(server)
            continue
        ppid = info.get("ppid")
        if isinstance(ppid, int):
            server.ppid = ppid
            try:
                server.parent = psutil.Process(ppid).name()
            except (psutil.Error, PermissionError, OSError):
                server.parent = None
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    server.listeners.append((str(conn.laddr.ip), int(conn.laddr.port)))
        except (psutil.AccessDenied, psutil.NoSuchProcess, PermissionError) as exc:
            server.access_error = f"{type(exc).__name__}: cannot read sockets"
        found.append(server)
    return found, elsewhere


# ---------------------------------------------------------------------------------------------
# listeners and addresses


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket: where, and which process holds it (when visible)."""

    address: str
    port: int
    pid: int | None
    name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"address": f"{_fmt(self.address)}:{self.port}", "pid": self.pid,
                "process": self.name}


def listeners_on(port: int) -> tuple[list[Listener], str | None]:
    """Every listening TCP socket on ``port``, and an error when they cannot all be seen
    (macOS needs root for other users' sockets; Linux hides their pids)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError) as exc:
        return [], f"{type(exc).__name__}: cannot list this machine's sockets"
    except (psutil.Error, OSError) as exc:
        return [], f"{type(exc).__name__}: {exc}"
    out: list[Listener] = []
    names: dict[int, str | None] = {}
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        pid = conn.pid
        if pid is not None and pid not in names:
            try:
                names[pid] = psutil.Process(pid).name()
            except (psutil.Error, OSError):
                names[pid] = None
        out.append(Listener(str(conn.laddr.ip), int(conn.laddr.port), pid,
                            names.get(pid) if pid is not None else None))
    return sorted(set(out), key=lambda x: (x.address, x.pid or 0)), None


def local_addresses() -> tuple[set[str], str | None]:
    """The IP addresses of this machine's interfaces (psutil), normalised; and any error."""
    import socket

    import psutil

    try:
        table = psutil.net_if_addrs()
    except (psutil.Error, OSError) as exc:
        return set(), f"{type(exc).__name__}: {exc}"
    out: set[str] = set()
    for addrs in table.values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                ip = normalise_ip(addr.address)
                if ip:
                    out.add(ip)
    return out, None


def normalise_ip(text: str) -> str | None:
    """``fe80::1%eth0`` → ``fe80::1``; ``::ffff:10.0.0.1`` → ``10.0.0.1``; not an IP → None."""
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def is_loopback_ip(text: str) -> bool:
    ip = normalise_ip(text)
    return ip is not None and ipaddress.ip_address(ip).is_loopback


def is_unspecified_ip(text: str) -> bool:
    ip = normalise_ip(text)
    return ip is not None and ipaddress.ip_address(ip).is_unspecified


def covers(listen_address: str, target_address: str) -> bool:
    """Whether a socket bound to ``listen_address`` accepts connections to ``target_address``
    (on this machine). ``0.0.0.0`` takes every IPv4 address; ``::`` every IPv6 address and,
    on Linux's default ``bindv6only=0``, every IPv4 address too."""
    listen, target = normalise_ip(listen_address), normalise_ip(target_address)
    if listen is None or target is None:
        return False
    if listen == "0.0.0.0":
        return ":" not in target
    if listen == "::":
        return True
    return listen == target


# ---------------------------------------------------------------------------------------------
# /proc/<pid>/…


def read_proc(ctx: Context, pid: int, name: str,
              max_bytes: int = MAX_PROC_BYTES) -> tuple[bytes | None, str | None]:
    """``/proc/<pid>/<name>`` under the context's root: (bytes, None) or (None, why not).

    Opens without blocking, refuses what is not a regular file (``/proc`` files are regular
    with size 0), reads at most ``max_bytes`` (more is reported as an error, not truncated)."""
    shown = f"/proc/{pid}/{name}"
    try:
        fd = os.open(ctx.path(shown), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, f"{shown}: missing"
    except PermissionError:
        return None, f"{shown}: permission denied"
    except OSError as exc:
        return None, f"{shown}: {exc.strerror or type(exc).__name__}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"{shown}: not a regular file"
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, 64 * 1024)
            if not chunk:
                break
            data += chunk
    except PermissionError:
        return None, f"{shown}: permission denied"
    except OSError as exc:
        return None, f"{shown}: {exc.strerror or type(exc).__name__}"
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return None, f"{shown}: longer than {max_bytes} bytes"
    return data, None


def parse_environ(data: bytes) -> dict[str, str]:
    """``/proc/<pid>/environ``: ``NAME=value`` entries separated by NUL bytes. Entries without
    ``=`` are skipped; undecodable bytes become U+FFFD."""
    out: dict[str, str] = {}
    for entry in data.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if not sep or not name:
            continue
        out[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out


# ---------------------------------------------------------------------------------------------
# how the server was started


@dataclass(frozen=True)
class Launcher:
    """How a server was started: ``systemd``, ``docker``, ``launchd`` (the macOS app),
    ``windows`` (the tray app), ``shell`` (``ollama serve`` by hand), or ``unknown`` (a port
    held by a process that cannot be inspected); and what said so."""

    kind: str
    evidence: str
    unit: str | None = None  # the systemd unit

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "evidence": self.evidence, "unit": self.unit}


_CONTAINER_MARKERS = ("docker", "containerd", "libpod", "kubepods", "/lxc/", "crio")
_SERVICE = re.compile(r"/(?P<unit>[^/]+\.service)$")
# Processes that hold a published container port on the host: ``docker run -p
# 127.0.0.1:11434:11434`` makes docker-proxy listen on loopback only (rootlessport is podman's).
PORT_FORWARDERS = frozenset({"docker-proxy", "rootlessport", "rootlesskit"})


def launcher_from(cgroup_text: str | None, parent: str | None, unit_file: bool,
                  platform: str = sys.platform, *, name: str | None = None) -> Launcher:
    """Decide how a server was started from its ``/proc/<pid>/cgroup`` text, its parent's
    name, whether ``/etc/systemd/system/ollama.service`` exists, the platform, and the
    process's own name (a container runtime's port forwarder means a published port). Pure."""
    if name is not None and name.lower() in PORT_FORWARDERS:
        return Launcher("docker", f"process {name} forwards a published container port")
    paths = []
    for line in (cgroup_text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths.append(parts[2].strip())
    for path in paths:
        if any(marker in path for marker in _CONTAINER_MARKERS):
            return Launcher("docker", f"cgroup {path}")
    for path in paths:
        m = _SERVICE.search(path)
        if m and not m["unit"].startswith("user@"):
            return Launcher("systemd", f"cgroup {path}", m["unit"])
    parent_name = (parent or "").lower()
    if platform == "darwin" or parent_name == "launchd":
        return Launcher("launchd", f"parent {parent}" if parent else f"platform {platform}")
    if platform.startswith("win") or parent_name.endswith(".exe"):
        return Launcher("windows", f"parent {parent}" if parent else f"platform {platform}")
    if parent_name == "systemd" and not paths:  # with cgroups known, a scope is not a service
        return Launcher("systemd", f"parent {parent}", "ollama.service")
    if unit_file:
        return Launcher("systemd", "/etc/systemd/system/ollama.service exists", "ollama.service")
    return Launcher("shell", f"parent {parent}" if parent else "no service found")


def launcher_of(ctx: Context, server: ServerProcess) -> Launcher:
    """``launcher_from`` with the server's own files, read through the context."""
    return _launcher(ctx, server.pid, server.parent, server.name)


def launcher_of_pid(ctx: Context, pid: int | None, name: str | None) -> Launcher:
    """``launcher_of`` for any process (one that holds a port), its parent read with psutil;
    an unknown pid gives the generic answer."""
    if pid is None:
        if name is not None and name.lower() in PORT_FORWARDERS:
            return launcher_from(None, None, False, name=name)
        return Launcher("unknown", "the process holding the port cannot be inspected")
    import psutil

    parent: str | None = None
    try:
        parent_proc = psutil.Process(pid).parent()
        parent = parent_proc.name() if parent_proc is not None else None
    except (psutil.Error, OSError):
        parent = None
    return _launcher(ctx, pid, parent, name)


def _launcher(ctx: Context, pid: int, parent: str | None, name: str | None) -> Launcher:
    data, _ = read_proc(ctx, pid, "cgroup", 64 * 1024)
    cgroup = data.decode("utf-8", "replace") if data is not None else None
    try:
        unit_file = ctx.path("/etc/systemd/system/ollama.service").is_file()
    except OSError:
        unit_file = False
    return launcher_from(cgroup, parent, unit_file, name=name)
