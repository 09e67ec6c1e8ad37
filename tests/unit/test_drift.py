"""``check`` and the planner agree by construction: in_sync exactly when plan says unchanged, for
every kind of drift, alone and in pairs; each kind is reported as its field and repaired by
exactly its own steps."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from fleetbr.changes.bridge.drift import check_facts, drift
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.model import Address, ArmedTransaction, HostFacts, Route
from fleetbr.plan import plan_host
from fleetbr.plan.desired import pin_path
from fleetbr.plan.netfilter import SYSCTL_FILE, UDEV_FILE
from fleetbr.report import AggregatedResult, HostResult, Status
from tests.unit.test_plan_support import GW4, V6, bridged, facts, task

Drift = Callable[[HostFacts], HostFacts]
BRIDGED = dataclasses.replace(bridged(facts()), br_netfilter="loaded")
STP_TASK = task("bridge: {nic: eth0, stp: true, forward_delay: 4}")


def stp_bridged() -> HostFacts:
    return _bridge(BRIDGED, stp=True)


def _bridge(f: HostFacts, **changes: Any) -> HostFacts:
    return dataclasses.replace(f, bridges=(dataclasses.replace(f.bridges[0], **changes),))


def _link(f: HostFacts, name: str, **changes: Any) -> HostFacts:
    links = tuple(dataclasses.replace(x, **changes) if x.name == name else x for x in f.links)
    return dataclasses.replace(f, links=links)


def _file(f: HostFacts, path: str, digest: str | None) -> HostFacts:
    return dataclasses.replace(f, managed_files={**f.managed_files, path: digest})


def _armed(stale: bool) -> Drift:
    def inject(f: HostFacts) -> HostFacts:
        tx = ArmedTransaction("20261127T181500-3fa9c2", 200, timer_alive=not stale,
                              same_boot=True, now=100)  # fmt: skip
        return dataclasses.replace(f, armed=tx)

    return inject


# kind -> (how to inject it, the task, the difference fields, the repair step kinds)
KINDS: dict[str, tuple[Drift, BridgeTask, set[str], list[str]]] = {
    "address removed from the bridge": (
        lambda f: dataclasses.replace(f, addresses=tuple(a for a in f.addresses if a.cidr != V6)),
        task(), {"addresses.br0"}, ["addr_add"],
    ),
    "NIC detached": (
        lambda f: _bridge(_link(f, "eth0", master=None), ports=()),
        task(), {"ports.br0"}, ["link_master"],
    ),
    "STP turned on": (lambda f: _bridge(f, stp=True), task(), {"bridge.stp"}, ["bridge_set"]),
    "forward delay changed (STP on)": (
        lambda f: _bridge(_bridge(f, stp=True), forward_delay=10),
        STP_TASK, {"bridge.forward_delay"}, ["bridge_set"],
    ),
    "bridge-nf-call-iptables back to 1": (
        lambda f: dataclasses.replace(f, bridge_nf={**f.bridge_nf, "call-iptables": 1}),
        task(), {"sysctl.net.bridge.bridge-nf-call-iptables"}, ["sysctl_set"],
    ),
    "sysctl.d file edited": (
        lambda f: _file(f, SYSCTL_FILE, "1" * 64), task(), {f"file.{SYSCTL_FILE}"}, ["file_write"],
    ),
    "udev rule deleted": (
        lambda f: _file(f, UDEV_FILE, None), task(), {f"file.{UDEV_FILE}"}, ["file_write"],
    ),
    "extra default route": (
        lambda f: dataclasses.replace(
            f, routes=(*f.routes, Route(4, "default", "br0", "198.51.100.254", 50, "static"))
        ),
        task(), {"routes"}, ["route_del"],
    ),
    "bridge down": (lambda f: _link(f, "br0", admin_up=False), task(), {"bridge.up"}, ["link_up"]),
    "MAC changed": (
        lambda f: _link(f, "br0", mac="02:00:00:00:00:99"), task(), {"bridge.mac"}, ["bridge_set"],
    ),
    "extra address on the bridge": (
        lambda f: dataclasses.replace(
            f, addresses=(*f.addresses, Address("br0", 4, "203.0.113.9/24", "global"))
        ),
        task(), {"addresses.br0"}, ["addr_del"],
    ),
    "address on the NIC": (
        lambda f: dataclasses.replace(
            f, addresses=(*f.addresses, Address("eth0", 4, "203.0.113.9/24", "global"))
        ),
        task(), {"addresses.eth0"}, ["addr_del"],
    ),
    "record lost": (
        lambda f: dataclasses.replace(_file(f, pin_path("br0"), None), pins={}),
        task(), {f"file.{pin_path('br0')}"}, ["file_write"],
    ),
}  # fmt: skip
CLEAN: dict[str, tuple[HostFacts, BridgeTask]] = {
    "bridged": (BRIDGED, task()),
    "bridged with STP on": (stp_bridged(), STP_TASK),
    "forward delay changed while STP is off": (_bridge(BRIDGED, forward_delay=10), task()),
    "not bridged, unbridge task": (facts(), task("bridge: {state: absent}\nnetfilter: keep\n")),
    "a guest's tap on the bridge": (_bridge(BRIDGED, ports=("eth0", "vnet0")), task()),
}


def _base(t: BridgeTask) -> HostFacts:
    return stp_bridged() if t is STP_TASK else BRIDGED


@pytest.mark.parametrize("name", list(CLEAN))
def test_a_host_that_matches_is_in_sync_and_unchanged(name: str) -> None:
    f, t = CLEAN[name]
    outcome = check_facts(t, f, min_timeout=20)
    assert outcome.status == Status.IN_SYNC, outcome.message
    assert plan_host(t, f, min_timeout=20).unchanged
    assert drift(t, f) == []


@pytest.mark.parametrize("name", list(KINDS))
def test_each_drift_is_reported_by_field_and_repaired_by_its_own_steps(name: str) -> None:
    inject, t, fields, repair = KINDS[name]
    f = inject(_base(t))
    outcome = check_facts(t, f, min_timeout=20)
    plan = plan_host(t, f, min_timeout=20)
    assert outcome.status == Status.DRIFTED, outcome.message
    assert not plan.unchanged and plan.refusal is None
    assert {d.field for d in outcome.differences} == fields
    assert [s.kind for s in plan.steps] == repair
    assert list(outcome.repair) == [s.description for s in plan.steps]


@pytest.mark.parametrize(("one", "two"), list(itertools.combinations(KINDS, 2)))
def test_in_sync_exactly_when_unchanged_for_every_pair_of_drifts(one: str, two: str) -> None:
    first, t1, fields1, _ = KINDS[one]
    second, t2, fields2, _ = KINDS[two]
    t = STP_TASK if STP_TASK in (t1, t2) else t1
    f = second(first(_base(t)))
    outcome = check_facts(t, f, min_timeout=20)
    plan = plan_host(t, f, min_timeout=20)
    assert (outcome.status == Status.IN_SYNC) == plan.unchanged
    if plan.refusal is None:
        assert outcome.status == Status.DRIFTED
        assert bool(plan.steps) and bool(plan.differences)
        if "record lost" not in (one, two):  # without it, move takes what the NIC has now
            assert {d.field for d in outcome.differences} <= fields1 | fields2  # nothing spurious


@pytest.mark.parametrize("stale", [False, True])
def test_an_armed_transaction_is_drift_and_the_rest_still_shows(stale: bool) -> None:
    f = _armed(stale)(_bridge(BRIDGED, stp=True))
    outcome = check_facts(task(), f, min_timeout=20)
    assert outcome.status == Status.DRIFTED
    tx = outcome.differences[0]
    assert tx.field == "transaction" and tx.want is None
    assert tx.have == f"{'stale' if stale else 'live'} 20261127T181500-3fa9c2"
    assert {d.field for d in outcome.differences} == {"transaction", "bridge.stp"}
    assert not plan_host(task(), f, min_timeout=20).unchanged  # refused while armed


def test_a_damaged_marker_is_drift_an_unreadable_state_cannot_be_checked() -> None:
    damaged = dataclasses.replace(BRIDGED, armed=ArmedTransaction.untrusted("damaged", "x", 1))
    outcome = check_facts(task(), damaged)
    assert outcome.status == Status.DRIFTED
    assert [d.have for d in outcome.differences] == ["damaged marker"]
    unreadable = dataclasses.replace(
        BRIDGED, armed=ArmedTransaction.untrusted("unreadable", "x", 1)
    )
    assert check_facts(task(), unreadable).status == Status.REFUSED


def test_what_the_planner_refuses_cannot_be_checked() -> None:
    gone = dataclasses.replace(BRIDGED, links=tuple(x for x in BRIDGED.links if x.name != "eth0"))
    outcome = check_facts(task(), gone)
    assert outcome.status == Status.REFUSED and "does not exist" in outcome.message
    assert check_facts(task(), BRIDGED, min_timeout=999).status == Status.REFUSED


def test_the_structured_diff_has_field_want_have() -> None:
    f = KINDS["extra default route"][0](BRIDGED)
    outcome = check_facts(task(), f)
    assert outcome.data()["differences"] == [
        {
            "field": "routes",
            "want": None,
            "have": "default via 198.51.100.254 dev br0 metric 50",
            "text": "unexpected default route default via 198.51.100.254 dev br0 metric 50",
        }
    ]
    assert outcome.data()["repair"] == ["remove route default via 198.51.100.254 dev br0 metric 50"]
    assert GW4 not in str(outcome.data())  # the recorded default route is not touched


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([Status.IN_SYNC, Status.IN_SYNC], 0),
        ([Status.IN_SYNC, Status.DRIFTED], 3),
        ([Status.DRIFTED, Status.UNREACHABLE], 1),
        ([Status.IN_SYNC, Status.REFUSED], 1),
        ([Status.FAILED], 1),
        ([], 0),
    ],
)
def test_check_exit_codes(statuses: list[Status], code: int) -> None:
    aggregated = AggregatedResult("check")
    for i, status in enumerate(statuses):
        aggregated.add(HostResult(f"hv{i}", status))
    assert aggregated.exit_code == code
