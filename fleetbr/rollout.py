"""Rollout: render the task for every host up front, then plan or apply in canary and batches,
with bounded concurrency and a failure threshold."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.pacing import WindowPacer
from fleetbr.report import SUCCESS, AggregatedResult, HostResult, Status
from fleetbr.runner import run_hosts
from fleetbr.tasks import BridgeTask, load_task, render_task
from fleetbr.transaction.change import BridgeChange, Change
from fleetbr.transaction.protocol import run_transaction
from fleetbr.transaction.recover import rollback_job
from fleetbr.transaction.status import plan_job, status_job

# Outcomes that count against --max-failures.
FAILURES = frozenset({Status.ROLLED_BACK, Status.FAILED, Status.UNREACHABLE})
# A canary passes only confirmed, or unchanged (it already carries the change, proven earlier);
# refused, failed, unreachable or rolled back canaries stop the rollout.
CANARY_PASSED = frozenset({Status.CONFIRMED, Status.UNCHANGED})


def render_all(task_path: Path, hosts: Sequence[HostSpec]) -> dict[str, BridgeTask]:
    """Render and validate the task for every host before contacting any (TaskError = exit 2)."""
    template = load_task(task_path)
    return {spec.name: render_task(template, spec.context()) for spec in hosts}


def batches(hosts: Sequence[HostSpec], canary: int, size: int | None) -> list[list[HostSpec]]:
    """Split hosts into a canary batch (if any) followed by batches of ``size`` (default: rest)."""
    if canary < 0:
        raise UsageError("--canary must be 0 or more")
    groups: list[list[HostSpec]] = []
    rest = list(hosts)
    if canary:
        groups.append(rest[:canary])
        rest = rest[canary:]
    step = size or max(1, len(rest))
    groups.extend(rest[i : i + step] for i in range(0, len(rest), step))
    return groups


async def rollout(
    hosts: Sequence[HostSpec],
    tasks: dict[str, BridgeTask],
    label: str,
    **options: Any,
) -> AggregatedResult:
    """Apply the bridge task (rendered per host) as :func:`rollout_changes` does."""
    changes: dict[str, Change] = {name: BridgeChange(task, label) for name, task in tasks.items()}
    return await rollout_changes(hosts, changes, **options)


async def rollout_changes(
    hosts: Sequence[HostSpec],
    changes: Mapping[str, Change],
    *,
    forks: int,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
    pacer: WindowPacer | None = None,
) -> AggregatedResult:
    """Apply batch after batch; stop when the canary is not confirmed or failures exceed
    ``max_failures``. Within a batch, a :class:`WindowPacer` bounds the hosts in flight."""
    pacer = pacer or WindowPacer(forks)

    async def job(spec: HostSpec) -> HostResult:
        change = changes[spec.name]
        async with pacer.slot():
            result = await run_transaction(
                spec, change, on_armed=lambda host: pacer.armed(host, change.timeout)
            )
            pacer.decided(spec.name, confirmed=result.status == Status.CONFIRMED)
            return result

    aggregated = AggregatedResult("apply")
    planned = batches(hosts, canary, batch_size)
    stop_reason = ""
    lag_watch = asyncio.create_task(pacer.watch_lag())
    try:
        for index, batch in enumerate(planned):
            if stop_reason:
                for spec in batch:
                    aggregated.add(HostResult(spec.name, Status.SKIPPED, stop_reason))
                continue
            done = await run_hosts("apply", batch, job, forks=len(batch))
            for result in done.values():
                aggregated.add(result)
            is_canary = canary > 0 and index == 0
            stop_reason = _stop_reason(aggregated, done, is_canary=is_canary,
                                       max_failures=max_failures)  # fmt: skip
    finally:
        lag_watch.cancel()
    return aggregated


def _stop_reason(
    aggregated: AggregatedResult,
    batch: AggregatedResult,
    *,
    is_canary: bool,
    max_failures: int | None,
) -> str:
    if is_canary:
        failed = [r.host for r in batch.values() if r.status not in CANARY_PASSED]
        if failed:
            return f"not attempted: canary {', '.join(failed)} did not end confirmed"
    failed_count = sum(1 for r in aggregated.values() if r.status in FAILURES)
    if max_failures is not None and failed_count > max_failures:
        return (
            f"not attempted: {failed_count} hosts failed, more than --max-failures {max_failures}"
        )
    return ""


async def rollback_hosts(hosts: Sequence[HostSpec], *, forks: int) -> AggregatedResult:
    """``fleetbr rollback`` on ``hosts``: here, rolled back is what was asked for (a success)."""
    done = await run_hosts("rollback", hosts, rollback_job, forks=forks)
    done.success = SUCCESS | {Status.ROLLED_BACK}
    return done


def run_change_command(args: argparse.Namespace, hosts: Sequence[HostSpec]) -> AggregatedResult:
    """``plan``, ``apply``, ``status`` and ``rollback`` from the CLI."""
    if args.command == "status":
        return asyncio.run(run_hosts("status", hosts, status_job, forks=args.forks))
    if args.command == "rollback":
        return asyncio.run(rollback_hosts(hosts, forks=args.forks))
    tasks = render_all(args.task, hosts)
    label = args.task.name
    if args.command == "plan":

        async def job(spec: HostSpec) -> HostResult:
            return await plan_job(spec, tasks[spec.name])

        return asyncio.run(run_hosts("plan", hosts, job, forks=args.forks))
    return asyncio.run(
        rollout(
            hosts,
            tasks,
            label,
            forks=args.forks,
            canary=args.canary,
            batch_size=args.batch_size,
            max_failures=args.max_failures,
        )
    )
