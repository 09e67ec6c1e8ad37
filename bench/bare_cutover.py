"""Bare baseline for ``fleetbr apply``: the same commands, rendered with fleetbr's own functions,
over the same connections, with no verification, reporting or orchestration.

Per host: connection A runs facts, stage, arm+apply; a FRESH connection B runs facts with the
probes, then disarm. Prints ``{host: decision}`` as JSON ("confirmed" when the disarm won).

Usage: ``python -m bench.bare_cutover TARGETS.json TASK.yaml [--forks N]`` (at most N hosts at
once; default all at once).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.bare_ssh import Target, bounded, forks_arg, load_targets, run_sh, session
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, load_task, render_task
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.inventory import SSHOptions
from fleetbr.plan import plan_host
from fleetbr.transaction.protocol import min_timeout
from fleetbr.transaction.scripts import (
    arm_apply_script,
    disarm_script,
    markers,
    new_nonce,
    new_txid,
    stage_script,
    staged_scripts,
)


async def one(target: Target, task: BridgeTask, label: str) -> str:
    """Cut one host over; returns what the disarm reported."""
    timeout = task.deadman_timeout
    async with session(target) as conn:
        facts = parse_facts(await run_sh(conn, facts_script()))
        shortest = min_timeout(SSHOptions(connect_timeout=target["connect_timeout"]))
        plan = plan_host(task, facts, min_timeout=shortest)
        if plan.refusal or plan.unchanged:
            return f"not applied: {plan.refusal or 'unchanged'}"
        txid = new_txid()
        staged = staged_scripts(txid, plan)
        await run_sh(conn, stage_script(txid, plan, staged, label, nonce=new_nonce()))
        wait = max(1.0, min(10.0, timeout / 4))
        script = arm_apply_script(
            txid, timeout, use_systemd=facts.pid1_systemd, wait=wait, nonce=new_nonce()
        )
        await run_sh(conn, script)
    async with session(target) as conn:
        await run_sh(conn, facts_script(plan.probes))
        nonce = new_nonce()
        out = await run_sh(conn, disarm_script(txid, nonce=nonce))
    return markers(out, nonce).get("decision", "none")


async def main(
    targets: list[Target], template: TaskTemplate, label: str, forks: int | None = None
) -> dict[str, str]:
    """Decision of every host, by name."""
    tasks = [render_task(template, t["context"]) for t in targets]
    jobs = (one(t, task, label) for t, task in zip(targets, tasks, strict=True))
    decisions = await bounded(jobs, forks)
    return {t["name"]: d for t, d in zip(targets, decisions, strict=True)}


if __name__ == "__main__":
    task_path = Path(sys.argv[2])
    result = asyncio.run(
        main(
            load_targets(Path(sys.argv[1])),
            load_task(task_path),
            task_path.name,
            forks_arg(sys.argv),
        )
    )
    json.dump(result, sys.stdout)
