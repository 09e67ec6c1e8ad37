"""What a persistence backend is given (the bridge as confirmed) and what it returns (files to
write or remove, files its own tool rewrites, and the interfaces it must then call its own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetbr.errors import PlanRefused
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.topology import PortVlan

if TYPE_CHECKING:
    from fleetbr.backends.carry import Carried
    from fleetbr.changes.bridge.topology import BondSpec, Topology

CONFIG_MODE = "0644"
PRIVATE_MODE = "0600"  # NetworkManager ignores keyfiles readable by others; netplan warns


class BackendRefusal(PlanRefused):
    """The backend cannot persist this bridge safely; the message says why (one line)."""


@dataclass(frozen=True)
class BridgeConfig:
    """The bridge the runtime steps build, as the backend must describe it."""

    name: str
    nic: str
    mac: str | None
    stp: bool
    forward_delay: int
    addresses: tuple[str, ...]
    routes: tuple[Route, ...]  # every non-kernel route through the bridge, any table

    def defaults(self, family: int) -> tuple[Route, ...]:
        """The main-table default routes of ``family``."""
        return tuple(r for r in self.routes if r.is_default and r.family == family)

    def family_addresses(self, family: int) -> tuple[str, ...]:
        """The addresses of ``family`` (4: no colon)."""
        return tuple(a for a in self.addresses if (":" in a) == (family == 6))


@dataclass(frozen=True)
class Holder:
    """An interface of a topology that carries addresses (a bridge or a VLAN interface of one):
    its addresses and routes as the runtime steps leave them, and ``source``, the device they
    come from ("" none)."""

    dev: str
    addresses: tuple[str, ...]
    routes: tuple[Route, ...]
    source: str = ""


@dataclass(frozen=True)
class TopologyConfig:
    """An uplink topology as the runtime steps build it, for a backend to describe: the task's
    ``topology``, the MAC of each bridge and of each bond it creates, every address holder, the
    VLAN tables of VLAN-aware bridges and the host's existing bonds."""

    topology: Topology
    macs: Mapping[str, str | None]
    holders: tuple[Holder, ...]
    table: tuple[PortVlan, ...] = ()
    host_bonds: frozenset[str] = frozenset()

    def holder(self, dev: str) -> Holder | None:
        """What ``dev`` carries (None: it is no holder)."""
        return next((h for h in self.holders if h.dev == dev), None)

    def new_bonds(self, facts: HostFacts) -> list[BondSpec]:
        """The bonds the task creates that ``facts``' host does not have yet."""
        return [bond for bond in self.topology.bonds() if facts.link(bond.name) is None]

    def entries(self, dev: str) -> tuple[PortVlan, ...]:
        """The VLAN table entries of ``dev``."""
        return tuple(e for e in self.table if e.dev == dev)


@dataclass(frozen=True)
class FileChange:
    """One configuration file: new ``content`` (None: remove it) and the mode of a new file (a
    file that exists keeps its owner, group and mode, unless the mode is private)."""

    path: str
    content: str | None
    mode: str = CONFIG_MODE

    @property
    def private(self) -> bool:
        """The daemon demands this mode (only the owner may read the file): even a file that
        exists gets it."""
        return self.mode == PRIVATE_MODE


@dataclass(frozen=True)
class BackendPlan:
    """How one backend persists the bridge.

    ``files`` are written (or removed) by fleetbr; ``guarded`` are files the backend's own tool
    rewrites during the apply (backed up and restored like the others); ``args`` feed the
    backend's shell macros (templates/steps.sh.j2, ``backend_*``); ``managers`` are the
    interfaces the daemon must report as its own (configured, connected, up) after the apply.
    """

    backend: str
    files: tuple[FileChange, ...]
    args: Mapping[str, str | None]
    managers: tuple[str, ...]
    guarded: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the NIC's MTU, name servers and policy rules as the bridge must show them (backends.carry)
    carried: Carried | None = None


def check_route(route: Route, backend: str, *, tables: bool = True) -> None:
    """Refuse a route the backend's format cannot express exactly."""
    extras = [
        name
        for name, value in (
            ("type", route.type != "unicast"),
            ("src", route.src is not None),
            ("pref", route.pref is not None),
            ("metrics", bool(route.metrics)),
            ("table", not tables and route.table != "main"),
            ("scope", route.scope not in (None, "global", "link")),
            ("unsupported", bool(route.unsupported)),
        )
        if value
    ]
    if extras:
        raise BackendRefusal(
            f"persist: {backend}: route {route_text(route)} has {', '.join(extras)}, "
            "which fleetbr does not write in that format; persist: none keeps it runtime-only"
        )


def route_text(route: Route) -> str:
    """``default via 198.51.100.1 table 100 metric 10`` style text (for messages)."""
    text = route.dst if route.type == "unicast" else f"{route.type} {route.dst}"
    if route.gateway:
        text += f" via {route.gateway}"
    if route.table != "main":
        text += f" table {route.table}"
    if route.metric is not None:
        text += f" metric {route.metric}"
    return text
