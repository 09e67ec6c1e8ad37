"""The one place a run is assembled, whichever front door asked for it.

:func:`prepare` does everything that may fail before a host is contacted: select the hosts
(or take the ones given), check ``--resume`` against the history (a new request, never a
mutated one), and render the change for every host once through its kind (a bad task: exit 2,
nothing contacted, nothing recorded). :func:`run_prepared` then runs it: the history (start,
every host's row as it happens, the end), live progress and the metrics file around the
command's jobs, handed to the request's runner (apply: the rollout with canary, batches,
failure threshold and Ctrl-C handling)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fleetbr.adhoc.job import AdhocRun, adhoc_job
from fleetbr.core import kinds, runner
from fleetbr.core.kinds import ChangeKind
from fleetbr.core.record import run_context
from fleetbr.core.request import ChangeRef, RunRequest
from fleetbr.core.runner import Runner
from fleetbr.errors import UsageError
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.history.location import check_reachable
from fleetbr.history.record import RunContext
from fleetbr.interrupt import Interruption
from fleetbr.inventory import HostSpec
from fleetbr.observe import RunObserver, observed
from fleetbr.report import EXIT_INTERRUPTED, AggregatedResult, HostResult
from fleetbr.runner import HostJob
from fleetbr.transport import Session, open_session

# The apply stack (rollout, transaction, resume) is imported by the commands that use it: a plain
# `fleetbr run` goes through this assembler too and must not pay for it (docs/benchmarks.md).
if TYPE_CHECKING:
    from fleetbr.resume import Prior
    from fleetbr.transaction.change import Change

    Judge = Callable[[HostSpec, Change, HostFacts], HostResult]

# Commands whose change each host gets rendered before any host is contacted.
CHANGE_COMMANDS = frozenset({"plan", "apply", "check"})
# The change of plain ``fleetbr run`` (no change kind): a :class:`fleetbr.adhoc.main.AdhocRun`.
ADHOC = "adhoc"

Report = Callable[[AggregatedResult], None]
Connector = Callable[[HostSpec], AbstractAsyncContextManager[Session]]


def select(request: RunRequest, *, connecting: bool = True) -> list[HostSpec]:
    """The request's hosts (:meth:`Selection.resolve`; ``@failed:`` terms read the request's
    history; a resumed run's ``@failed:last`` means the run before the one it resumes)."""
    history = request.history
    return request.selection.resolve(connecting=connecting, history=history.path,
                                     before=history.resumed_from)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """A run ready to contact its hosts: nothing can be wrong with its input any more."""

    request: RunRequest
    hosts: list[HostSpec]
    kind: ChangeKind | None
    changes: Mapping[str, Change]
    prior: Prior | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: every host's result, the exit code (130 after a first Ctrl-C), and
    its id in the history (0 when not recorded)."""

    request: RunRequest
    result: AggregatedResult
    exit_code: int
    interrupted: bool
    run_id: int
    history_failed: bool


def prepare(request: RunRequest, *, changes: Mapping[str, Change] | None = None) -> Prepared:
    """Select, resume, render (see the module docstring); UsageError before any contact.

    ``changes`` (host name -> its change, one for every selected host) replaces the rendering
    of ``request.change`` for callers that render per host themselves (the demos cut one
    host with another task); the request's change still names the kind and the record."""
    prior = None
    if request.history.resume is not None:
        from fleetbr.resume import prepare_resume

        request, prior, hosts = prepare_resume(request, select)
    else:
        check_reachable(request.history.path)  # a database history: reachable before any contact
        # site workers connect with their own keys: the coordinator needs none
        hosts = select(request, connecting=request.runner == "local")
    if request.command == "run":
        adhoc_of(request)  # UsageError: nothing to run
    if request.command not in CHANGE_COMMANDS:
        return Prepared(request, hosts, None, {}, prior)
    if request.change is None:
        raise UsageError(f"{request.command}: no change given")
    if changes is None:
        kind, rendered = render_change(request.change, hosts, command=request.command)
        return Prepared(request, hosts, kind, rendered, prior)
    missing = sorted({spec.name for spec in hosts} - set(changes))
    if missing:
        raise UsageError(f"{request.command}: no change given for host {missing[0]!r}")
    return Prepared(request, hosts, kinds.get(request.change.kind), dict(changes), prior)


def render_change(
    ref: ChangeRef, hosts: Sequence[HostSpec], *, command: str
) -> tuple[ChangeKind, dict[str, Change]]:
    """The change's kind, and the change rendered for every host (UsageError/TaskError)."""
    kind = kinds.get(ref.kind)
    if command not in kind.commands:
        raise UsageError(f"{command}: not supported by the {kind.name} change kind")
    loaded = kind.load(ref.source)
    label = ref.label or kind.label(ref.source)
    return kind, {spec.name: kind.render(loaded, spec, label) for spec in hosts}


async def run_prepared(
    prepared: Prepared,
    *,
    report: Report | None = None,
    interrupt: Interruption | None = None,
    connect: Connector = open_session,
) -> RunOutcome:
    """Run ``prepared`` under its history, progress and metrics; ``report`` prints the
    results once the live display is gone, before the run's end is recorded. ``connect``
    opens the connection the read-only commands gather facts over (Nornir: its own)."""
    run = _start(prepared, interrupt or Interruption(), connect)
    with run_context(prepared.request, prepared.hosts) as context:
        ended = await run.until_done(context, report)
    return run.outcome(ended, context)


async def execute_async(
    request: RunRequest, *, report: Report | None = None, connect: Connector = open_session
) -> RunOutcome:
    """:func:`prepare` and :func:`run_prepared` (for callers with a running event loop)."""
    return await run_prepared(prepare(request), report=report, connect=connect)


def execute(request: RunRequest, *, report: Report | None = None) -> RunOutcome:
    """:func:`prepare`, then the run on a new event loop. The history and the live display
    are opened outside the loop, so a second Ctrl-C, which ends the loop at once, reaches
    them as the KeyboardInterrupt it is (the run is recorded ``aborted``, exit 130)."""
    run = _start(prepare(request), Interruption(), open_session)
    with run_context(run.prepared.request, run.prepared.hosts) as context:
        ended = asyncio.run(run.until_done(context, report))
    return run.outcome(ended, context)


def _start(prepared: Prepared, interrupt: Interruption, connect: Connector) -> _Run:
    command = COMMANDS.get(prepared.request.command)
    if command is None:
        raise UsageError(f"{prepared.request.command}: not a command that runs on hosts")
    chosen = runner.get(prepared.request.runner)  # an unknown runner: exit 2, nothing recorded
    chosen.check(prepared)  # a run this runner cannot run: exit 2, nothing recorded
    return _Run(prepared, command, chosen, interrupt, connect)


# -- the commands --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One run of a prepared request: its command, runner, Ctrl-C state and connector."""

    prepared: Prepared
    command: Command
    runner: Runner
    interrupt: Interruption
    connect: Connector

    @property
    def forks(self) -> int:
        """At most this many hosts at once."""
        return self.prepared.request.rollout.forks

    async def until_done(self, context: RunContext, report: Report | None) -> _Ended:
        """Run the command with ``context`` observing it; the results and the exit code."""
        recorder = context.recorder
        if recorder is not None:  # its run lease lost: no new host starts (history.md, Leases)
            self.interrupt.stop_when(recorder.lease_stop)
        self.runner.attach(self.prepared, context, self.interrupt)
        result = await self.command(self, context.observer)
        interrupted = self.interrupt.pressed
        code = EXIT_INTERRUPTED if interrupted else result.exit_code
        context.done(code, interrupted=interrupted)
        context.stop_display()
        if report is not None:
            report(result)
        return _Ended(result, code, interrupted)

    def outcome(self, ended: _Ended, context: RunContext) -> RunOutcome:
        """The outcome, once the history has taken the run's end."""
        recorder = context.recorder
        return RunOutcome(self.prepared.request, ended.result, ended.code, ended.interrupted,
                          recorder.run_id if recorder is not None else 0,
                          recorder is not None and recorder.failed)  # fmt: skip

    def judged(self, judge: Judge, observer: RunObserver) -> HostJob:
        """A job that gathers a host's facts over ``connect`` and lets the kind judge them."""
        changes = self.prepared.changes

        async def job(spec: HostSpec) -> HostResult:
            async with self.connect(spec) as conn:
                facts = await gather(conn)
            return judge(spec, changes[spec.name], facts)

        return observed(job, observer)


@dataclass(frozen=True)
class _Ended:
    result: AggregatedResult
    code: int
    interrupted: bool


Command = Callable[[_Run, RunObserver], Awaitable[AggregatedResult]]


async def _plan(run: _Run, observer: RunObserver) -> AggregatedResult:
    job = run.judged(_judge(run, "plan"), observer)
    return await run.runner.run("plan", run.prepared.hosts, job, forks=run.forks)


async def _check(run: _Run, observer: RunObserver) -> AggregatedResult:
    job = run.judged(_judge(run, "check"), observer)
    return await run.runner.run("check", run.prepared.hosts, job, forks=run.forks)


def _judge(run: _Run, command: Literal["plan", "check"]) -> Judge:
    """The kind's ``plan`` or ``check``; with ``--diff`` its result also carries the kind's
    before/after view of the host (``data["diff"]``: fleetbr.diffview), if the kind has one."""
    kind = run.prepared.kind
    assert kind is not None
    judge: Judge = kind.plan if command == "plan" else kind.check
    view = getattr(kind, "diff", None) if run.prepared.request.diff else None
    if view is None:
        return judge

    def with_view(spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        result = judge(spec, change, facts)
        result.data["diff"] = view(spec, change, facts, command).to_json()
        return result

    return with_view


async def _status(run: _Run, observer: RunObserver) -> AggregatedResult:
    from fleetbr.transaction.status import status_job

    job = observed(status_job, observer)
    return await run.runner.run("status", run.prepared.hosts, job, forks=run.forks)


async def _rollback(run: _Run, observer: RunObserver) -> AggregatedResult:
    from fleetbr.rollout import rollback_hosts

    return await rollback_hosts(run.prepared.hosts, forks=run.forks, observer=observer,
                                runner=run.runner)  # fmt: skip


def adhoc_of(request: RunRequest) -> AdhocRun:
    """What plain ``run`` sends to every host (UsageError when the request has none)."""
    change = request.change
    if change is None or change.kind != ADHOC or not isinstance(change.source, AdhocRun):
        raise UsageError("run: no command given")
    return change.source


async def _adhoc(run: _Run, observer: RunObserver) -> AggregatedResult:
    job = observed(adhoc_job(adhoc_of(run.prepared.request)), observer)
    return await run.runner.run("run", run.prepared.hosts, job, forks=run.forks)


async def _apply(run: _Run, observer: RunObserver) -> AggregatedResult:
    options, prepared = run.prepared.request.rollout, run.prepared
    from fleetbr.rollout import rollout_changes

    return await rollout_changes(
        prepared.hosts, prepared.changes, forks=options.forks, canary=options.canary or 0,
        batch_size=options.batch_size, max_failures=options.max_failures, observer=observer,
        prior=prepared.prior, interrupt=run.interrupt, runner=run.runner,
    )  # fmt: skip


COMMANDS: dict[str, Command] = {
    "plan": _plan,
    "check": _check,
    "status": _status,
    "rollback": _rollback,
    "apply": _apply,
    "run": _adhoc,
}
