"""An operator's existing bond as the bridge's port (``nic: bond0``, issue 17) under Debian's
classic ifupdown (0.8) with ifenslave and bridge-utils, on Debian's 6.1 kernel: bond0 of eth0 and
eth1 (active-backup) with the lab addresses, from a ``bond-slaves`` stanza that ifupdown builds at
boot. One VM, booted once, made into that host by writing the file and rebooting; the tests run
in file order:

- a power cut inside the dead-man window (QEMU killed once the host says ``applied``): the boot
  guard puts the file back before ifupdown reads it, and the host comes back exactly as before
  (the file byte for byte, ifupdown's view, the kernel state: bond0 with its slaves, MAC,
  addresses and routes; br0 gone), decided ``rolled_back`` by the reboot;
- the bridge over the bond confirmed: ifupdown owns br0, bond0, eth0 and eth1, bond0 keeps eth0's
  MAC, ``check`` in sync, a plan again unchanged;
- a clean reboot after the confirm: ifupdown builds the same from fleetbr's file, in sync.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.lab import Lab
from fleetbr.lab.vm import reboot
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.vm.conftest import booted_lab, require_ifenslave_layer, vm_sh
from tests.integration.vm.vmhelpers import (
    bond_problems,
    cli,
    last_journal_line,
    power_cut_comes_back_as_before,
    topology_task,
)

pytestmark = pytest.mark.lab
HOST = "hv01"
PATH = "/etc/network/interfaces"
# A TCG guest's apply (runtime steps, ifup of the bridge and its port) takes tens of seconds on
# a quiet machine; the window leaves room for a loaded one.
WINDOW = 600


def operator_file(lab: Lab) -> str:
    """The operator's /etc/network/interfaces: bond0 of eth0 and eth1 with the lab addresses."""
    host = lab.host(HOST)
    gateway4, gateway6 = lab.gateways(host)
    return (
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
        f"auto bond0\niface bond0 inet static\n    address {host.addr4}\n"
        f"    gateway {gateway4}\n    bond-slaves eth0 eth1\n    bond-mode active-backup\n"
        f"    bond-miimon 100\n\niface bond0 inet6 static\n    address {host.addr6}\n"
        f"    gateway {gateway6}\n    accept_ra 0\n"
    )


@pytest.fixture(scope="module")
def bp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """hv01 turned into the operator's bond host (the file written, then a reboot: ifupdown
    builds bond0 at boot as it would on a real one)."""
    require_ifenslave_layer()
    with booted_lab(tmp_path_factory, ["ifupdown"], prefix="fbrib") as lab:
        vm_sh(lab, HOST, f"printf '%s' {shlex.quote(operator_file(lab))} > {PATH}")
        reboot(lab, HOST)
        facts = settled_facts(lab, HOST, timeout=120)
        bond = facts.topology.bond("bond0")
        assert bond is not None and sorted(bond.slave_names) == ["eth0", "eth1"], bond
        assert lab.host(HOST).addr4 in [a.cidr for a in facts.addresses_of("bond0")]
        yield lab


def port_problems(lab: Lab) -> list[str]:
    """bond_problems of the settled facts, but for the slaves' owner: the operator's file has no
    stanza for eth0 or eth1 (the bond's ``bond-slaves`` enslaves them), and ifupdown's view
    names only interfaces with a stanza."""
    found = bond_problems(settled_facts(lab, HOST, timeout=120), "ifupdown")
    return [p for p in found if not p.startswith(("eth0 not ifupdown's", "eth1 not ifupdown's"))]


def port_task(tmp_path: Path) -> Path:
    """br0 over the existing bond0, as it is, persisted by ifupdown."""
    return topology_task(tmp_path, "ifupdown", WINDOW, bridge={"name": "br0", "nic": "bond0"})


def test_a_power_cut_inside_the_window_comes_back_as_before(bp_lab: Lab, tmp_path: Path) -> None:
    power_cut_comes_back_as_before(
        bp_lab, HOST, port_task(tmp_path), WINDOW, enslaved=("bond0", "br0"),
        file=(PATH, "bridge_ports bond0"), gone=("br0",),
    )  # fmt: skip


def test_the_bridge_over_the_bond_is_confirmed_and_ifupdown_owns_it(
    bp_lab: Lab, tmp_path: Path
) -> None:
    task = port_task(tmp_path)
    code, status, message = cli(bp_lab, HOST, task, "apply", WINDOW + 120)
    assert (code, status) == (0, "confirmed"), message
    assert port_problems(bp_lab) == []
    state = vm_sh(bp_lab, HOST, "ifquery --state").split()
    assert {"bond0=bond0", "br0=br0"} <= set(state), state
    assert cli(bp_lab, HOST, task, "check", 300)[:2] == (0, "in_sync")
    assert cli(bp_lab, HOST, task, "plan", 300)[1] == "unchanged"


def test_a_reboot_after_the_confirm_comes_back_confirmed(bp_lab: Lab, tmp_path: Path) -> None:
    reboot(bp_lab, HOST)
    assert port_problems(bp_lab) == []
    assert cli(bp_lab, HOST, port_task(tmp_path), "check", 300)[:2] == (0, "in_sync")
    last = last_journal_line(bp_lab, HOST).split()
    assert last[2:3] == ["confirmed"], last
