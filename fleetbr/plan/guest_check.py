"""Guests in the comparison engine (confirm, check) and in the restore check.

Confirm: each moved interface (found by MAC in its definition) names the bridge, and a live one's
tap is a port of it. Restore: every interface of every domain the transaction touched, live and
persistent, compared as canonical XML (no runtime port id) with the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fleetbr.facts.libvirt import SCOPES, Domain
from fleetbr.facts.model import HostFacts
from fleetbr.plan.model import Difference, GuestExpect


def _shown(uuid: str, name: str) -> str:
    return f"{repr(name)[1:-1][:60]} ({uuid})" if name else uuid


def _expect(want: GuestExpect, facts: HostFacts) -> Iterator[Difference]:
    field = f"guests.{want.uuid}.{want.mac}.{want.scope}"
    who = f"interface {want.mac} of guest {_shown(want.uuid, want.name)} ({want.scope})"
    domain = facts.guests.by_uuid(want.uuid) if facts.guests is not None else None
    if domain is None or domain.error:
        yield Difference(field, want.bridge, None, f"{who}: the domain cannot be read")
        return
    found = [i for i in domain.interfaces(want.scope) if i.mac == want.mac]
    if not found:
        yield Difference(field, want.bridge, None, f"{who} is gone")
        return
    iface = found[0]
    if iface.type != "bridge" or iface.source != want.bridge:
        have = f"{iface.type} {iface.source}"
        yield Difference(field, want.bridge, have, f"{who} is on {have}, not on {want.bridge}")
    if want.scope == "live" and domain.active:
        link = facts.link(iface.tap) if iface.tap else None
        master = link.master if link is not None else None
        if master != want.bridge:
            text = f"{who}: tap {iface.tap or '?'} is not a port of {want.bridge} ({master})"
            yield Difference(f"{field}.tap", want.bridge, master, text)


def compare_guests(expected: Iterable[GuestExpect], facts: HostFacts) -> Iterator[Difference]:
    """Every way the moved guest interfaces differ from ``expected``."""
    for want in expected:
        yield from _expect(want, facts)


def _domain_items(domain: Domain) -> Iterator[str]:
    if domain.error:
        yield f"guest {domain.uuid}: unreadable ({domain.error})"
        return
    yield f"guest {domain.uuid}: {'running' if domain.active else 'not running'}"
    for scope in SCOPES:
        if scope == "live" and not domain.active:
            continue
        for iface in domain.interfaces(scope):
            yield f"guest {domain.uuid} {scope} interface {iface.canonical}"


def guest_items(facts: HostFacts, touched: frozenset[str]) -> Iterator[tuple[str, bool]]:
    """Every guest interface as text -> whether its domain is in ``touched``."""
    if facts.guests is None:
        return
    for domain in facts.guests.domains:
        mine = domain.uuid in touched
        for text in _domain_items(domain):
            yield text, mine
