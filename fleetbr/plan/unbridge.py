"""Planning state ``absent``: the mirror image of the cutover (the NIC leaves the bridge)."""

from __future__ import annotations

import dataclasses

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.model import HostFacts
from fleetbr.plan import steps
from fleetbr.plan.guests import using_bridge
from fleetbr.plan.model import BridgePlan, ExpectedState
from fleetbr.plan.moves import (
    address_steps,
    finish,
    global_addresses,
    lost_source,
    movable_routes,
    refused,
    route_steps,
    wanted_addresses,
)


def plan_absent(task: BridgeTask, facts: HostFacts) -> BridgePlan:
    """Steps that take the NIC out of the bridge and delete it; netfilter files stay."""
    spec = task.bridge
    nic_addrs = global_addresses(facts, spec.nic)
    bridge = facts.bridge(spec.name)
    if bridge is None:
        if spec.addresses is not None:
            enough = set(spec.addresses) <= set(nic_addrs)
        else:
            enough = bool(nic_addrs)
        if enough:
            return finish(task, [], [], _absent_expected(task, nic_addrs, facts))
        return refused(
            task,
            f"bridge {spec.name} does not exist and NIC {spec.nic} does not carry the addresses",
        )
    guests = using_bridge(facts, spec.name)
    if guests:
        return refused(
            task,
            f"libvirt guests use bridge {spec.name} ({', '.join(guests)}); move them to another "
            "network first (docs/guests.md)",
        )
    others = [p for p in bridge.ports if p != spec.nic]
    if others:
        return refused(
            task,
            f"bridge {spec.name} has other ports ({', '.join(others)}) that would lose "
            "their network",
        )
    br_addrs = global_addresses(facts, spec.name)
    wanted = wanted_addresses(task, nic_addrs, br_addrs)
    if not wanted:
        return refused(
            task,
            f"neither {spec.name} nor {spec.nic} has a global address and the task lists none: "
            "nothing would keep the host reachable",
        )
    lost = lost_source(facts, spec.name, wanted)
    if lost is not None:
        return refused(task, lost)
    dels, adds, routes = route_steps(task, facts, spec.name, spec.nic, wanted)
    moves, labels = address_steps(facts, spec.name, spec.nic, nic_addrs, wanted)
    cutting = dels + moves + adds
    nic = facts.link(spec.nic)
    if nic is not None and nic.master == spec.name:
        cutting.append(steps.link_nomaster(spec.nic, spec.name))
    br_link = facts.link(spec.name)
    if br_link is not None and br_link.admin_up:
        cutting.append(steps.link_down(spec.name))
    mac = br_link.mac if br_link else None
    cutting.append(steps.bridge_del(spec.name, mac, bridge.stp, bridge.forward_delay))
    expected = dataclasses.replace(
        _absent_expected(task, wanted, facts), routes=tuple(routes), labels=labels
    )
    return finish(task, [], cutting, expected)


def _absent_expected(task: BridgeTask, addrs: list[str], facts: HostFacts) -> ExpectedState:
    spec = task.bridge
    return ExpectedState(
        bridge=spec.name,
        nic=spec.nic,
        bridge_present=False,
        address_dev=spec.nic,
        addresses=tuple(addrs),
        routes=tuple(movable_routes(facts, spec.nic)),
    )
