"""The lab's address plan: today's /24 plan for small labs, 198.18.0.0/15 beyond it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fleetbr.errors import LabUsageError
from fleetbr.lab.model import MAX_HOSTS, MAX_NETNS_HOSTS, Lab, check_prefix, plan

FORBIDDEN = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("fd00::/64"))
LAB_RANGES = tuple(
    ipaddress.ip_network(r)
    for r in ("198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15", "2001:db8::/32")
)


def _addresses(lab: Lab) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    cidrs = [lab.controller4, lab.controller6, lab.gateway4_cidr, lab.gateway6_cidr]
    cidrs += [a for h in lab.hosts for a in (h.addr4, h.addr6)]
    return [ipaddress.ip_interface(c) for c in cidrs]


def test_small_labs_keep_todays_plan(tmp_path: Path) -> None:
    lab = plan(tmp_path, MAX_HOSTS, "eth0", "fbr")
    assert (lab.hosts[0].addr4, lab.hosts[0].addr6) == ("198.51.100.10/24", "2001:db8:100::a/64")
    assert lab.hosts[-1].addr4 == "198.51.100.209/24"
    assert (lab.gateway4_cidr, lab.gateway6_cidr) == ("198.51.100.1/24", "2001:db8:100::1/64")
    assert (lab.controller4, lab.controller6) == ("198.51.100.2/24", "2001:db8:100::2/64")
    assert {h.mac for h in lab.hosts} == {""}, "small labs keep the kernel's random veth MACs"


@pytest.mark.parametrize("hosts", [MAX_HOSTS + 1, 1000, MAX_NETNS_HOSTS])
def test_large_labs_are_unique_on_one_link_inside_lab_ranges(tmp_path: Path, hosts: int) -> None:
    lab = plan(tmp_path, hosts, "eth0", "fbr")
    addresses = _addresses(lab)
    assert lab.controller4 == "198.18.0.2/15"
    assert lab.hosts[-1].addr4 == f"{ipaddress.ip_address('198.18.0.9') + hosts}/15"
    for family in (4, 6):
        same = [a for a in addresses if a.version == family]
        assert len({a.ip for a in same}) == len(same), "an address is used twice"
        assert len({a.network for a in same}) == 1, "every address must be on the switch's link"
    for addr in addresses:
        net = addr.network
        assert any(net.subnet_of(r) for r in LAB_RANGES if r.version == net.version)  # type: ignore[arg-type]
        assert not any(net.overlaps(f) for f in FORBIDDEN if f.version == net.version)
    assert len({h.switch_port for h in lab.hosts}) == hosts
    assert len({h.mac for h in lab.hosts}) == hosts, "every pinned neighbour needs its own MAC"
    assert max(len(h.switch_port) for h in lab.hosts) <= 15


def test_a_prefix_too_long_for_four_digit_host_numbers_is_refused() -> None:
    assert check_prefix("abcdefghi", 1000) == "abcdefghi"
    assert check_prefix("abcdefghij", 999) == "abcdefghij"
    with pytest.raises(LabUsageError, match="at most 9 characters"):
        check_prefix("abcdefghij", 1000)
