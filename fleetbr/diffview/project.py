"""The "after" side of the view: a bridge plan's expected state laid over the host's facts.

What the expected state names is set as it says (the bridge and its settings, the NIC as its
port, exactly the expected global addresses on the address device and none left on the NIC,
the expected routes, the bridge-nf sysctls, the moved guest interfaces, the carried MTU);
everything else is kept as the facts have it. The kernel's own routes follow their
addresses: a prefix route of an address that moves moves with it. So ``plan --diff`` shows
what the host looks like once the plan is applied, and ``check --diff`` what the task wants
against what the host has, from the one comparison of :mod:`fleetbr.plan.diff`.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from fleetbr.diffview.runtime import RuntimeState
from fleetbr.facts.model import Link, Route
from fleetbr.plan.diff import route_matches
from fleetbr.plan.model import ExpectedState


def project(state: RuntimeState, exp: ExpectedState) -> RuntimeState:
    """``state`` as ``exp`` leaves it (``state`` itself is not changed)."""
    after = dataclasses.replace(
        state,
        links=dict(state.links),
        bridges=dict(state.bridges),
        addresses={dev: list(v) for dev, v in state.addresses.items()},
        routes=list(state.routes),
        sysctls=state.sysctls | dict(exp.bridge_nf),
        guests=list(state.guests),
    )
    if exp.bridge_present:
        _bridge_on(after, exp)
    else:
        _bridge_off(after, exp)
    _addresses(after, exp)
    _routes(after, exp)
    _guests(after, exp)
    return after


def _bridge_on(state: RuntimeState, exp: ExpectedState) -> None:
    nic = state.links.get(exp.nic)
    old = state.links.get(exp.bridge)
    mtu = exp.mtu or (old.mtu if old else nic.mtu if nic else 1500)
    mac = exp.mac or (old.mac if old else None)
    state.links[exp.bridge] = Link(exp.bridge, "bridge", mac, mtu, "UP", True, None)
    if nic is not None:
        state.links[exp.nic] = dataclasses.replace(nic, master=exp.bridge, mtu=exp.mtu or nic.mtu)
    stp, delay = state.bridges.get(exp.bridge, (False, 15))
    stp = stp if exp.stp is None else exp.stp
    state.bridges[exp.bridge] = (stp, delay if exp.forward_delay is None else exp.forward_delay)


def _bridge_off(state: RuntimeState, exp: ExpectedState) -> None:
    state.links.pop(exp.bridge, None)
    state.bridges.pop(exp.bridge, None)
    state.addresses.pop(exp.bridge, None)
    nic = state.links.get(exp.nic)
    if nic is not None and nic.master == exp.bridge:
        state.links[exp.nic] = dataclasses.replace(nic, master=None)
    for name, link in list(state.links.items()):
        if link.master == exp.bridge:  # its other ports (a guest's tap) leave it with it
            state.links[name] = dataclasses.replace(link, master=None)


def _addresses(state: RuntimeState, exp: ExpectedState) -> None:
    if exp.bridge_present:
        state.addresses.pop(exp.nic, None)
    if not exp.address_dev:
        return
    # the ones the device keeps stay in its order: an in-sync host shows no reordering
    have = {_canonical(c): (c, label) for c, label in state.addresses.get(exp.address_dev, [])}
    wanted = {_canonical(c): c for c in exp.addresses}
    kept = [(c, exp.labels.get(c, label)) for key, (c, label) in have.items() if key in wanted]
    new = [(c, exp.labels.get(c)) for key, c in wanted.items() if key not in have]
    state.addresses[exp.address_dev] = kept + new
    if not state.addresses[exp.address_dev]:
        del state.addresses[exp.address_dev]


def _routes(state: RuntimeState, exp: ExpectedState) -> None:
    gone = exp.nic if exp.bridge_present else exp.bridge
    networks = {_network(c) for c, _ in state.addresses.get(exp.address_dev, [])}
    kept: list[Route] = []
    for route in state.routes:
        if route.dev != gone:
            kept.append(route)
        elif route.protocol == "kernel" and _network(route.dst) in networks:
            kept.append(dataclasses.replace(route, dev=exp.address_dev))
        elif route.protocol == "kernel" and exp.bridge_present and route.dst.startswith("fe80"):
            kept.append(route)  # the NIC keeps its link-local address as a port
    for want in exp.routes:
        if not any(route_matches(want, r) for r in kept):
            kept.append(want)
    state.routes[:] = kept


def _canonical(cidr: str) -> str:
    try:
        return ipaddress.ip_interface(cidr).with_prefixlen
    except ValueError:
        return cidr


def _network(cidr: str) -> str:
    try:
        return str(ipaddress.ip_interface(cidr).network)
    except ValueError:
        return cidr


def _guests(state: RuntimeState, exp: ExpectedState) -> None:
    moved = {(g.uuid, g.mac, g.scope): g for g in exp.guests}
    for i, line in enumerate(state.guests):
        want = moved.get((line.uuid, line.mac, line.scope))
        if want is None:
            continue
        attached = f"bridge {want.bridge}"
        state.guests[i] = dataclasses.replace(line, attached=attached)
        if line.tap and line.scope == "live" and line.tap in state.links:
            tap = state.links[line.tap]
            state.links[line.tap] = dataclasses.replace(tap, master=want.bridge)
