"""The run-time bound and Ctrl-C latency against servers that never finish an answer.

Starts a trickling server on loopback (``tests/support/trickle.py``: a status line, headers
or a body trickled one byte every half second, or an endless NDJSON stream), runs
``ollama-doctor check --timeout T`` against it several times and prints each run's wall time
(process start included) and peak RSS, against the documented bound of 1.3 × T + 1.5 s and
150 MB. Then starts a run against a hung server, sends SIGINT once it is under way and times
the exit. Loopback only; every run is bounded by a hard timeout.

    python benchmarks/bench_bounds.py [--timeout 2] [--runs 3]

Targets (issue 10): every run within 1.3 × T + 1.5 s and 150 MB; SIGINT → exit 130 within
0.5 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_load import machine

from tests.support.trickle import TrickleServer

CASES = [("status line", "status", ()), ("headers", "headers", ()), ("1 byte/s body", "body", ()),
         ("endless stream", "endless", ()), ("endless stream, -m", "endless", ("-m", "llama3.2"))]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if "proxy" not in k.lower() and not k.startswith("OLLAMA_")} | {"NO_COLOR": "1"}


def one_run(url: str, timeout: float, extra: tuple[str, ...]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one ``check`` process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_doctor", "check", "--host", url, "--timeout",
         f"{timeout:g}", "--json", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    deadline = time.monotonic() + 120
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def sigint_latency(timeout: float) -> tuple[float, int, str]:
    with TrickleServer("status", 0.5) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "check", "--host", server.url,
             "--timeout", f"{max(timeout, 30):g}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env())
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # well inside the run: probes are blocked on the server
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        return time.perf_counter() - sent, proc.returncode, err.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bound = 1.3 * args.timeout + 1.5
    print(f"machine: {machine()}")
    print(f"check --timeout {args.timeout:g}: bound {bound:.1f} s and 150 MB\n")
    print(f"{'server':<22} {'median s':>9} {'max s':>7} {'max RSS MB':>11}  exit codes")
    worst = 0.0
    for label, mode, extra in CASES:
        walls, rss, codes = [], [], []
        for _ in range(args.runs):
            with TrickleServer(mode, 0.5 if mode != "endless" else 0.1) as server:
                wall, peak, code = one_run(server.url, args.timeout, extra)
            walls.append(wall)
            rss.append(peak)
            codes.append(code)
        worst = max(worst, max(walls))
        print(f"{label:<22} {statistics.median(walls):>9.2f} {max(walls):>7.2f} "
              f"{max(rss):>11.1f}  {codes}")
    latencies = [sigint_latency(args.timeout) for _ in range(args.runs)]
    print(f"\nSIGINT → exit: {', '.join(f'{s * 1000:.0f} ms' for s, _, _ in latencies)} "
          f"(exit {sorted({c for _, c, _ in latencies})}, stderr {latencies[0][2]!r})")
    ok = worst <= bound and all(s <= 0.5 and c == 130 for s, c, _ in latencies)
    print("within the bounds" if ok else "OUT OF BOUNDS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
