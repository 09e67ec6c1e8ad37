"""The VM lab's router (fleetbr.lab.vm.router): the plan (hosts on the management VLAN, the
router last and out of the inventory), the files that configure the router and a host managed on
eth0.10, the controller's routes, lab.json, and ``demo --vm``'s usage errors and VLAN table view.
What the router does on a real kernel: tests/integration/vm/test_proxmox_mgmt_vlan.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetbr.cli import main
from fleetbr.errors import LabUsageError
from fleetbr.facts.topology import PortVlan
from fleetbr.lab.distro import provision
from fleetbr.lab.distro.build import distro_plan
from fleetbr.lab.files import write_inventory
from fleetbr.lab.model import Lab, load, save
from fleetbr.lab.vm import router


def lab_with_router(tmp_path: Path, backend: str = "ifupdown2") -> Lab:
    lab = distro_plan(tmp_path, 1, backend, distro="debian12", nic="eth0", prefix="fbrmv")
    for host in lab.hosts:
        host.vm, host.nics = True, 2
    router.add(lab)
    return lab


def test_hosts_move_to_the_management_vlan_and_the_router_comes_last(tmp_path: Path) -> None:
    lab = lab_with_router(tmp_path)
    host, rt = lab.hosts
    assert (host.addr4, host.addr6, host.mgmt_vlan) == ("203.0.113.10/24", "2001:db8:10::a/64", 10)
    assert lab.gateways(host) == ("203.0.113.1", "2001:db8:10::1")
    assert (rt.name, rt.router, rt.backend, rt.addr4) == (
        "router",
        True,
        "none",
        "198.51.100.11/24",
    )
    assert lab.gateways(rt) == ("198.51.100.1", "2001:db8:100::1")
    assert lab.members() == [host] and router.find(lab) is rt
    assert router.route_commands(lab) == [
        "route replace 203.0.113.0/24 via 198.51.100.11 dev fbrmv-ctl",
        "route replace 2001:db8:10::/64 via 2001:db8:100::b dev fbrmv-ctl",
    ]
    write_inventory(lab)
    hosts = yaml.safe_load((lab.inventory_dir / "hosts.yaml").read_text())
    assert list(hosts) == ["hv01"] and hosts["hv01"]["hostname"] == "203.0.113.10"
    save(lab)
    again = load(tmp_path)
    assert [(h.name, h.router, h.mgmt_vlan) for h in again.hosts] == [
        ("hv01", False, 10),
        ("router", True, 0),
    ]


def test_a_lab_without_router_routes_nothing(tmp_path: Path) -> None:
    lab = distro_plan(tmp_path, 1, "ifupdown2", distro="debian12", nic="eth0", prefix="fbrmv")
    assert router.find(lab) is None and router.route_commands(lab) == []
    assert lab.members() == lab.hosts and lab.gateways(lab.hosts[0])[0] == "198.51.100.1"


def test_only_backends_that_can_write_a_nic_vlan_get_a_router(tmp_path: Path) -> None:
    with pytest.raises(LabUsageError, match="ifupdown2 hosts only, not networkd"):
        lab_with_router(tmp_path, "networkd")


def test_the_host_is_managed_on_eth0_10_and_the_router_tags(tmp_path: Path) -> None:
    lab = lab_with_router(tmp_path)
    host, rt = lab.hosts
    (interfaces,) = provision.config_files(lab, host)
    assert interfaces.path == "/etc/network/interfaces"
    assert (
        "auto eth0\niface eth0 inet manual\n\nauto eth0.10\niface eth0.10 inet static\n"
        "    address 203.0.113.10/24\n    gateway 203.0.113.1\n\n"
        "iface eth0.10 inet6 static\n    address 2001:db8:10::a/64\n    gateway 2001:db8:10::1\n"
    ) in interfaces.content
    assert interfaces.content.endswith("    accept_ra 0\n\niface eth1 inet manual\n")
    files = {f.path: f.content for f in provision.config_files(lab, rt)}
    unit = files[f"/etc/systemd/system/{provision.STATIC_UNIT}"]
    for line in ("ip address add 198.51.100.11/24 dev eth0",
                 "ip link add link eth0 name eth0.10 type vlan id 10",
                 "ip address add 203.0.113.1/24 dev eth0.10",
                 "ip address add 2001:db8:10::1/64 dev eth0.10 nodad"):  # fmt: skip
        assert f"ExecStart=/sbin/{line}\n" in unit
    assert "default" not in unit  # the router needs no route beyond its two subnets
    assert files["/etc/modules-load.d/lab-router.conf"] == "8021q\n"
    assert "net.ipv6.conf.all.forwarding = 1" in files["/etc/sysctl.d/60-lab-router.conf"]
    assert provision.units(rt.backend) == [provision.STATIC_UNIT]


def test_a_host_without_vlan_keeps_its_file(tmp_path: Path) -> None:
    lab = distro_plan(tmp_path, 1, "ifupdown2", distro="debian12", nic="eth0", prefix="fbrmv")
    (interfaces,) = provision.config_files(lab, lab.hosts[0])
    assert "eth0.10" not in interfaces.content and "inet manual" not in interfaces.content
    assert "auto eth0\niface eth0 inet static\n    address 198.51.100.10/24\n" in (
        interfaces.content
    )


@pytest.mark.parametrize("other", ["--distro", "--sites=2"])
def test_demo_vm_goes_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str], other: str) -> None:
    assert main(["demo", "--vm", other, "--dir", str(tmp_path / "lab")]) == 2
    err = capsys.readouterr().err
    assert "--vm runs on its own lab; leave out --distro and --sites" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lab").exists()


def test_the_demo_shows_vlan_ranges_merged() -> None:
    from fleetbr.lab.demos.proxmox import _ranges

    table = [PortVlan("bond0", v, v) for v in range(100, 200)]
    table += [PortVlan("bond0", 1, 1, True, True), PortVlan("bond0", 10, 10),
              PortVlan("br0", 10, 10)]  # fmt: skip
    assert _ranges(table) == [
        ("bond0", 1, 1, True, True),
        ("bond0", 10, 10, False, False),
        ("bond0", 100, 199, False, False),
        ("br0", 10, 10, False, False),
    ]
