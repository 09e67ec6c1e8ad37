"""NetworkManager writes topologies on a real NetworkManager 1.42 (the VM tier): a bridge over
VLAN 20 of eth1 next to a host-only bridge, persisted by keyfiles, confirmed, then unchanged when
applied again; eth0 (the SSH path) and its profile untouched. One VM (two NICs), booted once for
the module. (A new bond: test_vm_networkmanager_bond.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.lab import Lab
from tests.integration.helpers import fleetbr
from tests.integration.vm.conftest import vm_sh
from tests.integration.vm.vmhelpers import NM_ETC, booted_nm_lab

pytestmark = pytest.mark.lab
HOST = "hv01"


@pytest.fixture(scope="module")
def nm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One VM whose eth0 NetworkManager configures (the lab's addresses), eth1 a profile with
    no address."""
    with booted_nm_lab(tmp_path_factory, "fbrnm") as lab:
        yield lab


def apply(lab: Lab, path: Path) -> tuple[int, Any, str]:
    return fleetbr("-i", str(lab.inventory_dir), "-l", HOST, "apply", str(path), timeout=900)


def test_a_vlan_bridge_and_a_host_only_bridge_are_confirmed_then_unchanged(
    nm_lab: Lab, tmp_path: Path
) -> None:
    eth0 = vm_sh(nm_lab, HOST, f"sha256sum {NM_ETC}/eth0.nmconnection")
    doc = {
        "bridges": [
            {"name": "br20", "nic": "eth1", "vlan": 20, "addresses": ["203.0.113.20/24"]},
            {"name": "br9", "host_only": True, "addresses": ["198.18.0.1/24"]},
        ],
        "netfilter": "keep",
        "persist": "networkmanager",
        "deadman": {"timeout": 180},  # TCG guests on a loaded machine are slow to confirm
    }
    path = tmp_path / "vlans.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, result, err = apply(nm_lab, path)
    assert (code, result[HOST]["status"]) == (0, "confirmed"), (result, err)
    out = vm_sh(nm_lab, HOST, "cat /proc/net/vlan/eth1.20; ip -o -4 addr show dev br20; "
                "ip -o -4 addr show dev br9; nmcli -t -f DEVICE,STATE device")  # fmt: skip
    assert "eth1.20  VID: 20" in out and "203.0.113.20/24" in out and "198.18.0.1/24" in out
    for dev in ("br20", "eth1.20", "br9", "eth0"):
        assert f"\n{dev}:connected\n" in f"\n{out}", out
    assert vm_sh(nm_lab, HOST, f"sha256sum {NM_ETC}/eth0.nmconnection") == eth0
    code, result, err = apply(nm_lab, path)
    assert (code, result[HOST]["status"]) == (0, "unchanged"), (result, err)
