"""NetworkManager keyfiles of an uplink topology (issue 17): one profile per bridge, new bond,
bond slave, VLAN device, bridge port and VLAN interface of a bridge; the old profiles of the
existing NICs that change role are set to autoconnect no by nmcli in the apply (their files
guarded: a rollback gives them back byte for byte). Keys as NetworkManager 1.42 (Debian 12)
reads them (nm-settings-nmcli(5)): [bond] mode= and the kernel's option names, [vlan] id=
parent=, [bridge] vlan-filtering= vlan-default-pvid= vlans=, [bridge-port] vlans=,
[connection] master= slave-type= (1.46 also reads controller=/port-type=)."""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetbr.backends.model import (
    PRIVATE_MODE,
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    Holder,
    TopologyConfig,
)
from fleetbr.backends.networkd.dhcp import lease_words
from fleetbr.backends.networkmanager import backend as nm
from fleetbr.backends.networkmanager import dhcp
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import BondSpec, OptionValue, TopoBridge

_NAMESPACE = uuid.UUID("6b1e0c7e-5d0a-4f4b-9d3e-2f8a7c1b9e40")
# activation order: controllers before what they control, VLAN parents before their VLANs
_ORDER = ("bridge", "bond", "slave", "vlan", "port", "vif")


@dataclass
class _Profiles:
    """The keyfiles by path, each profile's uuid and role, and the old profiles to retire."""

    hostname: str
    files: dict[str, str] = field(default_factory=dict)
    up: list[tuple[str, str]] = field(default_factory=list)  # (role, uuid)
    links: list[str] = field(default_factory=list)
    prior: list[str] = field(default_factory=list)
    old: dict[str, str] = field(default_factory=dict)  # old profile uuid -> its file
    old_devs: dict[str, str] = field(default_factory=dict)  # old profile uuid -> its device
    # the profiles of the bonds the runtime steps build, and their slaves: released right
    # before NetworkManager takes the first of them over (shell.sh.j2's take_bridge)
    new_bonds: list[str] = field(default_factory=list)
    free: list[str] = field(default_factory=list)

    def uuid(self, role: str, name: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.hostname}/{role}/{name}"))

    def add(self, role: str, name: str, path_stem: str, lines: list[str]) -> str:
        path = posixpath.join(nm.ETC, f"{path_stem}.nmconnection")
        if path in self.files:
            raise BackendRefusal(f"persist: networkmanager: {path} would hold two profiles")
        self.files[path] = "\n".join(lines) + "\n"
        self.up.append((role, self.uuid(role, name)))
        self.links.append(name)
        return self.uuid(role, name)


def _connection(
    out: _Profiles, role: str, name: str, kind: str, what: str, *, master: str | None = None
) -> list[str]:
    lines = [
        nm.HEADER.format(what=what),
        "[connection]",
        f"id={name if role in ('bridge', 'bond', 'vlan', 'vif') else f'fleetbr-{role}-{name}'}",
        f"uuid={out.uuid(role, name)}",
        f"type={kind}",
        f"interface-name={name}",
    ]
    if master is not None:
        slave_type = "bond" if role == "slave" else "bridge"
        lines += [f"master={master}", f"slave-type={slave_type}"]
    return [*lines, "autoconnect=true", "autoconnect-priority=10"]


def _vlan_value(entries: tuple[PortVlan, ...]) -> str:
    """A ``vlans=`` value: ``10,100-199,1 pvid untagged``."""
    words = []
    for e in entries:
        vids = str(e.vid) if e.vid == e.vid_end else f"{e.vid}-{e.vid_end}"
        words.append(" ".join([vids] + ["pvid"] * e.pvid + ["untagged"] * e.untagged))
    return ",".join(words)


def _ip(config: TopologyConfig, holder: Holder, facts: HostFacts) -> list[str]:
    """[ipv4] and [ipv6] of an address holder (name servers from the profile they come from)."""
    source = holder.dev if facts.daemons.nm_active.get(holder.dev) else holder.source
    dns = nm.name_servers(facts, source) if source else {}
    if source and (nm.profile_mtu(facts, source) or nm.routing_rules(facts, source)):
        raise BackendRefusal(
            f"persist: networkmanager: {source}'s profile has an MTU or routing rules, which a "
            "topology does not carry yet (use persist: none for a runtime-only change)"
        )
    plain = BridgeConfig(holder.dev, "", None, False, 0, holder.addresses, holder.routes)
    del config
    return [*nm._family(plain, 4, dns), "", *nm._family(plain, 6, dns)]


def _no_ip() -> list[str]:
    return ["[ipv4]", "method=disabled", "", "[ipv6]", "method=ignore"]


def _option(value: OptionValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _bridge_lines(
    config: TopologyConfig, bridge: TopoBridge, facts: HostFacts, out: _Profiles
) -> list[str]:
    lines = _connection(out, "bridge", bridge.name, "bridge", f"bridge {bridge.name}")
    mac = config.macs.get(bridge.name)
    if mac:
        lines += ["", "[ethernet]", f"cloned-mac-address={mac.upper()}"]
    lines += ["", "[bridge]", f"stp={'true' if bridge.stp else 'false'}"]
    lines.append(f"forward-delay={bridge.forward_delay}")
    if bridge.vlan_filtering:
        lines += ["vlan-filtering=true", "vlan-default-pvid=0"]
        own = config.entries(bridge.name)
        lines += [f"vlans={_vlan_value(own)}"] * bool(own)
    held = config.holder(bridge.name)
    if bridge.addresses == "dhcp":
        created = {b.name for b in config.topology.bonds()}
        keep = held or Holder(bridge.name, (), ())
        return [*lines, "", *dhcp.ip_lines(bridge, keep, facts, created)]
    return lines + [""] + (_ip(config, held, facts) if held else _no_ip())


def _retire(out: _Profiles, facts: HostFacts, dev: str, role: str) -> None:
    """``dev`` exists and changes role: its active profile (unless it is ours) is retired."""
    out.prior.append(dev)
    active = facts.daemons.nm_active.get(dev)
    if active is not None and active[0] == out.uuid(role, dev):
        return
    old_uuid, old_path = nm._old_profile(facts, dev)
    out.old[old_uuid] = old_path
    out.old_devs[old_uuid] = dev


def _not_ours(facts: HostFacts, out: _Profiles, dev: str, role: str, what: str) -> None:
    active = facts.daemons.nm_active.get(dev)
    if facts.link(dev) is not None and (active is None or active[0] != out.uuid(role, dev)):
        raise BackendRefusal(
            f"persist: networkmanager: {what} {dev} exists already and no profile of fleetbr's "
            "creates it (use persist: none for a runtime-only change)"
        )


def _bridge(config: TopologyConfig, bridge: TopoBridge, facts: HostFacts, out: _Profiles) -> None:
    bridge_uuid = out.add(
        "bridge", bridge.name, bridge.name, _bridge_lines(config, bridge, facts, out)
    )
    for vif in bridge.vlan_interfaces:
        if vif.addresses == "dhcp":
            raise BackendRefusal(
                f"persist: networkmanager: addresses: dhcp on VLAN interface {vif.name} is not "
                "supported yet (only on the bridge itself)"
            )
        lines = _connection(out, "vif", vif.name, "vlan", f"VLAN interface {vif.name}")
        lines += ["", "[vlan]", f"id={vif.vid}", f"parent={bridge.name}", ""]
        held = config.holder(vif.name)
        lines += _ip(config, held, facts) if held else _no_ip()
        out.add("vif", vif.name, vif.name, lines)
    port = bridge.port
    if port is None:
        return
    if bridge.vlan is not None and bridge.nic is not None:
        _not_ours(facts, out, port, "vlan", "VLAN device")
        what = f"VLAN device {port} as a port of {bridge.name}"
        lines = _connection(out, "vlan", port, "vlan", what, master=bridge_uuid)
        lines += ["", "[vlan]", f"id={bridge.vlan}", f"parent={bridge.nic}"]
        out.add("vlan", port, port, lines)
        return
    if port in {b.name for b in config.topology.bonds()}:
        return  # the new bond's own profile makes it the port (_bond)
    if facts.link(port) is not None and port in config.host_bonds:
        _bond(config, _existing_bond(facts, port, out), facts, out, existing=True)
        return
    what = f"{port} as a port of {bridge.name}"
    lines = _connection(out, "port", port, "ethernet", what, master=bridge_uuid)
    entries = config.entries(port)
    if entries:
        lines += ["", "[bridge-port]", f"vlans={_vlan_value(entries)}"]
    _retire(out, facts, port, "port")
    out.add("port", port, f"{bridge.name}-port-{port}", lines)


def _existing_bond(facts: HostFacts, name: str, out: _Profiles) -> BondSpec:
    """An existing bond as the port: its profile retired like a NIC's (its file may hold
    secrets, so the facts carry only its sha256: fleetbr does not rewrite it), and a bond of
    fleetbr's with the same mode, options and slaves in its place (_bond), built like a new
    one: NetworkManager replaces the bond device when the new profile comes up."""
    found = facts.topology.bond(name)
    if found is None or not found.slave_names:
        raise BackendRefusal(f"persist: networkmanager: the facts show no slaves of bond {name}")
    # the task model is imported here only: not on the facts and run paths (above)
    from fleetbr.changes.bridge.topology import BondSpec  # noqa: PLC0415

    _retire(out, facts, name, "bond")
    return BondSpec(name, tuple(found.slave_names), found.mode, found.options)


def _bond(
    config: TopologyConfig,
    bond: BondSpec,
    facts: HostFacts,
    out: _Profiles,
    *,
    existing: bool = False,
) -> None:
    if not existing:
        _not_ours(facts, out, bond.name, "bond", "bond")
    bridge = next((b for b in config.topology.bridges if b.port == bond.name), None)
    master = out.uuid("bridge", bridge.name) if bridge else None
    what = f"bond {bond.name}" + (f" as a port of {bridge.name}" if bridge else "")
    lines = _connection(out, "bond", bond.name, "bond", what, master=master)
    link = facts.link(bond.name) if existing else None
    mac = link.mac if link is not None else config.macs.get(bond.name)
    if mac:
        lines += ["", "[ethernet]", f"cloned-mac-address={mac.upper()}"]
    lines += ["", "[bond]", f"mode={bond.mode}"]
    lines += [f"{k}={_option(v)}" for k, v in bond.options]
    if master is None:
        lines += ["", *_no_ip()]
    # an operator's bond profile is often bond0.nmconnection: fleetbr's is named apart
    stem = f"fleetbr-{bond.name}" if existing else bond.name
    bond_uuid = out.add("bond", bond.name, stem, lines)
    if facts.link(bond.name) is None or existing:
        out.new_bonds.append(bond_uuid)
        out.free += bond.slaves
    for slave in bond.slaves:
        what = f"{slave} as a slave of {bond.name}"
        lines = _connection(
            out, "slave", slave, "ethernet", what, master=out.uuid("bond", bond.name)
        )
        _retire(out, facts, slave, "slave")
        out.add("slave", slave, f"{bond.name}-slave-{slave}", lines)


def _metric_rank(facts: HostFacts, dev: str) -> float:
    """The lowest metric of ``dev``'s main-table routes before the change (the kernel's own
    link-local route aside; none: last). NetworkManager gives a profile without
    ``route-metric`` its device type's metric (100 for Ethernet) bumped past the ones other
    devices reserved when they came up (``_device_route_metric_get``, NM 1.42): the old
    profiles come back up in this order, so each gets the metric it had."""
    metrics = [r.metric for r in facts.routes_of(dev)
               if r.table == "main" and r.metric is not None and r.dst != "fe80::/64"]  # fmt: skip
    return min(metrics, default=float("inf"))


def _reapply_args(out: _Profiles, facts: HostFacts) -> dict[str, str | None]:
    """The old profiles to retire; the rollback's re-apply: the same in the order of their
    devices' metrics (an existing bond before its slaves, which have no route), and
    the devices that had IPv6 addresses (NetworkManager leaves IPv6 off on a released slave
    whose old profile says ``ipv6.method=ignore``)."""
    order = sorted(out.old, key=lambda u: _metric_rank(facts, out.old_devs[u]))
    ipv6 = [d for d in dict.fromkeys(out.prior)
            if any(a.family == 6 for a in facts.addresses if a.dev == d)]  # fmt: skip
    return {
        "old_uuids": " ".join(out.old) or None,
        "reapply_uuids": " ".join(order) or None,
        "ipv6_links": " ".join(ipv6) or None,
    }


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """Keyfiles that make NetworkManager build the topology at boot and call its interfaces
    its own; the apply reloads them, retires the old profiles and brings the new ones up."""
    out = _Profiles(facts.hostname)
    for bridge in config.topology.bridges:
        _bridge(config, bridge, facts, out)
    for bond in config.topology.bonds():
        _bond(config, bond, facts, out)
    clash = sorted(set(out.old.values()) & set(out.files))
    if clash:
        raise BackendRefusal(
            f"persist: networkmanager: the old profile {clash[0]} has a name fleetbr uses"
        )
    first = config.topology.bridges[0]
    ups = sorted(out.up, key=lambda ru: _ORDER.index(ru[0]))
    args = {
        "backend": "networkmanager",
        "bridge": first.name,
        "nic": first.port or first.name,
        "links": " ".join(dict.fromkeys(out.links)),
        "prior_links": " ".join(dict.fromkeys(out.prior)) or None,
        "up_uuids": " ".join(u for _, u in ups),
        **_reapply_args(out, facts),
        "new_bond_uuids": " ".join(out.new_bonds) or None,
        "free_links": " ".join(out.free) or None,
    }
    leases = lease_words(config.topology.bridges, facts)
    if leases:  # addresses: dhcp: the apply waits for them on the bridge, the rollback on the NIC
        args["leases"] = leases
    files = tuple(FileChange(p, c, PRIVATE_MODE) for p, c in out.files.items())
    return BackendPlan(
        "networkmanager",
        files,
        args,
        managers=tuple(dict.fromkeys(out.links)),
        guarded=tuple(out.old.values()),
    )


def plan_bond_port(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """A one-NIC task whose NIC is an existing bond: the topology writer's bridge over it (the
    bond's and its slaves' profiles retired, fleetbr's in their place: _existing_bond)."""
    # the task model is imported here only: not on the facts and run paths (above)
    from fleetbr.changes.bridge.topology import Topology, TopoBridge  # noqa: PLC0415, I001

    bridge = TopoBridge(
        name=config.name, nic=config.nic, stp=config.stp, forward_delay=config.forward_delay
    )
    topo = TopologyConfig(
        topology=Topology((bridge,)),
        macs={config.name: config.mac},
        holders=(Holder(config.name, config.addresses, config.routes, config.nic),),
        host_bonds=frozenset({config.nic}),
    )
    return plan_topology(topo, facts)
