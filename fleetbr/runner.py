"""Run one coroutine per host on a single event loop, at most ``forks`` at a time.

Every exception becomes that host's :class:`HostResult` (data), never a crash of the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from fleetbr.errors import (
    ConnectFailed,
    FleetbrError,
    SessionLost,
    TransportError,
)
from fleetbr.inventory import HostSpec
from fleetbr.report import AggregatedResult, HostResult, Status

log = logging.getLogger(__name__)

HostJob = Callable[[HostSpec], Awaitable[HostResult]]


async def run_hosts(
    command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
) -> AggregatedResult:
    """Run ``job`` for every host with bounded concurrency; results in inventory order."""
    limit = asyncio.Semaphore(max(1, forks))

    async def guarded(spec: HostSpec) -> HostResult:
        async with limit:
            return await run_one(spec, job)

    outcomes = await asyncio.gather(*(guarded(spec) for spec in hosts))
    aggregated = AggregatedResult(command)
    for outcome in outcomes:
        aggregated.add(outcome)
    return aggregated


async def run_one(spec: HostSpec, job: HostJob) -> HostResult:
    """Run ``job`` for one host, turning any error into a result."""
    started = time.monotonic()
    try:
        result = await job(spec)
    except (ConnectFailed, SessionLost) as exc:
        result = HostResult(spec.name, Status.UNREACHABLE, str(exc))
    except (TransportError, FleetbrError) as exc:
        result = HostResult(spec.name, Status.FAILED, str(exc))
    except Exception as exc:  # a bug must not take the other hosts down with it
        log.exception("unexpected error on %s", spec.name)
        result = HostResult(
            spec.name, Status.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        )
    result.elapsed = time.monotonic() - started
    return result
