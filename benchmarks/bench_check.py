"""Time ``ollama-doctor`` as a whole process, the way a user waits for it.

Scenarios: a healthy emulator, a closed port, a server that accepts and never answers, plus
``--help`` and ``explain``. Prints the median and worst wall time of N runs and the peak RSS of
one ``check`` (from ``wait4``'s rusage of that child alone). Everything runs on loopback.

    python benchmarks/bench_check.py [--runs 7] [--timeout 2]

Targets (issue #2, 2-core machine): closed port ≤ 0.5 s, healthy ≤ 0.7 s, silent server
≤ 1.3 × --timeout, --help and explain ≤ 0.25 s, peak memory ≤ 80 MB.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

from ollama_doctor.emulator import Emulator, EmulatorConfig


def run_once(argv: list[str]) -> tuple[float, int, float]:
    """Wall seconds, exit code and peak RSS (MB) of one run of the CLI."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()
           and not k.startswith("OLLAMA_")}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ollama_doctor", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage.ru_maxrss / 1024


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    timeout = str(args.timeout)

    healthy = Emulator(EmulatorConfig())
    healthy.start()
    silent = Emulator(EmulatorConfig(faults={"hang": ""}))
    silent.start()
    scenarios = [
        ("--help", ["--help"], None),
        ("explain 429", ["explain", "429"], None),
        ("check: healthy emulator", ["check", "--host", healthy.url, "--timeout", timeout], 0.7),
        ("check: closed port", ["check", "--host", f"127.0.0.1:{closed_port()}",
                                "--timeout", timeout], 0.5),
        ("check: silent server", ["check", "--host", silent.url, "--timeout", timeout],
         1.3 * args.timeout),
    ]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"{'scenario':<28} {'median s':>9} {'worst s':>8} {'target s':>9} {'peak MB':>8} exit")
    try:
        for name, argv, target in scenarios:
            runs = [run_once(argv) for _ in range(args.runs)]
            walls = [r[0] for r in runs]
            peak = max(r[2] for r in runs)
            goal = target if target is not None else 0.25
            mark = "ok" if statistics.median(walls) <= goal else "SLOW"
            print(f"{name:<28} {statistics.median(walls):>9.3f} {max(walls):>8.3f} "
                  f"{goal:>9.2f} {peak:>8.1f} {runs[0][1]}  {mark}")
    finally:
        healthy.stop()
        silent.stop()


if __name__ == "__main__":
    main()
