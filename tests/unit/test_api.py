"""fleetbr.api without SSH: bad input raises fleetbr's errors before any host is contacted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

import fleetbr.api as api
from fleetbr.errors import InventoryError, TaskError, UsageError
from tests.sshfiles import write_key

REPO = Path(__file__).resolve().parents[2]
TASK = REPO / "tasks" / "bridge.yaml"
# TEST-NET addresses no test ever connects to: every check below fails before connecting.
HOSTS = {
    "hv01": {"hostname": "203.0.113.91", "groups": ["rack-a"], "data": {"nic": "eth0"}},
    "hv02": {"hostname": "203.0.113.92", "groups": ["rack-a"], "data": {"nic": "eth0"}},
    "hv03": {"hostname": "203.0.113.93", "data": {"nic": "eth0"}},
}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(HOSTS))
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump({"rack-a": {}}))
    return tmp_path


def test_load_inventory_selects_as_the_cli_does(inventory: Path) -> None:
    assert [h.name for h in api.load_inventory(inventory)] == ["hv01", "hv02", "hv03"]
    assert [h.name for h in api.load_inventory(str(inventory), "rack-a")] == ["hv01", "hv02"]
    assert [h.name for h in api.load_inventory(inventory, "hv0[23]")] == ["hv02", "hv03"]
    with pytest.raises(InventoryError, match="matches no host or group"):
        api.load_inventory(inventory, "rack-b")
    with pytest.raises(UsageError, match="empty"):
        api.load_inventory(inventory, "")


def test_load_inventory_overrides_and_checks_keys(inventory: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    write_key(key)
    (tmp_path / "kh").write_text("")
    hosts = api.load_inventory(inventory, key=str(key), known_hosts=str(tmp_path / "kh"))
    assert {h.ssh.client_keys for h in hosts} == {(str(key),)}
    assert {h.ssh.known_hosts for h in hosts} == {str(tmp_path / "kh")}
    with pytest.raises(UsageError, match="--key"):
        api.load_inventory(inventory, key=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="--known-hosts .*/absent: No such file"):
        api.load_inventory(inventory, known_hosts=str(tmp_path / "absent"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"canary": -1}, "canary: expected a whole number of at least 0"),
        ({"batch_size": 0}, "batch_size: expected a whole number of at least 1"),
        ({"max_failures": -2}, "max_failures"),
        ({"forks": 0}, "forks"),
        ({"forks": True}, "forks"),
        ({"canary": 1.5}, "canary"),
    ],
)
def test_bad_rollout_options_raise_before_any_host(
    inventory: Path, options: dict[str, Any], message: str
) -> None:
    hosts = api.load_inventory(inventory)
    with pytest.raises(UsageError, match=message):
        api.apply(hosts, TASK, **options)


def test_a_host_listed_twice_or_not_a_host_is_refused(inventory: Path) -> None:
    hosts = api.load_inventory(inventory)
    with pytest.raises(UsageError, match="hv01 is listed more than once"):
        api.apply([hosts[0], hosts[1], hosts[0]], TASK)
    with pytest.raises(UsageError, match="listed more than once"):
        api.facts([hosts[0], hosts[0]])
    with pytest.raises(UsageError, match="expected HostSpec"):
        api.status(["hv01"])  # type: ignore[list-item]


def test_a_task_that_does_not_render_for_one_host_raises_before_any_host(
    inventory: Path, tmp_path: Path
) -> None:
    hosts = api.load_inventory(inventory)
    task = tmp_path / "t.yaml"
    task.write_text("bridge:\n  nic: \"{{ host.data.nic if host.name != 'hv03' else '-x' }}\"\n")
    with pytest.raises(TaskError, match="host hv03: bridge.nic"):
        api.plan(hosts, task)
    with pytest.raises(TaskError, match="cannot read task file"):
        api.apply(hosts, tmp_path / "missing.yaml")
    template = api.load_task(TASK)
    rendered = api.render_tasks(template, hosts)
    assert {name: t.bridge.nic for name, t in rendered.items()} == dict.fromkeys(HOSTS, "eth0")
    assert api.task_label(template) == api.task_label(str(TASK)) == "bridge.yaml"


async def test_blocking_calls_inside_a_running_loop_point_to_the_async_twin(
    inventory: Path,
) -> None:
    hosts = api.load_inventory(inventory)
    with pytest.raises(UsageError, match="_async twin"):
        api.facts(hosts)
    assert asyncio.get_running_loop().is_running()


def test_the_documented_names_exist() -> None:
    for name in api.__all__:
        assert getattr(api, name) is not None, name
