"""What a topology plan expects beyond each bridge's ExpectedState: bonds, VLAN devices, VLAN
filtering and the bridge VLAN table. Plain data (fleetbr.plan.model holds it)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetbr.facts.topology import PortVlan

OptionValue = str | int | bool


@dataclass(frozen=True)
class BondExpect:
    """A bond with this mode, these options (as the task set them) and exactly these slaves."""

    name: str
    mode: str
    options: tuple[tuple[str, OptionValue], ...]
    slaves: tuple[str, ...]


@dataclass(frozen=True)
class VlanExpect:
    """A VLAN device ``name``: VLAN ``vid`` on ``parent``."""

    name: str
    parent: str
    vid: int
    protocol: str = "802.1Q"


@dataclass(frozen=True)
class TopologyExpect:
    """Bonds and VLAN devices that must exist, each bridge's VLAN filtering, for every device in
    ``table_devs`` exactly the VLAN ``table`` entries listed for it, and the DHCP ``leases``
    (device, CIDR) a device must hold (``addresses: dhcp``: the very leases its uplink had)."""

    bonds: tuple[BondExpect, ...] = ()
    vlans: tuple[VlanExpect, ...] = ()
    filtering: tuple[tuple[str, bool], ...] = ()
    table: tuple[PortVlan, ...] = ()
    table_devs: tuple[str, ...] = ()
    leases: tuple[tuple[str, str], ...] = ()
