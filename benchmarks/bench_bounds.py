"""The run-time bound and Ctrl-C latency against servers that never finish an answer.

Starts a trickling server on loopback (``tests/support/trickle.py``: a status line, headers
or a body trickled one byte every half second, or an endless NDJSON stream), runs
``ollama-doctor check --timeout T`` against it several times and prints each run's wall time
(process start included) and peak RSS, against the documented bound of 1.3 × T + 1.5 s and
150 MB. Then starts a run against a hung server, sends SIGINT once it is under way and times
the exit. Loopback only; every run is bounded by a hard timeout.

Then a large model store: the emulator behind a front that answers ``GET /api/tags`` for
3 models and for 100,000 (a 38 MB answer, ``tests/test_bounds.py`` ``BigStore``); ``check
--timeout T`` against each, alternately, ``--store-runs`` times: median wall time, peak RSS of
the doctor's process (``ru_maxrss`` through a small wrapper process, since this one holds the
answer) and the ``/api/tags`` requests each run made. Before it, "did you mean" for a typo
among those 100,000 names, in this process (``modelname.suggest``: median of ``--runs``).

    python benchmarks/bench_bounds.py [--timeout 2] [--runs 3] [--store-runs 5]
                                      [--only trickle|store]

Targets (issue 10): every run within 1.3 × T + 1.5 s and 150 MB; SIGINT → exit 130 within
0.5 s; 100,000 models within 2× the wall time of 3 (medians), under 150 MB, one /api/tags
request per run.
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
from tests.test_bounds import BigStore, measured_check, store_names, tags_body

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


STORES = (3, 100_000)


def large_store(timeout: float, runs: int) -> bool:
    """A 3-model and a 100,000-model store, alternately (so that a change in the machine's
    load falls on both); True when within the targets."""
    from ollama_doctor.emulator import Emulator, EmulatorConfig, ModelSpec

    print(f"\nmodel store (check --timeout {timeout:g}, {runs} runs each, alternating)")
    emu = Emulator(EmulatorConfig(models=[ModelSpec.parse(m) for m in store_names(3)]))
    emu.start()
    fronts = {n: BigStore(emu.url, tags_body(n)) for n in STORES}
    sizes = {n: len(tags_body(n)) for n in STORES}
    seen: dict[int, list[tuple[float, float, int, str, int]]] = {n: [] for n in STORES}
    try:
        for front in fronts.values():
            front.start()
        for _ in range(runs):
            for n, front in fronts.items():
                before = len(front.tags_requests)
                got = measured_check(front.url, "--timeout", f"{timeout:g}", "--json")
                try:
                    check = next(c for c in got.run.json()["checks"] if c["id"] == "models")
                    models = f"{check['status']} ({check['facts'].get('count', '?')})"
                except (ValueError, KeyError, StopIteration):
                    models = "no report"
                seen[n].append((got.wall, got.peak_mb, got.run.code, models,
                                len(front.tags_requests) - before))
    finally:
        for front in fronts.values():
            front.stop()
        emu.stop()
    print(f"{'models':>9} {'/api/tags':>10} {'median s':>9} {'max s':>6} {'median RSS MB':>14} "
          f"{'max RSS MB':>11} {'GETs/run':>9}  models probe, exit codes")
    for n in STORES:
        rows = seen[n]
        print(f"{n:>9,} {sizes[n] / 1e6:>8.1f}MB {statistics.median(r[0] for r in rows):>9.2f} "
              f"{max(r[0] for r in rows):>6.2f} {statistics.median(r[1] for r in rows):>14.1f} "
              f"{max(r[1] for r in rows):>11.1f} {sorted({r[4] for r in rows})!s:>9}  "
              f"{sorted({r[3] for r in rows})} {[r[2] for r in rows]}")
    small, big = (statistics.median(r[0] for r in seen[n]) for n in STORES)
    ratio = big / small
    peak = max(r[1] for r in seen[STORES[-1]])
    once = all(r[4] == 1 for rows in seen.values() for r in rows)
    print(f"wall time ratio (medians) {ratio:.2f} (target ≤ 2); peak RSS {peak:.1f} MB (target "
          f"< 150); one /api/tags request per run: {'yes' if once else 'NO'}")
    print(f"load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return ratio <= 2 and peak < 150 and once


SUGGEST_TYPO = "modle-050000:latest"


def store_suggest(runs: int) -> None:
    """``-m`` with a typo against the 100,000 names of the large store: "did you mean" in this
    process (``modelname.suggest``), median of ``runs``, and how many names it scored fully."""
    from ollama_doctor import modelname

    names = [f"model-{i:06d}:latest" for i in range(STORES[-1])]  # tags_body's names
    scored = [0]
    real_score = modelname.score

    def counted(requested: str, candidate: str) -> float:
        scored[0] += 1
        return real_score(requested, candidate)

    walls = []
    modelname.score = counted  # type: ignore[assignment]
    try:
        for _ in range(runs):
            scored[0] = 0
            started = time.perf_counter()
            got = modelname.suggest(SUGGEST_TYPO, names)
            walls.append(time.perf_counter() - started)
    finally:
        modelname.score = real_score  # type: ignore[assignment]
    print(f"\ndid you mean {SUGGEST_TYPO!r} among {len(names):,} names: median "
          f"{statistics.median(walls):.3f} s of {runs} (max {max(walls):.3f}); {scored[0]} "
          f"scored fully; {got}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store-runs", type=int, default=5)
    parser.add_argument("--only", choices=("trickle", "store"))
    args = parser.parse_args()
    bound = 1.3 * args.timeout + 1.5
    print(f"machine: {machine()}")
    if args.only == "store":
        store_suggest(args.runs)
        ok = large_store(args.timeout, args.store_runs)
        print("within the bounds" if ok else "OUT OF BOUNDS")
        return 0 if ok else 1
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
    if args.only is None:  # last: it builds a 38 MB answer in this process
        store_suggest(args.runs)
        ok = large_store(args.timeout, args.store_runs) and ok
    print("within the bounds" if ok else "OUT OF BOUNDS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
