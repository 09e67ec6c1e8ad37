"""Proxmox VE's true layout (issue 17): the management address on a VLAN of the bridge, reached by
the controller over a tagged VLAN through the lab's router VM (fleetbr.lab.vm.router: this
machine's kernel cannot tag; the router's can).

One ifupdown2 VM whose lab file puts its management addresses on ``eth0.10`` (eth0 ``manual``,
eth1 a ``manual`` stanza, as Proxmox's installer writes), and the router VM; booted once, the
tests run in file order: the host answers on VLAN 10 only; a cutting variant (the management
address on br0.20, a VLAN the router does not serve) rolled back by the host's own timer,
exactly (the file byte for byte, ``ifquery -c``, links, addresses, routes, bond and VLAN devices,
VLAN table, ifupdown2's view); a power cut once the layout is applied inside its window (the boot
guard rolls back: the host comes back on eth0.10 exactly as before, the resuming controller says
rolled_back); then the layout confirmed (br0.10 of a VLAN-aware br0 over bond0 of eth0 and eth1,
VLANs 10 and 100-199), reached over a fresh SSH connection through the router; and a clean reboot
after the confirm builds the same layout from the file, reached through the router again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetbr.lab import Lab, down
from fleetbr.lab.model import MGMT_PLAN
from fleetbr.lab.vm import reboot, up
from fleetbr.report import Status
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.distro.persisthelpers import apply_all, host_facts
from tests.integration.helpers import fleetbr
from tests.integration.vm.conftest import close_shared, require_vm_cache, ssh, vm_sh
from tests.integration.vm.test_proxmox import (
    _without_bond_macs,
    power_cut_comes_back_as_before,
    settled,
    view,
)

pytestmark = pytest.mark.lab

HOST = "hv01"
PATH = "/etc/network/interfaces"
# the dead-man window of the confirmed apply: on a loaded machine a TCG guest took 190 s for
# the runtime steps and 200 s for ifreload -a and ifquery -c (test_proxmox.py)
TIMEOUT = 900
CUT_TIMEOUT = 240


@pytest.fixture(scope="module")
def mv_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The router and one ifupdown2 VM with two NICs, managed on eth0.10 (the lab writes eth1 a
    ``manual`` stanza, not ``auto``)."""
    require_vm_cache()
    with own_network_namespace():
        built = up(tmp_path_factory.mktemp("mgmtvlan") / "lab", 1, "ifupdown2", nics=2,
                   prefix="fbrmv", router=True)  # fmt: skip
        try:
            vm_sh(built, HOST, "systemctl is-system-running --wait || :")
            yield built
        finally:
            close_shared(built)
            down(built.dir)


def task(tmp_path: Path, vid: int, timeout: int) -> Path:
    """The Proxmox layout with the management address moved to ``br0.VID``."""
    doc: dict[str, Any] = {
        "bridge": {
            "name": "br0",
            "bond": {"name": "bond0", "slaves": ["eth0", "eth1"], "mode": "active-backup",
                     "options": {"miimon": 100}},
            "addresses": "none",
            "vlan_filtering": True,
            "vids": [vid, "100-199"],
            "vlan_interfaces": [{"vid": vid, "addresses": "move"}],
        },
        "netfilter": "keep",
        "persist": "ifupdown2",
        "deadman": {"timeout": timeout},
    }  # fmt: skip
    path = tmp_path / f"mgmt-vlan-{vid}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_host_is_managed_on_vlan_10_through_the_router(mv_lab: Lab) -> None:
    host = mv_lab.host(HOST)
    assert host.addr4 == MGMT_PLAN.host(1)[0] and host.mgmt_vlan == 10
    facts = host_facts(mv_lab, HOST)
    vlan = facts.topology.vlan("eth0.10")
    assert vlan is not None and (vlan.vid, vlan.parent) == (10, "eth0")
    assert {a.cidr for a in facts.addresses_of("eth0.10")} >= {host.addr4, host.addr6}
    assert [a for a in facts.addresses_of("eth0") if a.scope == "global"] == []
    assert facts.manager("eth0.10").manager == "ifupdown2"
    assert "router" not in (mv_lab.inventory_dir / "hosts.yaml").read_text()
    assert "\niface eth1 inet manual\n" in vm_sh(mv_lab, HOST, f"cat {PATH}")


def test_a_cutting_variant_is_rolled_back_by_the_host_exactly(mv_lab: Lab, tmp_path: Path) -> None:
    before = settled(mv_lab)
    text = vm_sh(mv_lab, HOST, f"cat {PATH}")
    # VLAN 10 is not carried and the management address lands on br0.20: no router there
    got = apply_all(mv_lab, [HOST], task(tmp_path, 20, CUT_TIMEOUT))[HOST]
    assert got.status == Status.ROLLED_BACK, (got.status, got.message, got.data.get("events"))
    assert vm_sh(mv_lab, HOST, f"cat {PATH}") == text
    after = settled(mv_lab)
    assert view(after) == view(before)
    checked = ssh(mv_lab, mv_lab.host(HOST).ip4, "ifquery -c -a")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert ssh(mv_lab, mv_lab.host(HOST).ip4, "ip link show bond0").returncode != 0


def test_a_power_cut_inside_the_window_comes_back_on_vlan_10_as_before(
    mv_lab: Lab, tmp_path: Path
) -> None:
    after = power_cut_comes_back_as_before(mv_lab, task(tmp_path, 10, TIMEOUT), "auto br0.10")
    host = mv_lab.host(HOST)
    assert {a.cidr for a in after.addresses_of("eth0.10")} >= {host.addr4, host.addr6}


def test_the_management_address_moves_to_br0_10_and_is_confirmed(
    mv_lab: Lab, tmp_path: Path
) -> None:
    path = task(tmp_path, 10, TIMEOUT)
    got = apply_all(mv_lab, [HOST], path)[HOST]
    assert got.status == Status.CONFIRMED, (got.status, got.message, got.data.get("events"))
    host = mv_lab.host(HOST)
    fresh = ssh(mv_lab, host.ip4, "cat /proc/sys/kernel/random/boot_id")  # a new connection
    assert fresh.returncode == 0, fresh.stderr
    text = vm_sh(mv_lab, HOST, f"cat {PATH}")
    assert "iface eth0.10" not in text and "auto eth0.10" not in text, text
    for needle in ("bond-slaves eth0 eth1", "bridge-vids 10 100-199", "bridge-vlan-aware yes",
                   "auto br0.10", f"address {host.addr4}", "default via 203.0.113.1"):  # fmt: skip
        assert needle in text, f"{needle!r} not in:\n{text}"
    checked = ssh(mv_lab, host.ip4, "ifquery -c -a")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    facts = host_facts(mv_lab, HOST)
    assert facts.link("eth0.10") is None
    assert {a.cidr for a in facts.addresses_of("br0.10")} >= {host.addr4, host.addr6}
    assert [a for a in facts.addresses_of("br0") if a.scope == "global"] == []
    bond = facts.topology.bond("bond0")
    assert bond is not None and sorted(bond.slave_names) == ["eth0", "eth1"]
    code, doc, err = fleetbr("-i", str(mv_lab.inventory_dir), "-l", HOST, "plan", str(path))
    assert code == 0 and doc[HOST]["status"] == "unchanged", (doc, err)


def test_a_reboot_after_the_confirm_comes_back_on_br0_10(mv_lab: Lab, tmp_path: Path) -> None:
    confirmed = view(settled(mv_lab))
    assert "br0.10" in confirmed["daemon"], confirmed["daemon"]  # the previous test's layout
    reboot(mv_lab, HOST)
    host = mv_lab.host(HOST)
    fresh = ssh(mv_lab, host.ip4, "cat /proc/sys/kernel/random/boot_id")  # through the router
    assert fresh.returncode == 0, fresh.stderr
    after = settled(mv_lab)
    # the bond's MAC at boot: its first slave's or udev's (test_proxmox.py says why)
    assert _without_bond_macs(view(after)) == _without_bond_macs(confirmed)
    assert {a.cidr for a in after.addresses_of("br0.10")} >= {host.addr4, host.addr6}
    assert after.link("eth0.10") is None
    bridge = after.link("br0")
    assert bridge is not None and bridge.mac == host.mac
    checked = ssh(mv_lab, host.ip4, "ifquery -c -a")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    again = str(task(tmp_path, 10, TIMEOUT))
    code, doc, err = fleetbr("-i", str(mv_lab.inventory_dir), "-l", HOST, "plan", again)
    assert code == 0 and doc[HOST]["status"] == "unchanged", (doc, err)
