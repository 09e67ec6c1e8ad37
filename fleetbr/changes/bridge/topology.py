"""Uplink topologies of a bridge task (issue 17): bonds, VLAN uplinks, several bridges, VLAN-aware
bridges with VLAN interfaces, host-only bridges, DHCP-configured addresses.

The data model only; :mod:`fleetbr.changes.bridge.topology_parse` validates a task's keys into it.
A task that uses none of these keys has no :class:`Topology` (``BridgeTask.topology`` None) and
plans exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BOND_MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)
VLAN_MIN, VLAN_MAX = 1, 4094

# What a topology uses beyond "one NIC into one bridge"; a backend (and the runtime tier)
# declares the features it can express, and the planner refuses a task that needs others.
Feature = Literal[
    "bond_port",  # the uplink is a bond that already exists (facts: link kind bond)
    "bond_create",  # the task creates the bond (bond: block)
    "vlan_uplink",  # the bridge's port is a VLAN device of a NIC or bond (vlan: N)
    "multi_bridge",  # several bridges in one task (bridges: list)
    "vlan_filtering",  # a VLAN-aware bridge (vlan_filtering, vids, pvid)
    "vlan_interface",  # addresses on a VLAN interface of the bridge (br0.10)
    "host_only",  # a bridge with no uplink
    "dhcp",  # addresses: dhcp
]
FEATURES: tuple[Feature, ...] = (
    "bond_port",
    "bond_create",
    "vlan_uplink",
    "multi_bridge",
    "vlan_filtering",
    "vlan_interface",
    "host_only",
    "dhcp",
)

# None: move the uplink's global addresses; "dhcp": the uplink's DHCP client identity, kept;
# (): no address; else these CIDRs.
Addresses = tuple[str, ...] | Literal["dhcp"] | None
OptionValue = str | int | bool


@dataclass(frozen=True)
class BondSpec:
    """A bond the task creates: ``slaves`` (NICs) in ``mode`` with ``options`` (sorted pairs, only
    from the allow-list of :mod:`fleetbr.changes.bridge.bond_options`)."""

    name: str
    slaves: tuple[str, ...]
    mode: str
    options: tuple[tuple[str, OptionValue], ...] = ()

    def option(self, key: str) -> OptionValue | None:
        """The value of option ``key``, None when the task does not set it."""
        return dict(self.options).get(key)


@dataclass(frozen=True)
class DhcpSpec:
    """``addresses: dhcp``: which families the uplink's DHCP client runs for on the bridge."""

    ipv4: bool = True
    ipv6: bool = True


@dataclass(frozen=True)
class VlanInterface:
    """A VLAN interface of a VLAN-aware bridge (``br0.10``) and the addresses it carries."""

    vid: int
    name: str
    addresses: Addresses


@dataclass(frozen=True)
class TopoBridge:
    """One bridge of a topology. ``nic`` None: host-only (no uplink). ``vlan`` puts a VLAN device
    of ``nic`` (``nic.vlan``) into the bridge instead of ``nic`` itself."""

    name: str
    nic: str | None
    bond: BondSpec | None = None
    vlan: int | None = None
    addresses: Addresses = None
    dhcp: DhcpSpec | None = None
    gateway4: str | None = None
    gateway6: str | None = None
    mac: str | None = None
    stp: bool = False
    forward_delay: int = 4
    vlan_filtering: bool = False
    vids: tuple[tuple[int, int], ...] = ()  # inclusive ranges, sorted, merged
    pvid: int | None = None
    vlan_interfaces: tuple[VlanInterface, ...] = ()

    @property
    def port(self) -> str | None:
        """The device that becomes the bridge's port (``eth0``, ``bond0``, ``bond0.20``)."""
        if self.nic is None:
            return None
        return self.nic if self.vlan is None else f"{self.nic}.{self.vlan}"

    def has_vid(self, vid: int) -> bool:
        """True when ``vid`` is one of the bridge's VLANs (``vids``)."""
        return any(lo <= vid <= hi for lo, hi in self.vids)


@dataclass(frozen=True)
class Topology:
    """Every bridge of the task, in the order the task lists them (one transaction)."""

    bridges: tuple[TopoBridge, ...]

    def bonds(self) -> tuple[BondSpec, ...]:
        """The bonds the task creates, each once."""
        found: dict[str, BondSpec] = {}
        for bridge in self.bridges:
            if bridge.bond is not None:
                found.setdefault(bridge.bond.name, bridge.bond)
        return tuple(found.values())

    def features(self, bond_links: frozenset[str] = frozenset()) -> frozenset[Feature]:
        """What the topology needs; ``bond_links`` names the host's existing bonds (facts)."""
        found: set[Feature] = set()
        created = {bond.name for bond in self.bonds()}
        if created:
            found.add("bond_create")
        if len(self.bridges) > 1:
            found.add("multi_bridge")
        for bridge in self.bridges:
            found.update(_bridge_features(bridge, created, bond_links))
        return frozenset(found)


def _bridge_features(
    bridge: TopoBridge, created: set[str], bond_links: frozenset[str]
) -> set[Feature]:
    found: set[Feature] = set()
    if bridge.nic is None:
        found.add("host_only")
    elif bridge.nic in bond_links and bridge.nic not in created:
        found.add("bond_port")
    if bridge.vlan is not None:
        found.add("vlan_uplink")
    if bridge.vlan_filtering:
        found.add("vlan_filtering")
    if bridge.vlan_interfaces:
        found.add("vlan_interface")
    dhcp = bridge.addresses == "dhcp" or any(v.addresses == "dhcp" for v in bridge.vlan_interfaces)
    if dhcp:
        found.add("dhcp")
    return found
