"""The smoke run of bench/topology_bench.py that each tier's test makes (netns, distro, VM):
``--quick --tiers TIER`` in a network namespace of its own, every sample confirmed, the table
carrying the single NIC (ratio 1.00) and the other topology with a ratio. Figures are not judged
(they measure the machine's load)."""

from __future__ import annotations

import subprocess
import sys

from bench.common import REPO


def rows_of(stdout: str, tier: str) -> list[list[str]]:
    """The cells of the table rows of ``tier`` in the bench's output."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in stdout.splitlines()
        if line.startswith(f"| {tier} |")
    ]


def smoke_run(tier: str, other: str, samples: int, wait: float) -> None:
    """Run the bench on ``tier`` (at most ``wait`` seconds): rows for ``single`` and ``other``,
    each with ``samples`` samples all confirmed, ``single``'s ratio 1.00, ``other``'s a number."""
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "bench.topology_bench",
         "--quick", "--tiers", tier],
        cwd=REPO, capture_output=True, text=True, timeout=wait, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {cells[1]: cells for cells in rows_of(done.stdout, tier)}
    assert set(rows) == {"single", other}, done.stdout
    for cells in rows.values():
        assert cells[2] == cells[3] == str(samples), (
            f"every sample confirmed: {cells}\n{done.stderr[-2000:]}"
        )
    assert rows["single"][5] == "1.00", rows["single"]
    float(rows[other][5])
