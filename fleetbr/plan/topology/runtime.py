"""The runtime tier of topologies (``persist: none``): iproute2 steps and their inverses for bonds,
VLAN uplinks, several bridges, VLAN-aware bridges with VLAN interfaces and host-only bridges.

Order (the rollback is the exact reverse, so it works from any point):

1. (not cutting) bridges (and their VLAN filtering, default PVID 0), bonds (down, no slaves),
   VLAN devices (ports, then the bridges' VLAN interfaces), netfilter as for one bridge;
2. the routes through each address source come off (the kernel would drop them with the
   last address anyway);
3. addresses move from each source to its holder (the bridge or a VLAN interface), before any
   NIC goes down: a NIC going down loses its IPv6 addresses, and in the rollback they come back
   only once the NIC is out of its bond and up again;
4. each new bond takes its slaves (each set down first), then goes up;
5. each port joins its bridge, gets its VLAN table entries (and the bridge its own), and the
   ports, bridges and VLAN interfaces go up;
6. the routes go back on, through the holders.

Each device that takes a source's addresses gets the record of what they resolved to
(fleetbr.plan.desired, written in step 1 on the runtime tier only: a backend's files are the
record there), so a plan again finds an address lost from it or a default route added to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetbr.backends.model import BackendRefusal
from fleetbr.changes.bridge.task import BridgeSpec, BridgeTask
from fleetbr.changes.bridge.topology import BondSpec, TopoBridge, Topology
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan
from fleetbr.plan import steps
from fleetbr.plan.desired import Pin, make_pin, read_holder_pin, record_steps, recorded_source
from fleetbr.plan.model import BridgePlan, ExpectedState, Step
from fleetbr.plan.moves import (
    address_steps,
    finish,
    global_addresses,
    lost_source,
    refused,
    route_steps,
    wanted_addresses,
)
from fleetbr.plan.netfilter import netfilter_steps
from fleetbr.plan.topology import steps as tsteps
from fleetbr.plan.topology.capability import tier
from fleetbr.plan.topology.dhcp import kept_leases
from fleetbr.plan.topology.expect import BondExpect, TopologyExpect, VlanExpect
from fleetbr.plan.topology.macs import bridge_mac, first_slave_mac
from fleetbr.plan.topology.persist import topology_persist
from fleetbr.plan.topology.refusals import topology_refusal
from fleetbr.plan.topology.vlan_table import table_steps


@dataclass
class _Plan:
    """The steps of each phase and what is expected, filled bridge by bridge."""

    setup: list[Step] = field(default_factory=list)
    route_dels: list[Step] = field(default_factory=list)
    moves: list[Step] = field(default_factory=list)
    enslave: list[Step] = field(default_factory=list)
    join: list[Step] = field(default_factory=list)
    ups: list[Step] = field(default_factory=list)
    route_adds: list[Step] = field(default_factory=list)
    expects: list[ExpectedState] = field(default_factory=list)
    bonds: list[BondExpect] = field(default_factory=list)
    vlans: list[VlanExpect] = field(default_factory=list)
    filtering: list[tuple[str, bool]] = field(default_factory=list)
    table: list[PortVlan] = field(default_factory=list)
    table_devs: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # holder -> its addresses' source
    leases: list[tuple[str, str]] = field(default_factory=list)  # (holder, cidr) kept by DHCP
    pins: list[Pin] = field(default_factory=list)  # the records of the holders with a source


@dataclass(frozen=True)
class _Holder:
    """Where a bridge's addresses go (the bridge, or a VLAN interface) and where they come from
    (``source``; "" none), with the task's word for them (None move, () none, or a list)."""

    dev: str
    source: str
    addresses: tuple[str, ...] | None
    mac: str | None = None  # the bridge's
    dhcp: bool = False  # addresses: dhcp (the runtime steps move the leases as for move)


def plan_runtime(
    task: BridgeTask, topology: Topology, facts: HostFacts, backup_dir: str | None = None
) -> BridgePlan:
    """The runtime plan of ``topology`` (refused with the reason when the host does not fit),
    wrapped in its tier's backend files and apply (fleetbr.plan.topology.persist)."""
    reason = topology_refusal(task, topology, facts)
    if reason is not None:
        return refused(task, reason)
    out = _Plan()
    for bridge in topology.bridges:
        source = address_source(bridge, topology, facts)
        ra_from = source if facts.link(source) is not None else None
        _setup_bridge(bridge, bridge_mac(bridge, topology, facts), facts, out, ra_from)
    for bond in topology.bonds():
        _setup_bond(bond, facts, out)
    for bridge in topology.bridges:
        _setup_vlans(bridge, facts, out)
    expected_nf: dict[str, int] = {}
    files: dict[str, str] = {}
    if task.netfilter != "keep":
        nf, expected_nf, files = netfilter_steps(facts, int(task.netfilter == "on"), None)
        out.setup += nf
    problem = _all_moves(task, topology, facts, out)
    if problem is not None:
        return refused(task, problem)
    try:
        out.setup += _records(task, topology, facts, out.pins, (files, backup_dir))
    except BackendRefusal as exc:
        return refused(task, str(exc))
    for bond in topology.bonds():
        _enslave(bond, facts, out)
    for bridge in topology.bridges:
        _join(bridge, facts, out)
    if not any(e.addresses for e in out.expects) and not _kept_elsewhere(topology, facts, out):
        return refused(
            task,
            "no bridge or VLAN interface gets an address and nothing else keeps one: "
            "nothing would keep the host reachable",
        )
    try:
        return _assemble(task, out, expected_nf, files, (topology, facts, backup_dir))
    except BackendRefusal as exc:
        return refused(task, str(exc))


def _records(
    task: BridgeTask,
    topology: Topology,
    facts: HostFacts,
    pins: list[Pin],
    where: tuple[dict[str, str], str | None],
) -> list[Step]:
    """The steps that write the holders' records on the runtime tier (none on a backend's)."""
    if tier(task, topology, facts) != "none":
        return []
    return [step for pin in pins for step in record_steps(facts, pin, *where)]


def _assemble(
    task: BridgeTask,
    out: _Plan,
    expected_nf: dict[str, int],
    files: dict[str, str],
    where: tuple[Topology, HostFacts, str | None],
) -> BridgePlan:
    first, *more = out.expects
    expected = dataclasses.replace(
        first,
        bridge_nf=expected_nf,
        files=files,
        more=tuple(more),
        topology=TopologyExpect(
            bonds=tuple(out.bonds),
            vlans=tuple(out.vlans),
            filtering=tuple(out.filtering),
            table=tuple(out.table),
            table_devs=tuple(dict.fromkeys(out.table_devs)),
            leases=tuple(out.leases),
        ),
    )
    persist = topology_persist(task, *where[:2], expected, sources=out.sources, backup_dir=where[2])
    expected = dataclasses.replace(
        expected, config_files=persist.files, managers=persist.managers, file_meta=persist.meta
    )
    cutting = out.route_dels + out.moves + persist.hold + out.enslave + out.join + out.ups
    cutting += out.route_adds
    plan = finish(task, persist.head + out.setup, cutting + persist.tail, expected)
    routes = [r for e in out.expects for r in e.routes if r.is_default and r.gateway]
    probes = tuple(dict.fromkeys(str(r.gateway) for r in sorted(routes, key=lambda r: r.family)))
    return dataclasses.replace(plan, probes=probes)


def _kept_elsewhere(topology: Topology, facts: HostFacts, out: _Plan) -> bool:
    """Some device the task does not touch keeps a global address."""
    touched = {d for e in out.expects for d in (e.nic, e.bridge, e.address_dev)}
    touched |= {s for b in topology.bonds() for s in b.slaves}
    return any(a.scope == "global" and a.dev not in touched and a.dev != "lo"
               for a in facts.addresses)  # fmt: skip


def _setup_bridge(
    bridge: TopoBridge, mac: str | None, facts: HostFacts, out: _Plan, ra_from: str | None
) -> None:
    current = facts.bridge(bridge.name)
    new = (mac, bridge.stp, bridge.forward_delay)
    if current is None:
        out.setup.append(steps.bridge_add(bridge.name, *new, ra_from=ra_from))
    else:
        link = facts.link(bridge.name)
        old_mac = link.mac if link else None
        delay = bridge.forward_delay if bridge.stp else None
        have = (
            old_mac if mac else None,
            current.stp,
            current.forward_delay if bridge.stp else None,
        )
        if have != (mac, bridge.stp, delay):
            old = (old_mac, current.stp, current.forward_delay)
            out.setup.append(steps.bridge_set(bridge.name, new, old))
    filtering = bridge.name in facts.topology.vlan_filtering
    old_pvid = facts.topology.default_pvid(bridge.name)
    old_pvid = 1 if old_pvid is None else old_pvid  # the kernel's default
    pvid = 0 if bridge.vlan_filtering else old_pvid
    changes = current is None or (bridge.vlan_filtering, pvid) != (filtering, old_pvid)
    if changes and (bridge.vlan_filtering or filtering):
        out.setup.append(
            tsteps.bridge_vlan_filtering(
                bridge.name, on=bridge.vlan_filtering, default_pvid=pvid, old=(filtering, old_pvid)
            )
        )
    out.filtering.append((bridge.name, bridge.vlan_filtering))


def _setup_bond(bond: BondSpec, facts: HostFacts, out: _Plan) -> None:
    if facts.topology.bond(bond.name) is None:
        out.setup.append(tsteps.bond_add(bond, first_slave_mac(bond, facts)))
    out.bonds.append(BondExpect(bond.name, bond.mode, bond.options, bond.slaves))


def _setup_vlans(bridge: TopoBridge, facts: HostFacts, out: _Plan) -> None:
    wanted: list[tuple[str, str, int]] = []
    if bridge.vlan is not None and bridge.nic is not None and bridge.port is not None:
        wanted.append((bridge.port, bridge.nic, bridge.vlan))
    wanted += [(v.name, bridge.name, v.vid) for v in bridge.vlan_interfaces]
    for name, parent, vid in wanted:
        if facts.topology.vlan(name) is None:
            out.setup.append(tsteps.vlan_add(name, parent, vid))
        out.vlans.append(VlanExpect(name, parent, vid))


def address_holders(bridge: TopoBridge, source: str) -> list[_Holder]:
    """The bridge and its VLAN interfaces, each with its addresses; one takes the source's: the
    one that moves them (or keeps them by DHCP), else the first that lists addresses (a list
    replaces them)."""
    words: list[tuple[str, tuple[str, ...] | None]] = []
    dhcp = set()
    for dev, word in ((bridge.name, bridge.addresses),
                      *((v.name, v.addresses) for v in bridge.vlan_interfaces)):  # fmt: skip
        if word == "dhcp":
            dhcp.add(dev)
        words.append((dev, None if word == "dhcp" else word))
    taker = next((d for d, w in words if w is None), None)
    taker = taker or next((d for d, w in words if w), None)
    return [
        _Holder(dev, source if dev == taker else "", word, dhcp=dev in dhcp) for dev, word in words
    ]


def address_source(bridge: TopoBridge, topology: Topology, facts: HostFacts) -> str:
    """The device whose addresses the bridge takes ("" none): a new bond's slave that has some,
    the VLAN port if it exists already, a VLAN device of the NIC for a VLAN interface's VLAN,
    else the NIC (or existing bond)."""
    bond = next((b for b in topology.bonds() if b.name == bridge.nic), None)
    if bond is not None and facts.link(bond.name) is None:
        if bridge.vlan is not None and not _moves(bridge):
            return ""  # the new bond keeps them, untagged (_bond_keeps_addresses)
        slave = next((s for s in bond.slaves if global_addresses(facts, s)), "")
        return slave or _nic_vlan(bridge, bond.slaves, facts)
    if bridge.vlan is not None:
        port = bridge.port or ""
        return port if facts.link(port) is not None else ""
    nic = bridge.nic or ""
    if nic and not global_addresses(facts, nic):
        return _nic_vlan(bridge, (nic,), facts) or nic
    return nic


def _nic_vlan(bridge: TopoBridge, nics: Sequence[str], facts: HostFacts) -> str:
    """An existing VLAN device of one of ``nics`` that has addresses ("" none): the one of a
    VLAN interface's VLAN (``eth0.10`` for ``br0.10``: management on a VLAN of the NIC moves to
    the same VLAN of the bridge), else, when a VLAN interface says ``move``, the only one (the
    management VLAN renumbered: ``eth0.10`` to ``br0.20``)."""
    for nic in nics:
        for vif in bridge.vlan_interfaces:
            old = facts.topology.vlan(f"{nic}.{vif.vid}")
            if old is not None and global_addresses(facts, old.name):
                return old.name
    if not any(v.addresses is None for v in bridge.vlan_interfaces):
        return ""
    held = [v.name for v in facts.topology.vlans
            if v.parent in nics and global_addresses(facts, v.name)]  # fmt: skip
    return held[0] if len(held) == 1 else ""


def _all_moves(task: BridgeTask, topology: Topology, facts: HostFacts, out: _Plan) -> str | None:
    """Every bridge's address moves, then those a new bond keeps; why not (None: fine)."""
    for bridge in topology.bridges:
        problem = _move_addresses(task, bridge, topology, facts, out)
        if problem is not None:
            return problem
    for bond in topology.bonds():
        problem = _bond_keeps_addresses(task, bond, topology, facts, out)
        if problem is not None:
            return problem
    return _stranded_vlan(topology, facts, set(out.sources.values()))


def _stranded_vlan(topology: Topology, facts: HostFacts, moved: set[str]) -> str | None:
    """A VLAN device with addresses on a NIC that becomes a new bond's slave, whose addresses no
    bridge moves: refused. Linux still delivers the VLAN to a VLAN device of the bond's active
    slave, so such a host is confirmed (seen on the VM tier) with its management on a device
    that stops answering once another slave is active."""
    for bond in topology.bonds():
        if facts.link(bond.name) is not None:
            continue
        for vlan in facts.topology.vlans:
            if vlan.parent in bond.slaves and vlan.name not in moved:
                held = global_addresses(facts, vlan.name)
                if held:
                    return (
                        f"{vlan.name} (VLAN {vlan.vid} on {vlan.parent}) holds {', '.join(held)} "
                        f"and {vlan.parent} becomes a slave of the new bond {bond.name}, but no "
                        f"bridge takes these addresses: give a bridge a VLAN interface for VLAN "
                        f"{vlan.vid} (vlan_interfaces) to move them, or move them off "
                        f"{vlan.name} first"
                    )
    return None


def _moves(bridge: TopoBridge) -> bool:
    """The bridge or one of its VLAN interfaces says ``addresses: move``."""
    return bridge.addresses is None or any(v.addresses is None for v in bridge.vlan_interfaces)


def _bond_keeps_addresses(
    task: BridgeTask, bond: BondSpec, topology: Topology, facts: HostFacts, out: _Plan
) -> str | None:
    """A new bond that only VLAN bridges use (no bridge takes it as its port) holds its slave's
    addresses and routes itself, untagged, unless one of those bridges moves them: the host
    stays reachable where it was. On a plan again its record says what it holds."""
    over = [b for b in topology.bridges if b.nic == bond.name]
    if any(b.port == bond.name for b in topology.bridges) or not over:
        return None
    if facts.link(bond.name) is None:
        source = next((s for s in bond.slaves if global_addresses(facts, s)), "")
    else:  # a plan again: the slave the bond's record names (what the apply moved)
        source = recorded_source(facts, bond.name) or ""
        source = source if source in bond.slaves else ""
    if not source or source in out.sources.values():
        return None
    holder = _Holder(bond.name, source, None, bridge_mac(over[0], topology, facts))
    out.sources[bond.name] = source
    return _move_to(task, over[0], holder, facts, out)


def _view(task: BridgeTask, bridge: TopoBridge, holder: _Holder) -> BridgeTask:
    """``task`` as if it were the one-bridge task of ``holder`` (for the shared move helpers)."""
    spec = BridgeSpec(
        name=holder.dev, state="present", nic=holder.source, addresses=holder.addresses,
        gateway4=bridge.gateway4, gateway6=bridge.gateway6, mac=None, stp=bridge.stp,
        forward_delay=bridge.forward_delay,
    )  # fmt: skip
    return dataclasses.replace(task, bridge=spec, topology=None)


def _move_addresses(
    task: BridgeTask, bridge: TopoBridge, topology: Topology, facts: HostFacts, out: _Plan
) -> str | None:
    source = address_source(bridge, topology, facts)
    holders = address_holders(bridge, source)
    out.sources |= {h.dev: h.source for h in holders}
    if source and global_addresses(facts, source) and all(h.source == "" for h in holders):
        return (
            f"{source} carries addresses ({', '.join(global_addresses(facts, source))}) and the "
            f"task gives them to no interface of {bridge.name}: list them, or use addresses: move"
        )
    mac = bridge_mac(bridge, topology, facts)
    for holder in holders:
        problem = _move_to(task, bridge, dataclasses.replace(holder, mac=mac), facts, out)
        if problem is not None:
            return problem
    if source and source != bridge.port and facts.topology.vlan(source) is not None:
        old = facts.topology.vlan(source)
        link = facts.link(source)
        assert old is not None and old.parent is not None
        out.moves.append(
            tsteps.vlan_del(
                source, old.parent, old.vid, old.protocol, was_up=bool(link and link.admin_up)
            )
        )
    return None


def _records_move(holder: _Holder) -> bool:
    """``holder`` takes its source's addresses by ``move``: what they resolve to is recorded."""
    return bool(holder.source) and holder.addresses is None and not holder.dhcp


def _move_to(
    task: BridgeTask, bridge: TopoBridge, holder: _Holder, facts: HostFacts, out: _Plan
) -> str | None:
    view = _view(task, bridge, holder)
    src, dst = holder.source, holder.dev
    if holder.dhcp:
        kept, problem = kept_leases(bridge, holder.source, dst, facts)
        if problem is not None:
            return problem
        out.leases += [(dst, cidr) for cidr in kept]
    have = global_addresses(facts, dst)
    pin = read_holder_pin(facts, dst, src) if _records_move(holder) else None
    wanted = [] if holder.addresses == () else wanted_addresses(
        view, have, global_addresses(facts, src) if src else [], pin.cidrs if pin else None
    )  # fmt: skip
    lost = lost_source(facts, src, wanted) if src else None
    if lost is not None:
        return lost
    recorded = pin.routes if pin else None
    dels, adds, routes = route_steps(view, facts, src, dst, wanted, recorded=recorded)
    moves, labels = address_steps(
        facts, src, dst, have, wanted, recorded=pin.addresses if pin else ()
    )
    if pin is not None:
        out.pins.append(pin)
    elif _records_move(holder) and wanted:
        out.pins.append(make_pin(dst, src, facts, cidrs=wanted, labels=labels, routes=routes))
    out.route_dels += dels
    out.moves += moves
    out.route_adds += adds
    out.expects.append(
        ExpectedState(
            bridge=bridge.name,
            nic=bridge.port or "",
            bridge_present=True,
            address_dev=dst,
            addresses=tuple(wanted),
            labels=labels,
            routes=tuple(routes),
            stp=bridge.stp,
            forward_delay=bridge.forward_delay,
            mac=holder.mac,
            ports=(bridge.port,) if bridge.port else (),
        )
    )
    return None


def _enslave(bond: BondSpec, facts: HostFacts, out: _Plan) -> None:
    for slave in bond.slaves:
        link = facts.link(slave)
        if link is not None and link.master == bond.name:
            continue
        out.enslave.append(
            tsteps.bond_enslave(
                slave,
                bond.name,
                was_up=bool(link and link.admin_up),
                addrgenmode=link.addrgenmode if link else None,
            )
        )
    link = facts.link(bond.name)
    if link is None or not link.admin_up:
        out.enslave.append(steps.link_up(bond.name, undo=True))


def _join(bridge: TopoBridge, facts: HostFacts, out: _Plan) -> None:
    port = bridge.port
    if port is not None:
        link = facts.link(port)
        if bridge.vlan is not None and (link is None or not link.admin_up):
            out.join.append(steps.link_up(port, undo=True))
        if link is None or link.master != bridge.name:
            out.join.append(steps.link_master(port, bridge.name))
    if bridge.vlan_filtering:
        entries, adds = table_steps(bridge, facts)
        out.table += entries
        out.table_devs += [d for d in (bridge.port, bridge.name) if d]
        out.join += adds
    for dev in (bridge.name, *(v.name for v in bridge.vlan_interfaces)):
        link = facts.link(dev)
        if link is None or not link.admin_up:
            out.ups.append(steps.link_up(dev, undo=True))
