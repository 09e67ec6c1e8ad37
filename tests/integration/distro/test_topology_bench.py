"""A smoke run of bench/topology_bench.py on the distro tier with its smallest setting
(``--quick --tiers distro``: two networkd labs of 2 hosts, one round): the bridge over a NIC
with static addresses and the one keeping the NIC's DHCP leases, every host confirmed, the table
carrying both with the ratio to the single NIC. Figures are not judged (they measure the
machine's load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.common import REPO
from tests.integration.test_topology_bench import _rows
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab
RUN_WAIT = 900  # seconds: two distro labs, two applies and resets on 2 shared cores


def test_a_smoke_run_measures_dhcp_beside_the_single_nic() -> None:
    require_distro_cache()
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "bench.topology_bench",
         "--quick", "--tiers", "distro"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {cells[1]: cells for cells in _rows(done.stdout, "distro")}
    assert set(rows) == {"single", "dhcp"}, done.stdout
    for cells in rows.values():
        assert cells[2] == cells[3] == "2", (
            f"every sample confirmed: {cells}\n{done.stderr[-2000:]}"
        )
    assert rows["single"][5] == "1.00", rows["single"]
    float(rows["dhcp"][5])
