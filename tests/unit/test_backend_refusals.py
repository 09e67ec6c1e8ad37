"""A backend's format refusals that depend only on the facts (which file holds the NIC, whole)
are its ``Backend.refusals``: they come before any plan, with the message its plan gives."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends import BackendRefusal, plan_backend, registry
from fleetbr.facts.model import HostFacts
from fleetbr.plan import plan_host
from tests.unit.test_backends_plan import PERSIST_TASK, config, facts
from tests.unit.test_plan_support import task


def _netplan_in_two_files() -> HostFacts:
    f = facts("netplan")
    two = {**f.daemons.netplan, "/etc/netplan/02-extra.yaml": ("eth0",)}
    return dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, netplan=two))


def _ifupdown_without_stanzas() -> HostFacts:
    f = facts("ifupdown")
    return dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, ifupdown={}))


def _networkd_without_content() -> HostFacts:
    f = facts("networkd")
    contents = {p: t for p, t in f.daemons.contents.items() if not p.endswith("eth0.network")}
    return dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, contents=contents))


CASES = {
    "netplan": (
        _netplan_in_two_files,
        "persist: netplan: eth0 is defined in /etc/netplan/01-netcfg.yaml, "
        "/etc/netplan/02-extra.yaml; fleetbr rewrites exactly one netplan file (merge them first)",
    ),
    "ifupdown": (
        _ifupdown_without_stanzas,
        "persist: ifupdown: no file has stanzas for eth0 or br0",
    ),
    "networkd": (
        _networkd_without_content,
        "persist: networkd: the facts do not hold the content of "
        "/etc/systemd/network/10-eth0.network",
    ),
}


@pytest.mark.parametrize("backend", sorted(CASES))
def test_format_refusal_is_the_backends_refusal(backend: str) -> None:
    make, message = CASES[backend]
    f = make()
    registry.get(backend).refusals(facts(backend), "eth0", "br0")  # the host as it is: fine
    with pytest.raises(BackendRefusal) as refused:
        registry.get(backend).refusals(f, "eth0", "br0")
    assert str(refused.value) == message
    with pytest.raises(BackendRefusal) as planned:
        plan_backend(backend, config(f), f)
    assert str(planned.value) == message
    plan = plan_host(task(PERSIST_TASK.replace("PERSIST", backend)), f, min_timeout=10)
    assert plan.refusal == message
