"""fleetbr.api against real sshd lab hosts: the CLI's commands as functions, typed results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fleetbr.api as api
from fleetbr.errors import HostKeyRejected
from fleetbr.history.store import HistoryError
from fleetbr.lab import Lab, host_state
from fleetbr.report import Status
from tests.integration.helpers import (
    REPO,
    TIMEOUT,
    armed,
    derived_inventory,
    enslaved,
    events,
    fleetbr,
    task_file,
)


def _own(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts without what two readings may differ in for reasons outside the host: ``extra``
    (holds "now"), and which daemons run: a netns lab host shares the machine's PID namespace,
    so the distro tier's systemd hosts, running beside this job, show their networkd in its
    /proc (``daemons.running``, each backend's ``active``)."""
    out = {k: v for k, v in facts.items() if k != "extra"}
    out["daemons"] = {k: v for k, v in facts["daemons"].items() if k != "running"}
    out["backends"] = [{k: v for k, v in b.items() if k != "active"} for b in facts["backends"]]
    return out


def test_facts_plan_and_typed_results_change_nothing(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    names = ["hv10", "hv11"]
    for name in names:
        fresh_host(name)
    hosts = api.load_inventory(lab.inventory_dir, limit="hv1[01]")
    assert [h.name for h in hosts] == names

    facts = api.facts(hosts, forks=2)
    assert facts.exit_code == 0 and facts.counts() == {"ok": 2}
    code, cli, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv1[01]", "facts")
    assert code == 0, err
    for name in names:
        assert facts[name].data["facts"]["hostname"] == name
        assert facts[name].message == cli[name]["message"]  # what `fleetbr facts` says

    typed = api.host_facts(hosts[0])
    assert typed.hostname == "hv10" and typed.bridges == ()
    assert _own(typed.to_dict()) == _own(facts["hv10"].data["facts"])

    task = task_file(tmp_path)
    planned = api.plan(hosts, task, diff=True)
    assert planned.counts() == {"planned": 2}
    view = planned["hv10"].data["diff"]  # plan --diff's before/after view, as data
    assert view["mode"] == "plan" and view["changed"] and view["host"] == "hv10"
    assert any("br0" in line for line in view["runtime"]["bridges"]["after"])
    plan = api.host_plan(hosts[0], api.load_task(task))
    assert plan.refusal is None and not plan.unchanged
    assert [s.description for s in plan.steps] == planned["hv10"].data["steps"]
    assert [s.description for s in plan.rollback] == planned["hv10"].data["rollback"]

    for name in names:
        assert host_state(lab, name) == pristine[name]
        assert events(lab, name) == [] and not armed(lab, name)


def test_apply_canary_batches_status_rollback(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    names = ["hv10", "hv11", "hv12"]
    for name in names:
        fresh_host(name)
    hosts = api.load_inventory(lab.inventory_dir, limit=",".join(names))
    task = task_file(tmp_path)
    history = tmp_path / "h.sqlite3"

    done = api.apply(hosts, task, canary=1, batch_size=1, max_failures=0, forks=2,
                     history=history)  # fmt: skip
    assert done.command == "apply" and done.exit_code == 0, done.to_dict()
    assert [r.status for r in done.values()] == [Status.CONFIRMED] * 3
    for name in names:
        assert enslaved(lab, name)
        assert done[name].data["txid"] in done[name].message

    again = api.apply(hosts, api.load_task(task), history=history)
    assert again.counts() == {"unchanged": 3}

    status = api.status(hosts, history=history)
    assert status.exit_code == 0
    for name in names:
        assert status[name].data["armed"] is None
        assert f"last {done[name].data['txid']}: confirmed" in status[name].message

    rolled = api.rollback(hosts[:1], history=history)
    assert rolled["hv10"].status is Status.OK and "nothing to roll back" in rolled["hv10"].message
    page = api.report(1, tmp_path / "report.html", history=history)
    html = page.read_text()
    assert page.stat().st_mode & 0o777 == 0o600
    assert all(f'data-host="{name}"' in html for name in names) and '<pre class="diff"' in html
    with pytest.raises(HistoryError, match="no run 99"):
        api.report(99, tmp_path / "none.html", history=history)
    assert recorded_runs(history) == [
        ("apply", "api", {"confirmed": 3}), ("apply", "api", {"unchanged": 3}),
        ("status", "api", {"ok": 3}), ("rollback", "api", {"ok": 1}),
    ]  # fmt: skip
    checked = api.check(hosts, task, history=False)
    assert checked.counts() == {"in_sync": 3}, checked.to_dict()
    assert len(recorded_runs(history)) == 4, "history=False records nothing"


def recorded_runs(history: Path) -> list[tuple[str, str, dict[str, int]]]:
    """Every run `fleetbr history` shows, oldest first: command, origin, counts."""
    code, found, err = fleetbr("--history", str(history), "history")
    assert code == 0, err
    runs = reversed(found["runs"])
    return [(run["command"], run["options"]["origin"], run["counts"]) for run in runs]


def test_a_cutting_canary_rolls_back_and_stops_the_rollout(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("hv12", "hv13"):
        fresh_host(name)
    hosts = api.load_inventory(lab.inventory_dir, limit="hv12,hv13")
    cut_off = tmp_path / "cut-off.yaml"
    cut_off.write_text((REPO / "tasks" / "cut-off.yaml").read_text().replace(
        "timeout: 60", f"timeout: {TIMEOUT}"
    ))  # fmt: skip
    done = api.apply(hosts, cut_off, canary=1)
    assert done.exit_code == 1
    assert done["hv12"].status is Status.ROLLED_BACK, done["hv12"].message
    assert done["hv13"].status is Status.SKIPPED
    assert "canary hv12" in done["hv13"].message
    assert [r.host for r in done.failed] == ["hv12", "hv13"]
    for name in ("hv12", "hv13"):
        assert host_state(lab, name) == pristine[name]


async def test_async_twins_run_on_the_callers_loop(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv13")
    hosts = api.load_inventory(lab.inventory_dir, limit="hv13")
    planned = await api.plan_async(hosts, task_file(tmp_path))
    assert planned["hv13"].status is Status.PLANNED
    facts = await api.host_facts_async(hosts[0])
    assert facts.hostname == "hv13"
    status = await api.status_async(hosts)
    assert status["hv13"].status is Status.OK


def test_host_keys_are_checked_and_errors_are_fleetbrs(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    hosts = api.load_inventory(lab.inventory_dir, limit="hv13", known_hosts=str(empty))
    facts = api.facts(hosts)
    assert facts["hv13"].status is Status.FAILED
    assert "not trusted" in facts["hv13"].message
    try:
        api.host_facts(hosts[0])
    except HostKeyRejected as exc:
        assert str(exc) == facts["hv13"].message
    else:
        raise AssertionError("an unknown host key was accepted")


def test_inventory_settings_reach_the_connection(lab: Lab, tmp_path: Path) -> None:
    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        hosts["hv13"]["port"] = 2222  # nothing listens there

    inventory = derived_inventory(lab, tmp_path / "inventory", edit)
    facts = api.facts(api.load_inventory(inventory, limit="hv13"))
    assert facts["hv13"].status is Status.UNREACHABLE
    assert ":2222" in facts["hv13"].message
