"""The lab's DHCP server (fleetbr.lab.dhcp) and DHCP hosts, the pure parts: dnsmasq's
configuration and fixed leases (lab ranges and lab files only), a DHCP host's networkd file,
the CLI's usage errors, lab.json keeping the flag; the lease words of the networkd apply; host
snapshots of a DHCP host (its routes' countdowns)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from fleetbr.cli import main
from fleetbr.errors import LabError, ValidationError
from fleetbr.lab import dhcp
from fleetbr.lab.distro.provision import config_files
from fleetbr.lab.model import load, plan, save
from fleetbr.lab.state import advertised_without_metrics, normalise_dump
from fleetbr.plan import steps

LAB_NETS = [ipaddress.ip_network(n) for n in ("198.51.100.0/24", "2001:db8::/32")]


def test_fixed_leases_are_the_dhcp_hosts_usual_addresses_by_mac(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    lab.hosts[0].mac, lab.hosts[0].dhcp = "02:fb:00:00:00:01", True
    assert dhcp.hosts_text(lab.hosts) == "02:fb:00:00:00:01,198.51.100.10,[2001:db8:100::a],hv01\n"


def test_a_hosts_v4_lease_keyed_by_the_client_id_the_server_recorded(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    for index, host in enumerate(lab.hosts, start=1):
        host.mac, host.dhcp = f"02:fb:00:00:00:{index:02x}", True
    cid = "ff:8d:e4:ea:4a:00:02:00:00:ab:11:a9:6a"
    (tmp_path / dhcp.LEASES).write_text(
        f"1796559849 02:fb:00:00:00:01 198.51.100.10 hv01 {cid}\n"
        "duid 00:01:00:01:32:a8:02:58:1e:f6:07:13:89:ad\n"
        "1796559852 2380589642 2001:db8:100::a hv01 00:02:00:00:ab:11:a9:6a\n"
    )
    assert dhcp.client_id(lab, lab.hosts[0]) == cid
    with pytest.raises(LabError, match="hv02: no DHCPv4 lease for 02:fb:00:00:00:02"):
        dhcp.client_id(lab, lab.hosts[1])
    assert dhcp.by_client_id_text(lab, lab.hosts[0], cid) == (
        "02:fb:00:00:00:02,198.51.100.11,[2001:db8:100::b],hv02\n"
        f"id:{cid},198.51.100.10,hv01\n"
        "02:fb:00:00:00:01,[2001:db8:100::a],hv01\n"
    )


def test_dnsmasq_serves_only_lab_ranges_and_keeps_its_files_in_the_lab_dir(tmp_path: Path) -> None:
    lab = plan(tmp_path, 1, "eth0", "fbrdh")
    conf = dhcp.conf_text(lab)
    lines = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert "port=0" in lines and "interface=sw0" in lines and "enable-ra" in lines
    for key in ("pid-file", "dhcp-leasefile", "dhcp-hostsfile", "log-facility"):
        (value,) = [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]
        assert Path(value).parent == lab.dir
    ranges = [line.split("=", 1)[1].split(",") for line in lines if line.startswith("dhcp-range=")]
    assert ranges == [
        ["198.51.100.220", "198.51.100.250", "255.255.255.0", "1h"],
        ["2001:db8:100::", "static", "64", "1h"],  # no IPv6 pool: only fixed leases
    ]
    for first in (r[0] for r in ranges):
        assert any(ipaddress.ip_address(first) in net for net in LAB_NETS)


def test_a_dhcp_host_takes_its_addresses_by_dhcp_a_static_one_keeps_them(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    for host in lab.hosts:
        host.backend = "networkd"
    lab.hosts[0].dhcp = True
    (leased,) = config_files(lab, lab.hosts[0])
    (static,) = config_files(lab, lab.hosts[1])
    assert "[Network]\nDHCP=yes\nIPv6AcceptRA=yes\n" in leased.content
    assert "Address=" not in leased.content and "Gateway=" not in leased.content
    assert "DHCP" not in static.content and "Address=198.51.100.11/24" in static.content


def test_lab_json_keeps_the_dhcp_flag(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    lab.hosts[0].dhcp = True
    save(lab)
    assert [h.dhcp for h in load(tmp_path).hosts] == [True, False]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dhcp"], "--dhcp needs --distro"),
        (["--vm", "--dhcp"], "--dhcp needs --distro without --vm"),
    ],
)
def test_lab_up_dhcp_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["lab", "up", "--dir", str(tmp_path / "lab"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lab").exists()


def test_the_lease_words_of_a_backend_step_are_checked() -> None:
    args = {"backend": "networkd", "bridge": "br0", "nic": "eth0"}
    step = steps.backend_apply({**args, "leases": "br0=198.51.100.10 br0=2001:db8:100::a"})
    assert step.args["leases"] == "br0=198.51.100.10 br0=2001:db8:100::a"
    for bad in ("br0=198.51.100.10;reboot", "br 0=198.51.100.10", "br0=999.1.1.1"):
        with pytest.raises(ValidationError):
            steps.backend_apply({**args, "leases": bad})


def test_a_netplan_dhcp_host_has_dhcp_in_its_yaml_instead_of_the_addresses(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    for host in lab.hosts:
        host.backend = "netplan"
    lab.hosts[0].dhcp = True
    (leased,) = config_files(lab, lab.hosts[0])
    (static,) = config_files(lab, lab.hosts[1])
    entry = yaml.safe_load(leased.content)["network"]["ethernets"]["eth0"]
    assert entry == {"dhcp4": True, "dhcp6": True, "accept-ra": True}
    assert leased.mode == static.mode == 0o600
    assert yaml.safe_load(static.content)["network"]["ethernets"]["eth0"]["addresses"] == [
        "198.51.100.11/24",
        "2001:db8:100::b/64",
    ]


def test_a_networkmanager_dhcp_host_has_method_auto_instead_of_the_addresses(
    tmp_path: Path,
) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    for host in lab.hosts:
        host.backend = "networkmanager"
    lab.hosts[0].dhcp = True
    (leased,) = config_files(lab, lab.hosts[0])
    (static,) = config_files(lab, lab.hosts[1])
    assert "[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n" in leased.content
    assert "address1=" not in leased.content
    assert "[ipv4]\nmethod=manual\naddress1=198.51.100.11/24,198.51.100.1\n" in static.content


def test_a_routes_countdown_is_compared_by_its_presence_not_its_value() -> None:
    """An advertisement's routes on a DHCP host say how long they have left (``expires``): two
    snapshots of an unchanged host compare equal, an expiring route and a permanent one do not."""
    route = {"dst": "default", "gateway": "fe80::1", "dev": "eth0", "protocol": "ra"}
    earlier = normalise_dump([{**route, "expires": 599}])
    assert earlier == normalise_dump([{**route, "expires": 597}]) == [{**route, "expires": True}]
    assert earlier != normalise_dump([route])


def test_an_advertised_routes_metrics_are_not_compared_but_anyone_elses_are() -> None:
    """The latest advertisement sets an advertised route's mtu (CI: the snapshot had ``mtu
    1500``, the same route after the rollback none yet); a static route's mtu is the operator's."""
    advertised = {"dst": "default", "gateway": "fe80::1", "dev": "eth0", "protocol": "ra"}
    static = {**advertised, "protocol": "static", "metrics": [{"mtu": 1400}]}
    with_mtu = [{**advertised, "metrics": [{"mtu": 1500}]}, static]
    assert advertised_without_metrics(with_mtu) == [advertised, static]
    assert advertised_without_metrics([advertised, static]) == [advertised, static]
    assert advertised_without_metrics([{**static, "metrics": []}]) != [static]
