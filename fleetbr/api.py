"""fleetbr's Python API: the CLI's commands as functions (docs/api.md).

```python
import fleetbr.api as fleetbr

hosts = fleetbr.load_inventory("inventory", limit="rack-a")
print(fleetbr.plan(hosts, "tasks/bridge.yaml").counts())
done = fleetbr.apply(hosts, "tasks/bridge.yaml", canary=1, batch_size=10, max_failures=2)
for name, result in done.items():
    print(name, result.status, result.message)
```

Every fleet function runs exactly what the matching CLI command runs (the same rollout, runner,
facts, plan, status and rollback jobs) and returns an :class:`~fleetbr.report.AggregatedResult`:
one :class:`~fleetbr.report.HostResult` per host, in inventory order; a host's failure is data
(its status), never an exception. Each has an ``async`` twin (``apply_async``, ...) for callers
that run an event loop. Bad input (inventory, task file, options) raises
:class:`~fleetbr.errors.UsageError` before any host is contacted; fleetbr raises nothing outside
its exception tree (:mod:`fleetbr.errors`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fleetbr import inventory
from fleetbr.errors import UsageError
from fleetbr.facts.gather import facts_job, gather
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import Plan, plan_host
from fleetbr.report import AggregatedResult, HostResult, Status
from fleetbr.rollout import rollback_hosts, rollout
from fleetbr.runner import run_hosts
from fleetbr.tasks import BridgeTask, TaskTemplate, render_task
from fleetbr.tasks import load_task as _load_task
from fleetbr.transaction.protocol import min_timeout
from fleetbr.transaction.status import plan_job, status_job
from fleetbr.transport import open_session

__all__ = [
    "DEFAULT_FORKS",
    "AggregatedResult",
    "HostFacts",
    "HostResult",
    "HostSpec",
    "Plan",
    "Status",
    "TaskSource",
    "TaskTemplate",
    "apply",
    "apply_async",
    "facts",
    "facts_async",
    "host_facts",
    "host_facts_async",
    "host_plan",
    "host_plan_async",
    "load_inventory",
    "load_task",
    "plan",
    "plan_async",
    "render_tasks",
    "rollback",
    "rollback_async",
    "status",
    "status_async",
]

DEFAULT_FORKS = 50  # as the CLI's -f

TaskSource = str | os.PathLike[str] | TaskTemplate
"""A task file's path, or a task already read with :func:`load_task`."""

T = TypeVar("T")


def load_inventory(
    path: str | os.PathLike[str],
    limit: str | None = None,
    *,
    key: str | None = None,
    known_hosts: str | None = None,
) -> list[HostSpec]:
    """The hosts of the inventory directory ``path`` that ``limit`` selects, as ``fleetbr -i
    PATH -l LIMIT [--key KEY] [--known-hosts FILE]`` selects them: host names, group names and
    globs, comma separated; ``None`` or ``"all"`` is every host, a term matching nothing is an
    error. Every private key the hosts use must be readable. Raises UsageError/InventoryError."""
    directory = Path(path)
    hosts = inventory.select_hosts(inventory.load_inventory(directory), limit)
    inventory.check_client_keys(directory, hosts, key, known_hosts)
    return inventory.apply_overrides(hosts, key=key, known_hosts=known_hosts)


def load_task(path: str | os.PathLike[str]) -> TaskTemplate:
    """Read a task file once (rendered per host later). Raises TaskError."""
    return _load_task(Path(path))


def task_template(source: TaskSource) -> TaskTemplate:
    """``source`` as a TaskTemplate (read from disk when it is a path)."""
    return source if isinstance(source, TaskTemplate) else load_task(source)


def task_label(source: TaskSource) -> str:
    """The task's name in host journals and reports: its file name, as in the CLI."""
    return Path(source.source if isinstance(source, TaskTemplate) else source).name


def render_tasks(task: TaskSource, hosts: Sequence[HostSpec]) -> dict[str, BridgeTask]:
    """The task rendered and validated for every host, before any is contacted (TaskError)."""
    template = task_template(task)
    return {spec.name: render_task(template, spec.context()) for spec in _checked(hosts)}


# -- the fleet: one HostResult per host ------------------------------------------------------


async def facts_async(hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS) -> AggregatedResult:
    """``fleetbr facts``: each host's facts as ``result.data["facts"]`` (read-only)."""
    return await run_hosts("facts", _checked(hosts), facts_job, forks=_forks(forks))


async def plan_async(
    hosts: Sequence[HostSpec], task: TaskSource, *, forks: int = DEFAULT_FORKS
) -> AggregatedResult:
    """``fleetbr plan``: per host ``planned`` (``data["steps"]``), ``unchanged`` or ``refused``;
    changes nothing."""
    tasks = render_tasks(task, hosts)

    async def job(spec: HostSpec) -> HostResult:
        return await plan_job(spec, tasks[spec.name])

    return await run_hosts("plan", hosts, job, forks=_forks(forks))


async def apply_async(
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
    forks: int = DEFAULT_FORKS,
) -> AggregatedResult:
    """``fleetbr apply``: the dead-man transaction on every host, ``canary`` hosts first, then
    batches of ``batch_size``; the rollout stops (later hosts ``skipped``) when the canary does
    not end confirmed or unchanged, or more than ``max_failures`` hosts failed."""
    _check_rollout(canary, batch_size, max_failures)
    tasks = render_tasks(task, hosts)
    return await rollout(
        hosts,
        tasks,
        task_label(task),
        forks=_forks(forks),
        canary=canary,
        batch_size=batch_size,
        max_failures=max_failures,
    )


async def status_async(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS
) -> AggregatedResult:
    """``fleetbr status``: each host's armed transaction (live or stale) and journal."""
    return await run_hosts("status", _checked(hosts), status_job, forks=_forks(forks))


async def rollback_async(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS
) -> AggregatedResult:
    """``fleetbr rollback``: roll back each host's armed transaction and verify it against its
    snapshot; ``rolled_back`` counts as success here, as in the CLI."""
    return await rollback_hosts(_checked(hosts), forks=_forks(forks))


def facts(hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS) -> AggregatedResult:
    """:func:`facts_async`, run to completion."""
    return _sync(facts_async(hosts, forks=forks))


def plan(
    hosts: Sequence[HostSpec], task: TaskSource, *, forks: int = DEFAULT_FORKS
) -> AggregatedResult:
    """:func:`plan_async`, run to completion."""
    return _sync(plan_async(hosts, task, forks=forks))


def apply(
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
    forks: int = DEFAULT_FORKS,
) -> AggregatedResult:
    """:func:`apply_async`, run to completion."""
    return _sync(
        apply_async(hosts, task, canary=canary, batch_size=batch_size,
                    max_failures=max_failures, forks=forks)
    )  # fmt: skip


def status(hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS) -> AggregatedResult:
    """:func:`status_async`, run to completion."""
    return _sync(status_async(hosts, forks=forks))


def rollback(hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS) -> AggregatedResult:
    """:func:`rollback_async`, run to completion."""
    return _sync(rollback_async(hosts, forks=forks))


# -- one host, typed: raise fleetbr's errors instead of reporting them -----------------------


async def host_facts_async(host: HostSpec) -> HostFacts:
    """The typed facts of one host. Raises TransportError (and subclasses) when it cannot."""
    async with open_session(host) as conn:
        return await gather(conn)


async def host_plan_async(host: HostSpec, task: TaskSource) -> Plan:
    """The typed plan for one host (``refusal``, ``steps``, ``rollback``, ``expected``), as
    ``fleetbr plan`` computes it; changes nothing."""
    bridge_task = render_tasks(task, [host])[host.name]
    facts = await host_facts_async(host)
    return plan_host(bridge_task, facts, min_timeout=min_timeout(host.ssh))


def host_facts(host: HostSpec) -> HostFacts:
    """:func:`host_facts_async`, run to completion."""
    return _sync(host_facts_async(host))


def host_plan(host: HostSpec, task: TaskSource) -> Plan:
    """:func:`host_plan_async`, run to completion."""
    return _sync(host_plan_async(host, task))


# -- checks ---------------------------------------------------------------------------------


def _checked(hosts: Sequence[HostSpec]) -> Sequence[HostSpec]:
    """Each host once: two jobs on one host at a time would race each other."""
    seen: set[str] = set()
    for spec in hosts:
        if not isinstance(spec, HostSpec):
            raise UsageError(f"hosts: expected HostSpec items (load_inventory), got {spec!r:.80}")
        if spec.name in seen:
            raise UsageError(f"hosts: {spec.name} is listed more than once")
        seen.add(spec.name)
    return hosts


def _forks(forks: int) -> int:
    return _whole(forks, "forks", 1)


def _check_rollout(canary: int, batch_size: int | None, max_failures: int | None) -> None:
    _whole(canary, "canary", 0)
    if batch_size is not None:
        _whole(batch_size, "batch_size", 1)
    if max_failures is not None:
        _whole(max_failures, "max_failures", 0)


def _whole(value: int, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{name}: expected a whole number of at least {least}, got {value!r:.40}")
    return value


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop; refused inside a running one (use the async twin)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise UsageError(
        "fleetbr.api: a blocking function was called inside a running event loop; await its "
        "_async twin instead"
    )
