"""``fleetbr lab up --topology multi`` then ``fleetbr apply`` of the task it wrote, and a smoke
run of bench/topology_bench.py on the netns tier (2 hosts, 1 round): both topologies confirmed on
every host, the table carrying each with its ratio to the single NIC. Figures are not judged
(they measure the machine's load). The VM tier's smoke run: tests/integration/vm/."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbr.lab import down
from tests.integration.benchsmoke import smoke_run
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
    smoke_run("netns", "multi", 2, RUN_WAIT)
