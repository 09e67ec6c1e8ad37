"""The run history's store: migrations from an empty database and from version 1, WAL, two
processes writing at once, a newer schema refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleetbr.history.sqlite import LATEST, SqliteStore, migrate, schema_version
from fleetbr.history.store import (
    STARTED,
    HistoryError,
    HostRow,
    RunRecord,
    RunState,
    default_path,
)
from fleetbr.report import Status

DATA = Path(__file__).resolve().parents[1] / "data" / "history"


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def run(**changes: object) -> RunRecord:
    record = RunRecord(command="apply", hosts=["a", "b"], options={"forks": 5}, started=1.0,
                       controller={"pid": 1})  # fmt: skip
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def test_empty_database_migrates_to_latest_in_wal_mode(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    assert schema_version(store.db) == LATEST == 5
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"resumed_from", "lease_holder", "lease_until"} <= set(columns(store.db, "runs"))
    assert {"batch", "from_run", "phases", "diff", "worker", "lease_holder", "lease_until"} <= set(
        columns(store.db, "host_results")
    )
    assert (tmp_path / "h.sqlite3").stat().st_mode & 0o077 == 0, "the history is private"
    store.close()


def test_version_1_database_migrates_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto=1) == 1
    assert "resumed_from" not in columns(db, "runs")
    db.execute(
        "INSERT INTO runs (command, hosts, options, started, state, controller)"
        " VALUES ('apply', '[\"a\"]', '{}', 5.0, 'finished', '{}')"
    )
    db.execute(
        "INSERT INTO host_results (run_id, host, status, message, txid)"
        " VALUES (1, 'a', 'confirmed', 'confirmed tx1', 'tx1')"
    )
    db.close()
    store = SqliteStore(path)
    assert schema_version(store.db) == LATEST
    old = store.run(1)
    assert (old.command, old.hosts, old.resumed_from) == ("apply", ["a"], None)
    [row] = store.hosts_of(1)
    assert (row.status, row.txid, row.batch, row.phases, row.diff) == (
        "confirmed", "tx1", None, {}, None,
    )  # fmt: skip
    store.close()


def test_a_history_written_before_postgresql_opens_migrated_with_its_rows(tmp_path: Path) -> None:
    """tests/data/history/v2.sql: a history as fleetbr wrote it at schema version 2."""
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript((DATA / "v2.sql").read_text())
    db.close()
    path.chmod(0o600)
    store = SqliteStore(path)
    assert schema_version(store.db) == LATEST
    [run] = store.runs()
    assert (run.id, run.state, run.exit_code, run.hosts) == (
        1, RunState.INTERRUPTED, 130, ["hv1", "hv2", "hv3"],
    )  # fmt: skip
    assert (run.started, run.selection, run.options["batch_size_hosts"]) == (
        1700000000.25, "hv*", 1,
    )  # fmt: skip
    hv1, hv2 = store.hosts_of(1)
    assert (hv1.host, hv1.status, hv1.phases["window"], hv1.worker) == (
        "hv1", Status.CONFIRMED, 20.0, None,
    )  # fmt: skip
    assert (hv2.host, hv2.status, hv2.txid, hv2.batch) == (
        "hv2", STARTED, "20231114T221352-bb", 1,
    )  # fmt: skip
    assert store.claim_host(1, "hv3", "w1") and not store.claim_host(1, "hv3", "w2")
    assert store.create_run(RunRecord("apply", ["hv3"], {}, 1.0, {})) == 2
    store.close()


def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    SqliteStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE schema_version SET version = 99")
    db.close()
    with pytest.raises(HistoryError, match="schema version 99 is newer"):
        SqliteStore(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == 99


def test_rows_round_trip_and_keep_their_place(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    run_id = store.create_run(run(selection="rack[/]a\n", task_path="/t.yaml"))
    store.put_host(run_id, HostRow("b", STARTED, batch=0, started=2.0))
    store.put_host(run_id, HostRow("a", STARTED, batch=0, started=2.0))
    store.set_txid(run_id, "b", "20240101T000000-abc")
    store.put_host(run_id, HostRow("b", Status.CONFIRMED, "ok", txid="20240101T000000-abc", batch=0,
                                   phases={"prepare": 1.5}, diff=[{"field": "stp"}],
                                   data={"events": ["x"]}))  # fmt: skip
    store.finish_run(run_id, ended=9.0, exit_code=1, state=RunState.FINISHED)
    rows = store.hosts_of(run_id)
    assert [r.host for r in rows] == ["b", "a"], "an update keeps the row's place"
    assert rows[0].phases == {"prepare": 1.5} and rows[0].diff == [{"field": "stp"}]
    assert rows[0].data == {"events": ["x"]}
    again = store.run(run_id)
    assert (again.selection, again.exit_code, again.state) == ("rack[/]a\n", 1, "finished")
    assert [r.id for r in store.runs(command="apply")] == [run_id]
    assert store.runs(command="plan") == [] and store.runs(since=10.0) == []
    assert [row.host for _, row in store.host_history(["a"])] == ["a"]


def test_oversized_result_data_is_replaced_by_a_note(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    run_id = store.create_run(run())
    store.put_host(run_id, HostRow("a", Status.OK, data={"stdout": "x" * 200_000}))
    [row] = store.hosts_of(run_id)
    assert "omitted" in row.data and "stdout" not in row.data


def test_default_path_follows_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")
    assert default_path() == Path("/srv/state/fleetbr/history.sqlite3")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", "/home/op")
    assert default_path() == Path("/home/op/.local/state/fleetbr/history.sqlite3")


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from fleetbr.history.record import start_recording
    from fleetbr.history.store import RunState
    from fleetbr.report import HostResult, Status

    path, name, runs, hosts, start_at = Path(sys.argv[1]), sys.argv[2], *map(float, sys.argv[3:])
    time.sleep(max(0.0, start_at - time.time()))  # every writer starts at the same moment
    for r in range(int(runs)):
        names = [f"{name}-{r}-{h}" for h in range(int(hosts))]
        rec = start_recording(path, command="apply", hosts=names, options={}, selection=name)
        for host in names:
            rec.started(host)
            rec.staged(host, "20240101T000000-" + host)
            rec.finished(HostResult(host, Status.CONFIRMED, "ok", elapsed=0.1))
        rec.finish(0, RunState.FINISHED)
        assert not rec.failed
    """
)


def test_two_processes_record_at_once_without_lock_errors(tmp_path: Path) -> None:
    """Both start on a database that does not exist yet (racing to create and migrate it),
    then write 30 runs of 20 hosts each, one transaction per row."""
    import time

    path = tmp_path / "h.sqlite3"
    start_at = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, "30", "20", start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2")
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "warning" not in err, err
    store = SqliteStore(path)
    runs = store.runs()
    assert len(runs) == 60
    assert all(r.state == "finished" and r.exit_code == 0 for r in runs)
    counts = store.db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT host), SUM(status = 'confirmed'), COUNT(txid)"
        " FROM host_results"
    ).fetchone()
    assert counts == (1200, 1200, 1200, 1200)
    assert json.loads(store.db.execute("SELECT options FROM runs LIMIT 1").fetchone()[0]) == {}


def test_statuses_and_states_are_read_back_as_types(tmp_path: Path) -> None:
    """A host's status is a report Status (or STARTED before its result), a run's state a
    RunState; a word fleetbr never writes is an error, not a guess."""
    store = SqliteStore(tmp_path / "h.sqlite3")
    run_id = store.create_run(run())
    store.put_host(run_id, HostRow("a", STARTED))
    store.put_host(run_id, HostRow("b", Status.ROLLED_BACK))
    store.finish_run(run_id, ended=2.0, exit_code=130, state=RunState.INTERRUPTED)
    a, b = store.hosts_of(run_id)
    assert a.status is STARTED and b.status is Status.ROLLED_BACK
    assert store.run(run_id).state is RunState.INTERRUPTED
    store.db.execute("UPDATE host_results SET status = 'sideways' WHERE host = 'a'")
    with pytest.raises(HistoryError, match="unknown Status 'sideways'"):
        store.hosts_of(run_id)
    store.db.execute("UPDATE runs SET state = 'paused'")
    with pytest.raises(HistoryError, match="unknown RunState 'paused'"):
        store.run(run_id)
