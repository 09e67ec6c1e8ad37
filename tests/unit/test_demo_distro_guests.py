"""The distro demo's guest verdict (fleetbr.demo_distro_guests) from recorded lab facts, and the
distro lab's per-host guest counts. The demo itself: tests/integration/distro/test_demo_distro.py
"""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.demo_distro_guests import after_problems, before_problems, guest_counts, guest_view
from fleetbr.errors import FleetbrError
from fleetbr.facts.libvirt import Domain, GuestInterface
from fleetbr.facts.model import Bridge, HostFacts
from fleetbr.lab.distro.build import guests_for
from tests.unit.test_guests import lab_facts, libvirt_of


def on_bridge(facts: HostFacts, bridge: str, ports: tuple[str, ...] | None) -> HostFacts:
    """``facts`` with every guest interface naming ``bridge`` in both definitions, and (unless
    ``ports`` is None) ``bridge`` existing with those ports."""

    def moved(iface: GuestInterface) -> GuestInterface:
        return dataclasses.replace(iface, type="bridge", source=bridge, bridge=bridge)

    def domain(d: Domain) -> Domain:
        config = tuple(map(moved, d.config)) if d.config is not None else None
        return dataclasses.replace(d, live=tuple(map(moved, d.live)), config=config)

    found = libvirt_of(facts)
    guests = dataclasses.replace(found, domains=tuple(map(domain, found.domains)))
    bridges = facts.bridges
    if ports is not None:
        bridges += (Bridge(name=bridge, stp=False, forward_delay=0, ports=ports),)
    return dataclasses.replace(facts, guests=guests, bridges=bridges)


def test_guests_on_the_lab_network_are_a_valid_start() -> None:
    assert before_problems(lab_facts()) == []


def test_a_host_without_libvirt_or_without_a_guest_on_lab_is_no_start() -> None:
    facts = lab_facts()
    assert before_problems(dataclasses.replace(facts, guests=None)) == [
        "guests: libvirt does not answer before the cut-over: no virsh"
    ]
    moved = on_bridge(facts, "br0", ("eth0", "vnet0", "vnet1"))
    assert before_problems(moved) == ["guests: no running guest on network lab before the cut-over"]


def test_every_definition_on_the_bridge_and_every_tap_a_port_holds() -> None:
    before = guest_view(lab_facts())
    after = on_bridge(lab_facts(), "br0", ("eth0", "vnet0", "vnet1"))
    assert after_problems(before, after, "br0") == []


def test_a_guest_left_on_its_network_fails_the_verdict() -> None:
    before = guest_view(lab_facts())
    problems = after_problems(before, lab_facts(), "br0")
    assert len(problems) == 5  # g1, g2 live and config, off1 config
    assert "guests: g1 (live) 52:54:00:01:00:01 is network lab after confirm, not bridge br0" in (
        problems
    )


def test_definitions_naming_the_bridge_with_the_tap_elsewhere_fail_the_verdict() -> None:
    before = guest_view(lab_facts())
    after = on_bridge(lab_facts(), "br0", ("eth0", "vnet1"))
    assert after_problems(before, after, "br0") == [
        "guests: g1 (live) 52:54:00:01:00:01: tap vnet0 is not a port of br0"
    ]


def test_a_guest_gone_or_libvirt_down_after_confirm_fails_the_verdict() -> None:
    before = guest_view(lab_facts())
    after = on_bridge(lab_facts(), "br0", ("eth0", "vnet0", "vnet1"))
    found = libvirt_of(after)
    gone = dataclasses.replace(after, guests=dataclasses.replace(found, domains=found.domains[1:]))
    assert after_problems(before, gone, "br0") == [
        "guests: g1 (live) 52:54:00:01:00:01 is gone after confirm",
        "guests: g1 (config) 52:54:00:01:00:01 is gone after confirm",
    ]
    down = dataclasses.replace(after, guests=dataclasses.replace(found, error="cannot connect"))
    assert after_problems(before, down, "br0") == [
        "guests: libvirt does not answer after confirm: cannot connect"
    ]


def test_one_guest_host_in_the_demo_and_per_host_counts_in_the_lab() -> None:
    assert guest_counts(("ifupdown", "networkd", "netplan", "networkmanager")) == [1, 0, 0, 0]
    assert guests_for(2, 3) == [2, 2, 2]
    assert guests_for([0, 1], 2) == [0, 1]
    with pytest.raises(FleetbrError, match="2 guest counts given for 3 hosts"):
        guests_for([0, 1], 3)
    with pytest.raises(FleetbrError, match="guests: 9 is outside 0..8"):
        guests_for([0, 9], 2)
    with pytest.raises(FleetbrError, match="guests: expected a whole number"):
        guests_for([True], 1)
