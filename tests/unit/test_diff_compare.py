"""The comparison engine (fleetbr.plan.diff): the attributes of a route that must match, and the
daemon that must call a persisted bridge its own. Each case is one a confirm must not wave
through."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends import registry
from fleetbr.facts.model import Address, Daemons, HostFacts, InterfaceManager, Route
from fleetbr.plan.diff import compare, route_matches
from fleetbr.plan.model import Difference, ExpectedState
from tests.unit.test_plan_support import GW4, GW6, bridged, facts

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


@pytest.mark.parametrize(
    ("backend", "words"), sorted((b.name, b.settled) for b in registry.backends())
)
def test_every_backend_settled_word_is_accepted(backend: str, words: tuple[str, ...]) -> None:
    exp = expected(managers={"br0": backend})
    for word in words:
        assert daemon_differences(exp, managed(word, backend)) == [], word


# --- every difference as the drift report shows it (field, want, have, text) -----------------

GOOD = bridged(facts())
ROUTES = (
    Route(4, "default", "br0", GW4, None, "boot"),
    Route(6, "default", "br0", GW6, 1024, "boot"),
)
BRIDGED = expected(stp=False, mac="52:54:00:12:34:56", routes=ROUTES)


def diffs(exp: ExpectedState, host: HostFacts) -> list[Difference]:
    return [d for d in compare(exp, host) if not d.field.startswith("file.")]


def link(host: HostFacts, name: str, **changes: object) -> HostFacts:
    links = tuple(dataclasses.replace(x, **changes) if x.name == name else x  # type: ignore[arg-type]
                  for x in host.links)  # fmt: skip
    return dataclasses.replace(host, links=links)


def test_a_bridged_host_has_no_difference() -> None:
    assert diffs(BRIDGED, GOOD) == []
    # the NIC keeps its kernel routes (IPv6 link-local): not a route left on it
    kernel = Route(6, "fe80::/64", "eth0", None, 256, "kernel")
    assert diffs(BRIDGED, dataclasses.replace(GOOD, routes=(*GOOD.routes, kernel))) == []


def test_each_difference_names_its_field_the_wanted_and_the_found_value() -> None:
    no_nic = dataclasses.replace(GOOD, links=tuple(x for x in GOOD.links if x.name != "eth0"))
    assert diffs(BRIDGED, no_nic) == [Difference("nic", "eth0", None, "NIC eth0 is gone")]
    unbridge = dataclasses.replace(BRIDGED, bridge_present=False, address_dev="eth0",
                                   routes=(), addresses=())  # fmt: skip
    found = compare(unbridge, GOOD)
    assert Difference("bridge", "absent", "present", "bridge br0 still exists") in found
    assert Difference("ports.br0", None, "eth0", "eth0 is still a port of br0") in found
    unbridged = link(dataclasses.replace(facts(), bridges=()), "eth0", master=None)
    no_bridge = diffs(BRIDGED, unbridged)
    assert no_bridge[0] == Difference("bridge", "present", "absent", "bridge br0 does not exist")
    linkless = dataclasses.replace(GOOD, links=tuple(x for x in GOOD.links if x.name != "br0"))
    assert diffs(BRIDGED, linkless)[0] == no_bridge[0]  # a bridge entry without its link
    loose = link(GOOD, "eth0", master=None)
    assert diffs(BRIDGED, loose) == [
        Difference("ports.br0", "eth0", None, "eth0 is not a port of br0 (master None)")
    ]
    assert diffs(BRIDGED, link(GOOD, "br0", admin_up=False)) == [
        Difference("bridge.up", True, False, "bridge br0 is down")
    ]
    assert diffs(BRIDGED, link(GOOD, "br0", mac="52:54:00:00:00:99")) == [
        Difference("bridge.mac", "52:54:00:12:34:56", "52:54:00:00:00:99",
                   "bridge br0 MAC is 52:54:00:00:00:99, expected 52:54:00:12:34:56")
    ]  # fmt: skip
    stp = dataclasses.replace(BRIDGED, stp=True, forward_delay=15)
    assert diffs(stp, GOOD) == [
        Difference("bridge.stp", True, False, "bridge br0 stp is False, expected True"),
        Difference("bridge.forward_delay", 15, 4,
                   "bridge br0 forward delay is 4s, expected 15s"),
    ]  # fmt: skip


def test_address_and_route_differences() -> None:
    extra = Address("br0", 4, "203.0.113.5/24", "global", label="br0:x")
    left = Address("eth0", 4, "198.51.100.99/24", "global")
    host = dataclasses.replace(
        GOOD,
        addresses=(*(a for a in GOOD.addresses if a.cidr != "2001:db8:100::10/64"), extra, left),
        routes=(*GOOD.routes, Route(4, "203.0.113.0/24", "eth0", GW4, None, "static")),
    )
    exp = dataclasses.replace(BRIDGED, addresses=(*BRIDGED.addresses, "203.0.113.5/24"),
                              labels={"203.0.113.5/24": "br0:y"})  # fmt: skip
    assert diffs(exp, host) == [
        Difference("addresses.br0", "2001:db8:100::10/64", None,
                   "address 2001:db8:100::10/64 missing on br0"),
        Difference("labels.br0", "203.0.113.5/24 br0:y", "203.0.113.5/24 br0:x",
                   "address 203.0.113.5/24 on br0 has label br0:x, expected br0:y"),
        Difference("addresses.eth0", None, "198.51.100.99/24",
                   "address 198.51.100.99/24 still on eth0"),
        Difference("routes", None, "203.0.113.0/24 via 198.51.100.1 dev eth0",
                   "route 203.0.113.0/24 via 198.51.100.1 dev eth0 still through eth0"),
    ]  # fmt: skip
    assert diffs(dataclasses.replace(exp, addresses=BRIDGED.addresses, labels={}), host)[0] == (
        Difference("addresses.br0", "2001:db8:100::10/64", None,
                   "address 2001:db8:100::10/64 missing on br0")
    )  # fmt: skip
    unexpected = [d for d in diffs(BRIDGED, host) if d.text.startswith("unexpected address")]
    assert unexpected == [Difference("addresses.br0", None, "203.0.113.5/24",
                                     "unexpected address 203.0.113.5/24 on br0")]  # fmt: skip


def test_the_backends_files_must_hold_what_fleetbr_wrote() -> None:
    net, old, gone = "/etc/systemd/network/br0.network", "/etc/network/interfaces", "/etc/x"
    exp = dataclasses.replace(BRIDGED, config_files={net: "aa" * 32, old: "bb" * 32, gone: None})
    right = dataclasses.replace(GOOD, daemons=Daemons(files={net: "aa" * 32, old: "bb" * 32}))
    assert diffs(exp, right) == []
    wrong = dataclasses.replace(GOOD, daemons=Daemons(files={old: "cc" * 32, gone: "dd" * 32}))
    assert [d for d in compare(exp, wrong) if d.field.startswith("file.")] == [
        Difference(f"file.{net}", "aa" * 32, None, f"{net} is missing"),
        Difference(
            f"file.{old}", "bb" * 32, "cc" * 32, f"{old} does not have the expected content"
        ),
        Difference(f"file.{gone}", None, "dd" * 32, f"{gone} should not exist"),
    ]


def test_sysctl_managed_file_and_daemon_differences() -> None:
    exp = dataclasses.replace(BRIDGED, bridge_nf={"call-iptables": 0},
                              files={"/etc/sysctl.d/bridge.conf": "aa" * 32},
                              managers={"br0": "networkd"})  # fmt: skip
    host = dataclasses.replace(GOOD, bridge_nf={"call-iptables": 1},
                               managed_files={"/etc/sysctl.d/bridge.conf": "bb" * 32})  # fmt: skip
    assert compare(exp, host) == [
        Difference("sysctl.net.bridge.bridge-nf-call-iptables", 0, 1,
                   "bridge-nf-call-iptables is 1, expected 0"),
        Difference("file./etc/sysctl.d/bridge.conf", "aa" * 32, "bb" * 32,
                   "/etc/sysctl.d/bridge.conf does not have the expected content"),
        Difference("daemon.br0", "networkd", "no daemon unmanaged",
                   "br0 is not taken over by networkd (no daemon unmanaged)"),
    ]  # fmt: skip
    missing = dataclasses.replace(host, managed_files={"/etc/sysctl.d/bridge.conf": None})
    assert Difference("file./etc/sysctl.d/bridge.conf", "aa" * 32, None,
                      "/etc/sysctl.d/bridge.conf is missing") in compare(exp, missing)  # fmt: skip


def test_a_missing_route_and_an_unexpected_default_route() -> None:
    extra = Route(4, "default", "br0", "198.51.100.254", 50, "static")
    host = dataclasses.replace(
        GOOD, routes=(*(r for r in GOOD.routes if r.family != 6 or not r.is_default), extra)
    )
    assert diffs(BRIDGED, host) == [
        Difference("routes", "default via 2001:db8:100::1 dev br0 metric 1024", None,
                   "route default via 2001:db8:100::1 dev br0 metric 1024 missing"),
        Difference("routes", None, "default via 198.51.100.254 dev br0 metric 50",
                   "unexpected default route default via 198.51.100.254 dev br0 metric 50"),
    ]  # fmt: skip
    # the kernel's own (proto kernel, no gateway: made from an address) is not drift
    kernel = dataclasses.replace(extra, gateway=None, protocol="kernel")
    host = dataclasses.replace(GOOD, routes=(*GOOD.routes, kernel))
    assert diffs(BRIDGED, host) == []
    # a gateway route that says proto kernel is someone's (ifupdown2's ``gateway``): drift
    labelled = dataclasses.replace(extra, protocol="kernel")
    host = dataclasses.replace(GOOD, routes=(*GOOD.routes, labelled))
    assert [d.have for d in diffs(BRIDGED, host)] == [
        "default via 198.51.100.254 dev br0 metric 50"
    ]


def test_addresses_are_compared_in_canonical_form() -> None:
    odd = tuple(dataclasses.replace(a, cidr="2001:db8:100:0:0::10/64")
                if a.cidr == "2001:db8:100::10/64" else a for a in GOOD.addresses)  # fmt: skip
    assert diffs(BRIDGED, dataclasses.replace(GOOD, addresses=odd)) == []
