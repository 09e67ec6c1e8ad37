"""Percentages, Ctrl-C and --resume in the rollout, with real transactions on scripted hosts (the
in-memory transport, no SSH); choosing and checking the run to resume from a real history file."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fleetbr.batchplan import batches
from fleetbr.core.request import HistoryOptions, RunRequest, Selection
from fleetbr.counts import Share, parse_share
from fleetbr.errors import UsageError
from fleetbr.history.lease import Lease
from fleetbr.history.record import controller_identity, file_sha256, start_recording
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import HistoryError, HostRow, RunRecord, RunState, host_status
from fleetbr.interrupt import Interruption, Stop
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.report import AggregatedResult, HostResult, Status
from fleetbr.resume import (
    Prior,
    Resolution,
    check_same_hosts,
    choose_run,
    prepare_resume,
    prior_of,
)
from fleetbr.rollout import INTERRUPTED, NOT_ARMED, rollout_changes
from fleetbr.transaction.change import Change
from fleetbr.transport import Session, Transport, use_transport
from tests.unit.fakehost import (
    PLAIN_FACTS,
    ROLLED_BACK,
    FakeHost,
    MemoryTransport,
    Reply,
    ScriptedChange,
    ending,
    state,
)


def hosts(n: int) -> list[HostSpec]:
    return [HostSpec(f"h{i:02d}", f"198.51.100.{10 + i}", 22, "root", None, (), {}, SSHOptions())
            for i in range(n)]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "total", "hosts_count"),
    [("10%", 30, 3), ("10%", 31, 4), ("0.5%", 1, 1), ("100%", 7, 7), ("33.3%", 3, 1),
     ("5", 100, 5), ("1%", 250, 3)],
)  # fmt: skip
def test_percentages_round_up_exactly(text: str, total: int, hosts_count: int) -> None:
    assert parse_share(text, minimum=1).of(total) == hosts_count


@pytest.mark.parametrize("text", ["0", "0%", "101%", "-1", "-5%", "abc", "10%%", "1e2", "nan%",
                                  "inf%", "", "%", "5 %", "0x10", "½"])  # fmt: skip
def test_nonsense_batch_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_share(text, minimum=1)


def test_max_failures_may_be_zero() -> None:
    assert parse_share("0", minimum=0).of(10) == 0
    assert parse_share("0%", minimum=0).of(10) == 0
    assert parse_share("5%", minimum=0) == Share("5%", Decimal(5), percent=True)
    with pytest.raises(ValueError):
        parse_share("100.5%", minimum=0)


NONSENSE = [("--batch-size", "0%"), ("--batch-size", "x"), ("--max-failures", "-1"),
            ("--max-failures", "200%")]  # fmt: skip


@pytest.mark.parametrize("option", NONSENSE)
def test_cli_refuses_nonsense_with_exit_2(option: tuple[str, str], tmp_path: Path) -> None:
    from fleetbr.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--no-history", "apply", str(tmp_path / "t.yaml"), *option])
    assert stop.value.code == 2


class Seen:
    """What the observer heard."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def batch(self, index: int, count: int, hosts: Any) -> None:
        self.events.append(("batch", f"{index}/{count}"))

    def started(self, host: str) -> None:
        self.events.append(("started", host))

    def staged(self, host: str, txid: str) -> None:
        self.events.append(("staged", host))

    def finished(self, result: HostResult) -> None:
        self.events.append(("finished", f"{result.host} {result.status.value}"))


class Fleet:
    """Scripted hosts h00, h01... (the in-memory transport) on which each host's real
    transaction ends as ``outcomes`` says (:func:`tests.unit.fakehost.ending`; default
    ``confirmed``), and a rollout over them."""

    def __init__(self, n: int, **outcomes: str) -> None:
        self.specs = hosts(n)
        self.changes = {spec.name: ScriptedChange() for spec in self.specs}
        self.hosts = {name: ending(outcomes.get(name, "confirmed"), change)
                      for name, change in self.changes.items()}  # fmt: skip
        self.seen = Seen()

    def roll(self, transport: Transport | None = None, **kw: Any) -> AggregatedResult:
        """The rollout (forks 4) over the transport (default: straight to the hosts)."""
        changes: dict[str, Change] = dict(self.changes)
        with use_transport(transport or MemoryTransport(self.hosts)):
            return asyncio.run(rollout_changes(self.specs, changes, forks=4,
                                               observer=self.seen, **kw))  # fmt: skip

    def contacted(self) -> list[str]:
        """The hosts the rollout opened a connection to, in name order."""
        return [name for name, host in sorted(self.hosts.items()) if host.connects]

    def applied(self) -> list[str]:
        """The hosts that got an arm+apply script, in name order."""
        return [name for name, host in sorted(self.hosts.items()) if "arm+apply" in host.labels()]


def test_percent_batches_and_threshold() -> None:
    fleet = Fleet(10, h00="arm_failed", h01="arm_failed")
    result = fleet.roll(batch_size=parse_share("20%", minimum=1),
                        max_failures=parse_share("10%", minimum=0))  # fmt: skip
    assert fleet.contacted() == ["h00", "h01"], "batches of 2; 2 failures > 10% of 10 hosts"
    assert result.counts() == {"failed": 2, "skipped": 8}
    assert "more than --max-failures 1" in result["h02"].message


def test_observer_hears_every_host_in_order() -> None:
    fleet = Fleet(3)
    fleet.roll(canary=1)
    events = fleet.seen.events
    assert events[:4] == [("batch", "0/2"), ("started", "h00"), ("staged", "h00"),
                          ("finished", "h00 confirmed")]  # fmt: skip
    assert events[4] == ("batch", "1/2")
    assert sorted(e for e in events if e[0] == "finished") == [
        ("finished", "h00 confirmed"), ("finished", "h01 confirmed"),
        ("finished", "h02 confirmed"),
    ]  # fmt: skip


@dataclass
class HeldBack:
    """A transport that connects to ``held`` only once ``until`` is set (no timing luck)."""

    inner: MemoryTransport
    held: str
    until: asyncio.Event

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> Session:
        if spec.name == self.held:  # the bound only turns a broken rollout into a failure
            await asyncio.wait_for(self.until.wait(), timeout=30)
        return await self.inner.connect(spec, attempts=attempts, give_up_after=give_up_after)


def calling(action: Callable[[], object], reply: Reply) -> Reply:
    """``reply``, calling ``action`` when the host gives it."""

    def answer(script: str) -> str:
        action()
        return reply.stdout(script) if callable(reply.stdout) else reply.stdout

    return dataclasses.replace(reply, stdout=answer)


def test_first_ctrl_c_stops_new_hosts_and_lets_armed_ones_finish() -> None:
    """h01 is hit by Ctrl-C once staged, just before arming (it connects only after h00 was
    armed); h00, armed already, confirms; nothing of the next batch starts. Every host is
    reported."""
    interrupt, h00_armed = Interruption(), asyncio.Event()
    fleet = Fleet(6)
    h00, h01 = fleet.hosts["h00"], fleet.hosts["h01"]
    h00.replies["arm+apply"][0] = calling(h00_armed.set, h00.replies["arm+apply"][0])
    h01.replies["stage"][0] = calling(interrupt, h01.replies["stage"][0])
    held = HeldBack(MemoryTransport(fleet.hosts), "h01", h00_armed)
    result = fleet.roll(held, batch_size=2, interrupt=interrupt)
    assert interrupt.requested
    assert result["h00"].status == Status.CONFIRMED
    assert h00.labels() == ["facts", "stage", "arm+apply", "facts", "disarm"]
    assert (result["h01"].status, result["h01"].message) == (Status.SKIPPED, NOT_ARMED)
    assert h01.labels() == ["facts", "stage"], "staged only, never armed"
    assert fleet.contacted() == ["h00", "h01"]
    for name in ("h02", "h03", "h04", "h05"):
        assert (result[name].status, result[name].message) == (Status.SKIPPED, INTERRUPTED)
    assert len(result) == 6


def test_a_lost_run_lease_stops_new_hosts_as_ctrl_c_does_but_says_why_and_is_no_ctrl_c() -> None:
    """The run lease lost (the check given to stop_when answers) once h01 staged: h00, armed
    already, confirms; h01 is not armed; the next batch does not start; each says why and how
    to go on; the run is not interrupted (no Ctrl-C: the exit code stays its hosts')."""
    interrupt, h00_armed, lost = Interruption(), asyncio.Event(), [False]
    stop = Stop("the run lease could not be renewed (history unreachable)",
                "resume with fleetbr apply --resume 7")  # fmt: skip
    interrupt.stop_when(lambda: stop if lost[0] else None)
    fleet = Fleet(4)
    h00, h01 = fleet.hosts["h00"], fleet.hosts["h01"]
    h00.replies["arm+apply"][0] = calling(h00_armed.set, h00.replies["arm+apply"][0])
    h01.replies["stage"][0] = calling(lambda: lost.__setitem__(0, True),
                                      h01.replies["stage"][0])  # fmt: skip
    held = HeldBack(MemoryTransport(fleet.hosts), "h01", h00_armed)
    result = fleet.roll(held, batch_size=2, interrupt=interrupt)
    assert interrupt.requested and not interrupt.pressed
    assert result["h00"].status == Status.CONFIRMED
    assert (result["h01"].status, result["h01"].message) == (
        Status.SKIPPED, "not armed: the run lease could not be renewed (history unreachable): "
        "staged only, nothing changed; resume with fleetbr apply --resume 7")  # fmt: skip
    assert h01.labels() == ["facts", "stage"], "staged only, never armed"
    for name in ("h02", "h03"):
        assert (result[name].status, result[name].message) == (
            Status.SKIPPED, "not started: the run lease could not be renewed (history "
            "unreachable); resume with fleetbr apply --resume 7")  # fmt: skip
    assert fleet.contacted() == ["h00", "h01"]
    assert result.exit_code == 1


def test_second_ctrl_c_raises_keyboard_interrupt() -> None:
    interrupt = Interruption()
    interrupt()
    with pytest.raises(KeyboardInterrupt):
        interrupt()


OLD2, OLD3 = "20261127T181500-0000a2", "20261127T181500-0000a3"  # the earlier run's txids


def test_resume_skips_done_hosts_keeps_canary_and_applies_the_rest() -> None:
    """h02's transaction of the earlier run was confirmed meanwhile (done); h03's rolled back
    (asked over the transport, then applied again in its batch)."""
    fleet = Fleet(6)
    settled = {"timer_alive": "no", "remaining": "none", "armed_marker": "none"}
    fleet.hosts["h02"] = FakeHost().on("state", Reply(state(decision="confirmed", **settled),
                                                      until=math.inf))  # fmt: skip
    fleet.hosts["h03"].on("state", Reply(state(**ROLLED_BACK), until=math.inf))
    fleet.hosts["h03"].on("snapshot", PLAIN_FACTS).on("facts", PLAIN_FACTS)
    fleet.hosts["h03"].on("results", Reply("", until=math.inf))  # no staged command: nothing
    prior = Prior(7, carried={"h00": HostResult("h00", Status.CONFIRMED, "in run 7"),
                              "h01": HostResult("h01", Status.UNCHANGED, "in run 7")},
                  resolve={"h02": OLD2, "h03": OLD3})  # fmt: skip
    result = fleet.roll(canary=1, batch_size=2, prior=prior)
    assert fleet.applied() == ["h03", "h04", "h05"], "done hosts and the canary not touched"
    assert fleet.contacted() == ["h02", "h03", "h04", "h05"]
    assert result.counts() == {"confirmed": 5, "unchanged": 1}
    assert result["h02"].message.startswith(f"confirmed {OLD2} (decided on the host after run 7")
    assert result["h03"].data["resolved"] == (
        f"{OLD3} of run 7 rolled back (rolled_back timer); matches its snapshot"
    )
    assert fleet.hosts["h03"].labels() == [
        "state", "state", "snapshot", "facts", "results", "facts", "stage", "arm+apply", "facts",
        "disarm",
    ]  # fmt: skip
    assert list(result) == [f"h{i:02d}" for i in range(6)]


def test_a_resume_resolves_through_the_prior_s_own_resolver_when_it_has_one() -> None:
    """A site worker's resume resolves with its own resolver (a takeover's confirm first): it
    replaces resolve_host, and its results are taken as the local resolve step takes them."""
    fleet = Fleet(3)
    asked: list[tuple[str, str, int]] = []

    async def resolver(spec: HostSpec, txid: str, run_id: int) -> Resolution:
        asked.append((spec.name, txid, run_id))
        if spec.name == "h01":
            return Resolution(HostResult("h01", Status.CONFIRMED, "confirmed by the taker"), "")
        return Resolution(None, f"{txid} of run {run_id} was never armed; nothing changed")

    prior = Prior(7, resolve={"h01": OLD2, "h02": OLD3}, resolver=resolver)
    result = fleet.roll(prior=prior)
    assert sorted(asked) == [("h01", OLD2, 7), ("h02", OLD3, 7)]
    assert fleet.applied() == ["h00", "h02"], "h01 is decided; h02 still needs the change"
    assert (result["h01"].status, result["h01"].message) == (Status.CONFIRMED,
                                                             "confirmed by the taker")  # fmt: skip
    assert result["h02"].data["resolved"] == f"{OLD3} of run 7 was never armed; nothing changed"
    assert ("staged", "h01") in fleet.seen.events, "the txid is recorded before it is resolved"


def test_a_resume_refuses_a_host_still_held_right_before_it_resolves_or_stages_it() -> None:
    """The local resume checks each host's lease in the resumed run again (after the bounded
    wait, the prior's ``held``) right before it resolves or stages it: h01 (a txid to resolve)
    and h02 (to apply) are still held: both ``refused``, never contacted, h01's txid kept for
    the next resume; h00, free, is applied; a HistoryError (cannot tell) skips h03, txid kept."""
    fleet = Fleet(4)
    asked: list[str] = []

    class Held:
        closed = 0  # the rollout's end closes the check (its history connections)

        def __call__(self, names: Sequence[str]) -> list[Lease]:
            asked.extend(names)
            if "h03" in names:
                raise HistoryError("h.sqlite3: disk I/O error")
            return [Lease(name, "ctl:42:7", 20.0) for name in names if name in ("h01", "h02")]

        def close(self) -> None:
            self.closed += 1

    held = Held()
    prior = Prior(7, resolve={"h01": OLD2, "h03": OLD3}, held=held)
    result = fleet.roll(prior=prior)
    assert held.closed == 1
    assert fleet.contacted() == ["h00"] and fleet.applied() == ["h00"]
    assert asked[0] in ("h01", "h03") and sorted(asked) == ["h00", "h01", "h02", "h03"]
    assert result.counts() == {"confirmed": 1, "refused": 2, "skipped": 1}
    assert result["h01"].message == ("not started: the run it resumes still works on it (h01 "
                                     "(held by ctl:42:7, its lease runs out in 20 s unless "
                                     "renewed))")  # fmt: skip
    assert result["h01"].data == {"txid": OLD2}, "kept: the next resume resolves it"
    assert result["h02"].status == Status.REFUSED and result["h02"].data == {}
    assert result["h03"].message.startswith("not started: whether the run it resumes still "
                                            "works on it cannot be told (h.sqlite3: ")  # fmt: skip
    assert result["h03"].data == {"txid": OLD3}
    assert ("started", "h01") not in fleet.seen.events, "no row says it started"


def test_resume_repeats_a_canary_that_did_not_pass() -> None:
    fleet = Fleet(4, h00="rolled_back")
    result = fleet.roll(canary=1, prior=Prior(3))
    assert fleet.contacted() == ["h00"]
    assert result.counts() == {"rolled_back": 1, "skipped": 3}


def record(store: SqliteStore, statuses: dict[str, str], **changes: Any) -> int:
    run = RunRecord(command="apply", hosts=["h00", "h01", "h02", "h03"],
                    options={"canary": 1}, started=1.0,
                    controller={"host": "elsewhere", "pid": 1}, task_sha256="abc")  # fmt: skip
    for key, value in changes.items():
        setattr(run, key, RunState(value) if key == "state" else value)
    run_id = store.create_run(run)
    for host, status in statuses.items():
        txid = None if status == "skipped" else f"tx-{host}"
        store.put_host(run_id, HostRow(host, host_status(status), txid=txid))
    return run_id


def test_prior_of_sorts_hosts_into_done_to_resolve_and_to_apply(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    run_id = record(store, {"h00": "confirmed", "h01": "started", "h02": "rolled_back",
                            "h03": "skipped"})  # fmt: skip
    prior = prior_of(store.run(run_id), store.hosts_of(run_id))
    assert list(prior.carried) == ["h00"] and prior.carried["h00"].data["from_run"] == run_id
    assert prior.resolve == {"h01": "tx-h01"}


def test_bare_resume_takes_only_the_newest_apply_and_only_if_it_stopped(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    first = record(store, {"h00": "confirmed", "h01": "skipped"}, state="finished")
    assert choose_run(store, None)[0].id == first  # stopped by its canary: hosts not attempted
    record(store, dict.fromkeys(("h00", "h01", "h02", "h03"), "confirmed"), state="finished")
    with pytest.raises(UsageError, match="the newest apply, run 2, finished"):
        choose_run(store, None)  # never the older, stopped run 1 behind a finished one
    assert choose_run(store, first)[0].id == first  # named explicitly, it still resumes
    record(store, {"h00": "failed"}, command="status")
    attempted = {"h00": "confirmed", "h01": "rolled_back", "h02": "refused", "h03": "failed"}
    tried = record(store, attempted, state="finished")
    with pytest.raises(UsageError, match=f"run {tried}, finished .every host was attempted"):
        choose_run(store, None)
    assert choose_run(store, tried)[0].id == tried
    for ended in ("interrupted", "aborted", "running"):  # Ctrl-C, a crash, a killed controller
        stopped = record(store, {"h00": "confirmed", "h01": "started"}, state=ended)
        assert choose_run(store, None)[0].id == stopped
    resumer = record(store, {"h00": "confirmed"}, resumed_from=stopped, state="interrupted")
    assert choose_run(store, None)[0].id == resumer
    with pytest.raises(UsageError, match=f"resumed by run {resumer}"):
        choose_run(store, stopped)
    with pytest.raises(UsageError, match="finished every host"):
        choose_run(store, 2)
    with pytest.raises(UsageError, match="a `status` run"):
        choose_run(store, 3)
    with pytest.raises(UsageError, match="no run 99"):
        choose_run(store, 99)


def test_bare_resume_with_no_apply_run_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    record(store, {"h00": "failed"}, command="status")
    with pytest.raises(UsageError, match="no apply run in"):
        choose_run(store, None)


def test_resume_names_the_run_its_task_and_hosts_before_any_host_is_contacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "h.sqlite3"
    task = tmp_path / "bridge.yaml"
    task.write_text("bridge: {}\n")
    store = SqliteStore(history)
    run_id = record(
        store,
        {"h00": "confirmed", "h01": "skipped"},
        state="finished",
        task_path=str(task),
        task_sha256=file_sha256(task),
        selection="rack-a",
    )
    store.close()
    request = RunRequest("apply", Selection(Path("inventory")),
                         history=HistoryOptions(path=history, resume=0))  # fmt: skip
    contacted: list[str] = []
    selected: list[RunRequest] = []

    def select(resumed: RunRequest) -> list[HostSpec]:
        contacted.append(capsys.readouterr().err)  # what was printed when the hosts were loaded
        selected.append(resumed)
        return hosts(4)

    resumed, _, _ = prepare_resume(request, select)
    assert contacted == [""] and selected == [resumed]
    assert request.change is None and request.selection.limit is None, "a new request, not edited"
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"resuming run {run_id} (apply started 1970-01-01 00:00:01 UTC, "
                           "stopped with hosts not attempted): task ")  # fmt: skip
    assert line.endswith(f"{task} (sha256 {file_sha256(task)[:12]}), 4 hosts h[00-03] "
                         "(-l rack-a), 3 not done")  # fmt: skip
    assert resumed.change is not None and resumed.change.source == task
    assert resumed.selection.limit == "rack-a" and resumed.rollout.canary == 1
    assert resumed.history.resumed_from == run_id


def test_a_run_whose_controller_still_runs_is_not_resumed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite3")
    live = record(store, {"h00": "started"}, controller=controller_identity(), state="running")
    with pytest.raises(UsageError, match=f"still running \\(pid {os.getpid()}\\)"):
        choose_run(store, live)


def test_resume_refuses_other_hosts(tmp_path: Path) -> None:
    run = RunRecord(command="apply", hosts=["h00", "h01"], options={}, started=1.0,
                    controller={}, selection="rack-a")  # fmt: skip
    check_same_hosts(run, hosts(2))
    with pytest.raises(UsageError, match="not in the run: h02"):
        check_same_hosts(run, hosts(3))
    with pytest.raises(UsageError, match="order differs"):
        check_same_hosts(run, list(reversed(hosts(2))))


def test_recorder_writes_rows_as_they_happen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every host's row (started, its txid, its result) is in the database before the run ends:
    what a SIGKILLed controller leaves for --resume."""
    path = tmp_path / "h.sqlite3"
    recorder = start_recording(path, command="apply", hosts=["h00", "h01"], options={},
                               selection=None)  # fmt: skip
    assert recorder is not None
    recorder.started("h00")
    recorder.staged("h00", "tx-h00")
    recorder.started("h01")
    recorder.finished(HostResult("h01", Status.CONFIRMED, "ok", {"txid": "tx-h01"}))

    def rows() -> dict[str, tuple[str, str | None]]:
        reader = SqliteStore(path)
        try:
            return {r.host: (r.status, r.txid) for r in reader.hosts_of(1)}
        finally:
            reader.close()

    deadline = asyncio.run(_wait_for(lambda: len(rows()) == 2 and rows()["h00"][1] is not None))
    assert deadline, rows()
    assert rows() == {"h00": ("started", "tx-h00"), "h01": ("confirmed", "tx-h01")}
    recorder.finish(1, RunState.FINISHED)
    assert SqliteStore(path).run(1).state == "finished"


async def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


def test_batches_unchanged_for_plain_numbers() -> None:
    assert [len(b) for b in batches(hosts(7), 1, 3)] == [1, 3, 3]
