"""Every refusal of the planner, each with a reason an operator can act on."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.facts.model import ArmedTransaction, Bridge, HostFacts, Link
from fleetbr.plan import BridgePlan, plan_host
from tests.unit.test_plan_support import bridged, facts, task


def refusal(f: HostFacts, text: str | None = None, min_timeout: int = 20) -> str:
    t = task() if text is None else task(text)
    p: BridgePlan = plan_host(t, f, min_timeout=min_timeout)
    assert p.steps == () and p.rollback == () and not p.unchanged
    assert p.refusal is not None
    assert "\n" not in p.refusal
    return p.refusal


def with_link(f: HostFacts, link: Link) -> HostFacts:
    return dataclasses.replace(f, links=(*f.links, link))


def test_nic_missing() -> None:
    assert "NIC eth0 does not exist (links: lo, eno1)" in refusal(facts(nic="eno1"))


def test_nic_wireless() -> None:
    f = facts()
    wifi = tuple(dataclasses.replace(x, wireless=x.name == "eth0") for x in f.links)
    assert "NIC eth0 is wireless" in refusal(dataclasses.replace(f, links=wifi))


def test_nic_port_of_another_bridge() -> None:
    f = bridged(facts(), bridge="virbr9")
    assert refusal(f) == "NIC eth0 is already a port of virbr9"


def test_bridge_name_taken_by_non_bridge() -> None:
    f = with_link(facts(), Link("br0", "vlan", "52:54:00:00:00:09", 1500, "UP", True, None))
    assert refusal(f) == "the bridge name br0 is taken by a vlan link"


def test_docker_with_netfilter_off_refused_but_accept_or_on_allowed() -> None:
    f = facts(docker=("docker0 link", "/var/run/docker.sock"))
    assert "Docker found (docker0 link, /var/run/docker.sock)" in refusal(f)
    assert plan_host(task("docker_conflict: accept"), f, min_timeout=20).refusal is None
    assert plan_host(task("netfilter: on"), f, min_timeout=20).refusal is None


@pytest.mark.parametrize(("alive", "stale_word"), [(True, "a live"), (False, "a stale")])
def test_armed_transaction(alive: bool, stale_word: str) -> None:
    armed = ArmedTransaction("20260101T000000-abcdef", 1000, alive, True, 990)
    reason = refusal(facts(armed=armed))
    assert reason.startswith(f"{stale_word} fleetbr transaction 20260101T000000-abcdef is armed")


def test_deadman_timeout_too_short() -> None:
    reason = refusal(facts(), "deadman: {timeout: 5}", min_timeout=20)
    assert reason == "dead-man timeout 5s is shorter than the 20s needed to reconnect and probe"


def test_move_without_any_global_address() -> None:
    assert "no global address to move" in refusal(facts(v4=(), v6=()))


def test_explicit_addresses_allow_a_nic_without_addresses() -> None:
    p = plan_host(
        task("bridge: {addresses: [198.51.100.10/24]}"), facts(v4=(), v6=()), min_timeout=20
    )
    assert p.refusal is None and "addr_add" in [s.kind for s in p.steps]


def test_unbridge_without_bridge_and_without_addresses() -> None:
    assert "bridge br0 does not exist" in refusal(facts(v4=(), v6=()), "bridge: {state: absent}")


def test_unbridge_with_other_ports() -> None:
    f = bridged(facts())
    busy = dataclasses.replace(f, bridges=(Bridge("br0", False, 4, ("eth0", "vnet0")),))
    assert "other ports (vnet0)" in refusal(busy, "bridge: {state: absent}")


def test_unbridge_without_addresses_anywhere() -> None:
    f = bridged(facts(v4=(), v6=()))
    assert "nothing would keep the host reachable" in refusal(f, "bridge: {state: absent}")
