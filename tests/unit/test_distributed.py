"""Site workers without a broker: the chunk message and its checks, the site split, the
settings, and a worker's refusals (nothing contacted; the history is an SQLite file)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from fleetbr.cli import main
from fleetbr.distributed import config, worker
from fleetbr.distributed.message import (
    BadMessage,
    ChangeSpec,
    Chunk,
    Left,
    parse,
    result_from_json,
    result_to_json,
    sites_of,
)
from fleetbr.distributed.worker import WorkerContext, run_chunk
from fleetbr.errors import UsageError
from fleetbr.history.lease import LEASE, WAIT_ENV, holder_alive, identity
from fleetbr.history.location import open_store
from fleetbr.history.store import STARTED, HistoryError, HostRow, RunRecord
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.report import HostResult, Status

REPO = Path(__file__).resolve().parents[2]
TASK = REPO / "tasks" / "bridge.yaml"
CHANGE = ChangeSpec.of("bridge", TASK.read_text(), "bridge.yaml")


def spec(name: str, site: object = "east") -> HostSpec:
    data: dict[str, Any] = {"nic": "eth0"} if site is None else {"nic": "eth0", "site": site}
    return HostSpec(name, "203.0.113.90", 22, "root", None, (), data, SSHOptions())


def chunk(**changes: Any) -> Chunk:
    fields: dict[str, Any] = {"run_id": 1, "command": "apply", "site": "east", "hosts": ("hv01",),
                              "change": CHANGE, "batch": 0, "start_by": time.time() + 60,
                              "forks": 5} | changes  # fmt: skip
    return Chunk(**fields)


def test_a_chunk_survives_json_and_back() -> None:
    sent = chunk(hosts=("hv01", "hv02"), batch=None)
    assert parse(sent.to_json()) == sent


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        ({"version": 2}, "version"),
        ({"command": "rollback"}, "command"),
        ({"run_id": 0}, "run_id"),
        ({"run_id": True}, "run_id"),
        ({"site": "../x"}, "site"),
        ({"hosts": []}, "hosts"),
        ({"hosts": "hv01"}, "hosts"),
        ({"hosts": ["hv01", "hv01"]}, "twice"),
        ({"hosts": ["hv 01"]}, "host name"),
        ({"forks": 0}, "forks"),
        ({"start_by": "soon"}, "start_by"),
        ({"change": "bridge"}, "change"),
    ],
)
def test_a_malformed_chunk_is_refused(edit: dict[str, Any], error: str) -> None:
    with pytest.raises(BadMessage, match=error):
        parse(chunk().to_json() | edit)


def test_a_change_whose_content_does_not_match_its_sha256_is_refused() -> None:
    body = chunk().to_json()
    body["change"]["content"] += "\n# changed on the way\n"
    with pytest.raises(BadMessage, match="sha256"):
        parse(body)
    with pytest.raises(BadMessage, match="JSON object"):
        parse(["not", "a", "chunk"])


def test_a_host_result_survives_json_and_back() -> None:
    result = HostResult("hv01", Status.ROLLED_BACK, "cut off", {"txid": "t1"}, 2.5, ("a", "b"))
    assert result_from_json(result_to_json(result)) == result
    with pytest.raises(BadMessage):
        result_from_json({"host": "hv01", "status": "exploded"})


def test_hosts_are_split_by_site_in_order_and_a_host_without_one_is_a_usage_error() -> None:
    split = sites_of([spec("a", "west"), spec("b", "east"), spec("c", "west")])
    assert {site: [h.name for h in hosts] for site, hosts in split.items()} == {
        "west": ["a", "c"], "east": ["b"]}  # fmt: skip
    assert list(split) == ["west", "east"]
    with pytest.raises(UsageError, match="host d: no site"):
        sites_of([spec("a"), spec("d", None)])


def test_the_broker_comes_from_the_environment_or_a_private_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "distributed.yaml"
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    monkeypatch.delenv(config.BROKER_ENV, raising=False)
    broker = "redis://:s3cret-not-shown@127.0.0.1:6390/0"
    path.write_text(yaml.safe_dump({"broker": broker, "kinds": ["bridge"], "start_wait": 5}))
    path.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600") as refused:
        config.load_settings()
    # a secret with a "-": no temporary folder's random name (in the message's path) holds one
    assert "s3cret-not-shown" not in str(refused.value)
    path.chmod(0o600)
    settings = config.load_settings()
    assert (settings.broker, settings.start_wait) == (broker, 5.0)
    monkeypatch.setenv(config.BROKER_ENV, "redis://127.0.0.1:6391/0")
    assert config.load_settings().broker == "redis://127.0.0.1:6391/0"
    monkeypatch.setenv(config.BROKER_ENV, "amqp://u:pw-not-shown@host/")
    with pytest.raises(UsageError, match="no Redis broker") as refused:
        config.load_settings()
    assert "pw-not-shown" not in str(refused.value)


@pytest.mark.parametrize("levels", [70, 5000])
def test_a_config_nested_too_deep_is_a_usage_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, levels: int
) -> None:
    """Before: RecursionError's traceback (PyYAML's loader recurses) or a config walked as is."""
    path = tmp_path / "distributed.yaml"
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    monkeypatch.delenv(config.BROKER_ENV, raising=False)
    path.write_text("broker: redis://127.0.0.1:6390/0\nkinds: " + "[" * levels + "]" * levels)
    path.chmod(0o600)
    with pytest.raises(UsageError) as refused:
        config.load_settings()
    assert str(refused.value) == f"{path}: nested deeper than 64 levels"


def test_the_executor_is_local_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.EXECUTOR_ENV, raising=False)
    assert config.executor(None) == "local"
    monkeypatch.setenv(config.EXECUTOR_ENV, "celery")
    assert config.executor(None) == "celery"
    assert config.executor("local") == "local"
    monkeypatch.setenv(config.EXECUTOR_ENV, "threads")
    with pytest.raises(UsageError, match="threads"):
        config.executor(None)


def test_a_holder_is_alive_only_while_its_process_runs() -> None:
    assert holder_alive(identity()) is True
    host, pid, start = identity().split(":")
    assert holder_alive(f"{host}:{pid}:{int(start) + 1}") is False
    assert holder_alive(f"elsewhere.invalid:{pid}:{start}") is None
    assert holder_alive(None) is None


@pytest.fixture
def context(tmp_path: Path) -> WorkerContext:
    settings = config.Settings("redis://127.0.0.1:6390/0")
    return WorkerContext("east", {"hv01": spec("hv01")}, tmp_path / "h.sqlite3", settings)


def _run(context: WorkerContext, hosts: list[str]) -> int:
    store = open_store(context.history)
    try:
        return store.create_run(RunRecord("apply", hosts, {}, time.time(), {"pid": os.getpid()},
                                          task_sha256=CHANGE.sha256))  # fmt: skip
    finally:
        store.close()


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        ({"site": "west"}, "the chunk is for site west"),
        ({"change": ChangeSpec.of("command", "argv: [true]", "x")}, "'command' is not allowed"),
        ({"start_by": time.time() - 1}, "after its deadline"),
        ({"run_id": 99}, "run 99 cannot be read"),
        ({"hosts": ("hv01", "hv09")}, "host hv09 is not in run"),
        ({"change": ChangeSpec.of("bridge", "bridge: {}\n", "other.yaml")}, "sha256"),
    ],
)
def test_a_worker_refuses_a_chunk_it_cannot_trust(
    context: WorkerContext, edit: dict[str, Any], why: str
) -> None:
    run_id = _run(context, ["hv01", "hv02"])
    sent = chunk(run_id=edit.pop("run_id", run_id), **edit)
    results = asyncio.run(run_chunk(context, sent))
    assert [r.host for r in results] == list(sent.hosts)
    assert all(r.status is Status.REFUSED and why in r.message for r in results), results
    store = open_store(context.history)
    try:
        assert store.hosts_of(run_id) == [], "a refused chunk claims nothing"
    finally:
        store.close()


def test_a_worker_refuses_a_host_outside_its_inventory_and_claims_nothing(
    context: WorkerContext,
) -> None:
    run_id = _run(context, ["hv01", "hv02"])
    [result] = asyncio.run(run_chunk(context, chunk(run_id=run_id, hosts=("hv02",))))
    assert (result.status, result.message) == (
        Status.REFUSED, "refused by site east's worker: not in its inventory")  # fmt: skip
    store = open_store(context.history)
    try:
        assert store.hosts_of(run_id) == []
    finally:
        store.close()


def _inventory(tmp_path: Path, site: bool = True) -> Path:
    """No keys: the coordinator of site workers needs none."""
    tmp_path.mkdir()
    data = {"nic": "eth0", "site": "east"} if site else {"nic": "eth0"}
    hosts = {"hv01": {"hostname": "203.0.113.91", "data": data}}
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    return tmp_path


@pytest.mark.parametrize(
    ("history", "site", "env", "error", "more"),
    [
        ("h.sqlite3", True, {"FLEETBR_BROKER": "redis://127.0.0.1:6390/0"}, "PostgreSQL", []),
        ("postgresql://u@127.0.0.1:1/db", False, {}, "host hv01: no site", []),
        ("postgresql://u@127.0.0.1:1/db", True, {}, "--diff with the celery", ["--diff"]),
    ],
)
def test_apply_with_the_celery_executor_checks_its_input_before_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    history: str, site: bool, env: dict[str, str], error: str, more: list[str],
) -> None:  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    inventory = _inventory(tmp_path / "inv", site)
    location = history if "://" in history else str(tmp_path / history)
    monkeypatch.setattr("fleetbr.core.assemble.check_reachable", lambda _path: None)
    code = main(["-i", str(inventory), "--history", location, "apply", str(TASK),
                 "--executor", "celery", *more])  # fmt: skip
    assert code == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / history).exists(), "nothing recorded"


class _Sent:
    """A sent chunk that no worker started."""

    state = "PENDING"
    revoked = False

    def revoke(self) -> None:
        self.revoked = True


@pytest.mark.parametrize("taken", [[], ["hv02"]])
def test_a_chunk_given_up_claims_its_hosts_or_leaves_the_ones_a_worker_took(
    context: WorkerContext, taken: list[str]
) -> None:
    from fleetbr.distributed.coordinator import CeleryRunner, _Waiter, _Work
    from fleetbr.interrupt import Interruption
    from fleetbr.observe import Observers

    run_id = _run(context, ["hv01", "hv02"])
    store = open_store(context.history)
    try:
        for host in taken:
            assert store.claim_host(run_id, host, "east-worker:1:1")
    finally:
        store.close()
    work = _Work("apply", CHANGE, context.history, Observers(), cast(Any, None), Interruption())
    sent = _Sent()
    waiter = _Waiter(CeleryRunner(config.Settings("redis://x", start_wait=5)), work,
                     chunk(run_id=run_id, hosts=("hv01", "hv02")), sent)  # fmt: skip
    given_up = waiter._give_up()
    store = open_store(context.history)
    try:
        rows = {row.host: row for row in store.hosts_of(run_id)}
    finally:
        store.close()
    assert all(rows[h].worker == identity() for h in ("hv01", "hv02") if h not in taken)
    message = "not started: no worker of site east started it within 5 s"
    if taken:
        assert given_up is None and not sent.revoked, "the worker's result is waited for"
        assert (rows["hv01"].status, rows["hv01"].message) == (Status.SKIPPED, message)
        assert (rows["hv02"].status.value, rows["hv02"].worker) == ("started", "east-worker:1:1")
    else:
        assert given_up is not None and sent.revoked
        assert {h: (r.status, r.message) for h, r in given_up.items()} == dict.fromkeys(
            ("hv01", "hv02"), (Status.SKIPPED, message))  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--site", "../east"], "--site: not a site name"),
        (["--site", "east", "--no-history"], "needs the run history in PostgreSQL"),
        (["--site", "north"], "no host of site north"),
    ],
)
def test_a_worker_that_cannot_work_is_a_usage_error_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str], error: str,
) -> None:  # fmt: skip
    monkeypatch.setenv(config.BROKER_ENV, "redis://127.0.0.1:6390/0")
    monkeypatch.setattr("fleetbr.distributed.cli.check_reachable", lambda _location: None)
    inventory = _inventory(tmp_path / "inv")
    history = [] if "--no-history" in argv else ["--history", "postgresql://u@127.0.0.1:1/db"]
    assert main(["-i", str(inventory), *history, "worker", *argv]) == 2
    assert error in capsys.readouterr().err


# -- the history unreachable mid-run (fault (d) of docs/scale.md) ------------------------------


class _LostRecorder:
    """A coordinator's recorder whose history failed after the run was created."""

    run_id = 7
    failed = True
    consequence = ""

    def flush(self, timeout: float) -> bool:
        return True


def test_a_coordinator_whose_history_failed_starts_no_more_hosts() -> None:
    from fleetbr.distributed.coordinator import NO_HISTORY, CeleryRunner, _Work, history_lost
    from fleetbr.interrupt import Interruption
    from fleetbr.observe import Observers

    recorder = _LostRecorder()
    runner = CeleryRunner(config.Settings("redis://127.0.0.1:6390/0"))
    runner._work = _Work("apply", CHANGE, Path("unused"), Observers(), cast(Any, recorder),
                         Interruption())  # fmt: skip

    async def never(spec: HostSpec) -> HostResult:
        raise AssertionError("no job runs here")

    hosts = [spec("hv01"), spec("hv02", site="west")]
    done = asyncio.run(runner.run("apply", hosts, never, forks=5))
    assert {h: (r.status, r.message) for h, r in done.results.items()} == dict.fromkeys(
        ("hv01", "hv02"), (Status.SKIPPED, NO_HISTORY))  # fmt: skip
    assert recorder.consequence == history_lost(7)
    assert "no new host starts" in history_lost(7) and "--resume 7" in history_lost(7)


def test_a_coordinator_whose_run_lease_is_lost_sends_no_chunk() -> None:
    """Its rows written so far, but its run lease lost (the check handed to stop_when answers):
    no chunk is sent, the hosts are skipped saying why and how to go on."""
    from fleetbr.distributed.coordinator import CeleryRunner, _Work
    from fleetbr.interrupt import Interruption, Stop
    from fleetbr.observe import Observers

    recorder = _LostRecorder()
    recorder.failed = False
    interrupt = Interruption()
    interrupt.stop_when(lambda: Stop("the run lease could not be renewed (history unreachable)",
                                     "resume with fleetbr apply --resume 7"))  # fmt: skip
    runner = CeleryRunner(config.Settings("redis://127.0.0.1:6390/0"))
    runner._work = _Work("apply", CHANGE, Path("unused"), Observers(), cast(Any, recorder),
                         interrupt)  # fmt: skip

    async def never(spec: HostSpec) -> HostResult:
        raise AssertionError("no job runs here")

    done = asyncio.run(runner.run("apply", [spec("hv01")], never, forks=5))
    assert (done["hv01"].status, done["hv01"].message) == (
        Status.SKIPPED, "not started: the run lease could not be renewed (history unreachable); "
        "resume with fleetbr apply --resume 7")  # fmt: skip
    assert not interrupt.pressed


@pytest.mark.parametrize("late", [True, False])
def test_a_chunk_given_up_while_the_history_is_down_is_skipped_only_past_its_start_deadline(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch, late: bool
) -> None:
    from fleetbr.distributed import coordinator
    from fleetbr.history.store import HistoryError
    from fleetbr.interrupt import Interruption
    from fleetbr.observe import Observers

    def down(*_args: object, **_kwargs: object) -> None:
        raise HistoryError("postgresql://db/x: connection refused")

    monkeypatch.setattr(coordinator, "open_store", down)
    work = coordinator._Work("apply", CHANGE, context.history, Observers(), cast(Any, None),
                             Interruption())  # fmt: skip
    sent = _Sent()
    start_by = time.time() + (-1 if late else 60)  # not late: Ctrl-C gives a chunk up early
    waiter = coordinator._Waiter(coordinator.CeleryRunner(config.Settings("redis://x")), work,
                                 chunk(hosts=("hv01",), start_by=start_by), sent)  # fmt: skip
    given_up = waiter._give_up()
    if late:  # a worker refuses a chunk past its start deadline: it is never started
        assert given_up is not None and sent.revoked
        assert given_up["hv01"].status is Status.SKIPPED
        assert given_up["hv01"].message.startswith(coordinator.NO_HISTORY + " (")
    else:
        assert given_up is None and not sent.revoked and not waiter.gave_up, "asked again"


def test_a_worker_that_cannot_claim_stages_nothing_and_skips_its_hosts(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetbr.distributed import worker
    from fleetbr.history.store import HistoryError

    def lost(*_args: object) -> None:
        raise HistoryError("postgresql://db/x: server closed the connection unexpectedly")

    monkeypatch.setattr(worker, "_claim", lost)
    run_id = _run(context, ["hv01"])
    [result] = asyncio.run(run_chunk(context, chunk(run_id=run_id)))
    assert result.status is Status.SKIPPED
    assert result.message.startswith("not started: the run history cannot be written (")


def test_a_worker_chunk_stops_its_new_hosts_once_its_history_fails() -> None:
    from fleetbr.distributed.worker import HistoryDown
    from fleetbr.rollout import INTERRUPTED, not_armed, not_attempted

    recorder = _LostRecorder()
    recorder.failed = False
    guard = HistoryDown(cast(Any, recorder))
    assert not guard.requested and not_attempted(guard) == INTERRUPTED
    recorder.failed = True
    assert guard.requested
    assert not_attempted(guard) == "not attempted: the run history cannot be written"
    assert not_armed(guard).startswith("the run history cannot be written before arming")


# -- apply --resume through the site workers: the transactions a resumed run left --------------

TXID = "20261127T181500-3fa9c2"


def test_a_chunk_with_transactions_to_resolve_survives_json_and_back() -> None:
    sent = chunk(run_id=5, hosts=("hv01", "hv02"), resolve={"hv02": Left(TXID, 4)})
    assert parse(sent.to_json()) == sent
    assert sent.to_json()["resolve"] == {"hv02": {"txid": TXID, "run_id": 4}}
    assert parse(chunk().to_json() | {"resolve": None}).resolve == {}, "older coordinators"


@pytest.mark.parametrize(
    ("resolve", "error"),
    [
        ({"hv01": {"txid": "../../etc", "run_id": 4}}, "not a transaction id"),
        ({"hv01": {"txid": f"{TXID};reboot", "run_id": 4}}, "not a transaction id"),
        ({"hv01": {"txid": 7, "run_id": 4}}, "txid, run_id"),
        ({"hv01": TXID}, "txid, run_id"),
        ({"hv09": {"txid": TXID, "run_id": 4}}, "hv09' is not one of the chunk's hosts"),
        ({"hv01": {"txid": TXID, "run_id": 5}}, "not an earlier run"),
        ({"hv01": {"txid": TXID, "run_id": True}}, "run_id"),
        ({"hv01": {"txid": TXID, "run_id": 4}, "hv02": {"txid": TXID, "run_id": 3}}, "one "),
        ([TXID], "expected an object"),
    ],
)
def test_a_malformed_entry_to_resolve_refuses_the_chunk(resolve: object, error: str) -> None:
    body = chunk(run_id=5, hosts=("hv01", "hv02")).to_json() | {"resolve": resolve}
    with pytest.raises(BadMessage, match=error):
        parse(body)
    with pytest.raises(BadMessage, match="apply chunks only"):
        parse(chunk(command="check").to_json() | {"resolve": {"hv01": {"txid": TXID,
                                                                        "run_id": 1}}})  # fmt: skip


def _resumed(context: WorkerContext, recorded: dict[str, str]) -> tuple[int, int]:
    """Run ``earlier`` that left ``recorded`` (host -> txid, rows ``started``), and the running
    run that resumes it."""
    store = open_store(context.history)
    try:
        hosts = ["hv01", "hv02"]
        earlier = store.create_run(RunRecord("apply", hosts, {}, time.time(), {"pid": 1},
                                             task_sha256=CHANGE.sha256))  # fmt: skip
        for host, txid in recorded.items():
            store.put_host(earlier, HostRow(host, STARTED, txid=txid))
        resuming = RunRecord("apply", hosts, {}, time.time(), {"pid": os.getpid()},
                             task_sha256=CHANGE.sha256, resumed_from=earlier)  # fmt: skip
        return earlier, store.create_run(resuming)
    finally:
        store.close()


def _rows(context: WorkerContext, run_id: int) -> list[HostRow]:
    store = open_store(context.history)
    try:
        return store.hosts_of(run_id)
    finally:
        store.close()


def test_a_worker_refuses_a_transaction_to_resolve_the_resumed_run_did_not_record(
    context: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    earlier, run_id = _resumed(context, {"hv01": TXID, "hv02": TXID})
    forged = "20261127T181500-bad000"
    sent = chunk(run_id=run_id, hosts=("hv01", "hv02"),
                 resolve={"hv01": Left(forged, earlier), "hv02": Left(TXID, earlier)})  # fmt: skip
    with caplog.at_level("WARNING", logger="fleetbr.distributed.worker"):
        results = asyncio.run(run_chunk(context, sent))
    assert [(r.host, r.status) for r in results] == [("hv01", Status.REFUSED),
                                                     ("hv02", Status.REFUSED)]  # fmt: skip
    assert results[0].message == (f"refused by site east's worker: transaction {forged} is not "
                                  f"one run {earlier} recorded for it")  # fmt: skip
    assert results[1].message.endswith("not in its inventory"), "hv02 is another site's"
    assert f"host hv01 refused: transaction {forged} is not one run {earlier}" in caplog.text
    assert _rows(context, run_id) == [], "nothing claimed"


def test_a_worker_refuses_transactions_of_a_run_this_one_does_not_resume(
    context: WorkerContext,
) -> None:
    earlier, run_id = _resumed(context, {"hv01": TXID})
    other = _run(context, ["hv01", "hv02"])  # a later run that resumes nothing
    sent = chunk(run_id=other, resolve={"hv01": Left(TXID, earlier)})
    [result] = asyncio.run(run_chunk(context, sent))
    assert result.status is Status.REFUSED
    assert result.message.endswith(f"run {other} does not resume run {earlier}")
    assert _rows(context, other) == []
    recorded = chunk(run_id=run_id, resolve={"hv01": Left(TXID, earlier)})
    assert worker._refusal(context, recorded) == ("", {}), "the resumed run's own txid passes"


def test_a_chunk_of_a_run_another_run_resumes_is_refused_and_claims_nothing(
    context: WorkerContext,
) -> None:
    """A chunk of the resumed run that starts late (queued when its coordinator was killed)."""
    earlier, run_id = _resumed(context, {})
    [result] = asyncio.run(run_chunk(context, chunk(run_id=earlier)))
    assert result.status is Status.REFUSED
    assert result.message.endswith(f"run {earlier} was resumed by run {run_id}"), result
    assert _rows(context, earlier) == []


def test_a_claim_fenced_by_a_resume_meanwhile_stages_nothing(context: WorkerContext) -> None:
    """The chunk was checked just before the resuming run was created: its claims fail, and
    with no holder to wait for, its hosts are skipped at once (nothing staged, no row)."""
    earlier, run_id = _resumed(context, {})
    sent = chunk(run_id=earlier)
    done = asyncio.run(worker._apply(context, sent, [spec("hv01")], redelivered=False))
    why = f"not started: run {earlier} was resumed by another run meanwhile"
    assert (done["hv01"].status, done["hv01"].message) == (Status.SKIPPED, why)
    assert _rows(context, earlier) == [] and _rows(context, run_id) == []


def test_a_resuming_worker_leaves_a_host_the_resumed_run_still_holds(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker of the resumed run (alive: this process) still holds hv01: after the bounded
    wait (0 s here) the resuming worker refuses it, stages nothing and lets its lease go."""
    earlier, run_id = _resumed(context, {"hv01": TXID})
    store = open_store(context.history)
    try:
        store.put_host(earlier, HostRow("hv01", STARTED, txid=TXID), holder=identity(),
                       lease=LEASE)  # fmt: skip
    finally:
        store.close()
    monkeypatch.setenv(WAIT_ENV, "0")
    sent = chunk(run_id=run_id, resolve={"hv01": Left(TXID, earlier)})
    with caplog.at_level("WARNING", logger="fleetbr.distributed.worker"):
        [result] = asyncio.run(run_chunk(context, sent))
    assert result.status is Status.REFUSED, result
    assert result.message.startswith(f"not started: the run it resumes still works on it (hv01 "
                                     f"(held by {identity()}, ")  # fmt: skip
    assert "still held by the run it resumes, refused: hv01" in caplog.text
    [row] = _rows(context, run_id)
    assert (row.status, row.txid) == (Status.REFUSED, None)
    store = open_store(context.history)
    try:
        assert store.leases(run_id) == [], "its own claim's lease let go"
        assert [lease.host for lease in store.leases(earlier)] == ["hv01"]
    finally:
        store.close()


def test_a_resuming_worker_that_cannot_read_the_resumed_run_s_leases_stages_nothing(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, run_id = _resumed(context, {})

    def unreadable(*_args: object) -> None:
        raise HistoryError("postgresql://u:***@db/h: server closed the connection")

    monkeypatch.setattr(worker, "_resumed_run_holds", unreadable)
    [result] = asyncio.run(run_chunk(context, chunk(run_id=run_id)))
    assert (result.status, result.message) == (Status.SKIPPED, (
        "not started: the run history cannot be written (postgresql://u:***@db/h: server closed "
        "the connection)"))  # fmt: skip


def test_a_resume_coordinator_sends_each_host_its_transaction_in_its_batch() -> None:
    from fleetbr.distributed.coordinator import CeleryRunner, _chunk, _Work
    from fleetbr.interrupt import Interruption
    from fleetbr.observe import Observers

    runner = CeleryRunner(config.Settings("redis://127.0.0.1:6390/0"))
    left = {"hv02": Left(TXID, 4)}
    runner._work = _Work("apply", CHANGE, Path("unused"), Observers(), cast(Any, None),
                         Interruption(), left)  # fmt: skip

    async def never(spec: HostSpec) -> HostResult:
        raise AssertionError("the coordinator resolves nothing itself: it has no keys")

    done = asyncio.run(runner.run("resolve", [spec("hv02")], never, forks=5))
    assert dict(done.results) == {}, "resolved by the site's worker, in the host's batch"
    made = _chunk(runner._work, 5, "east", [spec("hv01"), spec("hv02")], start_by=1.0, forks=2)
    assert (made.hosts, made.resolve) == (("hv01", "hv02"), left)
    assert _chunk(runner._work, 5, "east", [spec("hv01")], start_by=1.0, forks=2).resolve == {}


def test_a_resume_coordinator_keeps_each_txid_to_resolve_on_its_host_s_row_until_replaced() -> None:
    """A host the rollout settles without sending it (a batch skipped) keeps the txid the
    resumed run left: the next ``--resume`` resolves it."""
    from types import SimpleNamespace

    from fleetbr.distributed.coordinator import CeleryRunner
    from fleetbr.history.location import DatabaseUrl
    from fleetbr.interrupt import Interruption
    from fleetbr.observe import Observers
    from fleetbr.resume import Prior

    recorder = SimpleNamespace(txids={}, worker="coordinator:1")
    request = SimpleNamespace(
        command="apply", change=SimpleNamespace(recorded_file=TASK, label="bridge.yaml"),
        history=SimpleNamespace(path=DatabaseUrl("postgresql://u@127.0.0.1:1/db")),
    )  # fmt: skip
    prepared = SimpleNamespace(request=request, prior=Prior(4, resolve={"hv02": TXID}))
    context = SimpleNamespace(recorder=recorder, observer=Observers())
    runner = CeleryRunner(config.Settings("redis://127.0.0.1:6390/0"))
    runner.attach(cast(Any, prepared), cast(Any, context), Interruption())
    assert runner._work is not None and runner._work.left == {"hv02": Left(TXID, 4)}
    assert (recorder.txids, recorder.worker) == ({"hv02": TXID}, None)
