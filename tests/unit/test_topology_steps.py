"""Topology steps (bonds, VLAN devices, the bridge VLAN table): one quoted, valid sh line each,
the iproute2 6.1 commands a Debian 12 host takes, and hostile values refused before any shell."""

from __future__ import annotations

import subprocess

import pytest

from fleetbr.changes.bridge.topology import BondSpec
from fleetbr.errors import ValidationError
from fleetbr.plan import Step, step_command
from fleetbr.plan.topology import steps as tk

BOND = BondSpec(
    "bond0", ("eth1", "eth2"), "active-backup", (("miimon", 100), ("use_carrier", True))
)
FORWARD: list[Step] = [
    tk.bond_add(BOND),
    tk.bond_enslave("eth1", "bond0", was_up=True),
    tk.vlan_add("bond0.20", "bond0", 20),
    tk.vlan_del("eth0.10", "eth0", 10, "802.1ad", was_up=True),
    tk.bridge_vlan_filtering("br0", on=True, default_pvid=0, old=(False, 1)),
    tk.bridge_vlan_add("bond0", (10, 10), pvid=True, untagged=True),
    tk.bridge_vlan_add("br0", (100, 199), self_=True),
]
TOPOLOGY_STEPS: list[Step] = FORWARD + [s.inverse for s in FORWARD if s.inverse is not None]


@pytest.mark.parametrize("step", TOPOLOGY_STEPS, ids=lambda s: s.kind)
def test_one_line_and_valid_sh(step: Step) -> None:
    command = step_command(step)
    assert "\n" not in command
    check = subprocess.run(["sh", "-n", "-c", f"if ! {command}; then exit 1; fi"], check=False)
    assert check.returncode == 0


def command(step: Step | None) -> str:
    assert step is not None
    return step_command(step)


def test_bond_commands() -> None:
    add, enslave = FORWARD[0], FORWARD[1]
    assert "ip link add bond0 type bond mode active-backup miimon 100 use_carrier 1" in command(add)
    assert command(add.inverse) == (
        "{ ! ip link show dev bond0 type bond 2>/dev/null | grep -q . || ip link del dev bond0; }"
    )
    # the kernel enslaves only a NIC that is down
    assert "ip link set dev eth1 down && ip link set dev eth1 master bond0" in command(enslave)
    # a released slave is closed by the kernel: it goes back up if it was up
    assert command(enslave.inverse).endswith(
        "ip link set dev eth1 nomaster; } && ip link set dev eth1 up; }"
    )


def test_vlan_commands() -> None:
    assert "ip link add link bond0 name bond0.20 type vlan protocol 802.1Q id 20" in command(
        FORWARD[2]
    )
    recreate = command(FORWARD[3].inverse)
    assert "ip link add link eth0 name eth0.10 type vlan protocol 802.1ad id 10" in recreate
    assert recreate.endswith("&& ip link set dev eth0.10 up; }")


def test_bridge_vlan_commands() -> None:
    assert (
        command(FORWARD[4])
        == "ip link set dev br0 type bridge vlan_filtering 1 vlan_default_pvid 0"
    )
    # the rollback's: nothing to do when the bridge is not there (its creation failed)
    assert command(FORWARD[4].inverse) == (
        "{ ! ip link show dev br0 type bridge 2>/dev/null | grep -q . || "
        "ip link set dev br0 type bridge vlan_filtering 0 vlan_default_pvid 1; }"
    )
    assert command(FORWARD[5]) == "bridge vlan add dev bond0 vid 10 pvid untagged"
    assert command(FORWARD[6]) == "bridge vlan add dev br0 vid 100-199 self"
    assert command(FORWARD[6].inverse).startswith("{ bridge vlan del dev br0 vid 100-199 self ")


def test_hostile_or_impossible_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        tk.vlan_add("x;reboot", "eth0", 5)
    with pytest.raises(ValidationError):
        tk.vlan_add("eth0.5", "eth0", 4095)
    with pytest.raises(ValidationError):
        tk.bond_add(BondSpec("bond0", ("eth1",), "lacp"))
    with pytest.raises(ValidationError):
        tk.bond_add(BondSpec("bond0", ("eth1",), "802.3ad", (("miimon", "1 $(reboot)"),)))
    with pytest.raises(ValidationError, match="one VLAN"):
        tk.bridge_vlan_add("eth0", (1, 5), pvid=True)


def test_a_new_bond_is_created_with_its_first_slaves_mac() -> None:
    # without one, udev's MACAddressPolicy=persistent gives the bond a MAC of its own before
    # its first slave comes; the bond keeps it and gives it to every slave (found on the VM tier)
    assert "ip link add bond0 address 02:fb:00:00:00:02 type bond mode active-backup" in command(
        tk.bond_add(BOND, "02:fb:00:00:00:02")
    )
    assert "ip link add bond0 type bond" in command(tk.bond_add(BOND))
    with pytest.raises(ValidationError):
        tk.bond_add(BOND, "02:fb:00:00:00:02 $(reboot)")
