"""``resources``: memory, disk where models live, swap and GPUs, against the model's size.

Checks, on the machine the doctor runs on:

1. memory and swap: ``/proc/meminfo`` on Linux (through the context's filesystem root), psutil
   elsewhere;
2. free disk where models live: ``OLLAMA_MODELS`` (this shell's value), else
   ``~/.ollama/models``, else ``/usr/share/ollama/.ollama/models`` (the Linux service's); the
   first that exists, else the nearest existing folder above the first;
3. GPUs: ``nvidia-smi --query-gpu=name,memory.total,memory.free`` and ``rocm-smi`` when they
   are on ``PATH`` (absent tools are facts, not errors; each run is bounded in time and bytes);
4. the model's size (``--model``: from the ``models`` probe's facts, else one bounded
   ``GET /api/tags``) against all of the above.

Memory, disk, GPUs and the process scan are the ``prepare`` step, which the runner runs beside
the network probes; only the comparison with the model's size waits for ``models``.

Findings are made only when the server runs on this machine (a loopback target, or an Ollama
process found here): this machine's disk says nothing about a server elsewhere.

Thresholds (decided here):

- ``disk-space-low`` (warning): less than 5 GiB free (medium confidence: logs, pulls and
  temporary files fail first); or, with a model, less than its size plus max(2 GiB, 10 %) —
  low confidence, since an installed model already has its space and only a pull or update of
  it would not fit.
- ``memory-limit`` (host): error when the model is larger than RAM + swap + VRAM in total (it
  can never load); warning (low confidence) when it is larger than what is free of them now —
  low, because a loaded model's own memory is not free.
- ``gpu-offload``: warning when the model is larger than all VRAM together (part of it runs on
  CPU); a note when it only exceeds the free VRAM; a warning (low) when ``nvidia-smi`` is
  installed but fails (the driver is not usable, Ollama falls back to CPU).

Facts: ``memory`` (total, available, swap: bytes and human), ``disk`` (folder, source, free,
total), ``gpus`` (``tools`` per tool, ``devices``), ``model`` (name, size, source),
``server_local``.

Cause ids: ``disk-space-low``, ``memory-limit``, ``gpu-offload``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollama_doctor import remedies as R
from ollama_doctor.cgroups import ParseError, human_bytes, parse_meminfo, read_bounded, size_fact
from ollama_doctor.context import Context
from ollama_doctor.facts import ModelsFacts, ReachabilityFacts
from ollama_doctor.result import Confidence, Finding, FixStep, Outcome, Severity, Status

GIB = 1 << 30
MIB = 1 << 20
DISK_FLOOR = 5 * GIB
DISK_MARGIN_MIN = 2 * GIB
DISK_MARGIN_FRACTION = 0.10
MAX_TOOL_OUTPUT = 64 * 1024
MAX_TAGS_BYTES = 4 * MIB
SERVICE_MODELS = "/usr/share/ollama/.ollama/models"


# ---------------------------------------------------------------------------------------------
# the model's size, shared with the container probe


@dataclass(frozen=True)
class ModelNeed:
    name: str
    size: int  # bytes on disk; what a load needs at least
    source: str

    @property
    def human(self) -> str:
        """Decimal, as ``ollama list`` shows sizes (4.7 GB), so users recognise it."""
        return decimal_bytes(self.size)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.size, "human": self.human,
                "source": self.source}


def decimal_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def size_from_tags(data: Any, name: str) -> int | None:
    """The ``size`` of ``name`` in a ``GET /api/tags`` answer (or its ``models`` list), matched
    the way Ollama matches names (``modelname.find``: case-insensitive, ``:latest`` implied)."""
    from ollama_doctor import modelname

    models = data.get("models") if isinstance(data, dict) else data
    if not isinstance(models, list):
        return None
    sizes: dict[str, int] = {}
    for item in models:
        if not isinstance(item, dict):
            continue
        label = item.get("name") or item.get("model")
        size = item.get("size")
        if (isinstance(label, str) and isinstance(size, int) and not isinstance(size, bool)
                and size > 0):
            sizes.setdefault(label, size)
    try:
        found = modelname.find(name, sizes)
    except ValueError:
        return None
    return sizes[found] if found is not None else None


def model_need(ctx: Context) -> tuple[ModelNeed | None, str]:
    """The ``--model``'s size, and where it came from (or why it is unknown).

    The ``models`` probe's facts first (``model.installed_as`` and the ``models`` list); when
    that probe did not run, one bounded ``GET /api/tags`` if the reachability probe found Ollama
    answering. A model the server does not have has no size to compare.
    """
    name = ctx.options.model
    if not name:
        return None, "no --model given"
    models = ctx.facts(ModelsFacts)
    if models is not None:
        installed = models.installed_as
        if installed is not None:
            size = models.size_of(installed)
            if size:
                return ModelNeed(installed, size, "models probe"), "models probe"
            return None, f"the models probe lists no size for {installed}"
        return None, f"{name} is not installed on the server (models probe)"
    reach = ctx.result("reachability")
    seen = ctx.facts(ReachabilityFacts)
    if reach is None or not reach.ok or (seen is not None and not seen.looks_like_ollama):
        return None, "the server's model list is not available (reachability did not pass)"
    reply = ctx.http("GET", ctx.target.root_url + "/api/tags",
                     headers=ctx.client_headers(with_origin=False), max_bytes=MAX_TAGS_BYTES)
    if not reply.ok:
        return None, f"GET /api/tags gave {reply.describe()}"
    size = size_from_tags(reply.json(), name)
    if size is None:
        return None, f"{name!r} is not in GET /api/tags, so its size is unknown"
    return ModelNeed(name, size, "GET /api/tags"), "GET /api/tags"


def server_is_local(ctx: Context) -> tuple[bool, list[Any], str | None]:
    """Whether the target's server runs here: an Ollama process found (or named with
    ``--server-pid``), or a loopback target. Also the processes, and any error finding them."""
    from ollama_doctor.local import find_servers

    try:
        servers = find_servers(ctx)
    except Exception as exc:  # psutil trouble is a note, never a crash
        return ctx.target.is_loopback, [], f"{type(exc).__name__}: {exc}"
    return bool(servers) or ctx.target.is_loopback, servers, None


# ---------------------------------------------------------------------------------------------
# tools


@dataclass(frozen=True)
class ToolRun:
    code: int | None
    stdout: str
    stderr: str = ""
    error: str | None = None  # could not run, or timed out

    @property
    def ok(self) -> bool:
        return self.error is None and self.code == 0


def run_tool(argv: list[str], timeout: float, env: dict[str, str] | None = None,
             max_bytes: int = MAX_TOOL_OUTPUT) -> ToolRun:
    """Run a command with a time limit, keeping at most ``max_bytes`` of each output stream.
    Never raises: a missing binary, a timeout or an endless output become ``error``."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    except OSError as exc:
        return ToolRun(None, "", error=f"cannot run {argv[0]}: {exc.strerror or exc}")
    box: dict[str, bytes] = {}

    def pump(key: str, stream: Any) -> None:
        try:
            box[key] = stream.read(max_bytes + 1)
        except (OSError, ValueError):
            box[key] = b""

    threads = [threading.Thread(target=pump, args=(key, stream), daemon=True)
               for key, stream in (("out", proc.stdout), ("err", proc.stderr))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    error: str | None = None
    try:
        code: int | None = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code, error = None, f"{argv[0]} did not finish within {timeout:g} s"
    for thread in threads:
        thread.join(max(0.5, deadline - time.monotonic()))
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    out, err = box.get("out", b""), box.get("err", b"")
    if error is None and len(out) > max_bytes:
        error = f"{argv[0]} wrote more than {max_bytes // 1024} KiB"
    return ToolRun(code, out[:max_bytes].decode("utf-8", "replace"),
                   err[:4096].decode("utf-8", "replace"), error)


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits``:
    one ``NAME, TOTAL_MIB, FREE_MIB`` line per GPU → ``[{name, total, free}]`` in bytes."""
    devices: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", 2)]
        if len(parts) != 3:
            raise ParseError(f"nvidia-smi: expected 'name, total, free', got {line[:80]!r}")
        name, total, free = parts
        values = [int(float(v)) * MIB if v.replace(".", "", 1).isdigit() else None
                  for v in (total, free)]
        if values[0] is None:
            raise ParseError(f"nvidia-smi: bad memory.total {total[:40]!r}")
        devices.append({"name": name, "total": values[0], "free": values[1]})
    return devices


def parse_rocm_smi(text: str) -> list[dict[str, Any]]:
    """``rocm-smi --showproductname --showmeminfo vram --json`` → ``[{name, total, free}]``."""
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(f"rocm-smi: not JSON ({text[:60]!r})") from exc
    if not isinstance(data, dict):
        raise ParseError("rocm-smi: not a JSON object")
    devices: list[dict[str, Any]] = []
    for card, info in data.items():
        if not isinstance(info, dict) or not str(card).lower().startswith("card"):
            continue
        lower = {str(k).lower(): v for k, v in info.items()}
        total = _int_or_none(lower.get("vram total memory (b)"))
        used = _int_or_none(lower.get("vram total used memory (b)"))
        if total is None:
            continue
        name = next((str(lower[k]) for k in ("card series", "card model", "device name",
                                            "card sku") if lower.get(k)), str(card))
        devices.append({"name": name, "total": total,
                        "free": None if used is None else max(total - used, 0)})
    return devices


def _int_or_none(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def _which(ctx: Context, name: str) -> str | None:
    return shutil.which(name, path=ctx.env.get("PATH") or None)


def _gpus(ctx: Context) -> dict[str, Any]:
    """What the GPU tools say; absent tools are recorded as such."""
    out: dict[str, Any] = {"tools": {}, "devices": []}
    if sys.platform == "darwin":
        out["tools"]["metal"] = "Apple GPUs share system memory: see memory"
        return out
    env = dict(ctx.env) if ctx.env else None
    queries = (
        ("nvidia-smi", ["--query-gpu=name,memory.total,memory.free",
                        "--format=csv,noheader,nounits"], parse_nvidia_smi, "NVIDIA"),
        ("rocm-smi", ["--showproductname", "--showmeminfo", "vram", "--json"],
         parse_rocm_smi, "AMD"),
    )
    for tool, args, parse, vendor in queries:
        path = _which(ctx, tool)
        if path is None:
            out["tools"][tool] = "not found on PATH"
            continue
        run = run_tool([path, *args], ctx.op_timeout(), env)
        if not run.ok:
            reason = run.error or (f"exit {run.code}: "
                                   f"{(run.stderr or run.stdout).strip()[:200] or 'no output'}")
            out["tools"][tool] = f"failed: {reason}"
            out.setdefault("failed", []).append({"tool": tool, "reason": reason})
            continue
        try:
            devices = parse(run.stdout)
        except ParseError as exc:
            out["tools"][tool] = f"unreadable output: {exc}"
            continue
        out["tools"][tool] = f"{len(devices)} GPU(s)"
        for device in devices:
            device["vendor"] = vendor
            device["total_human"] = human_bytes(device["total"])
            device["free_human"] = human_bytes(device["free"])
            out["devices"].append(device)
    return out


# ---------------------------------------------------------------------------------------------
# memory and disk


def _memory(ctx: Context, problems: list[dict[str, str]]) -> dict[str, Any] | None:
    if sys.platform.startswith("linux"):
        read = read_bounded(ctx.path("/proc/meminfo"), shown="/proc/meminfo")
        if not read.ok or read.text is None:
            problems.append({"file": read.path, "reason": read.error or "unreadable"})
            return None
        try:
            info = parse_meminfo(read.text)
        except ParseError as exc:
            problems.append({"file": read.path, "reason": str(exc)})
            return None
        total = info["MemTotal"]
        available = info.get("MemAvailable", info.get("MemFree", 0))
        swap_total = info.get("SwapTotal", 0)
        swap_free = info.get("SwapFree", 0)
        source = "/proc/meminfo"
    else:
        import psutil

        try:
            vm, sm = psutil.virtual_memory(), psutil.swap_memory()
        except Exception as exc:
            problems.append({"file": "psutil", "reason": f"{type(exc).__name__}: {exc}"})
            return None
        total, available = int(vm.total), int(vm.available)
        swap_total, swap_free = int(sm.total), int(sm.free)
        source = "psutil"
    return {"total": size_fact(total), "available": size_fact(available),
            "swap_total": size_fact(swap_total), "swap_free": size_fact(swap_free),
            "swap_used": size_fact(max(swap_total - swap_free, 0)), "source": source}


def _exists(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def models_dir(ctx: Context) -> tuple[str, str, list[str]]:
    """(folder, why this one, the candidates in order)."""
    candidates: list[tuple[str, str]] = []
    if ctx.env.get("OLLAMA_MODELS", "").strip():
        candidates.append((ctx.env["OLLAMA_MODELS"].strip(), "OLLAMA_MODELS"))
    home = ctx.env.get("HOME") or ctx.env.get("USERPROFILE")
    if home:
        candidates.append((str(Path(home) / ".ollama" / "models"), "this user's default"))
    if not sys.platform.startswith(("win", "darwin")):
        candidates.append((SERVICE_MODELS, "the Linux service's default"))
    names = [c for c, _ in candidates]
    for folder, why in candidates:
        if _exists(ctx.path(folder)):
            return folder, why, names
    if not candidates:
        return "/", "no candidate folder", names
    return candidates[0][0], candidates[0][1] + " (does not exist yet)", names


def _disk(ctx: Context, problems: list[dict[str, str]]) -> dict[str, Any] | None:
    import psutil

    folder, why, names = models_dir(ctx)
    probe = ctx.path(folder)
    while not _exists(probe) and probe != probe.parent:
        probe = probe.parent  # the folder the store would be created in
    try:
        usage = psutil.disk_usage(str(probe))
    except OSError as exc:
        problems.append({"file": folder, "reason": f"disk usage: {exc.strerror or exc}"})
        return None
    return {"folder": folder, "why": why, "candidates": names,
            "measured_at": _shown(ctx, probe), "free": size_fact(int(usage.free)),
            "total": size_fact(int(usage.total))}


def _shown(ctx: Context, path: Path) -> str:
    try:
        return "/" + str(path.relative_to(ctx.fs_root)).lstrip("/").replace("\\", "/") \
            if ctx.fs_root != Path("/") else str(path)
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# deciding


def _disk_findings(disk: dict[str, Any], need: ModelNeed | None) -> list[Finding]:
    free = int(disk["free"]["bytes"])
    reasons: list[str] = []
    confidence: Confidence | None = None
    wanted = 0
    if free < DISK_FLOOR:
        reasons.append(f"below the {human_bytes(DISK_FLOOR)} floor (pulls, logs and temporary "
                       "files fail first)")
        confidence = Confidence.MEDIUM
        wanted = DISK_FLOOR
    if need is not None:
        margin = max(DISK_MARGIN_MIN, int(need.size * DISK_MARGIN_FRACTION))
        if free < need.size + margin:
            reasons.append(f"less than {need.name}'s {need.human} plus {human_bytes(margin)}, so "
                           "pulling or updating it would not fit")
            confidence = confidence or Confidence.LOW
            wanted = max(wanted, need.size + margin)
    if not reasons or confidence is None:
        return []
    folder = disk["folder"]
    return [Finding(
        "disk-space-low", Severity.WARNING,
        f"Only {disk['free']['human']} is free where models live ({folder}): "
        + "; ".join(reasons) + ".",
        {"folder": folder, "free": disk["free"], "wanted": size_fact(wanted),
         "model": need.to_dict() if need else None},
        [FixStep("Free space: remove models you no longer use, then check again.",
                 (R.sh("ollama list"), R.sh("ollama rm MODEL"), R.sh(f"df -h {R.q(folder)}"))),
         FixStep("Or move the model store to a bigger disk, in the server's environment, and "
                 "restart the server.",
                 (R.serve_with("OLLAMA_MODELS", "/bigdisk/ollama/models"),))],
        confidence)]


def _memory_findings(memory: dict[str, Any], gpus: dict[str, Any],
                     need: ModelNeed) -> list[Finding]:
    devices = gpus.get("devices", [])
    vram_total = sum(int(d["total"]) for d in devices)
    vram_free = sum(int(d["free"] or 0) for d in devices)
    total = int(memory["total"]["bytes"]) + int(memory["swap_total"]["bytes"]) + vram_total
    free = int(memory["available"]["bytes"]) + int(memory["swap_free"]["bytes"]) + vram_free
    evidence = {"model": need.to_dict(), "ram": memory["total"],
                "available": memory["available"], "swap_total": memory["swap_total"],
                "swap_free": memory["swap_free"], "vram_total": size_fact(vram_total),
                "vram_free": size_fact(vram_free)}
    smaller = FixStep("Use a smaller model or quantisation, or a smaller context.",
                      (R.sh("ollama list"), R.serve_with("OLLAMA_CONTEXT_LENGTH", "4096")))
    if need.size > total:
        return [Finding(
            "memory-limit", Severity.ERROR,
            f"{need.name} needs at least {need.human} but this machine has only "
            f"{human_bytes(total)} of RAM, swap and VRAM together: it cannot load here.",
            evidence, [smaller, FixStep("Or run it on a machine with more memory.")],
            Confidence.MEDIUM)]
    if need.size > free:
        return [Finding(
            "memory-limit", Severity.WARNING,
            f"{need.name} needs at least {need.human} but only {human_bytes(free)} of RAM, "
            "swap and VRAM is free now (unless that model is the one already loaded): a load "
            "may fail or swap heavily.",
            evidence, [FixStep("See what holds the memory, and unload other models.",
                               (R.sh("ollama ps"), R.sh("ollama stop OTHER_MODEL"))), smaller],
            Confidence.LOW)]
    return []


def _gpu_findings(gpus: dict[str, Any], need: ModelNeed | None) -> list[Finding]:
    out: list[Finding] = []
    for failed in gpus.get("failed", []):
        if failed["tool"] == "nvidia-smi":
            out.append(Finding(
                "gpu-offload", Severity.WARNING,
                f"nvidia-smi is installed but fails ({failed['reason'][:120]}): the NVIDIA "
                "driver is not usable, so Ollama falls back to CPU.",
                {"tool": failed}, [FixStep(
                    "Check the driver; after a suspend, reload the UVM module.",
                    (R.sh("nvidia-smi"),
                     R.sh("sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm")))],
                Confidence.LOW))
    devices = gpus.get("devices", [])
    if need is None or not devices:
        return out
    vram_total = sum(int(d["total"]) for d in devices)
    vram_free = sum(int(d["free"] or 0) for d in devices)
    evidence = {"model": need.to_dict(), "vram_total": size_fact(vram_total),
                "vram_free": size_fact(vram_free),
                "gpus": [{"name": d["name"], "total": d["total_human"], "free": d["free_human"]}
                         for d in devices]}
    fix = [FixStep("Use a smaller model, quantisation or context so it fits in VRAM; check "
                   "where it runs.",
                   (R.sh("ollama ps"), R.serve_with("OLLAMA_CONTEXT_LENGTH", "4096")))]
    if need.size > vram_total:
        out.append(Finding(
            "gpu-offload", Severity.WARNING,
            f"{need.name} ({need.human}) is larger than all VRAM together "
            f"({human_bytes(vram_total)}): part of it runs on CPU, which is much slower.",
            evidence, fix, Confidence.MEDIUM))
    elif need.size > vram_free:
        out.append(Finding(
            "gpu-offload", Severity.INFO,
            f"{need.name} ({need.human}) is larger than the free VRAM now "
            f"({human_bytes(vram_free)}); it fits only once other models unload.",
            evidence, fix, Confidence.LOW))
    return out


@dataclass(frozen=True)
class Prepared:
    """This machine's figures, read before any other probe has answered (``prepare``)."""

    local: bool
    server_error: str | None
    memory: dict[str, Any] | None
    gpus: dict[str, Any]
    disk: dict[str, Any] | None
    problems: list[dict[str, str]]


def prepare(ctx: Context) -> Prepared:
    """The runner's prepare step: the process scan, memory, GPU tools and the disk."""
    problems: list[dict[str, str]] = []
    local, _, server_error = server_is_local(ctx)
    memory = _memory(ctx, problems)
    gpus = _gpus(ctx)
    disk = _disk(ctx, problems)
    return Prepared(local, server_error, memory, gpus, disk, problems)


def run(ctx: Context) -> Outcome:
    from ollama_doctor.runner import prepare_key

    facts: dict[str, Any] = {}
    need, need_note = model_need(ctx)
    facts["model"] = need.to_dict() if need else {"name": ctx.options.model, "note": need_note}
    here = ctx.once(prepare_key("resources"), lambda: prepare(ctx))
    local, server_error, problems = here.local, here.server_error, list(here.problems)
    memory, gpus, disk = here.memory, here.gpus, here.disk
    facts["server_local"] = local
    if server_error:
        facts["server_lookup_error"] = server_error
    facts["memory"] = memory
    facts["gpus"] = gpus
    facts["disk"] = disk
    if problems:
        facts["unreadable"] = problems

    findings: list[Finding] = []
    if local:
        if disk is not None:
            findings += _disk_findings(disk, need)
        if memory is not None and need is not None:
            findings += _memory_findings(memory, gpus, need)
        findings += _gpu_findings(gpus, need)
    else:
        facts["note"] = ("the server is not on this machine: these resources do not bind it, so "
                         "no finding is made from them")

    parts: list[str] = []
    if memory is not None:
        parts.append(f"{memory['total']['human']} RAM ({memory['available']['human']} free)")
        swap = memory["swap_total"]["bytes"]
        parts.append(f"swap {memory['swap_used']['human']} used of {memory['swap_total']['human']}"
                     if swap else "no swap")
    if disk is not None:
        parts.append(f"{disk['free']['human']} free for models")
    devices = gpus["devices"]
    parts.append(f"{len(devices)} GPU(s)" if devices else "no GPU found")
    if problems:
        parts.append("could not read " + ", ".join(p["file"] for p in problems[:3]))
    return Outcome.from_findings("; ".join(parts), facts, findings,
                                 floor=Status.WARN if problems else Status.PASS)
