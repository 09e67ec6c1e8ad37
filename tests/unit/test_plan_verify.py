"""verify_applied and verify_restored find real differences and ignore volatile facts."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.errors import FactsError
from fleetbr.facts.model import Address, Bridge, HostFacts, Link, Route
from fleetbr.facts.script import facts_script
from fleetbr.plan import (
    plan_host,
    restore_check,
    touched_by,
    touched_lines,
    verify_applied,
    verify_restored,
)
from fleetbr.plan.desired import pin_path
from fleetbr.plan.netfilter import SYSCTL_FILE, UDEV_FILE
from fleetbr.plan.scope import parse_touched
from tests.unit.test_plan_support import GW4, NIC_MAC, V4, bridged, facts, task

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
    # STP is wanted off: the kernel ignores the forward delay then, so it is not compared
    assert not any("forward delay" in p for p in problems)
    assert "bridge-nf-call-iptables is 1, expected 0" in problems
    assert f"{SYSCTL_FILE} does not have the expected content" in problems


def test_forward_delay_counts_only_while_stp_is_wanted_on() -> None:
    delayed = dataclasses.replace(
        GOOD, bridges=(dataclasses.replace(GOOD.bridges[0], forward_delay=15),)
    )
    assert verify_applied(PLAN, delayed) == []
    stp_task = task("bridge: {nic: eth0, stp: true, forward_delay: 4}")
    stp_plan = plan_host(stp_task, facts(), min_timeout=20)
    on = dataclasses.replace(delayed, bridges=(dataclasses.replace(delayed.bridges[0], stp=True),))
    assert verify_applied(stp_plan, on) == ["bridge br0 forward delay is 15s, expected 4s"]


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
    assert "bridge br0 stp False forward delay 4 is new" in text
    assert "bridge port eth0 of br0 is new" in text
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


# --- the scope of a restore check: what the transaction touched --------------------------------


def test_the_scope_is_the_plans_objects_and_survives_staging() -> None:
    touched = touched_by(PLAN)
    assert touched.devs == {"eth0", "br0"}
    assert (4, "main", "default") in touched.routes and (6, "main", "default") in touched.routes
    assert touched.sysctls == {"call-iptables", "call-ip6tables", "call-arptables"}
    assert touched.files == {SYSCTL_FILE, UDEV_FILE, pin_path("br0")}
    lines = touched_lines(touched)
    assert lines[:2] == ["dev br0", "dev eth0"] and "route 4 main default" in lines
    assert parse_touched(lines) == touched
    script = facts_script(touched=lines)
    assert "section touched\necho 'dev br0'\n" in script.replace("@@fleetbr-section ", "section ")
    with pytest.raises(FactsError, match="section touched"):
        parse_touched(["dev eth0;reboot"])


def test_unrelated_changes_are_reported_apart_and_never_fail() -> None:
    before = facts()
    tap = Link("vnet0", "tun", "fe:54:00:00:00:01", 1500, "UP", True, "br0")
    after = dataclasses.replace(
        before,
        links=(*before.links, tap, Link("virbr0", "bridge", None, 1500, "UP", True, None)),
        bridges=(Bridge("virbr0", False, 2, ("vnet1",)),),
        addresses=(*before.addresses, Address("virbr0", 4, "203.0.113.1/24", "global")),
        routes=(*before.routes, Route(4, "203.0.113.0/24", "virbr0", None, None, "kernel")),
    )
    check = restore_check(before, after, touched_by(PLAN))
    assert check.problems == []
    assert "link vnet0: tun master br0 up mac fe:54:00:00:00:01 is new" in check.unrelated
    assert "bridge port vnet1 of virbr0 is new" in check.unrelated
    assert "address 203.0.113.1/24 on virbr0 is new" in check.unrelated
    # with no scope known (a snapshot staged by an older fleetbr) everything counts
    assert set(check.unrelated) <= set(restore_check(before, after, None).problems)


def test_a_touched_device_that_changed_is_a_problem_even_among_unrelated_ones() -> None:
    before = facts()
    down = tuple(
        dataclasses.replace(x, admin_up=False) if x.name == "eth0" else x for x in before.links
    )
    after = dataclasses.replace(
        before, links=(*down, Link("vnet0", "tun", None, 1500, "UP", True, None))
    )
    check = restore_check(before, after, touched_by(PLAN))
    assert check.problems == [
        f"link eth0: ether master None up mac {NIC_MAC} was there before, missing now",
        f"link eth0: ether master None down mac {NIC_MAC} is new",
    ]
    assert check.unrelated == ["link vnet0: tun master None up mac None is new"]


def test_a_route_in_another_table_through_the_nic_is_in_scope() -> None:
    before = dataclasses.replace(
        facts(), routes=(*facts().routes, Route(4, "default", "eth0", GW4, table="100"))
    )
    after = facts()
    assert verify_restored(before, after, PLAN) == [
        f"route default via {GW4} dev eth0 table 100 (ipv4) was there before, missing now"
    ]


def test_facts_of_an_older_script_compare_only_the_main_table() -> None:
    before = dataclasses.replace(facts(), route_tables="main")
    after = dataclasses.replace(
        facts(), routes=(*facts().routes, Route(4, "default", "eth0", GW4, table="100"))
    )
    assert verify_restored(before, after, PLAN) == []
