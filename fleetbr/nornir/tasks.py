"""fleetbr as Nornir tasks: ``nr.run(task=fleetbr_apply, task_file="tasks/bridge.yaml")``.

Each task returns a nornir ``Result``: ``result`` is fleetbr's per-host report (the dict
``fleetbr --json`` prints for the host), ``host_result`` the :class:`~fleetbr.report.HostResult`
itself, ``failed`` is true unless the host ended ``ok``, ``planned``, ``unchanged`` or
``confirmed``, ``changed`` is true when the host was (dry run: would be) changed, and ``diff`` lists
the plan's steps. Errors never escape as exceptions: a host that cannot be reached is a failed
Result with status ``unreachable``, as in the CLI; a failed Result's ``exception`` is a
:class:`HostFailed` saying ``STATUS: message``, so nornir's ``print_result`` and
``raise_on_error`` show the cause.

Facts and the dry run use the host's ``fleetbr`` connection (the connection plugin); ``apply``
runs fleetbr's dead-man transaction, which opens its own connections (it must confirm over a
fresh one) and then closes the host's ``fleetbr`` connection, which the change may have cut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nornir.core.task import Result, Task

from fleetbr.api import TaskSource, task_label, task_template
from fleetbr.drift import check_facts, outcome_result
from fleetbr.errors import FleetbrError, TransportError, ValidationError
from fleetbr.facts.gather import gather, summarize
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec, key_problem, nornir_host_spec
from fleetbr.nornir.connection import CONNECTION_NAME
from fleetbr.nornir.loop import SHARED
from fleetbr.report import HostResult, Status
from fleetbr.runner import run_one
from fleetbr.tasks import BridgeTask, render_task
from fleetbr.transaction.change import BridgeChange
from fleetbr.transaction.protocol import min_timeout, run_transaction
from fleetbr.transaction.status import plan_result
from fleetbr.transport import Session

ConnectedJob = Callable[[Session, HostSpec], Awaitable[HostResult]]


class HostFailed(FleetbrError):
    """A failed fleetbr task's ``Result.exception``: ``STATUS: message``, and the HostResult."""

    def __init__(self, done: HostResult) -> None:
        status = done.status.value
        super().__init__(f"{status}: {done.message}" if done.message else status)
        self.host_result = done


def _exception(done: HostResult, failed: bool) -> HostFailed | None:
    return HostFailed(done) if failed else None


class FleetbrResult(Result):
    """A nornir Result carrying fleetbr's :class:`HostResult` (and, from facts, HostFacts)."""

    host_result: HostResult
    facts: HostFacts | None


def host_result(result: Result) -> HostResult:
    """fleetbr's HostResult of a Result returned by a fleetbr task (typed access)."""
    if not isinstance(result, FleetbrResult):
        raise TypeError(f"not the Result of a fleetbr task: {result!r:.80}")
    return result.host_result


def fleetbr_facts(task: Task) -> FleetbrResult:
    """Gather the host's network facts (read-only). ``Result.facts`` is the typed HostFacts."""
    gathered: list[HostFacts] = []

    async def job(conn: Session, spec: HostSpec) -> HostResult:
        facts = await gather(conn)
        gathered.append(facts)
        # as fleetbr.facts.gather.facts_job reports it (that one opens its own connection)
        return HostResult(spec.name, Status.OK, summarize(facts), data={"facts": facts.to_dict()})

    done = _run_connected(task, lambda spec: job)
    return _nornir_result(task, done, facts=gathered[0] if gathered else None)


def fleetbr_plan(task: Task, task_file: TaskSource) -> FleetbrResult:
    """Plan the task on the host: what ``apply`` would do. Never changes anything."""
    return _nornir_result(task, _plan(task, task_file))


def fleetbr_apply(task: Task, task_file: TaskSource, dry_run: bool | None = None) -> FleetbrResult:
    """Apply the task under fleetbr's dead-man transaction; a dry run (nornir's ``dry_run``,
    globally or per call) plans instead, exactly as :func:`fleetbr_plan`."""
    if task.is_dry_run(dry_run):
        return _nornir_result(task, _plan(task, task_file))
    try:
        return _nornir_result(task, _apply(task, task_file))
    finally:
        if CONNECTION_NAME in task.host.connections:  # the change may have cut it
            task.host.close_connection(CONNECTION_NAME)


def fleetbr_check(task: Task, task_file: TaskSource) -> FleetbrResult:
    """Check the host against the task, read-only, as ``fleetbr check`` does: ``changed`` means
    drift was found and ``diff`` lists it (one difference a line); a host that could not be
    checked is ``failed``. Never changes anything, dry run or not."""

    def prepare(spec: HostSpec) -> ConnectedJob:
        bridge_task = _rendered(task_file, spec)  # before connecting: a bad task contacts nothing

        async def job(conn: Session, spec: HostSpec) -> HostResult:
            facts = await gather(conn)
            outcome = check_facts(bridge_task, facts, min_timeout=min_timeout(spec.ssh))
            return outcome_result(spec.name, outcome)

        return job

    done = _run_connected(task, prepare)
    drift = [str(d.get("text", d)) for d in done.data.get("differences", [])]
    return FleetbrResult(
        host=task.host,
        result=done.to_dict(),
        changed=done.status == Status.DRIFTED,
        diff="\n".join(drift),
        failed=(failed := done.status not in (Status.IN_SYNC, Status.DRIFTED)),
        exception=_exception(done, failed),
        host_result=done,
    )


def _plan(task: Task, task_file: TaskSource) -> HostResult:
    def prepare(spec: HostSpec) -> ConnectedJob:
        bridge_task = _rendered(task_file, spec)  # before connecting: a bad task contacts nothing

        async def job(conn: Session, spec: HostSpec) -> HostResult:
            return plan_result(spec, bridge_task, await gather(conn))

        return job

    return _run_connected(task, prepare)


def _apply(task: Task, task_file: TaskSource) -> HostResult:
    try:
        spec = _spec(task)
        change = BridgeChange(_rendered(task_file, spec), task_label(task_file))
    except FleetbrError as exc:
        return HostResult(task.host.name, Status.FAILED, str(exc))

    async def job(spec: HostSpec) -> HostResult:
        return await run_transaction(spec, change)

    with SHARED.use() as loop:
        return loop.run(run_one(spec, job))


def _run_connected(task: Task, prepare: Callable[[HostSpec], ConnectedJob]) -> HostResult:
    """Run the job ``prepare`` returns over the host's ``fleetbr`` connection, on the shared
    loop. Every fleetbr error (a bad setting or task, a refused host key, a lost session)
    becomes the host's result, mapped by ``runner.run_one`` as for any host job."""
    try:
        spec = _spec(task)
        job = prepare(spec)
    except FleetbrError as exc:
        return HostResult(task.host.name, Status.FAILED, str(exc))
    with SHARED.use() as loop:
        try:
            conn: Session = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
        except FleetbrError as exc:
            error = exc
            return loop.run(run_one(spec, lambda _: _raise(error)))
        broken: list[TransportError] = []

        async def connected(spec: HostSpec) -> HostResult:
            try:
                return await job(conn, spec)
            except TransportError as exc:
                broken.append(exc)
                raise

        done = loop.run(run_one(spec, connected))
    if broken:  # a lost or stuck session: the next task opens a new connection
        task.host.close_connection(CONNECTION_NAME)
    return done


async def _raise(exc: FleetbrError) -> HostResult:
    raise exc


def _spec(task: Task) -> HostSpec:
    """The host's settings, checked as the CLI checks them before contacting any host."""
    try:
        spec = nornir_host_spec(task.host)
    except ValidationError as exc:
        raise ValidationError(f"host {task.host.name}: {exc}") from None
    problem = key_problem(spec)
    if problem:
        raise ValidationError(f"host {task.host.name}: {problem}")
    return spec


def _rendered(task_file: TaskSource, spec: HostSpec) -> BridgeTask:
    return render_task(task_template(task_file), spec.context())


def _nornir_result(task: Task, done: HostResult, facts: HostFacts | None = None) -> FleetbrResult:
    """fleetbr's HostResult as a nornir Result (see the module docstring)."""
    changed = done.status in (Status.CONFIRMED, Status.PLANNED)
    steps: Any = done.data.get("steps") or []
    return FleetbrResult(
        host=task.host,
        result=done.to_dict(),
        changed=changed,
        diff="\n".join(steps) if changed else "",
        failed=not done.ok,
        exception=_exception(done, not done.ok),
        host_result=done,
        facts=facts,
    )
