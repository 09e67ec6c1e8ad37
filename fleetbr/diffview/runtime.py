"""A host's runtime network as readable lines, one list per section of the ``--diff`` view.

The lines carry what a change moves: links (kind, MTU, admin state, MAC), bridges (STP and
forward delay), bridge ports, global addresses per interface (with an IPv4 label that is not
the device's), routes of every table, the bridge-nf sysctls and the libvirt guests' interfaces.
Operational state (carrier, DAD, ...) is left out: no plan can say what it will be.
Lines are sorted where the kernel's order means nothing, so a before and an after compare
line by line. Values are raw here; the renderers escape them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from fleetbr.facts.model import HostFacts, Link, Route
from fleetbr.plan.steps import describe_route


@dataclass(frozen=True)
class GuestLine:
    """One guest interface: domain (uuid and name), scope (live/config), MAC, what it is
    attached to, its tap."""

    uuid: str
    domain: str
    scope: str
    mac: str
    attached: str
    tap: str = ""

    def text(self) -> str:
        """``guest NAME live 52:54:00:..:.. on bridge br0 (tap vnet0)``."""
        tap = f" (tap {self.tap})" if self.tap else ""
        return f"guest {self.domain} {self.scope} {self.mac} on {self.attached}{tap}"


@dataclass(frozen=True)
class RuntimeState:
    """The parts of the facts the view shows, in a form a plan can be laid over."""

    links: dict[str, Link]
    bridges: dict[str, tuple[bool, int]]  # name -> (stp, forward delay)
    addresses: dict[str, list[tuple[str, str | None]]]  # dev -> (cidr, label) global ones
    routes: list[Route]
    sysctls: dict[str, int | None]
    guests: list[GuestLine] = field(default_factory=list)


def state_of(facts: HostFacts) -> RuntimeState:
    """The facts as a :class:`RuntimeState`."""
    addresses: dict[str, list[tuple[str, str | None]]] = {}
    for address in facts.addresses:
        if address.scope == "global":
            addresses.setdefault(address.dev, []).append((address.cidr, address.label))
    return RuntimeState(
        links={link.name: link for link in facts.links},
        bridges={b.name: (b.stp, b.forward_delay) for b in facts.bridges},
        addresses=addresses,
        routes=list(facts.routes),
        sysctls=dict(facts.bridge_nf),
        guests=list(_guests(facts)),
    )


def _guests(facts: HostFacts) -> Iterator[GuestLine]:
    if facts.guests is None:
        return
    for domain in facts.guests.domains:
        name = domain.name or domain.uuid
        scopes = (("live", domain.live),) if domain.active else ()
        for scope, interfaces in (*scopes, ("config", domain.config or ())):
            for iface in interfaces:
                attached = f"{iface.type} {iface.source}".strip()
                yield GuestLine(domain.uuid, name, scope, iface.mac, attached, iface.tap)


def lines(state: RuntimeState) -> dict[str, tuple[str, ...]]:
    """Section name -> its lines (every section of :data:`fleetbr.diffview.model.SECTIONS`)."""
    return {
        "links": tuple(_link(state.links[name]) for name in sorted(state.links)),
        "bridges": tuple(
            f"{name} stp {'on' if stp else 'off'} forward_delay {delay}"
            for name, (stp, delay) in sorted(state.bridges.items())
        ),
        "ports": tuple(sorted(_ports(state))),
        "addresses": tuple(
            f"{dev} {cidr}" + (f" label {label}" if label and label != dev else "")
            for dev in sorted(state.addresses)
            for cidr, label in state.addresses[dev]
        ),
        "routes": tuple(sorted(_route(r) for r in state.routes)),
        "sysctls": tuple(
            f"net.bridge.bridge-nf-{key} = {'absent' if value is None else value}"
            for key, value in sorted(state.sysctls.items())
        ),
        "guests": tuple(sorted(g.text() for g in state.guests)),
    }


def _ports(state: RuntimeState) -> Iterator[str]:
    for link in state.links.values():
        if link.master:
            yield f"{link.master} port {link.name}"


def _link(link: Link) -> str:
    mac = f" mac {link.mac}" if link.mac else ""
    return f"{link.name} {link.kind} mtu {link.mtu} {'up' if link.admin_up else 'down'}{mac}"


def _route(route: Route) -> str:
    family = f"ipv{route.family}"
    proto = f" proto {route.protocol}" if route.protocol else ""
    return f"{family} {describe_route(route)}{proto}"
