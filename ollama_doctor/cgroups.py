"""Pure parsers for the Linux files the host probes read, and the one bounded reader they share.

Parsers take the text of one file and return values; they raise ``ParseError`` (a
``ValueError``) on anything that is not what the kernel writes, with a message that quotes the
bad text (shortened). Covered:

- cgroup v2 control files: ``memory.max``/``memory.high``/``pids.max`` (a number or ``max``),
  ``cpu.max`` (``QUOTA PERIOD``), ``io.max``, flat-keyed files (``memory.events``);
- cgroup v1 files: ``memory.limit_in_bytes`` (the huge ``9223372036854771712`` means no
  limit), ``cpu.cfs_quota_us`` (``-1`` means no limit) with ``cpu.cfs_period_us``,
  ``memory.oom_control``;
- ``/proc/<pid>/cgroup`` (which cgroup a process is in, per hierarchy) and what the paths and
  the mounted layout say about the cgroup version and the container runtime;
- ``/proc/<pid>/limits`` (``Max open files`` and the other rlimits);
- ``/proc/net/route`` (the default gateway), ``/proc/meminfo``, ``/proc/version`` (WSL).

``read_bounded`` is the only function here that touches the filesystem: it opens without
blocking (a FIFO where a file is expected cannot hang it), refuses anything that is not a
regular file, and never reads more than ``max_bytes``, so a 10 GB file costs one small read.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE: 9223372036854771712 with 4 KiB
# pages, 9223372036854710272 with 64 KiB pages. Anything from 2**62 (4 EiB) up means unlimited.
UNLIMITED_V1 = 9223372036854771712
_UNLIMITED_FROM = 1 << 62

MAX_FILE_BYTES = 64 * 1024


class ParseError(ValueError):
    """Text that is not what the kernel writes into this file."""


def _quote(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


# ---------------------------------------------------------------------------------------------
# bounded reads


@dataclass(frozen=True)
class Read:
    """The text of a file, or why it could not be read (``missing`` is just absence)."""

    path: str
    text: str | None
    error: str | None = None
    missing: bool = False

    @property
    def ok(self) -> bool:
        return self.text is not None


def read_bounded(path: Path, max_bytes: int = MAX_FILE_BYTES, shown: str | None = None) -> Read:
    """Read at most ``max_bytes`` of a regular file. Never raises, never blocks on a FIFO.

    A file longer than ``max_bytes`` is an error (no file these probes read is that long), not a
    truncated success. ``shown`` is the path to name in messages (without the test root).
    """
    name = shown or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return Read(name, None, "missing", missing=True)
    except NotADirectoryError:
        return Read(name, None, "missing (a parent is not a directory)", missing=True)
    except IsADirectoryError:
        return Read(name, None, "is a directory, not a file")
    except PermissionError:
        return Read(name, None, "permission denied")
    except OSError as exc:
        return Read(name, None, exc.strerror or type(exc).__name__)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return Read(name, None, "is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            return Read(name, None, "not a regular file")
        data = os.read(fd, max_bytes + 1)
    except IsADirectoryError:
        return Read(name, None, "is a directory, not a file")
    except PermissionError:
        return Read(name, None, "permission denied")
    except OSError as exc:
        return Read(name, None, exc.strerror or type(exc).__name__)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return Read(name, None, f"longer than {max_bytes // 1024} KiB: not a kernel file")
    return Read(name, data.decode("utf-8", errors="replace"))


# ---------------------------------------------------------------------------------------------
# sizes


def human_bytes(value: int | None) -> str:
    """``2147483648`` → ``2.0 GiB``; ``None`` → ``unlimited``."""
    if value is None:
        return "unlimited"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"  # pragma: no cover


def size_fact(value: int | None) -> dict[str, Any]:
    return {"bytes": value, "human": human_bytes(value)}


# ---------------------------------------------------------------------------------------------
# cgroup control files


def _single_line(text: str, what: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ParseError(f"{what}: expected one line, got {_quote(text)}")
    return lines[0].strip()


def parse_limit(text: str, what: str = "limit") -> int | None:
    """``memory.max``, ``memory.high``, ``pids.max``, ``memory.limit_in_bytes`` → bytes (or a
    count); ``None`` for no limit (``max``, ``-1``, or v1's huge page-counter maximum)."""
    value = _single_line(text, what)
    if value == "max" or value == "-1":
        return None
    if not value.isdigit():
        raise ParseError(f"{what}: expected a number or 'max', got {_quote(value)}")
    number = int(value)
    return None if number >= _UNLIMITED_FROM else number


def parse_counter(text: str, what: str = "counter") -> int:
    """A file holding one non-negative number (``memory.failcnt``, ``memory.current``)."""
    value = _single_line(text, what)
    if not value.isdigit():
        raise ParseError(f"{what}: expected a number, got {_quote(value)}")
    return int(value)


@dataclass(frozen=True)
class CpuQuota:
    quota_us: int | None  # None: no quota
    period_us: int

    @property
    def cpus(self) -> float | None:
        return None if self.quota_us is None else round(self.quota_us / self.period_us, 3)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus
        return {"quota_us": self.quota_us, "period_us": self.period_us, "cpus": cpus,
                "human": "unlimited" if cpus is None else f"{cpus:g} CPUs"}


def parse_cpu_max(text: str) -> CpuQuota:
    """cgroup v2 ``cpu.max``: ``max 100000`` or ``150000 100000`` (quota and period, µs)."""
    fields = _single_line(text, "cpu.max").split()
    if not 1 <= len(fields) <= 2:
        raise ParseError(f"cpu.max: expected 'QUOTA PERIOD', got {_quote(text)}")
    period = 100000
    if len(fields) == 2:
        if not fields[1].isdigit() or int(fields[1]) == 0:
            raise ParseError(f"cpu.max: bad period {_quote(fields[1])}")
        period = int(fields[1])
    if fields[0] == "max":
        return CpuQuota(None, period)
    if not fields[0].isdigit():
        raise ParseError(f"cpu.max: bad quota {_quote(fields[0])}")
    return CpuQuota(int(fields[0]), period)


def parse_cfs(quota_text: str, period_text: str) -> CpuQuota:
    """cgroup v1 ``cpu.cfs_quota_us`` (``-1`` = none) and ``cpu.cfs_period_us``."""
    quota = _single_line(quota_text, "cpu.cfs_quota_us")
    period = _single_line(period_text, "cpu.cfs_period_us")
    if not period.isdigit() or int(period) == 0:
        raise ParseError(f"cpu.cfs_period_us: expected a positive number, got {_quote(period)}")
    if quota == "-1":
        return CpuQuota(None, int(period))
    if not quota.isdigit():
        raise ParseError(f"cpu.cfs_quota_us: expected a number or -1, got {_quote(quota)}")
    return CpuQuota(int(quota), int(period))


def parse_keyed(text: str, what: str = "file") -> dict[str, int]:
    """Flat-keyed files, ``NAME VALUE`` per line: ``memory.events``, ``memory.oom_control``,
    ``memory.stat``. Lines that do not fit are ignored; a file where none fits is garbage."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and re.fullmatch(r"[a-z_0-9.]+", parts[0]):
            out[parts[0]] = int(parts[1])
    if not out and text.strip():
        raise ParseError(f"{what}: expected 'name value' lines, got {_quote(text)}")
    return out


def parse_io_max(text: str) -> list[dict[str, Any]]:
    """cgroup v2 ``io.max``: ``MAJ:MIN rbps=N wbps=max riops=max wiops=N`` per device.
    Empty means no I/O limit. ``max`` values become ``None``."""
    devices: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if not re.fullmatch(r"\d+:\d+", parts[0]):
            raise ParseError(f"io.max: expected 'MAJ:MIN key=value…', got {_quote(line)}")
        entry: dict[str, Any] = {"device": parts[0]}
        for item in parts[1:]:
            key, sep, value = item.partition("=")
            if not sep or key not in ("rbps", "wbps", "riops", "wiops") or not (
                    value == "max" or value.isdigit()):
                raise ParseError(f"io.max: bad setting {_quote(item)}")
            entry[key] = None if value == "max" else int(value)
        devices.append(entry)
    return devices


# ---------------------------------------------------------------------------------------------
# /proc/<pid>/cgroup and the layout


@dataclass(frozen=True)
class CgroupEntry:
    hierarchy: int
    controllers: tuple[str, ...]  # () for the v2 line "0::/path"
    path: str


def parse_proc_cgroup(text: str) -> list[CgroupEntry]:
    """``/proc/<pid>/cgroup``: ``ID:CONTROLLERS:PATH`` per line (``0::/path`` is cgroup v2).
    ``name=systemd`` style named hierarchies keep their ``name=`` prefix."""
    entries: list[CgroupEntry] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            raise ParseError(f"cgroup membership: expected 'ID:CONTROLLERS:/PATH', got "
                             f"{_quote(line)}")
        controllers = tuple(c for c in parts[1].split(",") if c)
        entries.append(CgroupEntry(int(parts[0]), controllers, parts[2]))
    if not entries:
        raise ParseError("cgroup membership: empty")
    return entries


def path_for(entries: list[CgroupEntry], controller: str | None) -> str | None:
    """The cgroup path of a v1 ``controller``, or of the v2 hierarchy when ``None``."""
    for entry in entries:
        if controller is None and entry.hierarchy == 0 and not entry.controllers:
            return entry.path
        if controller is not None and controller in entry.controllers:
            return entry.path
    return None


def cgroup_version(v2_at_root: bool, v2_unified: bool, v1_controllers: int) -> str | None:
    """The mounted layout → ``v2`` (unified only), ``v1`` (legacy only), ``hybrid`` (v1
    controllers plus a v2 tree, usually at ``/sys/fs/cgroup/unified``), or ``None``."""
    if v1_controllers and (v2_at_root or v2_unified):
        return "hybrid"
    if v1_controllers:
        return "v1"
    if v2_at_root or v2_unified:
        return "v2"
    return None


# Substrings of cgroup paths that name a container runtime, most specific first.
RUNTIME_MARKERS: tuple[tuple[str, str], ...] = (
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("containerd", "containerd"),
    ("lxc.payload", "lxc"),
    ("/lxc/", "lxc"),
)


def runtime_from_paths(paths: list[str]) -> tuple[str, str] | None:
    """(runtime, the path that names it) from cgroup paths, or ``None``."""
    for marker, runtime in RUNTIME_MARKERS:
        for path in paths:
            if marker in path:
                return runtime, path
    return None


def is_wsl_kernel(version_text: str) -> bool:
    """``/proc/version`` of a WSL kernel names Microsoft (``microsoft-standard-WSL2``)."""
    return "microsoft" in version_text.lower()


# ---------------------------------------------------------------------------------------------
# /proc/<pid>/limits


@dataclass(frozen=True)
class RLimit:
    soft: int | None  # None: unlimited
    hard: int | None
    units: str

    def to_dict(self) -> dict[str, Any]:
        return {"soft": self.soft, "hard": self.hard, "units": self.units}


_LIMIT_LINE = re.compile(
    r"^(?P<name>Max [A-Za-z ]+?)\s{2,}(?P<soft>\S+)\s+(?P<hard>\S+)(?:\s+(?P<units>\S+))?\s*$")


def parse_proc_limits(text: str) -> dict[str, RLimit]:
    """``/proc/<pid>/limits`` → ``{"Max open files": RLimit(1024, 524288, "files"), …}``."""
    out: dict[str, RLimit] = {}
    for line in text.splitlines():
        match = _LIMIT_LINE.match(line)
        if not match:
            continue
        values: list[int | None] = []
        for raw in (match["soft"], match["hard"]):
            if raw == "unlimited":
                values.append(None)
            elif raw.isdigit():
                values.append(int(raw))
            else:
                break
        else:
            out[match["name"]] = RLimit(values[0], values[1], match["units"] or "")
    if not out:
        raise ParseError(f"limits: no 'Max …' lines in {_quote(text)}")
    return out


def open_files_limit(text: str) -> RLimit:
    """The ``Max open files`` line of ``/proc/<pid>/limits``."""
    limits = parse_proc_limits(text)
    if "Max open files" not in limits:
        raise ParseError("limits: no 'Max open files' line")
    return limits["Max open files"]


# ---------------------------------------------------------------------------------------------
# /proc/net/route, /proc/meminfo

_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def parse_default_gateway(text: str) -> str | None:
    """The IPv4 default gateway in ``/proc/net/route`` (lowest metric), or ``None``.

    Addresses there are hex in host byte order: ``010200C0`` on little-endian is 192.0.2.1.
    """
    best: tuple[int, str] | None = None
    lines = text.splitlines()
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gateway, flags = int(fields[1], 16), int(fields[2], 16), int(fields[3], 16)
            metric, mask = int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue
        if dest != 0 or mask != 0 or not flags & _RTF_UP or not flags & _RTF_GATEWAY:
            continue
        if not 0 < gateway <= 0xFFFFFFFF:
            continue
        address = socket.inet_ntoa(struct.pack("<I", gateway))
        if best is None or metric < best[0]:
            best = (metric, address)
    if best is None and lines and not lines[0].startswith("Iface"):
        raise ParseError(f"route table: no header in {_quote(text)}")
    return best[1] if best else None


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` → bytes: ``{"MemTotal": …, "MemAvailable": …, "SwapTotal": …}``."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or not fields[0].isdigit():
            continue
        scale = 1024 if len(fields) > 1 and fields[1] == "kB" else 1
        out[name.strip()] = int(fields[0]) * scale
    if "MemTotal" not in out:
        raise ParseError(f"meminfo: no MemTotal line in {_quote(text)}")
    return out
