"""Cost curve of ``check --targets``: 10 / 100 / 1,000 targets, half healthy, half refusing.

The healthy targets are emulated servers, many listeners in ONE helper process (each
``Emulator`` is an asyncio loop on its own loopback port); the refusing ones are loopback
ports with nothing listening. The fleet runs through the real command line
(``python -m ollama_doctor check --targets FILE --json``), so the wall time includes start-up.

    python benchmarks/bench_fleet.py                  # 10, 100, 1000
    python benchmarks/bench_fleet.py --sizes 10,100 --healthy-share 0.5 --parallel 32

The doctor runs with no proxy, ``OLLAMA_*`` or ``SSL_CERT_*`` variables: with ``SSL_CERT_FILE``
set, the latency probe loads that bundle once per target (50-100 ms of CPU each), which
dominates the cost of plain-http targets (noted in the CHANGELOG).

Targets on the project's 2-core machine: 100 targets <= 5 s, 1,000 targets <= 10 s.
Only loopback is touched. On a busy machine compare the CPU columns, not the wall time: the
wall time on an idle 2-core machine is at least (doctor + emulator CPU) / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVE = """
import sys, time
from ollama_doctor.emulator import Emulator, EmulatorConfig
emus = []
for _ in range(int(sys.argv[1])):
    emu = Emulator(EmulatorConfig())
    print(emu.start(), flush=True)
    emus.append(emu)
print("ready", flush=True)
sys.stdin.read()
"""

BUDGET = {100: 5.0, 1000: 10.0}


def free_ports(count: int) -> list[int]:
    """Loopback ports with nothing listening (bound together, then released)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def start_servers(count: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(count)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline().strip()
        if line == "ready" or not line:
            break
        urls.append(line)
    if len(urls) != count:
        proc.kill()
        raise SystemExit(f"emulator process started {len(urls)} of {count} servers")
    return proc, urls


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (the emulator helper), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(size: int, healthy_share: float, parallel: int, servers: list[str],
        server_pid: int) -> dict[str, object]:
    healthy = round(size * healthy_share)
    urls = [servers[i % len(servers)] for i in range(healthy)]
    urls += [f"http://127.0.0.1:{p}" for p in free_ports(size - healthy)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "targets.txt")
        path.write_text("".join(f"{u} model=llama3.2\n" for u in urls), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")
               and not k.startswith(("OLLAMA_", "SSL_CERT_"))}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        emulator_before = cpu_seconds(server_pid)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ollama_doctor", "check", "--targets", str(path), "--json",
             "--parallel", str(parallel)], capture_output=True, text=True, env=env, timeout=300)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        emulator_cpu = cpu_seconds(server_pid) - emulator_before
    doctor_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reports = json.loads(proc.stdout)
    statuses = [r["summary"]["status"] for r in reports]
    return {"targets": size, "healthy": statuses.count("healthy"),
            "failing": statuses.count("failing"), "other": len(statuses)
            - statuses.count("healthy") - statuses.count("failing"),
            "exit": proc.returncode, "wall_s": round(wall, 2),
            "per_target_ms": round(wall / size * 1000, 1),
            "doctor_cpu_s": round(doctor_cpu, 2), "emulator_cpu_s": round(emulator_cpu, 2),
            "budget_s": BUDGET.get(size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--healthy-share", type=float, default=0.5)
    parser.add_argument("--parallel", type=int, default=16,
                        help="check --parallel (16: loopback checks are CPU-bound)")
    parser.add_argument("--servers", type=int, default=50,
                        help="emulator listeners in the helper process")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    proc, servers = start_servers(args.servers)
    try:
        print(f"{'targets':>8} {'healthy':>8} {'failing':>8} {'wall s':>8} "
              f"{'ms/target':>10} {'doctor cpu s':>13} {'emulator cpu s':>15} {'budget':>7}")
        for size in sizes:
            row = run(size, args.healthy_share, args.parallel, servers, proc.pid)
            budget = row["budget_s"]
            verdict = "" if budget is None else (
                "ok" if float(row["wall_s"]) <= float(budget) else "OVER")  # type: ignore[arg-type]
            print(f"{row['targets']:>8} {row['healthy']:>8} {row['failing']:>8} "
                  f"{row['wall_s']:>8} {row['per_target_ms']:>10} "
                  f"{row['doctor_cpu_s']:>13} {row['emulator_cpu_s']:>15} "
                  f"{'' if budget is None else budget:>7} {verdict}", flush=True)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
