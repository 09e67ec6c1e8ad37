"""A smoke run of bench/distributed_bench.py (4 hosts, 1 round) in a network namespace of its
own (scripts/in-netns): its own lab, redis-server, PostgreSQL and two site workers; both sides
must confirm every host and the table must carry both sides and their ratios. Figures are not
judged (they measure the machine's load)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from bench.common import REPO
from tests.isolation import isolation_problem, unavailable

pytestmark = pytest.mark.lab
RUN_WAIT = 600  # seconds: lab, PostgreSQL, two workers and two applies on 2 shared cores


def test_a_smoke_run_measures_both_sides() -> None:
    problem = isolation_problem(sshd=True)
    if problem is None and shutil.which("redis-server") is None:
        problem = "redis-server is not installed (run scripts/setup)"
    if problem is not None:
        unavailable(f"the distributed bench: {problem}")
    done = subprocess.run(
        # a namespace of its own: the session's lab holds the lab address plan here
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "bench.distributed_bench",
         "--hosts", "4", "--rounds", "1", "--prefix", "fbrdt"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_WAIT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FAILED" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"worker east: ready in [\d.]+s", done.stderr), done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith(("| local |", "| distributed |"))}  # fmt: skip
    assert set(rows) == {"local", "distributed"}, done.stdout
    for line in rows.values():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1] == "1", line  # one counted run
        assert cells[7] == "1.00", f"one history row per host: {line}"
    assert re.search(r"distributed/local: wall [\d.]+x, CPU [\d.]+x", done.stdout), done.stdout
