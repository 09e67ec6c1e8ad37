"""The libvirt guest of ``fleetbr demo --distro``: one host runs a tiny TCG guest on the libvirt
network ``lab``; its task moves the guest onto the bridge in the same dead-man transaction, and
the demo judges the move from the facts gathered after confirm (docs/guests.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fleetbr.changes.bridge.task import BridgeTask, guests_spec
from fleetbr.facts.libvirt import SCOPES
from fleetbr.facts.model import HostFacts
from fleetbr.lab.distro.guest_demo import TASK_SECTION
from fleetbr.lab.distro.guests import NETWORK, NETWORK_BRIDGE

# The host with the guest: ifupdown runs no daemon that reacts to new links (the guest's tap,
# virbr-lab), and it is not the host the demo reboots.
GUEST_BACKEND = "ifupdown"
GUESTS = 1  # running guests on that host (TCG costs CPU); the lab adds one defined only


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


def before_problems(facts: HostFacts) -> list[str]:
    """What is wrong with the guests before the cut-over: none runs on ``lab`` with its tap on
    ``virbr-lab`` (then the demo would show no move)."""
    if facts.guests is None or facts.guests.error:
        why = facts.guests.error if facts.guests else "no virsh"
        return [f"guests: libvirt does not answer before the cut-over: {why}"]
    on_lab = [
        i
        for i in guest_view(facts)
        if i.scope == "live"
        and (i.type, i.source, i.tap_bridge) == ("network", NETWORK, NETWORK_BRIDGE)
    ]
    return [] if on_lab else [f"guests: no running guest on network {NETWORK} before the cut-over"]


def after_problems(before: tuple[GuestIface, ...], facts: HostFacts, bridge: str) -> list[str]:
    """What is wrong after confirm: every interface that was on ``lab`` must now name
    ``bridge`` in the same definition, and a running guest's tap must be a port of ``bridge``."""
    if facts.guests is None or facts.guests.error:
        why = facts.guests.error if facts.guests else "no virsh"
        return [f"guests: libvirt does not answer after confirm: {why}"]
    found = facts.bridge(bridge)
    ports = found.ports if found is not None else ()
    after = {(i.domain, i.scope, i.mac): i for i in guest_view(facts)}
    problems = []
    for was in (i for i in before if (i.type, i.source) == ("network", NETWORK)):
        now = after.get((was.domain, was.scope, was.mac))
        where = f"guests: {was.domain} ({was.scope}) {was.mac}"
        if now is None:
            problems.append(f"{where} is gone after confirm")
        elif (now.type, now.source) != ("bridge", bridge):
            problems.append(
                f"{where} is {now.type} {now.source} after confirm, not bridge {bridge}"
            )
        elif now.scope == "live" and now.tap not in ports:
            problems.append(f"{where}: tap {now.tap or '(none)'} is not a port of {bridge}")
    return problems
