"""fleetbr as Nornir tasks: ``nr.run(task=fleetbr_apply, task_file="tasks/bridge.yaml")``.

Each task returns a nornir ``Result``: ``result`` is fleetbr's per-host report (the dict
``fleetbr --json`` prints for the host), ``host_result`` the :class:`~fleetbr.report.HostResult`
itself, ``failed`` is true unless the host ended ``ok``, ``planned``, ``unchanged`` or
``confirmed``, ``changed`` is true when the host was (dry run: would be) changed, and ``diff`` lists
the plan's steps. Errors never escape as exceptions: a host that cannot be reached is a failed
Result with status ``unreachable``, as in the CLI; a failed Result's ``exception`` is a
:class:`HostFailed` saying ``STATUS: message``, so nornir's ``print_result`` and
``raise_on_error`` show the cause.

Plan, apply and check build the same :class:`~fleetbr.core.request.RunRequest` as the API
(origin ``nornir``, the one host) and run it through fleetbr's engine, so each is recorded in
the run history (``history``: as in :mod:`fleetbr.api`; one run per host and task). Facts, the
dry run and check use the host's ``fleetbr`` connection (the connection plugin); ``apply`` runs
fleetbr's dead-man transaction, which opens its own connections (it must confirm over a fresh
one) and then closes the host's ``fleetbr`` connection, which the change may have cut.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nornir.core.task import Result, Task

from fleetbr.api import HistoryTarget, TaskSource
from fleetbr.api import request as api_request
from fleetbr.core.assemble import prepare, run_prepared
from fleetbr.errors import FleetbrError, TransportError, ValidationError
from fleetbr.facts.gather import gather, summarize
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec, key_problem, nornir_host_spec
from fleetbr.nornir.connection import CONNECTION_NAME
from fleetbr.nornir.loop import SHARED
from fleetbr.report import HostResult, Status
from fleetbr.runner import run_one
from fleetbr.transport import Session


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
    """Gather the host's network facts (read-only). ``Result.facts`` is the typed HostFacts.
    Not recorded in the run history (``fleetbr facts`` is not either)."""
    gathered: list[HostFacts] = []
    try:
        spec = _spec(task)
    except FleetbrError as exc:
        return _nornir_result(task, HostResult(task.host.name, Status.FAILED, str(exc)))

    with SHARED.use() as loop:
        connection = _HostConnection(task)

        async def job(spec: HostSpec) -> HostResult:
            async with connection.use(spec) as conn:
                facts = await gather(conn)
            gathered.append(facts)
            # as fleetbr.facts.gather.facts_job reports it (that one opens its own connection)
            return HostResult(spec.name, Status.OK, summarize(facts),
                              data={"facts": facts.to_dict()})  # fmt: skip

        done = loop.run(run_one(spec, job))
        if connection.broken:  # a lost or stuck session: the next task opens a new one
            task.host.close_connection(CONNECTION_NAME)
    return _nornir_result(task, done, facts=gathered[0] if gathered else None)


def fleetbr_plan(task: Task, task_file: TaskSource, history: HistoryTarget = True) -> FleetbrResult:
    """Plan the task on the host: what ``apply`` would do. Never changes anything."""
    return _nornir_result(task, _engine(task, "plan", task_file, history))


def fleetbr_apply(
    task: Task, task_file: TaskSource, dry_run: bool | None = None, history: HistoryTarget = True
) -> FleetbrResult:
    """Apply the task under fleetbr's dead-man transaction; a dry run (nornir's ``dry_run``,
    globally or per call) plans instead, exactly as :func:`fleetbr_plan`."""
    if task.is_dry_run(dry_run):
        return _nornir_result(task, _engine(task, "plan", task_file, history))
    try:
        return _nornir_result(task, _engine(task, "apply", task_file, history))
    finally:
        if CONNECTION_NAME in task.host.connections:  # the change may have cut it
            task.host.close_connection(CONNECTION_NAME)


def fleetbr_check(
    task: Task, task_file: TaskSource, history: HistoryTarget = True
) -> FleetbrResult:
    """Check the host against the task, read-only, as ``fleetbr check`` does: ``changed`` means
    drift was found and ``diff`` lists it (one difference a line); a host that could not be
    checked is ``failed``. Never changes anything, dry run or not."""
    done = _engine(task, "check", task_file, history)
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


def _engine(task: Task, command: str, task_file: TaskSource, history: HistoryTarget) -> HostResult:
    """The command on this host through fleetbr's engine, recorded in the run history (origin
    ``nornir``, one run per host and task). The task is rendered before any contact; plan and
    check gather facts over the host's ``fleetbr`` connection, apply opens its own (it must
    confirm over a fresh one). Every fleetbr error becomes the host's result."""
    try:
        spec = _spec(task)
        request = api_request(command, [spec], task_file, forks=1, history=history)
        prepared = prepare(request.replace(origin="nornir"))
    except FleetbrError as exc:
        return HostResult(task.host.name, Status.FAILED, str(exc))
    with SHARED.use() as loop:
        if command == "apply":
            outcome = loop.run(run_prepared(prepared))
        else:
            connection = _HostConnection(task)
            outcome = loop.run(run_prepared(prepared, connect=connection.use))
            if connection.broken:  # a lost or stuck session: the next task opens a new one
                task.host.close_connection(CONNECTION_NAME)
    return outcome.result[spec.name]


class _HostConnection:
    """The host's ``fleetbr`` connection, opened (outside the loop, as nornir does) before the
    run; an error opening it is the host's result, as for any connection."""

    def __init__(self, task: Task) -> None:
        self.conn: Session | None = None
        self.error: FleetbrError | None = None
        self.broken = False
        try:
            self.conn = task.host.get_connection(CONNECTION_NAME, task.nornir.config)
        except FleetbrError as exc:
            self.error = exc

    @asynccontextmanager
    async def use(self, spec: HostSpec) -> AsyncIterator[Session]:
        """The open connection, left open afterwards (nornir closes it)."""
        if self.error is not None:
            raise self.error
        assert self.conn is not None
        try:
            yield self.conn
        except TransportError:
            self.broken = True
            raise


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
