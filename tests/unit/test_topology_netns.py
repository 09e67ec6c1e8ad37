"""Topologies this machine's kernel can run for real (no bonding, 8021q or VLAN filtering here):
several bridges in one transaction, one of them host-only, through the runtime tier's steps in
the scratch namespaces of tests/unit/test_steps_netns.py. Bonds and VLANs wait for the VM tier;
until then they run on the kernel model (tests/unit/test_topology_plan.py)."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.changes.bridge.task import TaskTemplate, render_task
from fleetbr.facts.model import Daemons, HostFacts
from fleetbr.facts.parse_topology import parse_topology
from fleetbr.plan import (
    BridgePlan,
    plan_host,
    rollback_script,
    steps_script,
    verify_applied,
    verify_restored,
)
from tests.unit.test_steps_netns import Lab, _ip_json, assert_ok, lab, read_facts

pytestmark = [pytest.mark.lab]
__all__ = ["lab"]  # the fixture, used by name

TASK = """
netfilter: keep
bridges:
  - {name: br0, nic: eth0}
  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}
"""


def facts(lab: Lab) -> HostFacts:
    """read_facts plus the topology facts from the same iproute2 JSON."""
    base = read_facts(lab)
    links, addr = _ip_json(lab.host, "-d", "link", "show"), _ip_json(lab.host, "addr", "show")
    return dataclasses.replace(base, topology=parse_topology(links, addr, None, None, Daemons()))


def topology_plan(lab: Lab, before: HostFacts) -> BridgePlan:
    host = {"name": lab.host, "data": {"nic": "eth0"}}
    task = render_task(TaskTemplate("topology.yaml", TASK), host)
    plan = plan_host(task, before, min_timeout=20, backup_dir=str(lab.backups))
    assert plan.refusal is None, plan.refusal
    return plan


def test_two_bridges_one_host_only_apply_and_roll_back_for_real(lab: Lab) -> None:
    before = facts(lab)
    plan = topology_plan(lab, before)
    assert_ok(lab.run(steps_script(plan.steps)))
    after = facts(lab)
    assert verify_applied(plan, after) == []
    assert lab.ping("198.51.100.1") and lab.ping("2001:db8:100::1")
    br9 = after.bridge("br9")
    assert br9 is not None and br9.ports == ()
    assert [a.cidr for a in after.addresses_of("br9")] == ["198.18.0.1/24"]
    assert topology_plan(lab, after).unchanged
    assert_ok(lab.run(rollback_script(plan.rollback)))
    restored = facts(lab)
    assert verify_restored(before, restored, plan) == []
    assert restored.link("br9") is None and lab.ping("198.51.100.1")


def test_every_prefix_of_the_topology_plan_rolls_back_exactly(lab: Lab) -> None:
    before = facts(lab)
    plan = topology_plan(lab, before)
    for k in range(1, len(plan.steps)):
        assert_ok(lab.run(steps_script(plan.steps[:k])))
        assert_ok(lab.run(rollback_script(plan.rollback)))
        left = verify_restored(before, facts(lab), plan)
        assert left == [], f"after {k} of {len(plan.steps)} steps ({plan.steps[k - 1].description})"
