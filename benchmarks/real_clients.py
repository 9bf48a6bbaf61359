"""The real-client tier as a table: how often the doctor reads real clients' errors right.

For every fixture of ``tests/clients/fixtures`` whose call failed (what a real client library
printed in a real failure situation, see ``tests/clients/record.py``), per client:

- live top-1: ``check --json --error-file FIXTURE`` in the rebuilt situation names the expected
  cause first (and exits 1) — needs root; ``--offline`` skips it;
- offline top-3: ``explain``'s reader (``errortext.analyse``) has the expected cause in its
  top 3 where the text carries the evidence, among its candidates where only a live check can
  decide;
- target: the server the doctor reads from the text (offline) and probes (live) is the one the
  client called (scheme, host, port);
- fully right: all of the above.

Then every miss with the doctor's answer.

    sudo python benchmarks/real_clients.py            # live and offline
    python benchmarks/real_clients.py --offline       # offline only (no root)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.clients import checks
from tests.clients.apps import CLIENTS


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f} %)" if d else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="skip the live checks")
    parser.add_argument("--only", default="", help="comma-separated situation ids")
    args = parser.parse_args()
    entries = checks.failing(checks.load_manifest())
    if args.only:
        entries = [e for e in entries if e["situation"] in args.only.split(",")]
    if not entries:
        print("no fixtures: run python tests/clients/record.py --install --record")
        return 2
    live_on = not args.offline and os.geteuid() == 0
    lives = checks.live(entries) if live_on else {}
    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    misses: list[str] = []
    for entry in entries:
        key = (entry["situation"], entry["client"])
        text = (checks.FIXTURES / entry["file"]).read_text()
        row = rows[entry["client"]]
        row["fixtures"] += 1
        off = None if checks.printed_nothing(text) else checks.offline(entry, text)
        off_ok = off is None or not off.problems
        off_target_ok = off is None or not any(p.startswith("target") for p in off.problems)
        row["offline"] += off_ok
        live = lives.get(key)
        live_ok = live is not None and not live.problems
        live_target_ok = live is not None and not any(
            p.startswith("target") for p in live.problems)
        row["live"] += live_ok
        row["target"] += off_target_ok and (live_target_ok or not live_on)
        row["right"] += off_ok and (live_ok or not live_on)
        if not off_ok or (live_on and not live_ok):
            why = []
            if off is not None and off.problems:
                why.append(f"offline [{entry['evidence']}]: {'; '.join(off.problems)} "
                           f"(client {off.client}, target {off.target})")
            if live is not None and live.problems:
                why.append(f"live: {'; '.join(live.problems)} (top {live.top}, exit "
                           f"{live.exit_code}, target {live.target})")
            misses.append(f"{entry['situation']}/{entry['client']} (expected "
                          f"{entry['expected']}): " + " | ".join(why))
    head = f"{'client':22} {'fixtures':>8} {'live top-1':>14} {'offline top-3':>14} " \
           f"{'target':>14} {'fully right':>14}"
    print(head)
    print("-" * len(head))
    total: dict[str, int] = defaultdict(int)
    for client in [*CLIENTS, "all"]:
        counts = total if client == "all" else rows.get(client)
        if not counts:
            continue
        n = counts["fixtures"]
        live_col = _pct(counts["live"], n) if live_on else "(not run)"
        print(f"{client:22} {n:>8} {live_col:>14} {_pct(counts['offline'], n):>14} "
              f"{_pct(counts['target'], n):>14} {_pct(counts['right'], n):>14}")
        if client != "all":
            for k, v in counts.items():
                total[k] += v
    print(f"\nmisses ({len(misses)}):")
    for line in misses:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
