"""Compare a topology's expected bonds, VLAN devices, VLAN filtering and VLAN table with a host's
facts (part of :func:`fleetbr.plan.diff.compare`: plan, check and confirm ask the same)."""

from __future__ import annotations

from collections.abc import Iterator

from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan
from fleetbr.plan.model import Difference
from fleetbr.plan.topology.dhcp import canon
from fleetbr.plan.topology.expect import BondExpect, TopologyExpect


def compare_topology(exp: TopologyExpect | None, facts: HostFacts) -> Iterator[Difference]:
    """Every way ``facts`` differs from ``exp`` (nothing for None)."""
    if exp is None:
        return
    for bond in exp.bonds:
        yield from _bond(bond, facts)
    for vlan in exp.vlans:
        have = facts.topology.vlan(vlan.name)
        got = None if have is None else f"{have.vid} on {have.parent}"
        if got != f"{vlan.vid} on {vlan.parent}":
            text = f"{vlan.name} is not VLAN {vlan.vid} on {vlan.parent} ({got or 'absent'})"
            yield Difference(f"vlan.{vlan.name}", f"{vlan.vid} on {vlan.parent}", got, text)
    for bridge, on in exp.filtering:
        have_on = bridge in facts.topology.vlan_filtering
        if have_on != on:
            text = f"bridge {bridge} VLAN filtering is {_onoff(have_on)}, expected {_onoff(on)}"
            yield Difference(f"bridge.{bridge}.vlan_filtering", on, have_on, text)
        pvid = facts.topology.default_pvid(bridge)
        if on and pvid not in (None, 0):  # 0: no VLAN the task does not list on a new port
            text = f"bridge {bridge} vlan_default_pvid is {pvid}, expected 0"
            yield Difference(f"bridge.{bridge}.vlan_default_pvid", 0, pvid, text)
    yield from _table(exp, facts)
    yield from _leases(exp, facts)


def _leases(exp: TopologyExpect, facts: HostFacts) -> Iterator[Difference]:
    """Each kept lease is a DHCP lease on its device now (the daemon's client renewed it there);
    the same address put there by the runtime steps alone, or another lease, is not."""
    for dev, cidr in exp.leases:
        have = sorted(canon(lease.cidr) for lease in facts.topology.leases_of(dev))
        if cidr not in have:
            got = ", ".join(have) or None
            text = f"{dev} does not hold the DHCP lease {cidr} (its leases: {got or 'none'})"
            yield Difference(f"dhcp.{dev}", cidr, got, text)


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _bond(bond: BondExpect, facts: HostFacts) -> Iterator[Difference]:
    have = facts.topology.bond(bond.name)
    if have is None:
        yield Difference(f"bond.{bond.name}", bond.mode, None, f"bond {bond.name} does not exist")
        return
    if have.mode != bond.mode:
        text = f"bond {bond.name} mode is {have.mode}, expected {bond.mode}"
        yield Difference(f"bond.{bond.name}.mode", bond.mode, have.mode, text)
    for key, value in bond.options:
        got = have.option(key)
        if got != value:
            text = f"bond {bond.name} {key} is {got}, expected {value}"
            yield Difference(f"bond.{bond.name}.{key}", value, got, text)
    if set(have.slave_names) != set(bond.slaves):
        want, got_slaves = " ".join(bond.slaves), " ".join(have.slave_names) or None
        text = f"bond {bond.name} slaves are {got_slaves or 'none'}, expected {want}"
        yield Difference(f"bond.{bond.name}.slaves", want, got_slaves, text)


def expand(entries: tuple[PortVlan, ...] | list[PortVlan]) -> dict[tuple[str, int], str]:
    """(dev, vid) -> its flags ("", "pvid", "untagged", "pvid untagged") for every VLAN."""
    out: dict[tuple[str, int], str] = {}
    for e in entries:
        flags = " ".join(f for f, on in (("pvid", e.pvid), ("untagged", e.untagged)) if on)
        for vid in range(e.vid, e.vid_end + 1):
            out[(e.dev, vid)] = flags
    return out


def _table(exp: TopologyExpect, facts: HostFacts) -> Iterator[Difference]:
    if not exp.table_devs:
        return
    if facts.topology.vlan_table is None:
        text = "the host did not report its bridge VLAN table (bridge -j vlan show)"
        yield Difference("bridge_vlans", "reported", None, text)
        return
    devs = set(exp.table_devs)
    want = expand(exp.table)
    have = expand([e for e in facts.topology.vlan_table if e.dev in devs])
    for key in sorted(want.keys() | have.keys()):
        if want.get(key) != have.get(key):
            dev, vid = key
            text = (
                f"VLAN {vid} on {dev} is {_describe(have.get(key))}, "
                f"expected {_describe(want.get(key))}"
            )
            yield Difference(f"bridge_vlans.{dev}", want.get(key), have.get(key), text)


def _describe(flags: str | None) -> str:
    if flags is None:
        return "absent"
    return flags or "tagged"
