"""Shared building blocks of the planner: moving addresses and routes, assembling a plan."""

from __future__ import annotations

import dataclasses
import ipaddress

from fleetbr import validate
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.model import Address, Family, HostFacts, Route
from fleetbr.plan import steps
from fleetbr.plan.diff import route_matches
from fleetbr.plan.model import BridgePlan, ExpectedState, Step, rollback_of
from fleetbr.plan.steps import describe_route


def refused(task: BridgeTask, reason: str) -> BridgePlan:
    """A refused plan: no steps, ``reason`` says why."""
    spec = task.bridge
    expected = ExpectedState(bridge=spec.name, nic=spec.nic, bridge_present=False, address_dev="")
    return BridgePlan(task.host, reason, (), (), (), (), expected)


def global_addresses(facts: HostFacts, dev: str) -> list[str]:
    """Canonical global addresses of ``dev`` (validated: they will reach shell)."""
    return [validate.cidr(a.cidr, f"address of {dev}") for a in facts.addresses_of(dev)]


def wanted_addresses(
    task: BridgeTask, target: list[str], source: list[str], recorded: list[str] | None = None
) -> list[str]:
    """The task's address list; for ``move`` the bridge's record (fleetbr.plan.desired) if there
    is one, else what the target has, then the source's others."""
    if task.bridge.addresses is not None:
        return list(task.bridge.addresses)
    if recorded is not None:
        return list(recorded)
    return target + [a for a in source if a not in target]


def movable_routes(facts: HostFacts, dev: str) -> list[Route]:
    """Routes through ``dev`` (every table) that the kernel does not recreate from addresses."""
    return [r for r in facts.routes_of(dev) if not r.kernel_made]


def lost_source(facts: HostFacts, src: str, wanted: list[str]) -> str | None:
    """Why moving ``src``'s routes would fail: a route's ``src`` address that the task drops."""
    kept = {ipaddress.ip_interface(a).ip for a in wanted}
    kept |= {ipaddress.ip_interface(a.cidr).ip for a in facts.addresses if a.dev != src}
    for route in movable_routes(facts, src):
        if route.src is not None and ipaddress.ip_address(route.src) not in kept:
            return (
                f"route {describe_route(route)} uses source address {route.src}, which the "
                "task does not keep on the host"
            )
    return None


FAMILIES: tuple[Family, ...] = (4, 6)


def _gateway_for(task: BridgeTask, family: Family) -> str | None:
    return task.bridge.gateway4 if family == 4 else task.bridge.gateway6


def _same_route(a: Route, b: Route) -> bool:
    return (a.family, a.type, a.table, a.dst, a.dev, a.gateway, a.metric) == (
        b.family,
        b.type,
        b.table,
        b.dst,
        b.dev,
        b.gateway,
        b.metric,
    )


def _onlink(route: Route, addrs: list[str]) -> bool:
    """True when ``route``'s gateway lies outside every subnet of ``addrs`` (needs ``onlink``)."""
    if route.gateway is None:
        return False
    gateway = ipaddress.ip_address(route.gateway)
    if gateway.is_link_local:
        return False
    return not any(gateway in ipaddress.ip_interface(a).network for a in addrs)


def _recorded_routes(
    task: BridgeTask, recorded: tuple[Route, ...], kept: list[Route], targets: list[Route]
) -> tuple[list[Route], list[Route]]:
    """(targets, routes of dst to drop) once the bridge's record is applied: its routes that the
    host lacks are added; a default route it does not list (in a family without a task gateway)
    is dropped."""
    targets = targets + [
        r for r in recorded if not any(route_matches(r, h) for h in kept + targets)
    ]
    drop: list[Route] = []
    for family in FAMILIES:
        if _gateway_for(task, family) is not None:
            continue
        wanted = [r for r in recorded if r.family == family and r.is_default]

        def stray(route: Route, family: Family = family, wanted: list[Route] = wanted) -> bool:
            return (
                route.family == family
                and route.is_default
                and not any(route_matches(w, route) for w in wanted)
            )

        targets = [t for t in targets if not stray(t)]
        drop += [k for k in kept if stray(k)]
    return targets, drop


def route_steps(
    task: BridgeTask, facts: HostFacts, src: str, dst: str, addrs: list[str], *,
    recorded: tuple[Route, ...] | None = None,
) -> tuple[list[Step], list[Step], list[Route]]:  # fmt: skip
    """(route_del steps, route_add steps, expected routes on dst) for moving src's routes to dst.

    A task gateway replaces the moved default route of its family (keeping its metric) and any
    default route of that family already on dst with another gateway. With the bridge's record
    (``recorded``), its routes are restored and default routes it does not list are dropped.
    """
    moving = movable_routes(facts, src)
    kept = movable_routes(facts, dst)
    targets = [dataclasses.replace(r, dev=dst) for r in moving]
    drop: list[Route] = []
    if recorded is not None:
        targets, drop = _recorded_routes(task, recorded, kept, targets)
    for family in FAMILIES:
        gateway = _gateway_for(task, family)
        if gateway is None:
            continue
        old = next((r for r in moving + kept if r.family == family and r.is_default), None)
        targets = [r for r in targets if not (r.family == family and r.is_default)]
        drop += [r for r in kept if r.family == family and r.is_default and r.gateway != gateway]
        metric = old.metric if old else None
        targets.append(Route(family, "default", dst, gateway, metric, "static"))
    kept = [r for r in kept if r not in drop]
    targets = [t for t in targets if not any(_same_route(t, k) for k in kept)]
    dels = [steps.route_del(r) for r in moving + drop]
    adds = [steps.route_add(r, onlink=_onlink(r, addrs)) for r in targets]
    return dels, adds, kept + targets


def task_route_steps(task: BridgeTask, facts: HostFacts) -> tuple[list[Step], list[Route]]:
    """Steps for the task's extra routes that the host lacks, and all of them as expected routes.

    Unicast routes go through the bridge; blackhole/unreachable/prohibit routes have no device.
    """
    spec = task.bridge
    wanted = [
        dataclasses.replace(r, dev=spec.name if r.type == "unicast" else "") for r in spec.routes
    ]
    missing = [r for r in wanted if not any(route_matches(r, have) for have in facts.routes)]
    return [steps.route_add(r) for r in missing], wanted


def _mark(seq: list[Step]) -> list[Step]:
    """Flag steps (and their inverses) as able to cut the host off."""
    out = []
    for s in seq:
        inv = dataclasses.replace(s.inverse, touches_nic=True) if s.inverse else None
        out.append(dataclasses.replace(s, touches_nic=True, inverse=inv))
    return out


def creation_order(cidrs: list[str]) -> list[str]:
    """The order to add ``cidrs`` in so the kernel lists them in their given order: IPv4 in
    order (the first of a subnet is its primary), IPv6 reversed (the kernel lists the newest of
    a scope first)."""
    v4 = [c for c in cidrs if ":" not in c]
    return v4 + [c for c in reversed(cidrs) if ":" in c]


def daemon_prefix_routes(
    facts: HostFacts, dev: str, addresses: dict[str, Address], gone: list[str]
) -> list[Route]:
    """The prefix routes a daemon made for the addresses ``gone`` from ``dev`` (``addresses``:
    dev's, by canonical CIDR): NetworkManager and networkd add their addresses with
    ``noprefixroute`` and the subnet's route themselves, at their device metric (``proto
    kernel`` all the same). The kernel does not make them again, so the planner removes them
    with their addresses and the rollback puts them back once the addresses are back (before
    the routes through a gateway in them). Subnets an address that stays on ``dev`` is in keep
    theirs."""

    def subnet(cidr: str) -> str:  # as the facts canonicalize a route's destination
        return ipaddress.ip_interface(cidr).network.with_prefixlen

    nets = {subnet(c) for c in gone if addresses[c].noprefixroute}
    nets -= {subnet(c) for c in addresses if c not in gone}
    return [
        r
        for r in facts.routes_of(dev)
        if r.kernel_made and r.table == "main" and r.type == "unicast" and r.dst in nets
    ]


def _moved_label(address: Address | None, src: str, dst: str) -> str | None:
    """The label an address of ``src`` gets on ``dst``: ``eth0:web`` becomes ``br0:web``."""
    if address is None or address.label is None:
        return None
    if address.label.startswith(src):
        return dst + address.label[len(src) :]
    return address.label  # not a label of src: steps.address_label refuses it


def address_steps(
    facts: HostFacts, src: str, dst: str, dst_addrs: list[str], wanted: list[str], *,
    recorded: tuple[Address, ...] = (),
) -> tuple[list[Step], dict[str, str]]:  # fmt: skip
    """Move addresses from src to dst; also returns dst's expected labels (address -> label).

    Every address is added to dst first, in the order that makes the kernel list them as src
    did; then src's are deleted in the reverse of that order, so the rollback (the reverse) puts
    them back in their order: the primary IPv4 address stays primary and a secondary is never
    deleted together with its primary. A moved IPv4 address keeps its broadcast and its label
    (renamed for dst), so the rollback restores it exactly; one that is only in the bridge's
    record (``recorded``, lost since) comes back with the broadcast and label recorded.
    """
    info = {dev: {validate.cidr(a.cidr): a for a in facts.addresses_of(dev)} for dev in (src, dst)}
    known = {a.cidr: a for a in recorded}
    src_addrs = global_addresses(facts, src)
    labels = {c: a.label for c, a in info[dst].items() if a.label and c in wanted}
    out: list[Step] = []
    for cidr in creation_order(wanted):
        if cidr not in dst_addrs:
            note = f" (from {src})" if cidr in src_addrs else ""
            old = info[src].get(cidr)
            label = _moved_label(old, src, dst)
            brd = old.broadcast if old else None
            if old is None and cidr in known:
                label, brd = known[cidr].label, known[cidr].broadcast
            out.append(steps.addr_add(dst, cidr, note, broadcast=brd, label=label))
            if label:
                labels[cidr] = label
    for dev, gone in ((src, src_addrs), (dst, [c for c in dst_addrs if c not in wanted])):
        out += [steps.route_del(r) for r in daemon_prefix_routes(facts, dev, info[dev], gone)]
        for cidr in reversed(creation_order(gone)):
            address = info[dev][cidr]
            out.append(
                steps.addr_del(
                    dev,
                    cidr,
                    address.broadcast,
                    address.label,
                    address.nodad,
                    noprefixroute=address.noprefixroute,
                )
            )
    return out, labels


def _probes(routes: list[Route]) -> tuple[str, ...]:
    gateways = [r.gateway for r in sorted(routes, key=lambda r: r.family) if r.is_default]
    return tuple(dict.fromkeys(g for g in gateways if g))


# Steps whose file the stage backs up (their inverse restores it byte for byte).
BACKED_UP = frozenset({"file_write", "file_remove", "file_guard"})


def finish(
    task: BridgeTask, before: list[Step], cutting: list[Step], expected: ExpectedState
) -> BridgePlan:
    """Assemble a plan: ``cutting`` steps (and all after) are marked as touching the NIC."""
    all_steps = tuple(before + _mark(cutting))
    files = tuple(str(s.args["path"]) for s in all_steps if s.kind in BACKED_UP)
    return BridgePlan(
        host=task.host,
        refusal=None,
        steps=all_steps,
        rollback=rollback_of(all_steps),
        files=files,
        probes=_probes(list(expected.routes)),
        expected=expected,
    )
