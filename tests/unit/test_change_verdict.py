"""The rollback verdict of a bridge change (fleetbr.changes.bridge.change): what the plan touched
must be back at the snapshot, the daemons must see the NIC and the bridge as before, other
differences are only noted; and when a daemon is still settling."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.facts.model import Address, Daemons, DaemonView, HostFacts, InterfaceManager, Link
from fleetbr.plan import Plan, plan_host, verify_applied
from fleetbr.plan.restore import diff_facts
from fleetbr.plan.scope import touched_by
from fleetbr.transaction.protocol import MonotonicClock
from fleetbr.transaction.verdict import daemon_problems as managed_problems
from fleetbr.transaction.verdict import daemons_settling
from tests.unit.fakehost import FakeConnection, FakeHost, spec
from tests.unit.test_plan_support import V4, bridged, facts, task

CHANGE = BridgeChange(task(), "tasks/test.yaml")
BEFORE = facts()
PLAN = CHANGE.plan(BEFORE, 20)
PERSISTED = dataclasses.replace(
    PLAN, expected=dataclasses.replace(PLAN.expected, managers={"br0": "networkd"})
)


def daemon_problems(plan: Plan, before: HostFacts, after: HostFacts) -> list[str]:
    """The daemon problems of ``plan``'s scope."""
    return managed_problems(touched_by(plan).managed, before, after)


def managed(base: HostFacts, **states: str) -> HostFacts:
    """``base`` whose daemon (networkd) says ``interface=state``."""
    interfaces = {n: InterfaceManager(n, "networkd", s, ()) for n, s in states.items()}
    return dataclasses.replace(base, daemons=Daemons(interfaces=interfaces))


def test_a_bridge_change_plans_with_the_planner_and_knows_its_timeout() -> None:
    assert CHANGE.plan(BEFORE, 20) == plan_host(task(), BEFORE, min_timeout=20)
    bigger = CHANGE.plan(BEFORE, 10_000)  # the task's timeout is below this minimum
    assert bigger.refusal and "10000" in bigger.refusal
    assert CHANGE.timeout == task().deadman_timeout and CHANGE.staged_files() == {}


def test_a_bridge_change_confirms_what_verify_applied_accepts() -> None:
    conn = FakeConnection(spec(), FakeHost())  # nothing is run on the host: strict fake
    good, bad = bridged(BEFORE), BEFORE
    assert asyncio.run(CHANGE.confirm_problems(conn, "tx", PLAN, good)) == []
    found = asyncio.run(CHANGE.confirm_problems(conn, "tx", PLAN, bad))
    assert found == verify_applied(PLAN, bad) != []


def test_a_host_back_at_its_snapshot_is_rolled_back() -> None:
    check = CHANGE.rollback_check(PLAN, BEFORE, BEFORE)
    assert check.problems == [] and check.notes == []


def test_what_the_plan_touched_must_be_restored() -> None:
    lost = dataclasses.replace(BEFORE, addresses=tuple(a for a in BEFORE.addresses
                                                       if a.cidr != V4))  # fmt: skip
    check = CHANGE.rollback_check(PLAN, BEFORE, lost)
    assert check.problems == [f"address {V4} on eth0 was there before, missing now"]
    assert check.notes == []


def test_what_the_plan_did_not_touch_is_only_noted() -> None:
    tap = Link("vnet0", "ether", "fe:54:00:00:00:01", 1500, "UP", True, None)
    address = Address("vnet0", 4, "203.0.113.9/24", "global")
    other = dataclasses.replace(
        BEFORE, links=(*BEFORE.links, tap), addresses=(*BEFORE.addresses, address)
    )
    check = CHANGE.rollback_check(PLAN, BEFORE, other)
    assert check.problems == []
    assert check.notes == [
        "address 203.0.113.9/24 on vnet0 is new",
        "link vnet0: ether master None up mac fe:54:00:00:00:01 is new",
    ]
    # with no scope (fleetbr run --deadman's report) every difference is listed
    assert set(check.notes) < set(diff_facts(BEFORE, other))


def test_the_daemon_must_see_the_nic_and_the_bridge_as_before() -> None:
    before = managed(BEFORE, eth0="configured")
    assert CHANGE.rollback_check(PERSISTED, before, before).problems == []
    after = managed(BEFORE, eth0="configuring", br0="configured")
    assert daemon_problems(PERSISTED, before, after) == [
        "br0: no daemon unmanaged before, networkd configured after the rollback",
        "eth0: networkd configured before, networkd configuring after the rollback",
    ]
    assert CHANGE.rollback_check(PERSISTED, before, after).problems == daemon_problems(
        PERSISTED, before, after
    )


def test_a_snapshot_taken_while_the_daemon_was_still_at_work_is_restored_once_it_finished() -> None:
    """The facts snapshot caught networkd still configuring eth0 (shortly after a boot); after
    the rollback the same daemon has configured it: restored, not a failed rollback. Another
    daemon, or a settling word after the rollback, still counts."""
    before = managed(BEFORE, eth0="configuring")
    assert daemon_problems(PERSISTED, before, managed(BEFORE, eth0="configured")) == []
    assert daemon_problems(PERSISTED, before, managed(BEFORE, eth0="failed")) == [
        "eth0: networkd configuring before, networkd failed after the rollback"
    ]
    assert daemon_problems(PERSISTED, managed(BEFORE, eth0="configured"), before) == [
        "eth0: networkd configured before, networkd configuring after the rollback"
    ]


def test_a_daemon_that_no_longer_manages_the_nic_is_named() -> None:
    before = managed(BEFORE, eth0="configured")
    assert daemon_problems(PERSISTED, before, BEFORE) == [
        "eth0: networkd configured before, no daemon unmanaged after the rollback"
    ]


def test_a_runtime_change_does_not_judge_the_daemons() -> None:
    """persist: none (no managers): what a daemon says is not the change's business."""
    assert daemon_problems(PLAN, managed(BEFORE, eth0="configured"), BEFORE) == []


def test_the_nic_is_judged_once_when_it_is_a_managed_interface_too() -> None:
    plan = dataclasses.replace(
        PLAN, expected=dataclasses.replace(PLAN.expected, managers={"eth0": "networkd"})
    )
    before, after = managed(BEFORE, eth0="configured"), managed(BEFORE, eth0="failed")
    assert daemon_problems(plan, before, after) == [
        "eth0: networkd configured before, networkd failed after the rollback"
    ]


def test_daemons_settling() -> None:
    assert not daemons_settling(BEFORE)
    assert daemons_settling(managed(BEFORE, eth0="configuring"))
    assert daemons_settling(managed(BEFORE, br0="pending"), ("eth0", "br0"))
    assert not daemons_settling(managed(BEFORE, vnet0="configuring"), ("eth0", "br0"))
    assert not daemons_settling(managed(BEFORE, eth0="configured", br0="unmanaged"))
    view = DaemonView("networkmanager", "connecting (getting IP configuration)")
    nm = InterfaceManager("eth0", "networkd", "configured", (), (view,))
    seen = dataclasses.replace(BEFORE, daemons=Daemons(interfaces={"eth0": nm}))
    assert daemons_settling(seen, ("eth0",))  # any daemon's word counts, not only the manager's


def test_the_real_clock_sleeps_at_least_as_asked() -> None:
    clock = MonotonicClock()

    async def nap() -> float:
        start = clock.now()
        await clock.sleep(0.05)
        return clock.now() - start

    assert asyncio.run(nap()) >= 0.05


def test_a_bridge_change_refuses_a_plan_that_is_not_a_bridge_plan() -> None:
    """The transaction hands a change back the plan it made; another kind's plain Plan given to
    the bridge change is a programming error, named as such."""
    plain_plan = Plan("hv01", None, PLAN.steps, PLAN.rollback, PLAN.files, PLAN.probes)
    with pytest.raises(TypeError, match=r"^bridge: not a bridge plan: Plan\(host='hv01'"):
        CHANGE.rollback_check(plain_plan, BEFORE, BEFORE)
