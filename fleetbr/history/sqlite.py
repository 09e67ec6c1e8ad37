"""The run history in SQLite (the default): one file, its numbered migrations.

One database file (default ``$XDG_STATE_HOME/fleetbr/history.sqlite3``), opened in WAL mode with a
busy timeout, every write its own ``BEGIN IMMEDIATE`` transaction: two fleetbr processes may record
at once (readers never block writers; a writer waits for the other, never fails at once).

The schema is versioned: ``schema_version`` holds the version, :data:`MIGRATIONS` lists the steps
from an empty database to the latest, applied in order, each in its own ``BEGIN IMMEDIATE``
transaction (a second process migrating at the same time waits, then finds nothing left to do).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from fleetbr.history.safepath import UnsafeHistoryPath, check_history_path, create_history_file
from fleetbr.history.store import (
    BUSY_TIMEOUT,
    Execute,
    HistoryError,
    HistoryStore,
    NoHistoryYet,
    Rows,
    T,
    newer_than_code,
)

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
    # 3: which worker took each host (claim_host)
    ("ALTER TABLE host_results ADD COLUMN worker TEXT",),
    # 4: who works on each host now, until when by the database's clock (fleetbr.history.lease)
    (
        "ALTER TABLE host_results ADD COLUMN lease_holder TEXT",
        "ALTER TABLE host_results ADD COLUMN lease_until REAL",
    ),
    # 5: who drives each run now (its controller or coordinator), until when by the database's
    # clock (the run lease, fleetbr.history.lease)
    (
        "ALTER TABLE runs ADD COLUMN lease_holder TEXT",
        "ALTER TABLE runs ADD COLUMN lease_until REAL",
    ),
)
LATEST = len(MIGRATIONS)


class SqliteStore(HistoryStore):
    """An open SQLite history file (see the module docstring)."""

    host_order: ClassVar[str] = "rowid"
    # the clock of the one machine the file's processes share, in epoch seconds (ms precision)
    clock: ClassVar[str] = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path, *, create: bool = True, timeout: float = BUSY_TIMEOUT) -> None:
        self.path = self.location = path
        if not create and not path.exists():
            raise NoHistoryYet(f"{path}: no run history yet")
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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.db.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[Execute]:
        """Taken at once (``BEGIN IMMEDIATE``: no lock upgrade, no deadlock between writers)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield lambda sql, params: self.db.execute(sql, params).fetchall()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


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
        raise newer_than_code(version, LATEST)
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
