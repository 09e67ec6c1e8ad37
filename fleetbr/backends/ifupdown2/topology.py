"""ifupdown2 stanzas of an uplink topology (issue 17; Proxmox VE's layout: a VLAN-aware bridge over
a bond, management on a VLAN interface of the bridge). The one file that holds the stanzas of the
devices the task takes loses them, and gains, after fleetbr's header, ``manual`` stanzas for the
bond slaves and ports, each bond's stanza (``bond-slaves``, ``bond-mode``, ``bond-*`` options),
each bridge's (``bridge-ports``, ``bridge-stp``, ``bridge-fd``, ``bridge-vlan-aware yes``,
``hwaddress``, addresses, routes) and each VLAN interface's. Keywords checked against ifupdown2
3.0.0's addons (Debian 12): bond.py, bridge.py, vlan.py.

Traps (docs/topologies.md):
- ``bridge-vids`` / ``bridge-pvid`` are written on the port's stanza (the port's own VLAN table),
  not on the bridge's, which would make them the default of every port.
- ifupdown2 never sets ``vlan_default_pvid``: a bridge it creates at boot has the kernel's 1, so
  each port and the bridge itself start with VLAN 1 untagged. The runtime steps build the bridge
  with 0 (no VLAN the task does not list); ``post-up`` lines set 0 again and then add the PVID
  entries that setting 0 takes away (the kernel drops a PVID equal to the old default).
- A bond ifupdown2 creates at boot gets udev's MAC (MACAddressPolicy=persistent) or its first
  slave's, whichever comes first. ``hwaddress`` on the bond's stanza would pin it, but
  ifupdown2 (addons/address.py) sets a bond's MAC by taking its slaves down and up again, and
  after a reboot the backup slave stayed down (VM tier): not written. The bridge's is pinned.
- ifupdown2 adds a VLAN interface's VLAN to the bridge itself (vlan.py) when it creates it.
- The file is a mako template for ifupdown2 (``template_enable=1``): nothing written here starts
  with ``%`` or holds ``${``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import fleetbr.backends.ifupdown2.backend as i2  # its helpers (it imports this module)
from fleetbr.backends.ifupdown.backend import check_hooks, split
from fleetbr.backends.model import BackendPlan, BackendRefusal, FileChange, Holder, TopologyConfig
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import BondSpec, OptionValue, TopoBridge

NAME = "ifupdown2"
DEFAULT_FILE = "/etc/network/interfaces"
HEADER = "# uplink topology: managed by fleetbr (ifupdown2; a fleetbr rollback restores the file)."
# bond option -> ifupdown2 keyword (bond.py of 3.0.0 has no arp_*, ad_select, fail_over_mac,
# all_slaves_active or tlb_dynamic_lb attribute: those stay refused)
_BOND_KEYS = {
    "miimon": "bond-miimon",
    "updelay": "bond-updelay",
    "downdelay": "bond-downdelay",
    "use_carrier": "bond-use-carrier",
    "lacp_rate": "bond-lacp-rate",
    "min_links": "bond-min-links",
    "xmit_hash_policy": "bond-xmit-hash-policy",
    "primary": "bond-primary",
    "primary_reselect": "bond-primary-reselect",
}
# options of a holder's old stanza that fleetbr writes itself (never carried)
_OWN_PREFIXES = ("bridge-", "bridge_", "bond-", "bond_", "vlan-", "vlan_")
_OWN_WORDS = frozenset({"address", "netmask", "gateway", "broadcast", "metric", "accept_ra",
                        "hwaddress", "network", "pointopoint"})  # fmt: skip


@dataclass
class _Out:
    """The stanzas written, in order, and the interfaces ifupdown2 then owns (``links``)."""

    stanzas: list[list[str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def add(self, name: str, lines: list[str]) -> None:
        if name in self.links:
            raise BackendRefusal(f"persist: {NAME}: {name} would have two stanzas")
        self.links.append(name)
        self.stanzas.append([f"auto {name}", *lines])


def _manual(name: str, options: Sequence[str] = ()) -> list[str]:
    return [f"iface {name} inet manual", *(f"    {o}" for o in options)]


def _option(key: str, value: OptionValue, bond: str) -> str:
    if key not in _BOND_KEYS:
        raise BackendRefusal(
            f"persist: {NAME}: bond {bond}: option {key} has no keyword in ifupdown2 "
            "(use persist: none for a runtime-only change)"
        )
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return f"{_BOND_KEYS[key]} {value}"


def bond_options(bond: BondSpec) -> list[str]:
    """The bond's stanza options: its slaves, its mode and the task's options."""
    lines = [f"bond-slaves {' '.join(bond.slaves)}", f"bond-mode {bond.mode}"]
    return lines + [_option(k, v, bond.name) for k, v in bond.options]


def _vids(entries: tuple[PortVlan, ...]) -> list[str]:
    """``bridge-vids`` and ``bridge-pvid`` of a port's VLAN table."""
    vids = [str(e.vid) if e.vid == e.vid_end else f"{e.vid}-{e.vid_end}"
            for e in entries if not e.pvid]  # fmt: skip
    pvid = [e.vid for e in entries if e.pvid]
    return [f"bridge-vids {' '.join(vids)}"] * bool(vids) + [f"bridge-pvid {p}" for p in pvid]


def _pvid_lines(bridge: str, entries: tuple[PortVlan, ...]) -> list[str]:
    """A VLAN-aware bridge's ``post-up`` lines: no default PVID, then the PVID entries back."""
    lines = [f"post-up ip link set dev {bridge} type bridge vlan_default_pvid 0"]
    for e in entries:
        if e.pvid:
            flags = " pvid" + " untagged" * e.untagged + " self" * (e.dev == bridge)
            lines.append(f"post-up bridge vlan add vid {e.vid} dev {e.dev}{flags}")
    return lines


def _ours(option: str) -> bool:
    words = option.split()
    post = words[:1] == ["post-up"] and (words[1:2] == ["bridge"] or "vlan_default_pvid" in words)
    return i2.is_own_option(option) or words[0].startswith(_OWN_PREFIXES) or post


@dataclass(frozen=True)
class _Source:
    """The file's text without the stanzas the topology rewrites, and their options by device
    and family."""

    path: str
    kept: list[str]
    options: dict[str, dict[str, list[str]]]
    written: frozenset[str]  # the stanzas after fleetbr's header (a plan applied before)


def _rewritten(config: TopologyConfig, facts: HostFacts) -> list[str]:
    """Every device whose stanzas the topology rewrites (its VLAN parents' stay)."""
    names: list[str] = []
    for bridge in config.topology.bridges:
        names.append(bridge.name)
        names += [v.name for v in bridge.vlan_interfaces]
        if bridge.bond is not None:
            names += [*bridge.bond.slaves, bridge.bond.name]
        if bridge.port is not None:
            names.append(bridge.port)
    names += [h.source for h in config.holders if h.source and facts.link(h.source) is not None]
    return list(dict.fromkeys(names))


def _source(config: TopologyConfig, facts: HostFacts, names: list[str]) -> _Source:
    files = sorted({p for p, held in facts.daemons.ifupdown.items() if set(held) & set(names)})
    if len(files) > 1:
        raise BackendRefusal(
            f"persist: {NAME}: the task's interfaces have stanzas in {', '.join(files)}; "
            "fleetbr rewrites exactly one file"
        )
    path = files[0] if files else DEFAULT_FILE
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: {NAME}: the facts do not hold the content of {path}")
    written = _written_before(text)
    options: dict[str, dict[str, list[str]]] = {}
    for name in names:
        if name not in written and facts.link(name) is not None:
            check_hooks(text, name)
        kept, options[name] = split(text, name)
        text = "\n".join(kept) + "\n"
    lines = [line for line in text.split("\n") if line.strip() != HEADER]
    while lines and not lines[-1].strip():
        lines.pop()
    del config
    return _Source(path, lines, options, frozenset(written))


def _written_before(text: str) -> set[str]:
    """The names of the stanzas after fleetbr's header (a plan applied before)."""
    if HEADER not in text.split("\n"):
        return set()
    tail = text.split(HEADER, 1)[1].split("\n")
    return {w.split()[1] for w in tail if w.startswith("iface ") and len(w.split()) > 1}


def _carried(holder: Holder, src: _Source) -> dict[str, list[str]]:
    """The options a holder takes over per family: its own stanzas' (fleetbr's left out) when
    it has some, else its address source's (addressing left out)."""
    own = src.options.get(holder.dev) or {}
    source = own if any(own.values()) else src.options.get(holder.source) or {}
    return {fam: [o for o in opts if o.split()[0] not in _OWN_WORDS and not _ours(o)]
            for fam, opts in source.items()}  # fmt: skip


def _holder_stanzas(
    holder: Holder, head: list[str], src: _Source, tail: Sequence[str] = ()
) -> list[str]:
    """``holder``'s stanzas: ``head`` options (bridge-*, vlan-*) in the first one, one stanza
    per family it has addresses of (``manual`` when none), then ``tail`` (post-up lines)."""
    families = [f for f in (4, 6) if any((":" in a) == (f == 6) for a in holder.addresses)]
    if not families:
        return _manual(holder.dev, [*head, *tail])
    carried = _carried(holder, src)
    out: list[str] = []
    for i, family in enumerate(families):
        inet = "inet" if family == 4 else "inet6"
        out += [""] * bool(out) + [f"iface {holder.dev} {inet} static"]
        opts = list(head) if i == 0 else []
        opts += [f"address {a}" for a in holder.addresses if (":" in a) == (family == 6)]
        opts += carried.get(inet, [])
        if family == 6:
            opts.append(i2.RA_OFF.format(name=holder.dev))
        routes = [r for r in holder.routes if r.family == family]
        if len([r for r in routes if r.is_default]) > 1:
            raise BackendRefusal(f"persist: {NAME}: more than one IPv{family} default route")
        opts += [i2.route_line(r, holder.dev) for r in routes]
        opts += list(tail) if i == 0 else []
        out += [f"    {o}" for o in opts]
    return out


def plan_topology(config: TopologyConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten file: ifupdown2 builds the topology at boot and owns its interfaces."""
    names = _rewritten(config, facts)
    src = _source(config, facts, names)
    out = _Out()
    for bridge in config.topology.bridges:
        _lower(config, bridge, facts, src, out)
    for bridge in config.topology.bridges:
        _bridge(config, bridge, src, out)
    text = "\n".join([*src.kept, "", HEADER, *("\n".join(s) + "\n" for s in out.stanzas)])
    # ifupdown2 had these up before (its saved state): the rollback's ifreload brings them up
    # again and checks them; it downs the others (new devices, a spare NIC's manual stanza) first
    prior = [n for n in out.links if facts.link(n) is not None and _was_up(facts, n)]
    new = [n for n in reversed(out.links) if n not in prior]
    first = config.topology.bridges[0]
    args = {
        "backend": NAME,
        "bridge": first.name,
        "nic": first.port or first.name,
        "links": " ".join(out.links),
        "prior_links": " ".join(prior) or None,
        "new_links": " ".join(new) or None,
    }
    files = (FileChange(src.path, text.rstrip("\n") + "\n"),)
    return BackendPlan(NAME, files, args, managers=tuple(out.links))


def _was_up(facts: HostFacts, name: str) -> bool:
    return any(v.backend == NAME and v.state == "up" for v in facts.manager(name).views)


def _lower(
    config: TopologyConfig, bridge: TopoBridge, facts: HostFacts, src: _Source, out: _Out
) -> None:
    """The stanzas below ``bridge``: a new bond's slaves and the bond, or the port."""
    port = bridge.port
    if port is None:
        return
    vlans = _vids(config.entries(port))
    bond = bridge.bond
    if bond is not None and bond.name not in out.links:
        for slave in bond.slaves:
            out.add(slave, _manual(slave))
        if facts.link(bond.name) is not None and bond.name not in src.written:
            raise BackendRefusal(
                f"persist: {NAME}: bond {bond.name} exists already and its stanza is not "
                "fleetbr's (use persist: none for a runtime-only change)"
            )
        options = bond_options(bond) if bridge.vlan is not None else bond_options(bond) + vlans
        out.add(bond.name, _manual(bond.name, options))
    if bridge.vlan is not None:
        parent = bridge.nic or ""
        if facts.link(port) is not None and port not in src.written:
            raise BackendRefusal(
                f"persist: {NAME}: VLAN device {port} exists already; fleetbr writes the VLAN "
                "devices it creates only (use persist: none for a runtime-only change)"
            )
        out.add(port, _manual(port, [f"vlan-raw-device {parent}", f"vlan-id {bridge.vlan}",
                                     *vlans]))  # fmt: skip
        return
    if bond is not None:
        return
    kept = [o for fam in src.options.get(port, {}).values() for o in fam
            if o.split()[0].startswith(("bond-", "bond_"))]  # fmt: skip
    out.add(port, _manual(port, [*dict.fromkeys(kept), *vlans]))


def _bridge(config: TopologyConfig, bridge: TopoBridge, src: _Source, out: _Out) -> None:
    head = [f"bridge-ports {bridge.port or 'none'}", f"bridge-stp {'on' if bridge.stp else 'off'}",
            f"bridge-fd {bridge.forward_delay}"]  # fmt: skip
    tail: list[str] = []
    if bridge.vlan_filtering:
        head.append("bridge-vlan-aware yes")
        tail = _pvid_lines(bridge.name, config.entries(bridge.name) + _port_entries(config, bridge))
    mac = config.macs.get(bridge.name)
    if mac:
        head.append(f"hwaddress {mac}")
    own = config.holder(bridge.name) or Holder(bridge.name, (), ())
    out.add(bridge.name, _holder_stanzas(own, head, src, tail))
    for vif in bridge.vlan_interfaces:
        held = config.holder(vif.name) or Holder(vif.name, (), ())
        vlan = [f"vlan-raw-device {bridge.name}", f"vlan-id {vif.vid}"]
        out.add(vif.name, _holder_stanzas(held, vlan, src))


def _port_entries(config: TopologyConfig, bridge: TopoBridge) -> tuple[PortVlan, ...]:
    return config.entries(bridge.port) if bridge.port else ()
