"""The libvirt guest of ``fleetbr demo --distro``: one host runs a tiny TCG guest on the libvirt
network ``lab``; its task (:data:`TASK_SECTION`) moves the guest onto the bridge in the same
dead-man transaction, and the demo shows the guest's interfaces before and after confirm
(:func:`guest_lines`, :func:`guest_view`; docs/guests.md). The move is judged by
tests/integration/distro/test_demo_distro.py."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fleetbr.changes.bridge.task import BridgeTask, guests_spec
from fleetbr.facts.libvirt import SCOPES
from fleetbr.facts.model import HostFacts
from fleetbr.lab.distro.guests import NETWORK

# The host with the guest: ifupdown runs no daemon that reacts to new links (the guest's tap,
# virbr-lab), and it is not the host the demo reboots.
GUEST_BACKEND = "ifupdown"
GUESTS = 1  # running guests on that host (TCG costs CPU); the lab adds one defined only
TASK_SECTION: dict[str, object] = {"move": "all", "from": NETWORK, "link_flap": True}


@dataclass(frozen=True)
class GuestIface:
    """One interface of a guest's definition (``scope`` live or config), as the facts show it;
    ``tap_bridge`` is the bridge the kernel has its tap on (None: no tap, or on no bridge)."""

    domain: str
    scope: str
    type: str
    source: str
    mac: str
    tap: str
    tap_bridge: str | None


def guest_counts(backends: tuple[str, ...]) -> list[int]:
    """Per-host guest counts for the lab: :data:`GUESTS` on the :data:`GUEST_BACKEND` host."""
    return [GUESTS if b == GUEST_BACKEND else 0 for b in backends]


def with_guests(task: BridgeTask) -> BridgeTask:
    """``task`` with the section that moves every guest on ``lab`` onto its bridge."""
    return dataclasses.replace(task, guests=guests_spec(TASK_SECTION))


def guest_view(facts: HostFacts) -> tuple[GuestIface, ...]:
    """Every interface of every domain's live (running guests) and persistent definition."""
    out = []
    for domain in facts.guests.domains if facts.guests else ():
        for scope in SCOPES:
            if scope == "live" and not domain.active:
                continue
            for iface in domain.interfaces(scope):
                link = facts.link(iface.tap) if iface.tap else None
                out.append(
                    GuestIface(
                        domain=domain.name,
                        scope=scope,
                        type=iface.type,
                        source=iface.source,
                        mac=iface.mac,
                        tap=iface.tap,
                        tap_bridge=link.master if link is not None else None,
                    )
                )
    return tuple(out)


def guest_lines(facts: HostFacts) -> list[str]:
    """One line per guest interface: domain, definition, type and source, tap and its bridge."""
    if facts.guests is None:
        return ["no libvirt"]
    out = []
    for domain in facts.guests.domains:
        for scope in ("live", "config"):
            if scope == "live" and not domain.active:
                continue
            for iface in domain.interfaces(scope):
                line = f"{domain.name} ({scope}): {iface.type} {iface.source}"
                link = facts.link(iface.tap) if iface.tap else None
                if link is not None:
                    line += f", tap {iface.tap} on {link.master}"
                out.append(line)
    return out
