"""Task files with uplink topologies (issue 17): bonds, VLAN uplinks, several bridges, VLAN-aware
bridges, host-only bridges, DHCP. Parsed into typed dataclasses; every problem one error line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, render_task
from fleetbr.changes.bridge.topology import BondSpec, DhcpSpec, Topology, VlanInterface
from fleetbr.errors import TaskError


def render(text: str, **data: Any) -> BridgeTask:
    host = {"name": "hv01", "data": {"nic": "eth0", **data}}
    return render_task(TaskTemplate("tasks/x.yaml", text), host)


def topology(text: str) -> Topology:
    task = render(text)
    assert task.topology is not None
    return task.topology


def refused(text: str) -> str:
    with pytest.raises(TaskError) as info:
        render(text)
    message = str(info.value)
    assert message.startswith("tasks/x.yaml: host hv01: "), message
    assert "\n" not in message
    return message.removeprefix("tasks/x.yaml: host hv01: ")


def test_a_plain_task_has_no_topology_and_keeps_its_meaning() -> None:
    task = render("bridge: {stp: true, addresses: [198.51.100.10/24]}")
    assert task.topology is None
    assert (task.bridge.nic, task.bridge.addresses) == ("eth0", ("198.51.100.10/24",))


def test_bond_created_in_the_task_is_the_uplink() -> None:
    topo = topology(
        "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad,\n"
        "         options: {miimon: 100, lacp_rate: fast, xmit_hash_policy: layer3+4}}\n"
    )
    (bridge,) = topo.bridges
    assert bridge.nic == "bond0" and bridge.port == "bond0"
    assert topo.bonds() == (
        BondSpec(
            "bond0",
            ("eth0", "eth1"),
            "802.3ad",
            (("lacp_rate", "fast"), ("miimon", 100), ("xmit_hash_policy", "layer3+4")),
        ),
    )
    assert topo.features() == {"bond_create"}


def test_an_existing_bond_is_a_feature_only_by_the_hosts_facts() -> None:
    topo = topology("bridge: {nic: bond0, vlan: 20}")
    assert topo.features() == {"vlan_uplink"}
    assert topo.features(frozenset({"bond0"})) == {"vlan_uplink", "bond_port"}
    assert topo.bridges[0].port == "bond0.20"


def test_several_bridges_over_vlans_of_one_bond() -> None:
    topo = topology(
        "bridges:\n"
        "  - {name: br20, vlan: 20, addresses: none,\n"
        "     bond: {name: bond0, slaves: [eth0, eth1], mode: active-backup,"
        " options: {primary: eth1}}}\n"
        "  - {name: br30, nic: bond0, vlan: 30, addresses: [203.0.113.5/24]}\n"
        "  - {name: br9, host_only: true}\n"
    )
    assert [b.port for b in topo.bridges] == ["bond0.20", "bond0.30", None]
    assert [b.addresses for b in topo.bridges] == [(), ("203.0.113.5/24",), ()]
    assert topo.features() == {"bond_create", "vlan_uplink", "multi_bridge", "host_only"}


def test_vlan_aware_bridge_with_management_on_a_vlan_interface() -> None:
    task = render(
        "bridge:\n  addresses: none\n  vlan_filtering: true\n  pvid: 1\n"
        "  vids: [10, '100-199', 11, '150-300']\n  vlan_interfaces: [{vid: 10}]\n"
    )
    assert task.topology is not None
    (bridge,) = task.topology.bridges
    assert bridge.vids == ((10, 11), (100, 300))
    assert (bridge.pvid, bridge.has_vid(250), bridge.has_vid(12)) == (1, True, False)
    assert bridge.vlan_interfaces == (VlanInterface(10, "br0.10", None),)
    assert task.topology.features() == {"vlan_filtering", "vlan_interface"}
    assert (task.bridge.name, task.bridge.nic) == ("br0", "eth0")


def test_dhcp_addresses_default_to_both_families() -> None:
    (bridge,) = topology("bridge: {addresses: dhcp}").bridges
    assert (bridge.addresses, bridge.dhcp) == ("dhcp", DhcpSpec(True, True))
    (v4,) = topology("bridge: {addresses: dhcp, dhcp: {ipv6: false}}").bridges
    assert v4.dhcp == DhcpSpec(True, False)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("bridge: {vlan: 0}", "bridge.vlan: 0 is outside 1..4094"),
        ("bridge: {vlan: 4095}", "bridge.vlan: 4095 is outside 1..4094"),
        ("bridge: {vlan: '20'}", "bridge.vlan: expected a whole number"),
        ("bridge: {nic: enp129s0f1np1, vlan: 100}", "interface enp129s0f1np1.100"),
        ("bridge: {bond: {name: bond0, slaves: [eth0], mode: lacp}}", "bridge.bond.mode: 'lacp'"),
        ("bridge: {bond: {name: bond0, slaves: []}}", "bridge.bond.slaves: expected a list"),
        ("bridge: {bond: {name: bond0, slaves: [eth0, eth0]}}", "a NIC is listed twice"),
        ("bridge: {bond: {name: bond0, slaves: [bond0]}}", "cannot be its own slave"),
        ("bridge: {bond: {slaves: [eth0]}}", "bridge.bond: name and slaves are required"),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], options: {max_bonds: 2}}}",
            "bridge.bond.options: unknown bond option max_bonds",
        ),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], options: {miimon: -1}}}",
            "bridge.bond.options.miimon: -1 is outside",
        ),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], mode: balance-rr,"
            " options: {xmit_hash_policy: layer2}}}",
            "xmit_hash_policy: only with mode",
        ),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], options: {primary: eth9}}}",
            "primary: eth9 is not one of the slaves",
        ),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], options: {miimon: 100, arp_interval: 5,"
            " arp_ip_target: [198.51.100.1]}}}",
            "miimon and arp_interval exclude each other",
        ),
        (
            "bridge: {bond: {name: b0, slaves: [eth0], options: {arp_interval: 5}}}",
            "arp_interval needs arp_ip_target",
        ),
        ("bridge: {bond: {name: b0, slaves: [eth0]}, nic: eth1}", "is not the bond b0"),
        ("bridge: {vids: [10]}", "bridge.vids: only with vlan_filtering: true"),
        ("bridge: {vlan_filtering: true, vids: ['20-10']}", "bridge.vids[0]: 20-10 is an empty"),
        ("bridge: {vlan_filtering: true, vids: [5000]}", "bridge.vids[0]: 5000 is outside"),
        ("bridge: {vlan_filtering: true, vlan: 20}", "a VLAN-aware bridge takes the trunk"),
        (
            "bridge: {vlan_filtering: true, vids: [10], vlan_interfaces: [{vid: 20}]}",
            "VLAN 20 is neither in vids nor the pvid",
        ),
        (
            "bridge: {vlan_filtering: true, vids: [10], vlan_interfaces: [{vid: 10}]}",
            "only one can take the uplink's addresses",
        ),
        ("bridge: {host_only: true, nic: eth0}", "a host-only bridge has no nic"),
        ("bridge: {addresses: dhcp, gateway4: 198.51.100.1}", "a gateway with addresses: dhcp"),
        ("bridge: {dhcp: {ipv4: true}}", "bridge.dhcp: only with addresses: dhcp"),
        ("bridge: {addresses: dhcp, dhcp: {ipv4: false, ipv6: false}}", "at least one of"),
        ("bridge: {vlan: 20, state: absent}", "bridge.state: only present"),
        ("bridge: {vlan: 20, routes: [{to: default, via: 198.51.100.1}]}", "bridge.routes: not"),
        ("bridge: {vlan: 20}\nbridges: [{vlan: 30}]", "bridge, bridges: use one of them"),
        ("bridges: []", "bridges: expected a list of bridge mappings"),
        (
            "bridges: [{name: br0, nic: eth0}, {name: br1, nic: eth0}]",
            "bridges[1]: eth0 is already the port of bridge br0",
        ),
        ("bridges: [{name: br0, nic: eth0}, {name: br0, nic: eth1}]", "br0 is listed twice"),
        (
            "bridges: [{name: br0, nic: eth0}, {name: br1, nic: eth0, vlan: 5}]",
            "bridge it VLAN-aware",
        ),
        (
            "bridges: [{bond: {name: bond0, slaves: [eth0, eth1]}}, {name: br1, nic: eth1}]",
            "bridge br1 uses eth1, a slave of bond bond0",
        ),
        (
            "bridges: [{name: br0, bond: {name: bond0, slaves: [eth0]}},"
            " {name: br1, vlan: 3, bond: {name: bond0, slaves: [eth1]}}]",
            "bond bond0 is declared twice, differently",
        ),
        ("bridges: [{name: br0, nic: br1}, {name: br1, host_only: true}]", "uses the bridge br1"),
        ("bridge: {vlan: 20, guests_x: 1}", "unknown key(s) guests_x"),
    ],
)
def test_bad_topologies_are_refused_with_one_line(text: str, error: str) -> None:
    assert error in refused(text)


def test_guests_are_not_yet_combined_with_a_topology() -> None:
    assert "guests: not yet with a topology" in refused(
        "bridge: {vlan: 20}\nguests: {move: all, from: default}"
    )


def test_the_same_bond_may_be_named_by_several_bridges() -> None:
    bond = "{name: bond0, slaves: [eth0, eth1], mode: balance-xor}"
    topo = topology(
        f"bridges:\n  - {{name: br1, vlan: 1, bond: {bond}}}\n"
        f"  - {{name: br2, vlan: 2, bond: {bond}}}\n"
    )
    assert len(topo.bonds()) == 1


def test_every_yaml_example_of_docs_topologies_is_a_valid_topology() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "topologies.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```$", doc, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 5
    for block in blocks:
        assert topology(block).bridges


def test_an_address_error_names_the_vlan_interface() -> None:
    message = refused(
        "bridge: {addresses: none, vlan_filtering: true, vids: [10],"
        " vlan_interfaces: [{vid: 10, addresses: [nope]}]}"
    )
    assert message.startswith("bridge.vlan_interfaces[0].addresses[0]: 'nope' is not")
