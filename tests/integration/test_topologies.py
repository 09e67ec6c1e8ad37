"""Topologies through the whole transaction on the netns lab (SSH, stage, arm, confirm, the
host's own rollback): several bridges, one of them host-only; the record of what ``move`` took
(/run/fleetbr/pins/br0.json), which makes an address lost from br0 drift that ``check`` names
and an apply puts back. This machine's kernel has no bonding, 8021q or bridge VLAN filtering:
those topologies wait for the VM tier."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from fleetbr.changes.bridge.change import apply_host
from fleetbr.changes.bridge.drift import check_job
from fleetbr.lab import Lab
from fleetbr.report import Status
from tests.integration.helpers import TIMEOUT, assert_at_snapshot, events, rendered, sh, specs

HOST = "hv03"


def topology_file(tmp_path: Path, br0_addresses: object = "move") -> Path:
    doc = {
        "deadman": {"timeout": TIMEOUT},
        "bridges": [
            {"name": "br0", "nic": "{{ host.data.nic }}", "addresses": br0_addresses},
            {"name": "br9", "host_only": True, "addresses": ["198.18.0.1/24"]},
        ],
    }
    path = tmp_path / f"topology-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def apply(lab: Lab, task: Path) -> Any:
    spec = specs(lab.inventory_dir)[HOST]
    return asyncio.run(apply_host(spec, rendered(lab, task, HOST), task.name))


def test_two_bridges_one_host_only_confirmed_then_unchanged(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host(HOST)
    task = topology_file(tmp_path)
    result = apply(lab, task)
    assert result.status == Status.CONFIRMED, result.message
    assert events(lab, HOST) == ["staged", "armed", "applied", "confirmed"]
    assert "198.18.0.1/24" in sh(lab, HOST, "ip -o -4 addr show dev br9")
    assert "master br0" in sh(lab, HOST, "ip -o link show dev eth0")
    assert apply(lab, task).status == Status.UNCHANGED


def test_a_cutting_topology_rolls_back_to_the_snapshot(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host(HOST)
    result = apply(lab, topology_file(tmp_path, ["198.51.100.202/30"]))
    assert result.status == Status.ROLLED_BACK, result.message
    assert_at_snapshot(lab, HOST, pristine)


def test_an_address_lost_from_a_moved_bridge_is_drift_and_apply_puts_it_back(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    member = fresh_host(HOST)
    task = topology_file(tmp_path)
    assert apply(lab, task).status == Status.CONFIRMED
    record = sh(lab, HOST, "cat /run/fleetbr/pins/br0.json")
    assert member.addr6 in record and member.addr4 in record, record
    sh(lab, HOST, f"ip -6 addr del {member.addr6} dev br0")
    spec = specs(lab.inventory_dir)[HOST]
    checked = asyncio.run(check_job(spec, rendered(lab, task, HOST)))
    assert checked.status == Status.DRIFTED, checked.message
    assert member.addr6 in checked.message, checked.message
    repaired = apply(lab, task)
    assert repaired.status == Status.CONFIRMED, repaired.message
    assert member.addr6 in sh(lab, HOST, "ip -o -6 addr show dev br0")
    assert asyncio.run(check_job(spec, rendered(lab, task, HOST))).status == Status.IN_SYNC
