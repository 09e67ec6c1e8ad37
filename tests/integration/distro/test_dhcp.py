"""``addresses: dhcp`` on a real systemd-networkd host whose NIC takes its addresses from the lab
switch's DHCP server (dnsmasq, fixed IPv4 and IPv6 leases by MAC: fleetbr.lab.dhcp): the bridge
gets the very same leases and is confirmed; with a bridge MAC the server does not know, the
bridge gets another address (networkd drops the one the runtime steps moved there), the host is
unreachable on its own, and its dead-man timer rolls it back: the NIC gets its leases back; with
only the IPv6 lease keyed by that MAC, the host stays reachable and the confirm finds the missing
lease."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleetbr.lab import Lab, down
from fleetbr.lab.dhcp import LOG, key_by_client_id, key_by_mac, leased, log_tail, wait_leases
from fleetbr.lab.distro import reset_host, up
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.helpers import fleetbr, sh
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab
HOST = "hv01"


@pytest.fixture(scope="module")
def dhcp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One networkd host that is a DHCP client of the lab switch, in its own namespace."""
    require_distro_cache()
    with own_network_namespace():
        lab = up(tmp_path_factory.mktemp("dhcp") / "lab", 1, "networkd", prefix="fbrdh",
                 dhcp_hosts=True)  # fmt: skip
        try:
            yield lab
        finally:
            down(lab.dir)


def task(tmp_path: Path, **bridge: object) -> Path:
    """br0 over eth0 keeping its leases, persisted by networkd, 30 s dead-man window."""
    doc = {
        "bridge": {"name": "br0", "nic": "eth0", "addresses": "dhcp", **bridge},
        "netfilter": "keep",
        "persist": "networkd",
        "deadman": {"timeout": 30},
    }
    path = tmp_path / f"dhcp-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def apply(lab: Lab, path: Path) -> tuple[int, str, str]:
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", HOST, "apply", str(path))
    assert isinstance(doc, dict), (doc, err)
    return code, doc[HOST]["status"], doc[HOST]["message"]


def plain(addresses: list[str]) -> set[str]:
    return {a.split("/")[0] for a in addresses}


def test_the_bridge_gets_the_nics_v4_and_v6_leases_and_is_confirmed(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    host = reset_host(dhcp_lab, HOST)
    before = wait_leases(host)
    code, status, message = apply(dhcp_lab, task(tmp_path))
    assert (code, status) == (0, "confirmed"), f"{message}\n{log_tail(dhcp_lab)}"
    assert plain(leased(host, "br0")) == plain(before) == {host.ip4, host.ip6}
    assert leased(host) == []
    network = sh(dhcp_lab, HOST, "cat /etc/systemd/network/10-br0.network")
    assert "ClientIdentifier=duid" in network and "[DHCPv6]\nIAID=" in network
    again = fleetbr("-i", str(dhcp_lab.inventory_dir), "-l", HOST, "plan", str(task(tmp_path)))
    assert isinstance(again[1], dict) and again[1][HOST]["status"] == "unchanged", again


def test_another_address_on_the_bridge_is_rolled_back_and_the_nic_gets_its_leases_back(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    host = reset_host(dhcp_lab, HOST)
    before = wait_leases(host)
    code, status, message = apply(dhcp_lab, task(tmp_path, mac="02:aa:00:00:00:01"))
    assert status == "rolled_back", f"{code} {status} {message}\n{log_tail(dhcp_lab)}"
    assert f"no fresh SSH connection before the deadline (connect to {host.ip4}:22" in message
    log = (dhcp_lab.dir / LOG).read_text().splitlines()
    acks = [
        m[1] for line in log if (m := re.search(r"DHCPACK\(\S+\) (\S+) 02:aa:00:00:00:01", line))
    ]
    assert acks and all(a.startswith("198.51.100.2") and a != host.ip4 for a in acks), log[-20:]
    assert plain(wait_leases(host)) == plain(before)
    assert "br0" not in sh(dhcp_lab, HOST, "ip -o link show")


def test_a_bridge_without_the_nics_v6_lease_fails_the_confirm_and_is_rolled_back(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    """The server keys the IPv4 lease by the client id the bridge keeps, the IPv6 one by the MAC
    the task changes: the bridge keeps its IPv4 address (the host stays reachable) but gets no
    IPv6 lease, which the confirm finds; the rollback gives the NIC both leases back."""
    host = reset_host(dhcp_lab, HOST)
    before = wait_leases(host)
    key_by_client_id(dhcp_lab, host)
    try:
        code, status, message = apply(dhcp_lab, task(tmp_path, mac="02:aa:00:00:00:01"))
        assert status == "rolled_back", f"{code} {status} {message}\n{log_tail(dhcp_lab)}"
        assert f"br0 does not hold the DHCP lease {host.ip6}/128 (its leases: {host.addr4})" in (
            message
        )
        assert plain(wait_leases(host)) == plain(before)
    finally:
        key_by_mac(dhcp_lab)
