"""Validate the topology keys of a task (``bond``, ``vlan``, ``bridges``, ``vlan_filtering``,
``vids``, ``pvid``, ``vlan_interfaces``, ``host_only``, ``addresses: dhcp``) into
:class:`~fleetbr.changes.bridge.topology.Topology`.

Every problem is one :class:`~fleetbr.errors.ValidationError` naming the field; names of
generated devices (``bond0.20``, ``br0.10``) are checked against IFNAMSIZ like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetbr import validate
from fleetbr.changes.bridge.bond_options import bond_options
from fleetbr.changes.bridge.topology import (
    BOND_MODES,
    VLAN_MAX,
    VLAN_MIN,
    Addresses,
    BondSpec,
    DhcpSpec,
    TopoBridge,
    Topology,
    VlanInterface,
)
from fleetbr.errors import ValidationError
from fleetbr.validate import label, show

# Keys of a bridge section that make the task a topology (the others are BridgeSpec's).
TOPOLOGY_KEYS = frozenset(
    {"bond", "vlan", "vlan_filtering", "vids", "pvid", "vlan_interfaces", "host_only", "dhcp"}
)
BRIDGES_MAX = 64
_BOND_KEYS = frozenset({"name", "slaves", "mode", "options"})
_VLAN_IF_KEYS = frozenset({"vid", "addresses"})
_DHCP_KEYS = frozenset({"ipv4", "ipv6"})

# task.py's parser of an address list (``move`` or CIDRs), for the keys that share its syntax
AddressParser = Callable[[object, str], tuple[str, ...] | None]


def is_topology(raw: dict[str, Any]) -> bool:
    """True when a bridge section uses a topology key (or ``addresses: dhcp``/``none``)."""
    return bool(TOPOLOGY_KEYS & set(raw)) or raw.get("addresses") in ("dhcp", "none")


def _mapping(value: object, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected a mapping, got {show(value)}")
    unknown = sorted(label(k) for k in value if k not in allowed)
    if unknown:
        raise ValidationError(
            f"{field}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    return value


def vlan_id(value: object, field: str) -> int:
    """A VLAN id, 1..4094."""
    return validate.integer(value, field, VLAN_MIN, VLAN_MAX)


def generated_name(base: str, vid: int, field: str) -> str:
    """``base.vid``, checked as an interface name (at most 15 characters)."""
    return validate.interface_name(f"{base}.{vid}", field)


def bond_spec(value: object, field: str) -> BondSpec:
    """``bond: {name, slaves: [NIC, ...], mode, options: {...}}``."""
    raw = _mapping(value, field, _BOND_KEYS)
    if "name" not in raw or "slaves" not in raw:
        raise ValidationError(f"{field}: name and slaves are required")
    name = validate.interface_name(raw["name"], f"{field}.name")
    slaves = raw["slaves"]
    if not isinstance(slaves, list) or not slaves:
        raise ValidationError(f"{field}.slaves: expected a list of NICs, got {show(slaves)}")
    names = tuple(validate.interface_name(s, f"{field}.slaves[{i}]") for i, s in enumerate(slaves))
    if len(set(names)) != len(names):
        raise ValidationError(f"{field}.slaves: a NIC is listed twice")
    if name in names:
        raise ValidationError(f"{field}.slaves: the bond {name} cannot be its own slave")
    mode = validate.choice(raw.get("mode", "active-backup"), f"{field}.mode", BOND_MODES)
    options = bond_options(raw.get("options"), f"{field}.options", mode, names)
    return BondSpec(name=name, slaves=names, mode=mode, options=options)


def vid_ranges(value: object, field: str) -> tuple[tuple[int, int], ...]:
    """``vids: [10, 20, "100-199"]``: sorted, merged inclusive ranges."""
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f'{field}: expected a list of VLAN ids or ranges (10, "100-199"), got {show(value)}'
        )
    ranges = sorted(_vid_range(item, f"{field}[{i}]") for i, item in enumerate(value))
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _vid_range(item: object, field: str) -> tuple[int, int]:
    if isinstance(item, str) and "-" in item:
        lo_text, _, hi_text = item.partition("-")
        if not (lo_text.strip().isdigit() and hi_text.strip().isdigit()):
            raise ValidationError(f"{field}: {show(item)} is not a range like 100-199")
        lo, hi = vlan_id(int(lo_text), field), vlan_id(int(hi_text), field)
        if lo > hi:
            raise ValidationError(f"{field}: {item} is an empty range")
        return lo, hi
    vid = vlan_id(item, field)
    return vid, vid


def topo_addresses(value: object, field: str, common: AddressParser) -> Addresses:
    """``move`` (None), ``dhcp``, ``none`` (no address) or a list of CIDRs (``common``)."""
    if value == "dhcp":
        return "dhcp"
    if value == "none":
        return ()
    if value == "move":
        return None
    try:
        found = common(value, field)
    except ValidationError as exc:
        raise ValidationError(f"{exc} (or dhcp, none)") from None
    return tuple(found) if found is not None else None


def _dhcp(value: object, field: str, addresses: Addresses) -> DhcpSpec | None:
    if value is None:
        return DhcpSpec() if addresses == "dhcp" else None
    if addresses != "dhcp":
        raise ValidationError(f"{field}: only with addresses: dhcp")
    raw = _mapping(value, field, _DHCP_KEYS)
    spec = DhcpSpec(
        ipv4=validate.boolean(raw.get("ipv4", True), f"{field}.ipv4"),
        ipv6=validate.boolean(raw.get("ipv6", True), f"{field}.ipv6"),
    )
    if not (spec.ipv4 or spec.ipv6):
        raise ValidationError(f"{field}: at least one of ipv4, ipv6 must be true")
    return spec


def _vlan_interfaces(
    value: object, field: str, bridge: str, common: AddressParser
) -> tuple[VlanInterface, ...]:
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{field}: expected a list of {{vid, addresses}}, got {show(value)}")
    out: list[VlanInterface] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        raw = _mapping(item, where, _VLAN_IF_KEYS)
        if "vid" not in raw:
            raise ValidationError(f"{where}.vid: required")
        vid = vlan_id(raw["vid"], f"{where}.vid")
        if any(v.vid == vid for v in out):
            raise ValidationError(f"{where}.vid: VLAN {vid} is listed twice")
        name = generated_name(bridge, vid, f"{where} (the interface {bridge}.{vid})")
        addresses = topo_addresses(raw.get("addresses", "move"), f"{where}.addresses", common)
        out.append(VlanInterface(vid=vid, name=name, addresses=addresses))
    return tuple(out)


def topo_bridge(raw: dict[str, Any], field: str, base: dict[str, Any]) -> TopoBridge:
    """One bridge of a topology; ``base`` holds its BridgeSpec keys already validated by task.py
    (name, nic (None: host-only), addresses parser, gateways, mac, stp, forward_delay)."""
    name: str = base["name"]
    host_only = validate.boolean(raw.get("host_only", False), f"{field}.host_only")
    bond = bond_spec(raw["bond"], f"{field}.bond") if "bond" in raw else None
    nic = _uplink(raw, field, base.get("nic"), bond, host_only)
    vlan = vlan_id(raw["vlan"], f"{field}.vlan") if "vlan" in raw else None
    if vlan is not None and nic is not None:
        generated_name(nic, vlan, f"{field}.vlan (the interface {nic}.{vlan})")
    common = base["addresses_parser"]
    addresses = topo_addresses(raw.get("addresses", "move"), f"{field}.addresses", common)
    if host_only and addresses is None:
        addresses = ()  # nothing to move from
    bridge = TopoBridge(
        name=name,
        nic=nic,
        bond=bond,
        vlan=vlan,
        addresses=addresses,
        dhcp=_dhcp(raw.get("dhcp"), f"{field}.dhcp", addresses),
        gateway4=base["gateway4"],
        gateway6=base["gateway6"],
        mac=base["mac"],
        stp=base["stp"],
        forward_delay=base["forward_delay"],
        **_filtering(raw, field, name, common),
    )
    _check_bridge(bridge, field)
    return bridge


def _uplink(
    raw: dict[str, Any], field: str, nic: str | None, bond: BondSpec | None, host_only: bool
) -> str | None:
    if host_only:
        if "nic" in raw or bond is not None or "vlan" in raw:
            raise ValidationError(f"{field}.host_only: a host-only bridge has no nic, bond or vlan")
        return None
    if bond is not None:
        if "nic" in raw and raw["nic"] != bond.name:
            raise ValidationError(
                f"{field}.nic: {show(raw['nic'])} is not the bond {bond.name} the task creates"
            )
        return bond.name
    if nic is None:
        raise ValidationError(f"{field}.nic: required (or set the host data key nic)")
    return nic


def _filtering(raw: dict[str, Any], field: str, name: str, common: AddressParser) -> dict[str, Any]:
    on = validate.boolean(raw.get("vlan_filtering", False), f"{field}.vlan_filtering")
    for key in ("vids", "pvid", "vlan_interfaces"):
        if key in raw and not on:
            raise ValidationError(f"{field}.{key}: only with vlan_filtering: true")
    if not on:
        return {}
    pvid = raw.get("pvid", 1)
    return {
        "vlan_filtering": True,
        "vids": vid_ranges(raw["vids"], f"{field}.vids") if "vids" in raw else (),
        "pvid": None if pvid in (None, "none") else vlan_id(pvid, f"{field}.pvid"),
        "vlan_interfaces": (
            _vlan_interfaces(raw["vlan_interfaces"], f"{field}.vlan_interfaces", name, common)
            if "vlan_interfaces" in raw
            else ()
        ),
    }


def _check_bridge(bridge: TopoBridge, field: str) -> None:
    if bridge.vlan_filtering and bridge.vlan is not None:
        raise ValidationError(
            f"{field}.vlan: a VLAN-aware bridge takes the trunk itself (leave vlan out and list "
            "the VLANs in vids)"
        )
    for vif in bridge.vlan_interfaces:
        if not bridge.has_vid(vif.vid) and vif.vid != bridge.pvid:
            raise ValidationError(
                f"{field}.vlan_interfaces: VLAN {vif.vid} is neither in vids nor the pvid"
            )
    movers = [bridge.addresses is None] + [v.addresses is None for v in bridge.vlan_interfaces]
    if sum(movers) > 1:
        raise ValidationError(
            f"{field}: addresses: move on the bridge and on a VLAN interface: only one can take "
            "the uplink's addresses (give the bridge addresses: none)"
        )
    if (bridge.gateway4 or bridge.gateway6) and bridge.addresses == "dhcp":
        raise ValidationError(f"{field}: a gateway with addresses: dhcp (the lease gives it)")


def check_topology(bridges: tuple[TopoBridge, ...], field: str) -> Topology:
    """Whole-task rules: unique names, no port claimed twice, bonds declared once."""
    if len(bridges) > BRIDGES_MAX:
        raise ValidationError(f"{field}: more than {BRIDGES_MAX} bridges")
    names: set[str] = set()
    ports: dict[str, str] = {}
    for i, bridge in enumerate(bridges):
        where = f"{field}[{i}]" if len(bridges) > 1 or field == "bridges" else field
        if bridge.name in names:
            raise ValidationError(f"{where}.name: bridge {bridge.name} is listed twice")
        names.add(bridge.name)
        port = bridge.port
        if port is not None and port in ports:
            raise ValidationError(
                f"{where}: {port} is already the port of bridge {ports[port]}; a device can be "
                "the port of one bridge only"
            )
        if port is not None:
            ports[port] = bridge.name
    topology = Topology(tuple(bridges))
    _check_bonds(topology, names, field)
    _check_uplinks(topology, names, field)
    return topology


def _check_bonds(topology: Topology, bridges: set[str], field: str) -> None:
    declared: dict[str, BondSpec] = {}
    slaves: dict[str, str] = {}
    for bridge in topology.bridges:
        bond = bridge.bond
        if bond is None:
            continue
        if bond.name in declared and declared[bond.name] != bond:
            raise ValidationError(f"{field}: bond {bond.name} is declared twice, differently")
        declared[bond.name] = bond
        for slave in bond.slaves:
            if slaves.get(slave, bond.name) != bond.name:
                raise ValidationError(
                    f"{field}: {slave} is a slave of both {slaves[slave]} and {bond.name}"
                )
            slaves[slave] = bond.name
        if bond.name in bridges:
            raise ValidationError(f"{field}: {bond.name} is both a bond and a bridge")
    for bridge in topology.bridges:
        nic = bridge.nic
        if nic is not None and nic in slaves:
            raise ValidationError(
                f"{field}: bridge {bridge.name} uses {nic}, a slave of bond {slaves[nic]}"
            )


def _check_uplinks(topology: Topology, bridges: set[str], field: str) -> None:
    for bridge in topology.bridges:
        if bridge.nic in bridges:
            raise ValidationError(
                f"{field}: bridge {bridge.name} uses the bridge {bridge.nic} as its uplink"
            )
        direct = bridge.nic if bridge.vlan is None else None
        users = [b.name for b in topology.bridges if b.nic == bridge.nic and b.vlan is not None]
        if direct is not None and users:
            raise ValidationError(
                f"{field}: {direct} is the port of {bridge.name} and carries VLAN bridges "
                f"({', '.join(users)}); bridge it VLAN-aware (vlan_filtering) instead"
            )
