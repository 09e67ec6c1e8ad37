"""ifupdown2 writes the uplink topologies (issue 17 points 4, 5: Proxmox VE's layout): the file
each topology's plan writes, exactly; plan -> apply -> confirm -> plan again (unchanged) ->
rollback -> restore check on the kernel model (tests/unit/topology_sim.py) with
/etc/network/interfaces modelled beside it (test_topology_networkd.py's FileKernel: the rollback
gives the file back byte for byte); the apply and rollback shell; what stays refused."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import pytest

from fleetbr.backends.ifupdown.view import ifupdown_stanzas
from fleetbr.facts.model import (
    Address,
    ConfigFile,
    DaemonView,
    HostFacts,
    InterfaceManager,
    Link,
    Route,
)
from fleetbr.facts.topology import TopologyFacts, VlanDevice
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from fleetbr.plan.shell import step_command
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_topology_networkd import (
    BOND_TASK,
    BOND_VLAN,
    MAC1,
    VLAN_AWARE,
    VLAN_BRIDGES,
    FileKernel,
    round_trip,
)
from tests.unit.test_topology_plan import task
from tests.unit.topology_sim import bonded

PATH = "/etc/network/interfaces"
T = TypeVar("T", Address, Route)
MAC0 = "02:fb:00:00:00:01"
ETH1 = "\niface eth1 inet manual\n"
# Proxmox VE's layout: a VLAN-aware bridge over an active-backup bond of both NICs; the
# management address stays untagged on the bridge (PVID 1) and VLAN 10 gets a second one
PROXMOX = (
    "bridge:\n  name: br0\n"
    "  bond: {name: bond0, slaves: [eth0, eth1], mode: active-backup, options: {miimon: 100}}\n"
    "  vlan_filtering: true\n  pvid: 1\n  vids: [10, '100-199']\n"
    "  vlan_interfaces:\n    - {vid: 10, addresses: [203.0.113.10/24]}\n"
)


def with_interfaces(base: HostFacts, contents: dict[str, str]) -> HostFacts:
    """``base`` with this /etc/network/interfaces and ifupdown2's view of it: an interface with
    an ``auto`` line is up in its saved state (``ifreload -a`` brought it up), one with only a
    stanza is ``down``."""
    others = {p: t for p, t in base.daemons.contents.items() if not p.startswith("/etc/network")}
    every = {**others, **contents}
    stanzas = ifupdown_stanzas(contents)
    managers = {}
    for link in base.links:
        paths = [p for p, names in stanzas.items() if link.name in names]
        if paths:
            files = tuple(ConfigFile(p, sha256(every[p])) for p in paths)
            up = any(f"auto {link.name}\n" in every[p] for p in paths)
            state = "up" if up else "down"
            views = (DaemonView("ifupdown2", state, files, claims=up),)
            owner = "ifupdown2" if up else None
            managers[link.name] = InterfaceManager(link.name, owner, state, files, views)
    daemons = dataclasses.replace(
        base.daemons,
        contents=every,
        files={p: sha256(t) for p, t in every.items()},
        ifupdown=stanzas,
        interfaces=managers,
    )
    return dataclasses.replace(base, daemons=daemons)


def i2_host() -> HostFacts:
    """The distro lab's ifupdown2 host (eth0 with the addresses, ``gateway`` lines) plus an idle
    eth1 with a ``manual`` stanza (Proxmox's installer writes one for every NIC)."""
    base = distro_facts("ifupdown2")
    base = dataclasses.replace(
        base,
        links=(*base.links, Link("eth1", "ether", MAC1, 1500, "UP", True, None)),
        routes=tuple(r for r in base.routes if not r.kernel_made),
    )
    text = base.daemons.contents[PATH] + ETH1
    return with_interfaces(base, {PATH: text})


def bonded_i2_host() -> HostFacts:
    """eth0 and eth1 in a bond0 of the file's (its stanza holds the addresses)."""
    base = i2_host()
    old = base.daemons.contents[PATH]
    text = old.replace(
        "auto eth0\niface eth0 inet static\n",
        "auto bond0\niface bond0 inet static\n"
        "    bond-slaves eth0 eth1\n    bond-mode active-backup\n"
        "    bond-miimon 100\n",
    ).replace("iface eth0 inet6", "iface bond0 inet6")
    text = (
        text.replace(ETH1, "")
        + "\nauto eth0\niface eth0 inet manual\n\nauto eth1\niface eth1 inet manual\n"
    )
    return with_interfaces(bonded(base), {PATH: text})


def kernel(before: HostFacts) -> FileKernel:
    return FileKernel.with_dir(before, "/etc/network", with_interfaces)


def i2_plan(text: str, before: HostFacts) -> BridgePlan:
    return plan_host(task(f"persist: ifupdown2\n{text}"), before, min_timeout=5)


def written(plan: BridgePlan) -> str:
    """The interfaces file the plan writes (from the fleetbr header on)."""
    (text,) = [str(s.args["content"]) for s in plan.steps if s.kind == "file_write"]
    return text


def ours(text: str) -> str:
    """The part of the file after fleetbr's header."""
    return text.split("(ifupdown2; a fleetbr rollback restores the file).\n", 1)[1]


def trip(text: str, before: HostFacts) -> BridgePlan:
    return round_trip(text, before, "ifupdown2", kernel(before))


def test_the_proxmox_layout_is_a_vlan_aware_bridge_over_a_bond_with_vids_on_the_port() -> None:
    before = i2_host()
    plan = trip(PROXMOX, before)
    text = written(plan)
    assert text.startswith(
        "# interfaces(5) file used by ifup(8) and ifdown(8)\n"
        "# fleetbr lab host hv01: eth0 configured by ifupdown2.\n"
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n# uplink"
    )
    assert ours(text) == (
        "auto eth0\niface eth0 inet manual\n\n"
        "auto eth1\niface eth1 inet manual\n\n"
        "auto bond0\niface bond0 inet manual\n"
        "    bond-slaves eth0 eth1\n    bond-mode active-backup\n    bond-miimon 100\n"
        "    bridge-vids 10 100-199\n    bridge-pvid 1\n\n"
        "auto br0\niface br0 inet static\n"
        "    bridge-ports bond0\n    bridge-stp off\n    bridge-fd 4\n"
        "    bridge-vlan-aware yes\n"
        f"    hwaddress {MAC0}\n"
        "    address 198.51.100.10/24\n"
        "    up ip -4 route replace default via 198.51.100.1 dev br0 proto kernel onlink\n"
        "    post-up ip link set dev br0 type bridge vlan_default_pvid 0\n"
        "    post-up bridge vlan add vid 1 dev br0 pvid untagged self\n"
        "    post-up bridge vlan add vid 1 dev bond0 pvid untagged\n\n"
        "iface br0 inet6 static\n"
        "    address 2001:db8:100::a/64\n"
        "    up echo 0 > /proc/sys/net/ipv6/conf/br0/accept_ra\n"
        "    up ip -6 route replace default via 2001:db8:100::1 dev br0 metric 1024 proto kernel "
        "onlink\n\n"
        "auto br0.10\niface br0.10 inet static\n"
        "    vlan-raw-device br0\n    vlan-id 10\n    address 203.0.113.10/24\n"
    )
    assert plan.expected.managers == dict.fromkeys(
        ("eth0", "eth1", "bond0", "br0", "br0.10"), "ifupdown2"
    )
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert apply.args["links"] == "eth0 eth1 bond0 br0 br0.10"
    assert apply.args["prior_links"] == "eth0"  # eth1: a manual stanza, not up
    assert apply.args["new_links"] == "br0.10 br0 bond0 eth1"


def test_a_vlan_aware_bridge_over_the_nic_moves_the_management_address_to_br0_10() -> None:
    text = ours(written(trip(VLAN_AWARE, i2_host())))
    assert "auto eth0\niface eth0 inet manual\n    bridge-vids 10 100-199\n    bridge-pvid 1\n" in (
        text
    )
    # the bridge holds no address: no PVID of its own, its port's back after the default goes
    assert "auto br0\niface br0 inet manual\n" in text
    assert "post-up bridge vlan add vid 1 dev eth0 pvid untagged\n" in text
    assert "dev br0 pvid" not in text
    assert (
        "auto br0.10\niface br0.10 inet static\n    vlan-raw-device br0\n    vlan-id 10\n" in text
    )
    assert (
        "    address 198.51.100.10/24\n    up ip -4 route replace default via 198.51.100.1 "
        in (text.split("auto br0.10", 1)[1])
    )


def test_a_bond_created_from_the_nic_carries_the_task_options() -> None:
    text = ours(written(trip(BOND_TASK, i2_host())))
    assert (
        "auto bond0\niface bond0 inet manual\n"
        "    bond-slaves eth0 eth1\n    bond-mode active-backup\n"
        "    bond-miimon 100\n    bond-primary eth1\n\n"
    ) in text
    assert "bridge-vlan-aware" not in text and "post-up" not in text


def test_vlan_bridges_and_a_host_only_bridge_keep_the_parents_stanzas() -> None:
    before = i2_host()
    text = written(trip(VLAN_BRIDGES, before))
    old = before.daemons.contents[PATH]
    assert text.startswith(old.rstrip("\n") + "\n\n# uplink topology")  # the parent's stanzas kept
    tail = ours(text)
    assert (
        "auto eth0.20\niface eth0.20 inet manual\n    vlan-raw-device eth0\n    vlan-id 20\n"
        in (tail)
    )
    assert "auto br20\niface br20 inet static\n    bridge-ports eth0.20\n" in tail
    assert "    address 203.0.113.20/24\n" in tail
    assert "auto br30\niface br30 inet manual\n    bridge-ports eth0.30\n" in tail
    assert "auto br9\niface br9 inet static\n    bridge-ports none\n" in tail
    assert "hwaddress" not in tail.split("auto br9", 1)[1]  # host-only: no uplink's MAC


def test_vlans_of_a_new_bond_name_the_bond_as_raw_device() -> None:
    tail = ours(written(trip(BOND_VLAN, i2_host())))
    assert "auto bond0\niface bond0 inet manual\n    bond-slaves eth0 eth1\n" in tail
    assert "auto bond0.20\niface bond0.20 inet manual\n    vlan-raw-device bond0\n" in tail
    assert "    bridge-ports bond0.20\n" in tail


def test_an_existing_bond_keeps_its_bond_options_and_gives_the_bridge_its_addresses() -> None:
    """One bridge over a bond (the single-bridge writer): the bond's ``bond-*`` options stay on
    its ``manual`` stanza, its addresses and routes go to the bridge; its slaves' stanzas stay."""
    before = bonded_i2_host()
    text = written(trip("bridge: {nic: bond0}", before))
    head, tail = text.split("# br0: managed by fleetbr", 1)
    assert "auto eth0\niface eth0 inet manual\n\nauto eth1\niface eth1 inet manual\n" in head
    assert tail.split("\n", 1)[1].startswith(
        "auto bond0\niface bond0 inet manual\n"
        "    bond-slaves eth0 eth1\n    bond-mode active-backup\n    bond-miimon 100\n\n"
        "auto br0\niface br0 inet static\n    bridge-ports bond0\n"
    )
    bridge = tail.split("auto br0", 1)[1]
    assert "address 198.51.100.10/24" in bridge and "bond-" not in bridge


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "bridge: {bond: {name: bond0, slaves: [eth0, eth1], options: "
            "{arp_interval: 100, arp_ip_target: [198.51.100.1]}}}",
            "bond bond0: option arp_interval has no keyword in ifupdown2",
        ),
        (
            "bridge: {bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad, "
            "options: {ad_select: count}}}",
            "bond bond0: option ad_select has no keyword in ifupdown2",
        ),
    ],
    ids=["arp-interval", "ad-select"],
)
def test_what_ifupdown2_cannot_write_is_refused_before_any_change(text: str, reason: str) -> None:
    plan = i2_plan(text, i2_host())
    assert plan.refusal is not None and reason in plan.refusal, plan.refusal
    assert plan.steps == ()


def test_stanzas_in_two_files_are_refused() -> None:
    base = i2_host()
    old = base.daemons.contents[PATH]
    two = {PATH: old.replace(ETH1, ""), "/etc/network/interfaces.d/eth1": ETH1}
    plan = i2_plan(PROXMOX, with_interfaces(base, two))
    assert plan.refusal is not None and "fleetbr rewrites exactly one file" in plan.refusal
    assert plan.steps == ()


def test_the_apply_reloads_and_checks_every_stanza_and_the_rollback_downs_the_new_devices() -> None:
    plan = i2_plan(PROXMOX, i2_host())
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert apply.startswith("{ sync; ifreload -a >/dev/null 2>&1; ifquery -c eth0 eth1 bond0 br0 ")
    release = step_command(next(s for s in plan.rollback if s.kind == "backend_release"))
    assert release == "{ ifdown --force br0.10 br0 bond0 eth1 >/dev/null 2>&1 || :; }"
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert "ifquery -c eth0 >/dev/null" in reapply and "bond0" not in reapply


@pytest.mark.parametrize(
    "text", [PROXMOX, BOND_TASK, VLAN_AWARE, VLAN_BRIDGES], ids=["proxmox", "bond", "vlan-aware",
                                                                 "vlans"]
)  # fmt: skip
def test_every_prefix_of_a_persisted_topology_plan_rolls_back_exactly(text: str) -> None:
    """A step that fails anywhere, file written or not: the whole rollback leaves the kernel and
    the interfaces file as they were."""
    before = i2_host()
    plan = i2_plan(text, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


# Proxmox VE's layout with the management address on a VLAN from the start (the VM lab's
# router: tests/integration/vm/test_proxmox_mgmt_vlan.py): eth0.10 holds it, then br0.10 does
MGMT_VLAN = (
    "bridge:\n  name: br0\n"
    "  bond: {name: bond0, slaves: [eth0, eth1], mode: active-backup, options: {miimon: 100}}\n"
    "  addresses: none\n  vlan_filtering: true\n  vids: [10, '100-199']\n"
    "  vlan_interfaces:\n    - {vid: 10, addresses: move}\n"
)


def on_vlan(item: T) -> T:
    """An address or route of eth0 on eth0.10 instead."""
    return dataclasses.replace(item, dev="eth0.10") if item.dev == "eth0" else item


def mgmt_vlan_host() -> HostFacts:
    """The lab's ifupdown2 host behind the router: eth0 ``manual``, its addresses and routes on
    eth0.10 (the file the lab writes), eth1 a ``manual`` stanza."""
    base = i2_host()
    vlan = Link("eth0.10", "vlan", MAC0, 1500, "UP", True, None)
    old = base.daemons.contents[PATH]
    text = old.replace(
        "auto eth0\niface eth0 inet static\n",
        "auto eth0\niface eth0 inet manual\n\nauto eth0.10\niface eth0.10 inet static\n",
    ).replace("iface eth0 inet6", "iface eth0.10 inet6")
    moved = dataclasses.replace(
        base,
        links=(*base.links, vlan),
        addresses=tuple(on_vlan(a) for a in base.addresses),
        routes=tuple(on_vlan(r) for r in base.routes),
        topology=TopologyFacts(vlans=(VlanDevice("eth0.10", 10, "eth0"),), vlan_table=()),
    )
    return with_interfaces(moved, {PATH: text})


def test_management_on_a_nic_vlan_moves_to_the_bridges_vlan_interface() -> None:
    before = mgmt_vlan_host()
    plan = trip(MGMT_VLAN, before)
    text = written(plan)
    assert "eth0.10" not in text, text
    tail = ours(text)
    assert "auto bond0\niface bond0 inet manual\n" in tail
    assert "    bridge-vids 10 100-199\n    bridge-pvid 1\n" in tail
    assert "auto br0\niface br0 inet manual\n" in tail
    vif = tail.split("auto br0.10\n", 1)[1]
    assert vif.startswith("iface br0.10 inet static\n    vlan-raw-device br0\n    vlan-id 10\n")
    route = "    up ip -4 route replace default via 198.51.100.1 "
    assert f"    address 198.51.100.10/24\n{route}" in vif
    assert "vlan_del" in [s.kind for s in plan.steps]


def test_every_prefix_of_the_management_vlan_move_rolls_back_exactly() -> None:
    """eth0.10 deleted, eth0 enslaved, the file written: wherever a step fails, eth0.10 comes
    back with its addresses and routes and the file with its stanza."""
    before = mgmt_vlan_host()
    plan = i2_plan(MGMT_VLAN, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents
        assert {a.cidr for a in restored.addresses_of("eth0.10")} == {
            a.cidr for a in before.addresses_of("eth0.10")
        }


def test_other_backends_still_refuse_to_delete_a_nic_vlan() -> None:
    from tests.unit.test_topology_networkd import nd_host, nd_plan

    base = nd_host()
    moved = dataclasses.replace(
        base,
        links=(*base.links, Link("eth0.10", "vlan", MAC0, 1500, "UP", True, None)),
        addresses=tuple(on_vlan(a) for a in base.addresses),
        routes=tuple(on_vlan(r) for r in base.routes),
        topology=TopologyFacts(vlans=(VlanDevice("eth0.10", 10, "eth0"),), vlan_table=()),
    )
    plan = nd_plan(MGMT_VLAN, moved)
    assert plan.refusal is not None and "deletes VLAN device eth0.10" in plan.refusal


def test_a_renumbered_management_vlan_moves_from_eth0_10_to_br0_20() -> None:
    """``move`` on br0.20 takes the only addressed VLAN device of the slaves (eth0.10): the
    cutting variant of the VM tests (the router serves VLAN 10 only), rolled back exactly."""
    before = mgmt_vlan_host()
    text = MGMT_VLAN.replace("[10, '100-199']", "[20, '100-199']").replace("vid: 10", "vid: 20")
    plan = trip(text, before)
    tail = ours(written(plan))
    assert "eth0.10" not in written(plan) and "bridge-vids 20 100-199" in tail
    assert "    address 198.51.100.10/24\n" in tail.split("auto br0.20\n", 1)[1]
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        assert restore_check(before, restored, touched_by(plan)).problems == [], k
