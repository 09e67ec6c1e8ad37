"""netplan writes the uplink topologies it can express (issue 17 point 4): the YAML each plan
writes; plan -> apply -> confirm -> plan again (unchanged) -> rollback -> restore check on the
kernel model with the netplan file modelled (tests/unit/test_topology_networkd.py's FileKernel);
what netplan 0.106 cannot express stays refused, with the reason."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fleetbr.backends.netplan import view
from fleetbr.facts.model import ConfigFile, DaemonView, HostFacts, InterfaceManager, Link
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.shell import step_command
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_topology_networkd import (
    BOND_TASK,
    BOND_VLAN,
    MAC1,
    VLAN_AWARE,
    FileKernel,
    round_trip,
)
from tests.unit.test_topology_plan import task
from tests.unit.topology_sim import bonded

YAML = "/etc/netplan/01-netcfg.yaml"
MAC0 = "02:fb:00:00:00:03"


def with_netplan(base: HostFacts, contents: dict[str, str]) -> HostFacts:
    """``base`` with these /etc/netplan files, and netplan's view of the links they define."""
    others = {p: t for p, t in base.daemons.contents.items() if not p.startswith("/etc/netplan")}
    every = {**others, **contents}
    defined = view.netplan_interfaces(contents, base.links, [])
    managers = {}
    for link in base.links:
        paths = view.files_of(defined, link.name)
        if paths:
            files = tuple(ConfigFile(p, sha256(every[p])) for p in paths)
            views = (DaemonView("netplan", "configured", files, claims=True),)
            managers[link.name] = InterfaceManager(link.name, "netplan", "configured", files, views)
    daemons = dataclasses.replace(
        base.daemons,
        contents=every,
        files={p: sha256(t) for p, t in every.items()},
        netplan=defined,
        interfaces=managers,
    )
    return dataclasses.replace(base, daemons=daemons)


def np_host() -> HostFacts:
    """The distro lab's netplan host (eth0 with the addresses) plus an idle eth1 in its file."""
    base = distro_facts("netplan")
    base = dataclasses.replace(
        base,
        links=(*base.links, Link("eth1", "ether", MAC1, 1500, "UP", True, None)),
        routes=tuple(r for r in base.routes if r.protocol != "kernel"),
    )
    text = base.daemons.contents[YAML] + "    eth1:\n      accept-ra: false\n"
    return with_netplan(base, {YAML: text})


def bonded_np_host() -> HostFacts:
    """eth0 and eth1 in a bond0 its netplan file defines (the addresses on the bond)."""
    base = np_host()
    base = bonded(base)
    text = (
        "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    eth0: {}\n    eth1: {}\n"
        "  bonds:\n    bond0:\n      interfaces: [eth0, eth1]\n"
        "      parameters: {mode: active-backup, mii-monitor-interval: 100}\n"
        '      addresses: ["198.51.100.12/24", "2001:db8:100::c/64"]\n'
        "      routes:\n        - {to: default, via: 198.51.100.1}\n"
        '        - {to: default, via: "2001:db8:100::1"}\n'
    )
    return with_netplan(base, {YAML: text})


def kernel(before: HostFacts) -> FileKernel:
    return FileKernel.with_dir(before, "/etc/netplan", with_netplan)


def network(plan: BridgePlan) -> dict[str, object]:
    """The ``network:`` mapping of the YAML the plan writes."""
    (text,) = [str(s.args["content"]) for s in plan.steps if s.kind == "file_write"]
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return dict(doc["network"])


def test_a_bond_created_from_the_nic_is_a_bonds_entry_and_the_nics_lose_their_addresses() -> None:
    before = np_host()
    plan = round_trip(BOND_TASK, before, "netplan", kernel(before))
    net = network(plan)
    assert net["bonds"] == {
        "bond0": {
            "interfaces": ["eth0", "eth1"],
            "macaddress": MAC0,
            "accept-ra": False,
            "link-local": [],
            "parameters": {"mode": "active-backup", "mii-monitor-interval": 100, "primary": "eth1"},
        }
    }
    eth0 = net["ethernets"]["eth0"]  # type: ignore[index]
    assert "addresses" not in eth0 and eth0["dhcp4"] is False and eth0["link-local"] == []
    br0 = net["bridges"]["br0"]  # type: ignore[index]
    assert br0["interfaces"] == ["bond0"] and br0["macaddress"] == MAC0
    assert br0["addresses"] == ["198.51.100.12/24", "2001:db8:100::c/64"]
    assert br0["parameters"] == {"stp": False, "forward-delay": 4}
    assert plan.expected.managers == dict.fromkeys(("bond0", "eth0", "eth1", "br0"), "netplan")


def test_vlan_bridges_and_a_host_only_bridge() -> None:
    before = np_host()
    text = (
        "bridges:\n  - {name: br20, nic: eth1, vlan: 20, addresses: [203.0.113.20/24]}\n"
        "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
    )
    net = network(round_trip(text, before, "netplan", kernel(before)))
    assert net["vlans"] == {
        "eth1.20": {"id": 20, "link": "eth1", "accept-ra": False, "link-local": []}
    }
    bridges = net["bridges"]
    assert bridges["br20"]["interfaces"] == ["eth1.20"]  # type: ignore[index]
    assert bridges["br9"]["interfaces"] == []  # type: ignore[index]
    assert bridges["br9"]["addresses"] == ["198.18.0.1/24"]  # type: ignore[index]
    eth0 = net["ethernets"]["eth0"]  # type: ignore[index]
    assert "198.51.100.12/24" in eth0["addresses"]  # a VLAN's parent keeps its own addresses


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (VLAN_AWARE, "persist: netplan cannot express a VLAN-aware bridge (vlan_filtering)"),
        (
            BOND_TASK.replace("primary: eth1", "tlb_dynamic_lb: false").replace(
                "active-backup", "balance-tlb"
            ),
            "bond bond0: option tlb_dynamic_lb has no netplan bond parameter",
        ),
    ],
    ids=["vlan-aware", "tlb-dynamic-lb"],
)
def test_what_netplan_cannot_write_is_refused_before_any_change(text: str, reason: str) -> None:
    plan = plan_host(task(f"persist: netplan\n{text}"), np_host(), min_timeout=5)
    assert plan.refusal is not None and reason in plan.refusal, plan.refusal
    assert plan.steps == ()


def test_the_apply_waits_for_every_interface_of_the_topology() -> None:
    plan = plan_host(task(f"persist: netplan\n{BOND_TASK}"), np_host(), min_timeout=5)
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    # the hold of networkd's (the renderer's) on the new bond's slaves goes first: netplan
    # apply would keep its drop-ins
    hold = "/run/systemd/network/*.network.d/99-fleetbr-hold.conf"
    assert apply.startswith("{ sync; { fbr_rc=0; for fbr_f in " + hold)
    assert apply.index(hold) < apply.index("netplan apply && ")
    (held,) = [s for s in plan.steps if s.kind == "backend_hold"]
    assert held.args["hold_links"] == "eth0"
    assert "networkctl list --no-legend --no-pager -- bond0 eth0 eth1 br0 " in apply
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert "networkctl list --no-legend --no-pager -- eth0 eth1 " in reapply


def test_the_rollback_deletes_a_new_bond_before_networkd_reloads() -> None:
    """netplan renders for networkd, so its release has networkd's bond trap: reloaded with a
    new bond still up, eth0 leaves it while eth1 stays and eth0's link-local address fails DAD
    (tests/unit/test_topology_networkd.py). The bond goes first; an existing one stays."""
    plan = plan_host(task(f"persist: netplan\n{BOND_TASK}"), np_host(), min_timeout=5)
    release = next(s for s in plan.rollback if s.kind == "backend_release")
    command = step_command(release)
    assert release.args["new_bond_links"] == "bond0" and "for fbr_b in bond0;" in command
    assert command.index('ip link del dev "$fbr_b"') < command.index("netplan generate")
    assert command.index("netplan generate") < command.index("networkctl reload")
    kinds = [s.kind for s in plan.rollback]
    assert kinds.index("file_restore") < kinds.index("backend_release") < kinds.index("bond_del")
    existing = plan_host(task("persist: netplan\nbridge: {nic: bond0}"), bonded_np_host(),
                         min_timeout=5)  # fmt: skip
    kept = next(s for s in existing.rollback if s.kind == "backend_release")
    assert kept.args.get("new_bond_links") is None
    assert step_command(kept) == "{ netplan generate && networkctl reload; }"


def test_the_networkmanager_renderer_is_refused_for_a_topology() -> None:
    base = np_host()
    text = base.daemons.contents[YAML].replace("renderer: networkd", "renderer: NetworkManager")
    before = with_netplan(base, {YAML: text})
    before = dataclasses.replace(
        before, daemons=dataclasses.replace(before.daemons, running=("networkd", "networkmanager"))
    )
    plan = plan_host(task(f"persist: netplan\n{BOND_TASK}"), before, min_timeout=5)
    assert plan.refusal is not None and plan.steps == ()
    assert "renders for NetworkManager; fleetbr writes topologies for the networkd renderer" in (
        plan.refusal
    )


def test_an_existing_bond_is_the_port_its_entry_keeps_interfaces_and_parameters() -> None:
    before = bonded_np_host()
    net = network(round_trip("bridge: {nic: bond0}", before, "netplan", kernel(before)))
    bond0 = net["bonds"]["bond0"]  # type: ignore[index]
    assert bond0["interfaces"] == ["eth0", "eth1"] and "addresses" not in bond0
    assert bond0["parameters"] == {"mode": "active-backup", "mii-monitor-interval": 100}
    br0 = net["bridges"]["br0"]  # type: ignore[index]
    assert br0["interfaces"] == ["bond0"]
    assert br0["addresses"] == ["198.51.100.12/24", "2001:db8:100::c/64"]


def test_vlans_of_a_new_bond() -> None:
    before = np_host()
    net = network(round_trip(BOND_VLAN, before, "netplan", kernel(before)))
    assert net["vlans"]["bond0.20"] == {  # type: ignore[index]
        "id": 20,
        "link": "bond0",
        "accept-ra": False,
        "link-local": [],
    }
    assert net["bridges"]["br20"]["interfaces"] == ["bond0.20"]  # type: ignore[index]
    assert net["bridges"]["br20"]["addresses"] == ["198.51.100.12/24", "2001:db8:100::c/64"]  # type: ignore[index]


def test_a_new_bond_that_keeps_the_addresses_has_them_in_its_entry() -> None:
    before = np_host()
    text = BOND_VLAN.replace("vlan: 20}", "vlan: 20, addresses: none}")
    text += "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
    text = "bridges:\n  - " + text.removeprefix("bridge: ")
    net = network(round_trip(text, before, "netplan", kernel(before)))
    bond = net["bonds"]["bond0"]  # type: ignore[index]
    assert bond["addresses"] == ["198.51.100.12/24", "2001:db8:100::c/64"]
    assert "link-local" not in bond and bond["routes"]
    assert "addresses" not in net["bridges"]["br20"]  # type: ignore[index]
