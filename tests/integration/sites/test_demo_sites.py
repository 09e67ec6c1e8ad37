"""`fleetbr demo --sites 2` end to end, in a nested namespace of its own (like test_demo.py):
the lab split into two sites, redis-server, PostgreSQL, a worker per site, the coordinator; the
cut-off host rolls back, the others are confirmed, each by its own site's worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.helpers import REPO


def test_demo_across_two_sites_confirms_all_but_the_cut_host(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "fleetbr", "demo",
         "--sites", "2", "--hosts", "3", "--timeout", "14", "--dir", str(lab_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()  # a pipe: one plain line per host, at any width
    site_a = next(i for i, line in enumerate(lines) if line.startswith("site a ("))
    site_b = next(i for i, line in enumerate(lines) if line.startswith("site b ("))
    history = next(i for i, line in enumerate(lines) if line.startswith("5/5 "))
    worker_a, worker_b = (lines[i].split("(", 1)[1] for i in (site_a, site_b))
    assert worker_a != worker_b and "?" not in worker_a + worker_b, "each site's own worker"

    def rows(first: int, end: int) -> dict[str, str]:
        return {line.split()[0]: line.split()[1] for line in lines[first + 1 : end]
                if line.startswith("hv")}  # fmt: skip

    # hosts are dealt in turn: a gets hv01 and hv03 (the last one: cut off), b gets hv02
    assert rows(site_a, site_b) == {"hv01": "confirmed", "hv03": "rolled_back"}, lines
    assert "2 hosts: 1 confirmed, 1 rolled_back" in lines[site_a:site_b]
    assert rows(site_b, history) == {"hv02": "confirmed"}, lines
    runs = [line.split() for line in lines[history + 1 :] if line.split()[:1] == ["1"]]
    assert len(runs) == 1 and "apply" in runs[0] and "finished" in runs[0], lines[history:]
    assert not (lab_dir / "lab.json").exists(), "the demo takes its lab down"
