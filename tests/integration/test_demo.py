"""The README's first command, in small: the demo itself, in a nested namespace of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.helpers import REPO


def test_demo_confirms_all_but_the_cut_host(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "fleetbr", "demo",
         "--hosts", "3", "--timeout", "14", "--dir", str(tmp_path / "lab")],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # stdout is a pipe: one plain line per host (`host  status  time  detail`), at any width
    lines = done.stdout.splitlines()
    assert "3 hosts: 2 confirmed, 1 rolled_back" in lines
    apply_rows = lines[lines.index("3 hosts: 2 confirmed, 1 rolled_back") - 3 :][:3]
    assert [row.split()[:2] for row in apply_rows] == [
        ["hv01", "confirmed"], ["hv02", "confirmed"], ["hv03", "rolled_back"]
    ]  # fmt: skip
    assert not (tmp_path / "lab" / "lab.json").exists(), "the demo takes its lab down"
