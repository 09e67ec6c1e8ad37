"""``-l @failed:RUN|@failed:last`` (which hosts of a recorded run did not succeed, combined with
the other terms) and ``--list-hosts`` from the command line, on a real history file, without any
host (the inventory's addresses are never contacted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbr.cli import main
from fleetbr.errors import UsageError
from fleetbr.failed import failed_hosts, failed_sets, named_terms, run_ref
from fleetbr.history.record import controller_identity
from fleetbr.history.sqlite import SqliteStore
from fleetbr.history.store import HostRow, RunRecord, RunState, host_status
from fleetbr.selection import select_names

HOSTS = "".join(
    f"hv0{n}: {{hostname: 198.51.100.{10 + n}, groups: [{'rack1' if n <= 3 else 'rack2'}]}}\n"
    for n in range(1, 7)
)
EVERY = [f"hv0{n}" for n in range(1, 7)]


def record(store: SqliteStore, statuses: dict[str, str], *, command: str = "apply",
           hosts: list[str] | None = None, state: str = "finished") -> int:  # fmt: skip
    """A run of ``command`` over ``hosts`` (default: the hosts of ``statuses``) whose rows
    have ``statuses`` (a host left out has no row at all)."""
    run = RunRecord(command=command, hosts=list(statuses) if hosts is None else hosts,
                    options={}, started=1.0, controller={"host": "elsewhere", "pid": 1},
                    state=RunState(state))  # fmt: skip
    run_id = store.create_run(run)
    for host, status in statuses.items():
        store.put_host(run_id, HostRow(host, host_status(status)))
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SqliteStore(tmp_path / "h.sqlite3")
    yield opened
    opened.close()


def test_terms_are_found_whatever_their_prefix() -> None:
    limit = " rack1, &@failed:3 ,!@failed:last,@failed:3,hv0*"
    assert named_terms(limit) == ["@failed:3", "@failed:last"]
    assert run_ref("@failed:3") == 3
    assert run_ref("@failed:last") is None
    for bad in ("@failed:", "@failed:0", "@failed:-1", "@failed:x", "@failed:٣", "@fail:3", "@x"):
        with pytest.raises(UsageError, match="@failed:RUN"):
            run_ref(bad)


def test_failed_are_the_hosts_that_did_not_succeed_in_the_runs_command(store: SqliteStore) -> None:
    statuses = {"hv01": "confirmed", "hv02": "unchanged", "hv03": "rolled_back",
                "hv04": "failed", "hv05": "skipped", "hv06": "started"}  # fmt: skip
    run_id = record(store, statuses, hosts=[*EVERY, "hv07"])  # hv07: no row, never started
    assert failed_hosts(store.run(run_id), store.hosts_of(run_id)) == [
        "hv03", "hv04", "hv05", "hv06", "hv07",
    ]  # fmt: skip
    check = record(store, {"hv01": "in_sync", "hv02": "drifted", "hv03": "unreachable"},
                   command="check")  # fmt: skip
    assert failed_hosts(store.run(check), store.hosts_of(check)) == ["hv02", "hv03"]
    rollback = record(store, {"hv01": "rolled_back", "hv02": "failed"}, command="rollback")
    assert failed_hosts(store.run(rollback), store.hosts_of(rollback)) == ["hv02"]
    run = record(store, {"hv01": "ok", "hv02": "timed_out"}, command="run")
    assert failed_hosts(store.run(run), store.hosts_of(run)) == ["hv02"]


def test_last_is_the_newest_run_with_hosts_older_than_before(store: SqliteStore) -> None:
    first = record(store, {"hv01": "failed", "hv02": "confirmed"})
    second = record(store, {"hv03": "drifted"}, command="check")
    record(store, {}, command="status", hosts=[])  # no hosts: never "last"
    path = store.path
    assert failed_sets("@failed:last", path, known=EVERY) == {"@failed:last": {"hv03"}}
    assert failed_sets("@failed:last", path, known=EVERY, before=second) == {
        "@failed:last": {"hv01"}
    }
    both = failed_sets(f"@failed:{first},!@failed:{second}", path, known=EVERY)
    assert both == {f"@failed:{first}": {"hv01"}, f"@failed:{second}": {"hv03"}}
    with pytest.raises(UsageError, match="no run with hosts"):
        failed_sets("@failed:last", path, known=EVERY, before=first)


@pytest.mark.parametrize(
    ("statuses", "limit", "message"),
    [
        ({"hv01": "failed"}, "@failed:9", r"no run 9 in .*h\.sqlite3"),
        ({"hv01": "confirmed", "hv02": "unchanged"}, "@failed:1",
         r"every host of run 1 \(apply\) succeeded; nothing to retry"),
        ({"hv01": "failed", "gone1": "failed", "gone2": "unreachable"}, "x,@failed:last",
         r"run 1's failed hosts gone\[1-2\] are not in the inventory any more"),
        ({"hv01": "failed"}, "@failed:1x", "is not a run's failed hosts"),
    ],
)  # fmt: skip
def test_a_run_that_cannot_be_retried_is_one_usage_error(
    store: SqliteStore, statuses: dict[str, str], limit: str, message: str
) -> None:
    record(store, statuses)
    with pytest.raises(UsageError, match=message):
        failed_sets(limit, store.path, known=EVERY)


def test_a_history_without_runs_or_without_a_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no run history at"):
        failed_sets("@failed:last", tmp_path / "none.sqlite3", known=EVERY)
    SqliteStore(tmp_path / "empty.sqlite3").close()
    with pytest.raises(UsageError, match="no run with hosts in"):
        failed_sets("@failed:last", tmp_path / "empty.sqlite3", known=EVERY)
    with pytest.raises(UsageError, match="not with --no-history"):
        failed_sets("@failed:last", None, known=EVERY)


def test_a_run_still_running_is_not_retried(store: SqliteStore) -> None:
    run_id = record(store, {"hv01": "started"}, state="running")
    store.db.execute("UPDATE runs SET controller = ? WHERE id = ?",
                     (json.dumps(controller_identity()), run_id))  # fmt: skip
    with pytest.raises(UsageError, match=f"run {run_id} is still running"):
        failed_sets("@failed:last", store.path, known=EVERY)


def test_named_terms_combine_like_any_other_term() -> None:
    groups = {name: ("rack1",) if name <= "hv03" else ("rack2",) for name in EVERY}
    named = {"@failed:1": {"hv02", "hv05"}}
    assert select_names(groups, "@failed:1", named=named) == ["hv02", "hv05"]
    assert select_names(groups, "@failed:1,hv06", named=named) == ["hv02", "hv05", "hv06"]
    assert select_names(groups, "@failed:1,&rack2", named=named) == ["hv05"]
    assert select_names(groups, "rack1,!@failed:1", named=named) == ["hv01", "hv03"]
    assert select_names(groups, "!@failed:1", named=named) == ["hv01", "hv03", "hv04", "hv06"]
    with pytest.raises(UsageError, match="an @ term is only taken by -l"):
        select_names(groups, "@failed:1")  # `history --host`: no named sets there


# -- the command line ----------------------------------------------------------------------------


def inventory(tmp_path: Path) -> Path:
    """Six hosts in two racks, at addresses nothing listens on."""
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv/hosts.yaml").write_text(HOSTS)
    (tmp_path / "inv/groups.yaml").write_text("rack1: {}\nrack2: {}\n")
    return tmp_path / "inv"


@pytest.fixture
def cli(tmp_path: Path, store: SqliteStore) -> Any:
    """The command line on a six-host inventory (nothing listens there) and ``store``."""
    inventory(tmp_path)
    (tmp_path / "task.yaml").write_text("not read by --list-hosts: {")

    def run(*argv: str) -> int:
        head = ["-i", str(tmp_path / "inv"), "--history", str(store.path)]
        return main([*head, *(str(tmp_path / "task.yaml") if a == "TASK" else a for a in argv)])

    return run


def runs_in(store: SqliteStore) -> int:
    return len(store.runs())


def test_list_hosts_of_failed_hosts_in_batches_contacts_and_records_nothing(
    cli: Any, store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses = dict.fromkeys(EVERY, "rolled_back") | {"hv01": "confirmed"}
    record(store, statuses)
    argv = ("-l", "@failed:last", "--json", "apply", "TASK", "--canary", "1", "--batch-size",
            "1,50%", "--list-hosts")  # fmt: skip
    assert cli(*argv) == 0
    plan = json.loads(capsys.readouterr().out)
    # 50% of the five selected hosts is 3 (rounded up), repeated for what is left
    assert plan == {"command": "apply", "selection": "@failed:last",
                    "hosts": EVERY[1:], "canary": ["hv02"],
                    "batches": [["hv03"], ["hv04", "hv05", "hv06"]]}  # fmt: skip
    assert runs_in(store) == 1


def test_list_hosts_human_lines_escape_host_names(
    tmp_path: Path, cli: Any, store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inv/hosts.yaml").write_text(HOSTS + '"hv\\e[31m": {hostname: 198.51.100.9}\n')
    assert cli("-l", "hv0[12],hv\x1b*", "check", "TASK", "--list-hosts") == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["check: 3 hosts, 1 batch; no host contacted",
                                "batch 1 of 1 (3 hosts):", "  hv01", "  hv02",
                                "  hv\\x1b[31m"]  # fmt: skip
    assert runs_in(store) == 0


def test_run_list_hosts_and_errors_are_one_line_exit_2(
    cli: Any, store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record(store, {"hv01": "ok", "hv02": "failed", "hv03": "timed_out"}, command="run")
    assert cli("-l", "@failed:1", "--json", "run", "--list-hosts", "--", "true") == 0
    assert json.loads(capsys.readouterr().out)["batches"] == [["hv02", "hv03"]]
    for argv, message in [
        (("-l", "@failed:2", "run", "--", "true"), "no run 2 in"),
        (("-l", "@failed:1", "--no-history", "apply", "TASK"), "not with --no-history"),
        (("-l", "@failed:1", "apply", "TASK", "--resume", "1", "--list-hosts"),
         "--list-hosts does not combine with --resume"),
        (("-l", "@nope", "inventory"), "is not a run's failed hosts"),
    ]:  # fmt: skip
        assert cli(*argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert runs_in(store) == 1


def test_inventory_takes_failed_too(
    cli: Any, store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record(store, {"hv04": "refused", "hv05": "confirmed"})
    assert cli("-l", "@failed:last", "--json", "inventory") == 0
    assert list(json.loads(capsys.readouterr().out)) == ["hv04"]


def test_a_resumed_runs_failed_last_means_the_run_before_it(
    tmp_path: Path, store: SqliteStore
) -> None:
    from fleetbr.core.assemble import select
    from fleetbr.core.request import ChangeRef, HistoryOptions, RunRequest, Selection
    from fleetbr.history.record import file_sha256
    from fleetbr.resume import prepare_resume

    task = tmp_path / "task.yaml"
    task.write_text("bridge: {}\n")
    record(store, {"hv01": "confirmed", "hv02": "rolled_back", "hv03": "unreachable"})
    retry = record(store, {"hv02": "confirmed", "hv03": "skipped"}, state="interrupted")
    store.db.execute("UPDATE runs SET selection = '@failed:last', task_path = ?, task_sha256 = ?"
                     " WHERE id = ?", (str(task), file_sha256(task), retry))  # fmt: skip
    asked = RunRequest("apply", Selection(inventory(tmp_path)),
                       ChangeRef("bridge", task, recorded_file=task),
                       history=HistoryOptions(path=store.path, resume=retry))  # fmt: skip
    # without `before`, last would be the retry itself, whose failed host is hv03 alone
    resumed, prior, hosts = prepare_resume(asked, lambda r: select(r, connecting=False))
    assert [spec.name for spec in hosts] == ["hv02", "hv03"]
    assert resumed.selection.limit == "@failed:last" and list(prior.carried) == ["hv02"]
