"""Apply a task to every host of an inventory in-process, with the rollout's pacing tunable, and
print one JSON document: statuses, peak capacity. Used by bench/overload_bench.py only.

Usage: ``python -m bench.paced_apply INVENTORY TASK FORKS [--no-pacing]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from fleetbr.api import render_tasks
from fleetbr.changes.bridge.change import rollout
from fleetbr.inventory import load_inventory
from fleetbr.pacing import WindowPacer


def main() -> None:
    """Run the rollout and print its outcome."""
    inventory, task, forks = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    hosts = list(load_inventory(inventory).values())
    tasks = render_tasks(task, hosts)
    if "--no-pacing" in sys.argv:  # fleetbr 0.1: every host at once, nothing held back
        pacer = WindowPacer(forks, start=forks, lag_limit=float("inf"))
    else:
        pacer = WindowPacer(forks)
    result = asyncio.run(rollout(hosts, tasks, task.name, forks=forks, pacer=pacer))
    print(json.dumps({"counts": result.counts(), "peak": pacer.peak, "end": pacer.capacity,
                      "messages": {n: r.message for n, r in result.items()
                                   if r.status.value != "confirmed"}}))  # fmt: skip


if __name__ == "__main__":
    main()
