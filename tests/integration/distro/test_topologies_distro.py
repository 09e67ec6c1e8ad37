"""Several bridges, one of them host-only, through each backend's real daemon (issue 17 point 7).

The distro tier's kernel has no bonding, 8021q or bridge VLAN filtering, but it holds these two
topologies: br0 over eth0 taking its addresses and routes, and br9 with no uplink and an address
of its own, in one task (one transaction, one timer, all or nothing). On the hosts of ifupdown,
systemd-networkd and NetworkManager at once (ifupdown2 in test_persist_ifupdown2.py; netplan
left out, below):

- confirmed, both bridges their daemon's (configured, connected, up), ``check`` in sync, a plan
  again unchanged; then a clean reboot brings both back as confirmed, still the daemon's;
- a power cut inside the dead-man window (both bridges applied, the transaction armed) brings the
  host back as before: the boot guard put the files back before the daemon started, no bridge
  left, the kernel state and the daemon's view of eth0 as before; the resuming controller says
  rolled_back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from tests.integration.distro.persisthelpers import HOSTS, on_each, settled_facts, settled_state
from tests.integration.distro.topohelpers import confirmed_then_rebooted, power_cut_in_the_window

pytestmark = pytest.mark.lab
# netplan is left out: on this machine's kernel, networkd 252 restarted during netplan's apply
# sometimes fails both bridges' addresses (ERANGE) and then blocks on netlink for about 30 s, so
# the host rolls back (safe) and the test would fail at random (docs/topologies.md, "distro").
TOPO_HOSTS = {backend: host for backend, host in HOSTS.items() if backend != "netplan"}


def test_both_bridges_are_confirmed_their_daemons_and_back_after_a_reboot(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    on_each(TOPO_HOSTS.values(), fresh_distro_host)
    on_each(TOPO_HOSTS.values(), lambda h: settled_facts(distro_lab, h))
    problems = confirmed_then_rebooted(distro_lab, TOPO_HOSTS, tmp_path)
    assert not problems, "\n".join(problems)


def test_a_power_cut_in_the_window_brings_the_host_back_as_before(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    on_each(TOPO_HOSTS.values(), fresh_distro_host)
    before = on_each(TOPO_HOSTS.values(), lambda h: settled_state(distro_lab, h))
    problems = power_cut_in_the_window(distro_lab, TOPO_HOSTS, tmp_path, before)
    assert not problems, "\n".join(problems)
