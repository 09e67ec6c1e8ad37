"""netplan 0.106 (networkd renderer, systemd 252) creates a bond (issue 17) on Debian's 6.1
kernel: br0 over a new active-backup bond0 of eth0 (the addresses, the SSH path) and eth1 (in
netplan's file, no address). First the host's own rollback of the applied bond (as its timer or
a failed confirm runs it) is exact: netplan renders for networkd, so its release has networkd's
bond trap (reloaded with the new bond up, eth0 left it, eth1 stayed, and eth0's link-local
address failed DAD against the bond's: docs/topologies.md, "Traps found on the VM tier") and
deletes the new bond before networkd reloads. Then the same task is confirmed and netplan owns
br0, bond0 and both slaves; networkd, held off until the apply, gave the enslaved eth0 none of
its old addresses back. One VM, booted once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.lab import Lab
from fleetbr.lab.distro.provision import NETPLAN_FILE
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.vm.conftest import booted_lab, vm_sh
from tests.integration.vm.vmhelpers import (
    BOND,
    address_events,
    bond_problems,
    cli,
    global_address_added,
    host_rollback_is_exact,
    topology_task,
    wait_vm,
)

pytestmark = pytest.mark.lab
HOST = "hv01"
WINDOW = 600  # netplan apply, networkd's reconfigure and settle: minutes on a loaded machine
ETH1 = "    eth1:\n      accept-ra: false\n"


@pytest.fixture(scope="module")
def np_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """hv01: netplan configures eth0 (the lab's addresses) and eth1 (no address)."""
    with booted_lab(tmp_path_factory, ["netplan"], prefix="fbrnp") as lab:
        vm_sh(lab, HOST, f"printf '%s' '{ETH1}' >> {NETPLAN_FILE} && netplan apply")
        wait_vm(lab, HOST, "networkctl list --no-legend eth1 | grep -q configured", 120, "eth1")
        yield lab


def bond_task(tmp_path: Path) -> Path:
    return topology_task(tmp_path, "netplan", WINDOW, bridge={"name": "br0", "bond": BOND})


def test_the_hosts_rollback_of_a_persisted_new_bond_is_exact(np_lab: Lab, tmp_path: Path) -> None:
    host_rollback_is_exact(np_lab, HOST, bond_task(tmp_path), WINDOW)


def test_a_bond_is_confirmed_and_netplan_owns_it(np_lab: Lab, tmp_path: Path) -> None:
    task = bond_task(tmp_path)
    with address_events(np_lab, HOST) as events:
        code, status, message = cli(np_lab, HOST, task, "apply", WINDOW + 120)
    assert (code, status) == (0, "confirmed"), message
    # networkd (the renderer), held off until the apply, gave eth0 nothing back on the bounce
    assert global_address_added(events, "eth0") == [], events
    assert bond_problems(settled_facts(np_lab, HOST, timeout=120), "netplan", mac=False) == []
    assert cli(np_lab, HOST, task, "check", 300)[:2] == (0, "in_sync")
    assert cli(np_lab, HOST, task, "plan", 300)[1] == "unchanged"
