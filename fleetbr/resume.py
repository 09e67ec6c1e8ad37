"""``fleetbr apply --resume [RUN]``: continue a rollout that stopped, from its run history.

Which run (bare ``--resume``: the newest apply run, only if it stopped before it reached every
host; ``--resume RUN``: that one, if it left a host unfinished), the checks
that it is the same rollout (the task's sha256 and the selected hosts), what it left (hosts done,
hosts whose transaction may still be armed, hosts to apply), and how a host left armed is resolved
before anything else: read the host's own state of that transaction; confirmed meanwhile is
recorded as confirmed; still armed is rolled back now (the controller that armed it is gone) and
verified against its snapshot (the one verdict of :mod:`fleetbr.transaction.verdict`, as
``fleetbr rollback`` judges it), then applied again in its batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from fleetbr.adhoc.text import fold_hosts
from fleetbr.core.request import ChangeRef, RunRequest
from fleetbr.counts import Serial
from fleetbr.errors import UsageError
from fleetbr.history.lease import WAIT_ENV, Lease, holders_text, wait_bound, wait_released
from fleetbr.history.location import DatabaseUrl, HistoryLocation, open_store
from fleetbr.history.record import controller_alive, file_sha256
from fleetbr.history.store import (
    DONE,
    STARTED,
    HistoryError,
    HistoryStore,
    HostRow,
    NoHistoryYet,
    RunRecord,
    RunState,
)
from fleetbr.inventory import HostSpec
from fleetbr.output import plain
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.hoststate import HostTxState, Marker
from fleetbr.transaction.protocol import Clock, read_state, rollback_finished, wait_settled
from fleetbr.transaction.recover import judge_staged
from fleetbr.transaction.verdict import RollbackVerdict
from fleetbr.transport import Session, open_session

ROLLOUT_OPTIONS = ("canary", "batch_size", "max_failures")


@dataclass
class Prior:
    """What earlier runs of this rollout left (see the module docstring)."""

    run_id: int
    carried: dict[str, HostResult] = field(default_factory=dict)  # done: never touched again
    resolve: dict[str, str] = field(default_factory=dict)  # host -> txid that may be armed
    # how a host's txid is resolved (default :func:`resolve_host`; a site worker's: see
    # fleetbr.distributed.takeover.resolve_left)
    resolver: Resolver | None = None
    # the leases run_id still holds on these hosts after a bounded wait (the local resume's
    # check right before it resolves or stages a host: :func:`hosts_held`); None: no check
    held: Callable[[Sequence[str]], list[Lease]] | None = None

    def close(self) -> None:
        """Release what the ``held`` check keeps open (a :class:`HeldCheck`'s connections)."""
        if isinstance(self.held, _Closable):
            self.held.close()


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


def unfinished(run: RunRecord, rows: Sequence[HostRow]) -> list[str]:
    """Hosts of ``run`` that did not end confirmed or unchanged."""
    done = {row.host for row in rows if row.status in DONE}
    return [host for host in run.hosts if host not in done]


def prior_of(run: RunRecord, rows: Sequence[HostRow]) -> Prior:
    """Split ``run``'s hosts into done (carried over) and to resolve first (a recorded txid not
    known to be decided); every other host is applied in its batch."""
    prior = Prior(run.id)
    by_host = {row.host: row for row in rows}
    for host in run.hosts:
        row = by_host.get(host)
        if row is None:
            continue
        if isinstance(row.status, Status) and row.status in DONE:
            origin = row.from_run or run.id
            prior.carried[host] = HostResult(
                host, row.status, f"{row.status} in run {origin}; not touched again",
                data={"from_run": origin, "txid": row.txid, "batch": row.batch},
            )  # fmt: skip
        elif row.txid and row.status is not Status.ROLLED_BACK:
            prior.resolve[host] = row.txid  # started, failed, unreachable...: ask the host
    return prior


def choose_run(
    store: HistoryStore, wanted: int | None, *, wait: bool = False
) -> tuple[RunRecord, list[HostRow]]:
    """The run to resume: ``wanted``, or (bare ``--resume``) the newest apply run, only when it
    stopped before it reached every host. UsageError (exit 2, nothing contacted) when there is
    none, it finished, or it is live; ``wait``: a run whose controller still runs on this
    machine and holds its run lease is not refused (the caller waits for the lease, then
    chooses again)."""
    if wanted is not None:
        try:
            run = store.run(wanted)
        except HistoryError as exc:
            raise UsageError(f"--resume: {exc}") from None
        if run.command != "apply":
            raise UsageError(f"--resume: run {wanted} is a `{run.command}` run, not an apply")
        rows = store.hosts_of(run.id)
        _check_resumable(store, run, rows, wait=wait)
        return run, rows
    newest = store.runs(command="apply", limit=1)
    if not newest:
        raise UsageError(f"--resume: no apply run in {store.location}")
    run = newest[0]
    rows = store.hosts_of(run.id)
    if stop_reason(run, rows) is None:
        retry = (
            f" (`--resume {run.id}` retries its hosts that did not end confirmed or unchanged)"
            if unfinished(run, rows)
            else ""
        )
        raise UsageError(
            f"--resume: the newest apply, run {run.id}, finished (every host was attempted); "
            f"nothing to resume{retry}"
        )
    _check_resumable(store, run, rows, wait=wait)
    return run, rows


def stop_reason(run: RunRecord, rows: Sequence[HostRow]) -> str | None:
    """Why ``run`` stopped before it reached every host, or None when it finished: its
    controller died or was stopped, or a canary or ``--max-failures`` left hosts skipped."""
    if run.state is RunState.RUNNING:
        return "its controller is gone"
    if run.state is not RunState.FINISHED:
        return str(run.state)
    status = {row.host: row.status for row in rows}
    if any(status.get(host, STARTED) in (STARTED, Status.SKIPPED) for host in run.hosts):
        return "stopped with hosts not attempted"
    return None


def announcement(run: RunRecord, rows: Sequence[HostRow]) -> str:
    """The line that names the run being resumed, before any host is contacted."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started))
    why = stop_reason(run, rows) or "finished"
    left = len(unfinished(run, rows))
    return (
        f"resuming run {run.id} (apply started {started}, {why}): task {run.task_path or '?'} "
        f"(sha256 {(run.task_sha256 or 'none')[:12]}), {len(run.hosts)} host"
        f"{'' if len(run.hosts) == 1 else 's'} {fold_hosts(run.hosts)} "
        f"(-l {run.selection or 'all'}), {left} not done"
    )


def _check_resumable(
    store: HistoryStore, run: RunRecord, rows: Sequence[HostRow], *, wait: bool = False
) -> None:
    later = store.resumed_by(run.id)
    if later is not None:
        raise UsageError(f"--resume: run {run.id} was resumed by run {later}; resume that one")
    alive = run.state is RunState.RUNNING and controller_alive(run.controller)
    if alive and not (wait and store.run_lease(run.id, lapsed=True) is not None):
        raise UsageError(
            f"--resume: run {run.id} is still running (pid {run.controller.get('pid')}); "
            "wait for it or stop it first"
        )
    if not unfinished(run, rows):
        raise UsageError(f"--resume: run {run.id} finished every host; nothing to resume")


def check_same_task(run: RunRecord, task: Path) -> None:
    """The task file must have the content the run applied (else exit 2)."""
    try:
        sha = file_sha256(task)
    except OSError as exc:
        raise UsageError(f"{task}: cannot read the task file ({exc.strerror})") from None
    if sha != run.task_sha256:
        raise UsageError(
            f"--resume: {task} is not the task run {run.id} applied (sha256 {sha[:12]}, the run "
            f"recorded {(run.task_sha256 or 'none')[:12]}); start a new apply instead"
        )


def check_same_hosts(run: RunRecord, hosts: Sequence[HostSpec]) -> None:
    """The selection must resolve to the run's hosts, in the same order (else exit 2)."""
    names = [spec.name for spec in hosts]
    if names != run.hosts:
        extra = sorted(set(names) - set(run.hosts))
        missing = sorted(set(run.hosts) - set(names))
        detail = "; ".join(
            part for part in (
                f"not in the run: {', '.join(extra)}" if extra else "",
                f"missing now: {', '.join(missing)}" if missing else "",
            ) if part
        ) or "the order differs"  # fmt: skip
        raise UsageError(
            f"--resume: the selected hosts differ from run {run.id}'s "
            f"(-l {run.selection or 'all'}): {detail}"
        )


def prepare_resume(
    request: RunRequest, select: Callable[[RunRequest], list[HostSpec]]
) -> tuple[RunRequest, Prior, list[HostSpec]]:
    """Check ``apply [TASK] --resume [RUN]`` against the history; the request to run (the run's
    task when TASK is left out, its selection when -l is, its canary, batches and thresholds),
    what the run left, and the hosts (``select`` loads a request's hosts). UsageError (exit 2,
    nothing contacted) on a mismatch."""
    path, rollout = request.history.path, request.rollout
    if path is None:
        raise UsageError("--resume needs the run history; it cannot be used with --no-history")
    flags = (("--canary", rollout.canary), ("--batch-size", rollout.batch_size),
             ("--max-failures", rollout.max_failures))  # fmt: skip
    given = [flag for flag, value in flags if value is not None]
    if given:
        raise UsageError(f"--resume continues with the run's own canary, batches and thresholds: "
                         f"leave out {', '.join(given)}")  # fmt: skip
    run, rows = _chosen(path, request.history.resume or None)
    change = request.change or ChangeRef("bridge")
    task = change.recorded_file
    if task is None:
        if not run.task_path:
            raise UsageError(f"--resume: run {run.id} recorded no task file; give TASK")
        task = Path(run.task_path)
        change = dataclasses.replace(change, source=task, recorded_file=task)
    check_same_task(run, task)
    selection = request.selection
    if selection.limit is None and selection.hosts is None:
        selection = dataclasses.replace(selection, limit=run.selection)
    options = run.options
    resumed = request.replace(
        selection=selection, change=change,
        rollout=dataclasses.replace(
            rollout, canary=_count(options.get("canary"), 0),
            batch_size=_batch_size(options.get("batch_size_hosts")),
            max_failures=_count(options.get("max_failures_hosts"), None),
        ),
        history=dataclasses.replace(request.history, resumed_from=run.id,
                                    resumed_options=options),
    )  # fmt: skip
    hosts = select(resumed)
    check_same_hosts(run, hosts)
    sys.stderr.write(plain(announcement(run, rows)) + "\n")
    sys.stderr.flush()
    prior = prior_of(run, rows)
    prior.held = HeldCheck(path, run.id)
    return resumed, prior, hosts


def _chosen(path: HistoryLocation, wanted: int | None) -> tuple[RunRecord, list[HostRow]]:
    try:
        store = open_store(path, create=False)
    except NoHistoryYet:
        raise UsageError(f"--resume: no run history at {path}") from None
    except HistoryError as exc:
        raise UsageError(f"--resume: {exc}") from None
    try:
        try:
            run, _ = choose_run(store, wanted, wait=True)
            released(store, run.id)
            return choose_run(store, run.id)  # what the run left once its processes let go
        finally:
            store.close()
    except (HistoryError, sqlite3.Error) as exc:
        raise UsageError(f"--resume: {exc}") from None


def released(store: HistoryStore, run_id: int, bound: float | None = None) -> bool:
    """Wait until no process of run ``run_id`` drives it or works on any of its hosts any more
    (no live run lease nor host lease: :mod:`fleetbr.history.lease`), at most ``bound`` seconds
    (default ``$FLEETBR_RESUME_WAIT``); whether it waited. One line on stderr when it waits;
    UsageError (exit 2, nothing contacted) when a lease is still held at the bound."""
    limit = wait_bound() if bound is None else bound
    waited: list[bool] = []
    tell = _waiting_line(run_id, limit, "for it to let go")

    def say(leases: Sequence[Lease]) -> None:
        waited.append(True)
        tell(leases)

    def read() -> list[Lease]:
        driver = store.run_lease(run_id, lapsed=True)
        return ([] if driver is None else [driver]) + store.leases(run_id, lapsed=True)

    still = wait_released(read, limit, say=say)
    if still:
        raise UsageError(f"--resume: run {run_id} still works on {holders_text(still)} after "
                         f"{limit:g} s; let it finish (or stop it), then resume (the wait: "
                         f"${WAIT_ENV})")  # fmt: skip
    return bool(waited)


def _waiting_line(run_id: int, limit: float, until: str) -> Callable[[Sequence[Lease]], None]:
    """What a resume's wait for run ``run_id``'s leases says, once, on stderr."""

    def say(leases: Sequence[Lease]) -> None:
        sys.stderr.write(plain(f"--resume: run {run_id} still works on {holders_text(leases)}; "
                               f"waiting up to {limit:g} s {until}") + "\n")  # fmt: skip
        sys.stderr.flush()

    return say


def hosts_held(location: HistoryLocation, run_id: int, hosts: Sequence[str]) -> list[Lease]:
    """The leases run ``run_id`` still holds on ``hosts`` after waiting (at most
    ``$FLEETBR_RESUME_WAIT``) for them to be released, run out or their holder gone: the
    resuming run's check right before it resolves or stages these hosts ([]: free). One line on
    stderr when it waits; HistoryError when the history cannot be read."""
    check = HeldCheck(location, run_id)
    try:
        return check(hosts)
    finally:
        check.close()


class HeldCheck:
    """:func:`hosts_held` for a whole resumed rollout (its ``Prior.held``), called from several
    threads at once. On a database, one connection per check running at the same time, each
    reused by the next check (a 1000-host resume on PostgreSQL opened a connection per host); a
    connection whose read failed is closed, not reused. A file history is opened per check (a
    file open; an SQLite connection stays in the thread that opened it). :meth:`close` at the
    rollout's end."""

    def __init__(self, location: HistoryLocation, run_id: int) -> None:
        self.location, self.run_id = location, run_id
        self.pooled = isinstance(location, DatabaseUrl)
        self._idle: list[HistoryStore] = []
        self._lock = threading.Lock()
        self.opened = 0  # connections opened so far

    def __call__(self, hosts: Sequence[str]) -> list[Lease]:
        store = self._take()
        try:
            limit = wait_bound()
            say = _waiting_line(self.run_id, limit, "before touching it")
            read = functools.partial(store.leases, self.run_id, hosts, lapsed=True)
            held = wait_released(read, limit, say=say)
        except BaseException:
            _close_quietly(store)
            raise
        if self.pooled:
            with self._lock:
                self._idle.append(store)
        else:
            _close_quietly(store)
        return held

    def _take(self) -> HistoryStore:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.opened += 1
        return open_store(self.location)

    def close(self) -> None:
        """Close every connection (idle ones: a check still running closes its own later)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for store in idle:
            _close_quietly(store)


def _close_quietly(store: HistoryStore) -> None:
    with contextlib.suppress(sqlite3.Error, OSError, HistoryError):
        store.close()


def _count(value: object, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UsageError(f"--resume: the run recorded an unusable rollout option {value!r}")


def _batch_size(value: object) -> int | Serial | None:
    """The run's batch size in hosts: one number, or a list (``--batch-size 1,10%,50%``)."""
    if isinstance(value, list) and value:
        return Serial.counts([_count(size, None) or 0 for size in value])
    return _count(value, None)


@dataclass
class Resolution:
    """How a host left with a transaction was resolved: a final result, or None when the host is
    free and is applied again in its batch; ``note`` says what was done."""

    final: HostResult | None
    note: str
    verdict: RollbackVerdict | None = None  # how a rolled-back transaction was judged


Resolver = Callable[[HostSpec, str, int], Awaitable[Resolution]]  # (host, txid, its run)


async def resolve_host(spec: HostSpec, txid: str, run_id: int) -> Resolution:
    """Resolve transaction ``txid`` that run ``run_id`` left on ``spec`` (see the module doc)."""
    async with open_session(spec) as conn:
        return await resolve_on(conn, spec.name, txid, run_id)


async def resolve_on(
    conn: Session, host: str, txid: str, run_id: int, *, clock: Clock | None = None
) -> Resolution:
    """:func:`resolve_host` over an open connection to ``host`` (``clock``: a test's)."""
    state = await read_state(conn, txid)
    if not state.staged:
        return Resolution(None, f"{txid} of run {run_id} is not on the host (never staged)")
    if not state.decided and state.armed_marker is Marker.THIS:
        await conn.run_script(scripts.trigger_rollback_script(txid, "resume"), label="rollback")
    if state.decided or state.busy or state.armed_marker is Marker.THIS:
        state = await wait_settled(conn, txid, clock=clock)
    return await _settled(conn, host, txid, run_id, state, clock=clock)


async def _settled(
    conn: Session,
    host: str,
    txid: str,
    run_id: int,
    state: HostTxState,
    *,
    clock: Clock | None,
) -> Resolution:
    decision = state.decision_text
    data: dict[str, object] = {"txid": txid, "decision": decision, "from_run": run_id}
    if state.confirmed:
        message = f"confirmed {txid} (decided on the host after run {run_id} stopped)"
        return Resolution(HostResult(host, Status.CONFIRMED, message, data), message)
    if not state.decided and not state.busy and state.armed_marker is not Marker.THIS:
        return Resolution(None, f"{txid} of run {run_id} was never armed; nothing changed")
    if not rollback_finished(state):
        message = f"{txid} of run {run_id} still undecided: {state.summary()}"
        return Resolution(HostResult(host, Status.FAILED, message, data), message)
    verdict = await judge_staged(conn, txid, state, clock=clock)
    data["verdict"] = verdict.to_dict()
    if not verdict.at_snapshot:
        data["differences"] = list(verdict.problems)
        if verdict.failed_steps:
            data["failed_steps"] = verdict.failed_steps
        if verdict.kept:
            data["kept"] = list(verdict.kept)
        message = (
            f"{txid} of run {run_id} rolled back ({decision}) but not at its snapshot: "
            + "; ".join(verdict.failures(txid))
            + verdict.kept_note(txid)
        )
        return Resolution(HostResult(host, Status.FAILED, message, data), message, verdict)
    message = f"{txid} of run {run_id} rolled back ({decision}); matches its snapshot"
    return Resolution(None, message, verdict)
