"""The VM tier's pure parts: CLI usage errors, per-NIC MACs and switch ports, the QEMU command
the supervisor runs, the boot markers of the serial console, lab.json with VM hosts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fleetbr.cli import main
from fleetbr.errors import LabError, LabUsageError
from fleetbr.lab import host_exec
from fleetbr.lab.distro import reset_host
from fleetbr.lab.files import write_inventory
from fleetbr.lab.model import load, plan, save
from fleetbr.lab.render import render
from fleetbr.lab.vm import image
from fleetbr.lab.vm.machine import CMDLINE, boot_ids, nic_mac, nic_name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nics", "3"], "--nics needs --vm"),
        (["--router"], "--router needs --vm"),
        (["--vm", "--router", "--backend", "networkd"], "ifupdown2 hosts only, not networkd"),
        (["--vm", "--guests", "1"], "--guests needs --distro without --vm"),
        (["--vm", "--nic", "enp1s0"], "eth0, eth1, ... (no --nic)"),
    ],
)
def test_lab_up_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["lab", "up", "--dir", str(tmp_path / "lab"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lab").exists()


def test_nics_have_their_own_macs_and_switch_ports(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrvm")
    host = lab.hosts[1]
    host.vm, host.nics = True, 3
    assert host.ports() == ["fbrvm-p02", "fbrvm-p021", "fbrvm-p022"]
    assert max(len(p) for p in plan(tmp_path, 2, "eth0", "a" * 10).hosts[0].ports()) <= 15
    assert [nic_mac(2, i) for i in range(3)] == [
        "02:fb:00:00:00:02", "02:fb:00:01:00:02", "02:fb:00:02:00:02",
    ]  # fmt: skip
    assert [nic_name(i) for i in range(2)] == ["eth0", "eth1"]
    assert host.namespaces() == [host.netns]  # no container namespace: the guest has its own kernel


def test_lab_json_keeps_vm_hosts(tmp_path: Path) -> None:
    lab = plan(tmp_path, 1, "eth0", "fbrvm")
    lab.vm_image = "/var/cache/fleetbr/vm-x"
    lab.rootfs = "/var/cache/fleetbr/rootfs-x"
    lab.hosts[0].vm, lab.hosts[0].nics, lab.hosts[0].backend = True, 2, "networkd"
    save(lab)
    again = load(tmp_path)
    assert (again.hosts[0].vm, again.hosts[0].nics) == (True, 2)
    assert (
        again.lower(again.hosts[0]) == "/var/cache/fleetbr/vm-x/upper:/var/cache/fleetbr/rootfs-x"
    )


def test_supervisor_runs_qemu_tcg_on_taps_only() -> None:
    script = render(
        "lab_vm_supervisor.sh.j2", dir="/l/hosts/hv01", switch_netns="fbrvm-sw", name="hv01",
        memory=640, kernel="/c/vmlinuz", initrd="/c/initrd.img", cmdline=CMDLINE,
        nics=[("fbrvm-p01", "02:fb:00:00:00:01"), ("fbrvm-p011", "02:fb:00:01:00:01")],
    )  # fmt: skip
    assert "nsenter --net=/run/netns/fbrvm-sw qemu-system-x86_64" in script
    assert "-accel tcg -smp 1 -m 640" in script and "-nodefaults" in script
    assert script.count("-netdev tap,") == 2 and "ifname=fbrvm-p011," in script
    assert "mac=02:fb:00:01:00:01,romfile=" in script
    assert "user" not in script.split("-netdev", 1)[1]  # no slirp: nothing leaves the lab
    assert "init=/usr/local/sbin/fleetbr-lab-init" in CMDLINE and "net.ifnames=0" in CMDLINE


def test_boot_ids_come_from_the_serial_console(tmp_path: Path) -> None:
    host = plan(tmp_path, 1, "eth0", "fbrvm").hosts[0]
    assert boot_ids(host) == []
    host.dir.mkdir(parents=True)
    first, second = "5b8d8054-9be7-4d8f-ab04-681524cac736", "2b782893-4edf-424e-8e3d-b979edfa4be8"
    third = "0f6d52c5-56a7-4be0-b2c4-7d3e1e35ea53"
    (host.dir / "console.log").write_text(
        f"[ 1.0] kernel\r\nfleetbr-lab-vm: up {first}\r\n\r\nhv01 login: "
        f"fleetbr-lab-vm: up {second}\r\nfleetbr-lab-vm: up {third[:20]}"  # still being written
    )
    assert boot_ids(host) == [first, second]


def test_distro_and_netns_helpers_refuse_vm_hosts(tmp_path: Path) -> None:
    lab = plan(tmp_path, 1, "eth0", "fbrvm")
    lab.hosts[0].vm, lab.hosts[0].backend = True, "networkd"
    with pytest.raises(LabUsageError, match="hv01 is not a distro lab host"):
        reset_host(lab, "hv01")
    with pytest.raises(LabError, match="hv01 is a VM: nothing enters it without SSH"):
        host_exec(lab, "hv01", ["true"])


@pytest.mark.parametrize(("vm", "timeouts"), [(False, (3, 1, 3)), (True, (15, 5, 6))])
def test_vm_lab_inventories_wait_longer_for_ssh(
    tmp_path: Path, vm: bool, timeouts: tuple[int, int, int]
) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrvm")
    for host in lab.hosts:
        host.vm = vm
    write_inventory(lab)
    defaults = yaml.safe_load((lab.inventory_dir / "defaults.yaml").read_text())
    extras = defaults["connection_options"]["fleetbr"]["extras"]
    got = (extras["connect_timeout"], extras["keepalive_interval"], extras["keepalive_count_max"])
    assert got == timeouts


def test_the_image_leaves_out_unused_drivers_but_never_what_the_tier_needs() -> None:
    recipe = image._recipe("6.1.0-test")
    blacklisted = set(re.findall(r"^blacklist (\S+)$", recipe, flags=re.MULTILINE))
    assert blacklisted == set(image.UNUSED_MODULES)
    needed = {"bonding", "8021q", "bridge", "virtio_net", "virtio_blk", "virtio_pci", "ext4",
              "button", "evdev"}  # fmt: skip
    assert not blacklisted & needed
    masked = re.search(r"systemctl mask --quiet (.*)$", recipe, flags=re.MULTILINE)
    assert masked is not None and set(masked.group(1).split()) == set(image.UNUSED_UNITS)
    assert "HandlePowerKey=reboot" in recipe  # a soft `lab reboot` is the power button
