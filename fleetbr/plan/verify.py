"""Pure checks of a host's facts against a plan's expected state (``verify_applied``).

The restore check (a host back at its snapshot) lives in :mod:`fleetbr.plan.restore`.
"""

from __future__ import annotations

import ipaddress

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


def _labels(facts: HostFacts, dev: str) -> dict[str, str | None]:
    return {_canon(a.cidr): a.label for a in facts.addresses_of(dev)}


def verify_applied(plan: Plan, facts: HostFacts) -> list[str]:
    """Human-readable differences between ``facts`` and the plan's expected state ([] = match)."""
    exp = plan.expected
    out = _check_bridge(exp, facts)
    have = _addr_set(facts, exp.address_dev)
    out += [f"address {a} missing on {exp.address_dev}" for a in exp.addresses if a not in have]
    out += [
        f"unexpected address {a} on {exp.address_dev}" for a in sorted(have - set(exp.addresses))
    ]
    labels = _labels(facts, exp.address_dev)
    out += [
        f"address {a} on {exp.address_dev} has label {labels[a]}, expected {label}"
        for a, label in exp.labels.items()
        if a in labels and labels[a] != label
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
