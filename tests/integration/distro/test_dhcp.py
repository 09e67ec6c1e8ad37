"""``addresses: dhcp`` on a real systemd-networkd host whose NIC takes its addresses from the lab
switch's DHCP server (dnsmasq, fixed IPv4 and IPv6 leases by MAC: fleetbr.lab.dhcp): the bridge
gets the very same leases and is confirmed; with a bridge MAC the server does not know, the
bridge gets another address (networkd drops the one the runtime steps moved there), the host is
unreachable on its own, and its dead-man timer rolls it back: the NIC gets its leases back; with
only the IPv6 lease keyed by that MAC, the host stays reachable and the confirm finds the missing
lease. A confirmed bridge comes back after a clean reboot with the same leases, handed out anew,
still networkd's and in sync with its task; a power cut in the dead-man window brings the host
back as before (the boot guard put the files back before networkd started), the NIC holding its
leases again, and the resuming controller says rolled_back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleetbr.lab import Lab, down
from fleetbr.lab.dhcp import key_by_client_id, key_by_mac, log_tail, wait_leases
from fleetbr.lab.distro import reset_host, up
from tests.integration.distro import persisthelpers
from tests.integration.distro.boothelpers import WINDOW
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.distro.dhcphelpers import (
    bridge_holds_the_leases,
    comes_back_confirmed,
    nic_got_its_leases_back,
    plain,
    power_cut_in_the_window,
    settled_leases,
)
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


def task(tmp_path: Path, timeout: int = 30, **bridge: object) -> Path:
    """br0 over eth0 keeping its leases, persisted by networkd, a ``timeout`` s dead-man window."""
    doc = {
        "bridge": {"name": "br0", "nic": "eth0", "addresses": "dhcp", **bridge},
        "netfilter": "keep",
        "persist": "networkd",
        "deadman": {"timeout": timeout},
    }
    path = tmp_path / f"dhcp-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def apply(lab: Lab, path: Path) -> tuple[int, str, str]:
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", HOST, "apply", str(path))
    assert isinstance(doc, dict), (doc, err)
    return code, doc[HOST]["status"], doc[HOST]["message"]


def test_the_bridge_gets_the_nics_v4_and_v6_leases_is_confirmed_and_comes_back_after_a_reboot(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    host = reset_host(dhcp_lab, HOST)
    before = settled_leases(dhcp_lab, host)
    path = task(tmp_path)
    code, status, message = apply(dhcp_lab, path)
    assert (code, status) == (0, "confirmed"), f"{message}\n{log_tail(dhcp_lab)}"
    bridge_holds_the_leases(host, before)
    network = sh(dhcp_lab, HOST, "cat /etc/systemd/network/10-br0.network")
    assert "ClientIdentifier=duid" in network and "[DHCPv6]\nIAID=" in network
    again = fleetbr("-i", str(dhcp_lab.inventory_dir), "-l", HOST, "plan", str(path))
    assert isinstance(again[1], dict) and again[1][HOST]["status"] == "unchanged", again
    comes_back_confirmed(dhcp_lab, host, "networkd", before, path)


def test_a_power_cut_in_the_window_brings_the_host_back_as_before_with_its_leases(
    dhcp_lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(persisthelpers.HOSTS, "networkd", HOST)  # boothelpers' checks
    host = reset_host(dhcp_lab, HOST)
    before = settled_leases(dhcp_lab, host)
    problems = power_cut_in_the_window(
        dhcp_lab, host, "networkd", before, task(tmp_path, timeout=WINDOW)
    )
    assert not problems, "\n".join([*problems, log_tail(dhcp_lab)])


def test_another_address_on_the_bridge_is_rolled_back_and_the_nic_gets_its_leases_back(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    host = reset_host(dhcp_lab, HOST)
    before = settled_leases(dhcp_lab, host)
    code, status, message = apply(dhcp_lab, task(tmp_path, mac="02:aa:00:00:00:01"))
    assert status == "rolled_back", f"{code} {status} {message}\n{log_tail(dhcp_lab)}"
    nic_got_its_leases_back(dhcp_lab, host, before, message, "02:aa:00:00:00:01")


def test_a_bridge_without_the_nics_v6_lease_fails_the_confirm_and_is_rolled_back(
    dhcp_lab: Lab, tmp_path: Path
) -> None:
    """The server keys the IPv4 lease by the client id the bridge keeps, the IPv6 one by the MAC
    the task changes: the bridge keeps its IPv4 address (the host stays reachable) but gets no
    IPv6 lease, which the confirm finds; the rollback gives the NIC both leases back."""
    host = reset_host(dhcp_lab, HOST)
    before = settled_leases(dhcp_lab, host)
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
