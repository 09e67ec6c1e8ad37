"""``fleetbr demo --distro`` (README): one real systemd host per backend cut over with persist:
auto, the ifupdown host's libvirt guest moved onto br0 in the same transaction, a networkd host's
DHCP leases kept by br0 (``addresses: dhcp``), the NetworkManager host rebooted after confirm.
Run as the CLI, in a nested namespace of its own, and judged here, on its JSON document (never on
text layout): the demo reports what it saw and judges nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.helpers import REPO

BACKENDS = {"hv01": "ifupdown", "hv02": "networkd", "hv03": "netplan", "hv04": "networkmanager",
            "hv05": "networkd"}  # fmt: skip
SETTLED = {"ifupdown": "up", "networkd": "configured", "netplan": "configured",
           "networkmanager": "connected"}  # fmt: skip
GUEST_HOST = "hv01"
DHCP_HOST = "hv05"
# hv05's fixed leases (the lab's usual addresses of host 5: fleetbr.lab.model) and its NIC's MAC
LEASES = {4: "198.51.100.14/24", 6: "2001:db8:100::e/128"}
DHCP_MAC = "02:fb:00:00:00:05"


def guest_interfaces(host: dict[str, Any], when: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(domain, scope) -> the interface, from the demo's JSON (``when``: before, after_confirm)."""
    found = host[f"guests_{when}"]
    assert found is not None, host
    out = {(i["domain"], i["scope"]): i for i in found}
    assert len(out) == len(found), found  # one NIC per lab guest
    return out


def assert_guest_moved(host: dict[str, Any]) -> None:
    """The running guest g1 and the defined-only off1 were on the libvirt network lab (g1's tap on
    virbr-lab) and, after confirm, name br0 in every definition, g1's tap a port of br0."""
    before, after = guest_interfaces(host, "before"), guest_interfaces(host, "after_confirm")
    assert set(before) == set(after) == {("g1", "live"), ("g1", "config"), ("off1", "config")}
    for key, was in before.items():
        now = after[key]
        assert (was["type"], was["source"]) == ("network", "lab"), (key, was)
        assert (now["type"], now["source"]) == ("bridge", "br0"), (key, now)
        assert now["mac"] == was["mac"], (key, was, now)
    tap = before[("g1", "live")]["tap"]
    assert tap and before[("g1", "live")]["tap_bridge"] == "virbr-lab"
    assert after[("g1", "live")]["tap"] == tap, "the same tap: the guest was not restarted"
    assert after[("g1", "live")]["tap_bridge"] == "br0"
    assert host["after_confirm"]["ports"] == ["eth0", tap]


def assert_leases_kept(host: dict[str, Any]) -> None:
    """The NIC held its two fixed leases, from networkd; after confirm br0 holds the same two,
    under the same client id; the server's records name the same identity before and after (the
    IPv4 lease by the NIC's MAC with client id ff + IAID + DUID, RFC 4361: the IPv6 lease's IAID
    and DUID) and it handed each address out again, to the bridge's client."""
    before, after = host["leases_before"], host["leases_after_confirm"]
    assert [(v["dev"], v["family"], v["cidr"], v["client"]) for v in before] == [
        ("eth0", family, cidr, "networkd") for family, cidr in LEASES.items()
    ], before
    assert [(v["dev"], v["family"], v["cidr"], v["client"]) for v in after] == [
        ("br0", family, cidr, "networkd") for family, cidr in LEASES.items()
    ], after
    assert [v["client_id"] for v in after] == [v["client_id"] for v in before], (before, after)
    assert host["after_confirm"]["addresses"] == list(LEASES.values())
    was, now = host["server_leases_before"], host["server_leases_after_confirm"]
    assert [(r["family"], r["address"]) for r in was] == [
        (family, cidr.split("/")[0]) for family, cidr in LEASES.items()
    ], was
    identity = ("family", "address", "key", "client")
    assert [[r[k] for k in identity] for r in now] == [[r[k] for k in identity] for r in was]
    v4, v6 = was
    assert v4["key"] == DHCP_MAC
    client_id = "ff" + f"{int(v6['key']):08x}" + v6["client"].replace(":", "")
    assert v4["client"].replace(":", "") == client_id == before[0]["client_id"], (was, before)
    assert all(n["acks"] > w["acks"] >= 1 for w, n in zip(was, now, strict=True)), (was, now)


def test_distro_demo_persists_every_backend_moves_a_guest_survives_a_reboot(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "fleetbr", "--json", "demo",
         "--distro", "--dir", str(tmp_path / "lab")],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(done.stdout)
    hosts = doc["hosts"]
    assert {name: h["backend"] for name, h in hosts.items()} == BACKENDS
    assert doc["guest_host"] == GUEST_HOST
    assert_guest_moved(hosts[GUEST_HOST])
    assert doc["dhcp_host"] == DHCP_HOST
    assert_leases_kept(hosts[DHCP_HOST])
    for name, host in hosts.items():
        backend = host["backend"]
        assert host["status"] == "confirmed", (name, host)
        assert host["nic_manager_before"] == backend, (name, host)
        view = host["after_confirm"]
        if name != GUEST_HOST:
            assert view["ports"] == ["eth0"], (name, view)
            assert host["guests_before"] is host["guests_after_confirm"] is None, (name, host)
        if name != DHCP_HOST:
            assert host["leases_before"] is host["server_leases_after_confirm"] is None, name
        assert (view["manager"], view["state"]) == (backend, SETTLED[backend]), (name, view)
        assert view["mac"] == f"02:fb:00:00:00:{int(name[2:]):02x}", (name, view)
        assert len(view["addresses"]) == 2 and view["files"], (name, view)
        assert all(digest for _, digest in view["files"]), (name, view)
        assert host["check_after_confirm"] == "in_sync", (name, host)
    rebooted = hosts[doc["rebooted"]]
    assert rebooted["rebooted"] is True
    first, second = rebooted["boot_ids"]
    assert first and second and first != second
    assert rebooted["after_reboot"] == rebooted["after_confirm"]
    assert rebooted["check_after_reboot"] == "in_sync"
    assert sum(h["rebooted"] for h in hosts.values()) == 1
    assert hosts[doc["rebooted"]]["backend"] == "networkmanager"
    assert not (tmp_path / "lab" / "lab.json").exists(), "the demo takes its lab down"
