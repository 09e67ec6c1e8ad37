"""netplan YAML of an uplink topology (issue 17): the one /etc/netplan file that defines the task's
NICs gets ``bonds:``, ``vlans:`` and ``bridges:`` entries (comments and other devices kept); the
NICs that become ports or slaves lose their addresses and routes as for one bridge. Keys from
doc/netplan-yaml.md (0.106): bonds ``interfaces``/``macaddress``/``parameters`` (mode,
mii-monitor-interval...), vlans ``id``/``link``, bridges ``interfaces`` (empty: host-only).
netplan 0.106 has no VLAN filtering for bridges: a VLAN-aware bridge (and its VLAN interfaces)
stays refused, by the backend's declaration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

import fleetbr.backends.netplan.backend as np  # its helpers (it imports this module)
from fleetbr.backends.model import (
    PRIVATE_MODE,
    BackendPlan,
    BackendRefusal,
    FileChange,
    Holder,
    TopologyConfig,
)
from fleetbr.backends.netplan import dhcp
from fleetbr.backends.networkd import dhcp as nd_dhcp
from fleetbr.backends.networkd import topology as nd_topology
from fleetbr.facts.model import HostFacts

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import BondSpec, OptionValue, TopoBridge

# bond option -> netplan bonds parameter (the ms ones are numbers: netplan reads milliseconds)
_BOND_KEYS = {
    "miimon": "mii-monitor-interval",
    "updelay": "up-delay",
    "downdelay": "down-delay",
    "arp_interval": "arp-interval",
    "arp_ip_target": "arp-ip-targets",
    "arp_validate": "arp-validate",
    "lacp_rate": "lacp-rate",
    "ad_select": "ad-select",
    "min_links": "min-links",
    "xmit_hash_policy": "transmit-hash-policy",
    "primary": "primary",
    "primary_reselect": "primary-reselect-policy",
    "fail_over_mac": "fail-over-mac-policy",
    "all_slaves_active": "all-slaves-active",
}
_ARP_VALIDATE = ("none", "active", "backup", "all")


def _group(network: CommentedMap, kind: str, path: str) -> CommentedMap:
    group = network.setdefault(kind, CommentedMap())
    if not isinstance(group, CommentedMap):
        raise BackendRefusal(f"persist: netplan: {path} has a {kind}: that is not a mapping")
    return group


def _file(config: TopologyConfig, facts: HostFacts) -> tuple[str, str]:
    """The one /etc/netplan file that defines every existing device the topology takes."""
    devs = [s for b in config.topology.bonds() for s in b.slaves]
    created = {b.name for b in config.topology.bonds()}
    devs += [b.nic for b in config.topology.bridges if b.nic and b.nic not in created]
    paths = {np.source_file(facts, d) for d in dict.fromkeys(devs)}
    if len(paths) != 1:
        where = ", ".join(sorted(paths)) or "no file"
        raise BackendRefusal(
            f"persist: netplan: the task's NICs are defined in {where}; fleetbr writes a "
            "topology into exactly one netplan file"
        )
    return np.source_text(facts, devs[0])


def _option(key: str, value: OptionValue, bond: str) -> Any:
    if key == "arp_ip_target":
        return CommentedSeq(str(value).split(","))
    if key == "arp_validate" and value not in _ARP_VALIDATE:
        raise BackendRefusal(
            f"persist: netplan: bond {bond}: arp_validate {value} is not one of netplan's "
            f"values ({', '.join(_ARP_VALIDATE)})"
        )
    return value


def bond_entry(bond: BondSpec, idents: list[str], mac: str | None) -> CommentedMap:
    """The ``bonds:`` entry of a bond the task creates (its first slave's MAC, as at runtime)."""
    params = CommentedMap([("mode", bond.mode)])
    for key, value in bond.options:
        if key not in _BOND_KEYS:
            raise BackendRefusal(
                f"persist: netplan: bond {bond.name}: option {key} has no netplan bond "
                "parameter (use persist: none for a runtime-only change)"
            )
        params[_BOND_KEYS[key]] = _option(key, value, bond.name)
    entry = CommentedMap([("interfaces", CommentedSeq(idents))])
    if mac:
        entry["macaddress"] = mac
    entry["accept-ra"] = False
    entry["link-local"] = CommentedSeq()
    entry["parameters"] = params
    return entry


def _unaddress(entry: CommentedMap) -> None:
    """A NIC that becomes a port or slave: no addresses, routes, DHCP or RA of its own."""
    for key in np.MOVED:
        entry.pop(key, None)
    for key in np.DHCP:
        entry[key] = False
    entry["accept-ra"] = False
    entry["link-local"] = CommentedSeq()


def _taken(
    network: CommentedMap, dev: str, path: str, leases: bool = False
) -> tuple[str, CommentedMap]:
    """``dev``'s entry; DHCP on it is refused unless the bridge keeps the leases (``leases``)."""
    ident, entry = np.device_entry(network, dev, path)
    if not leases and any(entry.get(key) for key in np.DHCP):
        raise BackendRefusal(
            f"persist: netplan: {dev} uses DHCP; fleetbr persists static addresses only"
        )
    return ident, entry


def bridge_entry(
    bridge: TopoBridge,
    holder: Holder,
    port: str | None,
    mac: str | None,
    carried: dict[str, Any],
) -> CommentedMap:
    """The ``bridges:`` entry (``port``: its interface's netplan id; None: host-only)."""
    entry = CommentedMap([("interfaces", CommentedSeq([port] if port else []))])
    if mac:
        entry["macaddress"] = mac
    if holder.addresses:
        entry["addresses"] = CommentedSeq(holder.addresses)
    if holder.routes:
        entry["routes"] = CommentedSeq([np.route_entry(r) for r in holder.routes])
    for key, value in carried.items():
        entry[key] = value
    entry["accept-ra"] = False
    entry["parameters"] = CommentedMap(
        [("stp", bridge.stp), ("forward-delay", bridge.forward_delay)]
    )
    return entry


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten netplan file; ``netplan apply`` renders it for networkd."""
    path, text = _file(config, facts)
    doc, network = np.load(text, path)
    renderer = str(network.get("renderer", "networkd"))
    if renderer != "networkd":
        raise BackendRefusal(
            f"persist: netplan: {path} renders for {renderer}; fleetbr writes topologies "
            "for the networkd renderer only (use persist: none for a runtime-only change)"
        )
    links: list[str] = []
    sources: dict[str, CommentedMap] = {}
    extra: list[FileChange] = []
    for bond in config.topology.bonds():
        links += _bond(network, bond, config.macs.get(bond.name), path, sources)
        _bond_holder(network, config, bond.name, path, sources)
    for bridge in config.topology.bridges:
        links += _bridge(network, config, bridge, path, sources, out=(facts, extra))
    new, _ = np.dump(doc, network)
    prior = [d for d in links if facts.manager(d).manager == "netplan"]
    first = config.topology.bridges[0]
    args = {
        "backend": "netplan",
        "bridge": first.name,
        "nic": first.port or first.name,
        "renderer": renderer,
        "links": " ".join(dict.fromkeys(links)),
        "prior_links": " ".join(dict.fromkeys(prior)) or None,
        "leases": nd_dhcp.lease_words(config.topology.bridges, facts),
        # deleted by the rollback's release before networkd reloads (networkd's trap, same
        # renderer): see shell.sh.j2's release
        "new_bond_links": " ".join(b.name for b in config.new_bonds(facts)) or None,
        # networkd's trap too (the renderer): see networkd's shell.sh.j2 hold
        "hold_links": " ".join(nd_topology.held_slaves(config, facts, "netplan")) or None,
    }
    managers = tuple(dict.fromkeys(links))
    files = (FileChange(path, new, PRIVATE_MODE), *extra)
    return BackendPlan("netplan", files, args, managers)


def _bond(
    network: CommentedMap,
    bond: BondSpec,
    mac: str | None,
    path: str,
    sources: dict[str, CommentedMap],
) -> list[str]:
    idents = []
    for slave in bond.slaves:
        ident, entry = _taken(network, slave, path)
        sources[slave] = CommentedMap((k, entry[k]) for k in np.CARRIED if k in entry)
        _unaddress(entry)
        idents.append(ident)
    bonds = _group(network, "bonds", path)
    old = bonds.get(bond.name)
    entry = bond_entry(bond, idents, mac)
    if isinstance(old, CommentedMap) and "link-local" not in old:  # it kept the addresses
        del entry["link-local"]
        entry.update((k, old[k]) for k in np.MOVED if k in old)
    bonds[bond.name] = entry
    return [bond.name, *bond.slaves]


def _bond_holder(
    network: CommentedMap,
    config: TopologyConfig,
    bond: str,
    path: str,
    sources: dict[str, CommentedMap],
) -> None:
    """A new bond that keeps its slave's addresses (only VLAN bridges over it) gets them, its
    routes and what its slave's entry carried, and a link-local address again."""
    holder = config.holder(bond)
    if holder is None:
        return
    entry = _group(network, "bonds", path)[bond]
    del entry["link-local"]
    if holder.addresses:
        entry["addresses"] = CommentedSeq(holder.addresses)
    if holder.routes:
        entry["routes"] = CommentedSeq([np.route_entry(r) for r in holder.routes])
    for key, value in sources.get(holder.source, {}).items():
        entry[key] = value


def _bridge(
    network: CommentedMap,
    config: TopologyConfig,
    bridge: TopoBridge,
    path: str,
    sources: dict[str, CommentedMap],
    *,
    out: tuple[HostFacts, list[FileChange]],
) -> list[str]:
    """``bridge``'s entry and its NIC's (a DHCP bridge's identity drop-in added to ``out``)."""
    created = {b.name for b in config.topology.bonds()}
    links = [bridge.name]
    port = None
    if bridge.nic is not None and bridge.nic in created:
        port = bridge.nic
    elif bridge.nic is not None:
        leases = bridge.addresses == "dhcp" and bridge.vlan is None
        port, entry = _taken(network, bridge.nic, path, leases)
        if bridge.vlan is None:
            sources[bridge.nic] = CommentedMap((k, entry[k]) for k in np.CARRIED if k in entry)
            if leases and any(entry.get(key) for key in np.DHCP):  # not yet a port
                sources[bridge.nic].update(dhcp.client_keys(entry))
            _unaddress(entry)
        links.append(bridge.nic)
    if bridge.vlan is not None and bridge.port is not None and port is not None:
        vlans = _group(network, "vlans", path)
        vlans[bridge.port] = CommentedMap(
            [("id", bridge.vlan), ("link", port), ("accept-ra", False),
             ("link-local", CommentedSeq())]
        )  # fmt: skip
        port = bridge.port
        links.append(bridge.port)
    holder = config.holder(bridge.name) or Holder(bridge.name, (), ())
    bridges = _group(network, "bridges", path)
    carried = dict(sources.get(holder.source, {}))
    old = bridges.get(bridge.name)
    keys = np.CARRIED + dhcp.CLIENT_KEYS * (bridge.addresses == "dhcp")
    if isinstance(old, CommentedMap):  # persisted before: what it carried stays
        carried = {k: old[k] for k in keys if k in old} | carried
    mac = config.macs.get(bridge.name)
    if bridge.addresses == "dhcp":
        facts, extra = out
        source = _dhcp_source(config, bridge, holder)
        ident = dhcp.identity(bridge, source, facts, path)
        entry = dhcp.bridge_entry(bridge, holder, port, mac, CommentedMap(carried), ident=ident)
        extra.append(dhcp.identity_dropin(bridge, source, ident))
    else:
        entry = bridge_entry(bridge, holder, port, mac, carried)
    bridges[bridge.name] = entry
    return links


def _dhcp_source(config: TopologyConfig, bridge: TopoBridge, holder: Holder) -> str:
    """The NIC whose identity a DHCP bridge takes (refused over a VLAN or a new bond: the
    identity pinned is a NIC's)."""
    created = {b.name for b in config.topology.bonds()}
    if bridge.nic is None or bridge.vlan is not None or bridge.nic in created:
        raise BackendRefusal(
            f"persist: netplan: addresses: dhcp on {bridge.name} is written over a NIC only "
            "(not over a VLAN or a bond the task creates)"
        )
    return holder.source or bridge.nic
