"""Compare a host with its snapshot after a rollback, within what the transaction touched.

Every fact becomes a line of text and the two sets of lines are compared. A difference in the
transaction's scope (:mod:`fleetbr.plan.scope`) is a problem: the rollback did not restore the
host. A difference elsewhere is unrelated (a guest's tap device came or went since the
snapshot): it is reported, never a failure. Volatile facts (probes, link-local addresses, link
state, the metrics of a route from a router advertisement) are not compared.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from fleetbr.facts.model import HostFacts, Route
from fleetbr.plan.guest_check import guest_items
from fleetbr.plan.model import BridgePlan
from fleetbr.plan.scope import Touched, touched_by
from fleetbr.plan.steps import describe_route


@dataclass(frozen=True)
class RestoreCheck:
    """``problems``: differences in what the transaction touched (the host is not restored);
    ``unrelated``: differences elsewhere, reported but never a failure."""

    problems: list[str]
    unrelated: list[str]


@dataclass(frozen=True)
class _Scope:
    touched: Touched
    ips: frozenset[str]  # addresses of touched devices, before or after: a route's src
    sysctls: frozenset[str]  # touched bridge-nf keys that existed before the change
    tables: str  # "all", or "main" when either side comes from an older facts script


def _ip(cidr: str) -> str:
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return cidr


def _canon(cidr: str) -> str:
    try:
        return ipaddress.ip_interface(cidr).with_prefixlen
    except ValueError:
        return cidr


def _scope(before: HostFacts, after: HostFacts, touched: Touched | None) -> _Scope:
    if touched is None:  # no scope known: everything is in it
        links = {link.name for link in before.links + after.links} - {"lo"}
        links |= {port for b in before.bridges + after.bridges for port in b.ports}
        routes = {(r.family, r.table, r.dst) for r in before.routes + after.routes}
        files = set(before.managed_files) | set(after.managed_files)
        domains = {d.uuid for f in (before, after) if f.guests for d in f.guests.domains}
        touched = Touched(
            frozenset(links),
            frozenset(routes),
            frozenset(before.bridge_nf),
            frozenset(files),
            frozenset(domains),
        )
    ips = {_ip(a.cidr) for a in before.addresses + after.addresses if a.dev in touched.devs}
    present = {key for key, value in before.bridge_nf.items() if value is not None}
    both_all = before.route_tables == after.route_tables == "all"
    return _Scope(touched, frozenset(ips), touched.sysctls & present, "all" if both_all else "main")


# Routes a router advertisement installs: whoever processes advertisements (the kernel, networkd,
# NetworkManager) sets their metrics (mtu, hoplimit) from the options of the latest one, so the
# snapshot may have caught a route before or after an advertisement carrying an MTU option.
_ADVERTISED = "ra"


def route_text(route: Route) -> str:
    """Every attribute of ``route`` that a restore must bring back, as text (a route from a
    router advertisement without its metrics: the next advertisement sets them)."""
    text = describe_route(route)
    if route.protocol not in ("boot", ""):
        text += f" proto {route.protocol}"
    if route.scope is not None:
        text += f" scope {route.scope}"
    if route.pref is not None:
        text += f" pref {route.pref}"
    if route.metrics and route.protocol != _ADVERTISED:
        text += f" {route.metrics}"
    return f"{text} (ipv{route.family})"


def _links(facts: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    names = {link.name for link in facts.links}
    for dev in sorted(scope.touched.devs - names):
        yield f"link {dev}: absent", True
    for link in facts.links:
        if link.name != "lo":
            state = "up" if link.admin_up else "down"
            text = f"link {link.name}: {link.kind} master {link.master} {state} mac {link.mac}"
            if link.addrgenmode is not None:
                text += f" addrgenmode {link.addrgenmode}"
            yield text, link.name in scope.touched.devs


def _addresses(facts: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    for a in facts.addresses:
        if a.scope == "global":
            label = f" label {a.label}" if a.label else ""
            secondary = " secondary" if a.secondary else ""
            yield (
                f"address {_canon(a.cidr)} on {a.dev}{label}{secondary}",
                a.dev in scope.touched.devs,
            )


def _routes(facts: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    for r in facts.routes:
        if scope.tables == "main" and r.table != "main":
            continue
        mine = (
            r.dev in scope.touched.devs
            or (r.family, r.table, r.dst) in scope.touched.routes
            or (r.src is not None and r.src in scope.ips)
        )
        yield f"route {route_text(r)}", mine


def _bridges(facts: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    for b in facts.bridges:
        mine = b.name in scope.touched.devs
        yield f"bridge {b.name} stp {b.stp} forward delay {b.forward_delay}", mine
        for port in b.ports:
            yield f"bridge port {port} of {b.name}", port in scope.touched.devs


def _topology(facts: HostFacts, other: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    """Bonds (mode, options, slaves in order), VLAN devices, VLAN filtering, the bridge VLAN
    table (when both sides report it) and which DHCP client holds which address."""
    topo, devs = facts.topology, scope.touched.devs
    for bond in topo.bonds:
        mine = bond.name in devs or bool(devs & set(bond.slave_names))
        options = " ".join(f"{k}={v}" for k, v in bond.options)
        yield f"bond {bond.name} mode {bond.mode} {options}", mine
        yield f"bond {bond.name} slaves {' '.join(bond.slave_names)}", mine
    for vlan in topo.vlans:
        yield f"vlan {vlan.name} id {vlan.vid} on {vlan.parent} {vlan.protocol}", vlan.name in devs
    for name in topo.vlan_filtering:
        yield f"bridge {name} vlan_filtering on", name in devs
    for name, pvid in topo.default_pvids:
        yield f"bridge {name} vlan_default_pvid {pvid}", name in devs
    if topo.vlan_table is not None and other.topology.vlan_table is not None:
        for e in topo.vlan_table:
            flags = (" pvid" if e.pvid else "") + (" untagged" if e.untagged else "")
            yield f"bridge vlan {e.dev} {e.vid}-{e.vid_end}{flags}", e.dev in devs
    for lease in topo.dhcp:
        yield f"dhcp {lease.client} {_canon(lease.cidr)} on {lease.dev}", lease.dev in devs


def _settings(facts: HostFacts, other: HostFacts, scope: _Scope) -> Iterator[tuple[str, bool]]:
    for key, value in facts.bridge_nf.items():
        if value is not None:
            yield f"bridge-nf {key}={value}", key in scope.sysctls
    # A module fleetbr loaded may have to stay loaded (something uses it): tolerated.
    if facts.br_netfilter is not None and other.br_netfilter is not None:
        yield f"kernel module br_netfilter {facts.br_netfilter}", False
    for path, digest in facts.managed_files.items():
        yield f"file {path} sha256 {digest}", path in scope.touched.files
    for path in sorted(scope.touched.files - set(facts.managed_files)):
        if path in facts.daemons.files:  # a backend's file (fleetbr.backends)
            yield f"file {path} sha256 {facts.daemons.files[path]}", True
    if facts.file_meta is not None and other.file_meta is not None:  # both scripts report it
        for path, meta in facts.file_meta.items():
            yield f"file {path} {meta.describe()}", path in scope.touched.files
    if facts.rules is not None and other.rules is not None:
        for rule in facts.rules:
            mine = bool({rule.iif, rule.oif} & scope.touched.devs)
            yield f"rule ipv{rule.family} {rule.priority}: {rule.text}", mine


def _items(facts: HostFacts, other: HostFacts, scope: _Scope) -> dict[str, bool]:
    """Every compared fact as text -> whether it is in the transaction's scope."""
    items: dict[str, bool] = {}
    for gen in (_links, _addresses, _routes, _bridges):
        items.update(gen(facts, scope))
    if facts.guests is not None and other.guests is not None:  # both scripts read libvirt
        items.update(guest_items(facts, scope.touched.domains))
    items.update(_settings(facts, other, scope))
    items.update(_topology(facts, other, scope))
    return items


def restore_check(before: HostFacts, after: HostFacts, touched: Touched | None) -> RestoreCheck:
    """Differences between ``before`` and ``after``, split by ``touched`` (None: all in scope)."""
    scope = _scope(before, after, touched)
    old, new = _items(before, after, scope), _items(after, before, scope)
    problems: list[str] = []
    unrelated: list[str] = []
    for text in sorted(old.keys() - new.keys()):
        (problems if old[text] else unrelated).append(f"{text} was there before, missing now")
    for text in sorted(new.keys() - old.keys()):
        (problems if new[text] else unrelated).append(f"{text} is new")
    return RestoreCheck(problems, unrelated)


def verify_restored(before: HostFacts, after: HostFacts, plan: BridgePlan) -> list[str]:
    """Differences, in what ``plan`` touched, between ``before`` and ``after`` ([] = restored)."""
    return restore_check(before, after, touched_by(plan)).problems


def diff_facts(before: HostFacts, after: HostFacts) -> list[str]:
    """Every difference between two facts of one host (no scope: everything counts)."""
    return restore_check(before, after, None).problems
