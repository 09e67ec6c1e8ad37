"""``addresses: dhcp`` (issue 17): the bridge keeps its uplink's DHCP leases by running the same
client identity on the same MAC. systemd-networkd writes it (the identity read from the lease,
pinned for DHCPv4 and DHCPv6); plan -> apply -> confirm -> plan again (unchanged) -> rollback ->
restore check on the model of networkd's client and a server with fixed leases
(tests/unit/dhcp_sim.py); the confirm's lease probe; what stays refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fleetbr.backends.dhcp_identity import ClientIdentity, parse_client_id
from fleetbr.facts.model import Address, HostFacts
from fleetbr.plan.diff import compare
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from tests.unit.dhcp_sim import DHCP_FILE, LEASE4, LEASE6, POOL, dhcp_nd_host, kernel
from tests.unit.test_topology_networkd import ETC, nd_plan, round_trip, written

TASK = "bridge: {addresses: dhcp}\n"
MAC_FILE = DHCP_FILE.replace("SendRelease=no\n", "ClientIdentifier=mac\n")


def test_the_bridge_keeps_the_nics_leases_and_the_rollback_gives_them_back() -> None:
    before, fixed = dhcp_nd_host()
    plan = round_trip(TASK, before, kernel=kernel(before, fixed))
    assert plan.expected.topology is not None
    assert plan.expected.topology.leases == (("br0", LEASE4), ("br0", LEASE6))
    assert plan.expected.addresses == (LEASE4, LEASE6)
    files = written(plan)
    assert "MACAddress=02:fb:00:00:00:02" in files[f"{ETC}/10-br0.netdev"]
    port = files[f"{ETC}/10-eth0.network"]
    assert "DHCP" not in port and "Bridge=br0" in port


def test_the_bridge_presents_the_identity_the_nics_lease_records() -> None:
    before, _ = dhcp_nd_host()
    network = written(nd_plan(TASK, before))[f"{ETC}/10-br0.network"]
    lease = before.topology.leases_of("eth0")[0]
    assert lease.client_id is not None and lease.client_id.startswith("ff")
    iaid = int(lease.client_id[2:10], 16)
    duid = ":".join(lease.client_id[i : i + 2] for i in range(14, len(lease.client_id), 2))
    assert "[Network]\nDHCP=yes\nIPv6AcceptRA=yes\nConfigureWithoutCarrier=yes\n" in network
    assert (
        f"[DHCPv4]\nSendRelease=no\nClientIdentifier=duid\nIAID={iaid}\nDUIDType=vendor\n"
        f"DUIDRawData={duid}\n\n[DHCPv6]\nIAID={iaid}\nDUIDType=vendor\nDUIDRawData={duid}\n"
    ) in network
    assert "Address=" not in network and "[Route]" not in network  # the lease gives them


def test_networkds_defaults_on_the_bridge_would_get_another_address() -> None:
    """The model is not blind: without the pinned identity the bridge's own IAID differs, and
    the server hands it a pool address, which the confirm finds."""
    before, fixed = dhcp_nd_host()
    plan = nd_plan(TASK, before)
    model = kernel(before, fixed)
    model.run(plan.steps)
    path = f"{ETC}/10-br0.network"
    model.etc[path] = model.etc[path].split("[DHCPv4]")[0]
    texts = [d.text for d in compare(plan.expected, model.facts())]
    assert f"br0 does not hold the DHCP lease {LEASE4} (its leases: {', '.join(POOL)})" in texts


def test_a_bridge_mac_other_than_the_nics_changes_a_mac_identity_the_confirm_finds_it() -> None:
    before, fixed = dhcp_nd_host(MAC_FILE)
    task = "bridge: {addresses: dhcp, mac: '02:aa:00:00:00:01'}\n"
    plan = nd_plan(task, before)
    assert plan.refusal is None, plan.refusal
    assert "ClientIdentifier=mac" in written(plan)[f"{ETC}/10-br0.network"]
    model = kernel(before, fixed).run(plan.steps)
    texts = [d.text for d in compare(plan.expected, model.facts())]
    assert f"br0 does not hold the DHCP lease {LEASE4} (its leases: {', '.join(POOL)})" in texts
    assert f"unexpected address {POOL[0]} on br0" in texts
    restored = model.run(plan.rollback).facts()
    assert restore_check(before, restored, touched_by(plan)).problems == []
    assert {lease.cidr for lease in restored.topology.leases_of("eth0")} == {LEASE4, LEASE6}


def test_a_mac_identity_with_the_nics_mac_keeps_the_lease() -> None:
    before, fixed = dhcp_nd_host(MAC_FILE)
    round_trip(TASK, before, kernel=kernel(before, fixed))


def test_the_same_address_put_there_statically_is_no_lease() -> None:
    """The runtime steps alone (no DHCP client on the bridge) leave the address, not the lease."""
    before, _ = dhcp_nd_host()
    plan = nd_plan(TASK, before)
    model = kernel(before, {})
    model.run(plan.steps)
    model.etc[f"{ETC}/10-br0.network"] = "[Match]\nName=br0\n\n[Network]\nDHCP=no\n"
    texts = [d.text for d in compare(plan.expected, model.facts())]
    assert f"br0 does not hold the DHCP lease {LEASE4} (its leases: none)" in texts
    assert f"br0 does not hold the DHCP lease {LEASE6} (its leases: none)" in texts


def _leases(**change: Any) -> HostFacts:
    """The DHCP host with each lease changed."""
    before, _ = dhcp_nd_host()
    leases = tuple(dataclasses.replace(x, **change) for x in before.topology.dhcp)
    return dataclasses.replace(before, topology=dataclasses.replace(before.topology, dhcp=leases))


@pytest.mark.parametrize(
    ("task", "change", "reason"),
    [
        (TASK, {"client": "dhclient"}, "is held by dhclient, not networkd"),
        (
            TASK,
            {"client_id": None},
            "the DHCP client identity of eth0 or br0 (/etc/systemd/network/10-eth0.network) "
            "was not read",
        ),
        (TASK, {"client_id": "00616263"}, "client id 00616263 is neither a MAC nor an IAID+DUID"),
        (
            "bridge: {addresses: dhcp, dhcp: {ipv6: false}}\n",
            {},
            "2001:db8:100::b/128 on eth0 is a DHCPv6 lease but the task turns DHCP for IPv6 off",
        ),
    ],
)
def test_a_lease_fleetbr_cannot_keep_is_refused_before_any_change(
    task: str, change: dict[str, object], reason: str
) -> None:
    plan = nd_plan(task, _leases(**change))
    assert plan.refusal is not None and reason in plan.refusal
    assert plan.steps == () and plan.rollback == ()


def test_a_nic_without_a_lease_or_with_static_addresses_beside_it_is_refused() -> None:
    before, _ = dhcp_nd_host()
    none = dataclasses.replace(before, topology=dataclasses.replace(before.topology, dhcp=()))
    refusal = nd_plan(TASK, none).refusal
    assert refusal is not None and "eth0 or br0 holds no DHCP lease to keep" in refusal
    extra = Address("eth0", 4, "203.0.113.5/24", "global")
    mixed = dataclasses.replace(before, addresses=(*before.addresses, extra))
    refusal = nd_plan(TASK, mixed).refusal
    assert refusal is not None and "also has static addresses (203.0.113.5/24)" in refusal


@pytest.mark.parametrize(
    ("persist", "reason"),
    [
        ("none", "the runtime tier (persist: none) cannot express DHCP addresses kept"),
        ("ifupdown", "persist: ifupdown cannot express DHCP addresses kept"),
    ],
)
def test_other_tiers_still_refuse_addresses_dhcp(persist: str, reason: str) -> None:
    from fleetbr.plan import plan_host
    from tests.unit.test_topology_plan import task

    before, _ = dhcp_nd_host()
    plan = plan_host(task(f"persist: {persist}\n{TASK}"), before, min_timeout=5)
    assert plan.refusal is not None and reason in plan.refusal


def test_dhcp_on_a_vlan_interface_is_refused_by_networkd() -> None:
    before, _ = dhcp_nd_host()
    text = (
        "bridge:\n  addresses: none\n  vlan_filtering: true\n  vids: [10]\n"
        "  vlan_interfaces:\n    - {vid: 10, addresses: dhcp}\n"
    )
    refusal = nd_plan(text, before).refusal
    assert refusal is not None and "addresses: dhcp on VLAN interface br0.10" in refusal


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("01:02:fb:00:00:00:02", ClientIdentity("mac", mac="02:fb:00:00:00:02")),
        (
            "ff8de4ea4a00020000ab11a96a5b7ceaf73041",
            ClientIdentity(
                "duid",
                iaid=0x8DE4EA4A,
                duid_type=2,
                duid_data="00:00:ab:11:a9:6a:5b:7c:ea:f7:30:41",
            ),
        ),
        ("FF:00:00:00:01:00:04", ClientIdentity("duid", iaid=1, duid_type=4)),
        ("00616263", None),
        ("01:02:fb", None),
        ("zz", None),
        (None, None),
    ],
)
def test_client_ids_parse_into_identities(text: str | None, want: ClientIdentity | None) -> None:
    assert parse_client_id(text) == want
