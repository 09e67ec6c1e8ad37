"""The distro demo's guest section (fleetbr.lab.demos.distro_guests) on recorded lab facts, and the
distro lab's per-host guest counts. The demo itself, and the judgement of the guest's move:
tests/integration/distro/test_demo_distro.py"""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.changes.bridge.task import guests_spec
from fleetbr.errors import FleetbrError
from fleetbr.lab.demos.distro_guests import (
    TASK_SECTION,
    GuestIface,
    guest_counts,
    guest_view,
    with_guests,
)
from fleetbr.lab.distro.build import guests_for
from tests.unit.test_guests import lab_facts, libvirt_of
from tests.unit.test_plan_support import task as lab_task


def test_the_report_lists_every_definition_of_every_guest_with_its_taps_bridge() -> None:
    view = guest_view(lab_facts())
    assert [(i.domain, i.scope, i.type, i.source, i.tap, i.tap_bridge) for i in view] == [
        ("g1", "live", "network", "lab", "vnet0", "virbr-lab"),
        ("g1", "config", "network", "lab", "", None),
        ("g2", "live", "network", "lab", "vnet1", "virbr-lab"),
        ("g2", "config", "network", "lab", "", None),
        ("off1", "config", "network", "lab", "", None),
    ]
    assert all(isinstance(i, GuestIface) and i.mac for i in view)


def test_a_stopped_guest_reports_its_persistent_definition_only() -> None:
    facts = lab_facts()
    found = libvirt_of(facts)
    stopped = tuple(dataclasses.replace(d, active=False) for d in found.domains)
    view = guest_view(
        dataclasses.replace(facts, guests=dataclasses.replace(found, domains=stopped))
    )
    assert {i.scope for i in view} == {"config"}
    assert guest_view(dataclasses.replace(facts, guests=None)) == ()


def test_the_guest_hosts_task_moves_every_guest_off_the_lab_network() -> None:
    task = with_guests(lab_task())
    assert lab_task().guests is None
    assert task.guests == guests_spec(TASK_SECTION)
    assert TASK_SECTION == {"move": "all", "from": "lab", "link_flap": True}


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


def test_the_distro_demo_reports_what_happened_and_decides_nothing() -> None:
    from fleetbr.lab.demos.distro import DistroDemo, HostOutcome

    demo = DistroDemo(rebooted="hv02")
    demo.hosts["hv01"] = HostOutcome("ifupdown", "eth0", status="confirmed",
                                     check_after_confirm="in_sync")  # fmt: skip
    demo.hosts["hv02"] = HostOutcome("networkd", "eth0", status="rolled_back",
                                     check_after_confirm="drift: no bridge br0",
                                     check_after_reboot="in_sync")  # fmt: skip
    assert demo.summary() == (
        "demo: 2 hosts: 1 confirmed, 1 rolled_back; check after confirm: 1 in_sync, "
        "1 drift: no bridge br0; after the reboot of hv02: in_sync"
    )
    doc = demo.to_dict()
    assert set(doc) == {"rebooted", "guest_host", "dhcp_host", "hosts"}
    assert (
        "problems" not in doc["hosts"]["hv01"] and doc["hosts"]["hv02"]["status"] == "rolled_back"
    )
    assert DistroDemo().summary() == "demo: 0 hosts: none; check after confirm: none"
