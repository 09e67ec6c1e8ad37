"""The comparison engine: a plan's expected state against a host's facts -> :class:`Difference`s.

One engine for every question fleetbr asks about a host: ``plan`` records it as the drift its
steps repair, ``check`` reports it, ``confirm`` refuses to confirm while anything is left
(:func:`fleetbr.plan.verify.verify_applied`). So "what fleetbr changes", "what counts as drift"
and "what a confirmed host looks like" cannot disagree.

What is compared (docs/drift.md): the bridge (present, up, STP, MAC, and the forward delay only
while STP is wanted on: the kernel ignores it otherwise), the NIC as its port, global addresses
(exactly these on the address device, with their IPv4 labels; none left on the NIC), routes of
every table (at least the expected ones; no non-kernel route left on the NIC; no main-table
default route on the address device that is not expected), the bridge-nf sysctls and the managed
files (by sha256), guest interfaces a task moved (on the bridge in both definitions, the
live tap a port of it: fleetbr.plan.guest_check), and with a persistence backend what it
carried from the NIC's configuration: the MTU of the bridge and its port, the policy rules in
the kernel (any protocol), the name servers its daemon reports for the bridge
(``Backend.name_servers``: NetworkManager's view). Ports of other devices (a guest's tap fleetbr
did not move), other routes and link state are not.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from fleetbr.backends import registry
from fleetbr.facts.filemeta import FileMeta
from fleetbr.facts.model import HostFacts, Route
from fleetbr.plan.guest_check import compare_guests
from fleetbr.plan.model import Difference, ExpectedState
from fleetbr.plan.steps import describe_route
from fleetbr.plan.topology.check import compare_topology


def _canon(cidr: str) -> str:
    try:
        return ipaddress.ip_interface(cidr).with_prefixlen
    except ValueError:
        return cidr


def route_matches(want: Route, have: Route) -> bool:
    """``have`` is the route ``want`` asks for, with every attribute ``want`` sets (a metric,
    source, scope or preference of None and empty metrics match any; onlink must be there if
    asked for)."""
    same = (want.family, want.type, want.table, want.dst, want.dev, want.gateway) == (
        have.family,
        have.type,
        have.table,
        have.dst,
        have.dev,
        have.gateway,
    )
    optional = (
        (want.metric, have.metric),
        (want.src, have.src),
        (want.scope, have.scope),
        (want.pref, have.pref),
        (want.metrics or None, have.metrics),
    )
    return (
        same and all(w is None or w == h for w, h in optional) and (have.onlink or not want.onlink)
    )


def compare(exp: ExpectedState, facts: HostFacts) -> list[Difference]:
    """Every way ``facts`` differs from ``exp`` ([] = the host is as expected)."""
    out = list(_bridge(exp, facts))
    out += _addresses(exp, facts)
    out += _routes(exp, facts)
    out += _settings(exp, facts)
    out += _persisted(exp, facts)
    out += _carried(exp, facts)
    out += compare_guests(exp.guests, facts)
    for more in exp.more:  # a topology's other bridges and VLAN interfaces
        for found in (*_bridge(more, facts), *_addresses(more, facts), *_routes(more, facts)):
            if found not in out:
                out.append(found)
    out += compare_topology(exp.topology, facts)
    return out


def _bridge(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    bridge, link, nic = facts.bridge(exp.bridge), facts.link(exp.bridge), facts.link(exp.nic)
    ports = f"ports.{exp.bridge}"
    if not exp.nic:  # a host-only bridge (topology)
        nic = None
    elif nic is None:
        yield Difference("nic", exp.nic, None, f"NIC {exp.nic} is gone")
        return
    if not exp.bridge_present:
        if link is not None:
            yield Difference("bridge", "absent", "present", f"bridge {exp.bridge} still exists")
        if nic is not None and nic.master is not None:
            yield Difference(ports, None, exp.nic, f"{exp.nic} is still a port of {nic.master}")
        return
    if bridge is None or link is None:
        yield Difference("bridge", "present", "absent", f"bridge {exp.bridge} does not exist")
        return
    if nic is not None and nic.master != exp.bridge:
        text = f"{exp.nic} is not a port of {exp.bridge} (master {nic.master})"
        yield Difference(ports, exp.nic, None, text)
    if not link.admin_up:
        yield Difference("bridge.up", True, False, f"bridge {exp.bridge} is down")
    if exp.stp is not None and bridge.stp != exp.stp:
        text = f"bridge {exp.bridge} stp is {bridge.stp}, expected {exp.stp}"
        yield Difference("bridge.stp", exp.stp, bridge.stp, text)
    # With STP off the kernel never uses the forward delay (br_make_forwarding), and neither
    # NetworkManager nor ifcfg reads it back: it is not drift then.
    if exp.stp and exp.forward_delay is not None and bridge.forward_delay != exp.forward_delay:
        text = (
            f"bridge {exp.bridge} forward delay is {bridge.forward_delay}s, "
            f"expected {exp.forward_delay}s"
        )
        yield Difference("bridge.forward_delay", exp.forward_delay, bridge.forward_delay, text)
    if exp.mac is not None and (link.mac or "").lower() != exp.mac:
        text = f"bridge {exp.bridge} MAC is {link.mac}, expected {exp.mac}"
        yield Difference("bridge.mac", exp.mac, link.mac, text)


def _addresses(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    dev = exp.address_dev
    have = {_canon(a.cidr): a.label for a in facts.addresses_of(dev)}
    field = f"addresses.{dev}"
    for cidr in exp.addresses:
        if cidr not in have:
            yield Difference(field, cidr, None, f"address {cidr} missing on {dev}")
    for cidr in sorted(have.keys() - set(exp.addresses)):
        yield Difference(field, None, cidr, f"unexpected address {cidr} on {dev}")
    for cidr, label in exp.labels.items():
        if cidr in have and have[cidr] != label:
            text = f"address {cidr} on {dev} has label {have[cidr]}, expected {label}"
            yield Difference(f"labels.{dev}", f"{cidr} {label}", f"{cidr} {have[cidr]}", text)
    if exp.bridge_present and exp.nic:
        for cidr in sorted(_canon(a.cidr) for a in facts.addresses_of(exp.nic)):
            text = f"address {cidr} still on {exp.nic}"
            yield Difference(f"addresses.{exp.nic}", None, cidr, text)


def _routes(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    if exp.bridge_present and exp.nic:
        for route in facts.routes_of(exp.nic):
            if not route.kernel_made:
                text = f"route {describe_route(route)} still through {exp.nic}"
                yield Difference("routes", None, describe_route(route), text)
    for want in exp.routes:
        if not any(route_matches(want, r) for r in facts.routes):
            text = f"route {describe_route(want)} missing"
            yield Difference("routes", describe_route(want), None, text)
    # A default route nobody asked for decides where the host's traffic goes: it is drift.
    for route in facts.routes_of(exp.address_dev):
        expected = any(route_matches(want, route) for want in exp.routes)
        if route.is_default and not route.kernel_made and not expected:
            text = f"unexpected default route {describe_route(route)}"
            yield Difference("routes", None, describe_route(route), text)


def _settings(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    for key, value in exp.bridge_nf.items():
        have = facts.bridge_nf.get(key)
        if have != value:
            text = f"bridge-nf-{key} is {have}, expected {value}"
            yield Difference(f"sysctl.net.bridge.bridge-nf-{key}", value, have, text)
    for path, digest in exp.files.items():
        have_digest = facts.managed_files.get(path)
        if have_digest != digest:
            text = f"{path} does not have the expected content"
            if have_digest is None:
                text = f"{path} is missing"
            yield Difference(f"file.{path}", digest, have_digest, text)


def _file_meta(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    """The files fleetbr wrote have the owner, group, mode and symlink they must have."""
    if facts.file_meta is None:
        return
    for path, want in exp.file_meta.items():
        have = facts.file_meta.get(path, FileMeta(None))
        if not have.satisfies(want):
            text = f"{path}: {have.describe()}, expected {want.describe()}"
            yield Difference(f"file_meta.{path}", want.describe(), have.describe(), text)


def _persisted(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    """The backend's files hold what fleetbr wrote, and its daemon calls the bridge its own."""
    for path, digest in exp.config_files.items():
        have = facts.daemons.file_digest(path)
        if have != digest:
            if digest is None:
                text = f"{path} should not exist"
            elif have is None:
                text = f"{path} is missing"
            else:
                text = f"{path} does not have the expected content"
            yield Difference(f"file.{path}", digest, have, text)
    yield from _file_meta(exp, facts)
    for name, backend in exp.managers.items():
        found = facts.manager(name)
        if found.manager != backend or not registry.is_settled(backend, found.state):
            have = f"{found.manager or 'no daemon'} {found.state}"
            text = f"{name} is not taken over by {backend} ({have})"
            yield Difference(f"daemon.{name}", backend, have, text)


def _carried(exp: ExpectedState, facts: HostFacts) -> Iterator[Difference]:
    """What the backend carried from the NIC's configuration: the MTU of the bridge and its
    port, the policy rules in the kernel, the name servers in the daemon's view."""
    if not exp.bridge_present:
        return
    for name in (exp.bridge, exp.nic):
        link = facts.link(name)
        if exp.mtu is not None and link is not None and link.mtu != exp.mtu:
            text = f"{name} MTU is {link.mtu}, expected {exp.mtu}"
            yield Difference(f"mtu.{name}", exp.mtu, link.mtu, text)
    have = {(r.family, r.priority, _rule_key(r.text)) for r in facts.rules or ()}
    for rule in exp.rules if facts.rules is not None else ():
        key = _rule_key(rule.text())
        if not any((f, k) == (rule.family, key) and rule.priority in (None, p) for f, p, k in have):
            text = f"policy rule {rule.describe()} missing"
            yield Difference("rules", rule.describe(), None, text)
    manager = registry.find(exp.managers.get(exp.bridge) or "")
    servers = manager.name_servers(facts, exp.bridge) if manager is not None else None
    if exp.dns and servers is not None and servers != exp.dns:
        want, got = " ".join(exp.dns), " ".join(servers) or None
        text = f"{exp.bridge}'s name servers are {got or 'none'}, expected {want}"
        yield Difference(f"dns.{exp.bridge}", want, got, text)


def _rule_key(text: str) -> str:
    """A rule's ``ip -j rule`` text without who added it (``protocol static``: the daemon)."""
    return re.sub(r"(^| )protocol \S+", "", text).strip()
