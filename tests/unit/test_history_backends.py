"""The store contract, once for each backend: SQLite (a file) and PostgreSQL (a real server,
tests/pgserver.py). Writes and reads round-trip alike, rows keep their place, claims are taken
exactly once even when many connections race for them, migrations run once and a newer schema
is refused."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fleetbr.history import postgres, sqlite
from fleetbr.history.lease import LEASE
from fleetbr.history.location import DatabaseUrl, HistoryLocation, open_store
from fleetbr.history.record import start_recording
from fleetbr.history.store import (
    STARTED,
    HistoryError,
    HistoryStore,
    HostRow,
    NoHistoryYet,
    RunRecord,
    RunState,
)
from fleetbr.report import HostResult, Status

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryLocation:
    """A new, empty history of each backend."""
    if request.param == "sqlite":
        return tmp_path / "h.sqlite3"
    return DatabaseUrl(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(location: HistoryLocation) -> Iterator[HistoryStore]:
    opened = open_store(location)
    yield opened
    opened.close()


def record(**changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "command": "apply", "hosts": ["b", "a", "c"], "options": {"forks": 2},
        "started": 1700000000.123456, "controller": {"host": "ctl", "pid": 7},
        "task_path": "/t.yaml", "task_sha256": "f" * 64, "selection": "a,b,c",
    }  # fmt: skip
    return RunRecord(**(fields | changes))


def raw(location: HistoryLocation, sql: str) -> list[tuple[Any, ...]]:
    """One statement on the database itself, past the store."""
    if isinstance(location, DatabaseUrl):
        with psycopg.connect(location.url, autocommit=True) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []
    lite = sqlite3.connect(location, isolation_level=None)
    try:
        return lite.execute(sql).fetchall()
    finally:
        lite.close()


def test_runs_and_rows_round_trip_and_keep_their_place(store: HistoryStore) -> None:
    first = store.create_run(record())
    for host in ("b", "a", "c"):
        store.put_host(first, HostRow(host, STARTED, batch=0, started=1700000001.5))
    store.set_txid(first, "a", "20240101T000000-aa")
    store.put_host(first, HostRow("a", Status.CONFIRMED, "done", txid="20240101T000000-aa",
                                  batch=0, elapsed=2.25, phases={"window": 1.5},
                                  diff=[["mtu", 1500, 9000]], data={"k": [1, 2]}))  # fmt: skip
    store.finish_run(first, ended=1700000009.75, exit_code=1, state=RunState.FINISHED)
    second = store.create_run(record(command="check", resumed_from=first, started=1800000000.0))
    store.put_host(second, HostRow("a", Status.UNCHANGED, from_run=first))

    run = store.run(first)
    assert (run.id, run.started, run.ended, run.exit_code, run.state) == (
        first, 1700000000.123456, 1700000009.75, 1, RunState.FINISHED,
    ), "times keep double precision"  # fmt: skip
    assert (run.hosts, run.options, run.controller) == (["b", "a", "c"], {"forks": 2},
                                                        {"host": "ctl", "pid": 7})  # fmt: skip
    rows = store.hosts_of(first)
    assert [row.host for row in rows] == ["b", "a", "c"], "an updated row keeps its place"
    a = rows[1]
    assert (a.status, a.txid, a.elapsed, a.phases, a.diff, a.data) == (
        Status.CONFIRMED, "20240101T000000-aa", 2.25, {"window": 1.5}, [["mtu", 1500, 9000]],
        {"k": [1, 2]},
    )  # fmt: skip
    assert rows[0].status is STARTED and rows[0].txid is None
    assert store.latest_run_id() == second
    assert [r.id for r in store.runs()] == [second, first]
    assert [r.id for r in store.runs(command="apply")] == [first]
    assert [r.id for r in store.runs(since=1750000000.0)] == [second]
    assert [r.id for r in store.runs(limit=1)] == [second]
    found = [(r.id, row.host) for r, row in store.host_history(["a", "c"])]
    assert found == [(second, "a"), (first, "a"), (first, "c")]
    assert store.host_history(["a"], command="check")[0][1].from_run == first
    assert sorted(store.host_names()) == ["a", "b", "c"]
    assert (store.resumed_by(first), store.resumed_by(second)) == (second, None)


def test_a_missing_run_names_the_history(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match=r"^no run 42 in "):
        store.run(42)
    assert store.latest_run_id() is None and store.runs() == [] and store.host_history([]) == []


def test_a_claim_is_taken_once_and_survives_later_writes(store: HistoryStore) -> None:
    run = store.create_run(record())
    assert store.claim_host(run, "a", "worker-1@site1")
    assert not store.claim_host(run, "a", "worker-1@site1"), "a second delivery, same worker"
    assert not store.claim_host(run, "a", "worker-2@site1")
    store.put_host(run, HostRow("a", Status.CONFIRMED, "ok", worker="someone-else"))
    store.put_host(run, HostRow("b", STARTED))  # written unclaimed (by the coordinator)
    assert store.claim_host(run, "b", "worker-2@site1"), "an unclaimed row is claimed in place"
    rows = {row.host: row for row in store.hosts_of(run)}
    assert (rows["a"].worker, rows["a"].status) == ("worker-1@site1", Status.CONFIRMED)
    assert (rows["b"].worker, rows["b"].status) == ("worker-2@site1", STARTED)
    other = store.create_run(record())
    assert store.claim_host(other, "a", "worker-2@site1"), "claims are per run"


def test_racing_claims_on_separate_connections_have_one_winner_per_host(
    location: HistoryLocation,
) -> None:
    setup = open_store(location)
    run = setup.create_run(record())
    setup.close()
    workers, hosts = 8, [f"hv{i}" for i in range(6)]
    won: dict[str, list[str]] = {host: [] for host in hosts}
    start = threading.Barrier(workers)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            mine = open_store(location)  # a connection of its own (as a worker process has)
            try:
                start.wait()
                for host in hosts:
                    if mine.retrying(functools.partial(mine.claim_host, run, host, f"w{index}")):
                        with lock:
                            won[host].append(f"w{index}")
            finally:
                mine.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert all(len(winners) == 1 for winners in won.values()), won
    check = open_store(location)
    recorded = {row.host: row.worker for row in check.hosts_of(run)}
    check.close()
    assert recorded == {host: winners[0] for host, winners in won.items()}


def test_a_lease_lives_until_released_or_run_out_by_the_database_s_clock(
    store: HistoryStore,
) -> None:
    run = store.create_run(record())
    assert store.claim_host(run, "a", "w1", lease=LEASE)
    assert store.claim_host(run, "b", "w2"), "a claim without a lease (the coordinator's)"
    store.put_host(run, HostRow("c", STARTED), holder="w2", lease=LEASE)
    [a, c] = store.leases(run)
    assert (a.host, a.holder, c.host, c.holder) == ("a", "w1", "c", "w2")
    assert 0 < a.left <= LEASE and 0 < c.left <= LEASE
    assert [lease.host for lease in store.leases(run, ["c", "b"])] == ["c"]
    assert store.leases(run, []) == [] and store.leases(store.create_run(record())) == []
    store.put_host(run, HostRow("a", Status.CONFIRMED, "ok"), holder="w2")
    assert [lease.host for lease in store.leases(run)] == ["a", "c"], "only its holder releases"
    store.put_host(run, HostRow("a", Status.CONFIRMED, "ok"), holder="w1")
    assert [lease.host for lease in store.leases(run)] == ["c"], "released with the final row"
    store.hold(run, "c", "w3", -1.0)  # its holder stopped renewing: run out
    assert store.leases(run) == []
    [lapsed] = store.leases(run, lapsed=True)
    assert (lapsed.host, lapsed.holder) == ("c", "w3") and -LEASE < lapsed.left <= 0
    store.renew_leases(run, "w3", LEASE)
    assert [(lease.host, lease.holder) for lease in store.leases(run)] == [("c", "w3")]
    rows = {row.host: row for row in store.hosts_of(run)}
    assert (rows["a"].status, rows["a"].worker) == (Status.CONFIRMED, "w1"), "rows unchanged"


def test_a_run_lease_lives_from_the_run_s_creation_until_it_ends_by_the_database_s_clock(
    store: HistoryStore,
) -> None:
    """The run lease (who drives the run): taken with the run's row, renewed only by its
    holder and only when asked (``run=True``: a site worker's beat leaves it alone), released
    when the run ends; a run recorded without one has none."""
    run = store.create_run(record(), holder="ctl", lease=LEASE)
    lease = store.run_lease(run)
    assert lease is not None and (lease.host, lease.holder) == ("", "ctl")
    assert 0 < lease.left <= LEASE
    assert store.run_lease(store.create_run(record()), lapsed=True) is None, "none taken"
    lapsing = store.create_run(record(), holder="ctl", lease=-1.0)  # its holder stopped renewing
    assert store.run_lease(lapsing) is None
    ran_out = store.run_lease(lapsing, lapsed=True)
    assert ran_out is not None and ran_out.holder == "ctl" and -LEASE < ran_out.left <= 0
    store.renew_leases(lapsing, "ctl", LEASE)  # a host lease beat: not the run's
    store.renew_leases(lapsing, "w1", LEASE, run=True)  # another holder: not its lease
    assert store.run_lease(lapsing) is None
    store.renew_leases(lapsing, "ctl", LEASE, run=True)
    renewed = store.run_lease(lapsing)
    assert renewed is not None and renewed.holder == "ctl" and renewed.left > 0
    store.finish_run(lapsing, ended=1700000009.0, exit_code=130, state=RunState.INTERRUPTED)
    assert store.run_lease(lapsing, lapsed=True) is None, "released when the run ends"
    store.renew_leases(lapsing, "ctl", LEASE, run=True)
    assert store.run_lease(lapsing, lapsed=True) is None, "a late beat takes nothing back"
    assert store.run(lapsing).state == RunState.INTERRUPTED
    lease = store.run_lease(run)
    assert lease is not None and lease.holder == "ctl", "the other run's lease untouched"


def test_a_run_recorded_before_schema_5_migrates_without_a_run_lease(
    location: HistoryLocation,
) -> None:
    if isinstance(location, DatabaseUrl):
        with psycopg.connect(location.url, autocommit=True) as db:
            assert postgres.migrate(db, upto=4) == 4
    else:
        lite = sqlite3.connect(location, isolation_level=None)
        assert sqlite.migrate(lite, upto=4) == 4
        lite.close()
        location.chmod(0o600)
    raw(location, "INSERT INTO runs (command, hosts, options, started, state, controller)"
                  " VALUES ('apply', '[\"a\"]', '{}', 5.5, 'running', '{}')")  # fmt: skip
    store = open_store(location)
    try:
        assert store.run(1).state == RunState.RUNNING
        assert store.run_lease(1, lapsed=True) is None
    finally:
        store.close()
    assert raw(location, "SELECT version FROM schema_version") == [(sqlite.LATEST,)]


def test_a_resumed_run_s_hosts_cannot_be_claimed_any_more(store: HistoryStore) -> None:
    run = store.create_run(record())
    assert store.claim_host(run, "a", "w1", lease=LEASE)
    store.put_host(run, HostRow("b", STARTED))  # sent by its coordinator, never claimed
    resuming = store.create_run(record(resumed_from=run))
    assert not store.claim_host(run, "b", "late-worker", lease=LEASE)
    assert not store.claim_host(run, "c", "late-worker", lease=LEASE)
    rows = {row.host: row.worker for row in store.hosts_of(run)}
    assert rows == {"a": "w1", "b": None}, "nothing claimed, no row made"
    assert [lease.host for lease in store.leases(run)] == ["a"]
    assert store.claim_host(resuming, "b", "w2", lease=LEASE), "the resuming run's own claims"


def test_claims_racing_a_resume_are_all_seen_by_it(location: HistoryLocation) -> None:
    """Every claim of a run that succeeds is committed before the run that resumes it is (the
    claims hold the run's row, the resume's creation waits for them or they see it): what the
    resume reads after its run exists is every claim there will ever be."""
    setup = open_store(location)
    run = setup.create_run(record())
    setup.close()
    hosts = [f"hv{i:03d}" for i in range(150)]
    won: list[str] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def claim_all() -> None:
        try:
            mine = open_store(location)
            try:
                for host in hosts:
                    started.set()
                    claim = functools.partial(mine.claim_host, run, host, "late", lease=LEASE)
                    if mine.retrying(claim):
                        won.append(host)
            finally:
                mine.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    claimer = threading.Thread(target=claim_all)
    claimer.start()
    resume = open_store(location)
    try:
        started.wait(30)
        resume.retrying(functools.partial(resume.create_run, record(resumed_from=run)))
        seen = {lease.host for lease in resume.leases(run)}
        claimer.join(60)
        assert errors == []
        assert set(won) == seen, "a claim the resume did not see"
    finally:
        resume.close()


def test_a_run_recorded_by_the_recorder_names_its_controller_as_the_worker(
    location: HistoryLocation,
) -> None:
    rec = start_recording(location, command="apply", hosts=["a", "b"], options={},
                          selection=None)  # fmt: skip
    assert rec is not None
    rec.started("a")
    rec.staged("a", "20240101T000000-aa")
    rec.finished(HostResult("a", Status.CONFIRMED, "ok", elapsed=0.5))
    rec.finish(0, RunState.FINISHED)
    assert not rec.failed
    store = open_store(location, create=False)
    [run] = store.runs()
    [row] = store.hosts_of(run.id)
    store.close()
    assert (run.state, row.status, row.txid) == (RunState.FINISHED, Status.CONFIRMED,
                                                 "20240101T000000-aa")  # fmt: skip
    assert row.worker == f"{run.controller['host']}:{run.controller['pid']}"


def test_nothing_recorded_yet_is_told_apart_and_nothing_is_created(
    location: HistoryLocation,
) -> None:
    with pytest.raises(NoHistoryYet, match="no run history yet"):
        open_store(location, create=False)
    if isinstance(location, DatabaseUrl):
        assert raw(location, "SELECT to_regclass('schema_version')") == [(None,)]
    else:
        assert not location.exists()


def test_a_newer_schema_is_refused_in_one_line_and_left_alone(location: HistoryLocation) -> None:
    open_store(location).close()
    raw(location, "UPDATE schema_version SET version = 99")
    with pytest.raises(HistoryError) as caught:
        open_store(location)
    message = str(caught.value)
    assert "schema version 99 is newer than this fleetbr knows" in message
    assert len(message.splitlines()) == 1
    assert raw(location, "SELECT version FROM schema_version") == [(99,)]


def test_postgres_migrates_an_empty_database_and_an_old_one_keeping_rows(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        assert postgres.migrate(db, upto=1) == 1
        db.execute(
            "INSERT INTO runs (command, hosts, options, started, state, controller)"
            " VALUES ('apply', '[\"a\"]', '{}', 5.5, 'finished', '{}')"
        )
        db.execute(
            "INSERT INTO host_results (run_id, host, status, message, txid)"
            " VALUES (1, 'a', 'confirmed', 'confirmed tx1', 'tx1')"
        )
    store = open_store(DatabaseUrl(pg_url))
    old = store.run(1)
    [row] = store.hosts_of(1)
    assert (old.command, old.started, old.resumed_from) == ("apply", 5.5, None)
    assert (row.txid, row.batch, row.worker) == ("tx1", None, None)
    assert store.create_run(record()) == 2, "the identity goes on after the old rows"
    store.close()
    assert raw(DatabaseUrl(pg_url), "SELECT version FROM schema_version") == [(postgres.LATEST,)]


def test_postgres_opened_by_many_at_once_migrates_once(pg_url: str) -> None:
    """Every process of a site opens the history when it starts: they race to migrate it."""
    count = 6
    start = threading.Barrier(count)
    opened: list[HistoryStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            start.wait()
            opened.append(open_store(DatabaseUrl(pg_url)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in opened:
        store.close()
    assert errors == [] and len(opened) == count
    assert raw(DatabaseUrl(pg_url), "SELECT version FROM schema_version") == [(postgres.LATEST,)]


def test_both_backends_have_the_same_migration_steps() -> None:
    assert sqlite.LATEST == postgres.LATEST == len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS)
    for old, new in zip(sqlite.MIGRATIONS[1:], postgres.MIGRATIONS[1:], strict=True):
        assert [s.split()[:6] for s in old] == [s.split()[:6] for s in new]


def test_a_wrong_password_is_one_line_without_the_password(pg_server: Any) -> None:
    url = pg_server.url(password="not-the-secret-77")
    with pytest.raises(HistoryError) as caught:
        open_store(DatabaseUrl(url))
    message = str(caught.value)
    assert "not-the-secret-77" not in message and "postgres:***@127.0.0.1" in message
    assert "password authentication failed" in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("sql", "want"),
    [("SELECT a FROM t WHERE b = ? AND c IN (?, ?)",
      "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"),
     ("SELECT 1", "SELECT 1")],
)  # fmt: skip
def test_the_dialect_turns_placeholders_into_psycopgs(sql: str, want: str) -> None:
    assert postgres.dialect(sql) == want


def test_the_dialect_refuses_a_percent_sign() -> None:
    with pytest.raises(ValueError, match="%"):
        postgres.dialect("SELECT 5 % 2")


def test_the_resumes_check_before_each_host_reuses_its_database_connections(
    location: HistoryLocation, store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:class:`fleetbr.resume.HeldCheck` (a resumed rollout's check right before it touches a
    host), called for 48 hosts from 6 threads at once as the rollout's jobs call it: each gets
    the leases of its own host right; on PostgreSQL at most one connection per thread is ever
    opened (it was one per host) and :meth:`~fleetbr.resume.HeldCheck.close` leaves none open;
    a file history is opened per check (an SQLite connection stays in its thread)."""
    from fleetbr.history.lease import WAIT_ENV
    from fleetbr.resume import HeldCheck

    monkeypatch.setenv(WAIT_ENV, "0")
    hosts = [f"hv{i:02d}" for i in range(48)]
    run = store.create_run(record(hosts=hosts))
    holder = "elsewhere.invalid:4242:9876"  # another machine's: held while its lease lives
    for host in hosts[::3]:
        store.put_host(run, HostRow(host, STARTED), holder=holder, lease=LEASE)
    before = _connections(location) if isinstance(location, DatabaseUrl) else 0
    check = HeldCheck(location, run)
    found: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(mine: list[str]) -> None:
        barrier.wait()
        try:
            for host in mine:
                found[host] = [lease.holder for lease in check([host])]
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(hosts[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert found == {host: [holder] if host in hosts[::3] else [] for host in hosts}
    if isinstance(location, DatabaseUrl):
        assert 1 <= check.opened <= 6, check.opened
        assert _connections(location) == before + check.opened, "kept for the next checks"
        check.close()
        assert _connections_settle(location, before) == before
    else:
        assert check.opened == len(hosts)
        check.close()


def _connections_settle(location: HistoryLocation, want: int, bound: float = 30.0) -> int:
    """:func:`_connections` once it is ``want`` or ``bound`` s passed: a closed connection's
    server process leaves pg_stat_activity only when it has exited, a moment after the client
    closed it (seen on a loaded machine)."""
    deadline = time.monotonic() + bound
    while (count := _connections(location)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def _connections(location: HistoryLocation) -> int:
    """Client connections to ``location``'s database (PostgreSQL), this count's own left out."""
    [(count,)] = raw(location, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                     "current_database() AND pid <> pg_backend_pid()")  # fmt: skip
    return int(count)
