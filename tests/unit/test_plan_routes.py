"""Routes of every table, with their attributes, and address labels move with the addresses; policy
rules that name the NIC are refused. On facts recorded from a real host (fixture ``routed``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.facts.model import Address, HostFacts, Route
from fleetbr.facts.parse import parse_facts
from fleetbr.plan import BridgePlan, plan_host, step_command, verify_applied, verify_restored
from tests.unit.test_plan_support import bridged as support_bridged
from tests.unit.test_plan_support import recorded_by, task

DATA = Path(__file__).resolve().parents[1] / "data" / "facts"
SVC = "198.51.100.81"


def routed(keep_rules: bool = False) -> HostFacts:
    """The recorded ``routed`` host; without the rule that names eth0 unless ``keep_rules``."""
    f = parse_facts((DATA / "routed.txt").read_text())
    if keep_rules:
        return f
    return dataclasses.replace(f, rules=tuple(r for r in f.rules or () if r.iif is None))


def plan(f: HostFacts, text: str | None = None) -> BridgePlan:
    return plan_host(task() if text is None else task(text), f, min_timeout=20)


def on(dev: str, routes: tuple[Route, ...]) -> tuple[Route, ...]:
    return tuple(dataclasses.replace(r, dev=dev) if r.dev == "eth0" else r for r in routes)


def bridged(f: HostFacts, p: BridgePlan) -> HostFacts:
    """``f`` as the kernel shows it after ``p`` was applied right."""
    done = support_bridged(
        dataclasses.replace(f, links=tuple(x for x in f.links if x.name != "lo"))
    )
    labelled = tuple(
        dataclasses.replace(a, label=p.expected.labels.get(a.cidr)) if a.dev == "br0" else a
        for a in done.addresses
    )
    nic = f.link("eth0")
    assert nic is not None
    links = tuple(dataclasses.replace(x, mac=nic.mac) if x.name == "br0" else x for x in done.links)
    done = dataclasses.replace(done, links=links, addresses=labelled, routes=on("br0", f.routes))
    return recorded_by(done, p)


def commands(steps: tuple[object, ...] | list[object]) -> list[str]:
    return [step_command(s) for s in steps]  # type: ignore[arg-type]


def test_routes_of_other_tables_move_to_the_bridge_with_their_attributes() -> None:
    p = plan(routed())
    assert p.refusal is None, p.refusal
    text = "\n".join(commands(list(p.steps)))
    assert "ip -4 route del default via 198.51.100.1 dev eth0 table 100" in text
    assert "ip -4 route replace default via 198.51.100.1 dev br0 table 100 scope global" in text
    assert (
        f"ip -4 route replace 203.0.113.0/24 via 198.51.100.1 dev br0 metric 20 src {SVC} "
        "scope global proto static mtu 1400"
    ) in text
    assert (
        "ip -6 route replace 2001:db8:300::/48 via 2001:db8:1::1 dev br0 table 100 metric 1024 "
        "proto boot pref high"
    ) in text
    # the typed route of table 100 has no device: it stays where it is
    assert "203.0.113.128/25" not in text
    expected = {(r.table, r.dst, r.dev, r.src) for r in p.expected.routes}
    assert ("100", "default", "br0", None) in expected
    assert ("main", "203.0.113.0/24", "br0", SVC) in expected


def test_the_rollback_puts_every_route_back_exactly() -> None:
    p = plan(routed())
    back = "\n".join(commands(list(p.rollback)))
    assert "ip -4 route replace default via 198.51.100.1 dev eth0 table 100 scope global" in back
    assert (
        f"ip -4 route replace 203.0.113.0/24 via 198.51.100.1 dev eth0 metric 20 src {SVC} "
        "scope global proto static mtu 1400"
    ) in back
    assert (
        "2001:db8:300::/48 via 2001:db8:1::1 dev eth0 table 100 metric 1024 proto boot pref high"
        in back
    )
    # addresses come back before the routes that use them, in their kernel order, label kept
    adds = [s for s in p.rollback if s.kind == "addr_add" and s.args["dev"] == "eth0"]
    assert [s.args["cidr"] for s in adds] == ["198.51.100.80/24", f"{SVC}/24", "2001:db8:1::80/64"]
    assert "label eth0:svc dev eth0" in step_command(adds[1])
    first_route = next(i for i, s in enumerate(p.rollback) if s.kind == "route_add")
    assert max(p.rollback.index(s) for s in adds) < first_route


def test_a_label_moves_to_the_bridge_renamed() -> None:
    p = plan(routed())
    add = next(s for s in p.steps if s.kind == "addr_add" and s.args["cidr"] == f"{SVC}/24")
    assert add.args["label"] == "br0:svc"
    assert "label br0:svc dev br0" in step_command(add)
    assert dict(p.expected.labels) == {f"{SVC}/24": "br0:svc"}


def test_confirm_checks_other_tables_sources_and_labels() -> None:
    f = routed()
    p = plan(f)
    good = bridged(f, p)
    assert verify_applied(p, good) == []
    lost = dataclasses.replace(good, routes=tuple(r for r in good.routes if r.table != "100"))
    assert "route default via 198.51.100.1 dev br0 table 100 missing" in verify_applied(p, lost)
    no_src = dataclasses.replace(
        good,
        routes=tuple(
            dataclasses.replace(r, src=None) if r.metric == 20 else r for r in good.routes
        ),
    )
    assert any("203.0.113.0/24" in x and "missing" in x for x in verify_applied(p, no_src))
    unlabelled = dataclasses.replace(
        good, addresses=tuple(dataclasses.replace(a, label=None) for a in good.addresses)
    )
    assert verify_applied(p, unlabelled) == [
        f"address {SVC}/24 on br0 has label None, expected br0:svc"
    ]
    left = dataclasses.replace(
        good, routes=(*good.routes, *(r for r in f.routes if r.table == "100"))
    )
    assert any("table 100 still through eth0" in x for x in verify_applied(p, left))


def test_the_restore_check_covers_every_table_sources_and_labels() -> None:
    f = routed()
    p = plan(f)
    assert verify_restored(f, f, p) == []
    empty_100 = dataclasses.replace(f, routes=tuple(r for r in f.routes if r.table != "100"))
    problems = verify_restored(f, empty_100, p)
    assert any("default via 198.51.100.1 dev eth0 table 100" in x for x in problems), problems
    no_src = dataclasses.replace(
        f, routes=tuple(dataclasses.replace(r, src=None) if r.metric == 20 else r for r in f.routes)
    )
    assert any(f"src {SVC}" in x and "missing now" in x for x in verify_restored(f, no_src, p))
    no_label = dataclasses.replace(
        f, addresses=tuple(dataclasses.replace(a, label=None) for a in f.addresses)
    )
    assert any("label eth0:svc" in x for x in verify_restored(f, no_label, p))


def test_a_rule_that_names_the_nic_is_refused() -> None:
    p = plan(routed(keep_rules=True))
    assert p.refusal is not None and p.steps == ()
    assert "policy rule 200" in p.refusal and "names eth0" in p.refusal


def test_a_rule_that_names_the_bridge_is_refused_when_unbridging() -> None:
    f = routed()
    p = plan(f)
    done = bridged(f, p)
    rule = dataclasses.replace(f.rules[0], priority=300, text="oif br0 table 100", oif="br0")  # type: ignore[index]
    with_rule = dataclasses.replace(done, rules=(*(done.rules or ()), rule))
    un = plan_host(task("bridge: {state: absent}"), with_rule, min_timeout=20)
    assert un.refusal is not None and "names br0" in un.refusal


def test_a_route_fleetbr_cannot_recreate_is_refused() -> None:
    f = routed()
    odd = Route(4, "203.0.113.64/26", "eth0", "198.51.100.1", unsupported=("nhid",))
    p = plan(dataclasses.replace(f, routes=(*f.routes, odd)))
    assert p.refusal is not None and "nhid" in p.refusal and p.steps == ()


def test_a_route_source_the_task_drops_is_refused() -> None:
    p = plan(routed(), "bridge: {addresses: ['198.51.100.80/24', '2001:db8:1::80/64']}")
    assert p.refusal is not None
    assert f"uses source address {SVC}" in p.refusal


def test_a_label_too_long_for_the_bridge_is_refused() -> None:
    f = routed()
    long = tuple(
        dataclasses.replace(a, label="eth0:abcdefghij") if a.label else a for a in f.addresses
    )
    p = plan_host(
        task("bridge: {name: brlongname0}"), dataclasses.replace(f, addresses=long), min_timeout=20
    )
    assert p.refusal is not None and "label" in p.refusal


def test_an_existing_bridge_address_keeps_its_label() -> None:
    f = routed()
    done = bridged(f, plan(f))
    extra = Address("br0", 4, "203.0.113.9/24", "global", label="br0:x")
    done = dataclasses.replace(done, addresses=(*done.addresses, extra))
    addresses = ["198.51.100.80/24", f"{SVC}/24", "2001:db8:1::80/64", "203.0.113.9/24"]
    p = plan_host(task(f"bridge: {{addresses: {addresses}}}"), done, min_timeout=20)
    assert p.refusal is None, p.refusal
    assert p.expected.labels.get("203.0.113.9/24") == "br0:x"


def test_a_host_already_bridged_is_unchanged_whatever_its_rules() -> None:
    f = routed(keep_rules=True)
    done = bridged(f, plan(routed()))
    assert plan(done).unchanged
