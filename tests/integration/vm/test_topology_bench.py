"""A smoke run of bench/topology_bench.py on the VM tier with its smallest setting (``--quick
--tiers vm``: two VMs, single and bond, one apply each) in a network namespace of its own: both
confirmed, the table carrying the bond with its ratio to the single NIC. Figures are not judged
(they measure the machine's load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.common import REPO
from tests.integration.test_topology_bench import _rows
from tests.integration.vm.conftest import require_vm_cache

pytestmark = pytest.mark.lab
# two TCG boots and two networkd applies (a bond's took minutes on a loaded machine): a bound
RUN_WAIT = 2400


def test_a_smoke_run_measures_a_bond_beside_the_single_nic() -> None:
    require_vm_cache()
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "bench.topology_bench",
         "--quick", "--tiers", "vm"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {cells[1]: cells for cells in _rows(done.stdout, "vm")}
    assert set(rows) == {"single", "bond"}, done.stdout
    for cells in rows.values():
        assert cells[2] == cells[3] == "1", f"the sample confirmed: {cells}\n{done.stderr[-2000:]}"
    assert rows["single"][5] == "1.00", rows["single"]
    float(rows["bond"][5])
