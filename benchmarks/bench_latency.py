"""Accuracy of the ``latency`` probe's time to first byte, against ``curl``.

Starts the emulator, in its own process, on loopback with a fixed added delay, then measures
``GET /api/version`` alternately with the probe (its median TTFB over fresh connections, the
same thing curl does: one new connection per request) and with ``curl -w
'%{time_starttransfer}'``, N requests each, in rounds so that both see the same machine load.
Prints both medians, the difference, and PASS/FAIL against the target from issue #3: **within
2 ms or 5 % of curl's median, whichever is larger**. Everything runs on loopback; curl is told
to ignore proxy variables.

    python benchmarks/bench_latency.py [--runs 30] [--delay 20] [--url URL]

``--url`` measures an already running server instead of starting the emulator.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from ollama_doctor.context import Context, Options
from ollama_doctor.probes import latency
from ollama_doctor.target import parse_target

ROUND = 5  # requests per tool per round


def probe_ttfb(url: str, samples: int) -> tuple[list[float], int]:
    """Fresh-connection TTFB series (ms) from one run of the probe, and its failure count."""
    ctx = Context(target=parse_target(url), options=Options(samples=samples,
                                                            latency_threshold_ms=10_000))
    ctx.deadline = ctx.clock() + 60
    outcome = latency.run(ctx)
    facts = outcome.facts
    series: list[float] = list(facts.get("fresh", {}).get("ttfb_ms", []))
    return series, int(facts.get("failures", {}).get("count", 0))


def curl_ttfb(curl: str, url: str, runs: int) -> tuple[list[float], int]:
    """``time_starttransfer`` (ms) of ``runs`` curl processes, and how many failed."""
    out: list[float] = []
    failed = 0
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    for _ in range(runs):
        proc = subprocess.run(
            [curl, "--noproxy", "*", "-s", "-o", "/dev/null", "-w", "%{time_starttransfer}",
             "--max-time", "10", url], capture_output=True, text=True, env=env, timeout=20)
        try:
            value = float(proc.stdout.strip().replace(",", "."))
        except ValueError:
            value = 0.0
        if proc.returncode != 0 or value <= 0:
            failed += 1
            continue
        out.append(value * 1000)
    return out, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="requests per tool (default 30)")
    parser.add_argument("--delay", type=float, default=20.0,
                        help="delay the emulator adds to each answer, ms (default 20)")
    parser.add_argument("--url", help="measure this running server instead of the emulator")
    args = parser.parse_args()

    curl = shutil.which("curl") or ("/usr/bin/curl" if os.path.exists("/usr/bin/curl") else None)
    if curl is None:
        print("curl is missing: this benchmark compares the probe with curl's "
              "time_starttransfer. Install it (apt-get install curl) and run again.")
        return 2
    version = subprocess.run([curl, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[0]

    emu: subprocess.Popen[str] | None = None
    if args.url:
        base = args.url.rstrip("/")
        setup = f"server {base} (given with --url)"
    else:
        # its own process, as a real server is: in this one it would share the GIL with the
        # probe (and not with curl), which would skew the comparison
        emu = subprocess.Popen(
            [sys.executable, "-m", "ollama_doctor", "emulate", "--port", "0",
             "--fault", f"latency={args.delay:g}"], stdout=subprocess.PIPE, text=True)
        assert emu.stdout is not None
        base = emu.stdout.readline().strip().rstrip("/")
        if not base.startswith("http://"):
            emu.kill()
            print(f"the emulator did not start (it printed {base!r})")
            return 1
        setup = f"emulator process at {base} adding {args.delay:g} ms to each answer"
    url = base + latency.PATH
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}; {version}")
    print(f"setup:   {setup}; {args.runs} requests per tool, fresh connection each, "
          f"in rounds of {ROUND}")
    try:
        # one untimed round each, so that neither pays first-use costs
        probe_ttfb(base, 1)
        curl_ttfb(curl, url, 1)
        probe_ms: list[float] = []
        curl_ms: list[float] = []
        failures = {"probe": 0, "curl": 0}
        started = time.perf_counter()
        while len(probe_ms) < args.runs or len(curl_ms) < args.runs:
            if time.perf_counter() - started > 300:
                print("giving up after 300 s")
                break
            batch = min(ROUND, max(1, args.runs - len(probe_ms)))
            series, bad = probe_ttfb(base, batch)
            probe_ms += series
            failures["probe"] += bad
            series, bad = curl_ttfb(curl, url, min(ROUND, max(1, args.runs - len(curl_ms))))
            curl_ms += series
            failures["curl"] += bad
    finally:
        if emu is not None:
            emu.terminate()
            try:
                emu.wait(5)
            except subprocess.TimeoutExpired:
                emu.kill()
                emu.wait(5)

    if not probe_ms or not curl_ms:
        print(f"no measurements (failures: {failures})")
        return 1
    probe_med = statistics.median(probe_ms[:args.runs])
    curl_med = statistics.median(curl_ms[:args.runs])
    diff = probe_med - curl_med
    allowed = max(2.0, 0.05 * curl_med)
    verdict = "PASS" if abs(diff) <= allowed else "FAIL"
    print(f"{'tool':<8} {'n':>4} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'failed':>7}")
    for name, values in (("probe", probe_ms[:args.runs]), ("curl", curl_ms[:args.runs])):
        print(f"{name:<8} {len(values):>4} {statistics.median(values):>10.2f} "
              f"{min(values):>8.2f} {max(values):>8.2f} {failures[name]:>7}")
    print(f"difference (probe - curl): {diff:+.2f} ms; target: within {allowed:.2f} ms "
          f"(2 ms or 5 % of curl's median, whichever is larger) → {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
