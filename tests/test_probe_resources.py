"""The ``resources`` probe: memory, disk where models live, GPUs, against the model's size.

Memory comes from a fixture ``/proc/meminfo`` (``--fs-root``); GPU tools are small scripts put on
the ``PATH`` the context carries (``nvidia-smi`` that answers, fails, hangs or never stops
talking); the model's size comes from the models probe's facts or the emulator's ``/api/tags``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ollama_doctor.cgroups import ParseError
from ollama_doctor.context import Context, Options
from ollama_doctor.probes import resources
from ollama_doctor.result import ProbeResult, Status
from ollama_doctor.target import parse_target
from tests.conftest import CliRun

FS = Path(__file__).parent / "data" / "fs"
GIB = 1 << 30
MIB = 1 << 20
MODEL = "llama3.1:8b"


def meminfo_root(tmp_path: Path, total_kib: int, available_kib: int, swap_kib: int = 0) -> Path:
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/meminfo").write_text(
        f"MemTotal:       {total_kib} kB\nMemFree:        {available_kib} kB\n"
        f"MemAvailable:   {available_kib} kB\nSwapTotal:      {swap_kib} kB\n"
        f"SwapFree:       {swap_kib} kB\n")
    return root


def with_model(size: int, name: str = MODEL) -> ProbeResult:
    return ProbeResult("models", "Models", Status.PASS, "installed",
                       facts={"models": [{"name": name, "size": size}],
                              "model": {"requested": name, "installed_as": name}})


def make_ctx(root: Path, host: str = "127.0.0.1:11434", *, model: str | None = None,
             size: int | None = None, env: dict[str, str] | None = None,
             **options: Any) -> Context:
    ctx = Context(parse_target(host), Options(model=model, timeout=2.0, **options),
                  env=env if env is not None else {"PATH": "/nonexistent"}, fs_root=root)
    if size is not None:
        ctx.results["models"] = with_model(size, model or MODEL)
    return ctx


def tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def found(out: Any) -> list[tuple[str, str, str]]:
    return [(f.cause, f.severity.value, f.confidence.value) for f in out.findings]


# ---------------------------------------------------------------------------------------------
# memory


def test_memory_facts_from_meminfo() -> None:
    out = resources.run(make_ctx(FS / "cgroup-v2"))
    assert out.facts["memory"] == {
        "total": {"bytes": 16303536 * 1024, "human": "15.5 GiB"},
        "available": {"bytes": 12345678 * 1024, "human": "11.8 GiB"},
        "swap_total": {"bytes": 2097148 * 1024, "human": "2.0 GiB"},
        "swap_free": {"bytes": 2097148 * 1024, "human": "2.0 GiB"},
        "swap_used": {"bytes": 0, "human": "0 B"},
        "source": "/proc/meminfo"}
    assert out.facts["gpus"] == {"tools": {"nvidia-smi": "not found on PATH",
                                           "rocm-smi": "not found on PATH"}, "devices": []}
    assert out.summary.startswith("15.5 GiB RAM (11.8 GiB free); swap 0 B used of 2.0 GiB")
    assert out.summary.endswith("no GPU found")


@pytest.mark.parametrize(("total_gib", "free_gib", "size", "expected"), [
    (4, 3, 4_700_000_000, [("memory-limit", "error", "medium")]),  # can never load
    (16, 3, 4_700_000_000, [("memory-limit", "warning", "low")]),  # not free now
    (16, 12, 4_700_000_000, []),  # fits
    (24, 23, 2_019_393_189, []),  # this build machine with llama3.2: no false alarm
])
def test_host_memory_against_model(tmp_path: Path, total_gib: int, free_gib: int, size: int,
                                   expected: list[tuple[str, str, str]]) -> None:
    root = meminfo_root(tmp_path, total_gib * 1024 * 1024, free_gib * 1024 * 1024)
    out = resources.run(make_ctx(root, model=MODEL, size=size))
    assert [f for f in found(out) if f[0] == "memory-limit"] == expected


def test_memory_limit_message_counts_ram_swap_and_vram(tmp_path: Path) -> None:
    root = meminfo_root(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024, swap_kib=1024 * 1024)
    tool(tmp_path / "bin", "nvidia-smi", "echo 'NVIDIA T400, 2048, 1900'\n")
    out = resources.run(make_ctx(root, model=MODEL, size=8_000_000_000,
                                 env={"PATH": str(tmp_path / "bin")}))
    memory = next(f for f in out.findings if f.cause == "memory-limit")
    assert memory.message == ("llama3.1:8b needs at least 8.0 GB but this machine has only "
                              "7.0 GiB of RAM, swap and VRAM together: it cannot load here.")
    assert memory.evidence["vram_total"] == {"bytes": 2 * GIB, "human": "2.0 GiB"}
    assert out.status is Status.FAIL


def test_missing_meminfo_is_a_warning_with_the_reason() -> None:
    out = resources.run(make_ctx(FS / "missing"))
    assert out.facts["memory"] is None
    assert out.facts["unreadable"] == [{"file": "/proc/meminfo", "reason": "missing"}]
    assert out.status is Status.WARN
    assert "could not read /proc/meminfo" in out.summary


def test_garbage_meminfo(tmp_path: Path) -> None:
    root = tmp_path / "garbage"
    shutil.copytree(FS / "garbage", root)
    out = resources.run(make_ctx(root, model=MODEL, size=GIB))
    assert out.facts["unreadable"][0]["file"] == "/proc/meminfo"
    assert "meminfo: no MemTotal line" in out.facts["unreadable"][0]["reason"]
    assert [f for f in found(out) if f[0] == "memory-limit"] == []


# ---------------------------------------------------------------------------------------------
# disk


def test_models_dir_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    home = root / "home/me/.ollama/models"
    service = root / "usr/share/ollama/.ollama/models"
    service.mkdir(parents=True)
    env = {"HOME": "/home/me", "OLLAMA_MODELS": "/data/models"}
    ctx = make_ctx(root, env=env)
    assert resources.models_dir(ctx)[:2] == ("/usr/share/ollama/.ollama/models",
                                              "the Linux service's default")
    home.mkdir(parents=True)
    assert resources.models_dir(ctx)[:2] == ("/home/me/.ollama/models", "this user's default")
    (root / "data/models").mkdir(parents=True)
    assert resources.models_dir(ctx) == (
        "/data/models", "OLLAMA_MODELS",
        ["/data/models", "/home/me/.ollama/models", "/usr/share/ollama/.ollama/models"])
    assert resources.models_dir(make_ctx(tmp_path / "empty", env={"HOME": "/home/me"}))[:2] == (
        "/home/me/.ollama/models", "this user's default (does not exist yet)")


def test_disk_facts_measure_the_nearest_existing_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    out = resources.run(make_ctx(root, env={"OLLAMA_MODELS": "/data/models/blobs"}))
    disk = out.facts["disk"]
    assert (disk["folder"], disk["why"], disk["measured_at"]) == (
        "/data/models/blobs", "OLLAMA_MODELS (does not exist yet)", "/data")
    usage = shutil.disk_usage(root / "data")
    assert abs(disk["free"]["bytes"] - usage.free) < 64 * MIB
    assert disk["total"]["bytes"] == usage.total


@pytest.mark.parametrize(("free", "size", "expected"), [
    (100 * GIB, None, None),
    (4 * GIB, None, ("warning", "medium")),  # below the 5 GiB floor
    (100 * GIB, 4_700_000_000, None),
    (7 * GIB, 4_700_000_000, None),  # 4.7 GB (4.4 GiB) + the 2 GiB margin = 6.4 GiB: fits
    (6 * GIB, 4_700_000_000, ("warning", "low")),
    (30 * GIB, 40 * GIB, ("warning", "low")),  # a re-pull of a 40 GiB model would not fit
    (3 * GIB, 40 * GIB, ("warning", "medium")),  # both: the floor decides the confidence
])
def test_disk_decision_table(free: int, size: int | None,
                             expected: tuple[str, str] | None) -> None:
    disk = {"folder": "/m", "free": {"bytes": free, "human": "x"}}
    need = resources.ModelNeed(MODEL, size, "test") if size else None
    result = resources._disk_findings(disk, need)
    assert [(f.severity.value, f.confidence.value) for f in result] == (
        [expected] if expected else [])


def test_disk_space_low_for_a_model_bigger_than_the_disk(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    huge = 100 * 10**12  # 100 TB: no disk here has room for it
    out = resources.run(make_ctx(root, model=MODEL, size=huge, env={"OLLAMA_MODELS": "/models"}))
    [disk] = [f for f in out.findings if f.cause == "disk-space-low"]
    assert (disk.severity.value, disk.confidence.value) == ("warning", "low")
    free = out.facts["disk"]["free"]["human"]
    assert disk.message.endswith(
        "is free where models live (/models): less than llama3.1:8b's 100.0 TB plus 9.1 TiB, "
        "so pulling or updating it would not fit.")
    assert disk.message.startswith(f"Only {free} ")
    assert disk.fix[1].commands == ("OLLAMA_MODELS=/bigdisk/ollama/models ollama serve",)


def test_nothing_is_found_for_a_remote_server(tmp_path: Path) -> None:
    root = meminfo_root(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024)
    out = resources.run(make_ctx(root, "http://gpu-box.example:11434", model=MODEL,
                                 size=1 << 60))
    assert out.findings == []
    assert out.facts["server_local"] is False
    assert out.facts["note"].startswith("the server is not on this machine")


# ---------------------------------------------------------------------------------------------
# GPUs


@pytest.mark.parametrize(("text", "expected"), [
    ("NVIDIA GeForce RTX 4090, 24564, 23000\n",
     [{"name": "NVIDIA GeForce RTX 4090", "total": 24564 * MIB, "free": 23000 * MIB}]),
    ("A, 1024, 512\nB, 2048, [N/A]\n",
     [{"name": "A", "total": 1024 * MIB, "free": 512 * MIB},
      {"name": "B", "total": 2048 * MIB, "free": None}]),
    ("Tesla, with a comma, 16384, 100\n",
     [{"name": "Tesla, with a comma", "total": 16384 * MIB, "free": 100 * MIB}]),
    ("", []),
])
def test_parse_nvidia_smi(text: str, expected: list[dict[str, Any]]) -> None:
    assert resources.parse_nvidia_smi(text) == expected


@pytest.mark.parametrize("text", ["No devices were found", "A, lots, 1"])
def test_parse_nvidia_smi_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        resources.parse_nvidia_smi(text)


ROCM = {"card0": {"Card series": "Radeon RX 7900 XTX", "VRAM Total Memory (B)": "25753026560",
                  "VRAM Total Used Memory (B)": "1073741824"},
        "card1": {"Card model": "0x744c", "VRAM Total Memory (B)": "17163091968"},
        "system": {"Driver version": "6.7.0"}}


def test_parse_rocm_smi() -> None:
    assert resources.parse_rocm_smi(json.dumps(ROCM)) == [
        {"name": "Radeon RX 7900 XTX", "total": 25753026560, "free": 25753026560 - GIB},
        {"name": "0x744c", "total": 17163091968, "free": None}]
    for bad in ("not json", "[]"):
        with pytest.raises(ParseError):
            resources.parse_rocm_smi(bad)


@pytest.mark.parametrize(("size", "expected"), [
    (30 * GIB, [("gpu-offload", "warning", "medium")]),  # bigger than all VRAM
    (22 * GIB, [("gpu-offload", "info", "low")]),  # fits in 24 GiB, not in the 20 GiB free
    (4 * GIB, []),
])
def test_nvidia_vram_against_model(tmp_path: Path, size: int,
                                   expected: list[tuple[str, str, str]]) -> None:
    tool(tmp_path / "bin", "nvidia-smi", "echo 'NVIDIA GeForce RTX 4090, 24576, 20480'\n")
    root = meminfo_root(tmp_path, 64 * 1024 * 1024, 60 * 1024 * 1024)
    out = resources.run(make_ctx(root, model=MODEL, size=size,
                                 env={"PATH": str(tmp_path / "bin")}))
    assert out.facts["gpus"]["tools"]["nvidia-smi"] == "1 GPU(s)"
    assert out.facts["gpus"]["devices"] == [{
        "name": "NVIDIA GeForce RTX 4090", "total": 24 * GIB, "free": 20 * GIB,
        "vendor": "NVIDIA", "total_human": "24.0 GiB", "free_human": "20.0 GiB"}]
    assert [f for f in found(out) if f[0] == "gpu-offload"] == expected


def test_amd_gpu_through_rocm_smi(tmp_path: Path) -> None:
    tool(tmp_path / "bin", "rocm-smi", f"/bin/cat <<'EOF'\n{json.dumps(ROCM)}\nEOF\n")
    out = resources.run(make_ctx(meminfo_root(tmp_path, 1 << 25, 1 << 24),
                                 env={"PATH": str(tmp_path / "bin")}))
    assert [d["name"] for d in out.facts["gpus"]["devices"]] == ["Radeon RX 7900 XTX", "0x744c"]
    assert out.facts["gpus"]["tools"] == {"nvidia-smi": "not found on PATH",
                                          "rocm-smi": "2 GPU(s)"}


def test_failing_nvidia_smi_is_a_driver_warning(tmp_path: Path) -> None:
    tool(tmp_path / "bin", "nvidia-smi",
         "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
         "\" >&2\nexit 9\n")
    out = resources.run(make_ctx(meminfo_root(tmp_path, 1 << 25, 1 << 24),
                                 env={"PATH": str(tmp_path / "bin")}))
    assert out.facts["gpus"]["tools"]["nvidia-smi"] == (
        "failed: exit 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        "driver.")
    assert found(out) == [("gpu-offload", "warning", "low")]


def test_hanging_tool_is_bounded_in_time(tmp_path: Path) -> None:
    tool(tmp_path / "bin", "nvidia-smi", "exec /bin/sleep 30\n")
    ctx = make_ctx(meminfo_root(tmp_path, 1 << 25, 1 << 24),
                   env={"PATH": str(tmp_path / "bin")})
    ctx.options = Options(timeout=0.5)
    started = time.monotonic()
    out = resources.run(ctx)
    assert time.monotonic() - started < 3
    assert out.facts["gpus"]["tools"]["nvidia-smi"].endswith("did not finish within 0.5 s")


def test_endless_tool_output_is_bounded_in_bytes(tmp_path: Path) -> None:
    tool(tmp_path / "bin", "nvidia-smi", "exec /usr/bin/yes 'A, 1024, 512'\n")
    started = time.monotonic()
    run = resources.run_tool([str(tmp_path / "bin/nvidia-smi")], timeout=2)
    assert time.monotonic() - started < 3
    assert len(run.stdout) == resources.MAX_TOOL_OUTPUT
    assert run.error is not None


def test_run_tool_missing_binary() -> None:
    run = resources.run_tool(["/nonexistent/nvidia-smi"], timeout=1)
    assert run.error is not None and run.error.startswith("cannot run /nonexistent/nvidia-smi")


# ---------------------------------------------------------------------------------------------
# the model's size from the server


def test_model_size_from_api_tags_without_the_models_probe(
        emulator: Callable[..., Any], tmp_path: Path) -> None:
    emu = emulator(models=["llama3.1:8b;size=4.7G"])
    ctx = make_ctx(meminfo_root(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024), emu.url,
                   model="Llama3.1:8B")
    ctx.results["reachability"] = ProbeResult("reachability", "Server reachable", Status.PASS,
                                              "ok", facts={"looks_like_ollama": True})
    need, note = resources.model_need(ctx)
    assert need == resources.ModelNeed("Llama3.1:8B", 4_700_000_000, "GET /api/tags")
    assert note == "GET /api/tags"


def test_cli_memory_limit_on_a_small_machine(cli: Callable[..., CliRun],
                                             emulator: Callable[..., Any],
                                             tmp_path: Path) -> None:
    emu = emulator(models=["llama3.1:8b;size=4.7G"])
    root = meminfo_root(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024)
    run = cli("probe", "resources", "--host", emu.url, "-m", "llama3.1:8b", "--fs-root",
              str(root), "--json")
    doc = run.json()
    top = doc["diagnosis"][0]
    assert (top["cause"], top["severity"], top["confidence"]) == (
        "memory-limit", "error", "medium"), doc["diagnosis"]
    assert top["evidence"]["model"]["bytes"] == 4_700_000_000
    assert run.code == 1


def test_cli_this_machine_is_healthy(cli: Callable[..., CliRun],
                                     emulator: Callable[..., Any]) -> None:
    """No false alarm on the real machine (24 GiB, no GPU here) for a 2 GB model."""
    emu = emulator(models=["llama3.2:latest;size=2019393189"])
    run = cli("probe", "resources", "--host", emu.url, "-m", "llama3.2", "--json")
    doc = run.json()
    assert [d["cause"] for d in doc["diagnosis"] if d["severity"] in ("error", "critical")] == []
    check = next(c for c in doc["checks"] if c["id"] == "resources")
    assert check["status"] in ("pass", "warn")
    assert check["facts"]["memory"]["total"]["bytes"] > 0
    assert run.code == 0


def test_prepared_before_the_models_probe_the_same_outcome(tmp_path: Path) -> None:
    """Memory, GPUs and the disk are read by the runner's prepare step before the models probe
    has answered; the comparison with the model's size is the one the probe makes alone."""
    from ollama_doctor.runner import prepare_key

    root = meminfo_root(tmp_path, 4 * 1024 * 1024, 3 * 1024 * 1024)
    tool(tmp_path / "bin", "nvidia-smi", "echo 'NVIDIA T400, 2048, 1900'\n")
    env = {"PATH": str(tmp_path / "bin")}
    alone = resources.run(make_ctx(root, model=MODEL, size=8_000_000_000, env=env))
    early = make_ctx(root, model=MODEL, env=env)
    prepared = early.once(prepare_key("resources"), lambda: resources.prepare(early))
    assert prepared.memory is not None and len(prepared.gpus["devices"]) == 1
    early.results["models"] = with_model(8_000_000_000)
    judged = resources.run(early)

    def steady(out: Any) -> tuple[Any, ...]:  # the disk's free bytes move between two reads
        facts = {k: v for k, v in out.facts.items() if k != "disk"}
        summary = [p for p in out.summary.split("; ") if not p.endswith("free for models")]
        return out.status, summary, facts, out.facts["disk"]["folder"]

    assert steady(judged) == steady(alone)
    assert [f.to_dict() for f in judged.findings] == [f.to_dict() for f in alone.findings]
    assert found(judged) == [("memory-limit", "error", "medium"),
                             ("gpu-offload", "warning", "medium")]
