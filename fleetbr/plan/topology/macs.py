"""The MACs a topology gives its bridges and the bonds it creates: the MAC the host had (the
NIC's own), so a DHCP reservation, a switch's port security and the neighbours' caches still
hold after the cutover and after every reboot."""

from __future__ import annotations

from fleetbr import validate
from fleetbr.changes.bridge.topology import BondSpec, TopoBridge, Topology
from fleetbr.facts.model import HostFacts


def bridge_mac(bridge: TopoBridge, topology: Topology, facts: HostFacts) -> str | None:
    """The bridge's MAC: the task's, else its uplink's (a VLAN device's is its parent's); a bond
    the task names has its first slave's permanent MAC, whatever MAC the bond itself got (at boot
    udev and the daemon race for it); a host-only bridge without one gets the kernel's."""
    if bridge.mac is not None:
        return bridge.mac
    bond = next((b for b in topology.bonds() if b.name == bridge.nic), None)
    if bond is not None:
        return first_slave_mac(bond, facts)
    link = facts.link(bridge.nic) if bridge.nic else None
    return validate.mac_address(link.mac, "uplink mac") if link and link.mac else None


def first_slave_mac(bond: BondSpec, facts: HostFacts) -> str | None:
    """The MAC ``bond``'s first slave has of its own: an enslaved NIC carries the bond's."""
    first = bond.slaves[0]
    for existing in facts.topology.bonds:
        slave = next((s for s in existing.slaves if s.name == first), None)
        if slave is not None and slave.perm_mac:
            return validate.mac_address(slave.perm_mac, "bond slave permanent mac")
    link = facts.link(first)
    return validate.mac_address(link.mac, "bond slave mac") if link and link.mac else None


def bond_macs(topology: Topology, facts: HostFacts) -> dict[str, str | None]:
    """The MAC of every bond the task names: its first slave's own."""
    return {bond.name: first_slave_mac(bond, facts) for bond in topology.bonds()}
