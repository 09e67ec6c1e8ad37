"""Topology facts: bonds, VLAN devices, the bridge VLAN table and DHCP leases, parsed from
hand-written iproute2 JSON (tests/data/facts/make_topology.py: this kernel has no bonding)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import FactsError
from fleetbr.facts.model import Daemons, InterfaceManager
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.parse_topology import parse_bonds, parse_dhcp, parse_vlan_table, parse_vlans
from fleetbr.facts.script import facts_script
from fleetbr.facts.topology import BondSlave, PortVlan, VlanDevice

DATA = Path(__file__).resolve().parents[1] / "data" / "facts"


def facts_text(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def test_bond_mode_options_slaves_and_partner() -> None:
    facts = parse_facts(facts_text("topology_bond_vlan"))
    bond = facts.topology.bond("bond0")
    assert bond is not None
    assert (bond.mode, bond.slave_names, bond.partner_mac) == (
        "802.3ad",
        ("eth0", "eth1"),
        "52:54:00:aa:bb:cc",
    )
    # iproute2 says ad_lacp_rate; the task (and the facts) say lacp_rate
    assert (bond.option("lacp_rate"), bond.option("miimon"), bond.option("use_carrier")) == (
        "fast",
        100,
        True,
    )
    assert bond.slaves[1] == BondSlave(
        "eth1",
        "ACTIVE",
        "UP",
        "52:54:00:12:34:57",
        ("active", "aggregating", "in_sync", "collecting", "distributing"),
    )
    assert facts.link("bond0") is not None and facts.bridge("br0") is not None


def test_active_backup_bond_reports_its_active_slave() -> None:
    links = [
        {
            "ifname": "bond1",
            "linkinfo": {
                "info_kind": "bond",
                "info_data": {"mode": "active-backup", "active_slave": "eth3", "primary": "eth3"},
            },
        },
        {
            "ifname": "eth3",
            "master": "bond1",
            "linkinfo": {"info_slave_kind": "bond", "info_slave_data": {"state": "BACKUP"}},
        },
    ]
    (bond,) = parse_bonds(links)
    assert (bond.active_slave, bond.option("primary")) == ("eth3", "eth3")
    assert bond.slaves == (BondSlave("eth3", "BACKUP", "unknown"),)


def test_vlan_devices_with_parent_and_protocol() -> None:
    facts = parse_facts(facts_text("topology_bond_vlan"))
    assert facts.topology.vlans == (
        VlanDevice("br0.10", 10, "br0", "802.1Q"),
        VlanDevice("eth2.20", 20, "eth2", "802.1ad"),
    )
    assert facts.topology.vlan_filtering == ("br0",)
    assert facts.topology.default_pvid("br0") == 1
    assert parse_facts(facts_text("bridged")).topology.default_pvid("br0") is None  # not reported


def test_a_vlan_without_an_id_is_an_error() -> None:
    with pytest.raises(FactsError, match="has no valid id"):
        parse_vlans([{"ifname": "x.1", "linkinfo": {"info_kind": "vlan", "info_data": {}}}])


def test_bridge_vlan_table_in_both_json_formats() -> None:
    new = [{"ifname": "eth0", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]},
                                        {"vlan": 100, "vlanEnd": 110}]}]  # fmt: skip
    old = {"eth0": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]},
                    {"vlan": 100, "vlanEnd": 110}]}  # fmt: skip
    want = (PortVlan("eth0", 1, 1, True, True), PortVlan("eth0", 100, 110))
    assert parse_vlan_table(json.dumps(new)) == want
    assert parse_vlan_table(json.dumps(old)) == want
    assert parse_vlan_table("") == ()


@pytest.mark.parametrize(
    "text", ["[{]", '[{"ifname": "eth0"}]', '[{"ifname": "a;b", "vlans": []}]']
)
def test_a_broken_vlan_table_is_an_error_naming_the_section(text: str) -> None:
    with pytest.raises(FactsError, match="bridge_vlans"):
        parse_vlan_table(text)


def test_a_failed_vlan_table_is_unreported_with_a_warning() -> None:
    text = facts_text("topology_bond_vlan").replace(
        "@@fleetbr-section dhcp", "@@fleetbr-failed 255\n@@fleetbr-section dhcp"
    )
    facts = parse_facts(text)
    assert facts.topology.vlan_table is None
    assert any("bridge_vlans" in w for w in facts.extra["warnings"])


def test_older_facts_have_empty_topology_sections() -> None:
    facts = parse_facts(facts_text("plain"))
    topo = facts.topology
    assert (topo.bonds, topo.vlans, topo.vlan_table, topo.dhcp) == ((), (), None, ())


def test_dhcp_leases_with_client_expiry_and_identity() -> None:
    facts = parse_facts(facts_text("topology_bond_vlan"))
    v4, v6 = facts.topology.leases_of("eth2.20")
    assert (v4.cidr, v4.client, v4.expires_in, v4.client_id) == (
        "203.0.113.40/24",
        "dhclient",
        3412,
        "1:52:54:0:12:34:58",
    )
    assert (v6.family, v6.cidr, v6.expires_in) == (6, "2001:db8:20::40/128", 7000)
    # the SLAAC /64 is no lease; static addresses are none either
    assert len(facts.topology.dhcp) == 2
    assert facts.topology.dhcp_clients == ("dhclient",)


def _addr(dev: str, index: int) -> list[dict[str, object]]:
    info = {"family": "inet", "local": "198.51.100.7", "prefixlen": 24, "scope": "global",
            "dynamic": True, "valid_life_time": 100}  # fmt: skip
    return [{"ifname": dev, "ifindex": index, "addr_info": [info]}]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_networkd_lease_by_ifindex_and_nm_lease_by_file_name() -> None:
    networkd = [f"networkd 4 {_b64('ADDRESS=198.51.100.7 CLIENTID=01525400123456')}"]
    (lease,), _ = parse_dhcp(networkd, _addr("eth0", 4), Daemons())
    assert (lease.client, lease.client_id) == ("networkd", "01525400123456")
    nm = [f"nm internal-0b5c2d55-3e09-4c7b-a1a1-5bfa3d1f0d1e-eth0 {_b64('CLIENTID=ab')}"]
    (lease,), _ = parse_dhcp(nm, _addr("eth0", 4), Daemons())
    assert (lease.client, lease.client_id) == ("networkmanager", "ab")


def test_lease_client_falls_back_to_the_interfaces_manager() -> None:
    daemons = Daemons(interfaces={"eth0": InterfaceManager("eth0", "networkmanager", "up", ())})
    (lease,), _ = parse_dhcp([], _addr("eth0", 2), daemons)
    assert lease.client == "networkmanager"
    (lease,), _ = parse_dhcp([], _addr("eth0", 2), Daemons())
    assert lease.client == "unknown"
    (lease,), clients = parse_dhcp([f"proc dhcpcd {_b64('dhcpcd -q eth0')}"], _addr("eth0", 2),
                                   Daemons())  # fmt: skip
    assert (lease.client, clients) == ("dhcpcd", ("dhcpcd",))


@pytest.mark.parametrize("line", ["bogus x y", "proc", "proc dhclient !!notbase64"])
def test_bad_dhcp_lines_are_errors(line: str) -> None:
    with pytest.raises(FactsError, match="section dhcp"):
        parse_dhcp([line], [], Daemons())


@pytest.mark.lab
def test_the_real_script_reports_empty_topology_sections_in_a_fresh_namespace() -> None:
    """Today's netns lab (no bonding, 8021q or VLAN filtering in this kernel): the sections are
    there and empty, never an error."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    setup = (
        "ip link set lo up && ip link add brx type bridge && ip link add vx type veth peer "
        "name vy && ip link set vx master brx && exec sh -s"
    )
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", setup],
        input=facts_script(),
        text=True,
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert "@@fleetbr-section dhcp" in done.stdout
    topo = parse_facts(done.stdout).topology
    assert (topo.bonds, topo.vlans, topo.dhcp) == ((), (), ())
    if shutil.which("bridge"):
        assert topo.vlan_table is not None  # [] without VLAN support, entries with it
        assert {e.dev for e in topo.vlan_table} <= {"brx", "vx"}
