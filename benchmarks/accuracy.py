"""Run the scenario matrix and print how often the first cause named is the real one.

For every scenario of ``tests/scenarios.py`` (failure-modes.md §4, reproduced on loopback, in
fixture trees and in network namespaces): the expected cause, the top cause, the rank of the
expected cause, and the time to diagnosis. Then the healthy variants (the same setups without
the fault): any error-level cause there is a false alarm. Totals: top-1 accuracy, false alarms,
median and worst time to diagnosis, and how many scenarios without a model load finished
within 2 × --timeout (5 s by default, so 10 s).

    sudo python benchmarks/accuracy.py          # as root, so namespace scenarios run too

Targets (issue #6): 100 % top-1, zero false alarms, every scenario without a model load
diagnosed in under 2 × --timeout.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.scenarios import SCENARIOS, Result, run_scenario

BUDGET_S = 2 * 5.0  # 2 × the default --timeout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="scenario ids to run")
    args = parser.parse_args()
    root = os.geteuid() == 0
    chosen = [s for s in SCENARIOS if not args.only or s.id in args.only]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}"
          f"{'' if root else ' (not root: network-namespace scenarios skipped)'}")
    print()
    print(f"{'scenario':<6} {'expected':<22} {'top cause':<22} {'code':>4} {'rank':>4} "
          f"{'seconds':>7}  ")
    faults: list[tuple[Result, bool]] = []
    for scenario in chosen:
        if scenario.netns and not root:
            continue
        try:
            result = run_scenario(scenario, process=True)
        except Exception as exc:
            print(f"{scenario.id:<6} {scenario.expected:<22} setup failed: {exc}")
            continue
        ok = result.top == scenario.expected and result.code == scenario.code
        faults.append((result, ok))
        code = "-" if result.code is None else str(result.code)
        rank = "-" if result.rank is None else str(result.rank)
        slow = "" if scenario.model_load or result.seconds < BUDGET_S else "  over 2×timeout"
        print(f"{scenario.id:<6} {scenario.expected:<22} {result.top or '-':<22} {code:>4} "
              f"{rank:>4} {result.seconds:>7.2f}  {'ok' if ok else 'MISS'}{slow}")
    print()
    alarms: list[Result] = []
    healthy_runs = 0
    for scenario in chosen:
        if scenario.healthy is None or (scenario.netns and not root):
            continue
        try:
            result = run_scenario(scenario, "healthy", process=True)
        except Exception as exc:
            print(f"{scenario.id:<6} healthy variant: setup failed: {exc}")
            continue
        healthy_runs += 1
        if result.error_causes:
            alarms.append(result)
            print(f"{scenario.id:<6} healthy variant: FALSE ALARM {', '.join(result.error_causes)}")
    hits = sum(1 for _, ok in faults if ok)
    times = [r.seconds for r, _ in faults]
    quick = [r for r, _ in faults
             if not next(s for s in SCENARIOS if s.id == r.scenario).model_load]
    within = sum(1 for r in quick if r.seconds < BUDGET_S)
    print(f"top-1 accuracy: {hits}/{len(faults)} "
          f"({100 * hits / max(len(faults), 1):.0f} %)")
    print(f"false alarms on healthy variants: {len(alarms)}/{healthy_runs}")
    if times:
        print(f"time to diagnosis: median {statistics.median(times):.2f} s, "
              f"worst {max(times):.2f} s")
    print(f"without a model load, within 2 × --timeout ({BUDGET_S:.0f} s): "
          f"{within}/{len(quick)}")
    return 0 if hits == len(faults) and not alarms and within == len(quick) else 1


if __name__ == "__main__":
    sys.exit(main())
