"""Runtime plans of topologies (persist: none): plan -> apply -> confirm -> rollback -> restore
check on a model of the kernel (tests/unit/topology_sim.py), plan again after the apply
(unchanged), and the refusals: a tier that cannot express a topology, a host that does not fit."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends import registry
from fleetbr.changes.bridge.drift import check_facts
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, render_task
from fleetbr.facts.model import Bridge, Daemons, DaemonView, HostFacts, InterfaceManager, Link
from fleetbr.facts.topology import (
    Bond,
    BondSlave,
    DhcpLease,
    PortVlan,
    TopologyFacts,
    VlanDevice,
)
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.desired import make_pin, read_holder_pin
from fleetbr.plan.diff import compare
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from fleetbr.plan.shell import step_command
from fleetbr.plan.topology import runtime
from fleetbr.report import Status
from tests.unit.test_plan_support import GW4, NIC_MAC, V4, V6, facts
from tests.unit.topology_sim import Kernel

MAC1 = "52:54:00:12:34:57"
ETH1 = Link("eth1", "ether", MAC1, 1500, "UP", True, None)


def host(**overrides: object) -> HostFacts:
    """eth0 with V4, V6 and default routes (no kernel routes: the model has none), eth1 idle."""
    base = facts()
    fields: dict[str, object] = {
        "links": (*base.links, ETH1),
        "routes": tuple(r for r in base.routes if r.protocol != "kernel"),
        **overrides,
    }
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def bonded_host() -> HostFacts:
    """eth0 and eth1 in an existing 802.3ad bond0 that carries the addresses."""
    base = host()
    links = (
        *(
            dataclasses.replace(k, master="bond0", mac=NIC_MAC) if k.name in ("eth0", "eth1") else k
            for k in base.links
        ),
        Link("bond0", "bond", NIC_MAC, 1500, "UP", True, None),
    )
    addresses = tuple(dataclasses.replace(a, dev="bond0") for a in base.addresses)
    routes = tuple(dataclasses.replace(r, dev="bond0") for r in base.routes)
    bond = Bond(
        "bond0",
        "802.3ad",
        (("miimon", 100),),
        (BondSlave("eth0", "ACTIVE", "UP", NIC_MAC), BondSlave("eth1", "ACTIVE", "UP", MAC1)),
    )
    return dataclasses.replace(
        base,
        links=links,
        addresses=addresses,
        routes=routes,
        topology=TopologyFacts(bonds=(bond,), vlan_table=()),
    )


def task(text: str) -> BridgeTask:
    return render_task(
        TaskTemplate("t.yaml", f"netfilter: keep\n{text}"),
        {"name": "hv01", "data": {"nic": "eth0"}},
    )


def plan(text: str, before: HostFacts) -> BridgePlan:
    return plan_host(task(text), before, min_timeout=5)


def round_trip(text: str, before: HostFacts) -> tuple[BridgePlan, HostFacts]:
    """Plan, apply (the confirm must find nothing), plan again (unchanged), roll back (the
    restore check must find nothing); returns the plan and the host as applied."""
    the_plan = plan(text, before)
    assert the_plan.refusal is None, the_plan.refusal
    kernel = Kernel.of(before).run(the_plan.steps)
    after = kernel.facts()
    assert [d.text for d in compare(the_plan.expected, after)] == []
    again = plan(text, after)
    assert (again.refusal, [s.description for s in again.steps]) == (None, [])
    restored = kernel.run(the_plan.rollback).facts()
    assert restore_check(before, restored, touched_by(the_plan)).problems == []
    return the_plan, after


BOND_TASK = (
    "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad,\n"
    "         options: {miimon: 100, lacp_rate: fast}}\n"
)


def test_bond_created_from_the_nic_and_bridged() -> None:
    the_plan, after = round_trip(BOND_TASK, host())
    bond = after.topology.bond("bond0")
    assert bond is not None and bond.slave_names == ("eth0", "eth1")
    assert (bond.mode, bond.option("lacp_rate")) == ("802.3ad", "fast")
    br0 = after.link("br0")
    assert br0 is not None and br0.mac == NIC_MAC  # the NIC's MAC, through the bond
    assert {a.cidr for a in after.addresses_of("br0")} == {V4, V6}
    assert after.bridge("br0") is not None and after.bridge("br0").ports == ("bond0",)  # type: ignore[union-attr]
    kinds = [s.kind for s in the_plan.steps]
    # addresses leave eth0 before it goes down into the bond (it would lose its IPv6 ones)
    assert kinds.index("addr_del") < kinds.index("bond_enslave") < kinds.index("link_master")


def _bond_mac_after_boot(after: HostFacts, mac: str) -> HostFacts:
    """``after`` as a boot may leave it: bond0 and its slaves on another MAC (udev's
    MACAddressPolicy=persistent won the race with the daemon), permanent MACs and br0's as
    they were."""
    links = tuple(
        dataclasses.replace(k, mac=mac) if k.name == "bond0" or k.master == "bond0" else k
        for k in after.links
    )
    return dataclasses.replace(after, links=links)


def test_a_bond_that_came_back_on_another_mac_does_not_move_the_bridges() -> None:
    _, after = round_trip(BOND_TASK, host())
    booted = _bond_mac_after_boot(after, "3e:11:22:33:44:55")
    again = plan(BOND_TASK, booted)
    assert (again.refusal, [s.description for s in again.steps]) == (None, [])
    assert check_facts(task(BOND_TASK), booted).status == Status.IN_SYNC


def test_rollback_order_brings_the_nic_back_before_its_addresses() -> None:
    the_plan = plan(BOND_TASK, host())
    kinds = [s.kind for s in the_plan.rollback]
    assert kinds.index("bond_release") < kinds.index("addr_add") < kinds.index("bond_del")


def test_an_existing_bond_is_the_port_and_stays_as_it_is() -> None:
    before = bonded_host()
    the_plan, after = round_trip("bridge: {nic: bond0}", before)
    assert not [s for s in the_plan.steps if s.kind.startswith("bond")]
    assert after.topology.bond("bond0") == before.topology.bond("bond0")
    br0 = after.link("br0")
    assert br0 is not None and br0.mac == NIC_MAC


def test_several_bridges_over_vlans_of_one_bond_and_a_host_only_bridge() -> None:
    text = (
        "bridges:\n"
        "  - {name: br20, nic: bond0, vlan: 20, addresses: [203.0.113.20/24]}\n"
        "  - {name: br30, nic: bond0, vlan: 30, addresses: none}\n"
        "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
    )
    the_plan, after = round_trip(text, bonded_host())
    assert [v.name for v in after.topology.vlans] == ["bond0.20", "bond0.30"]
    assert after.link("br9") is not None and after.bridge("br9").ports == ()  # type: ignore[union-attr]
    assert {a.cidr for a in after.addresses_of("br20")} == {"203.0.113.20/24"}
    assert len(the_plan.expected.more) == 2


NEW_BOND_VLANS = (
    "bridges:\n"
    "  - {name: br20, nic: bond0, vlan: 20, addresses: [203.0.113.20/24],\n"
    "     bond: {name: bond0, slaves: [eth0, eth1]}}\n"
    "  - {name: br30, nic: bond0, vlan: 30, addresses: none}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
)


def test_bridges_over_vlans_of_a_bond_the_task_creates_leave_the_addresses_on_the_bond() -> None:
    # was refused: "eth0 carries addresses ... and the task gives them to no interface of br30"
    the_plan, after = round_trip(NEW_BOND_VLANS, host())
    assert {a.cidr for a in after.addresses_of("bond0")} == {V4, V6}  # untagged, as on eth0
    assert {a.cidr for a in after.addresses_of("br20")} == {"203.0.113.20/24"}
    assert after.addresses_of("br30") == () and after.addresses_of("eth0") == ()
    assert {r.dev for r in after.routes if r.is_default} == {"bond0"}
    bond = after.topology.bond("bond0")
    assert bond is not None and bond.slave_names == ("eth0", "eth1")
    assert [v.name for v in after.topology.vlans] == ["bond0.20", "bond0.30"]
    kinds = [s.kind for s in the_plan.steps]
    assert kinds.index("addr_del") < kinds.index("bond_enslave")


def test_a_vlan_bridge_that_moves_them_takes_the_new_bonds_addresses() -> None:
    text = NEW_BOND_VLANS.replace("addresses: [203.0.113.20/24]", "addresses: move")
    _, after = round_trip(text, host())
    assert {a.cidr for a in after.addresses_of("br20")} == {V4, V6}
    assert after.addresses_of("bond0") == ()


def test_addresses_a_new_bond_would_really_drop_are_still_refused() -> None:
    text = "bridge: {bond: {name: bond0, slaves: [eth0, eth1]}, addresses: none}\n"
    the_plan = plan(text, host())
    assert the_plan.refusal is not None and "eth0 carries addresses" in the_plan.refusal
    assert the_plan.steps == ()


VLAN_AWARE = (
    "bridge:\n  addresses: none\n  vlan_filtering: true\n  vids: [10, '100-102']\n"
    "  vlan_interfaces: [{vid: 10}]\n"
)


def test_vlan_aware_bridge_with_the_management_address_on_br0_10() -> None:
    the_plan, after = round_trip(VLAN_AWARE, host())
    assert {a.cidr for a in after.addresses_of("br0.10")} == {V4, V6}
    assert after.addresses_of("br0") == ()
    table = {(e.dev, e.vid, e.vid_end, e.pvid, e.untagged) for e in after.topology.vlan_table or ()}
    assert table == {
        ("eth0", 10, 10, False, False),
        ("eth0", 100, 102, False, False),
        ("eth0", 1, 1, True, True),
        ("br0", 10, 10, False, False),
    }
    assert after.topology.vlan_filtering == ("br0",)
    commands = [step_command(s) for s in the_plan.steps]
    assert "ip link set dev br0 type bridge vlan_filtering 1 vlan_default_pvid 0" in commands
    assert "bridge vlan add dev eth0 vid 1 pvid untagged" in commands
    assert "bridge vlan add dev br0 vid 10 self" in commands


def test_management_moves_from_an_existing_nic_vlan_to_the_bridges_vlan_interface() -> None:
    base = host()
    vlan = Link("eth0.10", "vlan", NIC_MAC, 1500, "UP", True, None)
    before = dataclasses.replace(
        base,
        links=(*base.links, vlan),
        addresses=tuple(dataclasses.replace(a, dev="eth0.10") for a in base.addresses),
        routes=tuple(dataclasses.replace(r, dev="eth0.10") for r in base.routes),
        topology=TopologyFacts(vlans=(VlanDevice("eth0.10", 10, "eth0"),), vlan_table=()),
    )
    the_plan, after = round_trip(VLAN_AWARE, before)
    assert after.link("eth0.10") is None and {a.cidr for a in after.addresses_of("br0.10")} == {
        V4,
        V6,
    }
    assert "vlan_del" in [s.kind for s in the_plan.steps]


def test_the_confirm_sees_a_wrong_vlan_table_bond_option_and_missing_vlan() -> None:
    the_plan, after = round_trip(VLAN_AWARE, host())
    table = tuple(e for e in after.topology.vlan_table or () if e.vid != 100)
    broken = dataclasses.replace(
        after, topology=dataclasses.replace(after.topology, vlan_table=table, vlans=())
    )
    texts = [d.text for d in compare(the_plan.expected, broken)]
    assert "VLAN 100 on eth0 is absent, expected tagged" in texts
    assert "br0.10 is not VLAN 10 on br0 (absent)" in texts
    unreported = dataclasses.replace(
        after, topology=dataclasses.replace(after.topology, vlan_table=None)
    )
    assert any(
        "did not report its bridge VLAN table" in d.text
        for d in compare(the_plan.expected, unreported)
    )
    bond_plan, bonded = round_trip(BOND_TASK, host())
    bond = bonded.topology.bond("bond0")
    assert bond is not None
    slow = dataclasses.replace(bond, options=(("lacp_rate", "slow"), ("miimon", 100)))
    wrong = dataclasses.replace(
        bonded, topology=dataclasses.replace(bonded.topology, bonds=(slow,))
    )
    assert [d.text for d in compare(bond_plan.expected, wrong)] == [
        "bond bond0 lacp_rate is slow, expected fast"
    ]


def test_the_rollback_check_covers_bonds_vlans_and_vlan_tables() -> None:
    before = bonded_host()
    the_plan = plan("bridge: {nic: bond0, vlan_filtering: true, vids: [10]}", before)
    assert the_plan.refusal is None
    bond = before.topology.bond("bond0")
    assert bond is not None
    changed = dataclasses.replace(
        before,
        topology=dataclasses.replace(
            before.topology,
            bonds=(dataclasses.replace(bond, mode="active-backup", slaves=bond.slaves[:1]),),
            vlans=(VlanDevice("bond0.7", 7, "bond0"),),
            vlan_table=(PortVlan("bond0", 1, 1, True, True),),
        ),
    )
    problems = restore_check(before, changed, touched_by(the_plan)).problems
    assert "bond bond0 mode active-backup miimon=100 is new" in problems
    assert "bond bond0 slaves eth0 is new" in problems
    assert "bridge vlan bond0 1-1 pvid untagged is new" in problems
    # a VLAN device the plan does not name is reported, but not the rollback's fault
    check = restore_check(before, changed, touched_by(the_plan))
    assert "vlan bond0.7 id 7 on bond0 802.1Q is new" in check.unrelated


@pytest.mark.parametrize(
    ("text", "persist", "reason"),
    [
        (
            "bridge: {nic: eth0, vlan_filtering: true, vids: [10]}",
            "netplan",
            "persist: netplan cannot express a VLAN-aware bridge (vlan_filtering) yet",
        ),
        (
            "bridge: {nic: eth0, vlan_filtering: true, vids: [10]}",
            "ifupdown",
            "persist: ifupdown cannot express a VLAN-aware bridge (vlan_filtering) yet (use "
            "persist: none",
        ),
        (
            "bridge: {addresses: dhcp}",
            "none",
            "the runtime tier (persist: none) cannot express DHCP addresses kept with their "
            "client identity (addresses: dhcp) yet",
        ),
    ],
)
def test_a_tier_that_cannot_express_the_topology_refuses_before_any_change(
    text: str, persist: str, reason: str
) -> None:
    the_plan = plan(f"persist: {persist}\n{text}", host())
    assert the_plan.refusal is not None and reason in the_plan.refusal
    assert the_plan.steps == () and the_plan.rollback == ()


def test_persist_auto_follows_the_daemon_that_manages_the_nic() -> None:
    view = DaemonView("networkmanager", "connected", claims=True)
    manager = InterfaceManager("eth0", "networkmanager", "connected", (), (view,))
    before = host(daemons=Daemons(interfaces={"eth0": manager}))
    the_plan = plan(f"persist: auto\n{BOND_TASK}", before)
    # auto resolved to NetworkManager, which creates bonds: refused only as not installed here
    assert the_plan.refusal == "persist: networkmanager is not installed on the host"


def test_the_capability_is_the_backends_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = type(registry.get("networkd"))
    monkeypatch.setattr(backend, "topologies", frozenset({"bond_create"}))
    the_plan = plan(f"persist: networkd\n{BOND_TASK}", host())
    # past the capability check: now the backend's own refusal (networkd is not installed)
    assert the_plan.refusal is not None and "cannot express" not in the_plan.refusal


@pytest.mark.parametrize(
    ("text", "before", "reason"),
    [
        (
            "bridge: {bond: {name: bond0, slaves: [eth0, eth7]}}",
            host(),
            "NIC eth7 does not exist",
        ),
        (
            BOND_TASK.replace("802.3ad", "active-backup").replace(", lacp_rate: fast", ""),
            bonded_host(),
            "bond bond0 exists with mode 802.3ad",
        ),
        ("bridge: {nic: eth0, addresses: none}", host(), "eth0 carries addresses"),
        (
            "bridge: {host_only: true}",
            host(addresses=(), routes=()),
            "nothing would keep the host reachable",
        ),
    ],
)
def test_hosts_that_do_not_fit_are_refused(text: str, before: HostFacts, reason: str) -> None:
    the_plan = plan(text, before)
    assert the_plan.refusal is not None and reason in the_plan.refusal, the_plan.refusal
    assert the_plan.steps == ()


def test_a_name_taken_by_another_kind_of_link_is_refused() -> None:
    before = host()
    veth = Link("bond0", "veth", "52:54:00:aa:aa:aa", 1500, "UP", True, None)
    the_plan = plan(BOND_TASK, dataclasses.replace(before, links=(*before.links, veth)))
    assert the_plan.refusal == "the bond name bond0 is taken by a veth link"
    vlan = Link("eth0.20", "veth", "52:54:00:aa:aa:ab", 1500, "UP", True, None)
    the_plan = plan(
        "bridge: {vlan: 20, addresses: [203.0.113.2/24]}",
        dataclasses.replace(before, links=(*before.links, vlan)),
    )
    assert the_plan.refusal is not None
    assert "eth0.20 exists as a veth link, not VLAN 20 on eth0" in the_plan.refusal


def test_an_existing_bridge_gets_its_old_vlan_settings_back() -> None:
    base = host()
    bridge = Link("br0", "bridge", NIC_MAC, 1500, "UP", True, None)
    before = dataclasses.replace(
        base,
        links=(*base.links, bridge),
        bridges=(Bridge("br0", False, 4),),
        topology=TopologyFacts(vlan_table=(), default_pvids=(("br0", 5),)),
    )
    the_plan, after = round_trip(VLAN_AWARE, before)
    (setting,) = [s for s in the_plan.steps if s.kind == "bridge_vlan_set"]
    assert (setting.args["on"], setting.args["default_pvid"]) == (True, 0)
    assert setting.inverse is not None
    assert (setting.inverse.args["on"], setting.inverse.args["default_pvid"]) == (False, 5)
    assert after.topology.default_pvid("br0") == 0


def test_check_says_in_sync_after_the_apply_and_names_the_drift() -> None:
    the_plan, after = round_trip(VLAN_AWARE, host())
    assert check_facts(task(VLAN_AWARE), after).status == Status.IN_SYNC
    drifted = dataclasses.replace(
        after, topology=dataclasses.replace(after.topology, vlan_filtering=())
    )
    outcome = check_facts(task(VLAN_AWARE), drifted)
    assert outcome.status == Status.DRIFTED
    assert "bridge br0 VLAN filtering is off, expected on" in outcome.message
    assert "set VLAN filtering of br0 on (default pvid 0)" in outcome.repair
    del the_plan


def test_a_plain_task_on_a_bond_is_refused_by_a_backend_that_does_not_declare_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = plan("bridge: {nic: bond0}", bonded_host())
    assert runtime.refusal is None and runtime.expected.ports == ("bond0",)
    # every backend declares bond_port now: one that did not would be refused by the capability
    assert all("bond_port" in b.topologies for b in registry.backends())
    backend = type(registry.get("networkd"))
    monkeypatch.setattr(backend, "topologies", backend.topologies - {"bond_port"})
    persisted = plan("persist: networkd\nbridge: {nic: bond0}", bonded_host())
    assert persisted.refusal is not None
    assert persisted.refusal.startswith("persist: networkd cannot express a bond as the port")
    plain = plan("persist: networkd\nbridge: {nic: eth0}", host())
    assert plain.refusal != persisted.refusal


@pytest.mark.parametrize(
    ("text", "before"),
    [
        (BOND_TASK, host()),
        (VLAN_AWARE, host()),
        (
            "bridges:\n  - {name: br20, nic: bond0, vlan: 20, addresses: [203.0.113.20/24]}\n"
            "  - {name: br9, host_only: true}\n",
            bonded_host(),
        ),
    ],
    ids=["bond", "vlan-aware", "vlan-bridges"],
)
def test_every_prefix_of_a_topology_plan_rolls_back_exactly(text: str, before: HostFacts) -> None:
    """A step that fails anywhere leaves nothing behind: each prefix, then the whole rollback
    (whose inverses of steps that never ran are no-ops, as the macros are)."""
    the_plan = plan(text, before)
    assert len(the_plan.steps) > 5
    for k in range(1, len(the_plan.steps)):
        kernel = Kernel.of(before).run(the_plan.steps[:k])
        restored = kernel.run(the_plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(the_plan)).problems
        assert problems == [], f"after {k} steps ({the_plan.steps[k - 1].description})"


def test_a_rollback_that_leaves_the_bond_is_caught() -> None:
    before = host()
    the_plan = plan(BOND_TASK, before)
    kernel = Kernel.of(before).run(the_plan.steps)
    partial = [s for s in the_plan.rollback if s.kind not in ("bond_del", "bond_release")]
    problems = restore_check(before, kernel.run(partial).facts(), touched_by(the_plan)).problems
    assert "bond bond0 slaves eth0 eth1 is new" in problems
    assert any(p.startswith("bond bond0 mode 802.3ad lacp_rate=fast miimon=100") for p in problems)


def test_a_released_slave_gets_its_addrgenmode_back() -> None:
    """networkd's LinkLocalAddressing=no on a slave sets addrgenmode none and nothing resets it
    when the slave's file goes: the release step puts back what the facts read."""
    eth = {"eth0": "eui64", "eth1": "stable_secret"}
    before = host(
        links=tuple(
            dataclasses.replace(k, addrgenmode=eth.get(k.name, k.addrgenmode)) for k in host().links
        )
    )
    the_plan = plan(BOND_TASK, before)
    kernel = Kernel.of(before).run(the_plan.steps)
    for name in eth:  # what the daemon does to the slaves it takes
        kernel._set(name, addrgenmode="none")
    assert restore_check(before, kernel.facts(), touched_by(the_plan)).problems != []
    restored = kernel.run(the_plan.rollback).facts()
    assert restore_check(before, restored, touched_by(the_plan)).problems == []
    assert {k.name: k.addrgenmode for k in restored.links if k.name in eth} == eth
    release = [step_command(s) for s in the_plan.rollback if s.kind == "bond_release"]
    assert any("ip link set dev eth1 addrgenmode stable_secret && ip link set dev eth1 up" in c
               for c in release)  # fmt: skip


def test_a_release_without_a_known_addrgenmode_leaves_it() -> None:
    the_plan = plan(BOND_TASK, host())
    release = [step_command(s) for s in the_plan.rollback if s.kind == "bond_release"]
    assert release and not any("addrgenmode" in c for c in release)


def test_a_restore_check_names_a_changed_addrgenmode() -> None:
    before = host(links=tuple(dataclasses.replace(k, addrgenmode="eui64") for k in host().links))
    after = dataclasses.replace(
        before,
        links=tuple(
            dataclasses.replace(k, addrgenmode="none") if k.name == "eth1" else k
            for k in before.links
        ),
    )
    the_plan = plan(BOND_TASK, before)
    problems = restore_check(before, after, touched_by(the_plan)).problems
    assert any("link eth1" in p and "addrgenmode" in p for p in problems), problems


def test_a_vlan_the_task_does_not_list_is_removed_and_the_rollback_puts_it_back() -> None:
    _, applied = round_trip(VLAN_AWARE, host())
    table = (*(applied.topology.vlan_table or ()), PortVlan("eth0", 999, 999))
    extra = dataclasses.replace(
        applied, topology=dataclasses.replace(applied.topology, vlan_table=table)
    )
    repair, _ = round_trip(VLAN_AWARE, extra)
    assert [s.description for s in repair.steps] == ["remove VLAN 999 from port eth0"]
    assert [s.description for s in repair.rollback] == ["add VLAN 999 to port eth0"]


@pytest.mark.parametrize("persist", ["none", "networkd"])
def test_a_one_nic_task_on_a_nic_whose_address_is_a_dhcp_lease_is_refused(persist: str) -> None:
    lease = DhcpLease(dev="eth0", family=4, cidr=V4, client="dhclient", expires_in=3000)
    leased = host(topology=dataclasses.replace(TopologyFacts(), dhcp=(lease,)))
    the_plan = plan(f"persist: {persist}\nbridge: {{name: br0, nic: eth0}}", leased)
    assert the_plan.refusal is not None
    assert f"eth0's address {V4} is a DHCP lease (dhclient)" in the_plan.refusal
    assert the_plan.steps == () and the_plan.rollback == ()
    elsewhere = dataclasses.replace(lease, dev="eth1")  # a lease on another NIC: no matter
    other = host(topology=dataclasses.replace(TopologyFacts(), dhcp=(elsewhere,)))
    assert plan("persist: none\nbridge: {name: br0, nic: eth0}", other).refusal is None


def _managed_on_eth0_10() -> HostFacts:
    """eth0.10 holds V4, V6 and the default routes; eth0 and eth1 hold none."""
    base = host()
    vlan = Link("eth0.10", "vlan", NIC_MAC, 1500, "UP", True, None)
    return dataclasses.replace(
        base,
        links=(*base.links, vlan),
        addresses=tuple(dataclasses.replace(a, dev="eth0.10") for a in base.addresses),
        routes=tuple(dataclasses.replace(r, dev="eth0.10") for r in base.routes),
        topology=TopologyFacts(vlans=(VlanDevice("eth0.10", 10, "eth0"),), vlan_table=()),
    )


NEW_BOND_VLAN_AWARE = (
    "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1]}\n  addresses: none\n"
    "  vlan_filtering: true\n  vids: [10, 20]\n  vlan_interfaces: [VIF]\n"
)


def test_a_new_bond_whose_slave_keeps_an_addressed_vlan_device_is_refused() -> None:
    """The trap of the VM tier: eth0.10 keeps the management addresses on eth0, now a slave of
    the new bond, because no bridge takes them (br0.20 lists addresses of its own). Linux still
    delivers VLAN 10 to it through the active slave, so the apply would be confirmed with the
    host managed on a device that goes silent when eth1 becomes active: refused, nothing
    planned. Moving them (br0.10 takes eth0.10's, br0.20 takes the only VLAN device's) is fine."""
    before = _managed_on_eth0_10()
    kept = plan(NEW_BOND_VLAN_AWARE.replace("VIF", "{vid: 20, addresses: [203.0.113.20/24]}"),
                before)  # fmt: skip
    assert kept.refusal is not None and kept.steps == () and kept.rollback == ()
    assert "eth0.10 (VLAN 10 on eth0) holds " in kept.refusal
    assert "eth0 becomes a slave of the new bond bond0, but no bridge takes these addresses" in (
        kept.refusal)  # fmt: skip
    for moving in ("{vid: 10}", "{vid: 20}"):
        _, after = round_trip(NEW_BOND_VLAN_AWARE.replace("VIF", moving), before)
        assert after.link("eth0.10") is None, moving
    existing = plan(NEW_BOND_VLAN_AWARE.replace("VIF", "{vid: 20, addresses: [203.0.113.20/24]}")
                    .replace("bond: {name: bond0, slaves: [eth0, eth1]}", "nic: eth1"),
                    before)  # fmt: skip
    assert existing.refusal is None or "no bridge takes these" not in existing.refusal


TWO_BRIDGES = (
    "bridges:\n  - {name: br0, nic: eth0, addresses: move}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
)


def _records(the_plan: BridgePlan) -> list[str]:
    return [s.description for s in the_plan.steps if s.kind == "file_write"]


@pytest.mark.parametrize(
    ("text", "before", "holders"),
    [
        (TWO_BRIDGES, host(), ["br0"]),
        (VLAN_AWARE, host(), ["br0.10"]),
        (NEW_BOND_VLANS.replace("addresses: [203.0.113.20/24]", "addresses: move"), host(),
         ["br20"]),
        (NEW_BOND_VLANS, host(), ["bond0"]),  # the new bond keeps its slave's addresses
    ],
)  # fmt: skip
def test_the_runtime_tier_records_what_move_took_for_each_holder(
    text: str, before: HostFacts, holders: list[str]
) -> None:
    the_plan, after = round_trip(text, before)
    assert _records(the_plan) == [f"write /run/fleetbr/pins/{h}.json" for h in holders]
    for holder in holders:
        pin = read_holder_pin(after, holder, "eth0")
        assert pin is not None and pin.nic == "eth0"
        assert set(pin.cidrs) == {V4, V6}
        assert {str(r.gateway) for r in pin.routes if r.is_default} == {GW4, "2001:db8:100::1"}


def test_lists_and_a_persisting_tier_record_nothing() -> None:
    listed = TWO_BRIDGES.replace("addresses: move", f"addresses: [{V4}, {V6}]")
    assert _records(round_trip(listed, host())[0]) == []
    pin = make_pin("br0", "eth0", host(), cidrs=[V4], labels={}, routes=[])
    persisted = task(f"persist: networkd\n{TWO_BRIDGES}")
    assert persisted.topology is not None
    assert runtime._records(persisted, persisted.topology, host(), [pin], ({}, None)) == []
    runtime_tier = task(f"persist: none\n{TWO_BRIDGES}")
    assert runtime_tier.topology is not None
    files: dict[str, str] = {}
    written = runtime._records(runtime_tier, runtime_tier.topology, host(), [pin], (files, None))
    assert [s.description for s in written] == ["write /run/fleetbr/pins/br0.json"]
    assert list(files) == ["/run/fleetbr/pins/br0.json"]  # the confirm checks its hash


MOVED_BY_NEW_BOND = {"br0": TWO_BRIDGES, "br0.10": VLAN_AWARE, "bond0": NEW_BOND_VLANS}


@pytest.mark.parametrize("holder", list(MOVED_BY_NEW_BOND))
def test_an_address_lost_from_a_holder_is_drift_and_the_repair_puts_it_back(holder: str) -> None:
    text = MOVED_BY_NEW_BOND[holder]
    _, after = round_trip(text, host())
    lost = dataclasses.replace(
        after, addresses=tuple(a for a in after.addresses if (a.dev, a.cidr) != (holder, V6))
    )
    outcome = check_facts(task(text), lost)
    assert outcome.status == Status.DRIFTED, outcome.message
    assert V6 in outcome.message
    repair = plan(text, lost)
    assert repair.refusal is None and _records(repair) == []
    commands = [step_command(s) for s in repair.steps]
    assert any(c.startswith("ip -6 addr") and V6 in c and holder in c for c in commands), commands
    repaired = Kernel.of(lost).run(repair.steps).facts()
    assert {a.cidr for a in repaired.addresses_of(holder)} == {V4, V6}
    assert [d.text for d in compare(repair.expected, repaired)] == []


def test_a_host_bridged_without_a_record_gets_only_the_record() -> None:
    """Bridged by a fleetbr that wrote no records: the next apply writes what the holder has."""
    _, after = round_trip(TWO_BRIDGES, host())
    unrecorded = dataclasses.replace(after, pins={}, managed_files={})
    again = plan(TWO_BRIDGES, unrecorded)
    assert [s.description for s in again.steps] == ["write /run/fleetbr/pins/br0.json"]
    recorded = Kernel.of(unrecorded).run(again.steps).facts()
    pin = read_holder_pin(recorded, "br0", "eth0")
    assert pin is not None and set(pin.cidrs) == {V4, V6}
    assert plan(TWO_BRIDGES, recorded).steps == ()


def test_a_record_of_another_source_that_still_holds_addresses_is_ignored() -> None:
    _, after = round_trip(TWO_BRIDGES, host())
    assert read_holder_pin(after, "br0", "eth1") is not None  # eth1 holds no address
    moved_back = dataclasses.replace(
        after,
        addresses=(*after.addresses, dataclasses.replace(after.addresses_of("br0")[0], dev="eth1")),
    )
    assert read_holder_pin(moved_back, "br0", "eth1") is None
    assert read_holder_pin(after, "br9", "eth0") is None  # no record of br9
