"""ifupdown2 (Debian's ifupdown2 3.x, Proxmox VE's network stack): the file that holds the NIC's
stanzas gets the bridge's stanzas in ifupdown2's syntax (``bridge-ports``, ``bridge-stp``,
``bridge-fd``, ``hwaddress``) and keeps a ``manual`` stanza for the NIC, its port.

Traps this writer avoids (docs/backends.md, ifupdown2):
- ``ifreload -a`` brings down every interface of its saved state that the new file no longer
  names: the NIC keeps a stanza (``iface NIC inet manual``), or the reload would take the
  bridge's port down.
- ``gateway`` adds the default route with ``proto kernel`` and ``onlink`` (ifupdown2's policy
  ``l3_intf_default_gateway_set_onlink``), which is not the route the runtime steps built, and
  with ``ip route add``, which fails once that route exists: default routes are written as
  ``up ip route replace`` lines, like the other routes.
- ifupdown2 has no ``accept_ra`` for a static stanza (only its dhcp addon reads it): an ``up``
  line turns router advertisements off on the bridge.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.backends.base import Backend
from fleetbr.backends.ifupdown import view as ifupdown_view
from fleetbr.backends.ifupdown.backend import (
    carried,
    check_hooks,
    source_text,
    without_stanzas,
)
from fleetbr.backends.ifupdown2 import topology, view
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

NAME = "ifupdown2"
HEADER = (
    "# {bridge}: managed by fleetbr (ifupdown2; a fleetbr rollback restores the previous file)."
)
_ADDRESSING = frozenset(
    {"address", "netmask", "gateway", "broadcast", "metric", "accept_ra", "hwaddress"}
)
_ROUTE_HOOKS = (["up", "ip", "-4", "route", "replace"], ["up", "ip", "-6", "route", "replace"])
RA_OFF = "up echo 0 > /proc/sys/net/ipv6/conf/{name}/accept_ra"


def route_line(route: Route, dev: str) -> str:
    check_route(route, NAME)
    parts = ["up", "ip", "-6" if route.family == 6 else "-4", "route", "replace", route.dst]
    if route.gateway:
        parts += ["via", route.gateway]
    parts += ["dev", dev]
    if route.metric is not None:
        parts += ["metric", str(route.metric)]
    if route.table != "main":
        parts += ["table", route.table]
    if route.protocol != "boot":  # ip's default: the route comes back as it was built
        parts += ["proto", route.protocol]
    if route.onlink:
        parts.append("onlink")
    return " ".join(parts)


def _stanza(config: BridgeConfig, family: int, carried_opts: list[str], bridge: bool) -> list[str]:
    """One ``iface`` stanza of ``config.name`` (the bridge's options in its first one)."""
    lines = [f"iface {config.name} {'inet' if family == 4 else 'inet6'} static"]
    if bridge:
        lines += [
            f"    bridge-ports {config.nic}",
            f"    bridge-stp {'on' if config.stp else 'off'}",
            f"    bridge-fd {config.forward_delay}",
        ]
        if config.mac:
            lines.append(f"    hwaddress {config.mac}")
    lines += [f"    address {a}" for a in config.family_addresses(family)]
    lines += [f"    {o}" for o in carried_opts if o.split()[0] not in _ADDRESSING]
    if family == 6:
        lines.append(f"    {RA_OFF.format(name=config.name)}")
    if len(config.defaults(family)) > 1:
        raise BackendRefusal(f"persist: {NAME}: more than one IPv{family} default route")
    routes = [r for r in config.routes if r.family == family]
    lines += [f"    {route_line(r, config.name)}" for r in routes]
    return lines


def is_own_option(option: str) -> bool:
    """An option fleetbr writes in the bridge's stanzas (rewritten from the task each time)."""
    words = option.split()
    ra_off = option.startswith("up echo 0 > /proc/sys/net/ipv6/conf/")
    return words[0].startswith(("bridge-", "bridge_")) or words[:5] in _ROUTE_HOOKS or ra_off


def _without(text: str, config: BridgeConfig) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """ifupdown's :func:`without_stanzas`, fleetbr's own ifupdown2 options left out."""
    return without_stanzas(text, config, HEADER, is_own_option)


def _families(config: BridgeConfig) -> list[int]:
    return [f for f in (4, 6) if config.family_addresses(f)]


def rewrite(text: str, config: BridgeConfig) -> str:
    """``text`` with the stanzas of the NIC (or of the bridge, persisted before) replaced by the
    bridge's and a ``manual`` stanza for the NIC."""
    kept, options, bond = _without(text, config)
    header = HEADER.format(bridge=config.name)
    out = [*kept, "", header, f"auto {config.nic}", f"iface {config.nic} inet manual"]
    out += [*(f"    {o}" for o in bond), ""]
    out.append(f"auto {config.name}")
    for i, family in enumerate(_families(config)):
        name = "inet" if family == 4 else "inet6"
        out += [*_stanza(config, family, options.get(name, []), bridge=i == 0), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def unwrite(text: str, config: BridgeConfig) -> str:
    """Unbridge: the bridge's stanzas (and the NIC's ``manual`` one) become the NIC's."""
    kept, options, bond = _without(text, config)
    plain = dataclasses.replace(config, name=config.nic)
    out = [*kept, "", f"auto {config.nic}"]
    for i, family in enumerate(_families(config)):
        name = "inet" if family == 4 else "inet6"
        opts = bond * (i == 0) + options.get(name, [])
        out += [*_stanza(plain, family, opts, bridge=False), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _args(config: BridgeConfig, **extra: str) -> dict[str, str | None]:
    return {"backend": NAME, "bridge": config.name, "nic": config.nic, **extra}


class Ifupdown2Backend(Backend):
    """ifupdown2: the NIC's stanzas become the bridge's; ``ifreload -a`` applies them and
    ``ifquery -c`` checks the running state against the file."""

    name = NAME
    tool = NAME
    settled = ("up",)
    templates = Path(__file__).resolve().parent / "templates"
    view_words = (view.WORD,)
    view_rank = 30
    precedence = 3
    # both read /etc/network/interfaces and ship ifup/ifdown/ifquery: a host has one or the other
    replaces = ("ifupdown",)
    topologies = frozenset(
        {"bond_port", "bond_create", "vlan_uplink", "multi_bridge", "vlan_filtering",
         "vlan_interface", "host_only"}
    )  # fmt: skip
    # eth0.10's stanza is among those the topology writer rewrites (topology._rewritten)
    rewrites_vlan_sources = True

    def parse_config(self, ctx: ViewContext) -> None:
        """The ``iface`` stanzas of each file it reads (Daemons.ifupdown: ifupdown's format)."""
        if self.tool in ctx.present:
            ctx.found["ifupdown"] = ifupdown_view.ifupdown_stanzas(ctx.contents)

    def parse_view(self, ctx: ViewContext) -> None:
        """Each interface that is up in its saved state or has a stanza (installed only)."""
        if self.tool in ctx.present:
            view.add_views(ctx, self.name, ctx.found.get("ifupdown", {}))

    def refusals(self, facts: HostFacts, nic: str, bridge: str) -> None:
        """Also: exactly one file holds the NIC's (or the bridge's) stanzas, whole."""
        super().refusals(facts, nic, bridge)
        source_text(facts, nic, bridge)

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan`."""
        path, holder, text = source_text(facts, config.nic, config.name)
        if holder == config.nic:
            check_hooks(text, config.nic)
        new = rewrite(text, config)
        return BackendPlan(
            NAME,
            (FileChange(path, new),),
            _args(config),
            managers=(config.name,),
            carried=carried(new, config.name),
        )

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.unplan`."""
        path, _, text = source_text(facts, config.nic, config.name)
        new = unwrite(text, config)
        args = _args(config, direction="unbridge")
        return BackendPlan(NAME, (FileChange(path, new),), args, managers=(config.nic,))

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """See :meth:`Backend.plan_topology` (fleetbr.backends.ifupdown2.topology)."""
        return topology.plan_topology(config, facts)
