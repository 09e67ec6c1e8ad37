"""ifupdown stanzas of an uplink topology (issue 17), for what Debian 12's ifupdown 0.8 with
bridge-utils 1.7 applies on its own: several bridges, host-only ones (``bridge_ports none``) and
VLAN ports (``bridge_ports eth0.20``: bridge-utils' ``create_vlan_port`` creates the VLAN device
on ``ifup``, sets its parent up, and deletes it on ``ifdown``). Bonds need the ifenslave package
(``bond-slaves``) and VLAN-aware bridges a per-port VLAN table (``bridge-vids``: ifupdown2 only),
so the backend does not declare them (Backend.topologies): they are refused before any change.

One file holds the stanzas: the one with the stanzas of the NICs whose addresses move or that
become a port (they lose their stanzas, their other options move to the bridge), else
/etc/network/interfaces. Each bridge gets a header line, ``auto`` and its stanzas at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbr.backends.ifupdown import backend as ifd
from fleetbr.backends.ifupdown.view import INTERFACES
from fleetbr.backends.model import (
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    Holder,
    TopologyConfig,
)
from fleetbr.facts.model import HostFacts

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import TopoBridge


def _stanza_file(facts: HostFacts, names: list[str]) -> str:
    """The one file with stanzas of any of ``names`` (/etc/network/interfaces if none has)."""
    files = {p for p, stanzas in facts.daemons.ifupdown.items() for n in names if n in stanzas}
    if len(files) > 1:
        raise BackendRefusal(
            "persist: ifupdown: the topology's interfaces have stanzas in "
            f"{', '.join(sorted(files))}; fleetbr rewrites exactly one file"
        )
    path = files.pop() if files else INTERFACES
    if path not in facts.daemons.contents:
        raise BackendRefusal(f"persist: ifupdown: the facts do not hold the content of {path}")
    return path


def _port_word(bridge: TopoBridge) -> str:
    return bridge.port or "none"


def _taken(config: TopologyConfig, bridge: TopoBridge) -> list[str]:
    """The devices whose stanzas the bridge takes over: itself (persisted before), its address
    source and its port when that is a NIC (not a VLAN device bridge-utils creates)."""
    held = config.holder(bridge.name)
    names = [bridge.name]
    if held is not None and held.source:
        names.append(held.source)
    if bridge.nic is not None and bridge.vlan is None:
        names.append(bridge.nic)
    return list(dict.fromkeys(names))


def _bridge_lines(
    config: TopologyConfig, bridge: TopoBridge, options: dict[str, list[str]]
) -> list[str]:
    held = config.holder(bridge.name) or Holder(bridge.name, (), ())
    plain = BridgeConfig(
        name=bridge.name,
        nic=_port_word(bridge),
        mac=config.macs.get(bridge.name),
        stp=bridge.stp,
        forward_delay=bridge.forward_delay,
        addresses=held.addresses,
        routes=held.routes,
    )
    out = [ifd.HEADER.format(bridge=bridge.name), f"auto {bridge.name}"]
    families = [f for f in (4, 6) if plain.family_addresses(f)]
    for i, family in enumerate(families):
        carried = options.get("inet" if family == 4 else "inet6", [])
        out += [*ifd._stanza(plain, family, carried, first=i == 0), ""]
    if not families:  # no address: the bridge is up with no address (as at runtime)
        out += [f"iface {bridge.name} inet manual"]
        out += ifd._stanza(plain, 4, options.get("inet", []), first=True)[1:]
        out.append("")
    return out


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten file; ``ifup`` records each bridge as up."""
    if not any(b.name == "brctl" and b.present for b in facts.backends):
        raise BackendRefusal(
            "persist: ifupdown: bridge-utils is not installed, so ifupdown cannot build the "
            "bridges at boot (apt-get install bridge-utils)"
        )
    bridges = config.topology.bridges
    taken = {b.name: _taken(config, b) for b in bridges}
    path = _stanza_file(facts, [n for names in taken.values() for n in names])
    text = facts.daemons.contents[path]
    headers = {ifd.HEADER.format(bridge=b.name) for b in bridges}
    stanzas = facts.daemons.ifupdown.get(path, ())
    prior: list[str] = []
    tail: list[str] = []
    for bridge in bridges:
        options: dict[str, list[str]] = {}
        for name in taken[bridge.name]:
            if name not in stanzas:
                continue
            if name != bridge.name:
                ifd.check_hooks(text, name)
                prior.append(name)
            lines, found = ifd.split(text, name)
            text = "\n".join(lines) + "\n"
            for family, opts in found.items():
                options.setdefault(family, []).extend(o for o in opts if not ifd._ours(o))
        tail += _bridge_lines(config, bridge, options)
    kept = [line for line in text.split("\n") if line.strip() not in headers]
    while kept and not kept[-1].strip():
        kept.pop()
    new = "\n".join([*kept, "", *tail]).rstrip("\n") + "\n"
    args = {
        "backend": "ifupdown",
        "bridge": bridges[0].name,
        "nic": bridges[0].port or bridges[0].name,
        "links": " ".join(b.name for b in bridges),
        "prior_links": " ".join(dict.fromkeys(prior)) or None,
    }
    return BackendPlan(
        "ifupdown", (FileChange(path, new),), args, managers=tuple(b.name for b in bridges)
    )
