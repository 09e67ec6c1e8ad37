"""``fleetbr demo``: bring up the lab, cut every host over to br0 under the dead-man timer, with
one host given a change that cuts it off, so it visibly rolls back by itself. It shows what the
hosts did; tests/integration/test_demo.py judges it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from fleetbr import lab
from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.facts.gather import facts_job
from fleetbr.inventory import load_inventory, select_hosts
from fleetbr.lab.demos.engine import apply_tasks
from fleetbr.output import Human, render_results
from fleetbr.runner import run_hosts


def run_demo(
    lab_dir: Path, *, hosts: int, task: Path, cut_task: Path, timeout: int, keep: bool
) -> int:
    """Run the demo and show what every host did; 0 once it ran to its end, whatever the hosts
    did (the tables say it: all confirmed but the cut-off host, which rolled back by itself)."""
    out = Human()
    out.line(f"1/4 bringing up a lab of {hosts} SSH hosts in network namespaces", style="bold")
    built = lab.up(lab_dir, hosts=hosts)
    try:
        specs = select_hosts(load_inventory(built.inventory_dir), None)
        cut = specs[-1].name
        templates = {name: load_task(path) for name, path in (("ok", task), ("cut", cut_task))}
        tasks = {
            spec.name: dataclasses.replace(
                render_task(templates["cut" if spec.name == cut else "ok"], spec.context()),
                deadman_timeout=timeout,
            )
            for spec in specs
        }
        out.line(f"2/4 facts before the change ({built.inventory_dir})", style="bold")
        render_results(asyncio.run(run_hosts("facts", specs, facts_job, forks=50)), as_json=False)
        out.line(
            f"3/4 applying {task} to {len(specs) - 1} hosts and {cut_task} to {cut} "
            f"(a wrong address: it will lose its connection and must revert by itself within "
            f"{timeout}s)",
            style="bold",
        )
        result = asyncio.run(apply_tasks(specs, tasks, task, label=task.name, forks=50,
                                         history=lab_dir / "history.sqlite3"))  # fmt: skip
        render_results(result, as_json=False)
        out.line("4/4 facts after the change (fresh connections)", style="bold")
        render_results(asyncio.run(run_hosts("facts", specs, facts_job, forks=50)), as_json=False)
        return 0
    finally:
        if keep:
            out.line(f"lab kept: fleetbr -i {built.inventory_dir} status; fleetbr lab down "
                     f"--dir {lab_dir}")  # fmt: skip
        else:
            lab.down(lab_dir)
