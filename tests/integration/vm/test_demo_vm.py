"""``fleetbr demo --vm`` (README; issue 17 point 9): Proxmox VE's layout on an ifupdown2 VM managed
on a VLAN behind the lab's router VM, a cutting variant rolled back by the host, then the layout
confirmed. Run as the CLI, in a nested namespace of its own, and judged here on its JSON document
(never on text layout): the demo reports what it saw and judges nothing. Slow: two TCG boots and
two applies (10-25 min on a loaded machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbr.lab.model import MGMT_PLAN
from tests.integration.helpers import REPO
from tests.integration.vm.conftest import require_vm_cache

pytestmark = pytest.mark.lab

# two boots, a cutting variant's 240 s window and a 900 s one on a loaded machine
TIMEOUT = 3600


def test_vm_demo_rolls_the_cut_back_and_confirms_the_proxmox_layout(tmp_path: Path) -> None:
    require_vm_cache()
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "fleetbr", "--json", "demo",
         "--vm", "--dir", str(tmp_path / "lab")],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    address = MGMT_PLAN.host(1)[0]
    assert (doc["host"], doc["address"]) == ("hv01", address)
    assert doc["router"].startswith("router ")
    before = doc["before"]
    assert (before["device"], before["manager"]) == ("eth0.10", "ifupdown2"), before
    assert before["bond"] is None and before["vlans"] == ["eth0.10 vid 10 on eth0"]
    assert doc["cut_status"] == "rolled_back", (doc["cut_status"], doc["cut_message"])
    assert doc["restored"] is True and doc["after_cut"] == before
    assert doc["status"] == "confirmed", (doc["status"], doc["message"])
    after = doc["after_confirm"]
    assert (after["device"], after["manager"]) == ("br0.10", "ifupdown2"), after
    assert after["bond"] == "bond0 active-backup eth0 eth1"
    assert after["vlans"] == ["br0.10 vid 10 on br0"]
    assert after["vlan_filtering"] == ["br0"]
    assert {"bond0 10", "bond0 100-199", "br0 10"} <= set(after["vlan_table"]), after
    assert doc["check_after_confirm"] == "in_sync"
    assert not (tmp_path / "lab" / "lab.json").exists()  # taken down
