"""A smoke run of bench/topology_bench.py on the VM tier with its smallest setting (``--quick
--tiers vm``: two VMs, single and bond, one apply each) in a network namespace of its own: both
confirmed, the table carrying the bond with its ratio to the single NIC. Figures are not judged
(they measure the machine's load)."""

from __future__ import annotations

import pytest

from tests.integration.benchsmoke import smoke_run
from tests.integration.vm.conftest import require_vm_cache

pytestmark = pytest.mark.lab
# two TCG boots and two networkd applies (a bond's took minutes on a loaded machine): a bound
RUN_WAIT = 2400


def test_a_smoke_run_measures_a_bond_beside_the_single_nic() -> None:
    require_vm_cache()
    smoke_run("vm", "bond", 1, RUN_WAIT)
