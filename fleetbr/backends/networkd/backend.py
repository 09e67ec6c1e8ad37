"""systemd-networkd: a .netdev and a .network for the bridge; the NIC's own .network file
rewritten in place to make it a port (its [Match] and [Link] sections kept verbatim)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from fleetbr.backends import carry, ini
from fleetbr.backends.base import Backend
from fleetbr.backends.carry import Carried
from fleetbr.backends.model import (
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    TopologyConfig,
    check_route,
)
from fleetbr.backends.networkd import topology, view
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.views import ViewContext

ETC = "/etc/systemd/network"
HEADER = "# Managed by fleetbr: {what} (a fleetbr rollback restores the previous file)."
# [Network] keys of the NIC's file that do not carry over to the bridge (fleetbr's own).
_NOT_CARRIED = frozenset({"Address", "Gateway", "DHCP", "Bridge", "Bond"})
# [Network] keys that stack a device on the NIC: refused (on a bridge port it stops working,
# and moving it to the bridge is the operator's decision, not fleetbr's).
_STACKED = frozenset(
    {"VLAN", "MACVLAN", "MACVTAP", "IPVLAN", "IPVTAP", "VXLAN", "Tunnel", "VRF", "Xfrm"}
)
# Sections of the NIC's file fleetbr keeps (Match, Link), rebuilds from the kernel (Address,
# Route) or carries to the bridge (Network keys, RoutingPolicyRule); any other is refused.
_KNOWN = frozenset({"", "Match", "Link", "Network", "Address", "Route", "RoutingPolicyRule"})
_RULE_KEYS = {"From": "from", "To": "to", "Table": "table", "Priority": "priority"}
_GLOB = frozenset("*?[!")
_OURS = frozenset({"ConfigureWithoutCarrier"})


def _is_port_of(parts: list[tuple[str, list[str]]], bridge: str) -> bool:
    keys = [kv for name, lines in parts if name == "Network" for kv in ini.values(lines)]
    return ("Bridge", bridge) in keys


def nic_network_file(facts: HostFacts, nic: str, backend: str = "networkd") -> str:
    """The .network file networkd configures ``nic`` with (refused when there is none, or it
    has drop-ins)."""
    view = next((v for v in facts.manager(nic).views if v.backend == backend), None)
    paths = [f.path for f in view.files] if view else []
    if any(p.endswith(".conf") for p in paths):
        raise BackendRefusal(
            f"persist: networkd: {nic} is configured with drop-ins ({', '.join(paths)}); "
            "fleetbr does not rewrite those"
        )
    network = [p for p in paths if p.endswith(".network")]
    if not network:
        raise BackendRefusal(f"persist: networkd: no .network file configures {nic}")
    return network[0]


def _check_match(path: str, parts: list[tuple[str, list[str]]], nic: str) -> None:
    matches = [kv for name, lines in parts if name == "Match" for kv in ini.values(lines)]
    names = [value for key, value in matches if key == "Name"]
    only_nic = names == [nic] and all(key in ("Name", "MACAddress") for key, _ in matches)
    if not only_nic or _GLOB & set(nic):
        raise BackendRefusal(
            f"persist: networkd: {path} does not match {nic} alone ([Match] "
            f"{' '.join(f'{k}={v}' for k, v in matches) or 'empty'}); fleetbr will not "
            "rewrite a file that configures other interfaces too"
        )


def nic_network(
    facts: HostFacts, nic: str, backend: str = "networkd"
) -> tuple[str, list[tuple[str, list[str]]]]:
    """:func:`nic_network_file` and its sections (refused when the facts do not hold its text,
    or it matches more than the NIC)."""
    path = nic_network_file(facts, nic, backend)
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: networkd: the facts do not hold the content of {path}")
    parts = ini.sections(text)
    _check_match(path, parts, nic)
    return path, parts


def _network_keys(parts: list[tuple[str, list[str]]], path: str) -> list[tuple[str, str]]:
    keys = [kv for name, lines in parts if name == "Network" for kv in ini.values(lines)]
    dhcp = [v for k, v in keys if k == "DHCP" and v.lower() not in ("no", "false", "0")]
    if dhcp or any(name == "DHCPv4" for name, _ in parts):
        raise BackendRefusal(
            f"persist: networkd: {path} uses DHCP; fleetbr persists static addresses only"
        )
    stacked = [f"{k}={v}" for k, v in keys if k in _STACKED]
    if stacked:
        raise BackendRefusal(
            f"persist: networkd: {path} stacks {', '.join(stacked)} on the NIC; a device on a "
            "bridge port does not keep working and fleetbr does not move it: remove it first "
            "(and put it on the bridge after the cutover)"
        )
    return [(k, v) for k, v in keys if k not in _NOT_CARRIED]


def _check_sections(parts: list[tuple[str, list[str]]], path: str) -> None:
    unknown = sorted({name for name, _ in parts} - _KNOWN)
    if unknown:
        raise carry.refuse(
            "networkd", f"[{'], ['.join(unknown)}] in {path}", "is not carried to the bridge"
        )


def _rules(parts: list[tuple[str, list[str]]], path: str) -> list[list[str]]:
    """The [RoutingPolicyRule] sections (checked: fleetbr can compare them)."""
    found = [lines for name, lines in parts if name == "RoutingPolicyRule"]
    for lines in found:
        _rule(lines, path)
    return found


def _rule(lines: list[str], path: str) -> carry.PolicyRule:
    pairs = ini.values(lines)
    prefixed = any(k in ("From", "To") for k, _ in pairs)
    family = dict(pairs).get("Family", None if prefixed else "ipv4")
    if family not in (None, "ipv4", "ipv6"):
        raise carry.refuse(
            "networkd", f"[RoutingPolicyRule] Family={family} in {path}", "is not one family"
        )
    selectors = {_RULE_KEYS.get(k, k): v for k, v in pairs if k != "Family"}
    return carry.rule(
        selectors,
        "networkd",
        f"[RoutingPolicyRule] in {path}",
        family=None if family is None else (6 if family == "ipv6" else 4),
    )


def _link_mtu(parts: list[tuple[str, list[str]]]) -> int | None:
    found = [
        v
        for name, lines in parts
        if name == "Link"
        for k, v in ini.values(lines)
        if k == "MTUBytes"
    ]
    return carry.mtu(found[-1], "networkd", "MTUBytes") if found else None


def _route_section(route: Route) -> list[str]:
    check_route(route, "networkd")
    lines = []
    if route.gateway:
        lines.append(f"Gateway={route.gateway}")
    if route.dst != "default":
        lines.append(f"Destination={route.dst}")
    if route.metric is not None:
        lines.append(f"Metric={route.metric}")
    if route.table != "main":
        lines.append(f"Table={route.table}")
    if route.onlink:
        lines.append("GatewayOnLink=yes")
    if route.scope == "link" and not route.gateway:
        lines.append("Scope=link")
    return lines


def bridge_files(
    config: BridgeConfig,
    carried: list[tuple[str, str]],
    rules: Sequence[list[str]] = (),
    mtu: int | None = None,
) -> tuple[str, str]:
    """The bridge's .netdev and .network texts: the NIC's other [Network] keys in their order
    (repeated ones, e.g. two DNS=, kept), its MTU and its [RoutingPolicyRule] sections."""
    netdev = [("", [HEADER.format(what=f"bridge {config.name}")])]
    netdev.append(
        (
            "NetDev",
            [f"Name={config.name}", "Kind=bridge"]
            + [f"MACAddress={config.mac}"] * bool(config.mac),
        )
    )
    stp = "yes" if config.stp else "no"
    netdev.append(("Bridge", [f"STP={stp}", f"ForwardDelaySec={config.forward_delay}"]))
    keys = [(k, v) for k, v in carried if k != "ConfigureWithoutCarrier"]
    if not any(k == "IPv6AcceptRA" for k, _ in keys):
        keys.append(("IPv6AcceptRA", "no"))
    keys.append(("ConfigureWithoutCarrier", "yes"))
    network = [("", [HEADER.format(what=f"addresses and routes of bridge {config.name}")])]
    network.append(("Match", [f"Name={config.name}"]))
    if mtu is not None:
        network.append(("Link", [f"MTUBytes={mtu}"]))
    lines = [f"Address={a}" for a in config.addresses] + [f"{k}={v}" for k, v in keys]
    network.append(("Network", lines))
    network += [("Route", _route_section(r)) for r in config.routes]
    network += [("RoutingPolicyRule", list(r)) for r in rules]
    return ini.render(netdev), ini.render(network)


def port_file(config: BridgeConfig, parts: list[tuple[str, list[str]]]) -> str:
    """The NIC's .network as a port of the bridge: [Match] and [Link] kept."""
    out = [("", [HEADER.format(what=f"{config.nic} as a port of {config.name}")])]
    out += [(name, lines) for name, lines in parts if name in ("Match", "Link")]
    out.append(("Network", [f"Bridge={config.name}", "LinkLocalAddressing=no", "IPv6AcceptRA=no"]))
    return ini.render(out)


def plan(config: BridgeConfig, facts: HostFacts, backend: str = "networkd") -> BackendPlan:
    """Files that make networkd build the bridge at boot and call it its own now."""
    path, parts = nic_network(facts, config.nic, backend)
    carried = _network_keys(parts, path)  # DHCP first: the clearer reason
    _check_sections(parts, path)
    rules = _rules(parts, path)
    port_path = posixpath.join(ETC, posixpath.basename(path))
    stem = posixpath.join(ETC, f"10-{config.name}")
    if _is_port_of(parts, config.name):  # persisted before: the bridge's file has the keys
        old = ini.sections(facts.daemons.contents.get(f"{stem}.network", ""))
        carried = [kv for kv in _network_keys(old, path) if kv[0] not in _OURS]
        rules = _rules(old, f"{stem}.network")
    mtu = _link_mtu(parts)
    netdev, network = bridge_files(config, carried, rules, mtu)
    if port_path in (f"{stem}.network", f"{stem}.netdev"):
        raise BackendRefusal(f"persist: networkd: {port_path} would hold both the NIC and bridge")
    files = (
        FileChange(f"{stem}.netdev", netdev),
        FileChange(f"{stem}.network", network),
        FileChange(port_path, port_file(config, parts)),
    )
    args = {"backend": "networkd", "bridge": config.name, "nic": config.nic}
    found = Carried(
        mtu=mtu,
        rules=tuple(_rule(r, path) for r in rules),
        dns=tuple(w for k, v in carried if k == "DNS" for w in v.split()),
    )
    return BackendPlan("networkd", files, args, managers=(config.name, config.nic), carried=found)


def unplan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the NIC's file gets the addresses and routes back, the bridge's files go."""
    path, parts = nic_network(facts, config.nic)
    stem = posixpath.join(ETC, f"10-{config.name}")
    source = (
        facts.daemons.contents.get(f"{stem}.network", "")
        if _is_port_of(parts, config.name)
        else facts.daemons.contents[path]
    )
    carried = [kv for kv in _network_keys(ini.sections(source), path) if kv[0] not in _OURS]
    carried = [kv for kv in carried if kv[0] != "LinkLocalAddressing" or kv[1] != "no"]
    out = [
        (
            "",
            [HEADER.format(what=f"{config.nic} with its addresses (bridge {config.name} removed)")],
        )
    ]
    out += [(name, lines) for name, lines in parts if name in ("Match", "Link")]
    lines = [f"Address={a}" for a in config.addresses] + [f"{k}={v}" for k, v in carried]
    out.append(("Network", lines))
    out += [("Route", _route_section(r)) for r in config.routes]
    out += [("RoutingPolicyRule", r) for r in _rules(ini.sections(source), path)]
    files = (
        FileChange(posixpath.join(ETC, posixpath.basename(path)), ini.render(out)),
        FileChange(f"{stem}.netdev", None),
        FileChange(f"{stem}.network", None),
    )
    args = {
        "backend": "networkd",
        "bridge": config.name,
        "nic": config.nic,
        "direction": "unbridge",
    }
    return BackendPlan("networkd", files, args, managers=(config.nic,))


class NetworkdBackend(Backend):
    """systemd-networkd: the bridge's .netdev and .network, the NIC's .network made a port."""

    name = "networkd"
    tool = "systemd-networkd"
    daemon = "networkd"
    settled = ("configured",)
    settling = ("pending", "initialized", "configuring")
    templates = Path(__file__).resolve().parent / "templates"
    process = "systemd-network"
    view_words = view.WORDS
    view_rank = 10
    precedence = 2
    topologies = frozenset(
        {"bond_port", "bond_create", "vlan_uplink", "multi_bridge", "vlan_filtering",
         "vlan_interface", "host_only", "dhcp"}
    )  # fmt: skip

    def parse_config(self, ctx: ViewContext) -> None:
        """networkctl's interfaces (read first: a warning on bad JSON comes before the others)."""
        ctx.notes[self.name] = view.interfaces(ctx)

    def parse_view(self, ctx: ViewContext) -> None:
        """Each interface networkctl lists."""
        view.add_views(ctx, ctx.notes[self.name])

    def refusals(self, facts: HostFacts, nic: str, bridge: str) -> None:
        """Also: one .network file (no drop-ins) configures the NIC alone, whole."""
        super().refusals(facts, nic, bridge)
        nic_network(facts, nic)

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan`."""
        return plan(config, facts)

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.unplan`."""
        return unplan(config, facts)

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan_topology` (fleetbr.backends.networkd.topology)."""
        return topology.plan_topology(config, facts)
