"""The run history's store: its records, and the queries every backend shares.

Two backends stand behind :class:`HistoryStore`, with one logical schema (``runs`` and their
``host_results``, JSON kept as TEXT): SQLite (``fleetbr.history.sqlite``, one file, the default)
and PostgreSQL (``fleetbr.history.postgres``, a ``postgresql://`` URL, shared by coordinator and
workers). ``fleetbr.history.location`` picks one. Each backend has its numbered migrations and a
``schema_version`` table; a database newer than this fleetbr is refused, never changed.

Every write is its own transaction. The per-host rows are the truth of a run: which worker took
the host (:meth:`HistoryStore.claim_host`, atomic), its txid, its phase timings and its result.
"""

from __future__ import annotations

import abc
import enum
import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from fleetbr.errors import FleetbrError
from fleetbr.history.lease import Lease
from fleetbr.report import Status

T = TypeVar("T")
BUSY_TIMEOUT = 10.0  # seconds a write waits for another fleetbr process's write
DATA_LIMIT = 64 * 1024  # bytes of a host's result data kept (a `run` can carry megabytes)


class RunState(enum.StrEnum):
    """How a run ended (``running``: it has not, or its controller died)."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # a first Ctrl-C: the armed hosts were resolved, then it stopped
    ABORTED = "aborted"  # an error (or a second Ctrl-C) ended it


class Pending(enum.StrEnum):
    """A host's status in the history before its result (a :class:`Status`) arrives."""

    STARTED = "started"  # the result has not arrived (yet, or ever)


HostStatus = Status | Pending
STARTED = Pending.STARTED
DONE = frozenset({Status.CONFIRMED, Status.UNCHANGED})  # an apply host that needs nothing more


class HistoryError(FleetbrError):
    """The run history cannot be opened, read or written."""


class NoHistoryYet(HistoryError):
    """Nothing was ever recorded at the location (opened for reading only)."""


def newer_than_code(version: int, latest: int) -> HistoryError:
    """The error for a database another (newer) fleetbr migrated past ``latest``."""
    return HistoryError(
        f"schema version {version} is newer than this fleetbr knows ({latest}); "
        "use a newer fleetbr or another --history"
    )


def default_path() -> Path:
    """``$XDG_STATE_HOME/fleetbr/history.sqlite3``, else ``~/.local/state/fleetbr/...``."""
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local/state"
    return base / "fleetbr" / "history.sqlite3"


@dataclass
class RunRecord:
    """One run: what was asked (command, task, selection, options) and how it ended."""

    command: str
    hosts: list[str]
    options: dict[str, Any]
    started: float
    controller: dict[str, Any]
    task_path: str | None = None
    task_sha256: str | None = None
    selection: str | None = None
    resumed_from: int | None = None
    state: RunState = RunState.RUNNING
    ended: float | None = None
    exit_code: int | None = None
    id: int = 0


@dataclass
class HostRow:
    """One host's part of a run (``status`` is ``started`` until its result arrives)."""

    host: str
    status: HostStatus
    message: str = ""
    txid: str | None = None
    batch: int | None = None
    started: float | None = None
    ended: float | None = None
    elapsed: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    diff: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    from_run: int | None = None
    worker: str | None = None  # who took the host (claim_host; a local run: its controller)
    run_id: int = 0


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _data_text(data: dict[str, Any]) -> str:
    text = _dumps(data)
    if len(text.encode()) > DATA_LIMIT:
        return _dumps({"omitted": f"{len(text.encode())} bytes of result data (over the limit)"})
    return text


Rows = list[tuple[Any, ...]]
Execute = Callable[[str, Sequence[Any]], Rows]  # one statement in the open transaction


class HistoryStore(abc.ABC):
    """An open history database: the queries every backend shares (module docstring).

    Statements are written once, here, with ``?`` placeholders; a backend runs them
    (:meth:`_query`, :meth:`_transaction`) and translates the placeholders if its driver wants
    another style. No statement is ever built from a value: values are bound parameters.
    """

    location: object  # what messages name (a path, a masked URL)
    host_order: ClassVar[str]  # the column that keeps host rows in the order first written
    clock: ClassVar[str]  # the database's clock in epoch seconds (leases are judged by it)
    share_lock: ClassVar[str] = ""  # a clause that holds a read row (SQLite: every write does)
    update_lock: ClassVar[str] = ""  # a clause that holds a row as an update would

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """The rows of one read statement."""

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Execute]:
        """One write transaction (committed at the end, rolled back on an exception)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def retrying(self, action: Callable[[], T]) -> T:
        """``action``, tried again where the backend knows a failure to be passing."""
        return action()

    # -- writes -----------------------------------------------------------------------------

    def create_run(
        self, run: RunRecord, *, holder: str | None = None, lease: float | None = None
    ) -> int:
        """Insert ``run``; its new id (also set on ``run``). With ``holder`` and ``lease``, in
        the same transaction: the run lease (the process that drives the run) taken for that
        many seconds (:mod:`fleetbr.history.lease`). A run that resumes another fences it: once
        this commits, no host of the resumed run can be claimed any more (:meth:`claim_host`
        holds the run's row while it claims)."""
        with self._transaction() as execute:
            if run.resumed_from is not None and self.update_lock:
                execute(LOCK_RUN + self.update_lock, (run.resumed_from,))
            rows = execute(
                "INSERT INTO runs (command, task_path, task_sha256, selection, hosts, options,"
                " started, ended, exit_code, state, controller, resumed_from)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (run.command, run.task_path, run.task_sha256, run.selection, _dumps(run.hosts),
                 _dumps(run.options), run.started, run.ended, run.exit_code, run.state.value,
                 _dumps(run.controller), run.resumed_from),
            )  # fmt: skip
            if holder is not None and lease is not None:
                execute("UPDATE runs SET lease_holder = ?, lease_until = CLOCK + ?"
                        " WHERE id = ?".replace("CLOCK", self.clock),
                        (holder, lease, rows[0][0]))  # fmt: skip
        run.id = int(rows[0][0])
        return run.id

    def put_host(
        self, run_id: int, row: HostRow, *, holder: str | None = None, lease: float | None = None
    ) -> None:
        """Insert ``row`` of run ``run_id``, or update the host's row (its place stays; a worker
        that claimed the host stays recorded). With ``holder``, in the same transaction: a
        ``lease`` of that many seconds taken (or renewed) for it, or (``lease`` None) its lease
        released (:mod:`fleetbr.history.lease`)."""
        with self._transaction() as execute:
            execute(
                "INSERT INTO host_results (run_id, host, status, message, txid, batch, started,"
                " ended, elapsed, phases, diff, data, from_run, worker)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, host) DO UPDATE SET status = excluded.status,"
                " message = excluded.message, txid = excluded.txid, batch = excluded.batch,"
                " started = excluded.started, ended = excluded.ended,"
                " elapsed = excluded.elapsed, phases = excluded.phases, diff = excluded.diff,"
                " data = excluded.data, from_run = excluded.from_run,"
                " worker = COALESCE(host_results.worker, excluded.worker)",
                (run_id, row.host, row.status.value, row.message, row.txid, row.batch, row.started,
                 row.ended, row.elapsed, _dumps(row.phases) if row.phases else None,
                 None if row.diff is None else _dumps(row.diff), _data_text(row.data),
                 row.from_run, row.worker),
            )  # fmt: skip
            if holder is not None and lease is not None:
                self._hold(execute, run_id, row.host, holder, lease)
            elif holder is not None:
                execute("UPDATE host_results SET lease_holder = NULL, lease_until = NULL"
                        " WHERE run_id = ? AND host = ? AND lease_holder = ?",
                        (run_id, row.host, holder))  # fmt: skip

    def _hold(self, execute: Execute, run_id: int, host: str, holder: str, lease: float) -> None:
        execute("UPDATE host_results SET lease_holder = ?, lease_until = CLOCK + ?"
                " WHERE run_id = ? AND host = ?".replace("CLOCK", self.clock),
                (holder, lease, run_id, host))  # fmt: skip

    def hold(self, run_id: int, host: str, holder: str, lease: float) -> None:
        """Give ``holder`` the lease on ``host``'s row for ``lease`` seconds (a taker of a lost
        holder's host: it works on the host from now on)."""
        with self._transaction() as execute:
            self._hold(execute, run_id, host, holder, lease)

    def renew_leases(self, run_id: int, holder: str, lease: float, *, run: bool = False) -> None:
        """Every lease ``holder`` holds in run ``run_id`` lives ``lease`` more seconds; ``run``:
        the run lease too, if ``holder`` holds it (the process that drives the run)."""
        with self._transaction() as execute:
            execute("UPDATE host_results SET lease_until = CLOCK + ?"
                    " WHERE run_id = ? AND lease_holder = ?".replace("CLOCK", self.clock),
                    (lease, run_id, holder))  # fmt: skip
            if run:
                execute("UPDATE runs SET lease_until = CLOCK + ?"
                        " WHERE id = ? AND lease_holder = ?".replace("CLOCK", self.clock),
                        (lease, run_id, holder))  # fmt: skip

    def run_lease(self, run_id: int, *, lapsed: bool = False) -> Lease | None:
        """Run ``run_id``'s own lease (host ``""``: who drives the run) if it is live by the
        database's clock; ``lapsed``: if it ran out too (``left`` <= 0). None when released
        (the run ended) or never taken (a run recorded before schema version 5)."""
        live = "" if lapsed else " AND lease_until > CLOCK"
        sql = RUN_LEASE.replace(" LIVE", live).replace("CLOCK", self.clock)
        rows = self._query(sql, (run_id,))
        return Lease("", rows[0][0], float(rows[0][1])) if rows else None

    def leases(
        self, run_id: int, hosts: Sequence[str] | None = None, *, lapsed: bool = False
    ) -> list[Lease]:
        """The live leases of run ``run_id`` (of ``hosts`` only, when given): not released and
        not run out by the database's clock; ``lapsed``: those run out too (``left`` <= 0)."""
        if hosts is not None and not hosts:
            return []
        only = "" if hosts is None else f" AND host IN ({', '.join('?' for _ in hosts)})"
        live = "" if lapsed else " AND lease_until > CLOCK"
        sql = LEASES.replace(" LIVE", live).replace("CLOCK", self.clock).replace(" ONLY", only)
        sql = sql.replace("HOSTORDER", self.host_order)
        rows = self._query(sql, (run_id, *(hosts or ())))
        return [Lease(host, holder, float(left)) for host, holder, left in rows]

    def claim_host(self, run_id: int, host: str, worker: str, *, lease: float = 0.0) -> bool:
        """Take ``host`` of run ``run_id`` for ``worker``: True for exactly one caller per run and
        host, whoever asks and however often (one atomic statement; a second delivery of the
        same host's work, by any worker, gets False and must stage nothing). A row the run
        wrote before, unclaimed, is claimed in place; a new one starts ``started``. ``lease``
        seconds > 0: the claim comes with the lease on the row. No host of a run that another
        run resumes is claimed any more (False): the resume may be resolving it."""
        with self._transaction() as execute:
            if self.share_lock:  # waits for a resume's run being created (create_run)
                execute(LOCK_RUN + self.share_lock, (run_id,))
            taken = execute(
                CLAIM.replace("CLOCK", self.clock),
                (run_id, host, STARTED.value, now(), worker, worker if lease > 0 else None,
                 lease if lease > 0 else None, run_id),
            )  # fmt: skip
        return bool(taken)

    def set_txid(self, run_id: int, host: str, txid: str) -> None:
        """Record the transaction a host's row has staged (before it is armed)."""
        with self._transaction() as execute:
            execute(
                "UPDATE host_results SET txid = ? WHERE run_id = ? AND host = ?",
                (txid, run_id, host),
            )

    def finish_run(self, run_id: int, *, ended: float, exit_code: int, state: RunState) -> None:
        """Record how run ``run_id`` ended; its run lease released with it."""
        with self._transaction() as execute:
            execute(
                "UPDATE runs SET ended = ?, exit_code = ?, state = ?, lease_holder = NULL,"
                " lease_until = NULL WHERE id = ?",
                (ended, exit_code, state.value, run_id),
            )

    # -- reads ------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunRecord:
        """Run ``run_id``; HistoryError if there is none."""
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"  # noqa: S608 (constant columns)
        rows = self._query(sql, (run_id,))
        if not rows:
            raise HistoryError(f"no run {run_id} in {self.location}")
        return _run_record(rows[0])

    def latest_run_id(self) -> int | None:
        """The newest run's id, if any."""
        rows = self._query("SELECT MAX(id) FROM runs")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def runs(
        self, *, since: float | None = None, command: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Runs, newest first, optionally since an epoch time and of one command."""
        where, params = _filters(since=since, command=command, prefix="")
        sql = f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY id DESC"  # noqa: S608 (constants)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run_record(row) for row in self._query(sql, params)]

    def hosts_of(self, run_id: int) -> list[HostRow]:
        """The host rows of run ``run_id``, in the order they were first written."""
        where = f"WHERE run_id = ? ORDER BY {self.host_order}"
        rows = self._query(f"SELECT {HOST_COLUMNS} FROM host_results {where}", (run_id,))  # noqa: S608
        return [_host_row(row) for row in rows]

    def host_history(
        self, hosts: Sequence[str], *, since: float | None = None, command: str | None = None
    ) -> list[tuple[RunRecord, HostRow]]:
        """Rows of these hosts across runs, newest run first."""
        if not hosts:
            return []
        where, params = _filters(since=since, command=command, prefix="r.")
        marks = ", ".join("?" for _ in hosts)
        where = (where + " AND" if where else " WHERE") + f" h.host IN ({marks})"
        columns = ", ".join(f"r.{c}" for c in RUN_COLUMNS.split(", "))
        host_columns = ", ".join(f"h.{c}" for c in HOST_COLUMNS.split(", "))
        # constant columns; every value is a bound parameter
        joined = "FROM host_results h JOIN runs r ON r.id = h.run_id"
        order = f"ORDER BY r.id DESC, h.{self.host_order}"
        sql = f"SELECT {columns}, {host_columns} {joined}{where} {order}"
        width = len(RUN_COLUMNS.split(", "))
        return [
            (_run_record(row[:width]), _host_row(row[width:]))
            for row in self._query(sql, [*params, *hosts])
        ]

    def host_names(self) -> list[str]:
        """Every host name the history has a row for."""
        return [row[0] for row in self._query("SELECT DISTINCT host FROM host_results")]

    def resumed_by(self, run_id: int) -> int | None:
        """The run that resumed run ``run_id``, if any."""
        rows = self._query("SELECT MIN(id) FROM runs WHERE resumed_from = ?", (run_id,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])


LOCK_RUN = "SELECT id FROM runs WHERE id = ?"  # + a backend's lock clause
# CLOCK: the backend's clock expression (a constant, never a value)
CLAIM = (
    "INSERT INTO host_results (run_id, host, status, message, data, started, worker,"
    " lease_holder, lease_until) SELECT ?, ?, ?, '', '{}', ?, ?, ?, CLOCK + ?"
    " WHERE NOT EXISTS (SELECT 1 FROM runs WHERE resumed_from = ?)"
    " ON CONFLICT (run_id, host) DO UPDATE SET worker = excluded.worker,"
    " lease_holder = excluded.lease_holder, lease_until = excluded.lease_until"
    " WHERE host_results.worker IS NULL RETURNING worker"
)
LEASES = (
    "SELECT host, lease_holder, lease_until - CLOCK FROM host_results WHERE run_id = ?"
    " AND lease_holder IS NOT NULL LIVE ONLY ORDER BY HOSTORDER"
)
RUN_LEASE = (
    "SELECT lease_holder, lease_until - CLOCK FROM runs WHERE id = ?"
    " AND lease_holder IS NOT NULL LIVE"
)
RUN_COLUMNS = (
    "id, command, task_path, task_sha256, selection, hosts, options, started, ended, exit_code,"
    " state, controller, resumed_from"
)
HOST_COLUMNS = (
    "run_id, host, status, message, txid, batch, started, ended, elapsed, phases, diff, data,"
    " from_run, worker"
)


def _filters(*, since: float | None, command: str | None, prefix: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append(f"{prefix}started >= ?")
        params.append(since)
    if command is not None:
        clauses.append(f"{prefix}command = ?")
        params.append(command)
    return (" WHERE " + " AND ".join(clauses) if clauses else "", params)


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


_Word = TypeVar("_Word", bound=enum.StrEnum)


def _word(kind: type[_Word], text: str) -> _Word:
    """The member of ``kind`` spelt ``text``; HistoryError for a word fleetbr never writes."""
    for member in kind:
        if member.value == text:
            return member
    raise HistoryError(f"unknown {kind.__name__} {text!r} in the history")


def host_status(text: str) -> HostStatus:
    """A host row's status as stored: a :class:`Status`, or :data:`STARTED`."""
    return STARTED if text == STARTED.value else _word(Status, text)


def _run_record(row: Sequence[Any]) -> RunRecord:
    (run_id, command, task_path, sha, selection, hosts, options, started, ended, exit_code,
     state, controller, resumed_from) = row  # fmt: skip
    return RunRecord(
        command=command, hosts=_loads(hosts, []), options=_loads(options, {}), started=started,
        controller=_loads(controller, {}), task_path=task_path, task_sha256=sha,
        selection=selection, resumed_from=resumed_from, state=_word(RunState, state), ended=ended,
        exit_code=exit_code, id=run_id,
    )  # fmt: skip


def _host_row(row: Sequence[Any]) -> HostRow:
    (run_id, host, status, message, txid, batch, started, ended, elapsed, phases, diff, data,
     from_run, worker) = row  # fmt: skip
    return HostRow(
        host=host, status=host_status(status), message=message, txid=txid, batch=batch,
        started=started, ended=ended, elapsed=elapsed, phases=_loads(phases, {}),
        diff=_loads(diff, None), data=_loads(data, {}), from_run=from_run, worker=worker,
        run_id=run_id,
    )  # fmt: skip


def now() -> float:
    """Wall-clock time as recorded in the history (epoch seconds)."""
    return time.time()
