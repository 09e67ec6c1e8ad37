"""NetworkManager name servers follow the addresses: from the NIC's active profile to the bridge's
profile (and back on unbridge); anything that is not an address or a domain name is refused."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends.model import BackendRefusal, BridgeConfig
from fleetbr.backends.networkmanager.backend import bridge_profile, name_servers
from fleetbr.facts.model import Daemons, HostFacts
from fleetbr.facts.parse_daemons import parse_daemons
from tests.unit.test_plan_support import facts

UUID = "5e7d0be0-333a-52c4-a634-696a36e68dd6"
CONFIG = BridgeConfig("br0", "eth0", "02:fb:00:00:00:04", False, 4, ("198.51.100.13/24",), ())


def with_dns(values: dict[str, str]) -> HostFacts:
    daemons = Daemons(nm_active={"eth0": (UUID, "eth0")}, nm_dns={UUID: values})
    return dataclasses.replace(facts(), daemons=daemons)


def test_nm_dns_lines_are_parsed_per_profile() -> None:
    lines = [
        f"nm-dns {UUID} ipv4.dns:198.51.100.53,198.51.100.54",
        f"nm-dns {UUID} ipv4.dns-search:lab.example",
        f"nm-dns {UUID} ipv6.dns:",
        f"nm-dns {UUID} connection.id:ignored",
    ]
    parsed = parse_daemons(lines, (), [])
    assert parsed.nm_dns == {
        UUID: {"ipv4.dns": "198.51.100.53,198.51.100.54", "ipv4.dns-search": "lab.example"}
    }


def test_name_servers_reach_the_bridge_profile() -> None:
    dns = name_servers(with_dns({"ipv4.dns": "198.51.100.53,198.51.100.54",
                                 "ipv4.dns-search": "lab.example,b.example"}), "eth0")  # fmt: skip
    text = bridge_profile(CONFIG, "11111111-2222-4333-8444-555555555555", dns)
    assert "dns=198.51.100.53;198.51.100.54;\n" in text
    assert "dns-search=lab.example;b.example;\n" in text
    assert text.index("dns=") > text.index("[ipv4]")


@pytest.mark.parametrize(
    "values",
    [
        {"ipv4.dns": "198.51.100.53\n[connection]\nautoconnect=false"},
        {"ipv4.dns": "$(reboot)"},
        {"ipv4.dns-search": "lab.example\nmethod=disabled"},
        {"ipv6.dns-search": "a b"},
    ],
)
def test_hostile_name_server_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(BackendRefusal, match="eth0's profile"):
        name_servers(with_dns(values), "eth0")


def test_no_active_profile_means_no_name_servers() -> None:
    assert name_servers(facts(), "eth0") == {}
