"""fleetbr as Nornir tasks, through a real InitNornir over the lab's SimpleInventory and real
sshd hosts: facts, dry run, a confirmed apply, a cutting apply rolled back, the connection plugin
and its host key checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.filter import F

from fleetbr.api import load_task
from fleetbr.changes.bridge.dryrun import plan_job
from fleetbr.errors import HostKeyRejected
from fleetbr.history.sqlite import SqliteStore
from fleetbr.lab import Lab, host_state
from fleetbr.lab.system import kill
from fleetbr.nornir import (
    CONNECTION_NAME,
    FleetbrConnection,
    FleetbrResult,
    fleetbr_apply,
    fleetbr_check,
    fleetbr_facts,
    fleetbr_plan,
    host_result,
)
from fleetbr.nornir.loop import SHARED, THREAD_NAME
from fleetbr.report import Status
from tests.integration.helpers import (
    REPO,
    TIMEOUT,
    armed,
    derived_inventory,
    enslaved,
    events,
    fleetbr,
    host_processes,
    rendered,
    sh,
    specs,
    task_file,
)


@pytest.fixture(autouse=True)
def _no_leak_between_tests() -> Iterator[None]:
    """A test that leaks the shared loop fails on its own assertions; this only keeps the
    leak from failing the tests after it too."""
    yield
    if SHARED.users:
        SHARED.shutdown()


def nornir(inventory: Path, *names: str, dry_run: bool = False) -> Nornir:
    """A real InitNornir over a fleetbr (SimpleInventory) directory, limited to ``names``."""
    nr = InitNornir(
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(inventory / "hosts.yaml"),
                "group_file": str(inventory / "groups.yaml"),
                "defaults_file": str(inventory / "defaults.yaml"),
            },
        },
        runner={"plugin": "threaded", "options": {"num_workers": 4}},
        logging={"enabled": False},
        dry_run=dry_run,
    )
    return nr.filter(filter_func=lambda host: host.name in names)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def assert_no_loop_left() -> None:
    assert SHARED.users == 0
    assert loop_threads() == []


def test_facts_reuse_the_plugin_connection_and_close_connections_leaves_nothing(
    lab: Lab, fresh_host: Any
) -> None:
    names = ("hv07", "hv08")
    for name in names:
        fresh_host(name)
    nr = nornir(lab.inventory_dir, *names)
    done = nr.run(task=fleetbr_facts)
    assert not done.failed
    opened = {}
    for name in names:
        result = done[name][0]
        assert not result.failed and not result.changed
        assert host_result(result).status is Status.OK
        assert result.result["facts"]["hostname"] == name
        assert (
            isinstance(result, FleetbrResult)
            and result.facts is not None
            and result.facts.hostname == name
        )
        assert lab.host(name).nic in {link.name for link in result.facts.links}
        opened[name] = nr.inventory.hosts[name].connections[CONNECTION_NAME].connection
    assert SHARED.users == len(names) and len(loop_threads()) == 1

    again = nr.run(task=fleetbr_facts)  # the same SSH connection serves the next task
    assert not again.failed
    for name in names:
        assert nr.inventory.hosts[name].connections[CONNECTION_NAME].connection is opened[name]

    nr.close_connections()
    for name in names:
        assert nr.inventory.hosts[name].connections == {}
    assert_no_loop_left()


def test_dry_run_changes_nothing_and_matches_fleetbr_plan(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv07")
    task = task_file(tmp_path)
    nr = nornir(lab.inventory_dir, "hv07")
    by_call = nr.run(task=fleetbr_apply, task_file=str(task), dry_run=True)["hv07"][0]
    dry = nornir(lab.inventory_dir, "hv07", dry_run=True)  # nornir's global dry_run
    by_nornir = dry.run(task=fleetbr_apply, task_file=load_task(task))["hv07"][0]  # loaded task
    by_plan = nr.run(task=fleetbr_plan, task_file=task)["hv07"][0]
    nr.close_connections()
    dry.close_connections()
    expected = asyncio.run(plan_job(specs(lab.inventory_dir)["hv07"], rendered(lab, task, "hv07")))
    assert expected.status is Status.PLANNED
    for result in (by_call, by_nornir, by_plan):
        assert result.changed and not result.failed
        got = host_result(result)
        assert (got.status, got.message, got.data) == (expected.status, expected.message,
                                                       expected.data)  # fmt: skip
        assert result.diff == "\n".join(expected.data["steps"])
        assert any("make eth0 a port of br0" in step for step in result.diff.splitlines())
    assert host_state(lab, "hv07") == pristine["hv07"]
    assert events(lab, "hv07") == [] and not armed(lab, "hv07")
    assert_no_loop_left()


def test_apply_confirmed_then_unchanged(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    names = ("hv08", "hv09")
    for name in names:
        fresh_host(name)
    task = task_file(tmp_path)
    history = tmp_path / "h.sqlite3"
    nr = nornir(lab.inventory_dir, *names)
    done = nr.run(task=fleetbr_apply, task_file=task, history=history)
    assert not done.failed
    for name in names:
        result = done[name][0]
        got = host_result(result)
        assert got.status is Status.CONFIRMED, got.message
        assert result.changed and not result.failed
        assert result.diff == "\n".join(got.data["steps"]) != ""
        assert result.result["txid"] == got.data["txid"]
        assert enslaved(lab, name)
        assert events(lab, name) == ["staged", "armed", "applied", "confirmed"]

    nr.run(task=fleetbr_facts)  # opens the plugin connections ...
    again = nr.run(task=fleetbr_apply, task_file=task, history=history)
    for name in names:
        result = again[name][0]
        assert host_result(result).status is Status.UNCHANGED
        assert not result.changed and not result.failed and result.diff == ""
        # ... which apply closes: the change may have cut them
        assert nr.inventory.hosts[name].connections == {}
    assert_no_loop_left()
    # one run per host and task, recorded by the engine with its origin
    assert sorted(recorded_runs(history)) == [
        ("apply", "nornir", ("hv08",), "hv08=confirmed"),
        ("apply", "nornir", ("hv08",), "hv08=unchanged"),
        ("apply", "nornir", ("hv09",), "hv09=confirmed"),
        ("apply", "nornir", ("hv09",), "hv09=unchanged"),
    ]


def recorded_runs(history: Path) -> list[tuple[str, str, tuple[str, ...], str]]:
    """Every recorded run: command, origin, hosts and its host's status (store API)."""
    store = SqliteStore(history, create=False)
    try:
        return [
            (run.command, str(run.options["origin"]), tuple(run.hosts),
             " ".join(f"{row.host}={row.status}" for row in store.hosts_of(run.id)))
            for run in store.runs()
        ]  # fmt: skip
    finally:
        store.close()


def test_a_lost_session_is_closed_and_the_next_task_reconnects(lab: Lab, fresh_host: Any) -> None:
    fresh_host("hv07")
    nr = nornir(lab.inventory_dir, "hv07")
    assert not nr.run(task=fleetbr_facts).failed
    first = nr.inventory.hosts["hv07"].connections[CONNECTION_NAME].connection
    listener = lab.host("hv07").sshd_pid
    sessions = [pid for pid, argv in host_processes(lab, "hv07").items()
                if argv and "sshd" in argv[0] and pid != listener]  # fmt: skip
    assert sessions
    kill(sessions)  # the plugin's session dies under it

    lost = nr.run(task=fleetbr_facts)["hv07"][0]
    assert lost.failed and host_result(lost).status is Status.UNREACHABLE
    assert "connection lost" in host_result(lost).message
    assert nr.inventory.hosts["hv07"].connections == {}  # closed: no dead connection kept

    again = nr.run(task=fleetbr_facts, on_failed=True)["hv07"][0]
    assert not again.failed
    assert nr.inventory.hosts["hv07"].connections[CONNECTION_NAME].connection is not first
    nr.close_connections(on_failed=True)  # hv07 failed once: nornir's failed_hosts keeps it
    assert_no_loop_left()


def test_close_connections_on_failed_hosts_leaves_no_thread(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Nornir's close_connections() skips failed hosts unless on_failed=True (docs/api.md)."""
    fresh_host("hv08")
    nr = nornir(lab.inventory_dir, "hv08")
    assert not nr.run(task=fleetbr_facts).failed  # opens the connection
    refused = nr.run(task=fleetbr_plan, task_file=task_file(tmp_path, nic="nope0"))["hv08"][0]
    assert refused.failed and host_result(refused).status is Status.REFUSED
    nr.close_connections()
    assert SHARED.users == 1  # the failed host's connection is still open
    nr.close_connections(on_failed=True)
    assert nr.inventory.hosts["hv08"].connections == {}
    assert_no_loop_left()


def test_cutting_task_is_rolled_back_and_reported_failed(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv09")
    nr = nornir(lab.inventory_dir, "hv09")
    cut_off = tmp_path / "cut-off.yaml"  # the shipped task, with the shortest timeout
    cut_off.write_text((REPO / "tasks" / "cut-off.yaml").read_text().replace(
        "timeout: 60", f"timeout: {TIMEOUT}"
    ))  # fmt: skip
    done = nr.run(task=fleetbr_apply, task_file=cut_off)
    result = done["hv09"][0]
    got = host_result(result)
    assert got.status is Status.ROLLED_BACK, got.message
    assert result.failed and not result.changed and result.diff == ""
    assert done.failed and "hv09" in done.failed_hosts
    assert host_state(lab, "hv09") == pristine["hv09"]
    assert events(lab, "hv09")[-2:] == ["rolling_back", "rolled_back"]
    assert_no_loop_left()


def lab_extras(lab: Lab, **changes: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {
        "client_keys": [str(lab.key_path)],
        "known_hosts": str(lab.known_hosts_path),
        "connect_timeout": 3,
    }
    extras.update(changes)
    return extras


def test_connection_plugin_opens_checks_the_host_key_and_closes(lab: Lab, tmp_path: Path) -> None:
    host = lab.host("hv07")
    plugin = FleetbrConnection()
    plugin.open(host.ip4, "root", None, 22, None, lab_extras(lab))
    assert plugin.connection is not None and SHARED.users == 1
    with SHARED.use() as loop:
        out = loop.run(plugin.connection.run_script("hostname", label="hostname"))
    assert out.stdout.strip() == "hv07"
    plugin.close()
    assert plugin.connection is None
    assert_no_loop_left()

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    wrong = tmp_path / "wrong_known_hosts"  # hv08's key under hv07's address
    other = lab.host("hv08").ip4
    keys = [line.split(" ", 1)[1] for line in lab.known_hosts_path.read_text().splitlines()
            if line.startswith(f"{other} ")]  # fmt: skip
    wrong.write_text(f"{host.ip4} {keys[0]}\n")
    for known_hosts in (str(empty), str(wrong)):
        plugin = FleetbrConnection()
        with pytest.raises(HostKeyRejected, match="not trusted"):
            plugin.open(
                host.ip4, "root", None, 22, None, lab_extras(lab, known_hosts=str(known_hosts))
            )
        assert plugin.connection is None
        assert_no_loop_left()


def test_an_unknown_host_key_fails_the_task_as_in_the_cli(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")

    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        defaults["connection_options"]["fleetbr"]["extras"]["known_hosts"] = str(empty)

    inventory = derived_inventory(lab, tmp_path / "inventory", edit)
    nr = nornir(inventory, "hv07")
    result = nr.run(task=fleetbr_facts)["hv07"][0]
    got = host_result(result)
    assert result.failed and got.status is Status.FAILED
    assert "not trusted" in got.message and str(empty) in got.message
    assert nr.inventory.hosts["hv07"].connections == {}
    assert_no_loop_left()

    code, doc, err = fleetbr("-i", str(inventory), "-l", "hv07", "facts")
    assert code == 1, err
    assert doc["hv07"]["status"] == "failed"
    assert doc["hv07"]["message"] == got.message


def test_nornir_filters_and_groups_reach_the_task_template(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Host data and groups come from nornir's own inventory objects, as fleetbr's loader
    resolves them: the lab group's data renders into the task."""
    fresh_host("hv07")
    task = task_file(tmp_path, nic='{{ host.data.nic if "lab" in host.groups else "nope" }}')
    nr = nornir(lab.inventory_dir, "hv07", "hv08").filter(F(name="hv07"))
    result = nr.run(task=fleetbr_plan, task_file=task)["hv07"][0]
    nr.close_connections()
    assert host_result(result).status is Status.PLANNED, host_result(result).message
    assert_no_loop_left()


def test_check_is_read_only_and_reports_drift(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    fresh_host("hv10")
    task = task_file(tmp_path)
    nr = nornir(lab.inventory_dir, "hv10")
    history = tmp_path / "h.sqlite3"
    assert not nr.run(task=fleetbr_apply, task_file=task, history=False).failed
    clean = nr.run(task=fleetbr_check, task_file=task, history=history)["hv10"][0]
    assert host_result(clean).status is Status.IN_SYNC
    assert not clean.changed and not clean.failed and clean.diff == ""
    # drift: STP turned on behind fleetbr's back
    sh(lab, "hv10", "ip link set dev br0 type bridge stp_state 1")
    before = host_state(lab, "hv10")
    journal = events(lab, "hv10")
    drifted = nr.run(task=fleetbr_check, task_file=task, history=history)["hv10"][0]
    assert host_result(drifted).status is Status.DRIFTED
    assert drifted.changed and not drifted.failed
    assert "stp" in drifted.diff.lower()
    assert host_state(lab, "hv10") == before and events(lab, "hv10") == journal
    nr.close_connections(on_failed=True)
    assert_no_loop_left()
    assert sorted(recorded_runs(history)) == [
        ("check", "nornir", ("hv10",), "hv10=drifted"),
        ("check", "nornir", ("hv10",), "hv10=in_sync"),
    ], "both checks recorded, the apply (history=False) not"
