"""Pacing accuracy of the load probe: achieved request rate against the target rate.

Starts the emulator in its own process (``ollama-doctor emulate --port 0``, so that it does not
share this interpreter's GIL with the sender), then holds each target rate for a few seconds
with the load probe's own sender (``probes.load._drive``: open-loop ``pacing.ramp`` on one
``httpx.AsyncClient``, ``GET /api/version``). The achieved rate is (n − 1) / (last start −
first start) of the requests sent; the answered rate and the median latency are shown too.

    python benchmarks/bench_load.py [--rates 50,100,200,300,400,500] [--seconds 3] [--runs 3]

Target (issue #4, 2-core machine): achieved within 5 % of the target up to at least 500/s,
over the whole hold (a run that stopped early, at the in-flight bound, fails). The median of
``--runs`` runs per rate is judged; the machine and its load average are printed,
because other processes on a 2-core machine take the sender's CPU and lower what it achieves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time

from ollama_doctor import pacing
from ollama_doctor.probes import load

TOLERANCE = 0.05


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load1, load5, _ = os.getloadavg()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, load average {load1:.2f} / {load5:.2f}")


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()
           and not k.startswith("OLLAMA_")}
    proc = subprocess.Popen([sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the emulator did not start: {url!r}")
    return proc, url


async def hold(url: str, rate: float, seconds: float) -> dict[str, float | None]:
    plan = pacing.Plan(rates=(rate,), durations=(seconds,), max_requests=10**6,
                       max_seconds=seconds + 1, max_in_flight=load.MAX_IN_FLIGHT, drain_s=2.0)
    version = url + "/api/version"
    result = await load._drive(plan, "GET", version, None, {}, 5.0, 5.0, version)
    stats = pacing.step_stats(result.samples, 0, rate)
    done = [s.finished for s in result.samples if s.done]
    answered = pacing.achieved_rate(done)
    return {"achieved": stats["achieved_rate"], "answered": answered, "p50_ms": stats["p50_ms"],
            "sent": stats["sent"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,300,400,500")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    print(f"machine: {machine()}")
    proc, url = start_emulator()
    failed = False
    try:
        asyncio.run(hold(url, 50.0, 0.5))  # warm the connection pool and the code paths
        print(f"{'target/s':>9} {'achieved/s':>11} {'error':>7} {'answered/s':>11} "
              f"{'p50 ms':>7} {'sent':>6}  verdict")
        for rate in rates:
            runs = [asyncio.run(hold(url, rate, args.seconds)) for _ in range(args.runs)]
            achieved = statistics.median(r["achieved"] or 0.0 for r in runs)
            answered = statistics.median(r["answered"] or 0.0 for r in runs)
            p50 = statistics.median(r["p50_ms"] or 0.0 for r in runs)
            sent = statistics.median(r["sent"] or 0 for r in runs)
            error = (achieved - rate) / rate
            # the whole hold must have run: a sender that gave up early proves nothing
            ok = abs(error) <= TOLERANCE and sent >= 0.95 * rate * args.seconds
            failed |= not ok
            print(f"{rate:9.0f} {achieved:11.1f} {error:+7.1%} {answered:11.1f} {p50:7.1f} "
                  f"{sent:6.0f}  {'PASS' if ok else 'FAIL'}")
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(5)
    print(f"machine after: {machine()}")
    print("overall:", "FAIL" if failed else "PASS",
          f"(achieved within {TOLERANCE:.0%} of the target at every rate)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
