"""``fleetbr lab up --topology multi`` then ``fleetbr apply`` of the task it wrote, and a smoke
run of bench/topology_bench.py on the netns tier (2 hosts, 1 round): both topologies confirmed on
every host, the table carrying each with its ratio to the single NIC. Figures are not judged
(they measure the machine's load). The VM tier's smoke run: tests/integration/vm/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import REPO
from fleetbr.lab import down
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.helpers import fleetbr
from tests.isolation import isolation_problem, unavailable

pytestmark = pytest.mark.lab
RUN_WAIT = 600  # seconds: a lab, two applies of two hosts and resets on 2 shared cores


def _require_isolation() -> None:
    problem = isolation_problem(sshd=True)
    if problem is not None:
        unavailable(f"the topology bench: {problem}")


def test_the_task_lab_up_writes_applies_right_after(tmp_path: Path) -> None:
    _require_isolation()
    lab_dir = tmp_path / "lab"
    task = lab_dir / "tasks" / "multi.yaml"
    with own_network_namespace():  # the session's lab holds the lab address plan here
        try:
            code, hosts, err = fleetbr("lab", "up", "--topology", "multi", "--hosts", "2",
                                       "--dir", str(lab_dir))  # fmt: skip
            assert code == 0, err
            assert {name: (h["topology"], h["task"]) for name, h in hosts.items()} == {
                "hv01": ("multi", str(task)), "hv02": ("multi", str(task)),
            }  # fmt: skip
            code, doc, err = fleetbr("-i", str(lab_dir / "inventory"), "apply", str(task))
            assert (code, {name: r["status"] for name, r in doc.items()}) == (
                0, {"hv01": "confirmed", "hv02": "confirmed"},
            ), err  # fmt: skip
        finally:
            down(lab_dir)


def test_a_smoke_run_measures_both_topologies() -> None:
    _require_isolation()
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "bench.topology_bench",
         "--quick", "--tiers", "netns"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {cells[1]: cells for cells in _rows(done.stdout, "netns")}
    assert set(rows) == {"single", "multi"}, done.stdout
    for cells in rows.values():
        assert cells[2] == cells[3] == "2", f"every sample confirmed: {cells}"
    assert rows["single"][5] == "1.00", rows["single"]
    float(rows["multi"][5])


def _rows(stdout: str, tier: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in stdout.splitlines()
        if line.startswith(f"| {tier} |")
    ]
