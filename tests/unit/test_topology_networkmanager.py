"""NetworkManager writes the uplink topologies (issue 17 point 4): the keyfiles each topology's
plan writes; plan -> apply -> confirm -> plan again (unchanged) -> rollback -> restore check on
the kernel model (tests/unit/topology_sim.py) with the keyfiles modelled beside it and
NetworkManager's choice among them (the profile of a device with the highest
autoconnect-priority is the active one); what stays refused."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends import ini
from fleetbr.facts.model import (
    Address,
    ConfigFile,
    DaemonView,
    HostFacts,
    InterfaceManager,
    Link,
    Route,
)
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from fleetbr.plan.shell import step_command
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_topology_networkd import (
    BOND_TASK,
    BOND_VLAN,
    VLAN_AWARE,
    VLAN_BRIDGES,
    FileKernel,
    round_trip,
    written,
)
from tests.unit.test_topology_plan import task
from tests.unit.topology_sim import bonded

# nmcli waits as long as the transaction script lets it (tx_common.sh.j2, tx_apply.sh.j2)
NMW = 'nmcli -w "${FLEETBR_WAIT:-30}"'

ETC = "/etc/NetworkManager/system-connections"
MAC0 = "02:fb:00:00:00:04"
MAC1 = "02:fb:00:00:00:05"
ETH0_UUID = "5e7d0be0-333a-52c4-a634-696a36e68dd6"
ETH1_UUID = "7a3c9e1f-0b2d-4c5e-8f6a-1b2c3d4e5f60"


def _profile(uuid: str, dev: str) -> str:
    return (
        f"[connection]\nid={dev}\nuuid={uuid}\ntype=ethernet\ninterface-name={dev}\n\n"
        "[ipv4]\nmethod=manual\n"
    )


def _keys(text: str) -> dict[str, str]:
    return {k: v for _, lines in ini.sections(text) for k, v in ini.values(lines)}


def _nm_managers(
    base: HostFacts, contents: dict[str, str]
) -> tuple[dict[str, InterfaceManager], dict[str, tuple[str, str]]]:
    """Each link's active profile: of the keyfiles naming it, the highest autoconnect-priority
    (NetworkManager's choice at boot; fleetbr's apply brings exactly those up)."""
    managers = {k: v for k, v in base.daemons.interfaces.items() if v.manager is None}
    active = {k: v for k, v in base.daemons.nm_active.items() if k == "lo"}
    for link in base.links:
        found = [
            (int(_keys(t).get("autoconnect-priority", "0")), p)
            for p, t in contents.items()
            if _keys(t).get("interface-name") == link.name
        ]
        if not found:
            continue
        path = max(found, key=lambda f: f[0])[1]
        keys = _keys(contents[path])
        files = (ConfigFile(path, sha256(contents[path])),)
        view = DaemonView("networkmanager", "connected", files, claims=True)
        managers[link.name] = InterfaceManager(link.name, "networkmanager", "connected", files,
                                               (view,))  # fmt: skip
        active[link.name] = (keys["uuid"], keys["id"])
    return managers, active


def with_nm(base: HostFacts, contents: dict[str, str]) -> HostFacts:
    """``base`` with these keyfiles and NetworkManager's view of its links from them."""
    others = {p: t for p, t in base.daemons.contents.items() if not p.startswith(ETC)}
    every = {**others, **contents}
    managers, active = _nm_managers(base, contents)
    daemons = dataclasses.replace(
        base.daemons,
        contents=every,
        files={
            **{p: s for p, s in base.daemons.files.items() if not p.startswith(ETC)},
            **{p: sha256(t) for p, t in every.items()},
        },
        interfaces=managers,
        nm_active=active,
    )
    return dataclasses.replace(base, daemons=daemons)


def nm_host() -> HostFacts:
    """The distro lab's NetworkManager host (eth0 with the addresses, its profile) plus an idle
    eth1 with a profile of its own."""
    base = distro_facts("networkmanager")
    base = dataclasses.replace(
        base,
        links=(*base.links, Link("eth1", "ether", MAC1, 1500, "UP", True, None)),
        routes=tuple(r for r in base.routes if r.protocol != "kernel"),
    )
    return with_nm(
        base,
        {
            f"{ETC}/eth0.nmconnection": _profile(ETH0_UUID, "eth0"),
            f"{ETC}/eth1.nmconnection": _profile(ETH1_UUID, "eth1"),
        },
    )


def kernel(before: HostFacts) -> FileKernel:
    return FileKernel.with_dir(before, ETC, with_nm)


def nm_round_trip(text: str, before: HostFacts | None = None) -> BridgePlan:
    before = before or nm_host()
    return round_trip(text, before, "networkmanager", kernel(before))


def nm_plan(text: str, before: HostFacts | None = None) -> BridgePlan:
    return plan_host(task(f"persist: networkmanager\n{text}"), before or nm_host(), min_timeout=5)


def test_a_bond_created_from_the_nic_is_a_bond_profile_with_slave_profiles() -> None:
    plan = nm_round_trip(BOND_TASK)
    files = written(plan)
    assert sorted(files) == [
        f"{ETC}/bond0-slave-eth0.nmconnection",
        f"{ETC}/bond0-slave-eth1.nmconnection",
        f"{ETC}/bond0.nmconnection",
        f"{ETC}/br0.nmconnection",
    ]
    bond = files[f"{ETC}/bond0.nmconnection"]
    assert "type=bond\ninterface-name=bond0\nmaster=" in bond and "slave-type=bridge" in bond
    assert "[bond]\nmode=active-backup\nmiimon=100\nprimary=eth1\n" in bond
    assert f"cloned-mac-address={MAC0.upper()}" in bond  # the first slave's, as at runtime
    assert "[ipv4]" not in bond  # a port has no addresses of its own
    slave = _keys(files[f"{ETC}/bond0-slave-eth0.nmconnection"])
    assert (slave["slave-type"], slave["master"]) == ("bond", _keys(bond)["uuid"])
    assert slave["autoconnect-priority"] == "10"  # above the old profile's at boot
    br0 = files[f"{ETC}/br0.nmconnection"]
    assert "address1=198.51.100.13/24\ngateway=198.51.100.1\nroute-metric=100\n" in br0
    assert all(s.args.get("mode") == "0600" for s in plan.steps if s.kind == "file_write"
               and str(s.args["path"]).startswith(ETC))  # fmt: skip
    guards = [s.args["path"] for s in plan.steps if s.kind == "file_guard"]
    assert guards == [f"{ETC}/eth0.nmconnection", f"{ETC}/eth1.nmconnection"]
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert apply.args["old_uuids"] == f"{ETH0_UUID} {ETH1_UUID}"
    assert apply.args["links"] == "br0 bond0 eth0 eth1"
    assert plan.expected.managers == dict.fromkeys(("br0", "bond0", "eth0", "eth1"),
                                                   "networkmanager")  # fmt: skip


def test_a_vlan_aware_bridge_filters_with_its_table_and_br0_10_holds_the_addresses() -> None:
    files = written(nm_round_trip(VLAN_AWARE))
    bridge = files[f"{ETC}/br0.nmconnection"]
    assert "vlan-filtering=true\nvlan-default-pvid=0\nvlans=10\n" in bridge
    assert "[ipv4]\nmethod=disabled\n" in bridge
    port = files[f"{ETC}/br0-port-eth0.nmconnection"]
    assert port.endswith("[bridge-port]\nvlans=10,100-199,1 pvid untagged\n")
    vif = files[f"{ETC}/br0.10.nmconnection"]
    assert "type=vlan" in vif and "[vlan]\nid=10\nparent=br0\n" in vif
    assert "address1=198.51.100.13/24" in vif and "gateway=198.51.100.1" in vif


def test_vlan_bridges_and_a_host_only_bridge_leave_the_parents_profile_alone() -> None:
    plan = nm_round_trip(VLAN_BRIDGES)
    files = written(plan)
    assert f"{ETC}/eth0.nmconnection" not in files
    assert [s for s in plan.steps if s.kind == "file_guard"] == []
    vlan = files[f"{ETC}/eth0.20.nmconnection"]
    assert "[vlan]\nid=20\nparent=eth0\n" in vlan and "slave-type=bridge" in vlan
    assert "cloned-mac-address" not in files[f"{ETC}/br9.nmconnection"]  # host-only
    assert "address1=198.18.0.1/24" in files[f"{ETC}/br9.nmconnection"]
    assert "[ipv4]\nmethod=disabled\n" in files[f"{ETC}/br30.nmconnection"]
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert "old_uuids" not in apply.args and "prior_links" not in apply.args


def test_vlans_of_a_new_bond_have_the_bond_as_parent() -> None:
    files = written(nm_round_trip(BOND_VLAN))
    bond = files[f"{ETC}/bond0.nmconnection"]
    assert "master=" not in bond and "[ipv4]\nmethod=disabled\n" in bond
    assert "[vlan]\nid=20\nparent=bond0\n" in files[f"{ETC}/bond0.20.nmconnection"]
    assert "address1=198.51.100.13/24" in files[f"{ETC}/br20.nmconnection"]


def test_the_apply_brings_controllers_up_first_and_the_rollback_the_old_profiles() -> None:
    plan = nm_plan(BOND_TASK)
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert apply.startswith(
        f"{{ sync; nmcli connection reload && nmcli connection modify {ETH0_UUID} "
        f"connection.autoconnect no && nmcli connection modify {ETH1_UUID} "
        'connection.autoconnect no && nmcli -w "${FLEETBR_WAIT:-30}" connection up '
    )
    ups = [w for w in apply.split(" && ") if "connection up" in w]
    files = written(plan)
    roles = [next(p for p, t in files.items() if f"\nuuid={w.split()[-2]}\n" in t) for w in ups]
    assert roles == [f"{ETC}/br0.nmconnection", f"{ETC}/bond0.nmconnection",
                     f"{ETC}/bond0-slave-eth0.nmconnection",
                     f"{ETC}/bond0-slave-eth1.nmconnection"]  # fmt: skip
    assert "grep -cE '^(br0|bond0|eth0|eth1):connected$')\" -ge 4" in apply
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert reapply.startswith(
        "{ sync; nmcli connection reload "
        '&& { nmcli -w "${FLEETBR_WAIT:-30}" device disconnect eth1 >/dev/null 2>&1 || :; } '
        '&& { nmcli -w "${FLEETBR_WAIT:-30}" device disconnect eth0 >/dev/null 2>&1 || :; } '
        f"&& {NMW} connection up {ETH0_UUID} >/dev/null "
        f"&& {NMW} connection up {ETH1_UUID} >/dev/null && "
    )
    assert "'^(eth0|eth1):connected$'" in reapply


def _with_link_local(before: HostFacts, dev: str) -> HostFacts:
    ll = Address(dev, 6, "fe80::fb:ff:fe01:1/64", "link")
    route = Route(6, "fe80::/64", dev, metric=256, protocol="kernel")
    return dataclasses.replace(
        before, addresses=(*before.addresses, ll), routes=(*before.routes, route)
    )


def test_the_rollback_brings_the_old_profiles_up_in_the_order_of_their_metrics() -> None:
    """NetworkManager gives a profile with no route-metric its device type's metric bumped
    past what other devices reserved (found on the VM tier: eth0 came back with 101..103): the
    re-apply disconnects every prior link (releasing their reservations), then brings the old
    profiles up, the device whose routes had the lowest metric first, whatever the order of
    the slaves; IPv6 goes on again on each link that had an IPv6 address (eth1's link-local
    only: its old profile says ipv6.method=ignore, which leaves NM's disable_ipv6=1)."""
    before = _with_link_local(nm_host(), "eth1")
    plan = nm_plan(BOND_TASK.replace("[eth0, eth1]", "[eth1, eth0]"), before)
    assert plan.refusal is None, plan.refusal
    reapply = next(s for s in plan.rollback if s.kind == "backend_reapply")
    assert reapply.args["prior_links"] == "eth1 eth0"
    assert reapply.args["reapply_uuids"] == f"{ETH0_UUID} {ETH1_UUID}"  # eth0: metric 100
    assert reapply.args["ipv6_links"] == "eth1 eth0"
    words = step_command(reapply).split(" && ")
    disconnects = [w for w in words if "device disconnect" in w]
    assert disconnects == [f"{{ {NMW} device disconnect {d} >/dev/null 2>&1 || :; }}"
                           for d in ("eth0", "eth1")]  # fmt: skip
    last_up = max(i for i, w in enumerate(words) if "connection up" in w)
    ipv6_on = [i for i, w in enumerate(words) if "disable_ipv6" in w]
    assert len(ipv6_on) == 2 and min(ipv6_on) > last_up
    assert "echo 0 > /proc/sys/net/ipv6/conf/eth1/disable_ipv6" in words[ipv6_on[0]]
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert "disable_ipv6" not in step_command(apply) and "disconnect" not in step_command(apply)


@pytest.mark.parametrize(
    "text", [BOND_TASK, VLAN_AWARE, VLAN_BRIDGES], ids=["bond", "vlan-aware", "vlans"]
)
def test_every_prefix_of_a_persisted_topology_plan_rolls_back_exactly(text: str) -> None:
    before = nm_host()
    plan = nm_plan(text, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


def test_the_slaves_of_a_new_bond_are_released_right_before_its_profile_comes_up() -> None:
    """NetworkManager 1.42 sets a bond's mode when it takes the bond over, which the kernel
    refuses while the bond has slaves (found on the VM tier): the runtime steps' slaves are
    released just before, and the slave profiles, which come up next, enslave them again."""
    plan = nm_plan(BOND_TASK)
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    bond_uuid = _keys(written(plan)[f"{ETC}/bond0.nmconnection"])["uuid"]
    assert (apply.args["new_bond_uuids"], apply.args["free_links"]) == (bond_uuid, "eth0 eth1")
    words = step_command(apply).split(" && ")
    up = words.index(f"{NMW} connection up {bond_uuid} >/dev/null")
    assert words[up - 2 : up] == ["ip link set dev eth0 nomaster", "ip link set dev eth1 nomaster"]
    assert all("connection up" in w for w in words[up + 1 : up + 3])  # the slave profiles
    assert sum("nomaster" in w for w in words) == 2
    existing = nm_plan(VLAN_BRIDGES)  # no new bond: nothing released
    apply = next(s for s in existing.steps if s.kind == "backend_apply")
    assert "nomaster" not in step_command(apply) and "free_links" not in apply.args


BOND_UUID = "3c1e5b7a-8d2f-4a6b-9c0d-1e2f3a4b5c6d"
BOND_PROFILE = (
    f"[connection]\nid=bond0\nuuid={BOND_UUID}\ntype=bond\ninterface-name=bond0\n\n"
    "[bond]\nmode=active-backup\nmiimon=100\n\n[ipv4]\nmethod=manual\n"
    "address1=198.51.100.13/24,198.51.100.1\n\n[ipv6]\nmethod=ignore\n"
)


def _slave_profile(uuid: str, dev: str) -> str:
    return (
        f"[connection]\nid=bond0-{dev}\nuuid={uuid}\ntype=ethernet\ninterface-name={dev}\n"
        "master=bond0\nslave-type=bond\nautoconnect-priority=5\n"
    )


def nm_bond_host() -> HostFacts:
    """eth0 and eth1 in bond0 (the addresses on the bond), all three NetworkManager's: the
    bond's profile with the addresses, a slave profile per NIC naming the bond."""
    return with_nm(
        bonded(nm_host()),
        {
            f"{ETC}/bond0.nmconnection": BOND_PROFILE,
            f"{ETC}/bond0-eth0.nmconnection": _slave_profile(ETH0_UUID, "eth0"),
            f"{ETC}/bond0-eth1.nmconnection": _slave_profile(ETH1_UUID, "eth1"),
        },
    )


def test_an_existing_bond_as_the_port_gets_fleetbrs_profiles_in_place_of_its_own() -> None:
    """The facts carry only the sha256 of an operator's keyfiles (they may hold secrets), so
    the bond's and its slaves' profiles are retired as a NIC's is, and fleetbr's bond profile
    (the bond's mode, options and MAC; a port of br0, named apart from an operator's
    bond0.nmconnection) and slave profiles take their place, brought up as for a new bond
    (its slaves released right before); plan again unchanged, rollback exact on the model,
    the old profiles brought up again the bond first (its routes)."""
    before = nm_bond_host()
    plan = nm_round_trip("bridge: {nic: bond0}", before)
    files = written(plan)
    names = ("bond0-slave-eth0", "bond0-slave-eth1", "br0", "fleetbr-bond0")
    assert sorted(files) == [f"{ETC}/{n}.nmconnection" for n in names]
    bond = _keys(files[f"{ETC}/fleetbr-bond0.nmconnection"])
    br0_uuid = _keys(files[f"{ETC}/br0.nmconnection"])["uuid"]
    assert (bond["master"], bond["slave-type"], bond["mode"], bond["miimon"]) == (
        br0_uuid, "bridge", "active-backup", "100")  # fmt: skip
    assert bond["cloned-mac-address"] == MAC0.upper() and "address1" not in bond
    assert "address1=198.51.100.13/24" in files[f"{ETC}/br0.nmconnection"]
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert apply.args["old_uuids"] == f"{BOND_UUID} {ETH0_UUID} {ETH1_UUID}"
    words = step_command(apply).split(" && ")
    up = words.index(f"{NMW} connection up {bond['uuid']} >/dev/null")
    assert words[up - 2 : up] == ["ip link set dev eth0 nomaster", "ip link set dev eth1 nomaster"]
    reapply = next(s for s in plan.rollback if s.kind == "backend_reapply")
    assert reapply.args["prior_links"] == "bond0 eth0 eth1"
    assert reapply.args["reapply_uuids"] == f"{BOND_UUID} {ETH0_UUID} {ETH1_UUID}"


def test_every_prefix_of_a_bond_port_plan_rolls_back_exactly() -> None:
    before = nm_bond_host()
    plan = nm_plan("bridge: {nic: bond0}", before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


def test_a_bond_port_whose_profile_is_not_in_etc_is_refused() -> None:
    base = nm_bond_host()
    active = {**base.daemons.nm_active}
    moved = dataclasses.replace(
        base.daemons.interfaces["bond0"],
        files=(ConfigFile("/run/NetworkManager/system-connections/bond0.nmconnection", "x"),),
    )
    daemons = dataclasses.replace(
        base.daemons, nm_active=active, interfaces={**base.daemons.interfaces, "bond0": moved}
    )
    plan = nm_plan("bridge: {nic: bond0}", dataclasses.replace(base, daemons=daemons))
    assert plan.refusal is not None and plan.steps == ()
    assert "the profile of bond0 lives in /run/NetworkManager" in plan.refusal


def test_a_slave_with_no_active_profile_is_refused() -> None:
    base = nm_host()
    active = {k: v for k, v in base.daemons.nm_active.items() if k != "eth1"}
    before = dataclasses.replace(base, daemons=dataclasses.replace(base.daemons, nm_active=active))
    plan = nm_plan(BOND_TASK, before)
    assert plan.refusal == (
        "persist: networkmanager: eth1 has no active NetworkManager profile with a file"
    )
    assert plan.steps == ()


def test_a_source_profile_with_an_mtu_is_refused() -> None:
    base = nm_host()
    settings = {ETH0_UUID: {"802-3-ethernet.mtu": "9000"}}
    before = dataclasses.replace(base, daemons=dataclasses.replace(base.daemons, nm_dns=settings))
    plan = nm_plan(BOND_TASK, before)
    assert plan.refusal is not None and plan.steps == ()
    assert "eth0's profile has an MTU or routing rules" in plan.refusal


def test_networkmanager_declares_every_topology_feature() -> None:
    """Its list is written out (the facts command must not import the change kinds) and must
    follow FEATURES when a feature is added."""
    from fleetbr.backends import registry
    from fleetbr.changes.bridge.topology import FEATURES

    assert registry.get("networkmanager").topologies == frozenset(FEATURES)
