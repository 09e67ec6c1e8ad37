"""The distro demo's DHCP host (fleetbr.lab.demos.distro_dhcp) on recorded facts and recorded
dnsmasq files: its task, its leases as the host holds them and as the server recorded them, the
comparison it prints; the distro lab's per-host DHCP flags. The demo itself, and the judgement of
the leases kept: tests/integration/distro/test_demo_distro.py"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fleetbr.errors import FleetbrError, TaskError
from fleetbr.lab import dhcp
from fleetbr.lab.demos.distro_dhcp import (
    LeaseView,
    compared,
    dhcp_flags,
    hosts_with_dhcp,
    lease_lines,
    lease_view,
    with_dhcp,
)
from fleetbr.lab.distro.build import dhcp_for
from fleetbr.lab.model import plan
from tests.unit.dhcp_sim import LEASE4, LEASE6, dhcp_nd_host
from tests.unit.test_plan_support import task as lab_task

REPO = Path(__file__).resolve().parents[2]
CID = "ff:84:e0:da:2a:00:02:00:00:ab:11:b1:38:4d"
DUID = "00:02:00:00:ab:11:b1:38:4d"
LEASES = (
    f"1796583488 02:fb:00:00:00:01 198.51.100.10 hv01 {CID}\n"
    "duid 00:01:00:01:32:a8:5e:a3:8e:e8:76:43:5b:c0\n"
    f"1796583488 2229328426 2001:db8:100::a hv01 {DUID}\n"
    "1796583488 02:fb:00:00:00:02 198.51.100.11 hv02 *\n"
)
KEPT = "the same addresses and client identity as before; handed out again by the server"
LOG = (
    "dnsmasq-dhcp[1]: 21 DHCPACK(sw0) 198.51.100.10 02:fb:00:00:00:01 hv01\n"
    f"dnsmasq-dhcp[1]: 12 DHCPREPLY(sw0) 2001:db8:100::a {DUID} hv01\n"
    "dnsmasq-dhcp[1]: 22 DHCPACK(sw0) 198.51.100.10 02:fb:00:00:00:01 hv01\n"
    "dnsmasq-dhcp[1]: 23 DHCPACK(sw0) 198.51.100.100 02:fb:00:00:00:09 other\n"
)


def test_the_dhcp_hosts_task_is_the_demo_task_with_addresses_dhcp() -> None:
    """with_dhcp gives the very task the parser makes of the demo's task file with addresses:
    dhcp instead of move."""
    demo_task = (REPO / "tasks" / "bridge.yaml").read_text()
    text = demo_task.replace("addresses: move", "addresses: dhcp")
    assert text != demo_task
    assert with_dhcp(lab_task(demo_task)) == lab_task(text)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"state": "absent"}, "the DHCP host needs a task of one present bridge"),
        ({"vlan": 10}, "the DHCP host needs a task of one present bridge without topology keys"),
        ({"gateway4": "198.51.100.1"}, "a gateway with addresses: dhcp (the lease gives it)"),
    ],
)
def test_a_task_the_dhcp_host_cannot_take_is_a_task_error(
    edit: dict[str, object], message: str
) -> None:
    doc = yaml.safe_load((REPO / "tasks" / "bridge.yaml").read_text())
    doc["bridge"].update(edit)
    with pytest.raises(TaskError, match=re.escape(message)) as found:
        with_dhcp(lab_task(yaml.safe_dump(doc)))
    assert str(found.value).startswith("tasks/test.yaml: demo --distro: ")
    assert "\n" not in str(found.value)


def test_the_dhcp_host_is_one_networkd_host_after_the_others() -> None:
    hosts = hosts_with_dhcp(("ifupdown", "networkmanager"))
    assert hosts == ("ifupdown", "networkmanager", "networkd")
    assert dhcp_flags(hosts) == [False, False, True]


def test_the_distro_lab_takes_one_dhcp_flag_for_all_or_one_per_host() -> None:
    assert dhcp_for(True, 3) == [True, True, True]
    assert dhcp_for([False, True], 2) == [False, True]
    with pytest.raises(FleetbrError, match="3 DHCP flags given for 2 hosts"):
        dhcp_for([False, True, True], 2)


def test_the_leases_the_host_holds_come_from_its_facts_by_family() -> None:
    facts, _ = dhcp_nd_host()
    held = lease_view(facts, "eth0")
    assert [(v.dev, v.family, v.cidr, v.client) for v in held] == [
        ("eth0", 4, LEASE4, "networkd"),
        ("eth0", 6, LEASE6, "networkd"),
    ]
    assert held[0].client_id and held[0].client_id.startswith("ff")
    assert lease_view(facts, "br0") == ()


def test_the_servers_records_of_a_host_with_how_often_it_handed_each_out(tmp_path: Path) -> None:
    lab = plan(tmp_path, 2, "eth0", "fbrdh")
    (tmp_path / dhcp.LEASES).write_text(LEASES)
    (tmp_path / dhcp.LOG).write_text(LOG)
    assert dhcp.server_leases(lab, lab.hosts[0]) == (
        dhcp.ServerLease(4, "198.51.100.10", "02:fb:00:00:00:01", CID, 2),
        dhcp.ServerLease(6, "2001:db8:100::a", "2229328426", DUID, 1),
    )
    assert dhcp.server_leases(lab, lab.hosts[1]) == (
        dhcp.ServerLease(4, "198.51.100.11", "02:fb:00:00:00:02", "*", 0),
    )


def held_on(dev: str, client_id: str = "ff01") -> tuple[LeaseView, ...]:
    return (
        LeaseView(dev, 4, "198.51.100.10/24", "networkd", client_id),
        LeaseView(dev, 6, "2001:db8:100::a/128", "networkd", client_id),
    )


def recorded(acks: int, client: str = CID) -> tuple[dhcp.ServerLease, ...]:
    return (
        dhcp.ServerLease(4, "198.51.100.10", "02:fb:00:00:00:01", client, acks),
        dhcp.ServerLease(6, "2001:db8:100::a", "2229328426", DUID, acks),
    )


def test_the_comparison_says_whether_the_bridge_kept_the_leases_and_renewed_them() -> None:
    before = held_on("eth0")
    kept = compared((before, held_on("br0")), (recorded(1), recorded(2)))
    assert kept == KEPT
    other_id = compared((before, held_on("br0", "ff02")), (recorded(1), recorded(2)))
    assert other_id.startswith("NOT the same addresses")
    other_client = compared((before, held_on("br0")), (recorded(1), recorded(2, "ff:02")))
    assert other_client.startswith("NOT the same addresses")
    not_renewed = compared((before, held_on("br0")), (recorded(1), recorded(1)))
    assert not_renewed.endswith("NOT handed out again by the server")
    missing = compared((before, ()), (recorded(1), ()))
    assert missing.startswith("NOT the same") and missing.endswith(
        "NOT handed out again by the server"
    )
    nothing = compared(((), ()), ((), ()))
    assert nothing.startswith("NOT the same") and nothing.endswith(
        "NOT handed out again by the server"
    )


def test_the_lease_lines_name_each_lease_held_and_recorded() -> None:
    lines = lease_lines(held_on("br0"), recorded(3))
    assert lines[0] == "198.51.100.10/24 on br0 from networkd, client id ff01"
    assert lines[2] == (
        f"server: 198.51.100.10 for MAC 02:fb:00:00:00:01, client id {CID}, handed out 3 times"
    )
    assert lines[3] == (
        f"server: 2001:db8:100::a for IAID 2229328426, DUID {DUID}, handed out 3 times"
    )
    assert lease_lines((), recorded(1))[0].endswith("handed out 1 time")
    assert lease_lines((), ()) == ["no lease"]


def test_the_summary_line_ends_with_the_dhcp_hosts_comparison() -> None:
    from fleetbr.lab.demos.distro import DistroDemo, HostOutcome

    demo = DistroDemo(dhcp_host="hv05")
    demo.hosts["hv05"] = HostOutcome(
        "networkd", "eth0", status="confirmed", check_after_confirm="in_sync",
        leases_before=held_on("eth0"), leases_after_confirm=held_on("br0"),
        server_leases_before=recorded(1), server_leases_after_confirm=recorded(2),
    )  # fmt: skip
    assert demo.summary() == (
        f"demo: 1 hosts: 1 confirmed; check after confirm: 1 in_sync; hv05's DHCP leases on br0: "
        f"{KEPT}"
    )
    doc = demo.to_dict()
    assert doc["dhcp_host"] == "hv05"
    assert doc["hosts"]["hv05"]["server_leases_after_confirm"][1] == {
        "family": 6, "address": "2001:db8:100::a", "key": "2229328426", "client": DUID, "acks": 2,
    }  # fmt: skip
