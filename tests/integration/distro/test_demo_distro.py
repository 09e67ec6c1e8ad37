"""``fleetbr demo --distro`` (README): one real systemd host per backend cut over with persist:
auto, one rebooted after confirm. Run as the CLI, in a nested namespace of its own, and judged on
its JSON document (never on text layout)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.txhelpers import REPO

BACKENDS = {"hv01": "ifupdown", "hv02": "networkd", "hv03": "netplan", "hv04": "networkmanager"}
SETTLED = {"ifupdown": "up", "networkd": "configured", "netplan": "configured",
           "networkmanager": "connected"}  # fmt: skip


def test_distro_demo_persists_every_backend_and_survives_a_reboot(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "fleetbr", "--json", "demo",
         "--distro", "--dir", str(tmp_path / "lab")],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    hosts = doc["hosts"]
    assert {name: h["backend"] for name, h in hosts.items()} == BACKENDS
    for name, host in hosts.items():
        backend = host["backend"]
        assert host["status"] == "confirmed", (name, host)
        assert host["nic_manager_before"] == backend, (name, host)
        view = host["after_confirm"]
        assert view["ports"] == ["eth0"], (name, view)
        assert (view["manager"], view["state"]) == (backend, SETTLED[backend]), (name, view)
        assert view["mac"] == f"02:fb:00:00:00:{int(name[2:]):02x}", (name, view)
        assert len(view["addresses"]) == 2 and view["files"], (name, view)
        assert all(digest for _, digest in view["files"]), (name, view)
        assert host["check_after_confirm"] == "in_sync", (name, host)
        assert host["problems"] == [], (name, host)
    rebooted = hosts[doc["rebooted"]]
    assert rebooted["rebooted"] is True
    first, second = rebooted["boot_ids"]
    assert first and second and first != second
    assert rebooted["after_reboot"] == rebooted["after_confirm"]
    assert rebooted["check_after_reboot"] == "in_sync"
    assert sum(h["rebooted"] for h in hosts.values()) == 1
    assert not (tmp_path / "lab" / "lab.json").exists(), "the demo takes its lab down"
