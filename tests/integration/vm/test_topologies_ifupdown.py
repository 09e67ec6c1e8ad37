"""Debian's classic ifupdown (0.8) with bridge-utils and ifenslave (the VM's ifenslave layer)
creates a bond (issue 17) on Debian's 6.1 kernel: br0 over a new active-backup bond0 of eth0 (the
addresses, the SSH path) and eth1 (idle: no stanza, down). One VM, booted once; the tests run in
file order:

- a cutting variant (br0 gets an address the controller cannot reach) is rolled back by the
  host's own timer, exactly: the file byte for byte, ifupdown's view of eth0 and eth1, the
  kernel state, no bond0 or br0 (the release deletes the new bond before ifupdown forgets the
  interfaces: docs/topologies.md, "Traps found on the VM tier");
- a power cut inside the window of the same bond (QEMU killed once eth0 is enslaved and the
  file written) comes back as before: the boot guard puts the file back before ifupdown reads
  it;
- the bond is confirmed and ifupdown owns br0, bond0, eth0 and eth1 (``ifquery --state``; the
  stanzas in ifenslave's syntax, which ``ifquery`` reads back), ``check`` is in sync and a plan
  again unchanged;
- a reboot after the confirm: ifupdown builds the same bond from the file, in sync, unchanged,
  and the journal still ends ``confirmed``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.lab import Lab
from fleetbr.lab.vm import reboot
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.vm.conftest import booted_lab, require_ifenslave_layer, vm_sh
from tests.integration.vm.vmhelpers import (
    BOND,
    before,
    bond_problems,
    cli,
    failed_rollback_steps,
    last_journal_line,
    power_cut_comes_back_as_before,
    restored_problems_vm,
    topology_task,
)

pytestmark = pytest.mark.lab
HOST = "hv01"
PATH = "/etc/network/interfaces"
# A TCG guest's apply (runtime steps, ifup of four interfaces) took 46 s on a quiet machine; the
# window leaves room for a loaded one. The cutting variant waits for the whole window: shorter.
WINDOW = 600
CUT_WINDOW = 300
# Known residue of a runtime rollback on the idle eth1 (down before the change): the kernel gave
# it its default qdisc when it first came up as a slave (noop -> fq_codel, no way back).
RESIDUE = {"eth1": ("qdisc",)}


@pytest.fixture(scope="module")
def ifu_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """hv01: ifupdown configures eth0 (the lab's addresses); eth1 has no stanza."""
    require_ifenslave_layer()
    with booted_lab(tmp_path_factory, ["ifupdown"], prefix="fbrif") as lab:
        yield lab


def bond_task(tmp_path: Path, window: int = WINDOW, **bridge: object) -> Path:
    """br0 over a new active-backup bond0 of eth0 and eth1, persisted by ifupdown."""
    return topology_task(
        tmp_path, "ifupdown", window, bridge={"name": "br0", "bond": BOND, **bridge}
    )


def test_a_cutting_bond_is_rolled_back_exactly_by_the_hosts_timer(
    ifu_lab: Lab, tmp_path: Path
) -> None:
    was = before(ifu_lab, HOST)
    cut = bond_task(tmp_path, CUT_WINDOW, addresses=["198.51.100.202/30"])
    code, status, message = cli(ifu_lab, HOST, cut, "apply", 3 * CUT_WINDOW)
    assert status == "rolled_back", (code, message)
    txid = last_journal_line(ifu_lab, HOST).split()[1]
    problems = restored_problems_vm(
        ifu_lab, HOST, txid, was, gone=("br0", "bond0"), reasons=("reason=timer ",),
        residue=RESIDUE,
    )  # fmt: skip
    assert problems == [], "\n".join(problems)
    assert failed_rollback_steps(ifu_lab, HOST, txid) == []


def test_a_power_cut_inside_the_window_comes_back_as_before(ifu_lab: Lab, tmp_path: Path) -> None:
    # the reboot also clears what the runtime rollback before left on the idle eth1 (RESIDUE)
    power_cut_comes_back_as_before(
        ifu_lab, HOST, bond_task(tmp_path), WINDOW, enslaved=("eth0", "bond0"),
        file=(PATH, "bond-slaves eth0 eth1"), gone=("br0", "bond0"), residue=RESIDUE,
    )  # fmt: skip


def test_a_bond_is_confirmed_and_ifupdown_owns_it(ifu_lab: Lab, tmp_path: Path) -> None:
    task = bond_task(tmp_path)
    code, status, message = cli(ifu_lab, HOST, task, "apply", WINDOW + 120)
    assert (code, status) == (0, "confirmed"), message
    facts = settled_facts(ifu_lab, HOST, timeout=120)
    assert bond_problems(facts, "ifupdown") == []
    state = vm_sh(ifu_lab, HOST, "ifquery --state").split()
    assert sorted(state) == ["bond0=bond0", "br0=br0", "eth0=eth0", "eth1=eth1", "lo=lo"]
    # ifupdown reads the stanzas back as ifenslave's hook gets them
    bond = vm_sh(ifu_lab, HOST, "ifquery bond0").splitlines()
    assert bond[:3] == ["bond-slaves: eth0 eth1", "bond-mode: active-backup", "bond-miimon: 100"]
    assert vm_sh(ifu_lab, HOST, "ifquery eth1").splitlines() == ["bond-master: bond0"]
    assert "bridge_ports: bond0" in vm_sh(ifu_lab, HOST, "ifquery br0").splitlines()
    assert cli(ifu_lab, HOST, task, "check", 300)[:2] == (0, "in_sync")
    assert cli(ifu_lab, HOST, task, "plan", 300)[1] == "unchanged"


def test_a_reboot_after_the_confirm_builds_the_bond_from_the_file(
    ifu_lab: Lab, tmp_path: Path
) -> None:
    reboot(ifu_lab, HOST)
    facts = settled_facts(ifu_lab, HOST, timeout=120)
    assert bond_problems(facts, "ifupdown") == []
    assert cli(ifu_lab, HOST, bond_task(tmp_path), "check", 300)[:2] == (0, "in_sync")
    assert cli(ifu_lab, HOST, bond_task(tmp_path), "plan", 300)[1] == "unchanged"
    last = last_journal_line(ifu_lab, HOST).split()
    assert last[2:3] == ["confirmed"], last
