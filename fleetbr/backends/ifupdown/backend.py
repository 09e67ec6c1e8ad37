"""ifupdown (with bridge-utils): the file that holds the NIC's stanzas loses them (``auto``,
``allow-*`` and ``iface`` lines of the NIC) and gains the bridge's stanzas. Options of the NIC's
stanzas other than its addresses (dns-*, mtu...) move to the bridge's stanza of that family."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from fleetbr.backends import carry
from fleetbr.backends.base import Backend
from fleetbr.backends.carry import Carried, PolicyRule
from fleetbr.backends.ifupdown import bond, topology, view
from fleetbr.backends.model import (
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    TopologyConfig,
    check_route,
)
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.views import ViewContext
from fleetbr.validate import split_lines

_TOP = ("iface", "auto", "allow-", "mapping", "source", "source-directory", "rename", "no-")
_ADDRESSING = frozenset(
    {"address", "netmask", "gateway", "broadcast", "network", "pointopoint", "accept_ra", "metric"}
)
HEADER = "# {bridge}: managed by fleetbr (a fleetbr rollback restores the previous file)."
_HOOKS = frozenset({"pre-up", "up", "post-up"})
_IP_ADDRESS = frozenset({"a", "ad", "add", "addr", "addre", "addres", "address"})


def source_file(facts: HostFacts, nic: str, bridge: str) -> tuple[str, str]:
    """The one ifupdown file with stanzas for ``nic`` (or, persisted before, for the bridge),
    and which of the two it holds."""
    for name in (nic, bridge):
        files = [path for path, names in facts.daemons.ifupdown.items() if name in names]
        if len(files) == 1:
            return files[0], name
        if files:
            raise BackendRefusal(
                f"persist: ifupdown: {name} has stanzas in {', '.join(files)}; "
                "fleetbr rewrites exactly one file"
            )
    raise BackendRefusal(f"persist: ifupdown: no file has stanzas for {nic} or {bridge}")


def source_text(facts: HostFacts, nic: str, bridge: str) -> tuple[str, str, str]:
    """:func:`source_file`, and its text (refused when the facts do not hold it)."""
    path, holder = source_file(facts, nic, bridge)
    text = facts.daemons.contents.get(path)
    if text is None:
        raise BackendRefusal(f"persist: ifupdown: the facts do not hold the content of {path}")
    return path, holder, text


def _is_top(line: str) -> bool:
    word = line.split(maxsplit=1)[0] if line.split() else ""
    return any(word == t or (t.endswith("-") and word.startswith(t)) for t in _TOP)


def split(text: str, nic: str) -> tuple[list[str], dict[str, list[str]]]:
    """The file's lines without the stanzas of ``nic`` (an interface name), and their options
    per family. Lines end at ``\\n`` only (a ``\\f`` or U+2028 inside a comment is no line
    break)."""
    kept: list[str] = []
    options: dict[str, list[str]] = {}
    current: str | None = None
    for line in split_lines(text):
        words = line.split()
        if words and _is_top(line) and not line[0].isspace():
            current = None
            if words[0] == "iface" and len(words) > 1 and words[1] == nic:
                if len(words) < 4 or words[3] not in ("static", "manual"):
                    raise BackendRefusal(
                        f"persist: ifupdown: {nic} uses method {' '.join(words[2:]) or '?'}; "
                        "fleetbr persists static addresses only"
                    )
                current = words[2]
                options.setdefault(current, [])
                continue
            if words[0] == "auto" or words[0].startswith("allow-"):
                names = [w for w in words[1:] if w != nic]
                if len(names) != len(words) - 1:
                    if names:
                        kept.append(" ".join([words[0], *names]))
                    continue
        elif current is not None and words and not words[0].startswith("#"):
            options[current].append(" ".join(words))
            continue
        elif current is not None and words and line[0].isspace():
            options[current].append(line.strip())  # an indented comment moves with the stanza
            continue
        if current is None or (words and words[0].startswith("#")):
            kept.append(line)  # a comment at the margin stays where it is
    return kept, options


def _adds_address(option: str) -> bool:
    """A hook that adds an address with iproute2: ``up ip [-4|-6...] addr add|replace ...``."""
    words = option.split()
    if not words or words[0] not in _HOOKS:
        return False
    for i, word in enumerate(words[1:-2], start=1):
        if word.rsplit("/", 1)[-1] != "ip":
            continue
        rest = [w for w in words[i + 1 :] if not w.startswith("-")]
        if len(rest) >= 2 and rest[0] in _IP_ADDRESS and rest[1] in ("add", "replace"):
            return True
    return False


def check_hooks(text: str, nic: str) -> None:
    """Refuse a NIC whose stanzas add addresses in hook commands: moved to the bridge's stanza,
    they would put the addresses back on the port (the apply was confirmed wrong, then rolled
    back), and fleetbr cannot tell which of them it moved."""
    for family, opts in split(text, nic)[1].items():
        hooks = [o for o in opts if _adds_address(o)]
        if hooks:
            raise BackendRefusal(
                f"persist: ifupdown: {nic} ({family}) gets addresses from hook commands "
                f"({hooks[0]!r}); fleetbr persists addresses written as 'address' lines only"
            )


def _route_line(route: Route, bridge: str) -> str:
    check_route(route, "ifupdown")
    family = "-6" if route.family == 6 else "-4"
    parts = ["up", "ip", family, "route", "replace", route.dst]
    if route.gateway:
        parts += ["via", route.gateway]
    parts += ["dev", bridge]
    if route.metric is not None:
        parts += ["metric", str(route.metric)]
    if route.table != "main":
        parts += ["table", route.table]
    if route.onlink:
        parts.append("onlink")
    return " ".join(parts)


def _stanza(config: BridgeConfig, family: int, carried: list[str], first: bool) -> list[str]:
    name = "inet" if family == 4 else "inet6"
    lines = [f"iface {config.name} {name} static"]
    if first:
        lines += [
            f"    bridge_ports {config.nic}",
            f"    bridge_stp {'on' if config.stp else 'off'}",
            f"    bridge_fd {config.forward_delay}",
        ]
        if config.mac:
            lines.append(f"    bridge_hw {config.mac}")
    lines += [f"    address {a}" for a in config.family_addresses(family)]
    defaults = config.defaults(family)
    if len(defaults) > 1:
        raise BackendRefusal(f"persist: ifupdown: more than one IPv{family} default route")
    if defaults:
        check_route(defaults[0], "ifupdown", tables=False)
        lines.append(f"    gateway {defaults[0].gateway}")
        if defaults[0].metric is not None:
            lines.append(f"    metric {defaults[0].metric}")
    if family == 6:
        lines.append("    accept_ra 0")
    lines += [f"    {option}" for option in carried if option.split()[0] not in _ADDRESSING]
    others = [r for r in config.routes if r.family == family and r not in defaults]
    lines += [f"    {_route_line(r, config.name)}" for r in others]
    return lines


def _ours(option: str) -> bool:
    """An option fleetbr writes in the bridge's stanzas (rewritten from the task each time)."""
    words = option.split()
    return words[0].startswith("bridge_") or words[:5] in (
        ["up", "ip", "-4", "route", "replace"],
        ["up", "ip", "-6", "route", "replace"],
    )


def rewrite(text: str, config: BridgeConfig, holder: str | None = None) -> str:
    """``text`` with the stanzas of ``holder`` (the NIC, or the bridge when persisted before)
    replaced by the bridge's."""
    kept, options = split(text, holder or config.nic)
    if holder == config.name:
        header = HEADER.format(bridge=config.name)
        kept = [line for line in kept if line.strip() != header]
        options = {fam: [o for o in opts if not _ours(o)] for fam, opts in options.items()}
    while kept and not kept[-1].strip():
        kept.pop()
    return _joined([*kept, "", *_bridge_stanzas(config, options)])


def _bridge_stanzas(config: BridgeConfig, options: dict[str, list[str]]) -> list[str]:
    """fleetbr's header, ``auto BRIDGE`` and a stanza per family with ``options`` carried."""
    out = [HEADER.format(bridge=config.name), f"auto {config.name}"]
    families = [f for f in (4, 6) if config.family_addresses(f)]
    for i, family in enumerate(families):
        name = "inet" if family == 4 else "inet6"
        out += [*_stanza(config, family, options.get(name, []), first=i == 0), ""]
    return out


def _joined(lines: list[str]) -> str:
    return "\n".join(lines).rstrip("\n") + "\n"


_RULE_WORDS = {"from": "from", "to": "to", "table": "table", "lookup": "table"}
_RULE_WORDS |= dict.fromkeys(("priority", "pref", "preference", "prio"), "priority")


def _rule(option: str) -> PolicyRule | None:
    """The rule an ``up ip rule add ...`` option adds, when fleetbr can compare it (other
    commands are carried as they are, unchecked)."""
    words = option.split()
    if words[:1] not in (["up"], ["post-up"]) or words[1:2] != ["ip"]:
        return None
    family = {"-4": 4, "-6": 6}.get(words[2]) if len(words) > 2 else None
    rest = words[3:] if family else words[2:]
    if rest[:2] != ["rule", "add"] or len(rest) % 2:
        return None
    pairs = list(zip(rest[2::2], rest[3::2], strict=True))
    if not all(key in _RULE_WORDS for key, _ in pairs):
        return None
    selectors: dict[str, object] = {_RULE_WORDS[key]: value for key, value in pairs}
    return carry.rule(selectors, "ifupdown", f"option '{option}'", family)


def carried(text: str, bridge: str) -> Carried:
    """The MTU, name servers and policy rules (``up ip rule add``) the bridge's stanzas give it."""
    options = [o for opts in split(text, bridge)[1].values() for o in opts]
    mtus = [o.split()[1] for o in options if o.split()[0] == "mtu" and len(o.split()) > 1]
    dns = [w for o in options if o.split()[0] == "dns-nameservers" for w in o.split()[1:]]
    return Carried(
        mtu=carry.mtu(mtus[-1], "ifupdown", "mtu") if mtus else None,
        rules=tuple(r for r in map(_rule, options) if r is not None),
        dns=tuple(dns),
    )


def without_stanzas(
    text: str, config: BridgeConfig, header: str, ours: Callable[[str], bool]
) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """The file's lines without the stanzas of the NIC and the bridge (nor ``header``, the
    backend's header line with ``{bridge}``); the options to carry per family: the bridge's
    (those ``ours`` names left out) once it has stanzas, else the NIC's; and the NIC's
    ``bond-*`` options, which stay its own (ifupdown's and ifupdown2's bond as the port)."""
    kept, nic_options = split(text, config.nic)
    kept, options = split("\n".join(kept) + "\n", config.name)
    kept = [line for line in kept if line.strip() != header.format(bridge=config.name)]
    while kept and not kept[-1].strip():
        kept.pop()
    own = list(
        dict.fromkeys(o for opts in nic_options.values() for o in opts if bond.is_bond_option(o))
    )
    carried = {fam: [o for o in opts if not ours(o) and not bond.is_bond_option(o)]
               for fam, opts in (options or nic_options).items()}  # fmt: skip
    return kept, carried, own


def rewrite_bond_port(text: str, config: BridgeConfig) -> str:
    """``text`` with an existing bond (the NIC) as the bridge's port: the bond keeps a
    ``manual`` stanza with its ``bond-*`` options (ifenslave builds it at boot, before the
    bridge), its other options move to the bridge's stanzas (once persisted: the bridge's own)."""
    kept, carried, own = without_stanzas(text, config, HEADER, _ours)
    out = [*kept, "", f"auto {config.nic}", *bond.port_stanza(config.nic, own), ""]
    return _joined([*out, *_bridge_stanzas(config, carried)])


def plan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """The rewritten interfaces file; ``ifup`` records the bridge as up."""
    if not any(b.name == "brctl" and b.present for b in facts.backends):
        raise BackendRefusal(
            "persist: ifupdown: bridge-utils is not installed, so ifupdown cannot build the "
            "bridge at boot (apt-get install bridge-utils)"
        )
    path, holder, text = source_text(facts, config.nic, config.name)
    args = {"backend": "ifupdown", "bridge": config.name, "nic": config.nic}
    if holder == config.nic:
        check_hooks(text, config.nic)
    if facts.topology.bond(config.nic) is not None:
        bond.require_ifenslave(facts)
        new = rewrite_bond_port(text, config)
        # the bond keeps its stanza and ifupdown's state: never taken down (shell.sh.j2)
        args["kept_links"] = config.nic
    else:
        new = rewrite(text, config, holder)
    return BackendPlan(
        "ifupdown",
        (FileChange(path, new),),
        args,
        managers=(config.name,),
        carried=carried(new, config.name),
    )


def unplan(config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the bridge's stanzas become the NIC's again (not written for a bond yet)."""
    if facts.topology.bond(config.nic) is not None:
        raise BackendRefusal(
            f"persist: ifupdown: unbridging bond {config.nic} is not written yet "
            "(use persist: none for a runtime-only change)"
        )
    path, holder, text = source_text(facts, config.nic, config.name)
    kept, options = split(text, holder)
    header = HEADER.format(bridge=config.name)
    kept = [line for line in kept if line.strip() != header]
    while kept and not kept[-1].strip():
        kept.pop()
    plain = dataclasses.replace(config, name=config.nic)
    out = [*kept, "", f"auto {config.nic}"]
    for family in (f for f in (4, 6) if config.family_addresses(f)):
        name = "inet" if family == 4 else "inet6"
        carried = [o for o in options.get(name, []) if not _ours(o)]
        out += [*_stanza(plain, family, carried, first=False), ""]
    args = {
        "backend": "ifupdown",
        "bridge": config.name,
        "nic": config.nic,
        "direction": "unbridge",
    }
    new = "\n".join(out).rstrip("\n") + "\n"
    return BackendPlan("ifupdown", (FileChange(path, new),), args, managers=(config.nic,))


class IfupdownBackend(Backend):
    """ifupdown (with bridge-utils): the NIC's stanzas become the bridge's."""

    name = "ifupdown"
    tool = "ifupdown"
    settled = ("up",)
    templates = Path(__file__).resolve().parent / "templates"
    view_words = ("ifstate",)
    view_rank = 30
    precedence = 3
    # what ifupdown 0.8 with bridge-utils applies itself, and bonds with ifenslave (refused by
    # the facts on a host without it: bond.py); no VLAN-aware bridges (bridge-utils has no
    # per-port VLAN table); topology.py
    topologies = frozenset({"bond_port", "bond_create", "vlan_uplink", "multi_bridge", "host_only"})

    def parse_config(self, ctx: ViewContext) -> None:
        """The ``iface`` stanzas of each file ifupdown reads (Daemons.ifupdown)."""
        ctx.found["ifupdown"] = view.ifupdown_stanzas(ctx.contents)

    def parse_view(self, ctx: ViewContext) -> None:
        """Each interface that is up or has a stanza."""
        view.add_views(ctx, ctx.found["ifupdown"])

    def refusals(self, facts: HostFacts, nic: str, bridge: str) -> None:
        """Also: exactly one file holds the NIC's (or the bridge's) stanzas, whole."""
        super().refusals(facts, nic, bridge)
        source_text(facts, nic, bridge)

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan`."""
        return plan(config, facts)

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.unplan`."""
        return unplan(config, facts)

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan_topology` (fleetbr.backends.ifupdown.topology)."""
        return topology.plan_topology(config, facts)
