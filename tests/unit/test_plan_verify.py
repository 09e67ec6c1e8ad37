"""verify_applied and verify_restored find real differences and ignore volatile facts."""

from __future__ import annotations

import dataclasses

from fleetbr.facts.model import Address, HostFacts, Link, Route
from fleetbr.plan import plan_host, verify_applied, verify_restored
from fleetbr.plan.netfilter import SYSCTL_FILE
from tests.unit.test_plan_support import GW4, V4, bridged, facts, task

PLAN = plan_host(task(), facts(), min_timeout=20)
GOOD = bridged(facts())


def test_the_bridged_host_matches() -> None:
    assert verify_applied(PLAN, GOOD) == []


def test_untouched_host_reports_the_missing_bridge() -> None:
    problems = verify_applied(PLAN, facts())
    assert "bridge br0 does not exist" in problems
    assert f"address {V4} missing on br0" in problems
    assert f"route default via {GW4} dev br0 missing" in problems


def test_address_left_on_the_nic_and_wrong_extra_address() -> None:
    f = dataclasses.replace(
        GOOD,
        addresses=(
            *GOOD.addresses,
            Address("eth0", 4, V4, "global"),
            Address("br0", 4, "203.0.113.250/32", "global"),
        ),
    )
    problems = verify_applied(PLAN, f)
    assert f"address {V4} still on eth0" in problems
    assert "unexpected address 203.0.113.250/32 on br0" in problems


def test_missing_route_wrong_stp_nf_and_file() -> None:
    f = dataclasses.replace(
        GOOD,
        routes=tuple(r for r in GOOD.routes if not (r.is_default and r.family == 4)),
        bridges=(dataclasses.replace(GOOD.bridges[0], stp=True, forward_delay=15),),
        bridge_nf={**GOOD.bridge_nf, "call-iptables": 1},
        managed_files={**GOOD.managed_files, SYSCTL_FILE: "0" * 64},
    )
    problems = verify_applied(PLAN, f)
    assert f"route default via {GW4} dev br0 missing" in problems
    assert "bridge br0 stp is True, expected False" in problems
    assert "bridge br0 forward delay is 15s, expected 4s" in problems
    assert "bridge-nf-call-iptables is 1, expected 0" in problems
    assert f"{SYSCTL_FILE} does not have the expected content" in problems


def test_nic_not_enslaved_and_bridge_down_and_wrong_mac() -> None:
    links = tuple(
        dataclasses.replace(x, master=None)
        if x.name == "eth0"
        else dataclasses.replace(x, admin_up=False, mac="02:00:00:00:00:01")
        if x.name == "br0"
        else x
        for x in GOOD.links
    )
    problems = verify_applied(PLAN, dataclasses.replace(GOOD, links=links))
    assert "eth0 is not a port of br0 (master None)" in problems
    assert "bridge br0 is down" in problems
    assert any("MAC is 02:00:00:00:00:01" in p for p in problems)


def test_restored_host_matches_and_volatile_fields_are_ignored() -> None:
    before = facts()
    after = dataclasses.replace(
        before,
        probes={GW4: True},
        extra={"uptime": 5},
        links=(*before.links, Link("vnet7", "tun", None, 1500, "UP", True, None)),
        addresses=(*before.addresses, Address("eth0", 6, "fe80::1/64", "link")),
    )
    assert verify_restored(before, after, PLAN) == []


def test_restore_differences_are_named() -> None:
    before = facts()
    after = dataclasses.replace(
        GOOD, routes=(*GOOD.routes, Route(4, "203.0.113.0/24", "br0", GW4, None, "boot"))
    )
    problems = verify_restored(before, after, PLAN)
    text = "\n".join(problems)
    assert f"address {V4} on eth0 was there before, missing now" in text
    assert f"address {V4} on br0 is new" in text
    assert "link br0: absent was there before, missing now" in text
    assert "link eth0: ether master br0" in text
    assert f"route default via {GW4} dev eth0 (ipv4) was there before" in text
    assert "bridge br0 stp False forward delay 4 ports ['eth0'] is new" in text
    assert "bridge-nf call-iptables=0 is new" in text
    assert f"file {SYSCTL_FILE} sha256" in text


def test_restore_notices_a_changed_default_route_elsewhere() -> None:
    before: HostFacts = facts()
    after = dataclasses.replace(
        before, routes=(*before.routes, Route(4, "default", "eth1", "203.0.113.1", 10, "boot"))
    )
    assert verify_restored(before, after, PLAN) == [
        "route default via 203.0.113.1 dev eth1 metric 10 (ipv4) is new"
    ]


def test_unbridge_expectations() -> None:
    un = plan_host(task("bridge: {state: absent}"), GOOD, min_timeout=20)
    assert verify_applied(un, facts()) == []
    problems = verify_applied(un, GOOD)
    assert "bridge br0 still exists" in problems
    assert "eth0 is still a port of br0" in problems
