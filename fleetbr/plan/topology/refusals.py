"""Why a host cannot take a topology as it is: the tier's capability first, then the devices (a
missing or wireless NIC, a NIC in another bond or bridge, a name taken by another kind of link,
a live bond or VLAN device with other settings). One line each; nothing changed."""

from __future__ import annotations

from collections.abc import Iterator

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.changes.bridge.topology import BondSpec, TopoBridge, Topology
from fleetbr.facts.model import HostFacts
from fleetbr.plan.topology.capability import capability_refusal


def topology_refusal(task: BridgeTask, topology: Topology, facts: HostFacts) -> str | None:
    """The first reason ``topology`` cannot be planned on this host (None: it can)."""
    reason = capability_refusal(task, topology, facts)
    if reason is not None:
        return reason
    if facts.docker and task.netfilter == "off" and task.docker_conflict == "refuse":
        return (
            f"Docker found ({', '.join(facts.docker)}) but netfilter off would break its "
            "bridge-nf-call-iptables=1; set docker_conflict: accept or netfilter: on"
        )
    return next(_device_problems(topology, facts), None)


def _device_problems(topology: Topology, facts: HostFacts) -> Iterator[str]:
    created = {bond.name for bond in topology.bonds()}
    for bond in topology.bonds():
        yield from _bond_problems(bond, facts)
    for bridge in topology.bridges:
        yield from _bridge_problems(bridge, facts, created)


def _nic_problem(name: str, facts: HostFacts, allowed_master: str) -> str | None:
    link = facts.link(name)
    if link is None:
        names = ", ".join(k.name for k in facts.links) or "none"
        return f"NIC {name} does not exist (links: {names})"
    if link.wireless:
        return f"NIC {name} is wireless; a Wi-Fi client interface cannot be bridged or bonded"
    if link.master is not None and link.master != allowed_master:
        return f"NIC {name} is already a port of {link.master}"
    return None


def _bond_problems(bond: BondSpec, facts: HostFacts) -> Iterator[str]:
    link = facts.link(bond.name)
    have = facts.topology.bond(bond.name)
    if link is not None and have is None:
        yield f"the bond name {bond.name} is taken by a {link.kind} link"
        return
    if have is not None and (have.mode, set(have.slave_names)) != (bond.mode, set(bond.slaves)):
        yield (
            f"bond {bond.name} exists with mode {have.mode} and slaves "
            f"{', '.join(have.slave_names) or 'none'}; fleetbr does not reshape a live bond "
            f"(the task wants {bond.mode} with {', '.join(bond.slaves)})"
        )
        return
    for slave in bond.slaves:
        problem = _nic_problem(slave, facts, bond.name)
        if problem is not None:
            yield problem
            return
        kind = facts.link(slave)
        if kind is not None and kind.kind not in ("ether", "veth"):
            yield f"{slave} is a {kind.kind} link; a bond takes Ethernet NICs"
            return


def _bridge_problems(bridge: TopoBridge, facts: HostFacts, created: set[str]) -> Iterator[str]:
    taken = facts.link(bridge.name)
    if taken is not None and (taken.kind != "bridge" or facts.bridge(bridge.name) is None):
        yield f"the bridge name {bridge.name} is taken by a {taken.kind} link"
        return
    nic = bridge.nic
    if nic is not None and nic not in created:
        master = bridge.name if bridge.vlan is None else ""
        problem = _nic_problem(nic, facts, master)
        if problem is not None:
            yield problem
            return
    if bridge.vlan is not None and nic is not None:
        yield from _vlan_problem(f"{nic}.{bridge.vlan}", nic, bridge.vlan, facts)
    for vif in bridge.vlan_interfaces:
        yield from _vlan_problem(vif.name, bridge.name, vif.vid, facts)


def _vlan_problem(name: str, parent: str, vid: int, facts: HostFacts) -> Iterator[str]:
    link = facts.link(name)
    if link is None:
        return
    have = facts.topology.vlan(name)
    if have is None or (have.parent, have.vid) != (parent, vid):
        what = f"VLAN {have.vid} on {have.parent}" if have else f"a {link.kind} link"
        yield f"{name} exists as {what}, not VLAN {vid} on {parent}"
