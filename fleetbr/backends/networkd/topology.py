"""systemd-networkd files of an uplink topology (issue 17): a .netdev and a .network per bridge,
new bond and VLAN device; the existing NICs' (and bonds') own .network files rewritten in place as
ports, bond slaves or VLAN parents ([Match] and [Link] kept). Keys checked against systemd 252
(Debian 12): systemd.netdev(5) [Bridge] VLANFiltering=/DefaultPVID=, [Bond], [VLAN] Id=;
systemd.network(5) [Network] Bridge=/Bond=/VLAN=/PrimarySlave=, [BridgeVLAN] VLAN=/PVID=/
EgressUntagged= (a bridge's own .network: entries of the bridge itself)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import fleetbr.backends.networkd.backend as nd  # its helpers (it imports this module)
from fleetbr.backends import ini
from fleetbr.backends.model import (
    BackendPlan,
    BackendRefusal,
    FileChange,
    Holder,
    TopologyConfig,
)
from fleetbr.backends.networkd import dhcp
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import BondSpec, OptionValue, TopoBridge

# bond option -> [Bond] key of a .netdev, and how its value is written
_MS = ("miimon", "updelay", "downdelay", "arp_interval")
_BOND_KEYS = {
    "miimon": "MIIMonitorSec",
    "updelay": "UpDelaySec",
    "downdelay": "DownDelaySec",
    "arp_interval": "ARPIntervalSec",
    "arp_ip_target": "ARPIPTargets",
    "arp_validate": "ARPValidate",
    "lacp_rate": "LACPTransmitRate",
    "ad_select": "AdSelect",
    "min_links": "MinLinks",
    "xmit_hash_policy": "TransmitHashPolicy",
    "primary_reselect": "PrimaryReselectPolicy",
    "fail_over_mac": "FailOverMACPolicy",
    "tlb_dynamic_lb": "DynamicTransmitLoadBalancing",
    "all_slaves_active": "AllSlavesActive",
}
# ARPValidate= of systemd 252 knows these only (the kernel's filter* values are not taken)
_ARP_VALIDATE = ("none", "active", "backup", "all")
# [Network] keys fleetbr writes itself: never carried from an old file
_OURS = frozenset(
    {"Address", "Gateway", "DHCP", "Bridge", "Bond", "VLAN", "ConfigureWithoutCarrier"}
)
_PORT_KEYS = ["LinkLocalAddressing=no", "IPv6AcceptRA=no"]


@dataclass
class _Files:
    """The files of the topology by path, in the order written, and the interfaces networkd
    must then manage (``links``) and those it managed before (``prior``)."""

    files: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    prior: list[str] = field(default_factory=list)
    parents: dict[str, list[str]] = field(default_factory=dict)  # device -> its VLAN devices

    def add(self, path: str, parts: list[tuple[str, list[str]]]) -> None:
        self.put(path, ini.render(parts))

    def put(self, path: str, text: str) -> None:
        if path in self.files:
            raise BackendRefusal(f"persist: networkd: {path} would describe two interfaces")
        self.files[path] = text


def _stem(name: str) -> str:
    return posixpath.join(nd.ETC, f"10-{name}")


def _ours(facts: HostFacts, name: str) -> bool:
    """fleetbr wrote the .netdev that creates ``name`` (a plan applied before)."""
    return f"{_stem(name)}.netdev" in facts.daemons.contents


def _header(what: str) -> tuple[str, list[str]]:
    return ("", [nd.HEADER.format(what=what)])


def _option(key: str, value: OptionValue, bond: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in _MS:
        return f"{value}ms"
    if key == "arp_ip_target":
        return " ".join(str(value).split(","))
    if key == "arp_validate" and value not in _ARP_VALIDATE:
        raise BackendRefusal(
            f"persist: networkd: bond {bond}: arp_validate {value} has no ARPValidate= value "
            f"in systemd 252 (it takes {', '.join(_ARP_VALIDATE)})"
        )
    return str(value)


def bond_netdev(bond: BondSpec, mac: str | None) -> list[tuple[str, list[str]]]:
    """The .netdev of a bond the task creates (``mac``: its first slave's, as the kernel
    gives it at runtime)."""
    lines = [f"Mode={bond.mode}"]
    for key, value in bond.options:
        if key == "primary":
            continue  # PrimarySlave=yes in the slave's .network
        if key not in _BOND_KEYS:
            raise BackendRefusal(
                f"persist: networkd: bond {bond.name}: option {key} has no [Bond] key in "
                "systemd-networkd (use persist: none for a runtime-only change)"
            )
        lines.append(f"{_BOND_KEYS[key]}={_option(key, value, bond.name)}")
    netdev = [f"Name={bond.name}", "Kind=bond"] + [f"MACAddress={mac}"] * bool(mac)
    return [_header(f"bond {bond.name}"), ("NetDev", netdev), ("Bond", lines)]


def vlan_netdev(name: str, vid: int) -> list[tuple[str, list[str]]]:
    """The .netdev of a VLAN device (it inherits its parent's MAC: systemd.netdev(5))."""
    return [
        _header(f"VLAN device {name}"),
        ("NetDev", [f"Name={name}", "Kind=vlan"]),
        ("VLAN", [f"Id={vid}"]),
    ]


def bridge_netdev(bridge: TopoBridge, mac: str | None) -> list[tuple[str, list[str]]]:
    """The bridge's .netdev; a VLAN-aware one filters with no default PVID (as the runtime
    steps set it: no VLAN the task does not list)."""
    netdev = [f"Name={bridge.name}", "Kind=bridge"] + [f"MACAddress={mac}"] * bool(mac)
    lines = [f"STP={'yes' if bridge.stp else 'no'}", f"ForwardDelaySec={bridge.forward_delay}"]
    if bridge.vlan_filtering:
        lines += ["VLANFiltering=yes", "DefaultPVID=none"]
    return [_header(f"bridge {bridge.name}"), ("NetDev", netdev), ("Bridge", lines)]


def vlan_sections(entries: tuple[PortVlan, ...]) -> list[tuple[str, list[str]]]:
    """[BridgeVLAN] sections of a port's (or the bridge's own) VLAN table."""
    out = []
    for e in entries:
        vids = str(e.vid) if e.vid == e.vid_end else f"{e.vid}-{e.vid_end}"
        if e.pvid:
            lines = [f"PVID={e.vid}"] + [f"EgressUntagged={e.vid}"] * e.untagged
        else:
            lines = [f"VLAN={vids}"] + [f"EgressUntagged={vids}"] * e.untagged
        out.append(("BridgeVLAN", lines))
    return out


def _carried(config: TopologyConfig, holder: Holder, facts: HostFacts) -> list[str]:
    """The [Network] keys the holder takes over: from its own file when fleetbr wrote it before,
    else from its address source's (DHCP, stacked devices and unknown sections refused)."""
    own = facts.daemons.contents.get(f"{_stem(holder.dev)}.network")
    if own is not None:
        parts = ini.sections(own)
        keys = [kv for name, lines in parts if name == "Network" for kv in ini.values(lines)]
    elif holder.source and facts.link(holder.source) is not None:
        path, parts = nd.nic_network(facts, holder.source)
        keys = nd._network_keys(parts, path)
        nd._check_sections(parts, path)
        extra = [n for n, _ in parts if n in ("RoutingPolicyRule",)]
        if extra or any(
            k == "MTUBytes" for n, ls in parts if n == "Link" for k, _ in ini.values(ls)
        ):
            raise BackendRefusal(
                f"persist: networkd: {path} has policy rules or an MTU, which a topology does "
                "not carry to the bridge yet (use persist: none for a runtime-only change)"
            )
    else:
        keys = []
    del config
    return [f"{k}={v}" for k, v in keys if k not in _OURS]


def holder_network(
    config: TopologyConfig, holder: Holder, facts: HostFacts, vlans: list[str]
) -> list[tuple[str, list[str]]]:
    """The .network of an interface that carries addresses (a bridge or its VLAN interface)."""
    keys = _carried(config, holder, facts)
    if not any(k.startswith("IPv6AcceptRA=") for k in keys):
        keys.append("IPv6AcceptRA=no")
    lines = [f"Address={a}" for a in holder.addresses] + keys
    lines += [f"VLAN={v}" for v in vlans] + ["ConfigureWithoutCarrier=yes"]
    parts = [_header(f"addresses and routes of {holder.dev}"), ("Match", [f"Name={holder.dev}"])]
    parts.append(("Network", lines))
    parts += [("Route", nd._route_section(r)) for r in holder.routes]
    return parts + vlan_sections(config.entries(holder.dev))


def _existing(facts: HostFacts, dev: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """The device's own .network path (in /etc) and sections, refused as for one NIC."""
    path, parts = nd.nic_network(facts, dev)
    return posixpath.join(nd.ETC, posixpath.basename(path)), parts


def _role_file(
    facts: HostFacts, dev: str, what: str, network: list[str], extra: list[tuple[str, list[str]]]
) -> tuple[str, list[tuple[str, list[str]]]]:
    """``dev``'s .network as a port / slave: its own file rewritten ([Match], [Link] kept) when
    it exists, else a new one (a device networkd does not configure yet: a new one, an idle
    second NIC)."""
    if _configured(facts, dev):
        path, parts = _existing(facts, dev)
        kept = [(n, ls) for n, ls in parts if n in ("Match", "Link")]
    else:
        path, kept = f"{_stem(dev)}.network", [("Match", [f"Name={dev}"])]
    return path, [_header(what), *kept, ("Network", network), *extra]


def _configured(facts: HostFacts, dev: str, backend: str = "networkd") -> bool:
    """``backend`` (networkd, or netplan rendering for it) configures ``dev`` from a file (an
    unmanaged NIC has none to rewrite)."""
    view = next((v for v in facts.manager(dev).views if v.backend == backend), None)
    return facts.link(dev) is not None and view is not None and bool(view.files)


def held_slaves(config: TopologyConfig, facts: HostFacts, backend: str = "networkd") -> list[str]:
    """The slaves of the bonds the task creates to which networkd, from the file it will still
    hold when the runtime steps enslave them (``backend``'s: networkd's, or netplan's that it
    renders), would give global addresses back."""
    return [s for b in config.new_bonds(facts) for s in b.slaves
            if _configured(facts, s, backend)
            and any(a.scope == "global" for a in facts.addresses_of(s))]  # fmt: skip


def add_network_lines(text: str, lines: list[str]) -> str:
    """``text`` with ``lines`` added at the end of its (first) [Network] section, every other
    byte kept (a new [Network] section at the end when it has none)."""
    if not lines:
        return text
    rows = text.split("\n")
    heads = [i for i, r in enumerate(rows) if r.strip().startswith("[") and r.strip().endswith("]")]
    start = next((i for i in heads if rows[i].strip()[1:-1].strip() == "Network"), None)
    if start is None:
        return text.rstrip("\n") + "\n\n[Network]\n" + "\n".join(lines) + "\n"
    end = next((i for i in heads if i > start), len(rows))
    while end - 1 > start and not rows[end - 1].strip():
        end -= 1
    return "\n".join(rows[:end] + lines + rows[end:])


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """Files that make networkd build the topology at boot and call its interfaces its own."""
    out = _Files()
    topo = config.topology
    for bridge in topo.bridges:
        _bridge(config, bridge, facts, out)
    for bond in topo.bonds():
        _bond(config, bond, facts, out)
    for parent, vlans in out.parents.items():
        _parent(config, parent, vlans, facts, out)
    first = topo.bridges[0]
    args = {
        "backend": "networkd",
        "bridge": first.name,
        "nic": first.port or first.name,
        "links": " ".join(dict.fromkeys(out.links)),
        "prior_links": " ".join(dict.fromkeys(out.prior)) or None,
        "leases": dhcp.lease_words(topo.bridges, facts),
        # deleted by the rollback's release, before networkd reloads: see shell.sh.j2's release
        "new_bond_links": " ".join(b.name for b in config.new_bonds(facts)) or None,
        # enslaved by the runtime steps while networkd still has their old files: see
        # common.sh.j2's networkd_hold
        "hold_links": " ".join(held_slaves(config, facts)) or None,
    }
    files = tuple(FileChange(p, c) for p, c in out.files.items())
    return BackendPlan("networkd", files, args, managers=tuple(dict.fromkeys(out.links)))


def _bridge(config: TopologyConfig, bridge: TopoBridge, facts: HostFacts, out: _Files) -> None:
    stem = _stem(bridge.name)
    out.add(f"{stem}.netdev", bridge_netdev(bridge, config.macs.get(bridge.name)))
    own = config.holder(bridge.name) or Holder(bridge.name, (), ())
    vifs = [v.name for v in bridge.vlan_interfaces]
    if bridge.addresses == "dhcp":
        out.add(f"{stem}.network", dhcp.holder_network(bridge, own, facts, vifs))
    else:
        out.add(f"{stem}.network", holder_network(config, own, facts, vifs))
    out.links.append(bridge.name)
    for vif in bridge.vlan_interfaces:
        if vif.addresses == "dhcp":
            raise BackendRefusal(
                f"persist: networkd: addresses: dhcp on VLAN interface {vif.name} is not "
                "supported yet (only on the bridge itself)"
            )
        out.add(f"{_stem(vif.name)}.netdev", vlan_netdev(vif.name, vif.vid))
        held = config.holder(vif.name) or Holder(vif.name, (), ())
        out.add(f"{_stem(vif.name)}.network", holder_network(config, held, facts, []))
        out.links.append(vif.name)
    port = bridge.port
    if port is None:
        return
    if bridge.vlan is not None and bridge.nic is not None:
        if facts.link(port) is not None and not _ours(facts, port):
            raise BackendRefusal(
                f"persist: networkd: VLAN device {port} exists already; fleetbr writes the "
                "VLAN devices it creates only (use persist: none for a runtime-only change)"
            )
        out.add(f"{_stem(port)}.netdev", vlan_netdev(port, bridge.vlan))
        out.parents.setdefault(bridge.nic, []).append(port)
    network = [f"Bridge={bridge.name}", *_PORT_KEYS]
    path, parts = _role_file(
        facts,
        port,
        f"{port} as a port of {bridge.name}",
        network,
        vlan_sections(config.entries(port)),
    )
    if _configured(facts, port):
        out.prior.append(port)
    out.add(path, parts)
    out.links.append(port)


def _bond(config: TopologyConfig, bond: BondSpec, facts: HostFacts, out: _Files) -> None:
    mac = config.macs.get(bond.name)
    if (
        facts.link(bond.name) is not None
        and f"{_stem(bond.name)}.netdev" not in facts.daemons.contents
    ):
        raise BackendRefusal(
            f"persist: networkd: bond {bond.name} exists already and no .netdev of fleetbr's "
            "creates it (use persist: none for a runtime-only change)"
        )
    out.add(f"{_stem(bond.name)}.netdev", bond_netdev(bond, mac))
    out.links.append(bond.name)
    primary = bond.option("primary")
    for slave in bond.slaves:
        network = [f"Bond={bond.name}", *_PORT_KEYS] + ["PrimarySlave=yes"] * (slave == primary)
        path, parts = _role_file(facts, slave, f"{slave} as a slave of {bond.name}", network, [])
        out.add(path, parts)
        if _configured(facts, slave):
            out.prior.append(slave)
        out.links.append(slave)
    del config


def _parent(
    config: TopologyConfig, parent: str, vlans: list[str], facts: HostFacts, out: _Files
) -> None:
    """A VLAN parent's .network gets ``VLAN=`` lines: a new bond's (with its slave's addresses
    and routes when it keeps them), else the device's own file with every other line kept."""
    bond_path = f"{_stem(parent)}.network"
    held = config.holder(parent)
    if bond_path not in out.files and facts.link(parent) is None and held is not None:
        out.add(bond_path, holder_network(config, held, facts, vlans))
        return
    if bond_path not in out.files and facts.link(parent) is None:
        network = [*_PORT_KEYS, *(f"VLAN={v}" for v in vlans), "ConfigureWithoutCarrier=yes"]
        out.add(bond_path, [_header(f"VLAN devices of {parent}"), ("Match", [f"Name={parent}"]),
                            ("Network", network)])  # fmt: skip
        return
    path, parts = _existing(facts, parent)
    out.prior.append(parent)
    have = {v for n, ls in parts if n == "Network" for k, v in ini.values(ls) if k == "VLAN"}
    text = facts.daemons.contents[nd.nic_network_file(facts, parent)]
    out.put(path, add_network_lines(text, [f"VLAN={v}" for v in vlans if v not in have]))
    out.links.append(parent)
