"""A smoke run of bench/topology_bench.py on the distro tier with its smallest setting
(``--quick --tiers distro``: two networkd labs of 2 hosts, one round): the bridge over a NIC
with static addresses and the one keeping the NIC's DHCP leases, every host confirmed, the table
carrying both with the ratio to the single NIC. Figures are not judged (they measure the
machine's load)."""

from __future__ import annotations

import pytest

from tests.integration.benchsmoke import smoke_run
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab
RUN_WAIT = 900  # seconds: two distro labs, two applies and resets on 2 shared cores


def test_a_smoke_run_measures_dhcp_beside_the_single_nic() -> None:
    require_distro_cache()
    smoke_run("distro", "dhcp", 2, RUN_WAIT)
