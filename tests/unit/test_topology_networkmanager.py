"""NetworkManager writes the uplink topologies (issue 17 point 4): the keyfiles each topology's
plan writes; plan -> apply -> confirm -> plan again (unchanged) -> rollback -> restore check on
the kernel model (tests/unit/topology_sim.py) with the keyfiles modelled beside it and
NetworkManager's choice among them (the profile of a device with the highest
autoconnect-priority is the active one); what stays refused."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.backends import ini, registry
from fleetbr.facts.model import ConfigFile, DaemonView, HostFacts, InterfaceManager, Link
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


def bonded_nm_host() -> HostFacts:
    """eth0 and eth1 in a bond0 (the addresses on the bond)."""
    return bonded(nm_host())


@pytest.fixture
def bonds(monkeypatch: pytest.MonkeyPatch) -> None:
    """NetworkManager declares bond_create, as it will once the VM tier applies it (the writer
    is tested here; the declaration is withheld: docs/topologies.md)."""
    backend = type(registry.get("networkmanager"))
    monkeypatch.setattr(backend, "topologies", backend.topologies | {"bond_create"})


def kernel(before: HostFacts) -> FileKernel:
    return FileKernel.with_dir(before, ETC, with_nm)


def nm_round_trip(text: str, before: HostFacts | None = None) -> BridgePlan:
    before = before or nm_host()
    return round_trip(text, before, "networkmanager", kernel(before))


def nm_plan(text: str, before: HostFacts | None = None) -> BridgePlan:
    return plan_host(task(f"persist: networkmanager\n{text}"), before or nm_host(), min_timeout=5)


def test_a_bond_created_from_the_nic_is_a_bond_profile_with_slave_profiles(bonds: None) -> None:
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


def test_vlans_of_a_new_bond_have_the_bond_as_parent(bonds: None) -> None:
    files = written(nm_round_trip(BOND_VLAN))
    bond = files[f"{ETC}/bond0.nmconnection"]
    assert "master=" not in bond and "[ipv4]\nmethod=disabled\n" in bond
    assert "[vlan]\nid=20\nparent=bond0\n" in files[f"{ETC}/bond0.20.nmconnection"]
    assert "address1=198.51.100.13/24" in files[f"{ETC}/br20.nmconnection"]


def test_the_apply_brings_controllers_up_first_and_the_rollback_the_old_profiles(
    bonds: None,
) -> None:
    plan = nm_plan(BOND_TASK)
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert apply.startswith(
        f"{{ sync; nmcli connection reload && nmcli connection modify {ETH0_UUID} "
        f"connection.autoconnect no && nmcli connection modify {ETH1_UUID} "
        "connection.autoconnect no && nmcli -w 30 connection up "
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
        f"{{ sync; nmcli connection reload && nmcli -w 30 connection up {ETH0_UUID} >/dev/null "
        f"&& nmcli -w 30 connection up {ETH1_UUID} >/dev/null && "
    )
    assert "'^(eth0|eth1):connected$'" in reapply


@pytest.mark.parametrize(
    "text", [BOND_TASK, VLAN_AWARE, VLAN_BRIDGES], ids=["bond", "vlan-aware", "vlans"]
)
def test_every_prefix_of_a_persisted_topology_plan_rolls_back_exactly(
    text: str, bonds: None
) -> None:
    before = nm_host()
    plan = nm_plan(text, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


def test_creating_a_bond_is_not_declared_yet() -> None:
    plan = nm_plan(BOND_TASK)
    assert plan.refusal is not None and plan.steps == ()
    assert plan.refusal.startswith("persist: networkmanager cannot express creating a bond")


def test_an_existing_bond_as_the_port_stays_refused() -> None:
    plan = nm_plan("bridge: {nic: bond0}", bonded_nm_host())
    assert plan.refusal is not None and plan.steps == ()
    assert plan.refusal.startswith(
        "persist: networkmanager cannot express a bond as the port (nic: BOND) yet"
    )


def test_a_slave_with_no_active_profile_is_refused(bonds: None) -> None:
    base = nm_host()
    active = {k: v for k, v in base.daemons.nm_active.items() if k != "eth1"}
    before = dataclasses.replace(base, daemons=dataclasses.replace(base.daemons, nm_active=active))
    plan = nm_plan(BOND_TASK, before)
    assert plan.refusal == (
        "persist: networkmanager: eth1 has no active NetworkManager profile with a file"
    )
    assert plan.steps == ()


def test_a_source_profile_with_an_mtu_is_refused(bonds: None) -> None:
    base = nm_host()
    settings = {ETH0_UUID: {"802-3-ethernet.mtu": "9000"}}
    before = dataclasses.replace(base, daemons=dataclasses.replace(base.daemons, nm_dns=settings))
    plan = nm_plan(BOND_TASK, before)
    assert plan.refusal is not None and plan.steps == ()
    assert "eth0's profile has an MTU or routing rules" in plan.refusal
