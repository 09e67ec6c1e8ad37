"""Pure checks of a host's facts against a plan: applied as expected, or restored as before."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from fleetbr.facts.model import HostFacts, Route
from fleetbr.plan.model import ExpectedState, Plan
from fleetbr.plan.steps import describe_route


def _canon(cidr: str) -> str:
    try:
        return ipaddress.ip_interface(cidr).with_prefixlen
    except ValueError:
        return cidr


def _addr_set(facts: HostFacts, dev: str) -> set[str]:
    return {_canon(a.cidr) for a in facts.addresses_of(dev)}


def route_matches(want: Route, have: Route) -> bool:
    """``have`` is the route ``want`` asks for (a metric of None matches any)."""
    same = (want.family, want.type, want.dst, want.dev, want.gateway) == (
        have.family,
        have.type,
        have.dst,
        have.dev,
        have.gateway,
    )
    return same and (want.metric is None or want.metric == have.metric)


def verify_applied(plan: Plan, facts: HostFacts) -> list[str]:
    """Human-readable differences between ``facts`` and the plan's expected state ([] = match)."""
    exp = plan.expected
    out = _check_bridge(exp, facts)
    have = _addr_set(facts, exp.address_dev)
    out += [f"address {a} missing on {exp.address_dev}" for a in exp.addresses if a not in have]
    out += [
        f"unexpected address {a} on {exp.address_dev}" for a in sorted(have - set(exp.addresses))
    ]
    if exp.bridge_present:
        out += [f"address {a} still on {exp.nic}" for a in sorted(_addr_set(facts, exp.nic))]
        out += [
            f"route {describe_route(r)} still through {exp.nic}"
            for r in facts.routes_of(exp.nic)
            if r.protocol != "kernel"
        ]
    for want in exp.routes:
        if not any(route_matches(want, r) for r in facts.routes):
            out.append(f"route {describe_route(want)} missing")
    for key, value in exp.bridge_nf.items():
        if facts.bridge_nf.get(key) != value:
            out.append(f"bridge-nf-{key} is {facts.bridge_nf.get(key)}, expected {value}")
    for path, digest in exp.files.items():
        if facts.managed_files.get(path) != digest:
            out.append(f"{path} does not have the expected content")
    return out


def _check_bridge(exp: ExpectedState, facts: HostFacts) -> list[str]:
    bridge = facts.bridge(exp.bridge)
    link = facts.link(exp.bridge)
    nic = facts.link(exp.nic)
    if nic is None:
        return [f"NIC {exp.nic} is gone"]
    out: list[str] = []
    if not exp.bridge_present:
        if link is not None:
            out.append(f"bridge {exp.bridge} still exists")
        if nic.master is not None:
            out.append(f"{exp.nic} is still a port of {nic.master}")
        return out
    if bridge is None or link is None:
        return [f"bridge {exp.bridge} does not exist"]
    if nic.master != exp.bridge:
        out.append(f"{exp.nic} is not a port of {exp.bridge} (master {nic.master})")
    if not link.admin_up:
        out.append(f"bridge {exp.bridge} is down")
    if exp.stp is not None and bridge.stp != exp.stp:
        out.append(f"bridge {exp.bridge} stp is {bridge.stp}, expected {exp.stp}")
    if exp.forward_delay is not None and bridge.forward_delay != exp.forward_delay:
        out.append(
            f"bridge {exp.bridge} forward delay is {bridge.forward_delay}s, "
            f"expected {exp.forward_delay}s"
        )
    if exp.mac is not None and (link.mac or "").lower() != exp.mac:
        out.append(f"bridge {exp.bridge} MAC is {link.mac}, expected {exp.mac}")
    return out


def _snapshot(facts: HostFacts, devs: tuple[str, ...]) -> dict[str, set[str]]:
    """The parts of ``facts`` a plan on ``devs`` can change, as comparable sets of text items."""
    links = set()
    for dev in devs:
        link = facts.link(dev)
        if link is None:
            links.add(f"{dev}: absent")
        else:
            state = "up" if link.admin_up else "down"
            links.add(f"{dev}: {link.kind} master {link.master} {state} mac {link.mac}")
    return {
        "link": links,
        "address": {
            f"{_canon(a.cidr)} on {a.dev}"
            for a in facts.addresses
            if a.dev in devs and a.scope == "global"
        },
        "route": {
            describe_route(r) + f" (ipv{r.family})"
            for r in facts.routes
            if r.dev in devs or r.is_default or r.type != "unicast"
        },
        "bridge": {
            f"{b.name} stp {b.stp} forward delay {b.forward_delay} ports {sorted(b.ports)}"
            for b in facts.bridges
        },
        "bridge-nf": {f"{k}={v}" for k, v in facts.bridge_nf.items()},
        "file": {f"{p} sha256 {d}" for p, d in facts.managed_files.items()},
    }


def _diff(kind: str, before: set[str], after: set[str]) -> Iterable[str]:
    for item in sorted(before - after):
        yield f"{kind} {item} was there before, missing now"
    for item in sorted(after - before):
        yield f"{kind} {item} is new"


def verify_restored(before: HostFacts, after: HostFacts, plan: Plan) -> list[str]:
    """Differences, in what ``plan`` could have touched, between ``before`` and ``after``."""
    return diff_facts(before, after, (plan.expected.nic, plan.expected.bridge))


def diff_facts(
    before: HostFacts, after: HostFacts, devs: tuple[str, ...] | None = None
) -> list[str]:
    """Differences between two facts of one host, limited to ``devs`` (None: every link)."""
    if devs is None:
        devs = tuple(sorted({link.name for link in before.links + after.links} - {"lo"}))
    old = _snapshot(before, devs)
    new = _snapshot(after, devs)
    out: list[str] = []
    for kind, items in old.items():
        out += _diff(kind, items, new[kind])
    return out
