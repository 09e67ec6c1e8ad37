"""Leases on host rows (fleetbr.history.lease): a wait for them ends when they are released,
when their holder is known dead, or at its bound; a local recorder holds a host's lease from its
``started`` row to its final row; ``--resume`` waits for the resumed run's leases, and refuses in
one line when one is still held at its bound. Clocks here are the test's own (no sleeping)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from fleetbr.cli import main
from fleetbr.errors import UsageError
from fleetbr.history.lease import (
    GRACE,
    LEASE,
    MARGIN,
    RENEW,
    WAIT,
    WAIT_ENV,
    Heartbeat,
    Lease,
    RunLeaseWatch,
    held,
    holders_text,
    identity,
    wait_bound,
    wait_released,
)
from fleetbr.history.location import open_store
from fleetbr.history.record import Recorder, controller_identity, file_sha256, start_recording
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import STARTED, HostRow, RunRecord, RunState
from fleetbr.interrupt import Stop
from fleetbr.report import HostResult, Status
from fleetbr.resume import released

REPO = Path(__file__).resolve().parents[2]
TXID = "20261206T101500-3fa9c2"


class _Told(io.StringIO):
    """stderr that sets ``told`` at its first write (a wait has said what it waits for)."""

    def __init__(self, told: threading.Event) -> None:
        super().__init__()
        self.told = told

    def write(self, text: str) -> int:
        self.told.set()
        return super().write(text)


def told_stderr(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, io.StringIO]:
    """sys.stderr replaced by one whose first write sets the returned event."""
    told = threading.Event()
    stderr = _Told(told)
    monkeypatch.setattr("sys.stderr", stderr)
    return told, stderr


class FakeClock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def dead_holder() -> str:
    """This machine, this pid, another start time: a process known to be gone."""
    host, pid, start = identity().split(":")
    return f"{host}:{pid}:{int(start) + 1}"


def reads(*answers: Sequence[Lease]) -> tuple[list[int], Callable[[], Sequence[Lease]]]:
    """A ``read`` that returns ``answers`` in turn (the last one for ever), and its call count."""
    calls = [0]

    def read() -> Sequence[Lease]:
        calls[0] += 1
        return answers[min(calls[0], len(answers)) - 1]

    return calls, read


def test_no_live_lease_ends_the_wait_at_once_and_says_nothing() -> None:
    clock, told = FakeClock(), list[Sequence[Lease]]()
    calls, read = reads([])
    assert wait_released(read, 60, say=told.append, sleep=clock.sleep, clock=clock) == []
    assert (calls[0], clock.slept, told) == (1, [], [])


def test_a_lease_released_ends_the_wait_which_said_once_what_it_waited_for() -> None:
    clock, told = FakeClock(), list[Sequence[Lease]]()
    live = [Lease("hv04", identity(), 20.0)]
    calls, read = reads(live, live, live, [])
    assert wait_released(read, 60, say=told.append, sleep=clock.sleep, clock=clock) == []
    assert calls[0] == 4 and told == [live], "one line, however long the wait"
    assert sum(clock.slept) < 60


def test_a_lease_still_held_at_the_bound_is_returned_after_waiting_exactly_the_bound() -> None:
    clock = FakeClock()
    live = [Lease("hv04", identity(), 20.0)]
    _, read = reads(live)
    assert wait_released(read, 7.2, sleep=clock.sleep, clock=clock) == live
    assert sum(clock.slept) == pytest.approx(7.2)


def test_a_holder_known_dead_holds_nothing_whatever_its_expiry_says() -> None:
    elsewhere = Lease("hv05", "elsewhere.invalid:12:34", 5.0)  # cannot be told from here
    dead = Lease("hv04", dead_holder(), 29.0)
    alive = Lease("hv06", identity(), 29.0)
    assert held([dead, elsewhere, alive]) == [elsewhere, alive]
    clock = FakeClock()
    _, read = reads([dead])
    assert wait_released(read, 60, sleep=clock.sleep, clock=clock) == []
    assert clock.slept == []


def test_the_wait_bound_comes_from_the_environment_within_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(WAIT_ENV, "12.5")
    assert wait_bound() == 12.5
    for bad in ("-1", "lots", "1e9"):
        monkeypatch.setenv(WAIT_ENV, bad)
        assert wait_bound() == WAIT
    monkeypatch.delenv(WAIT_ENV)
    assert wait_bound() == WAIT


def test_the_holders_text_names_three_hosts_and_counts_the_rest() -> None:
    leases = [Lease(f"hv0{i}", "w1:2:3", 12.4) for i in range(1, 6)]
    assert (
        holders_text(leases[:1])
        == "hv01 (held by w1:2:3, its lease runs out in 12 s unless renewed)"
    )
    assert holders_text(leases).endswith(
        "hv03 (held by w1:2:3, its lease runs out in 12 s unless renewed) and 2 more"
    )


def test_a_lease_that_ran_out_is_waited_for_a_grace_only_unless_renewed_meanwhile() -> None:
    """Its holder (alive here, on another machine for all it can tell) may only have been cut
    off from the history: it has GRACE seconds to renew it; renewed, it is waited for as any."""
    lapsed, renewed = Lease("hv04", "elsewhere.invalid:7:8", -3.0), Lease("hv04", "x:7:8", 29.0)
    clock, told = FakeClock(), list[Sequence[Lease]]()
    _, read = reads([lapsed])
    assert wait_released(read, 900, say=told.append, sleep=clock.sleep, clock=clock) == []
    assert sum(clock.slept) == pytest.approx(GRACE - 3) and told == [[lapsed]]
    clock = FakeClock()
    calls, read = reads([lapsed], [renewed], [renewed], [])
    assert wait_released(read, 900, sleep=clock.sleep, clock=clock) == []
    assert calls[0] == 4
    clock = FakeClock()
    _, read = reads([lapsed])
    assert wait_released(read, 0, sleep=clock.sleep, clock=clock) == [], "run out: not held"
    _, read = reads([Lease("hv04", dead_holder(), -3.0)])
    clock = FakeClock()
    assert wait_released(read, 900, sleep=clock.sleep, clock=clock) == []
    assert clock.slept == [], "its holder is known dead: no grace"
    ran_out = "hv04 (held by elsewhere.invalid:7:8, its lease ran out 3 s ago)"
    assert holders_text([lapsed]) == ran_out


def test_a_lease_that_runs_out_during_the_wait_gets_its_grace_after_it_ran_out() -> None:
    """The grace follows the lease's expiry, not the start of the wait: a holder cut off from
    the history while the resume already waits still has GRACE seconds to renew."""
    clock = FakeClock()
    expiry = clock.now + 20.0

    def read() -> list[Lease]:
        return [Lease("hv04", "elsewhere.invalid:7:8", expiry - clock.now)]

    assert wait_released(read, 900, sleep=clock.sleep, clock=clock) == []
    assert clock.now >= expiry + GRACE
    assert clock.now < expiry + GRACE + 2


def test_a_heartbeat_renews_until_stopped_then_closes_in_its_thread() -> None:
    beats: list[int] = []
    closed: list[str] = []

    def close() -> None:
        closed.append(threading.current_thread().name)

    heart = Heartbeat(lambda: beats.append(1), close, every=0.01)
    deadline = time.monotonic() + 30
    while len(beats) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    heart.stop()
    count = len(beats)
    assert count >= 3 and closed == ["fleetbr-lease"]
    time.sleep(0.05)
    assert len(beats) == count, "no renewal after stop"


# -- the store's leases (SQLite here; both backends: test_history_backends.py) ---------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "h.sqlite3")
    yield opened
    opened.close()


def new_run(store: SqliteStore, **changes: object) -> int:
    record = RunRecord("apply", ["hv01", "hv02"], {}, time.time(), {"pid": 1})
    for key, value in changes.items():
        setattr(record, key, value)
    return store.create_run(record)


def test_a_recorder_holds_a_host_s_lease_from_its_start_to_its_final_row(
    store: SqliteStore, tmp_path: Path
) -> None:
    recorder = start_recording(tmp_path / "h.sqlite3", command="apply", hosts=["hv01", "hv02"],
                               options={}, selection=None)  # fmt: skip
    assert recorder is not None
    recorder.started("hv01")
    recorder.started("hv02")
    recorder.finished(HostResult("hv02", Status.CONFIRMED, "ok"))
    assert recorder.flush(10)
    [lease] = store.leases(recorder.run_id)
    assert (lease.host, lease.holder) == ("hv01", identity())
    assert 0 < lease.left <= LEASE
    recorder.finished(HostResult("hv01", Status.ROLLED_BACK, "cut"))
    recorder.finish(1, recorder.run.state)
    assert store.leases(recorder.run_id) == []


def test_resume_waits_for_no_lease_and_refuses_in_one_line_at_its_bound(
    store: SqliteStore,
) -> None:
    run_id = new_run(store)
    assert released(store, run_id, bound=0) is False, "nothing held: no wait"
    store.put_host(run_id, HostRow("hv01", STARTED), holder=dead_holder(), lease=LEASE)
    assert released(store, run_id, bound=0) is False, "a dead holder holds nothing"
    store.put_host(run_id, HostRow("hv02", STARTED), holder=identity(), lease=LEASE)
    with pytest.raises(UsageError) as refused:
        released(store, run_id, bound=0)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"--resume: run {run_id} still works on hv02 (held by {identity()},")
    assert line.endswith(
        f"after 0 s; let it finish (or stop it), then resume (the wait: ${WAIT_ENV})"
    )
    store.hold(run_id, "hv02", identity(), -1.0)  # run out (its holder stopped renewing)
    assert released(store, run_id, bound=0) is False


def two_host_lab_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A history path, an inventory of hv01 and hv02 (never reached) and the bridge task."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    hosts = {name: {"hostname": f"203.0.113.{i}", "data": {"nic": "eth0"}}
             for i, name in enumerate(("hv01", "hv02"), start=91)}  # fmt: skip
    (inventory / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    return tmp_path / "h.sqlite3", inventory, REPO / "tasks" / "bridge.yaml"


def refused_resume_line(
    history: Path,
    inventory: Path,
    run_id: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """``apply --resume RUN`` with no wait: exit 2, its one line (returned) ending with what to
    do, and no run recorded."""
    monkeypatch.setenv(WAIT_ENV, "0")
    monkeypatch.setattr("fleetbr.core.assemble.check_reachable", lambda _path: None)
    code = main(["-i", str(inventory), "--history", str(history), "apply", "--resume",
                 str(run_id)])  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"after 0 s; let it finish (or stop it), then resume (the wait: "
                             f"${WAIT_ENV})")  # fmt: skip
    store = open_store(history)
    try:
        assert store.latest_run_id() == run_id, "no run recorded"
    finally:
        store.close()
    return lines[0]


def test_apply_resume_refuses_while_the_run_still_works_on_a_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI: exit 2 and one line, before any host is contacted or any run recorded."""
    history, inventory, task = two_host_lab_files(tmp_path)
    store = open_store(history)
    try:
        run_id = store.create_run(RunRecord(
            "apply", ["hv01", "hv02"], {}, time.time(), {"host": "elsewhere.invalid", "pid": 1},
            task_path=str(task), task_sha256=file_sha256(task)))  # fmt: skip
        store.put_host(run_id, HostRow("hv01", STARTED), holder=identity(), lease=LEASE)
    finally:
        store.close()
    line = refused_resume_line(history, inventory, run_id, monkeypatch, capsys)
    assert f"--resume: run {run_id} still works on hv01 (held by {identity()}, " in line


def test_resume_reads_what_the_run_left_once_its_holder_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder finishes hv01 (confirmed, its lease released with the row) while the resume
    waits: the resume reads that, not the ``started`` row it found first."""
    import threading

    from fleetbr.resume import _chosen

    history = tmp_path / "h.sqlite3"
    store = SqliteStore(history)
    run_id = new_run(store, controller={"host": "elsewhere.invalid", "pid": 1})
    store.put_host(run_id, HostRow("hv01", STARTED, txid=TXID), holder=identity(), lease=LEASE)
    store.close()
    told, stderr = told_stderr(monkeypatch)

    def finish() -> None:
        told.wait(60)
        holder = SqliteStore(history)
        try:
            done = HostRow("hv01", Status.CONFIRMED, "ok", txid=TXID)
            holder.put_host(run_id, done, holder=identity())
        finally:
            holder.close()

    thread = threading.Thread(target=finish)
    thread.start()
    run, rows = _chosen(history, run_id)
    thread.join(60)
    assert stderr.getvalue().startswith(f"--resume: run {run_id} still works on hv01 (held by ")
    assert run.id == run_id
    assert {row.host: row.status for row in rows} == {"hv01": Status.CONFIRMED}


def test_a_recorder_whose_writer_failed_still_renews_its_leases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history was down for a while (the writer gave up): the heartbeat, on its own
    connection, renews the leases once it is back: the row tells the truth again."""
    monkeypatch.setattr("fleetbr.history.lease.RENEW", 0.05)
    history = tmp_path / "h.sqlite3"
    recorder = start_recording(history, command="apply", hosts=["hv01"], options={},
                               selection=None)  # fmt: skip
    assert recorder is not None
    recorder.started("hv01")
    assert recorder.flush(10)
    recorder.failed = True  # as after a write that failed: the writer writes nothing more
    store = SqliteStore(history)
    try:
        store.hold(recorder.run_id, "hv01", recorder.holder, -1.0)  # ran out while cut off
        deadline = time.monotonic() + 30
        while not store.leases(recorder.run_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        [lease] = store.leases(recorder.run_id)
        assert (lease.host, lease.holder) == ("hv01", identity())
        recorder.finish(1, recorder.run.state)
        store.hold(recorder.run_id, "hv01", recorder.holder, -1.0)
        time.sleep(0.3)  # six beats' time: none comes after finish
        assert store.leases(recorder.run_id) == []
    finally:
        store.close()


# -- the run lease: who drives the run ---------------------------------------------------------

ELSEWHERE = "elsewhere.invalid:4242:9876"  # a holder on another machine: alive or not, unknown


def test_a_recorder_holds_its_run_lease_from_the_run_s_creation_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken with the run's row, renewed by the heartbeat while no host is in its hands (between
    two batches), released when the run ends."""
    monkeypatch.setattr("fleetbr.history.lease.RENEW", 0.05)
    history = tmp_path / "h.sqlite3"
    recorder = start_recording(history, command="apply", hosts=["hv01", "hv02"], options={},
                               selection=None)  # fmt: skip
    assert recorder is not None
    assert recorder.flush(10)
    store = SqliteStore(history)
    try:
        lease = store.run_lease(recorder.run_id)
        assert lease is not None and (lease.host, lease.holder) == ("", identity())
        assert 0 < lease.left <= LEASE
        store.db.execute("UPDATE runs SET lease_until = 0 WHERE id = ?", (recorder.run_id,))
        deadline = time.monotonic() + 30
        while store.run_lease(recorder.run_id) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.run_lease(recorder.run_id) is not None, "renewed with no host started"
        recorder.finish(130, RunState.INTERRUPTED)
        assert store.run_lease(recorder.run_id, lapsed=True) is None
        assert store.leases(recorder.run_id, lapsed=True) == []
    finally:
        store.close()


def leased_run(store: SqliteStore, holder: str, lease: float = LEASE, **changes: object) -> int:
    """A running apply of hv01 (confirmed) and hv02 (not reached yet) driven by ``holder``."""
    record = RunRecord("apply", ["hv01", "hv02"], {}, time.time(),
                       {"host": "elsewhere.invalid", "pid": 1})  # fmt: skip
    for key, value in changes.items():
        setattr(record, key, value)
    run_id = store.create_run(record, holder=holder, lease=lease)
    store.put_host(run_id, HostRow("hv01", Status.CONFIRMED, "ok", txid=TXID))
    return run_id


def test_resume_waits_for_the_run_lease_and_names_its_holder_in_one_line(
    store: SqliteStore,
) -> None:
    """A run driven by a live process (here: this one) holds its resume off even between two
    batches, when it holds no host; a holder known dead holds nothing at once; a holder on
    another machine until its lease runs out."""
    run_id = leased_run(store, identity())
    assert store.leases(run_id, lapsed=True) == [], "no host in its hands"
    with pytest.raises(UsageError) as refused:
        released(store, run_id, bound=0)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"--resume: run {run_id} still works on its rollout (driven by "
                           f"{identity()}, its lease runs out in ")  # fmt: skip
    assert line.endswith(f"let it finish (or stop it), then resume (the wait: ${WAIT_ENV})")
    assert released(store, leased_run(store, dead_holder()), bound=0) is False
    with pytest.raises(UsageError, match=f"driven by {ELSEWHERE}, "):
        released(store, leased_run(store, ELSEWHERE), bound=0)
    assert released(store, leased_run(store, ELSEWHERE, lease=-1.0), bound=0) is False


def test_a_resume_waits_for_a_live_controller_between_two_batches_then_reads_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller of the run (this process: alive on this machine) is between two batches:
    the resume is not refused at once, it waits on the run lease (one line); the controller is
    interrupted meanwhile (its run lease released with the run's end): the resume then reads
    the run as it ended."""

    from fleetbr.resume import _chosen, choose_run

    history = tmp_path / "h.sqlite3"
    store = SqliteStore(history)
    run_id = leased_run(store, identity(), controller=controller_identity())
    with pytest.raises(UsageError, match=f"run {run_id} is still running"):
        choose_run(store, run_id)  # without the wait (`history`'s @failed): refused
    assert choose_run(store, run_id, wait=True)[0].id == run_id
    store.close()
    told, stderr = told_stderr(monkeypatch)

    def interrupt() -> None:
        told.wait(60)
        driver = SqliteStore(history)
        try:
            driver.finish_run(run_id, ended=time.time(), exit_code=130,
                              state=RunState.INTERRUPTED)  # fmt: skip
        finally:
            driver.close()

    thread = threading.Thread(target=interrupt)
    thread.start()
    run, rows = _chosen(history, run_id)
    thread.join(60)
    [line] = stderr.getvalue().splitlines()
    assert line.startswith(f"--resume: run {run_id} still works on its rollout (driven by "
                           f"{identity()}, ")  # fmt: skip
    assert (run.id, run.state) == (run_id, RunState.INTERRUPTED)
    assert {row.host: row.status for row in rows} == {"hv01": Status.CONFIRMED}


def test_a_live_controller_whose_run_lease_ran_out_is_still_refused_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alive on this machine, its lease not renewed (cut off from the history): once the wait
    is over, the controller still runs: refused (exit 2), as a run without a run lease is."""
    from fleetbr.resume import _chosen

    monkeypatch.setattr("fleetbr.history.lease.GRACE", 0.0)
    history = tmp_path / "h.sqlite3"
    store = SqliteStore(history)
    run_id = leased_run(store, identity(), lease=-1.0, controller=controller_identity())
    store.close()
    with pytest.raises(UsageError, match=f"run {run_id} is still running \\(pid "):
        _chosen(history, run_id)


def test_the_resume_checks_a_host_again_right_before_it_touches_it(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`fleetbr.resume.hosts_held` (the local rollout's ``Prior.held``): the leases the
    resumed run still holds on the hosts asked about, after the bounded wait."""
    from fleetbr.resume import hosts_held

    monkeypatch.setenv(WAIT_ENV, "0")
    run_id = leased_run(store, dead_holder())
    store.put_host(run_id, HostRow("hv02", STARTED), holder=ELSEWHERE, lease=LEASE)
    [still] = hosts_held(tmp_path / "h.sqlite3", run_id, ["hv01", "hv02"])
    assert (still.host, still.holder) == ("hv02", ELSEWHERE)
    assert hosts_held(tmp_path / "h.sqlite3", run_id, ["hv01"]) == []
    store.put_host(run_id, HostRow("hv02", Status.CONFIRMED, "ok"), holder=ELSEWHERE)
    assert hosts_held(tmp_path / "h.sqlite3", run_id, ["hv02"]) == [], "released"


def test_apply_resume_refuses_while_another_machine_s_controller_drives_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI: exit 2 and one line naming the driver, before any host is contacted or any run
    recorded."""
    history, inventory, task = two_host_lab_files(tmp_path)
    store = SqliteStore(history)
    try:
        run_id = leased_run(store, ELSEWHERE, task_path=str(task), task_sha256=file_sha256(task))
    finally:
        store.close()
    line = refused_resume_line(history, inventory, run_id, monkeypatch, capsys)
    assert (f"--resume: run {run_id} still works on its rollout (driven by {ELSEWHERE}, its "
            "lease runs out in ") in line  # fmt: skip


# -- a driver cut off from the history: its run lease lost ------------------------------------


def test_a_run_lease_is_lost_a_margin_before_it_could_run_out_and_stays_lost() -> None:
    """Lost LEASE - MARGIN s after the start of the last successful renewal (the database
    stamped its expiry no earlier), by the watch's own clock; a renewal meanwhile (the history
    back in time) moves that point on; once lost, a late renewal changes nothing."""
    clock = FakeClock()
    watch = RunLeaseWatch(clock)
    clock.now += 3600
    assert not watch.held and not watch.lost(), "never taken: never lost"
    watch.renewed(clock.now)  # taken with the run's row
    assert watch.held and watch.left() == LEASE - MARGIN
    clock.now += RENEW
    watch.renewed(clock.now)  # renewed once, then cut off
    watch.renewed(clock.now - RENEW)  # an older renewal that ended late moves nothing back
    clock.now += LEASE - MARGIN - 0.001
    assert not watch.lost()
    clock.now += 0.001
    assert watch.lost() and watch.left() <= 0
    assert MARGIN > 0 and LEASE - MARGIN > 2 * RENEW, "two renewals may fail before it is lost"
    watch.renewed(clock.now)  # the history back too late: the run does not go on
    assert watch.lost()


def test_a_recorder_cut_off_from_the_history_stops_starting_hosts_with_one_warning_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run's row and lease were written, then the history became unreachable: until the
    lease could have run out, lease_stop says nothing; then it says why and how to go on, and
    the one warning line is printed once (the writer's own failure adds none)."""
    monkeypatch.setattr("fleetbr.history.lease.RENEW", 3600.0)  # no beat: renewals all fail
    clock = FakeClock()
    history = tmp_path / "h.sqlite3"
    run = RunRecord("apply", ["hv01", "hv02"], {}, time.time(), controller_identity())
    recorder = Recorder(history, run, clock=clock)
    assert recorder.flush(10) and recorder.run_id
    assert recorder.lease_watch.held
    history.unlink()
    history.mkdir()  # the history unreachable: the heartbeat's renewal fails
    recorder._leases = None
    recorder._renew()
    clock.now += LEASE - MARGIN - 1
    assert recorder.lease_stop() is None, "not lost yet: the run goes on"
    assert capsys.readouterr().err == ""
    clock.now += 1
    stop = recorder.lease_stop()
    assert stop == Stop("the run lease could not be renewed (history unreachable)",
                        f"resume with fleetbr apply --resume {run.id}")  # fmt: skip
    assert recorder.lease_stop() == stop
    recorder.finished(HostResult("hv02", Status.SKIPPED, "not started"))
    recorder.finish(1, RunState.FINISHED)  # the writer fails too: no second line
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: run history unreachable (")
    assert f"the run lease of run {run.id} could not be renewed for 25 s; no new host " in line
    assert f"`fleetbr apply --resume {run.id}` finishes the run" in line


def test_a_history_never_written_never_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recording never puts a run at risk: with no run lease ever taken, lease_stop never
    answers, however long; the one warning line is the history's own."""
    clock = FakeClock()
    history = tmp_path / "h.sqlite3"
    history.mkdir()  # not a database: nothing can be written from the start
    run = RunRecord("apply", ["hv01"], {}, time.time(), controller_identity())
    recorder = Recorder(history, run, clock=clock)
    recorder.flush(10)
    clock.now += 10 * LEASE
    assert recorder.failed and not recorder.lease_watch.held
    assert recorder.lease_stop() is None
    recorder.finish(0, RunState.FINISHED)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: run history not recorded (") and "; the run goes on" in line
