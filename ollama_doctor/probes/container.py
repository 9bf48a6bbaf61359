"""``container``: is the client in a container or WSL, what limits bind it, and is ``localhost``
the wrong machine?

Checks:

1. **Detection** (no network): ``/.dockerenv``, ``/run/.containerenv``, container runtimes
   named in ``/proc/1/cgroup`` and ``/proc/self/cgroup`` paths (docker, kubepods, containerd,
   libpod, lxc), ``KUBERNETES_SERVICE_HOST`` and ``container`` in the environment,
   ``/proc/version`` naming Microsoft (WSL).
2. **cgroup limits**: the layout under ``/sys/fs/cgroup`` (``v2``, ``v1`` or ``hybrid``), the
   cgroup of the local Ollama server when one is found (``/proc/<pid>/cgroup``), else of this
   process (``/proc/self/cgroup``), falling back to the hierarchy's root when that path is not
   visible (a container's own cgroup namespace). Limits are the tightest from that cgroup up to
   the root: v2 ``memory.max``, ``memory.high``, ``cpu.max``, ``pids.max``, ``io.max`` and the
   ``memory.events`` ``oom``/``oom_kill`` counts; v1 ``memory.limit_in_bytes``,
   ``memory.max_usage_in_bytes``, ``memory.failcnt``, ``memory.oom_control`` ``oom_kill``,
   ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, ``pids.max``. In a hybrid layout each controller
   is read where it is mounted.
3. **memory-limit**: the memory limit against ``--model``'s size (from the ``models`` probe,
   else ``GET /api/tags``), only when the server runs here (a loopback target or a local
   Ollama process): error below the size (high confidence), warning within max(1 GiB, 20 %)
   of it (error when OOM kills are recorded), warning for OOM kills under a limit with no model
   to compare. ``memory.high`` below the size is a warning (the kernel throttles). A limit never
   found leaves any server-reported OOM as ``out-of-memory`` (other probes).
4. **container-localhost**: in a container or WSL, a loopback target refused (the
   ``reachability`` probe's facts) and no Ollama process here. With ``--discover`` the places
   the host's server usually is (``host.docker.internal``, the default gateway from
   ``/proc/net/route``, ``172.17.0.1``; ``--candidate`` replaces them) get one ``GET /`` each,
   concurrently, bounded by ``--timeout``: one answering ``Ollama is running`` proves it
   (critical, high, naming that URL). Without ``--discover`` it is inferred (error, medium:
   ranks right after ``server-not-running``) and the fix suggests ``--discover``.

Detection, the process scan and the cgroup reads are the ``prepare`` step, which the runner
runs beside the network probes; the judgement (3 and 4) waits for ``models`` and
``reachability``.

Every read is bounded (64 KiB) and every failure (missing, unreadable, a directory where a
file belongs, garbage, a huge file) is recorded in ``unreadable`` and turns the status into
``warn``, never a crash.

Facts: ``container`` (in_container, wsl, runtime, signals), ``cgroup`` (version, of, path,
dirs), ``limits`` (memory_max, memory_high, cpu, pids_max, io_max, memory_peak: bytes and human,
with the file each came from), ``oom`` (oom, oom_kill, failcnt), ``model``, ``localhost``
(the inference's inputs), ``discovery`` (each candidate and its answer), ``unreadable``.

Cause ids: ``container-localhost``, ``memory-limit``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ollama_doctor import net
from ollama_doctor import remedies as R
from ollama_doctor.cgroups import (
    CgroupEntry,
    CpuQuota,
    ParseError,
    cgroup_version,
    human_bytes,
    is_wsl_kernel,
    parse_cfs,
    parse_counter,
    parse_cpu_max,
    parse_default_gateway,
    parse_io_max,
    parse_keyed,
    parse_limit,
    parse_proc_cgroup,
    path_for,
    read_bounded,
    runtime_from_paths,
    size_fact,
)
from ollama_doctor.context import Context
from ollama_doctor.facts import ReachabilityFacts
from ollama_doctor.probes.resources import ModelNeed, model_need, server_is_local
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status
from ollama_doctor.target import TargetError, ip_or_none, parse_target

GIB = 1 << 30
CLOSE_MIN = 1 * GIB
CLOSE_FRACTION = 0.20
DOCKER0 = "172.17.0.1"
OLLAMA_BODY = "Ollama is running"
MAX_CANDIDATES = 8
CGROUP = "/sys/fs/cgroup"
V1_DIRS = {"memory": ("memory",), "cpu": ("cpu", "cpu,cpuacct", "cpuacct,cpu"),
           "pids": ("pids",)}


# ---------------------------------------------------------------------------------------------
# reading, with every failure kept as data


class Reader:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.problems: list[dict[str, str]] = []

    def shown(self, path: Path) -> str:
        try:
            rel = path.relative_to(self.ctx.fs_root)
        except ValueError:
            return str(path)
        return "/" + str(rel).replace("\\", "/").lstrip("/")

    def note(self, file: str, reason: str) -> None:
        problem = {"file": file, "reason": reason}
        if problem not in self.problems:
            self.problems.append(problem)

    def text(self, path: Path, *, missing_ok: bool = True) -> str | None:
        read = read_bounded(path, shown=self.shown(path))
        if read.ok:
            return read.text
        if not (read.missing and missing_ok):
            self.note(read.path, read.error or "unreadable")
        return None

    def parsed(self, path: Path, parse: Any) -> Any:
        text = self.text(path)
        if text is None:
            return None
        try:
            return parse(text)
        except ParseError as exc:
            self.note(self.shown(path), str(exc))
            return None

    def exists(self, path: Path) -> bool:
        try:
            return path.exists()
        except OSError:
            return False

    def is_dir(self, path: Path) -> bool:
        try:
            return path.is_dir()
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# detection


@dataclass
class Detection:
    in_container: bool = False
    wsl: bool = False
    runtime: str | None = None
    signals: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        if self.wsl and not self.in_container:
            return "WSL"
        return f"{self.runtime} container" if self.runtime else "container"

    def to_dict(self) -> dict[str, Any]:
        return {"in_container": self.in_container, "wsl": self.wsl, "runtime": self.runtime,
                "signals": self.signals}


def detect(ctx: Context, reader: Reader) -> Detection:
    found = Detection()
    runtimes: list[str] = []
    if reader.exists(ctx.path("/.dockerenv")):
        found.signals.append("/.dockerenv exists")
        runtimes.append("docker")
    if reader.exists(ctx.path("/run/.containerenv")):
        found.signals.append("/run/.containerenv exists")
        runtimes.append("podman")
    for pid in ("1", "self"):
        entries = reader.parsed(ctx.path(f"/proc/{pid}/cgroup"), parse_proc_cgroup)
        if entries:
            named = runtime_from_paths([e.path for e in entries])
            if named:
                found.signals.append(f"/proc/{pid}/cgroup names {named[0]}: {named[1][:120]}")
                runtimes.insert(0, named[0])
    if ctx.env.get("KUBERNETES_SERVICE_HOST"):
        found.signals.append("KUBERNETES_SERVICE_HOST is set")
        runtimes.insert(0, "kubernetes")
    marker = ctx.env.get("container", "").strip()
    if marker:
        found.signals.append(f"container={marker[:40]} is set")
        runtimes.append(marker[:40])
    version = reader.text(ctx.path("/proc/version"))
    if version is not None and is_wsl_kernel(version):
        found.wsl = True
        found.signals.append("/proc/version names Microsoft (WSL)")
    if ctx.env.get("WSL_DISTRO_NAME"):
        found.wsl = True
        found.signals.append("WSL_DISTRO_NAME is set")
    found.in_container = bool(runtimes)
    found.runtime = runtimes[0] if runtimes else ("wsl" if found.wsl else None)
    return found


# ---------------------------------------------------------------------------------------------
# cgroups


@dataclass
class Limits:
    version: str | None = None
    of: str = "this process"
    path: str | None = None
    dirs: dict[str, str] = field(default_factory=dict)
    fell_back: list[str] = field(default_factory=list)
    memory_max: tuple[int, str] | None = None  # bytes, the file that set it
    memory_high: tuple[int, str] | None = None
    memory_peak: int | None = None
    memory_current: int | None = None
    cpu: tuple[CpuQuota, str] | None = None
    pids_max: tuple[int, str] | None = None
    io_max: list[dict[str, Any]] = field(default_factory=list)
    oom: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)  # limits whose files could not be read

    @property
    def oom_kills(self) -> int:
        return self.oom.get("oom_kill", 0)

    def limit_facts(self) -> dict[str, Any]:
        def fact(item: tuple[int, str] | None, key: str) -> dict[str, Any]:
            if item is None:
                return ({"bytes": None, "human": "unknown (unreadable)"} if key in self.unknown
                        else size_fact(None))
            return {**size_fact(item[0]), "file": item[1]}

        cpu: dict[str, Any] = ({**self.cpu[0].to_dict(), "file": self.cpu[1]} if self.cpu
                               else CpuQuota(None, 100000).to_dict())
        if self.cpu is None and "cpu" in self.unknown:
            cpu["human"] = "unknown (unreadable)"
        return {
            "memory_max": fact(self.memory_max, "memory_max"),
            "memory_high": fact(self.memory_high, "memory_high"),
            "memory_peak": size_fact(self.memory_peak) if self.memory_peak is not None else None,
            "memory_current": (size_fact(self.memory_current)
                               if self.memory_current is not None else None),
            "cpu": cpu,
            "pids_max": ({"value": self.pids_max[0], "human": str(self.pids_max[0]),
                          "file": self.pids_max[1]} if self.pids_max
                         else {"value": None, "human": "unknown (unreadable)"
                               if "pids_max" in self.unknown else "unlimited"}),
            "io_max": self.io_max,
        }


def _chain(leaf: Path, root: Path) -> list[Path]:
    """``leaf`` and its parents up to ``root`` (the mount): limits are hierarchical."""
    out = [leaf]
    current = leaf
    while current != root and root in current.parents:
        current = current.parent
        out.append(current)
    return out


def _tightest(reader: Reader, dirs: list[Path], name: str, limits: Limits, key: str
              ) -> tuple[int, str] | None:
    """The smallest limit named ``name`` from the leaf up; ``key`` is marked unknown when a
    file was there but unreadable and nothing else set a limit."""
    best: tuple[int, str] | None = None
    before = len(reader.problems)
    for folder in dirs:
        value = reader.parsed(folder / name, lambda t, n=name: parse_limit(t, n))
        if value is not None and (best is None or value < best[0]):
            best = (value, reader.shown(folder / name))
    if best is None and len(reader.problems) > before:
        limits.unknown.add(key)
    return best


def _tightest_cpu(reader: Reader, dirs: list[Path], v2: bool) -> tuple[CpuQuota, str] | None:
    best: tuple[CpuQuota, str] | None = None
    for folder in dirs:
        if v2:
            quota = reader.parsed(folder / "cpu.max", parse_cpu_max)
            shown = reader.shown(folder / "cpu.max")
        else:
            quota_text = reader.text(folder / "cpu.cfs_quota_us")
            period_text = reader.text(folder / "cpu.cfs_period_us")
            shown = reader.shown(folder / "cpu.cfs_quota_us")
            quota = None
            if quota_text is not None and period_text is not None:
                try:
                    quota = parse_cfs(quota_text, period_text)
                except ParseError as exc:
                    reader.note(shown, str(exc))
        if quota is not None and quota.cpus is not None and (
                best is None or quota.cpus < (best[0].cpus or math.inf)):
            best = (quota, shown)
    return best


def _leaf(reader: Reader, mount: Path, rel: str | None, label: str,
          limits: Limits) -> Path:
    """The cgroup folder for ``rel`` under ``mount``, or the mount itself when that path is
    not visible (inside a cgroup namespace, or a container's own mount)."""
    if rel and rel != "/":
        candidate = mount / rel.lstrip("/")
        # "/../x" is how a cgroup namespace shows a path outside it: never leave the mount
        if ".." not in Path(rel).parts and reader.is_dir(candidate):
            return candidate
        limits.fell_back.append(label)
    return mount


def read_limits(ctx: Context, reader: Reader, server_pids: list[int]) -> Limits:
    """The cgroup limits of the Ollama server (or of this process): memory, CPU, pids, io."""
    limits = Limits()
    v2_root, v1 = _hierarchies(ctx, reader, limits)
    entries = _cgroup_entries(ctx, reader, server_pids, limits)
    limits.path = path_for(entries, None) if v2_root is not None else None
    if "memory" in v1:
        _memory_v1(reader, v1["memory"], entries, limits)
    elif v2_root is not None:
        _memory_v2(reader, v2_root, entries, limits)
    for controller in ("cpu", "pids"):
        _cpu_or_pids(reader, controller, v1, v2_root, entries, limits)
    if v2_root is not None:
        leaf = _leaf(reader, v2_root, path_for(entries, None), "io", limits)
        for folder in _chain(leaf, v2_root):
            devices = reader.parsed(folder / "io.max", parse_io_max)
            if devices:
                limits.io_max = devices
                break
    limits.fell_back = sorted(set(limits.fell_back))
    return limits


def _hierarchies(ctx: Context, reader: Reader, limits: Limits
                 ) -> tuple[Path | None, dict[str, Path]]:
    """The cgroup v2 root (``/sys/fs/cgroup`` or its ``unified`` hybrid mount) and each v1
    controller's mount; sets ``limits.version``."""
    base = ctx.path(CGROUP)
    v2_root: Path | None = None
    if reader.exists(base / "cgroup.controllers"):
        v2_root = base
    elif reader.exists(base / "unified" / "cgroup.controllers"):
        v2_root = base / "unified"
    v1: dict[str, Path] = {}
    for controller, names in V1_DIRS.items():
        for name in names:
            folder = base / name
            if reader.is_dir(folder) and not reader.exists(folder / "cgroup.controllers"):
                v1[controller] = folder
                break
    limits.version = cgroup_version(v2_root == base, v2_root is not None and v2_root != base,
                                    len(v1))
    return v2_root, v1


def _cgroup_entries(ctx: Context, reader: Reader, server_pids: list[int],
                    limits: Limits) -> list[CgroupEntry]:
    """``/proc/PID/cgroup`` of the server when it can be read, else this process's own."""
    entries: list[CgroupEntry] | None = None
    for pid in server_pids[:1]:
        path = ctx.path(f"/proc/{pid}/cgroup")
        if reader.exists(path):
            entries = reader.parsed(path, parse_proc_cgroup)
            if entries:
                limits.of = f"the Ollama server (pid {pid})"
    if not entries:
        entries = reader.parsed(ctx.path("/proc/self/cgroup"), parse_proc_cgroup) or []
        limits.of = "this process"
    return entries


def _memory_v1(reader: Reader, mount: Path, entries: list[CgroupEntry], limits: Limits) -> None:
    leaf = _leaf(reader, mount, path_for(entries, "memory"), "memory", limits)
    limits.path = path_for(entries, "memory") or limits.path
    limits.dirs["memory"] = reader.shown(leaf)
    limits.memory_max = _tightest(reader, _chain(leaf, mount), "memory.limit_in_bytes", limits,
                                  "memory_max")
    limits.memory_peak = reader.parsed(leaf / "memory.max_usage_in_bytes",
                                       lambda t: parse_counter(t, "memory.max_usage"))
    limits.memory_current = reader.parsed(leaf / "memory.usage_in_bytes",
                                          lambda t: parse_counter(t, "memory.usage"))
    failcnt = reader.parsed(leaf / "memory.failcnt",
                            lambda t: parse_counter(t, "memory.failcnt"))
    if failcnt is not None:
        limits.oom["failcnt"] = failcnt
    control = reader.parsed(leaf / "memory.oom_control",
                            lambda t: parse_keyed(t, "memory.oom_control"))
    if control and "oom_kill" in control:
        limits.oom["oom_kill"] = control["oom_kill"]


def _memory_v2(reader: Reader, root: Path, entries: list[CgroupEntry], limits: Limits) -> None:
    leaf = _leaf(reader, root, path_for(entries, None), "memory", limits)
    limits.dirs["memory"] = reader.shown(leaf)
    dirs = _chain(leaf, root)
    limits.memory_max = _tightest(reader, dirs, "memory.max", limits, "memory_max")
    limits.memory_high = _tightest(reader, dirs, "memory.high", limits, "memory_high")
    limits.memory_peak = reader.parsed(leaf / "memory.peak",
                                       lambda t: parse_counter(t, "memory.peak"))
    limits.memory_current = reader.parsed(leaf / "memory.current",
                                          lambda t: parse_counter(t, "memory.current"))
    events = reader.parsed(leaf / "memory.events", lambda t: parse_keyed(t, "memory.events"))
    if events:
        limits.oom.update({k: events[k] for k in ("oom", "oom_kill") if k in events})


def _cpu_or_pids(reader: Reader, controller: str, v1: dict[str, Path], v2_root: Path | None,
                 entries: list[CgroupEntry], limits: Limits) -> None:
    if controller in v1:
        mount, v2 = v1[controller], False
        rel = path_for(entries, controller)
        if controller == "cpu" and rel is None:
            rel = path_for(entries, "cpuacct")
    elif v2_root is not None:
        mount, v2, rel = v2_root, True, path_for(entries, None)
    else:
        return
    leaf = _leaf(reader, mount, rel, controller, limits)
    limits.dirs[controller] = reader.shown(leaf)
    dirs = _chain(leaf, mount)
    if controller == "cpu":
        before = len(reader.problems)
        limits.cpu = _tightest_cpu(reader, dirs, v2)
        if limits.cpu is None and len(reader.problems) > before:
            limits.unknown.add("cpu")
    else:
        limits.pids_max = _tightest(reader, dirs, "pids.max", limits, "pids_max")


# ---------------------------------------------------------------------------------------------
# memory-limit


def _runtime_of_limit(limits: Limits, detection: Detection) -> str:
    named = runtime_from_paths([limits.path or "", *limits.dirs.values()])
    if named:
        return named[0]
    if limits.path and ".service" in limits.path and not detection.in_container:
        return "systemd"
    return detection.runtime or "container"


def _raise_fix(runtime: str, wanted: int, file: str) -> FixStep:
    gib = max(1, math.ceil(wanted / GIB))
    text = (f"Raise the memory limit ({file}) to at least {gib} GiB: the model plus room for "
            "its context and the runtime")
    if runtime == "docker":
        return R.step(f"{text} (compose: deploy.resources.limits.memory: {gib}G).",
                      R.sh(f"docker update --memory={gib}g --memory-swap={gib}g CONTAINER"))
    if runtime == "podman":
        return R.step(f"{text}.", R.sh(f"podman update --memory={gib}g CONTAINER"))
    if runtime == "kubernetes":
        return R.step(f"{text}.", R.sh(f"kubectl set resources deployment/DEPLOYMENT "
                                       f"--limits=memory={gib}Gi"))
    if runtime == "systemd":
        return R.step(f"{text}.", R.systemd_setting(f"MemoryMax={gib}G"),
                      R.sh("sudo systemctl restart ollama"))
    return R.step(f"{text}, where the container is started.")


def _memory_findings(limits: Limits, need: ModelNeed | None, detection: Detection,
                     local: bool) -> list[Finding]:
    if not local or (limits.memory_max is None and limits.memory_high is None):
        return []
    kills = limits.oom_kills
    runtime = _runtime_of_limit(limits, detection)
    smaller = FixStep("Or use a smaller model or quantisation, or a smaller context.",
                      (R.sh("ollama list"), R.serve_with("OLLAMA_CONTEXT_LENGTH", "4096")))
    base_evidence: dict[str, Any] = {"cgroup_version": limits.version, "cgroup_of": limits.of,
                                     "oom": dict(limits.oom)}
    owner = limits.of
    if owner == "this process":
        owner = "this container" if detection.in_container else "this process's cgroup"
    if limits.memory_max is not None:
        limit, file = limits.memory_max
        base_evidence["limit"] = {**size_fact(limit), "file": file}
        where = f"The memory limit of {owner} is {human_bytes(limit)} ({file})"
        killed = (f"; the kernel has OOM-killed {kills} process(es) under it" if kills else "")
        if need is not None:
            evidence = {**base_evidence, "model": need.to_dict()}
            headroom = max(CLOSE_MIN, int(need.size * CLOSE_FRACTION))
            if limit < need.size:
                return [Finding(
                    "memory-limit", Severity.ERROR,
                    f"{where}, below the {need.human} of {need.name}{killed}: the runner is "
                    "killed while loading (signal: killed) or the load is refused for lack of "
                    "memory.", evidence, [_raise_fix(runtime, need.size + headroom, file),
                                          smaller], Confidence.HIGH)]
            if limit < need.size + headroom:
                return [Finding(
                    "memory-limit", Severity.ERROR if kills else Severity.WARNING,
                    f"{where}, only {human_bytes(limit - need.size)} above the {need.human} "
                    f"of {need.name}{killed}: its context and the runtime may not fit.",
                    evidence, [_raise_fix(runtime, need.size + headroom, file), smaller],
                    Confidence.MEDIUM)]
        elif kills:
            return [Finding(
                "memory-limit", Severity.WARNING,
                f"{where}{killed}; give --model to compare it with the model's size.",
                base_evidence, [_raise_fix(runtime, limit * 2, file)], Confidence.MEDIUM)]
    if limits.memory_high is not None and need is not None:
        high, file = limits.memory_high
        if high < need.size:
            return [Finding(
                "memory-limit", Severity.WARNING,
                f"memory.high of {owner} is {human_bytes(high)} ({file}), below the "
                f"{need.human} of {need.name}: the kernel throttles and reclaims, so loads and "
                "generation crawl.",
                {**base_evidence, "high": {**size_fact(high), "file": file},
                 "model": need.to_dict()},
                [_raise_fix(runtime, need.size + max(CLOSE_MIN, int(need.size * CLOSE_FRACTION)),
                            file), smaller], Confidence.MEDIUM)]
    return []


# ---------------------------------------------------------------------------------------------
# container-localhost


def _refused(ctx: Context) -> tuple[bool | None, str]:
    """Whether the reachability probe saw every connection to the target refused."""
    reach = ctx.result("reachability")
    if reach is None:
        return None, "the reachability probe did not run"
    if any(f.cause == "server-not-running" for f in reach.findings):
        return True, "reachability: every connection refused (server-not-running)"
    seen = ctx.facts(ReachabilityFacts)
    if seen is not None and seen.all_refused:
        return True, "reachability: every connection refused"
    return False, f"reachability: {reach.summary}"


def _candidates(ctx: Context, detection: Detection, reader: Reader) -> list[tuple[str, str]]:
    """(URL, where it comes from): ``--candidate`` values, else the usual places."""
    out: list[tuple[str, str]] = []
    if ctx.options.candidates:
        for raw in ctx.options.candidates[:MAX_CANDIDATES]:
            try:
                out.append((parse_target(raw).root_url, "--candidate"))
            except TargetError as exc:
                out.append((raw, f"--candidate (invalid: {exc})"))
        return out
    port, scheme = ctx.target.port, ctx.target.scheme
    hosts = [("host.docker.internal", "Docker's name for the host")]
    if detection.runtime == "podman":
        hosts.append(("host.containers.internal", "Podman's name for the host"))
    gateway = reader.parsed(ctx.path("/proc/net/route"), parse_default_gateway)
    if gateway:
        hosts.append((gateway, "the default gateway (/proc/net/route)"))
    hosts.append((DOCKER0, "Docker's default bridge (docker0)"))
    seen: set[str] = set()
    for host, why in hosts:
        if host not in seen:
            seen.add(host)
            out.append((f"{scheme}://{host}:{port}", why))
    return out


def _try_candidate(ctx: Context, url: str, why: str, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"url": url, "from": why, "answers": False}
    try:
        target = parse_target(url)
    except TargetError as exc:
        row["result"] = f"invalid: {exc}"
        return row
    host, dial = target.dial_host, target.root_url
    headers: dict[str, str] = {}
    started = time.monotonic()
    if ip_or_none(host) is None:
        res = net.resolve(ctx.getaddrinfo, host, target.port, timeout)
        if res.error is not None or not res.addresses:
            row["result"] = f"does not resolve: {res.error.message if res.error else 'no address'}"
            return row
        address = res.addresses[0]
        row["address"] = address
        shown = f"[{address}]" if ":" in address else address
        dial = f"{target.scheme}://{shown}:{target.port}"
        headers["Host"] = f"{target.bracketed_host}:{target.port}"
    left = max(timeout - (time.monotonic() - started), 0.05)  # the lookup shares the timeout
    reply = ctx.http("GET", dial + "/", headers=headers, max_bytes=4096, timeout=left)
    row["answers"] = reply.status == 200 and reply.text.strip() == OLLAMA_BODY
    row["result"] = ("Ollama is running" if row["answers"] else
                     f"HTTP {reply.status}: {reply.snippet(60)!r}" if reply.error is None else
                     reply.describe())
    return row


def discover(ctx: Context, detection: Detection, reader: Reader) -> list[dict[str, Any]]:
    """One bounded ``GET /`` per candidate, all at once: the slowest costs one timeout."""
    candidates = _candidates(ctx, detection, reader)
    if not candidates:
        return []
    timeout = ctx.op_timeout()
    from concurrent.futures import ThreadPoolExecutor  # only when used: ~7 ms

    with ThreadPoolExecutor(max_workers=len(candidates), thread_name_prefix="od-discover") as pool:
        return list(pool.map(lambda c: _try_candidate(ctx, c[0], c[1], timeout), candidates))


def _localhost_fix(detection: Detection, url: str | None, port: int) -> list[FixStep]:
    where = url or f"http://host.docker.internal:{port}"
    if detection.wsl and not detection.in_container:
        return [
            FixStep("Point the client at the Windows host's address (the default gateway in "
                    "WSL's NAT mode), and make Ollama on Windows listen on it: set OLLAMA_HOST "
                    "as a Windows user variable (second line, in a Windows terminal), then "
                    "restart Ollama.",
                    (R.export_host(url or f"http://WINDOWS_HOST_IP:{port}"),
                     R.sh('setx OLLAMA_HOST "0.0.0.0:11434"'))),
            FixStep("Or let localhost reach Windows: add networkingMode=mirrored under [wsl2] "
                    "in %UserProfile%\\.wslconfig, then restart WSL (in a Windows terminal).",
                    (R.sh("wsl --shutdown"),)),
        ]
    return [
        FixStep("Point the client at the host's server, not this container's loopback.",
                (R.export_host(where),)),
        FixStep("On Linux the host name needs mapping when the container starts (Docker "
                "Desktop has it built in; compose: extra_hosts: "
                '["host.docker.internal:host-gateway"]).',
                (R.docker_run("--add-host=host.docker.internal:host-gateway", image="IMAGE"),)),
        FixStep("Or share the host's network, so localhost is the host (compose: "
                "network_mode: host).", (R.docker_run("--network host", image="IMAGE"),)),
    ]


def _localhost_findings(ctx: Context, detection: Detection, servers: list[Any],
                        server_error: str | None, reader: Reader,
                        facts: dict[str, Any]) -> list[Finding]:
    target = ctx.target
    inside = detection.in_container or detection.wsl
    refused, refused_note = _refused(ctx)
    inputs = {"inside": detection.where if inside else None, "loopback_target": target.is_loopback,
              "refused": refused, "refused_note": refused_note,
              "ollama_processes_here": len(servers)}
    if server_error:
        inputs["process_check"] = server_error
    facts["localhost"] = inputs
    if not (inside and target.is_loopback and refused and not servers):
        return []
    evidence: dict[str, Any] = {"target": target.base_url, "inside": detection.where,
                                "signals": detection.signals, "ollama_processes_here": 0}
    if not ctx.options.discover:
        fix = _localhost_fix(detection, None, target.port)
        fix.insert(0, FixStep("Find the host's server from here (one GET / to each usual "
                              "place: host.docker.internal, the default gateway, 172.17.0.1).",
                              (R.sh(f"ollama-doctor check --host {R.q(target.url)} --discover"),)))
        return [Finding(
            "container-localhost", Severity.ERROR,
            f"This client runs in a {detection.where}, where {target.dial_host} is the "
            f"{'WSL VM' if detection.where == 'WSL' else 'container'} itself and nothing "
            f"listens on port {target.port}; if Ollama runs on the host, point the client at "
            "the host's address.",
            evidence, fix, Confidence.MEDIUM)]
    rows = discover(ctx, detection, reader)
    facts["discovery"] = {"tried": len(rows), "timeout_s": ctx.op_timeout(), "candidates": rows}
    evidence["discovery"] = rows
    working = next((r for r in rows if r["answers"]), None)
    if working is not None:
        return [Finding(
            "container-localhost", Severity.CRITICAL,
            f"Ollama answers at {working['url']} but the client targets {target.base_url}, "
            f"which inside this {detection.where} is not the host: use {working['url']}.",
            {**evidence, "working_url": working["url"]},
            _localhost_fix(detection, working["url"], target.port), Confidence.HIGH)]
    fix = _localhost_fix(detection, None, target.port)
    fix.insert(0, FixStep(
        "On the host, make Ollama listen beyond its loopback (a server bound to 127.0.0.1 "
        "refuses containers), then restart it.",
        (R.systemd_edit("OLLAMA_HOST", "0.0.0.0:11434"), *R.systemd_restart())))
    return [Finding(
        "container-localhost", Severity.ERROR,
        f"This client runs in a {detection.where}, where {target.dial_host} is not the host, "
        f"and none of the {len(rows)} usual places of the host's server answered "
        "'Ollama is running' (it may not run, or listen on the host's loopback only).",
        evidence, fix, Confidence.LOW)]


# ---------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What this machine says, read before any other probe has answered (``prepare``)."""

    reader: Reader
    detection: Detection
    local: bool
    servers: list[Any]
    server_error: str | None
    limits: Limits


def prepare(ctx: Context) -> Prepared:
    """The runner's prepare step: container signs, the process scan and the cgroup files."""
    reader = Reader(ctx)
    detection = detect(ctx, reader)
    local, servers, server_error = server_is_local(ctx)
    limits = read_limits(ctx, reader, [s.pid for s in servers])
    return Prepared(reader, detection, local, servers, server_error, limits)


def run(ctx: Context) -> Outcome:
    from ollama_doctor.runner import prepare_key

    here = ctx.once(prepare_key("container"), lambda: prepare(ctx))
    reader, detection, limits = here.reader, here.detection, here.limits
    local, servers, server_error = here.local, here.servers, here.server_error
    facts: dict[str, Any] = {}
    facts["container"] = detection.to_dict()
    facts["cgroup"] = {"version": limits.version, "of": limits.of, "path": limits.path,
                       "dirs": limits.dirs, "fell_back_to_root": limits.fell_back}
    facts["limits"] = limits.limit_facts()
    facts["oom"] = dict(limits.oom)

    need, need_note = model_need(ctx)
    facts["model"] = need.to_dict() if need else {"name": ctx.options.model, "note": need_note}
    if not local:
        facts["limits_note"] = ("the target is not on this machine: these limits do not bind "
                                "its server")

    findings = _memory_findings(limits, need, detection, local)
    findings += _localhost_findings(ctx, detection, servers, server_error, reader, facts)
    if reader.problems:
        facts["unreadable"] = reader.problems

    where = (detection.where if detection.in_container or detection.wsl
             else "not in a container")
    if limits.version is None:
        summary = f"{where}; no cgroup filesystem at {CGROUP}"
    else:
        shown = limits.limit_facts()
        summary = (f"{where}; cgroup {limits.version}: memory {shown['memory_max']['human']}, "
                   f"CPU {shown['cpu']['human']}, pids {shown['pids_max']['human']}")
        if limits.oom_kills:
            summary += f", {limits.oom_kills} OOM kill(s)"
    if "discovery" in facts:
        rows = facts["discovery"]["candidates"]
        answering = [r["url"] for r in rows if r["answers"]]
        summary += (f"; --discover tried {len(rows)} place(s): "
                    + (f"Ollama answers at {answering[0]}" if answering else "none answered"))
    if reader.problems:
        files = list(dict.fromkeys(p["file"] for p in reader.problems))
        summary += f"; could not read {len(files)} file(s): " + ", ".join(files[:3]) + (
            ", …" if len(files) > 3 else "") + " (see unreadable)"

    floor = Status.WARN if reader.problems else Status.PASS
    outcome = Outcome.from_findings(summary, facts, findings, floor=floor)
    if (outcome.status is Status.PASS and limits.version is None
            and not (detection.in_container or detection.wsl)):
        outcome.status = Status.SKIP
        outcome.summary = (f"skipped: no cgroup filesystem at {CGROUP} and no container signs "
                           "(not Linux, or /sys is not mounted)")
    return outcome
