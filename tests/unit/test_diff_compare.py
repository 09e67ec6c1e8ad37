"""The comparison engine (fleetbr.plan.diff): the attributes of a route that must match, and the
daemon that must call a persisted bridge its own. Each case is one a confirm must not wave
through."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.facts.model import Daemons, HostFacts, InterfaceManager, Route
from fleetbr.plan.diff import SETTLED, compare, route_matches
from fleetbr.plan.model import ExpectedState
from tests.unit.test_plan_support import GW4, bridged, facts

WANT = Route(4, "203.0.113.0/24", "br0", "198.51.100.7", 50, "static", metrics="mtu 1400")


def have(**changes: object) -> Route:
    return dataclasses.replace(WANT, **changes)  # type: ignore[arg-type]


def test_the_same_route_matches() -> None:
    assert route_matches(WANT, have())
    assert route_matches(WANT, have(protocol="boot"))  # who installed it is not an attribute


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ({}, {"metrics": ""}),  # the mtu was lost on the way
        ({}, {"metrics": "mtu 1500"}),
        ({}, {"metrics": "mtu 1400 advmss 1360"}),
        ({}, {"metric": 100}),
        ({}, {"gateway": "198.51.100.8"}),
        ({}, {"table": "100"}),
        ({}, {"dev": "eth0"}),
        ({}, {"type": "blackhole"}),
        ({"src": "198.51.100.10"}, {"src": None}),
        ({"src": "198.51.100.10"}, {"src": "198.51.100.11"}),
        ({"scope": "link"}, {"scope": "global"}),
        ({"pref": "high"}, {"pref": None}),
    ],
)
def test_a_route_that_lost_or_changed_an_attribute_does_not_match(
    asked: dict[str, object], found: dict[str, object]
) -> None:
    want = dataclasses.replace(WANT, **asked)  # type: ignore[arg-type]
    assert route_matches(want, want)
    assert not route_matches(want, dataclasses.replace(want, **found))  # type: ignore[arg-type]


def test_attributes_not_asked_for_match_anything() -> None:
    want = dataclasses.replace(WANT, metric=None, metrics="")
    assert route_matches(want, have(metric=7, metrics="mtu 9000", src="198.51.100.10"))


def test_onlink_must_be_there_when_asked_for() -> None:
    onlink = dataclasses.replace(WANT, onlink=True)
    assert not route_matches(onlink, have(onlink=False))
    assert route_matches(onlink, have(onlink=True))
    assert route_matches(WANT, have(onlink=True))  # not asked for: either


def expected(**changes: object) -> ExpectedState:
    base = ExpectedState(
        bridge="br0", nic="eth0", bridge_present=True, address_dev="br0",
        addresses=("198.51.100.10/24", "2001:db8:100::10/64"),
        routes=(Route(4, "default", "br0", GW4, None, "boot"),),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def managed(state: str, manager: str = "networkd") -> HostFacts:
    after = bridged(facts())
    view = InterfaceManager("br0", manager, state, ())
    return dataclasses.replace(after, daemons=Daemons(interfaces={"br0": view}))


def daemon_differences(exp: ExpectedState, host: HostFacts) -> list[str]:
    return [d.text for d in compare(exp, host) if d.field.startswith("daemon.")]


def test_a_bridge_its_daemon_has_settled_on_matches() -> None:
    exp = expected(managers={"br0": "networkd"})
    assert daemon_differences(exp, managed("configured")) == []


@pytest.mark.parametrize("state", ["configuring", "pending", "failed", "unmanaged", "degraded"])
def test_a_bridge_its_daemon_has_not_settled_on_is_a_difference(state: str) -> None:
    exp = expected(managers={"br0": "networkd"})
    assert daemon_differences(exp, managed(state)) == [
        f"br0 is not taken over by networkd (networkd {state})"
    ]


def test_a_bridge_another_daemon_settled_on_is_a_difference() -> None:
    exp = expected(managers={"br0": "networkd"})
    assert daemon_differences(exp, managed("connected", "networkmanager")) == [
        "br0 is not taken over by networkd (networkmanager connected)"
    ]


@pytest.mark.parametrize(("backend", "words"), sorted(SETTLED.items()))
def test_every_backend_settled_word_is_accepted(backend: str, words: tuple[str, ...]) -> None:
    exp = expected(managers={"br0": backend})
    for word in words:
        assert daemon_differences(exp, managed(word, backend)) == [], word
