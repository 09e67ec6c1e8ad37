"""The VM tier of the lab: QEMU guests with Debian's kernel, reachable over SSH with checked host
keys, with what the bond and VLAN topologies need (bonding, 8021q, tagged frames across the lab
switch), and real reboots: the power button, `systemctl reboot` inside, and a power cut; a
runtime-only (persist: none) bond under br0 confirmed, its record and a drift repaired.

The module boots its two VMs once (``vm_lab``); the tests run in file order and the last one
leaves hv01 and hv02 bonded (nothing runs after it)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from fleetbr.lab import Lab, status
from fleetbr.lab.vm import boot_ids, reboot
from fleetbr.lab.vm.machine import BOOT_TIMEOUT, qemu_pid, wait_up
from tests.integration.helpers import fleetbr
from tests.integration.vm.conftest import ssh, vm_sh

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[3]


def boot_id(lab: Lab, host: str) -> str:
    """The guest kernel's id of its current boot."""
    return vm_sh(lab, host, "cat /proc/sys/kernel/random/boot_id").strip()


def test_ssh_checks_the_real_host_keys(vm_lab: Lab, tmp_path: Path) -> None:
    for host in vm_lab.hosts:
        assert vm_sh(vm_lab, host.name, "hostname").strip() == host.name
        stranger = tmp_path / f"known_hosts-{host.name}"
        stranger.write_text("")
        refused = ssh(vm_lab, host.ip4, "true", known_hosts=str(stranger))
        assert refused.returncode == 255, refused
        assert "Host key verification failed" in refused.stderr
    assert [(row.sshd_alive, row.ssh_port_open) for row in status(vm_lab.dir)] == [(True, True)] * 2


def test_the_guest_runs_debians_kernel_with_systemd_and_two_nics(vm_lab: Lab) -> None:
    for host in vm_lab.hosts:
        out = vm_sh(vm_lab, host.name, "systemctl is-system-running --wait; uname -r; "
                    "ls /sys/class/net | sort | tr '\\n' ' '")  # fmt: skip
        state, release, nics = out.split("\n", 2)
        assert state in {"running", "degraded"}, out
        assert release.endswith("-amd64"), release
        assert nics.split() == ["eth0", "eth1", "lo"]


def test_facts_over_the_vm(vm_lab: Lab) -> None:
    code, doc, err = fleetbr("-i", str(vm_lab.inventory_dir), "-l", "hv01", "facts")
    assert code == 0, (doc, err)
    eth0 = doc["hv01"]["facts"]["daemons"]["interfaces"]["eth0"]
    assert (eth0["manager"], eth0["state"]) == ("networkd", "configured")


def test_apply_bridges_eth0_of_a_vm_at_runtime(vm_lab: Lab, tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "tasks" / "bridge.yaml").read_text())
    doc["persist"] = "none"
    doc["deadman"]["timeout"] = 120  # TCG guests on a loaded machine are slow to confirm
    task = tmp_path / "bridge.yaml"
    task.write_text(yaml.safe_dump(doc))
    code, result, err = fleetbr("-i", str(vm_lab.inventory_dir), "-l", "hv02", "apply", str(task))
    assert (code, result["hv02"]["status"]) == (0, "confirmed"), (result, err)
    out = vm_sh(vm_lab, "hv02", "cat /sys/class/net/eth0/master/uevent; ip -o -4 addr show br0")
    assert "INTERFACE=br0" in out and vm_lab.host("hv02").addr4 in out
    # persist: none: the reboots below bring hv02 back on its networkd-configured eth0


def test_reboots_from_outside_and_from_inside(vm_lab: Lab) -> None:
    before = {h.name: boot_id(vm_lab, h.name) for h in vm_lab.hosts}
    hv02 = vm_lab.host("hv02")
    boots = len(boot_ids(hv02))
    pid = qemu_pid(hv02)
    # hv01: the ACPI power button (`fleetbr lab reboot hv01`); hv02: `systemctl reboot` inside
    with ThreadPoolExecutor(2) as pool:
        outside = pool.submit(reboot, vm_lab, "hv01")
        ssh(vm_lab, hv02.ip4, "systemctl reboot")
        inside = wait_up(hv02, time.monotonic() + BOOT_TIMEOUT, after=boots)
        outside.result()
    assert qemu_pid(hv02) == pid  # a reset inside the same virtual machine
    after = {h.name: boot_id(vm_lab, h.name) for h in vm_lab.hosts}
    assert after["hv02"] == inside
    assert all(after[name] != before[name] for name in before), (before, after)
    assert "master" not in vm_sh(vm_lab, "hv02", "ip -o link show dev eth0")  # the bridge is gone


def test_power_cut_boots_again_from_the_same_disk(vm_lab: Lab) -> None:
    vm_sh(vm_lab, "hv01", "echo kept > /root/kept && sync")
    before, pid = boot_id(vm_lab, "hv01"), qemu_pid(vm_lab.host("hv01"))
    code, _, err = fleetbr("lab", "reboot", "--dir", str(vm_lab.dir), "--hard", "hv01",
                           timeout=BOOT_TIMEOUT + 60)  # fmt: skip
    assert code == 0, err
    assert qemu_pid(vm_lab.host("hv01")) not in {None, pid}
    assert boot_id(vm_lab, "hv01") != before
    assert vm_sh(vm_lab, "hv01", "cat /root/kept") == "kept\n"


def test_a_runtime_bond_bridge_is_confirmed_recorded_and_its_drift_repaired(
    vm_lab: Lab, tmp_path: Path
) -> None:
    """persist: none on hv02 (no daemon): a new bond of eth0 and eth1 under br0, made by
    iproute2 alone, confirmed; br0's record holds what move took, so an IPv6 address deleted
    from br0 by hand is drift that an apply puts back. A reboot then takes it all away."""
    doc = {
        "bridge": {"name": "br0", "addresses": "move",
                   "bond": {"name": "bond0", "slaves": ["eth0", "eth1"], "mode": "active-backup",
                            "options": {"miimon": 100}}},
        "persist": "none",
        "netfilter": "keep",
        "deadman": {"timeout": 300},  # a TCG guest on a loaded machine is slow to confirm
    }  # fmt: skip
    task = tmp_path / "runtime-bond.yaml"
    task.write_text(yaml.safe_dump(doc))
    hv02 = vm_lab.host("hv02")
    inventory = ["-i", str(vm_lab.inventory_dir), "-l", "hv02"]
    code, result, err = fleetbr(*inventory, "apply", str(task), timeout=900)
    assert (code, result["hv02"]["status"]) == (0, "confirmed"), (result, err)
    slaves = vm_sh(vm_lab, "hv02", "cat /sys/class/net/bond0/bonding/slaves").split()
    assert slaves == ["eth0", "eth1"]
    assert "INTERFACE=br0" in vm_sh(vm_lab, "hv02", "cat /sys/class/net/bond0/master/uevent")
    record = vm_sh(vm_lab, "hv02", "cat /run/fleetbr/pins/br0.json")
    assert hv02.addr4 in record and hv02.addr6 in record, record
    vm_sh(vm_lab, "hv02", f"ip -6 addr del {hv02.addr6} dev br0")
    code, result, err = fleetbr(*inventory, "check", str(task), timeout=300)
    assert result["hv02"]["status"] == "drifted", (code, result, err)
    assert hv02.addr6 in result["hv02"]["message"], result
    code, result, err = fleetbr(*inventory, "apply", str(task), timeout=900)
    assert (code, result["hv02"]["status"]) == (0, "confirmed"), (result, err)
    assert hv02.addr6 in vm_sh(vm_lab, "hv02", "ip -o -6 addr show dev br0")
    code, result, err = fleetbr(*inventory, "check", str(task), timeout=300)
    assert (code, result["hv02"]["status"]) == (0, "in_sync"), (result, err)
    reboot(vm_lab, "hv02")  # the runtime bond and bridge go; the next test bonds eth0 itself
    assert "bond0" not in vm_sh(vm_lab, "hv02", "ls /sys/class/net")


# Both VMs: eth0 and eth1 into an active-backup bond that takes over eth0's addresses, VLAN 10 on
# top. Run detached: the SSH session that starts it rides on eth0. networkd would configure eth0
# again when it goes down; the bond keeps eth0's MAC (udev would give it one derived from the
# machine-id, and the controller's neighbour entry would point at a MAC nobody has any more).
BOND = (
    "systemctl stop systemd-networkd.socket systemd-networkd.service"
    " && modprobe bonding max_bonds=0 && modprobe 8021q"
    " && ip link add bond0 address $(cat /sys/class/net/eth0/address) type bond"
    " mode active-backup miimon 100"
    " && ip addr flush dev eth0 && ip link set eth0 down && ip link set eth1 down"
    " && ip link set eth0 master bond0 && ip link set eth1 master bond0 && ip link set bond0 up"
    " && ip addr add {addr4} dev bond0 && ip route replace default via {gateway4}"
    " && ip link add link bond0 name bond0.10 type vlan id 10"
    " && ip addr add {vlan4} dev bond0.10 && ip link set bond0.10 up"
)
VLAN4 = {"hv01": "203.0.113.11", "hv02": "203.0.113.12"}


def test_bond_of_both_nics_with_a_vlan_on_top(vm_lab: Lab) -> None:
    for host in vm_lab.hosts:
        script = BOND.format(addr4=host.addr4, gateway4=vm_lab.gateway4,
                             vlan4=f"{VLAN4[host.name]}/24")  # fmt: skip
        ssh(vm_lab, host.ip4, f"nohup sh -c '{script}' > /root/bond.log 2>&1 &")
    for host in vm_lab.hosts:
        deadline = time.monotonic() + 120
        while ssh(vm_lab, host.ip4, "ip -br addr show dev bond0.10 | grep -q 203.0.113").returncode:
            assert time.monotonic() < deadline, f"{host.name} unreachable after bonding"
            time.sleep(1)
        slaves = vm_sh(vm_lab, host.name, "cat /sys/class/net/bond0/bonding/slaves").split()
        assert slaves == ["eth0", "eth1"]
        assert vm_sh(vm_lab, host.name, "cat /proc/net/vlan/bond0.10").startswith("bond0.10")
    # Tagged frames from hv01's VLAN device reach hv02's across the (plain) lab switch bridge.
    pinged = ssh(vm_lab, vm_lab.host("hv01").ip4, f"ping -c 3 -W 5 {VLAN4['hv02']}")
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
