"""Rollout: render the task for every host up front, then plan or apply in canary and batches,
with bounded concurrency and a failure threshold."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.report import SUCCESS, AggregatedResult, HostResult, Status
from fleetbr.runner import run_hosts
from fleetbr.tasks import BridgeTask, load_task, render_task
from fleetbr.transaction.protocol import apply_host
from fleetbr.transaction.recover import rollback_job
from fleetbr.transaction.status import plan_job, status_job

# Outcomes that count against --max-failures and stop the rollout after a failed canary.
FAILURES = frozenset({Status.ROLLED_BACK, Status.FAILED, Status.UNREACHABLE})


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
    *,
    forks: int,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
) -> AggregatedResult:
    """Apply batch after batch; stop when the canary fails or failures exceed ``max_failures``."""

    async def job(spec: HostSpec) -> HostResult:
        return await apply_host(spec, tasks[spec.name], label)

    aggregated = AggregatedResult("apply")
    planned = batches(hosts, canary, batch_size)
    stop_reason = ""
    for index, batch in enumerate(planned):
        if stop_reason:
            for spec in batch:
                aggregated.add(HostResult(spec.name, Status.SKIPPED, stop_reason))
            continue
        done = await run_hosts("apply", batch, job, forks=forks)
        for result in done.values():
            aggregated.add(result)
        stop_reason = _stop_reason(aggregated, is_canary=canary > 0 and index == 0,
                                   max_failures=max_failures)  # fmt: skip
    return aggregated


def _stop_reason(aggregated: AggregatedResult, *, is_canary: bool, max_failures: int | None) -> str:
    failed = sum(1 for r in aggregated.values() if r.status in FAILURES)
    if is_canary and failed:
        return "not attempted: the canary batch failed"
    if max_failures is not None and failed > max_failures:
        return f"not attempted: {failed} hosts failed, more than --max-failures {max_failures}"
    return ""


def run_change_command(args: argparse.Namespace, hosts: Sequence[HostSpec]) -> AggregatedResult:
    """``plan``, ``apply``, ``status`` and ``rollback`` from the CLI."""
    if args.command == "status":
        return asyncio.run(run_hosts("status", hosts, status_job, forks=args.forks))
    if args.command == "rollback":
        done = asyncio.run(run_hosts("rollback", hosts, rollback_job, forks=args.forks))
        done.success = SUCCESS | {Status.ROLLED_BACK}  # here, rolled back is what was asked for
        return done
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
