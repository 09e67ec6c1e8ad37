"""The demos' door into the engine: an ``apply`` of per-host bridge tasks (the demo cuts one host
with another task) as one :class:`~fleetbr.core.request.RunRequest` of origin ``demo``, run and
recorded by the one assembler like any other front door's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate
from fleetbr.core.assemble import prepare, run_prepared
from fleetbr.core.request import (
    ChangeRef,
    HistoryOptions,
    RolloutOptions,
    RunRequest,
    Selection,
)
from fleetbr.inventory import HostSpec
from fleetbr.report import AggregatedResult


async def apply_tasks(
    specs: Sequence[HostSpec],
    tasks: Mapping[str, BridgeTask],
    source: Path | TaskTemplate,
    *,
    label: str,
    forks: int,
    history: Path | None,
) -> AggregatedResult:
    """Apply ``tasks`` (host name -> its rendered task, from ``source``) to ``specs`` through
    the engine, recorded in ``history`` (None: not recorded)."""
    recorded = source if isinstance(source, Path) else None
    change = ChangeRef("bridge", source, label=label, recorded_file=recorded)
    request = RunRequest(
        "apply",
        Selection(hosts=tuple(specs)),
        change,
        rollout=RolloutOptions(forks=forks),
        history=HistoryOptions(path=history),
        origin="demo",
    )
    changes = {name: BridgeChange(task, label) for name, task in tasks.items()}
    outcome = await run_prepared(prepare(request, changes=changes))
    return outcome.result
