#!/usr/bin/env python3
"""How each benchmark row grows with the mailbox: bench/run.py at several sizes, one table.

    python bench/scaling.py                        # 10,000, 30,000 and 100,000 messages
    python bench/scaling.py --counts 10000,30000   # other sizes
    python bench/scaling.py --reuse                # the table from results already there

Each size is a full ``bench/run.py --no-peer --repeat 1`` run (its own Dovecot, filled afresh;
results in ``bench/results-<count>.json``). The initial sync should grow linearly (its CPU
per message flat); every other row should stay flat: work in proportion to what changed,
not to the mailbox.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# row name in bench/run.py -> what it should do as the mailbox grows
SHAPES = {
    "triage sync: initial": "linear",
    "triage sync: no-op": "flat",
    "triage sync: incremental (10+10)": "flat",
    "triage overdue --json": "flat",
    "triage overdue --json, tidy inbox": "flat",
    "triage report": "flat",
    "triage report, tidy inbox": "flat",
    "search (in-process, worst query)": "flat",
}


def run(count: int, reuse: bool = False) -> dict[str, Any]:
    out = BENCH / f"results-{count}.json"
    if reuse and out.exists():
        return json.loads(out.read_text())
    subprocess.run([sys.executable, str(BENCH / "run.py"), "--count", str(count), "--no-peer",
                    "--repeat", "1", "--json", str(out)], check=True)
    return json.loads(out.read_text())


def table(results: list[dict[str, Any]]) -> list[str]:
    """Wall seconds (and for the initial sync CPU us a message) per size, and the growth
    from the smallest size to the largest against the growth of the mailbox."""
    counts = [r["count"] for r in results]
    growth = counts[-1] / counts[0]
    head = f"{'row':<36}" + "".join(f"{c:>14,}" for c in counts) + f"{'x':>8}  expected"
    lines = [head, "-" * len(head)]
    for name, shape in SHAPES.items():
        cells, costs = [], []
        for r in results:
            found = next((x for x in r["rows"] if x["name"] == name), None)
            wall = found["seconds"] if found else None
            cpu = found.get("cpu_seconds") if found else None
            costs.append(cpu or wall)  # CPU where measured: steadier on a busy machine
            if wall is None:
                cells.append(f"{'-':>14}")
            elif shape == "linear" and found and found.get("cpu_us_per_message"):
                cells.append(f"{wall:>7.2f}s/{found['cpu_us_per_message']:>3.0f}us")
            elif cpu:
                cells.append(f"{wall:>8.3f}/{cpu:.2f}s")
            else:
                cells.append(f"{wall:>13.3f}s")
        ratio = costs[-1] / costs[0] if costs[0] and costs[-1] else None
        want = f"~{growth:.0f}x (linear)" if shape == "linear" else "~1x (flat)"
        lines.append(f"{name:<36}" + "".join(cells)
                     + (f"{ratio:>8.2f}" if ratio else f"{'-':>8}") + f"  {want}")
    lines.append(f"(cells: wall / CPU seconds; the initial sync's: wall seconds / CPU us a "
                 f"message; x: the largest size's CPU (else wall) over the smallest's, the "
                 f"mailbox grew {growth:.0f}x)")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="10000,30000,100000",
                    help="comma-separated mailbox sizes (default 10000,30000,100000)")
    ap.add_argument("--reuse", action="store_true",
                    help="take a size's bench/results-<count>.json if it exists (from "
                         "bench/run.py --no-peer) instead of running it again")
    args = ap.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    results = [run(c, args.reuse) for c in counts]
    print("\nscaling")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
