"""``plan --diff`` on a real systemd-networkd host: the unified diffs of the .netdev and .network
files the backend writes, against the file the host has (read-only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from tests.integration.distro.persisthelpers import persist_task
from tests.integration.helpers import fleetbr, sh

pytestmark = pytest.mark.lab

NETWORK = "/etc/systemd/network"


def test_plan_diff_shows_the_networkd_files_as_unified_diffs(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_distro_host("hv04")  # networkd
    before = sh(distro_lab, "hv04", f"cat {NETWORK}/10-eth0.network")
    task = persist_task(tmp_path)
    code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "-l", "hv04", "--no-history",
                             "plan", "--diff", str(task))  # fmt: skip
    assert code == 0, err
    files = {f["path"]: f for f in doc["hv04"]["diff"]["files"]}
    netdev, eth0 = files[f"{NETWORK}/10-br0.netdev"], files[f"{NETWORK}/10-eth0.network"]
    assert netdev["status"] == "created" and netdev["before"] is None
    assert netdev["diff"].startswith(f"--- /dev/null\n+++ b{NETWORK}/10-br0.netdev\n")
    assert "\n+Kind=bridge\n" in netdev["diff"]
    assert files[f"{NETWORK}/10-br0.network"]["status"] == "created"
    assert eth0["status"] == "changed" and eth0["known"] and eth0["before"] == before
    assert eth0["diff"].startswith(f"--- a{NETWORK}/10-eth0.network\n+++ b{NETWORK}/10-eth0")
    assert "\n+Bridge=br0\n" in eth0["diff"] and "\n-Address=198.51.100." in eth0["diff"]
    assert sh(distro_lab, "hv04", f"cat {NETWORK}/10-eth0.network") == before  # read-only
    assert sh(distro_lab, "hv04", f"ls {NETWORK}/10-br0.netdev 2>/dev/null || :") == ""
