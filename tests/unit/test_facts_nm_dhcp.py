"""The facts read the DHCP client identity NetworkManager's client presents on each device
(``nmcli -t -f DHCP4,DHCP6 device show DEV``, the facts script's ``nm-dhcp`` lines): the client
id, the DHCPv6 DUID and IAID, from output captured on the distro lab's NM DHCP host (NM 1.42.4,
``lab up --distro --dhcp --backend networkmanager``)."""

from __future__ import annotations

from pathlib import Path

from fleetbr.facts.model import NmDhcpIdentity
from fleetbr.facts.parse_daemons import parse_daemons

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "nmcli" / "dhcp-device-show-eth0.txt"
HOST_DUID = "00:04:f4:45:a8:7c:76:63:3a:d5:0a:b8:36:32:36:13:c2:eb"  # DUID-UUID, the machine id


def nm_lines(dev: str, text: str) -> list[str]:
    """The facts script's ``nm-dhcp`` lines of ``nmcli -t -f DHCP4,DHCP6 device show`` output."""
    return [f"nm-dhcp {dev} {line}" for line in text.splitlines() if line]


def test_the_facts_read_the_identity_nms_client_presents() -> None:
    parsed = parse_daemons(nm_lines("eth0", FIXTURE.read_text()), (), [])
    assert parsed.nm_dhcp == {
        "eth0": NmDhcpIdentity(client_id="01:02:fb:00:00:00:01", duid=HOST_DUID, iaid="2b:50:67:35")
    }


def test_an_identity_that_is_not_hex_bytes_is_not_read() -> None:
    lines = [
        "nm-dhcp eth0 DHCP4.OPTION[2]:dhcp_client_identifier = 01:02:fb:00:00:00:01\nx=1",
        "nm-dhcp eth0 DHCP6.OPTION[3]:iaid = 2b:50:67:3",
        "nm-dhcp eth1 DHCP6.OPTION[1]:dhcp6_client_id = 00:04;reboot",
        "nm-dhcp eth1 DHCP4.OPTION[1]:host_name = hv01",
    ]
    assert parse_daemons(lines, (), []).nm_dhcp == {}
