"""What a bridged host should carry when the task leaves it to the host: the bridge's record.

``addresses: move`` and null gateways mean "what the NIC has", which is only knowable before the
move: once bridged, a lost address or an added default route cannot be told from the host's facts
alone. So the apply that makes the bridge also writes a record of what they resolved to,
``PIN_DIR/BRIDGE.json`` (a managed file, written and rolled back with the transaction), and from
then on the record stands in for them exactly as an explicit ``addresses`` list would (default
routes included: one that is not in the record is drift). It lives under /run, like the bridge
itself without persistence: a reboot takes both. It is honoured only while its bridge exists and
for the same NIC; anything else about it (unreadable, damaged, another NIC) makes it a stale file
that the next apply rewrites. A topology's runtime tier records each device that takes a source's
addresses the same way (the bridge, a VLAN interface of it, a new bond that keeps its slave's
addresses: :func:`read_holder_pin`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbr import validate
from fleetbr.errors import ValidationError
from fleetbr.facts.model import PIN_DIR, Address, HostFacts, Route
from fleetbr.plan import steps
from fleetbr.plan.model import Step
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.steps import route_args

VERSION = 1
_NONE = type(None)
# Every field of a recorded route and the types it may have ("unsupported" is never recorded).
_ROUTE_TYPES: dict[str, tuple[type, ...]] = {
    "family": (int,), "dst": (str,), "dev": (str,), "gateway": (str, _NONE),
    "metric": (int, _NONE), "protocol": (str,), "type": (str,), "table": (str,),
    "src": (str, _NONE), "scope": (str, _NONE), "onlink": (bool,), "pref": (str, _NONE),
    "metrics": (str,),
}  # fmt: skip


@dataclass(frozen=True)
class Pin:
    """The record of one bridge: its NIC, its global addresses (in order, with IPv4 label and
    broadcast) and its routes (every table), as fleetbr made them."""

    bridge: str
    nic: str
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]

    @property
    def cidrs(self) -> list[str]:
        """The addresses as CIDRs, in order."""
        return [a.cidr for a in self.addresses]


def pin_path(bridge: str) -> str:
    """Where the record of ``bridge`` lives on the host."""
    return f"{PIN_DIR}/{validate.interface_name(bridge, 'bridge')}.json"


def pin_text(pin: Pin) -> str:
    """The record as the file's content: canonical JSON on one line (same pin, same sha256)."""
    doc = {
        "version": VERSION,
        "bridge": pin.bridge,
        "nic": pin.nic,
        "addresses": [
            {"cidr": a.cidr, "label": a.label, "broadcast": a.broadcast} for a in pin.addresses
        ],
        "routes": [_route_doc(r) for r in pin.routes],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def _route_doc(route: Route) -> dict[str, Any]:
    doc = dataclasses.asdict(route)
    doc.pop("unsupported")
    return doc


def make_pin(
    bridge: str, nic: str, facts: HostFacts, *,
    cidrs: Sequence[str], labels: Mapping[str, str], routes: Sequence[Route],
) -> Pin:  # fmt: skip
    """A new record: ``cidrs`` (with their labels and the broadcast they have now) and
    ``routes`` on ``bridge``."""
    brd = {validate.cidr(a.cidr): a.broadcast for a in facts.addresses if a.scope == "global"}
    addresses = tuple(
        Address(bridge, 6 if ":" in c else 4, c, "global", broadcast=brd.get(c),
                label=labels.get(c))
        for c in cidrs
    )  # fmt: skip
    return Pin(bridge, nic, addresses, tuple(routes))


def read_pin(facts: HostFacts, bridge: str, nic: str) -> Pin | None:
    """The record of ``bridge`` when it can stand in for ``move``: it parses, names this NIC,
    and the bridge exists. None otherwise."""
    pin = _recorded(facts, bridge) if facts.bridge(bridge) is not None else None
    return pin if pin is not None and (pin.bridge, pin.nic) == (bridge, nic) else None


def read_holder_pin(facts: HostFacts, holder: str, source: str) -> Pin | None:
    """The record of a topology's ``holder`` (a bridge, a VLAN interface or a bond) that can stand
    in for ``move``: it parses, the holder exists, and it names ``source`` or ``source`` holds no
    global address any more (the source a plan again finds may be another device than the one
    the apply took the addresses from: a new bond's slave, a VLAN device it deleted). None
    otherwise."""
    pin = _recorded(facts, holder) if facts.link(holder) is not None else None
    if pin is None:
        return None
    moved = pin.nic == source or not facts.addresses_of(source)
    return pin if pin.bridge == holder and moved else None


def recorded_source(facts: HostFacts, holder: str) -> str | None:
    """The source device the record of ``holder`` names (None: no record that parses)."""
    pin = _recorded(facts, holder)
    return None if pin is None else pin.nic


def _recorded(facts: HostFacts, dev: str) -> Pin | None:
    """The record at ``dev``'s path when it parses (whatever it names)."""
    text = facts.pins.get(pin_path(dev))
    if text is None:
        return None
    try:
        return parse_pin(text)
    except ValidationError:
        return None


def record_steps(
    facts: HostFacts, pin: Pin, files: dict[str, str], backup_dir: str | None
) -> list[Step]:
    """Write the record ``pin`` unless the host has it already; its hash joins the expected
    files (``files``) either way."""
    path, text = pin_path(pin.bridge), pin_text(pin)
    files[path] = sha256(text)
    old = facts.managed_files.get(path)
    if old == files[path]:
        return []
    return [steps.file_write(path, text, existed=old is not None, backup_dir=backup_dir)]


def parse_pin(text: str) -> Pin:
    """A record from its text; ValidationError when it is not one fleetbr wrote."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ValidationError("bridge record: not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ValidationError("bridge record: not a version 1 record")
    bridge = validate.interface_name(doc.get("bridge"), "bridge record bridge")
    nic = validate.interface_name(doc.get("nic"), "bridge record nic")
    addresses, routes = doc.get("addresses"), doc.get("routes")
    if not isinstance(addresses, list) or not isinstance(routes, list):
        raise ValidationError("bridge record: addresses and routes must be lists")
    return Pin(
        bridge,
        nic,
        tuple(_address(item, bridge) for item in addresses),
        tuple(_route(item, bridge) for item in routes),
    )


def _optional_text(value: object, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"bridge record: {field} is not text")
    return value


def _address(item: object, bridge: str) -> Address:
    if not isinstance(item, dict):
        raise ValidationError("bridge record: an address is not a mapping")
    cidr = validate.cidr(item.get("cidr"), "bridge record address")
    brd = _optional_text(item.get("broadcast"), "broadcast")
    label = _optional_text(item.get("label"), "label")
    return Address(
        bridge, 6 if ":" in cidr else 4, cidr, "global",
        broadcast=None if brd is None else validate.ip_address(brd, "bridge record broadcast"),
        label=label,
    )  # fmt: skip


def _route(item: object, bridge: str) -> Route:
    if not isinstance(item, dict) or set(item) != set(_ROUTE_TYPES):
        raise ValidationError("bridge record: a route does not have the fields of a route")
    for name, value in item.items():
        kinds = _ROUTE_TYPES[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValidationError(f"bridge record: route {name} has the wrong type")
    route = Route(**item)
    route_args(route)  # every value fleetbr would pass to ip, checked as for any route
    if route.type == "unicast" and route.dev != bridge:
        raise ValidationError("bridge record: a route is not through the bridge")
    return route
