"""Pure parsers of cgroup, /proc and route files, on tables of cases and the fixture trees."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor import cgroups
from ollama_doctor.cgroups import (
    CgroupEntry,
    CpuQuota,
    ParseError,
    RLimit,
    cgroup_version,
    human_bytes,
    is_wsl_kernel,
    open_files_limit,
    parse_cfs,
    parse_counter,
    parse_cpu_max,
    parse_default_gateway,
    parse_io_max,
    parse_keyed,
    parse_limit,
    parse_meminfo,
    parse_proc_cgroup,
    parse_proc_limits,
    path_for,
    read_bounded,
    runtime_from_paths,
)

FS = Path(__file__).parent / "data" / "fs"
GIB = 1 << 30


def fixture_text(tree: str, path: str) -> str:
    return (FS / tree / path.lstrip("/")).read_text()


# ---------------------------------------------------------------------------------------------
# limits


@pytest.mark.parametrize(("text", "expected"), [
    ("2147483648\n", 2 * GIB),
    ("max\n", None),
    ("max", None),
    ("-1\n", None),  # what v1 accepts as "remove the limit"
    ("9223372036854771712\n", None),  # v1's "no limit" with 4 KiB pages
    ("9223372036854710272\n", None),  # … with 64 KiB pages (arm64, ppc64)
    ("4611686018427387903\n", 4611686018427387903),  # just below 2**62: a real number
    ("0\n", 0),
    ("  512  \n", 512),
])
def test_parse_limit(text: str, expected: int | None) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", [
    "", "\n", "2 GiB\n", "banana", "-5\n", "12\n13\n", "\x00\x00\x00", "1e9", "0x10",
    "\ufffd\ufffd garbage",
])
def test_parse_limit_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_limit(text, "memory.max")


def test_parse_limit_message_quotes_the_text_shortened() -> None:
    with pytest.raises(ParseError, match=r"memory.max: expected a number or 'max', got 'x{60}…'"):
        parse_limit("x" * 500, "memory.max")


@pytest.mark.parametrize(("text", "expected"), [
    ("max 100000\n", CpuQuota(None, 100000)),
    ("150000 100000\n", CpuQuota(150000, 100000)),
    ("50000 50000", CpuQuota(50000, 50000)),
    ("max\n", CpuQuota(None, 100000)),
])
def test_parse_cpu_max(text: str, expected: CpuQuota) -> None:
    assert parse_cpu_max(text) == expected


@pytest.mark.parametrize("text", ["banana 100000", "100 0", "100 x", "1 2 3", "", "max -1"])
def test_parse_cpu_max_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_cpu_max(text)


def test_cpu_quota_cpus_and_facts() -> None:
    assert CpuQuota(150000, 100000).cpus == 1.5
    assert CpuQuota(None, 100000).cpus is None
    assert CpuQuota(150000, 100000).to_dict() == {
        "quota_us": 150000, "period_us": 100000, "cpus": 1.5, "human": "1.5 CPUs"}
    assert CpuQuota(None, 100000).to_dict()["human"] == "unlimited"


@pytest.mark.parametrize(("quota", "period", "expected"), [
    ("-1\n", "100000\n", CpuQuota(None, 100000)),
    ("200000\n", "100000\n", CpuQuota(200000, 100000)),
    ("50000", "100000", CpuQuota(50000, 100000)),
])
def test_parse_cfs(quota: str, period: str, expected: CpuQuota) -> None:
    assert parse_cfs(quota, period) == expected


@pytest.mark.parametrize(("quota", "period"), [
    ("-2", "100000"), ("abc", "100000"), ("100", "0"), ("100", "-1"), ("", "100000")])
def test_parse_cfs_garbage(quota: str, period: str) -> None:
    with pytest.raises(ParseError):
        parse_cfs(quota, period)


def test_parse_counter() -> None:
    assert parse_counter("1873\n") == 1873
    with pytest.raises(ParseError):
        parse_counter("-1\n")


def test_parse_keyed_memory_events_and_oom_control() -> None:
    assert parse_keyed(fixture_text("cgroup-v2", "/sys/fs/cgroup/memory.events")) == {
        "low": 0, "high": 0, "max": 41, "oom": 3, "oom_kill": 2, "oom_group_kill": 0}
    assert parse_keyed(fixture_text("cgroup-v1", "/sys/fs/cgroup/memory/memory.oom_control")) == {
        "oom_kill_disable": 0, "under_oom": 0, "oom_kill": 4}
    assert parse_keyed("") == {}
    assert parse_keyed("oom 1\nnot a line\n") == {"oom": 1}
    with pytest.raises(ParseError):
        parse_keyed("???\n", "memory.events")


def test_parse_io_max() -> None:
    assert parse_io_max(fixture_text("cgroup-v2", "/sys/fs/cgroup/io.max")) == [
        {"device": "8:0", "rbps": 10485760, "wbps": None, "riops": None, "wiops": 120}]
    assert parse_io_max("") == []
    assert parse_io_max("253:0 rbps=max wbps=max riops=max wiops=max\n8:16 wbps=1048576\n") == [
        {"device": "253:0", "rbps": None, "wbps": None, "riops": None, "wiops": None},
        {"device": "8:16", "wbps": 1048576}]
    for bad in ("sda rbps=fast", "8:0 rbps=fast", "8:0 speed=1", "8:0 rbps"):
        with pytest.raises(ParseError):
            parse_io_max(bad)


# ---------------------------------------------------------------------------------------------
# membership, layout, runtime


def test_parse_proc_cgroup_v1_fixture() -> None:
    entries = parse_proc_cgroup(fixture_text("cgroup-v1", "/proc/self/cgroup"))
    docker = "/docker/4f1c3b2a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b"
    assert entries == [
        CgroupEntry(12, ("pids",), docker),
        CgroupEntry(11, ("memory",), docker),
        CgroupEntry(4, ("cpu", "cpuacct"), docker),
        CgroupEntry(1, ("name=systemd",), docker),
        CgroupEntry(0, (), "/system.slice/containerd.service"),
    ]
    assert path_for(entries, "memory") == docker
    assert path_for(entries, "cpuacct") == docker
    assert path_for(entries, None) == "/system.slice/containerd.service"
    assert path_for(entries, "blkio") is None


def test_parse_proc_cgroup_v2_and_paths_with_colons() -> None:
    assert parse_proc_cgroup("0::/\n") == [CgroupEntry(0, (), "/")]
    assert parse_proc_cgroup("0::/a:b/c\n") == [CgroupEntry(0, (), "/a:b/c")]


@pytest.mark.parametrize("text", ["", "this is not a cgroup file", "\x00\x00\x00", "x::/",
                                  "0::relative"])
def test_parse_proc_cgroup_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_proc_cgroup(text)


@pytest.mark.parametrize(("v2_root", "unified", "v1", "expected"), [
    (True, False, 0, "v2"),
    (False, True, 0, "v2"),  # only a unified tree mounted beside nothing else
    (False, True, 3, "hybrid"),
    (True, False, 2, "hybrid"),
    (False, False, 3, "v1"),
    (False, False, 0, None),
])
def test_cgroup_version(v2_root: bool, unified: bool, v1: int, expected: str | None) -> None:
    assert cgroup_version(v2_root, unified, v1) == expected


@pytest.mark.parametrize(("paths", "expected"), [
    (["/docker/4f1c3b"], "docker"),
    (["/system.slice/docker-4f1c3b.scope"], "docker"),
    (["/kubepods/burstable/pod1/abc"], "kubernetes"),
    (["/kubepods.slice/kubepods-burstable.slice/cri-containerd-ab.scope"], "kubernetes"),
    (["/machine.slice/libpod-4f1c.scope/container"], "podman"),
    (["/system.slice/cri-containerd-4f1c.scope"], "containerd"),
    (["/lxc.payload.web1"], "lxc"),
    (["/", "/init.scope"], None),
    (["/user.slice/user-1000.slice/session-3.scope"], None),
])
def test_runtime_from_paths(paths: list[str], expected: str | None) -> None:
    found = runtime_from_paths(paths)
    assert (found[0] if found else None) == expected


def test_is_wsl_kernel() -> None:
    assert is_wsl_kernel(fixture_text("wsl", "/proc/version"))
    assert is_wsl_kernel("Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)")  # WSL1
    assert not is_wsl_kernel(fixture_text("cgroup-v2", "/proc/version"))


# ---------------------------------------------------------------------------------------------
# /proc/<pid>/limits


LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max processes             63455                63455                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max nice priority         0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""  # noqa: W291 (the kernel pads with spaces)


def test_parse_proc_limits() -> None:
    limits = parse_proc_limits(LIMITS)
    assert limits["Max open files"] == RLimit(1024, 524288, "files")
    assert limits["Max processes"] == RLimit(63455, 63455, "processes")
    assert limits["Max cpu time"] == RLimit(None, None, "seconds")
    assert limits["Max nice priority"] == RLimit(0, 0, "")
    assert open_files_limit(LIMITS) == RLimit(1024, 524288, "files")


def test_parse_proc_limits_of_this_process_matches_getrlimit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = open_files_limit(Path("/proc/self/limits").read_text())
    inf = resource.RLIM_INFINITY
    expected = (None if soft == inf else soft, None if hard == inf else hard)
    assert (limit.soft, limit.hard) == expected


@pytest.mark.parametrize("text", ["", "garbage\n", "Max open files  lots  many  files\n"])
def test_parse_proc_limits_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        parse_proc_limits(text)


def test_open_files_limit_missing_line() -> None:
    with pytest.raises(ParseError, match="no 'Max open files'"):
        open_files_limit("Max processes  10  10  processes\n")


# ---------------------------------------------------------------------------------------------
# route, meminfo, sizes

ROUTE_HEAD = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def test_parse_default_gateway_fixture() -> None:
    assert parse_default_gateway(fixture_text("cgroup-v2", "/proc/net/route")) == "198.51.100.1"


@pytest.mark.parametrize(("rows", "expected"), [
    ([], None),
    (["eth0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"], None),  # no default
    (["eth0\t00000000\t016433C6\t0001\t0\t0\t0\t00000000\t0\t0\t0"], None),  # no RTF_GATEWAY
    (["eth0\t00000000\t016433C6\t0003\t0\t0\t100\t00000000\t0\t0\t0",
      "wg0\t00000000\t010200C0\t0003\t0\t0\t50\t00000000\t0\t0\t0"], "192.0.2.1"),  # metric
    (["eth0\tzz\t016433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0"], None),  # bad hex ignored
])
def test_parse_default_gateway(rows: list[str], expected: str | None) -> None:
    assert parse_default_gateway(ROUTE_HEAD + "\n".join(rows) + "\n") == expected


def test_parse_default_gateway_garbage() -> None:
    with pytest.raises(ParseError):
        parse_default_gateway("no route table here\n")


def test_parse_meminfo() -> None:
    info = parse_meminfo(fixture_text("cgroup-v2", "/proc/meminfo"))
    assert info["MemTotal"] == 16303536 * 1024
    assert info["MemAvailable"] == 12345678 * 1024
    assert info["SwapTotal"] == 2097148 * 1024
    with pytest.raises(ParseError):
        parse_meminfo("MemTotal: lots\n")


@pytest.mark.parametrize(("value", "expected"), [
    (None, "unlimited"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
    (2 * GIB, "2.0 GiB"), (4_700_000_000, "4.4 GiB"), (1 << 50, "1.0 PiB")])
def test_human_bytes(value: int | None, expected: str) -> None:
    assert human_bytes(value) == expected


# ---------------------------------------------------------------------------------------------
# bounded reads


def test_read_bounded_ok_and_missing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("max\n")
    assert read_bounded(tmp_path / "f").text == "max\n"
    gone = read_bounded(tmp_path / "nope", shown="/sys/fs/cgroup/memory.max")
    assert (gone.text, gone.missing, gone.error, gone.path) == (
        None, True, "missing", "/sys/fs/cgroup/memory.max")
    under_file = read_bounded(tmp_path / "f" / "child")
    assert under_file.missing


def test_read_bounded_directory_where_a_file_belongs(tmp_path: Path) -> None:
    (tmp_path / "memory.max").mkdir()
    read = read_bounded(tmp_path / "memory.max")
    assert (read.ok, read.missing, read.error) == (False, False, "is a directory, not a file")


def test_read_bounded_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "memory.max"
    os.mkfifo(fifo)
    started = time.monotonic()
    read = read_bounded(fifo)
    assert time.monotonic() - started < 1
    assert read.error == "not a regular file"


def test_read_bounded_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "memory.max"
    path.write_text("1\n")
    path.chmod(0)
    try:
        read = read_bounded(path)
    finally:
        path.chmod(0o644)
    if os.geteuid() == 0:
        assert read.text == "1\n"  # root reads through mode 000; the probes test it otherwise
    else:
        assert read.error == "permission denied"


def test_read_bounded_sparse_10gb_file_is_bounded(tmp_path: Path) -> None:
    huge = tmp_path / "memory.max"
    with huge.open("wb") as handle:
        handle.truncate(10 * GIB)  # sparse: costs no disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    read = read_bounded(huge)
    elapsed = time.monotonic() - started
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert read.text is None
    assert read.error == f"longer than {cgroups.MAX_FILE_BYTES // 1024} KiB: not a kernel file"
    assert elapsed < 0.5
    assert grown_kib < 16 * 1024  # far below the 10 GB a whole read would take


def test_read_bounded_permission_error_even_as_root(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Root reads through mode 000, so the refusal is simulated where the open happens."""
    path = tmp_path / "memory.max"
    path.write_text("1\n")
    real_open = os.open

    def refuse(name: Any, *args: Any, **kwargs: Any) -> int:
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(cgroups.os, "open", refuse)
    read = read_bounded(path, shown="/sys/fs/cgroup/memory.max")
    assert (read.text, read.error, read.missing) == (None, "permission denied", False)
