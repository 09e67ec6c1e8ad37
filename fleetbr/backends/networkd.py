"""systemd-networkd: a .netdev and a .network for the bridge; the NIC's own .network file
rewritten in place to make it a port (its [Match] and [Link] sections kept verbatim)."""

from __future__ import annotations

import posixpath

from fleetbr.backends import ini
from fleetbr.backends.model import (
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    check_route,
)
from fleetbr.facts.model import HostFacts, Route

ETC = "/etc/systemd/network"
HEADER = "# Managed by fleetbr: {what} (a fleetbr rollback restores the previous file)."
# [Network] keys of the NIC's file that do not carry over to the bridge.
_NOT_CARRIED = frozenset({"Address", "Gateway", "DHCP", "Bridge", "Bond", "VLAN", "MACVLAN"})
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


def _network_keys(parts: list[tuple[str, list[str]]], path: str) -> list[tuple[str, str]]:
    keys = [kv for name, lines in parts if name == "Network" for kv in ini.values(lines)]
    dhcp = [v for k, v in keys if k == "DHCP" and v.lower() not in ("no", "false", "0")]
    if dhcp or any(name == "DHCPv4" for name, _ in parts):
        raise BackendRefusal(
            f"persist: networkd: {path} uses DHCP; fleetbr persists static addresses only"
        )
    return [(k, v) for k, v in keys if k not in _NOT_CARRIED]


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


def bridge_files(config: BridgeConfig, carried: list[tuple[str, str]]) -> tuple[str, str]:
    """The bridge's .netdev and .network texts."""
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
    keys = dict(carried)
    keys.setdefault("IPv6AcceptRA", "no")
    keys["ConfigureWithoutCarrier"] = "yes"
    network = [("", [HEADER.format(what=f"addresses and routes of bridge {config.name}")])]
    network.append(("Match", [f"Name={config.name}"]))
    lines = [f"Address={a}" for a in config.addresses] + [f"{k}={v}" for k, v in keys.items()]
    network.append(("Network", lines))
    network += [("Route", _route_section(r)) for r in config.routes]
    return ini.render(netdev), ini.render(network)


def port_file(config: BridgeConfig, parts: list[tuple[str, list[str]]]) -> str:
    """The NIC's .network as a port of the bridge: [Match] and [Link] kept."""
    out = [("", [HEADER.format(what=f"{config.nic} as a port of {config.name}")])]
    out += [(name, lines) for name, lines in parts if name in ("Match", "Link")]
    out.append(("Network", [f"Bridge={config.name}", "LinkLocalAddressing=no", "IPv6AcceptRA=no"]))
    return ini.render(out)


def plan(config: BridgeConfig, facts: HostFacts, backend: str = "networkd") -> BackendPlan:
    """Files that make networkd build the bridge at boot and call it its own now."""
    path = nic_network_file(facts, config.nic, backend)
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: networkd: the facts do not hold the content of {path}")
    parts = ini.sections(text)
    _check_match(path, parts, config.nic)
    carried = _network_keys(parts, path)
    port_path = posixpath.join(ETC, posixpath.basename(path))
    stem = posixpath.join(ETC, f"10-{config.name}")
    if _is_port_of(parts, config.name):  # persisted before: the bridge's file has the keys
        old = facts.daemons.contents.get(f"{stem}.network", "")
        carried = [kv for kv in _network_keys(ini.sections(old), path) if kv[0] not in _OURS]
    netdev, network = bridge_files(config, carried)
    if port_path in (f"{stem}.network", f"{stem}.netdev"):
        raise BackendRefusal(f"persist: networkd: {port_path} would hold both the NIC and bridge")
    files = (
        FileChange(f"{stem}.netdev", netdev),
        FileChange(f"{stem}.network", network),
        FileChange(port_path, port_file(config, parts)),
    )
    args = {"backend": "networkd", "bridge": config.name, "nic": config.nic}
    return BackendPlan("networkd", files, args, managers=(config.name, config.nic))


def unplan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the NIC's file gets the addresses and routes back, the bridge's files go."""
    path = nic_network_file(facts, config.nic)
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: networkd: the facts do not hold the content of {path}")
    parts = ini.sections(text)
    _check_match(path, parts, config.nic)
    stem = posixpath.join(ETC, f"10-{config.name}")
    source = (
        facts.daemons.contents.get(f"{stem}.network", "")
        if _is_port_of(parts, config.name)
        else text
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
