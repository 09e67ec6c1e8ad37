"""ifupdown: an ``inet manual`` NIC whose addresses come from ``up ip addr add`` lines is
refused before any change, with the reason (issue 14, item 9). Before, the apply moved the hooks
to the bridge's stanza, ``ifup`` put the addresses back on the port, and the change was rolled
back after the fact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost, host_exec, host_state
from fleetbr.lab.distro import reboot
from tests.integration.distro.persisthelpers import HOSTS, persist_task, plan, settled_state
from tests.integration.helpers import events

pytestmark = pytest.mark.lab


def manual_interfaces(lab: Lab, host: LabHost) -> str:
    """The lab's interfaces file, with eth0 configured by hook commands instead."""
    nic = host.nic
    return f"""\
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto {nic}
iface {nic} inet manual
    up ip link set dev {nic} up
    up ip addr add {host.addr4} dev {nic}
    up ip -6 addr add {host.addr6} dev {nic}
    up ip route add default via {lab.gateway4} dev {nic}
    up ip -6 route add default via {lab.gateway6} dev {nic}
"""


def test_an_inet_manual_nic_with_address_hooks_is_refused_before_any_change(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    host = fresh_distro_host(HOSTS["ifupdown"])
    text = manual_interfaces(distro_lab, host)
    host_exec(distro_lab, host, ["sh", "-c", "cat > /etc/network/interfaces"], input=text)
    reboot(distro_lab, host)  # the NIC now gets its addresses from the hooks
    state, facts = settled_state(distro_lab, host.name)
    assert facts.manager("eth0").manager == "ifupdown"
    assert {a.cidr for a in facts.addresses_of("eth0")} >= {host.addr4, host.addr6}
    journal = events(distro_lab, host.name)
    code, status, message = plan(distro_lab, host.name, persist_task(tmp_path), "apply")
    assert (code, status) == (1, "refused"), message
    assert "eth0 (inet) gets addresses from hook commands" in message, message
    assert "'up ip addr add" in message and "\n" not in message
    assert host_state(distro_lab, host.name) == state
    assert events(distro_lab, host.name) == journal  # nothing staged
