"""The run history's SQLite store: schema, numbered migrations, writes and queries.

One database file (default ``$XDG_STATE_HOME/fleetbr/history.sqlite3``), opened in WAL mode with a
busy timeout, every write its own ``BEGIN IMMEDIATE`` transaction: two fleetbr processes may record
at once (readers never block writers; a writer waits for the other, never fails at once).

The schema is versioned: ``schema_version`` holds the version, :data:`MIGRATIONS` lists the steps
from an empty database to the latest, applied in order, each in its own transaction (a second
process migrating at the same time waits, then finds nothing left to do). Only portable SQL is
used (no SQLite-only column types), so a server database can stand behind the same interface.
"""

from __future__ import annotations

import enum
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fleetbr.errors import FleetbrError
from fleetbr.history.safepath import UnsafeHistoryPath, check_history_path, create_history_file
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

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs and their per-host results
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,
            task_path TEXT,
            task_sha256 TEXT,
            selection TEXT,
            hosts TEXT NOT NULL,
            options TEXT NOT NULL,
            started REAL NOT NULL,
            ended REAL,
            exit_code INTEGER,
            state TEXT NOT NULL,
            controller TEXT NOT NULL
        )""",
        """CREATE TABLE host_results (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            host TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            txid TEXT,
            started REAL,
            ended REAL,
            elapsed REAL,
            data TEXT,
            PRIMARY KEY (run_id, host)
        )""",
        "CREATE INDEX runs_started ON runs (started)",
    ),
    # 2: resumable rollouts (which run a run resumes, each host's batch and the run it was carried
    # over from), phase timings and drift diffs
    (
        "ALTER TABLE runs ADD COLUMN resumed_from INTEGER",
        "ALTER TABLE host_results ADD COLUMN batch INTEGER",
        "ALTER TABLE host_results ADD COLUMN from_run INTEGER",
        "ALTER TABLE host_results ADD COLUMN phases TEXT",
        "ALTER TABLE host_results ADD COLUMN diff TEXT",
        "CREATE INDEX host_results_host ON host_results (host, run_id)",
    ),
)
LATEST = len(MIGRATIONS)


class HistoryError(FleetbrError):
    """The run history cannot be opened, read or written."""


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
    run_id: int = 0


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _data_text(data: dict[str, Any]) -> str:
    text = _dumps(data)
    if len(text.encode()) > DATA_LIMIT:
        return _dumps({"omitted": f"{len(text.encode())} bytes of result data (over the limit)"})
    return text


class Store:
    """An open history database (see the module docstring)."""

    def __init__(self, path: Path, *, create: bool = True, timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        if not create and not path.exists():
            raise HistoryError(f"{path}: no run history yet")
        try:
            if create:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_history_path(path)
            if create:  # the history names hosts and errors: this user's only
                create_history_file(path)
            self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        except UnsafeHistoryPath as exc:
            raise HistoryError(f"{path}: refused: {exc} (docs/history.md)") from None
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"{path}: {exc}") from None
        self.timeout = timeout
        try:
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self.retrying(self._set_up)
        except (sqlite3.Error, HistoryError) as exc:
            self.db.close()
            raise HistoryError(f"{path}: {exc}") from None

    def _set_up(self) -> None:
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL, much faster
        migrate(self.db)

    def retrying(self, action: Callable[[], T]) -> T:
        """``action``, tried again while SQLite says the database is locked or busy, until the
        busy timeout. SQLite does not wait by itself in every case (switching to WAL, a WAL
        recovery by another process), and each action is one transaction, rolled back when it
        fails, so trying again is safe."""
        give_up = time.monotonic() + self.timeout
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > give_up:
                    raise
            time.sleep(random.uniform(0.005, 0.05))

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``: no lock upgrade, no
        deadlock between two writers)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- writes -----------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> int:
        """Insert ``run``; its new id (also set on ``run``)."""
        with self.write() as db:
            cursor = db.execute(
                "INSERT INTO runs (command, task_path, task_sha256, selection, hosts, options,"
                " started, ended, exit_code, state, controller, resumed_from)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.command, run.task_path, run.task_sha256, run.selection, _dumps(run.hosts),
                 _dumps(run.options), run.started, run.ended, run.exit_code, run.state.value,
                 _dumps(run.controller), run.resumed_from),
            )  # fmt: skip
        run.id = int(cursor.lastrowid or 0)
        return run.id

    def put_host(self, run_id: int, row: HostRow) -> None:
        """Insert ``row`` of run ``run_id``, or update the host's row (its place stays)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO host_results (run_id, host, status, message, txid, batch, started,"
                " ended, elapsed, phases, diff, data, from_run)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, host) DO UPDATE SET status = excluded.status,"
                " message = excluded.message, txid = excluded.txid, batch = excluded.batch,"
                " started = excluded.started, ended = excluded.ended,"
                " elapsed = excluded.elapsed, phases = excluded.phases, diff = excluded.diff,"
                " data = excluded.data, from_run = excluded.from_run",
                (run_id, row.host, row.status.value, row.message, row.txid, row.batch, row.started,
                 row.ended, row.elapsed, _dumps(row.phases) if row.phases else None,
                 None if row.diff is None else _dumps(row.diff), _data_text(row.data),
                 row.from_run),
            )  # fmt: skip

    def set_txid(self, run_id: int, host: str, txid: str) -> None:
        """Record the transaction a host's row has staged (before it is armed)."""
        with self.write() as db:
            db.execute(
                "UPDATE host_results SET txid = ? WHERE run_id = ? AND host = ?",
                (txid, run_id, host),
            )

    def finish_run(self, run_id: int, *, ended: float, exit_code: int, state: RunState) -> None:
        """Record how run ``run_id`` ended."""
        with self.write() as db:
            db.execute(
                "UPDATE runs SET ended = ?, exit_code = ?, state = ? WHERE id = ?",
                (ended, exit_code, state.value, run_id),
            )

    # -- reads ------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunRecord:
        """Run ``run_id``; HistoryError if there is none."""
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"  # noqa: S608 (constant columns)
        row = self.db.execute(sql, (run_id,)).fetchone()
        if row is None:
            raise HistoryError(f"no run {run_id} in {self.path}")
        return _run_record(row)

    def latest_run_id(self) -> int | None:
        """The newest run's id, if any."""
        row = self.db.execute("SELECT MAX(id) FROM runs").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def runs(
        self, *, since: float | None = None, command: str | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Runs, newest first, optionally since an epoch time and of one command."""
        where, params = _filters(since=since, command=command, prefix="")
        sql = f"SELECT {RUN_COLUMNS} FROM runs{where} ORDER BY id DESC"  # noqa: S608 (constants)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run_record(row) for row in self.db.execute(sql, params)]

    def hosts_of(self, run_id: int) -> list[HostRow]:
        """The host rows of run ``run_id``, in the order they were first written."""
        where = "WHERE run_id = ? ORDER BY rowid"
        rows = self.db.execute(f"SELECT {HOST_COLUMNS} FROM host_results {where}", (run_id,))  # noqa: S608
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
        sql = f"SELECT {columns}, {host_columns} {joined}{where} ORDER BY r.id DESC, h.rowid"
        width = len(RUN_COLUMNS.split(", "))
        return [
            (_run_record(row[:width]), _host_row(row[width:]))
            for row in self.db.execute(sql, [*params, *hosts])
        ]

    def host_names(self) -> list[str]:
        """Every host name the history has a row for."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT host FROM host_results")]

    def resumed_by(self, run_id: int) -> int | None:
        """The run that resumed run ``run_id``, if any."""
        row = self.db.execute(
            "SELECT MIN(id) FROM runs WHERE resumed_from = ?", (run_id,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


RUN_COLUMNS = (
    "id, command, task_path, task_sha256, selection, hosts, options, started, ended, exit_code,"
    " state, controller, resumed_from"
)
HOST_COLUMNS = (
    "run_id, host, status, message, txid, batch, started, ended, elapsed, phases, diff, data,"
    " from_run"
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
     from_run) = row  # fmt: skip
    return HostRow(
        host=host, status=host_status(status), message=message, txid=txid, batch=batch,
        started=started, ended=ended, elapsed=elapsed, phases=_loads(phases, {}),
        diff=_loads(diff, None), data=_loads(data, {}), from_run=from_run, run_id=run_id,
    )  # fmt: skip


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (0: empty)."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not exists:
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite3.Connection, upto: int = LATEST) -> int:
    """Apply the migrations the database lacks, in order, up to ``upto``; the version reached.

    A database newer than this fleetbr (another version wrote it) is refused, never changed.
    """
    version = schema_version(db)
    if version > LATEST:
        raise HistoryError(
            f"schema version {version} is newer than this fleetbr knows ({LATEST}); "
            "use a newer fleetbr or another --history file"
        )
    while version < upto:
        db.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(db)  # another process may have migrated meanwhile
            if version < upto:
                if version == 0:
                    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                version += 1
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return version


def now() -> float:
    """Wall-clock time as recorded in the history (epoch seconds)."""
    return time.time()
