"""Topologies through the whole transaction on the netns lab (SSH, stage, arm, confirm, the
host's own rollback): several bridges, one of them host-only. This machine's kernel has no
bonding, 8021q or bridge VLAN filtering: those topologies wait for the VM tier."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from fleetbr.changes.bridge.change import apply_host
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
