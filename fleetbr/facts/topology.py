"""Typed facts about uplink topologies: bonds, VLAN devices, the bridge VLAN table, DHCP clients.

Parsed by :mod:`fleetbr.facts.parse_topology` from ``ip -j -d link`` (bonds, VLANs), ``bridge -j
vlan show`` and the facts script's ``dhcp`` section. A host without bonds, VLANs or DHCP (or an
older facts script) has empty sections, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OptionValue = str | int | bool
DhcpClientName = Literal["dhclient", "dhcpcd", "udhcpc", "networkd", "networkmanager", "unknown"]


@dataclass(frozen=True)
class BondSlave:
    """A bond's slave: its state (``ACTIVE``/``BACKUP``), MII status (``UP``/``DOWN``), the MAC it
    had before the bond took it, and its 802.3ad partner's port state (empty: not 802.3ad)."""

    name: str
    state: str
    mii_status: str
    perm_mac: str | None = None
    partner_state: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bond:
    """A bond device: mode, options as the task names them (``miimon``, ``lacp_rate``...),
    slaves in kernel order, the active slave, and the 802.3ad partner's MAC."""

    name: str
    mode: str
    options: tuple[tuple[str, OptionValue], ...] = ()
    slaves: tuple[BondSlave, ...] = ()
    active_slave: str | None = None
    partner_mac: str | None = None

    def option(self, key: str) -> OptionValue | None:
        """The value of option ``key`` (None: not reported)."""
        return dict(self.options).get(key)

    @property
    def slave_names(self) -> tuple[str, ...]:
        """The slaves' names."""
        return tuple(slave.name for slave in self.slaves)


@dataclass(frozen=True)
class VlanDevice:
    """A VLAN device: its id, the device it sits on, the protocol (``802.1Q``, ``802.1ad``)."""

    name: str
    vid: int
    parent: str | None
    protocol: str = "802.1Q"


@dataclass(frozen=True)
class PortVlan:
    """One entry of the bridge VLAN table: ``dev`` (a port, or the bridge itself: ``self``)
    carries VLANs ``vid``..``vid_end``; ``pvid`` and ``untagged`` are the entry's flags."""

    dev: str
    vid: int
    vid_end: int
    pvid: bool = False
    untagged: bool = False


@dataclass(frozen=True)
class DhcpLease:
    """A DHCP-configured address on ``dev``: the client that holds it, the address, the seconds
    the lease has left (None: not known) and the client identity (client id or DUID) if read."""

    dev: str
    family: Literal[4, 6]
    cidr: str
    client: DhcpClientName
    expires_in: int | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class TopologyFacts:
    """The host's bonds, VLAN devices, bridge VLAN table, VLAN-filtering bridges and DHCP leases.

    ``vlan_table`` None: not reported (an older script, or ``bridge vlan`` failed or is absent).
    """

    bonds: tuple[Bond, ...] = ()
    vlans: tuple[VlanDevice, ...] = ()
    vlan_table: tuple[PortVlan, ...] | None = None
    vlan_filtering: tuple[str, ...] = ()  # bridges with vlan_filtering 1
    # bridge -> vlan_default_pvid (the VLAN a new port gets untagged; 0: none), as reported
    default_pvids: tuple[tuple[str, int], ...] = ()
    dhcp: tuple[DhcpLease, ...] = ()
    dhcp_clients: tuple[str, ...] = ()  # running client programs (dhclient, dhcpcd, udhcpc)

    def default_pvid(self, bridge: str) -> int | None:
        """``bridge``'s vlan_default_pvid (None: not reported)."""
        return dict(self.default_pvids).get(bridge)

    def bond(self, name: str) -> Bond | None:
        """The bond called ``name``, or None."""
        return next((b for b in self.bonds if b.name == name), None)

    def vlan(self, name: str) -> VlanDevice | None:
        """The VLAN device called ``name``, or None."""
        return next((v for v in self.vlans if v.name == name), None)

    def port_vlans(self, dev: str) -> tuple[PortVlan, ...]:
        """The VLAN table entries of ``dev``."""
        return tuple(v for v in self.vlan_table or () if v.dev == dev)

    def leases_of(self, dev: str) -> tuple[DhcpLease, ...]:
        """The DHCP leases on ``dev``."""
        return tuple(lease for lease in self.dhcp if lease.dev == dev)
