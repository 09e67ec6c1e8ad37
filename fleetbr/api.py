"""fleetbr's Python API: the CLI's commands as functions (docs/api.md).

```python
import fleetbr.api as fleetbr

hosts = fleetbr.load_inventory("inventory", limit="rack-a")
print(fleetbr.plan(hosts, "tasks/bridge.yaml").counts())
done = fleetbr.apply(hosts, "tasks/bridge.yaml", canary=1, batch_size=10, max_failures=2)
for name, result in done.items():
    print(name, result.status, result.message)
```

Every fleet function builds the :class:`~fleetbr.core.request.RunRequest` the matching CLI
command builds and runs it through the same engine (:mod:`fleetbr.core.assemble`: the same
rollout, runner, facts, plan, check, status and rollback jobs), records it in the run history
as the CLI does (origin ``api``; ``history=False`` records nothing), and returns an
:class:`~fleetbr.report.AggregatedResult`: one :class:`~fleetbr.report.HostResult` per host,
in inventory order; a host's failure is data (its status), never an exception. Each has an
``async`` twin (``apply_async``, ...) for callers that run an event loop. Bad input
(inventory, task file, options) raises :class:`~fleetbr.errors.UsageError` before any host is
contacted; fleetbr raises nothing outside its exception tree (:mod:`fleetbr.errors`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from fleetbr import inventory
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, render_task
from fleetbr.changes.bridge.task import load_task as _load_task
from fleetbr.core.assemble import execute_async
from fleetbr.core.request import (
    DEFAULT_FORKS,
    ChangeRef,
    HistoryOptions,
    MetricsOptions,
    RolloutOptions,
    RunRequest,
    Selection,
)
from fleetbr.errors import UsageError
from fleetbr.facts.gather import facts_job, gather
from fleetbr.facts.model import HostFacts
from fleetbr.history.location import HistoryLocation, open_store, parse_location
from fleetbr.history.record import history_location
from fleetbr.inventory import HostSpec
from fleetbr.plan import BridgePlan, Plan, plan_host
from fleetbr.report import AggregatedResult, HostResult, Status
from fleetbr.runner import run_hosts
from fleetbr.transaction.protocol import min_timeout
from fleetbr.transport import open_session

__all__ = [
    "DEFAULT_FORKS",
    "AggregatedResult",
    "BridgePlan",
    "HistoryTarget",
    "HostFacts",
    "HostResult",
    "HostSpec",
    "Plan",
    "Status",
    "TaskSource",
    "TaskTemplate",
    "apply",
    "apply_async",
    "check",
    "check_async",
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
    "report",
    "rollback",
    "rollback_async",
    "status",
    "status_async",
]

TaskSource = str | os.PathLike[str] | TaskTemplate
"""A task file's path, or a task already read with :func:`load_task`."""

HistoryTarget = str | os.PathLike[str] | bool | None
"""Where a run is recorded: True (the default) as the CLI does (``$FLEETBR_HISTORY``, else the
user's state directory), a path, a ``postgresql://`` URL (a string), or False/None for
nowhere."""

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
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    diff: bool = False,
) -> AggregatedResult:
    """``fleetbr plan``: per host ``planned`` (``data["steps"]``), ``unchanged`` or ``refused``;
    changes nothing. ``diff`` (``plan --diff``): each result also carries the host's
    before/after view in ``data["diff"]`` (docs/diff.md)."""
    return await _run("plan", hosts, task, forks=forks, history=history, diff=diff)


async def check_async(
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    diff: bool = False,
) -> AggregatedResult:
    """``fleetbr check``: per host ``in_sync``, ``drifted`` (``data["differences"]``) or
    ``refused``; changes nothing. ``diff`` (``check --diff``): the drift as a before/after
    view in ``data["diff"]``."""
    return await _run("check", hosts, task, forks=forks, history=history, diff=diff)


async def apply_async(
    hosts: Sequence[HostSpec],
    task: TaskSource | None,
    *,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    resume: int | None = None,
) -> AggregatedResult:
    """``fleetbr apply``: the dead-man transaction on every host, ``canary`` hosts first, then
    batches of ``batch_size``; the rollout stops (later hosts ``skipped``) when the canary does
    not end confirmed or unchanged, or more than ``max_failures`` hosts failed. ``resume``
    (``fleetbr apply --resume [RUN]``): continue apply run ``resume`` (0: the newest that
    stopped early) with its own task, canary, batches and thresholds; ``task`` may be None."""
    _check_rollout(canary, batch_size, max_failures)
    if resume is not None:
        _whole(resume, "resume", 0)
        if canary or batch_size is not None or max_failures is not None:
            raise UsageError("resume: the run's own canary, batch_size and max_failures are kept; "
                             "leave them out")  # fmt: skip
    elif task is None:
        raise UsageError("apply: task is required (or resume=RUN)")
    rollout = RolloutOptions(_forks(forks), None if resume is not None else canary, batch_size,
                             max_failures)  # fmt: skip
    return await _run("apply", hosts, task, forks=forks, history=history, resume=resume,
                      rollout=rollout)  # fmt: skip


async def status_async(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS, history: HistoryTarget = True
) -> AggregatedResult:
    """``fleetbr status``: each host's armed transaction (live or stale) and journal."""
    return await _run("status", hosts, None, forks=forks, history=history)


async def rollback_async(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS, history: HistoryTarget = True
) -> AggregatedResult:
    """``fleetbr rollback``: roll back each host's armed transaction and verify it against its
    snapshot; ``rolled_back`` counts as success here, as in the CLI."""
    return await _run("rollback", hosts, None, forks=forks, history=history)


def request(
    command: str,
    hosts: Sequence[HostSpec],
    task: TaskSource | None,
    *,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    resume: int | None = None,
    rollout: RolloutOptions | None = None,
    diff: bool = False,
) -> RunRequest:
    """The :class:`~fleetbr.core.request.RunRequest` a fleet function runs (origin ``api``)."""
    change = None
    if task is not None:
        change = ChangeRef("bridge", task, label=task_label(task), recorded_file=task_file(task))
    return RunRequest(
        command=command,
        selection=Selection(hosts=tuple(_checked(hosts))),
        change=change,
        rollout=rollout or RolloutOptions(forks=_forks(forks)),
        history=HistoryOptions(path=_history(history), resume=resume),
        metrics=MetricsOptions(quiet=True),
        origin="api",
        diff=diff,
    )


async def _run(command: str, hosts: Sequence[HostSpec], task: TaskSource | None,
               **options: Any) -> AggregatedResult:  # fmt: skip
    outcome = await execute_async(request(command, hosts, task, **options))
    return outcome.result


def _history(history: HistoryTarget) -> HistoryLocation | None:
    if history is True:
        return history_location(None, False)
    if history is False or history is None:
        return None
    if isinstance(history, str):
        return parse_location(history)  # a path, or a postgresql:// URL
    if isinstance(history, os.PathLike):
        return Path(history)
    raise UsageError(f"history: expected a path, True or False, got {history!r:.40}")


def task_file(source: TaskSource) -> Path:
    """The task's file, whose sha256 the history records (``resume`` checks it)."""
    return Path(source.source if isinstance(source, TaskTemplate) else source)


def facts(hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS) -> AggregatedResult:
    """:func:`facts_async`, run to completion."""
    return _sync(facts_async(hosts, forks=forks))


def plan(
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    diff: bool = False,
) -> AggregatedResult:
    """:func:`plan_async`, run to completion."""
    return _sync(plan_async(hosts, task, forks=forks, history=history, diff=diff))


def check(
    hosts: Sequence[HostSpec],
    task: TaskSource,
    *,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    diff: bool = False,
) -> AggregatedResult:
    """:func:`check_async`, run to completion."""
    return _sync(check_async(hosts, task, forks=forks, history=history, diff=diff))


def report(
    run: int,
    path: str | os.PathLike[str],
    *,
    history: HistoryTarget = True,
    sites: Mapping[str, str] | None = None,
) -> Path:
    """Write the HTML report of recorded run ``run`` (``fleetbr show RUN --html``, docs/report.md)
    to ``path`` whole, mode 0600; ``sites``: host -> site for its summary. Returns the path."""
    from fleetbr.htmlreport.render import run_report, write_report  # noqa: PLC0415 - jinja2

    location = _history(history)
    if location is None:
        raise UsageError("report: it is made from the run history; history=False has none")
    target = Path(path)
    store = open_store(location, create=False)
    try:
        page = run_report(store, run, sites=sites)
    finally:
        store.close()
    try:
        write_report(target, page)
    except OSError as exc:
        raise UsageError(f"report: cannot write {target}: {exc.strerror or exc}") from None
    return target


def apply(
    hosts: Sequence[HostSpec],
    task: TaskSource | None,
    *,
    canary: int = 0,
    batch_size: int | None = None,
    max_failures: int | None = None,
    forks: int = DEFAULT_FORKS,
    history: HistoryTarget = True,
    resume: int | None = None,
) -> AggregatedResult:
    """:func:`apply_async`, run to completion."""
    return _sync(
        apply_async(hosts, task, canary=canary, batch_size=batch_size, resume=resume,
                    max_failures=max_failures, forks=forks, history=history)
    )  # fmt: skip


def status(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS, history: HistoryTarget = True
) -> AggregatedResult:
    """:func:`status_async`, run to completion."""
    return _sync(status_async(hosts, forks=forks, history=history))


def rollback(
    hosts: Sequence[HostSpec], *, forks: int = DEFAULT_FORKS, history: HistoryTarget = True
) -> AggregatedResult:
    """:func:`rollback_async`, run to completion."""
    return _sync(rollback_async(hosts, forks=forks, history=history))


# -- one host, typed: raise fleetbr's errors instead of reporting them -----------------------


async def host_facts_async(host: HostSpec) -> HostFacts:
    """The typed facts of one host. Raises TransportError (and subclasses) when it cannot."""
    async with open_session(host) as conn:
        return await gather(conn)


async def host_plan_async(host: HostSpec, task: TaskSource) -> BridgePlan:
    """The typed plan for one host (``refusal``, ``steps``, ``rollback``, ``expected``), as
    ``fleetbr plan`` computes it; changes nothing."""
    bridge_task = render_tasks(task, [host])[host.name]
    facts = await host_facts_async(host)
    return plan_host(bridge_task, facts, min_timeout=min_timeout(host.ssh))


def host_facts(host: HostSpec) -> HostFacts:
    """:func:`host_facts_async`, run to completion."""
    return _sync(host_facts_async(host))


def host_plan(host: HostSpec, task: TaskSource) -> BridgePlan:
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
