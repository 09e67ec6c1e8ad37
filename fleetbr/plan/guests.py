"""Planning the ``guests:`` section: libvirt guests' interfaces onto the task's bridge.

Pure, from the facts: for each domain the task names (or every one, ``move: all``), each
interface whose source is ``guests.from`` gets a ``guest_update`` step per definition (the live
one of a running guest, the persistent one if the domain has it) whose XML is the interface as
libvirt reported it with only its type and source changed (``guest_xml.on_bridge``), and whose
inverse is that interface as it was. The steps come after the bridge is up and the addresses
have moved, so the rollback moves the guests back first. A domain is addressed by UUID only.
"""

from __future__ import annotations

import re

from fleetbr.changes.bridge.task import BridgeTask, GuestsSpec
from fleetbr.errors import PlanRefused, ValidationError
from fleetbr.facts.libvirt import SCOPES, Domain, GuestInterface, Libvirt, Scope
from fleetbr.facts.model import HostFacts
from fleetbr.plan import guest_xml
from fleetbr.plan.model import GuestExpect, Step
from fleetbr.validate import clip, interface_name

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class GuestRefusal(PlanRefused):
    """Why the guests of a task cannot be moved on this host (the plan is refused)."""


def shown(domain: Domain) -> str:
    """A domain for a message: its name (escaped, cut) and UUID."""
    name = clip(repr(domain.name)[1:-1] if domain.name else "?", 60)
    return f"{name} ({domain.uuid})"


def _libvirt(facts: HostFacts) -> Libvirt:
    found = facts.guests
    if found is None:
        raise GuestRefusal("guests: libvirt is not on the host (no virsh)")
    if found.error:
        raise GuestRefusal(f"guests: libvirt does not answer: {clip(found.error)}")
    return found


def selected(spec: GuestsSpec, found: Libvirt) -> list[Domain]:
    """The domains the task moves; refuses a name that is not there or a definition not read."""
    if spec.move is None:
        chosen = list(found.domains)
    else:
        chosen = []
        for name in spec.move:
            domain = found.named(name)
            if domain is None:
                raise GuestRefusal(f"guests: no domain named {clip(repr(name))} on the host")
            chosen.append(domain)
    for domain in chosen:
        if domain.error:
            raise GuestRefusal(f"guests: cannot read domain {shown(domain)}: {domain.error}")
    return chosen


def _matches(iface: GuestInterface, source: str) -> bool:
    return iface.type in ("network", "bridge") and iface.source == source


def _restorable(iface: GuestInterface) -> str:
    """The interface's XML without the runtime port id (a port that is gone once it moved)."""
    return guest_xml.checked(guest_xml.strip_port(iface.xml))


def _update(
    domain: Domain,
    scope: Scope,
    iface: GuestInterface,
    xml: str,
    what: str,
    *,
    inverse: Step | None,
) -> Step:
    if not _UUID_RE.match(domain.uuid):
        raise ValidationError(f"domain UUID {domain.uuid!r} is malformed")
    tap = interface_name(iface.tap, "guest tap") if scope == "live" and iface.tap else None
    args = {"domain": domain.uuid, "scope": scope, "xml": guest_xml.checked(xml), "tap": tap}
    desc = f"{what} interface {iface.mac} of guest {shown(domain)} ({scope})"
    return Step("guest_update", args, desc, inverse=inverse)


def _steps(domain: Domain, scope: Scope, iface: GuestInterface, task: BridgeTask) -> list[Step]:
    """One step (with a link flap: two, down then up) and its inverse: the interface as it was."""
    assert task.guests is not None
    bridge = task.bridge.name
    old = _restorable(iface)
    where = f"from {iface.type} {clip(iface.source, 40)!r} to bridge {bridge}:"
    put_back = _update(domain, scope, iface, old, "put back", inverse=None)
    if scope != "live" or not task.guests.link_flap:
        moved = guest_xml.on_bridge(old, bridge)
        return [_update(domain, scope, iface, moved, f"move {where}", inverse=put_back)]
    down = guest_xml.on_bridge(old, bridge, link="down")
    first = _update(domain, scope, iface, down, f"move (link down) {where}", inverse=put_back)
    link_down = _update(domain, scope, iface, down, "set link down on", inverse=None)
    up = guest_xml.on_bridge(old, bridge)
    return [first, _update(domain, scope, iface, up, "set link up on", inverse=link_down)]


def plan_guests(task: BridgeTask, facts: HostFacts) -> tuple[list[Step], list[GuestExpect]]:
    """Steps moving the task's guests onto its bridge, and what confirm checks; raises
    GuestRefusal (or ValidationError for a malformed fact) when they cannot be moved."""
    spec = task.guests
    if spec is None:
        return [], []
    out: list[Step] = []
    expect: list[GuestExpect] = []
    for domain in selected(spec, _libvirt(facts)):
        found = False
        for scope in SCOPES:
            if scope == "live" and not domain.active:
                continue
            for iface in domain.interfaces(scope):
                if not _matches(iface, spec.source):
                    continue
                found = True
                if iface.type == "bridge" and iface.source == task.bridge.name:
                    continue  # already there
                if iface.unmovable:
                    raise GuestRefusal(
                        f"guests: interface {iface.mac} of {shown(domain)} has a "
                        f"<{iface.unmovable}>, which update-device cannot move"
                    )
                out += _steps(domain, scope, iface, task)
                expect.append(
                    GuestExpect(domain.uuid, domain.name, iface.mac, scope, task.bridge.name)
                )
        if not found and spec.move is not None:
            raise GuestRefusal(
                f"guests: domain {shown(domain)} has no interface on {clip(repr(spec.source))}"
            )
    return out, expect


def using_bridge(facts: HostFacts, bridge: str) -> list[str]:
    """Domains whose live or persistent definition puts an interface on ``bridge``."""
    if facts.guests is None:
        return []
    return [
        shown(d)
        for d in facts.guests.domains
        if any(i.bridge == bridge or (i.type == "bridge" and i.source == bridge)
               for scope in SCOPES for i in d.interfaces(scope))
    ]  # fmt: skip
