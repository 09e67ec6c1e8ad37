"""Recording a run as it happens, without ever putting the run at risk.

Every write goes through one writer thread, so the event loop that confirms armed hosts never
waits for the database (another fleetbr process may hold it for a while). Rows are written as
things happen: the run when it starts, a host's row (``started``) when the host starts, its txid
when it stages a transaction, its result when it arrives, the run's end last. A controller that is
SIGKILLed therefore leaves a record ``fleetbr apply --resume`` can continue from.

If the database cannot be written (read-only, locked for longer than the busy timeout, disk full,
a newer schema), fleetbr prints one warning line on stderr and records nothing more for this run;
the run itself, its report and its exit code are unchanged. One exception: a run whose run lease
was taken (the history worked when it started) and then could not be renewed until it may have
run out (:class:`~fleetbr.history.lease.RunLeaseWatch`) starts no new host (a resume elsewhere
may have taken the run over): :meth:`Recorder.lease_stop`. Hosts already armed finish; the one
warning line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import pwd
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from fleetbr import __version__, progress
from fleetbr.core.request import RunRequest
from fleetbr.counts import Serial, Share
from fleetbr.history import lease
from fleetbr.history.lease import LEASE, MARGIN, Heartbeat, RunLeaseWatch, process_start
from fleetbr.history.lease import identity as this_process
from fleetbr.history.location import HistoryLocation, open_store, parse_location
from fleetbr.history.store import (
    BUSY_TIMEOUT,
    DATA_LIMIT,
    STARTED,
    HistoryError,
    HistoryStore,
    HostRow,
    RunRecord,
    RunState,
    default_path,
)
from fleetbr.interrupt import Stop
from fleetbr.metrics import RunSummary, render, write_atomically
from fleetbr.observe import Observers
from fleetbr.output import warning
from fleetbr.report import EXIT_FAILED, EXIT_INTERRUPTED, AggregatedResult, HostResult
from fleetbr.validate import seconds_from_env

Op = Callable[[HistoryStore], None]
ENV = "FLEETBR_HISTORY"
TIMEOUT_ENV = "FLEETBR_HISTORY_TIMEOUT"  # seconds a write waits for another process's write
CLOSE_GRACE = 5.0  # seconds beyond the busy timeout the end of a run waits for the writer
FLUSH_POLL = 0.1  # seconds between looks at a writer that may have failed meanwhile
GOES_ON = "the run goes on"  # what a history that cannot be written changes, by default
LEASE_LOST = "the run lease could not be renewed (history unreachable)"


def history_location(
    option: HistoryLocation | str | None, disabled: bool
) -> HistoryLocation | None:
    """Where the history lives: ``--no-history`` (None), ``--history``, ``$FLEETBR_HISTORY`` (a
    path or a ``postgresql://`` URL, as text or parsed), or the user's state directory.
    UsageError (one line, the password masked) for a URL of another scheme."""
    if disabled:
        return None
    if isinstance(option, str):
        return parse_location(option)
    if option is not None:
        return option
    from_env = os.environ.get(ENV, "")
    return parse_location(from_env) if from_env.strip() else default_path()


def history_timeout() -> float:
    """``$FLEETBR_HISTORY_TIMEOUT`` (seconds, 0.1 to 3600), else the default busy timeout."""
    return seconds_from_env(TIMEOUT_ENV, BUSY_TIMEOUT, 0.1, 3600)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (the task a run applied)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def controller_identity() -> dict[str, Any]:
    """This process, so a later ``--resume`` can tell whether the run is still alive, and who
    ran it (the HTML report's who/where)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid),
            "version": __version__, "user": _user()}  # fmt: skip


def _user() -> str:
    """The user name of this process ("uid N" when it has none)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def controller_alive(identity: dict[str, Any]) -> bool:
    """The recorded controller process still runs (same machine, pid and start time)."""
    pid = identity.get("pid")
    if identity.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    start = identity.get("start")
    return bool(start) and process_start(pid) == start


def bounded(diff: Any) -> Any:
    """A host's ``--diff`` view as recorded: whole up to DATA_LIMIT bytes of JSON, else a note
    of its size (like a host's data)."""
    if diff is None:
        return None
    size = len(json.dumps(diff, sort_keys=True, default=str).encode())
    return diff if size <= DATA_LIMIT else {"omitted": f"{size} bytes of diff (over the limit)"}


def phases_of(result: HostResult) -> dict[str, float]:
    """Phase timings of a host's result (the rollout puts them in its data), else its total."""
    found = result.data.get("phases")
    phases = dict(found) if isinstance(found, dict) else {}
    if "window" not in phases and isinstance(result.data.get("window"), int | float):
        phases["window"] = float(result.data["window"])
    if result.elapsed:
        phases["total"] = round(result.elapsed, 3)
    return phases


class Recorder:
    """Records one run (a :class:`fleetbr.observe.RunObserver`); see the module docstring."""

    drives_run: ClassVar[bool] = True  # holds the run lease (a site worker's recorder: False)

    def __init__(
        self,
        path: HistoryLocation,
        run: RunRecord,
        *,
        timeout: float = BUSY_TIMEOUT,
        consequence: str = GOES_ON,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.run = run
        self.timeout = timeout
        self.batch_index: int | None = None
        self.started_at: dict[str, float] = {}
        self.txids: dict[str, str] = {}  # host -> the transaction it staged (kept if it fails)
        self.failed = False
        # what the one warning line says happens next; given here, since the writer thread
        # may fail (and warn) before the constructor's caller could set it
        self.consequence = consequence
        self.lease_watch = RunLeaseWatch(clock)  # whether it still holds its run lease
        self._warned = threading.Lock()  # taken by the one warning line about the history
        self._renew_error = ""  # why the last renewal failed
        identity = run.controller
        # who takes the hosts: this controller; None when site workers claim them (distributed)
        self.worker: str | None = f"{identity.get('host', '')}:{identity.get('pid', '')}"
        self.holder = this_process()  # the lease holder of the hosts it works on (with a worker)
        self._queue: queue.Queue[Op | None] = queue.Queue()
        self._store: HistoryStore | None = None
        self._leases: HistoryStore | None = None  # the heartbeat's own connection
        # first beat in RENEW s (after the run exists)
        self._heartbeat = Heartbeat(self._renew, self._close_leases, every=lease.RENEW)
        self._thread = threading.Thread(target=self._write_all, name="fleetbr-history",
                                         daemon=True)  # fmt: skip
        self._thread.start()
        self._queue.put(self._create)

    @property
    def run_id(self) -> int:
        """The run's id in the history (0 until written, or if it could not be)."""
        return self.run.id

    # -- the writer thread ------------------------------------------------------------------

    def _write_all(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                break
            if self.failed:
                continue
            try:
                if self._store is None:
                    self._store = open_store(self.path, timeout=self.timeout)
                store = self._store
                store.retrying(functools.partial(op, store))
            except (sqlite3.Error, OSError, HistoryError) as exc:
                self.failed = True
                self._warn(self._failure(exc))
        if self._store is not None:
            self._store.close()

    def _failure(self, exc: BaseException) -> str:
        detail = str(exc) if isinstance(exc, HistoryError) else f"{self.path}: {exc}"
        if self.lease_watch.lost():  # the same line as lease_stop's
            return self._lease_lost(detail)
        consequence = self.consequence
        if consequence == GOES_ON and self.lease_watch.held:
            consequence = (f"the run goes on unless its run lease cannot be renewed for "
                           f"{LEASE - MARGIN:.0f} s: then no new host starts (hosts already "
                           f"armed finish) and `fleetbr apply --resume {self.run.id}` finishes "
                           "the run")  # fmt: skip
        return f"run history not recorded ({detail}); {consequence}"

    def _lease_lost(self, detail: str) -> str:
        return (f"run history unreachable ({detail}): the run lease of run {self.run.id} could "
                f"not be renewed for {LEASE - MARGIN:.0f} s; no new host starts; hosts already "
                "armed finish (confirm or rollback); once the history is back, `fleetbr apply "
                f"--resume {self.run.id}` finishes the run")  # fmt: skip

    def _warn(self, line: str) -> None:
        """The one warning line about the history (a second one is not printed)."""
        if self._warned.acquire(blocking=False):
            warning(line)

    def lease_stop(self) -> Stop | None:
        """Why no new host may start: its run lease taken, then not renewed long enough that it
        may have run out (:class:`RunLeaseWatch`); None while it is held, or never was (a
        history not written from the start never stops the run). Prints the one warning line
        the first time (unless the history's failure printed it already)."""
        if not self.drives_run or not self.lease_watch.lost():
            return None
        self._warn(self._lease_lost(self._renew_error or "no answer"))
        return Stop(LEASE_LOST, f"resume with fleetbr apply --resume {self.run.id}")

    def _create(self, store: HistoryStore) -> None:
        """The run's row, with its run lease: this process drives the run."""
        began = self.lease_watch.clock()
        store.create_run(self.run, holder=self.holder, lease=LEASE)
        self.lease_watch.renewed(began)

    def _put(self, row: HostRow, *, lease: float | None = None) -> None:
        """Queue ``row``; with a worker (the hosts are this process's), the host's lease taken
        for ``lease`` seconds, or released (None) with the row."""
        holder = self.holder if self.worker is not None else None
        self._queue.put(lambda store: store.put_host(self.run.id, row, holder=holder,
                                                     lease=lease))  # fmt: skip

    def _renew(self) -> None:
        """The heartbeat (its thread): this process's leases in the run live on, its run lease
        too when it drives the run. On a connection of its own, tried again at every beat: a
        writer that failed (the history was down) does not stop it, so once the history is back
        the leases say again that this process still works on its hosts and drives its run."""
        if not self.run.id:
            return
        try:
            if self._leases is None:
                self._leases = open_store(self.path, timeout=self.timeout)
            store = self._leases
            began = store.retrying(functools.partial(self._renew_in, store))
        except (sqlite3.Error, OSError, HistoryError) as exc:
            self._renew_error = str(exc) if isinstance(exc, HistoryError) else f"{self.path}: {exc}"
            self._close_leases()  # opened again at the next beat
            return
        if self.drives_run:
            self.lease_watch.renewed(began)

    def _renew_in(self, store: HistoryStore) -> float:
        """One renewal; when it began (the lease watch's clock: the expiry is no earlier)."""
        began = self.lease_watch.clock()
        store.renew_leases(self.run.id, self.holder, LEASE, run=self.drives_run)
        return began

    def _close_leases(self) -> None:
        if self._leases is not None:
            store, self._leases = self._leases, None
            with contextlib.suppress(sqlite3.Error, OSError, HistoryError):
                store.close()

    def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every row queued so far is written; False
        when they were not in time (another process writes the same rows next)."""
        written = threading.Event()
        self._queue.put(lambda _store: written.set())
        deadline = time.monotonic() + timeout
        # a failed writer skips the queued ops, this one too: stop waiting once it failed
        while not written.wait(min(FLUSH_POLL, max(0.0, deadline - time.monotonic()))):
            if self.failed or time.monotonic() >= deadline:
                return self.failed
        return True

    # -- RunObserver --------------------------------------------------------------------------

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """Hosts that start from now on belong to batch ``index``."""
        self.batch_index = index

    def started(self, host: str) -> None:
        """A ``started`` row: a controller killed from now on leaves this host to resolve."""
        self.started_at[host] = time.time()
        self.txids.pop(host, None)
        self._put(HostRow(host, STARTED, batch=self.batch_index, started=self.started_at[host],
                          worker=self.worker), lease=LEASE)  # fmt: skip

    def staged(self, host: str, txid: str) -> None:
        """The host's transaction id, written before it is armed."""
        self.txids[host] = txid
        self._queue.put(lambda store: store.set_txid(self.run.id, host, txid))

    def finished(self, result: HostResult) -> None:
        """The host's final row."""
        ended = time.time()
        # --diff's view goes to the row's diff (plan), not into its data: a large one must not
        # crowd the steps out of the data's limit
        data = {key: value for key, value in result.data.items() if key != "diff"}
        txid = data.get("txid") or self.txids.get(result.host)
        from_run = data.get("from_run")
        # check: the drift (field, want, have), also with --diff; plan --diff: the host's view
        if self.run.command == "check":
            diff = data.get("differences")
        else:
            diff = bounded(result.data.get("diff"))
        self._put(
            HostRow(
                result.host, result.status, result.message,
                txid=txid if isinstance(txid, str) and txid else None,
                batch=self.batch_index if from_run is None else data.get("batch"),
                started=self.started_at.get(result.host),
                ended=ended, elapsed=round(result.elapsed, 3), phases=phases_of(result),
                diff=diff, data=data,
                from_run=from_run if isinstance(from_run, int) else None, worker=self.worker,
            )
        )  # fmt: skip

    # -- the end ------------------------------------------------------------------------------

    def finish(self, exit_code: int, state: RunState) -> None:
        """Record the end of the run and wait (bounded) for every row to be written."""
        ended = time.time()

        def op(store: HistoryStore) -> None:
            store.finish_run(self.run.id, ended=ended, exit_code=exit_code, state=state)

        self._heartbeat.stop()
        self._queue.put(op)
        self._queue.put(None)
        self._thread.join(self.timeout + CLOSE_GRACE)
        if self._thread.is_alive() and not self.failed:
            self.failed = True
            warning(f"run history: {self.path} did not take the last rows in time; the run "
                    "is recorded only in part")  # fmt: skip

    def record_all(self, aggregated: AggregatedResult) -> None:
        """Rows for every host of a run that had no observer (fallback; not incremental)."""
        for result in aggregated.values():
            self.finished(result)


def run_options(request: RunRequest, total: int) -> dict[str, Any]:
    """The options of a run worth keeping: its origin (cli, api, nornir, watch), forks, the
    inventory, the rollout's canary, batch size and failure threshold (as given, and in hosts),
    and what the front door adds (``fleetbr run``'s command, watch's period)."""
    origin = {"origin": request.origin}
    resumed = request.history.resumed_options
    if resumed is not None:
        return dict(resumed) | {"forks": request.rollout.forks} | origin
    options: dict[str, Any] = {"forks": request.rollout.forks} | origin
    if request.selection.inventory is not None:
        options["inventory"] = str(request.selection.inventory)
    rollout = request.rollout
    shares = (("canary", rollout.canary), ("batch_size", rollout.batch_size),
              ("max_failures", rollout.max_failures))  # fmt: skip
    for name, value in shares:
        if isinstance(value, Share | Serial):
            options[name] = value.text
            sizes = value.of(total)  # a Serial's: one per batch, the last repeating
            options[f"{name}_hosts"] = list(sizes) if isinstance(sizes, tuple) else sizes
        elif value is not None:
            options[name] = value
            if name != "canary":
                options[f"{name}_hosts"] = value
    for name, value in request.recorded.items():
        if value not in (None, False, []):
            options[name] = value
    return options


def start_recording(
    path: HistoryLocation | None,
    *,
    command: str,
    hosts: Sequence[str],
    options: dict[str, Any],
    selection: str | None,
    task: Path | None = None,
    task_sha256: str | None = None,
    resumed_from: int | None = None,
) -> Recorder | None:
    """A recorder for a new run, or None when the history is off."""
    if path is None:
        return None
    sha = task_sha256
    if task is not None and sha is None:
        try:
            sha = file_sha256(task)
        except OSError:
            sha = None
    run = RunRecord(
        command=command, hosts=list(hosts), options=options, started=time.time(),
        controller=controller_identity(),
        task_path=None if task is None else str(task.absolute()),
        task_sha256=sha, selection=selection, resumed_from=resumed_from,
    )  # fmt: skip
    return Recorder(path, run, timeout=history_timeout())


class Tally:
    """How many hosts ended in each status (for the metrics file)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """Not counted."""

    def started(self, host: str) -> None:
        """Not counted."""

    def staged(self, host: str, txid: str) -> None:
        """Not counted."""

    def finished(self, result: HostResult) -> None:
        """One more host in its status."""
        self.counts[result.status.value] = self.counts.get(result.status.value, 0) + 1


class RunContext:
    """Everything that watches one run: the history, the live progress, the metrics file.

    Use as a context manager around the run and call :meth:`done` with its exit code; a run that
    raises (a second Ctrl-C) is recorded ``aborted``. Nothing here can change the run's outcome.
    """

    def __init__(
        self,
        command: str,
        hosts: Sequence[str],
        *,
        recorder: Recorder | None,
        as_json: bool,
        metrics_file: Path | None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.labels = dict(labels or {})
        self.recorder = recorder
        self.metrics_file = metrics_file
        self.tally = Tally()
        self.live = (
            progress.LiveProgress(command, len(hosts))
            if hosts and progress.wanted(as_json=as_json)
            else None
        )
        self.observer = Observers(recorder, self.live, self.tally)
        self.started = time.time()
        self.outcome: tuple[int, RunState] | None = None

    def __enter__(self) -> RunContext:
        if self.live is not None:
            self.live.start()
        return self

    def done(self, exit_code: int, *, interrupted: bool = False) -> None:
        """The run ended with ``exit_code`` (after a first Ctrl-C: ``interrupted``)."""
        self.outcome = (exit_code, RunState.INTERRUPTED if interrupted else RunState.FINISHED)

    def stop_display(self) -> None:
        """Remove the live display (before the report is printed)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.stop_display()
        aborted = EXIT_INTERRUPTED if kind is KeyboardInterrupt else EXIT_FAILED
        exit_code, state = self.outcome or (aborted, RunState.ABORTED)
        if self.recorder is not None:
            self.recorder.finish(exit_code, state)
        # a watch check run abandoned at SIGTERM has no result: the last run's metrics stay
        abandoned = kind is not None and issubclass(kind, asyncio.CancelledError)
        if self.metrics_file is not None and not abandoned:
            self._write_metrics(exit_code)

    def _write_metrics(self, exit_code: int) -> None:
        summary = RunSummary(self.command, self.tally.counts, self.started, time.time(), exit_code,
                             self.labels)  # fmt: skip
        try:
            write_atomically(self.metrics_file or Path(), render(summary))
        except OSError as exc:
            warning(f"metrics not written ({self.metrics_file}: {exc.strerror or exc})")
