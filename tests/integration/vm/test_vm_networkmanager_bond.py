"""NetworkManager 1.42 creates a bond (issue 17) on Debian's 6.1 kernel: br0 over a new
active-backup bond0 of eth0 (which has the addresses and the SSH path) and eth1 (a profile of
its own, no address), persisted by keyfiles. The host's own rollback of the applied bond (as its
timer or a failed confirm runs it) is exact: decided, files byte for byte, NetworkManager's view
and the kernel state as before, eth0's routes with their old metric and eth1 with its IPv6
link-local address again (both were off before the re-apply was fixed: docs/topologies.md,
"Found on the VM tier"). Then the task is confirmed, NetworkManager owns br0, bond0 and both
slaves, `check` is in sync and a plan again unchanged.

A power cut (QEMU killed) inside the window of the same apply, between the two: the boot guard
puts the keyfiles back before NetworkManager starts, the host comes back as before and the
controller resolves the transaction as rolled back. After the confirm, a clean reboot: the host
comes back on the confirmed bond, NetworkManager's, in sync with the task.

Then hv01 becomes an operator's NetworkManager bond (make_nm_bond: eth0's addresses on bond0,
its MAC pinned to eth0's) and br0 is put over it as it is (``nic: bond0``, fleetbr's bond
profile in place of the operator's): the host's own rollback exact, a power cut inside the window
back as before (the operator's bond and keyfiles), then confirmed the same way, and back on the
confirmed bridge after a clean reboot.

Before the fix of the apply NetworkManager failed to take the bond over (it sets ``mode``,
which the kernel refuses on a bond with slaves: "failure 39") and the apply failed. One VM,
booted once; each rollback test (and the power cut) runs before its confirm."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from fleetbr.lab import Lab
from fleetbr.lab.vm import reboot
from fleetbr.report import Status
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.vm.vmhelpers import (
    BOND,
    before,
    bond_problems,
    booted_nm_lab,
    cli,
    host_rollback_is_exact,
    last_journal_line,
    make_nm_bond,
    master_is,
    power_cut_in_window,
    restored_problems_vm,
    topology_task,
    wait_vm,
)

pytestmark = pytest.mark.lab
HOST = "hv01"
# NetworkManager's apply brings four profiles up one by one; a TCG guest on a loaded machine
# takes minutes for it.
WINDOW = 600


@pytest.fixture(scope="module")
def nm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """hv01: NetworkManager configures eth0 (the lab's addresses), eth1 has a profile with no
    address."""
    with booted_nm_lab(tmp_path_factory, "fbrnb") as lab:
        yield lab


def bond_task(tmp_path: Path) -> Path:
    return topology_task(tmp_path, "networkmanager", WINDOW, bridge={"name": "br0", "bond": BOND})


def test_the_hosts_rollback_of_a_persisted_new_bond_is_exact(nm_lab: Lab, tmp_path: Path) -> None:
    applied = partial(bond_problems, backend="networkmanager")
    host_rollback_is_exact(nm_lab, HOST, bond_task(tmp_path), WINDOW, applied=applied)


def test_a_power_cut_inside_the_window_of_a_new_bond_comes_back_as_before(
    nm_lab: Lab, tmp_path: Path
) -> None:
    """QEMU killed once the bond is applied, not confirmed: the boot guard restores the keyfiles
    before NetworkManager starts; files, NetworkManager's view and the kernel state as before,
    br0 and bond0 gone, and the controller resolves the transaction as rolled back."""
    was = before(nm_lab, HOST)
    in_place = partial(master_is, nm_lab, HOST, "eth0", "bond0")
    txid, resumed = power_cut_in_window(nm_lab, HOST, bond_task(tmp_path), WINDOW, in_place)
    assert resumed.status == Status.ROLLED_BACK, resumed.message
    # NetworkManager's runtime profiles in /run are its own, made again at boot (eth1's
    # auto-default "Wired connection 1" is not: eth1 has a profile now; lo's gets a new uuid)
    problems = restored_problems_vm(
        nm_lab, HOST, txid, was, gone=("br0", "bond0"), reasons=("reason=reboot",),
        rebooted=True,
    )  # fmt: skip
    assert problems == [], "\n".join(problems)
    wait_vm(nm_lab, HOST, "ip -o -4 addr show dev eth0 | grep -q 198.51.100", 60, "eth0 up")


def test_a_bond_is_confirmed_and_networkmanager_owns_it(nm_lab: Lab, tmp_path: Path) -> None:
    task = bond_task(tmp_path)
    code, status, message = cli(nm_lab, HOST, task, "apply", WINDOW + 120)
    assert (code, status) == (0, "confirmed"), message
    assert bond_problems(settled_facts(nm_lab, HOST, timeout=120), "networkmanager") == []
    assert cli(nm_lab, HOST, task, "check", 300)[:2] == (0, "in_sync")
    assert cli(nm_lab, HOST, task, "plan", 300)[1] == "unchanged"


def test_a_reboot_after_the_confirm_comes_back_confirmed(nm_lab: Lab, tmp_path: Path) -> None:
    """A clean reboot of the confirmed bond: NetworkManager brings br0, bond0 and both slaves
    up from fleetbr's keyfiles, `check` is in sync."""
    reboot(nm_lab, HOST)
    assert bond_problems(settled_facts(nm_lab, HOST, timeout=120), "networkmanager") == []
    assert cli(nm_lab, HOST, bond_task(tmp_path), "check", 300)[:2] == (0, "in_sync")


def test_the_hosts_rollback_of_an_existing_nm_bond_as_the_port_is_exact(
    nm_lab: Lab, tmp_path: Path
) -> None:
    """An operator's NetworkManager bond0 (eth0's addresses, its MAC pinned to eth0's) bridged
    as it is (``nic: bond0``): its own profile is rewritten as br0's port; the host's own
    rollback gives the file back and bond0 its addresses, NetworkManager's view and the kernel
    state exactly (bond0 stays)."""
    make_nm_bond(nm_lab, HOST, WINDOW)
    task = topology_task(tmp_path, "networkmanager", WINDOW, bridge={"name": "br0", "nic": "bond0"})
    applied = partial(bond_problems, backend="networkmanager")
    host_rollback_is_exact(nm_lab, HOST, task, WINDOW, applied=applied, gone=("br0",))


def port_task(tmp_path: Path) -> Path:
    """br0 over the existing bond0, as it is."""
    return topology_task(tmp_path, "networkmanager", WINDOW, bridge={"name": "br0", "nic": "bond0"})


def test_a_power_cut_inside_the_window_of_an_existing_nm_bond_comes_back_as_before(
    nm_lab: Lab, tmp_path: Path
) -> None:
    """The operator's bond0 bridged, QEMU killed once applied: the boot guard gives the operator's
    keyfiles back before NetworkManager starts; NetworkManager builds the operator's bond0 with
    eth0's addresses again, exactly as before (bond0 stays, br0 gone)."""
    was = before(nm_lab, HOST)
    in_place = partial(master_is, nm_lab, HOST, "bond0", "br0")
    txid, resumed = power_cut_in_window(nm_lab, HOST, port_task(tmp_path), WINDOW, in_place)
    assert resumed.status == Status.ROLLED_BACK, resumed.message
    problems = restored_problems_vm(
        nm_lab, HOST, txid, was, gone=("br0",), reasons=("reason=reboot failed_steps=0",),
        rebooted=True,
    )  # fmt: skip
    assert problems == [], "\n".join(problems)


def test_an_existing_nm_bond_as_the_port_is_confirmed(nm_lab: Lab, tmp_path: Path) -> None:
    task = port_task(tmp_path)
    code, status, message = cli(nm_lab, HOST, task, "apply", WINDOW + 120)
    assert (code, status) == (0, "confirmed"), message
    assert bond_problems(settled_facts(nm_lab, HOST, timeout=120), "networkmanager") == []
    assert cli(nm_lab, HOST, task, "check", 300)[:2] == (0, "in_sync")
    assert cli(nm_lab, HOST, task, "plan", 300)[1] == "unchanged"


def test_a_reboot_after_the_confirm_of_the_existing_bond_comes_back_confirmed(
    nm_lab: Lab, tmp_path: Path
) -> None:
    reboot(nm_lab, HOST)
    assert bond_problems(settled_facts(nm_lab, HOST, timeout=120), "networkmanager") == []
    assert cli(nm_lab, HOST, port_task(tmp_path), "check", 300)[:2] == (0, "in_sync")
    last = last_journal_line(nm_lab, HOST).split()
    assert last[2:3] == ["confirmed"], last
