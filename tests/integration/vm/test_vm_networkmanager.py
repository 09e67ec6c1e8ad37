"""NetworkManager writes topologies on a real NetworkManager 1.42 (the VM tier): a bridge over
VLAN 20 of eth1 next to a host-only bridge, persisted by keyfiles. A power cut inside the dead-man
window comes back as before (the boot guard restores the keyfiles before NetworkManager starts);
then the change is confirmed, unchanged when applied again, and comes back confirmed after a
clean reboot; eth0 (the SSH path) and its profile untouched throughout. One VM (two NICs), booted
once for the module; the tests run in file order. (A new bond: test_vm_networkmanager_bond.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.lab import Lab
from fleetbr.lab.vm import reboot
from fleetbr.report import Status
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.helpers import fleetbr
from tests.integration.vm.conftest import vm_sh
from tests.integration.vm.vmhelpers import (
    NM_ETC,
    before,
    booted_nm_lab,
    cli,
    last_journal_line,
    power_cut_in_window,
    restored_problems_vm,
)

pytestmark = pytest.mark.lab
HOST = "hv01"
# the devices the change creates
NEW = ("br20", "eth1.20", "br9")
# the power cut's window: the host must say `applied` and be cut before its own timer fires, and
# NetworkManager brings three profiles up one by one (minutes on a loaded machine)
CUT_WINDOW = 600


@pytest.fixture(scope="module")
def nm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One VM whose eth0 NetworkManager configures (the lab's addresses), eth1 a profile with
    no address."""
    with booted_nm_lab(tmp_path_factory, "fbrnm") as lab:
        yield lab


def apply(lab: Lab, path: Path) -> tuple[int, Any, str]:
    return fleetbr("-i", str(lab.inventory_dir), "-l", HOST, "apply", str(path), timeout=900)


def vlans_task(tmp_path: Path, timeout: int = 180) -> Path:
    """br20 over VLAN 20 of eth1 and the host-only br9 (``timeout``: the dead-man window; TCG
    guests on a loaded machine are slow to confirm)."""
    doc = {
        "bridges": [
            {"name": "br20", "nic": "eth1", "vlan": 20, "addresses": ["203.0.113.20/24"]},
            {"name": "br9", "host_only": True, "addresses": ["198.18.0.1/24"]},
        ],
        "netfilter": "keep",
        "persist": "networkmanager",
        "deadman": {"timeout": timeout},
    }
    path = tmp_path / f"vlans-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def eth0_profile(lab: Lab) -> str:
    return vm_sh(lab, HOST, f"sha256sum {NM_ETC}/eth0.nmconnection")


def test_a_power_cut_inside_the_window_comes_back_as_before(nm_lab: Lab, tmp_path: Path) -> None:
    was = before(nm_lab, HOST)
    eth0 = eth0_profile(nm_lab)
    txid, resolved = power_cut_in_window(
        nm_lab, HOST, vlans_task(tmp_path, CUT_WINDOW), CUT_WINDOW,
        lambda: "eth1.20  VID: 20" in vm_sh(nm_lab, HOST, "cat /proc/net/vlan/eth1.20"),
    )  # fmt: skip
    assert resolved.status == Status.ROLLED_BACK, resolved.message
    # NetworkManager's runtime profiles in /run are its own, made again at boot
    problems = restored_problems_vm(nm_lab, HOST, txid, was, gone=NEW, rebooted=True,
                                    reasons=("reason=reboot failed_steps=0",))  # fmt: skip
    assert problems == [], "\n".join(problems)
    assert eth0_profile(nm_lab) == eth0


def confirmed_problems(lab: Lab) -> list[str]:
    """What is not as the confirmed change leaves the host (empty: all is)."""
    out = vm_sh(lab, HOST, "cat /proc/net/vlan/eth1.20; ip -o -4 addr show dev br20; "
                "ip -o -4 addr show dev br9; nmcli -t -f DEVICE,STATE device")  # fmt: skip
    problems = [f"no {needle!r}" for needle in ("eth1.20  VID: 20", "203.0.113.20/24",
                                                 "198.18.0.1/24") if needle not in out]  # fmt: skip
    problems += [f"{dev} not connected" for dev in (*NEW, "eth0")
                 if f"\n{dev}:connected\n" not in f"\n{out}"]  # fmt: skip
    return [f"{p}:\n{out}" for p in problems]


def test_a_vlan_bridge_and_a_host_only_bridge_are_confirmed_then_unchanged(
    nm_lab: Lab, tmp_path: Path
) -> None:
    eth0 = eth0_profile(nm_lab)
    path = vlans_task(tmp_path)
    code, result, err = apply(nm_lab, path)
    assert (code, result[HOST]["status"]) == (0, "confirmed"), (result, err)
    assert confirmed_problems(nm_lab) == []
    assert eth0_profile(nm_lab) == eth0
    code, result, err = apply(nm_lab, path)
    assert (code, result[HOST]["status"]) == (0, "unchanged"), (result, err)


def test_a_reboot_after_the_confirm_comes_back_confirmed(nm_lab: Lab, tmp_path: Path) -> None:
    """NetworkManager brings both bridges and the VLAN up from fleetbr's keyfiles; the boot guard
    had nothing to do (the change was confirmed); `check` is in sync."""
    eth0 = eth0_profile(nm_lab)
    reboot(nm_lab, HOST)
    settled_facts(nm_lab, HOST, timeout=120)
    assert confirmed_problems(nm_lab) == []
    assert cli(nm_lab, HOST, vlans_task(tmp_path), "check", 300)[:2] == (0, "in_sync")
    last = last_journal_line(nm_lab, HOST).split()
    assert last[2:3] == ["confirmed"], last
    assert eth0_profile(nm_lab) == eth0
