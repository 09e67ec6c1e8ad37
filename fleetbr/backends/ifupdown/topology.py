"""ifupdown stanzas of an uplink topology (issue 17), for what Debian 12's ifupdown 0.8 with
bridge-utils 1.7 and ifenslave 2.13 applies: several bridges, host-only ones (``bridge_ports
none``), VLAN ports (``bridge_ports eth0.20``: bridge-utils' ``create_vlan_port`` creates the
VLAN device on ``ifup``, sets its parent up, and deletes it on ``ifdown``) and bonds, new or
existing (``bridge_ports bond0``; the stanzas: bond.py), which need ifenslave on the host (a
facts check refuses them without it). VLAN-aware bridges need a per-port VLAN table
(``bridge-vids``: ifupdown2 only), so the backend does not declare them (Backend.topologies):
they are refused before any change.

One file holds the stanzas: the one with the stanzas of the NICs whose addresses move or that
become a port or a new bond's slave (they lose their stanzas, their other options move to the
bridge), else /etc/network/interfaces. Each bridge gets a header line, the stanzas below it (a
new bond, then its slaves; or an existing bond that is its port) and its own, at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetbr.backends.ifupdown import backend as ifd
from fleetbr.backends.ifupdown import bond
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
    source, its port when that is a NIC or a bond (not a VLAN device bridge-utils creates), and
    a new bond's slaves and the bond itself (written again)."""
    held = config.holder(bridge.name)
    names = [bridge.name]
    if held is not None and held.source:
        names.append(held.source)
    if bridge.bond is not None:
        names += [*bridge.bond.slaves, bridge.bond.name]
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
    out = [f"auto {bridge.name}"]
    families = [f for f in (4, 6) if plain.family_addresses(f)]
    for i, family in enumerate(families):
        carried = options.get("inet" if family == 4 else "inet6", [])
        out += [*ifd._stanza(plain, family, carried, first=i == 0), ""]
    if not families:  # no address: the bridge is up with no address (as at runtime)
        out += [f"iface {bridge.name} inet manual"]
        out += ifd._stanza(plain, 4, options.get("inet", []), first=True)[1:]
        out.append("")
    return out


@dataclass
class _Out:
    """The stanzas written (after each bridge's header) and the interfaces they name, in order."""

    lines: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def add(self, name: str, stanza: list[str]) -> None:
        self.links.append(name)
        self.lines += [f"auto {name}", *stanza, ""]


def _lower(
    config: TopologyConfig, bridge: TopoBridge, facts: HostFacts, bond_opts: list[str], out: _Out
) -> None:
    """The stanzas below ``bridge``: a new bond and its slaves (once), or an existing bond that
    is the port (its ``bond-*`` options kept)."""
    new = bridge.bond
    if new is not None and new.name not in out.links:
        if facts.link(new.name) is not None and new.name not in _fleetbrs(facts, config):
            raise BackendRefusal(
                f"persist: ifupdown: bond {new.name} exists already and its stanza is not "
                "fleetbr's (use persist: none for a runtime-only change)"
            )
        out.add(new.name, bond.bond_stanza(new))
        for slave in new.slaves:
            out.add(slave, bond.slave_stanza(slave, new.name))
    elif new is None and bridge.vlan is None and bridge.nic in config.host_bonds:
        out.add(bridge.nic, bond.port_stanza(bridge.nic, bond_opts))


def _fleetbrs(facts: HostFacts, config: TopologyConfig) -> set[str]:
    """The interfaces whose stanzas follow one of the topology's headers (a plan applied
    before)."""
    headers = {ifd.HEADER.format(bridge=b.name) for b in config.topology.bridges}
    names: set[str] = set()
    for text in facts.daemons.contents.values():
        lines = text.split("\n")
        first = next((i for i, line in enumerate(lines) if line.strip() in headers), len(lines))
        names.update(ln.split()[1] for ln in lines[first:]
                     if ln.startswith("iface ") and len(ln.split()) > 1)  # fmt: skip
    return names


def _uses_bonds(config: TopologyConfig) -> bool:
    return any(b.bond is not None or (b.nic in config.host_bonds and b.vlan is None)
               for b in config.topology.bridges)  # fmt: skip


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten file; ``ifup`` records each interface it names as up."""
    if not any(b.name == "brctl" and b.present for b in facts.backends):
        raise BackendRefusal(
            "persist: ifupdown: bridge-utils is not installed, so ifupdown cannot build the "
            "bridges at boot (apt-get install bridge-utils)"
        )
    if _uses_bonds(config):
        bond.require_ifenslave(facts)
    bridges = config.topology.bridges
    taken = {b.name: _taken(config, b) for b in bridges}
    path = _stanza_file(facts, [n for names in taken.values() for n in names])
    text = facts.daemons.contents[path]
    headers = {ifd.HEADER.format(bridge=b.name) for b in bridges}
    stanzas = facts.daemons.ifupdown.get(path, ())
    prior: list[str] = []
    out = _Out()
    for bridge in bridges:
        options: dict[str, list[str]] = {}
        bond_opts: list[str] = []
        for name in taken[bridge.name]:
            if name not in stanzas or name in out.links:
                continue
            if name != bridge.name:
                ifd.check_hooks(text, name)
                prior.append(name)
            lines, found = ifd.split(text, name)
            text = "\n".join(lines) + "\n"
            for family, opts in found.items():
                bond_opts += [o for o in opts if bond.is_bond_option(o)]
                options.setdefault(family, []).extend(
                    o for o in opts if not ifd._ours(o) and not bond.is_bond_option(o)
                )
        out.lines.append(ifd.HEADER.format(bridge=bridge.name))
        _lower(config, bridge, facts, bond_opts, out)
        out.lines += _bridge_lines(config, bridge, options)
        out.links.append(bridge.name)
    kept = [line for line in text.split("\n") if line.strip() not in headers]
    while kept and not kept[-1].strip():
        kept.pop()
    new = "\n".join([*kept, "", *out.lines]).rstrip("\n") + "\n"
    new_bonds = [b.name for b in config.new_bonds(facts)]
    args = {
        "backend": "ifupdown",
        "bridge": bridges[0].name,
        "nic": bridges[0].port or bridges[0].name,
        "links": " ".join(out.links),
        "prior_links": " ".join(dict.fromkeys(prior)) or None,
        # deleted by the rollback's release before ifupdown forgets them (shell.sh.j2)
        "new_bond_links": " ".join(new_bonds) or None,
    }
    return BackendPlan("ifupdown", (FileChange(path, new),), args, managers=tuple(out.links))
