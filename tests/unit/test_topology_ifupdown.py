"""ifupdown writes the uplink topologies Debian 12's ifupdown + bridge-utils apply (issue 17
point 4): several bridges, host-only ones, VLAN ports, and with ifenslave bonds (new, or an
existing one as the port); the file each plan writes, exactly, and plan -> apply -> confirm ->
plan again (unchanged) -> rollback -> restore check on the kernel model with
/etc/network/interfaces modelled (ifupdown calls up each interface with a stanza); VLAN-aware
bridges, and bonds on a host without ifenslave, stay refused, with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from fleetbr.backends.ifupdown import IfupdownBackend, view
from fleetbr.backends.model import BackendRefusal, BridgeConfig
from fleetbr.facts.model import Backend, ConfigFile, DaemonView, HostFacts, InterfaceManager, Link
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from fleetbr.plan.shell import step_command
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_topology_networkd import (
    BOND_TASK,
    VLAN_AWARE,
    VLAN_BRIDGES,
    FileKernel,
    round_trip,
    written,
)
from tests.unit.test_topology_plan import task
from tests.unit.topology_sim import bonded

ETC = "/etc/network"
INTERFACES = "/etc/network/interfaces"
MAC1 = "02:fb:00:00:00:07"
ETH1 = "\nauto eth1\niface eth1 inet manual\n    mtu 1500\n"
TWO_NICS = (
    "bridges:\n  - {name: br0, nic: eth0}\n"
    "  - {name: br1, nic: eth1, addresses: none}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
)


def with_ifupdown(base: HostFacts, contents: dict[str, str]) -> HostFacts:
    """``base`` with these files under /etc/network; every interface with a stanza that exists
    is up (``ifquery --state``), as after ``ifup``."""
    others = {p: t for p, t in base.daemons.contents.items() if not p.startswith(ETC)}
    every = {**others, **contents}
    stanzas = view.ifupdown_stanzas(every)
    names = {link.name for link in base.links}
    managers = {}
    for path, found in stanzas.items():
        for name in found:
            if name in names:
                files = (ConfigFile(path, sha256(every[path])),)
                views = (DaemonView("ifupdown", "up", files, claims=True),)
                managers[name] = InterfaceManager(name, "ifupdown", "up", files, views)
    daemons = dataclasses.replace(
        base.daemons,
        contents=every,
        files={
            **{p: s for p, s in base.daemons.files.items() if not p.startswith(ETC)},
            **{p: sha256(t) for p, t in every.items()},
        },
        ifupdown=stanzas,
        interfaces=managers,
    )
    return dataclasses.replace(base, daemons=daemons)


def ifu_host() -> HostFacts:
    """The distro lab's ifupdown host (eth0 with the addresses) plus eth1 with a manual stanza;
    its default routes without ``onlink`` (the kernel model does not keep that flag)."""
    base = distro_facts("ifupdown")
    base = dataclasses.replace(
        base,
        links=(*base.links, Link("eth1", "ether", MAC1, 1500, "UP", True, None)),
        routes=tuple(
            dataclasses.replace(r, onlink=False) for r in base.routes if r.protocol != "kernel"
        ),
    )
    return with_ifupdown(base, {INTERFACES: base.daemons.contents[INTERFACES] + ETH1})


def with_ifenslave(base: HostFacts) -> HostFacts:
    """``base`` with ifenslave installed (facts: ``backend ifenslave yes no``)."""
    return dataclasses.replace(base, backends=(*base.backends, Backend("ifenslave", True, False)))


def bonded_ifu_host() -> HostFacts:
    """eth0 and eth1 in a bond0 of the file's (ifenslave's ``bond-slaves``; its stanzas hold
    the addresses and an MTU); the slaves have no stanza."""
    base = ifu_host()
    old = base.daemons.contents[INTERFACES]
    text = old.replace(ETH1, "").replace(
        "auto eth0\niface eth0 inet static\n",
        "auto bond0\niface bond0 inet static\n    bond-slaves eth0 eth1\n"
        "    bond-mode active-backup\n    bond-miimon 100\n    mtu 1500\n",
    )
    text = text.replace("iface eth0 inet6", "iface bond0 inet6")
    return with_ifenslave(with_ifupdown(bonded(base), {INTERFACES: text}))


def kernel(before: HostFacts) -> FileKernel:
    return FileKernel.with_dir(before, ETC, with_ifupdown)


def ifu_round_trip(text: str) -> BridgePlan:
    before = ifu_host()
    return round_trip(text, before, "ifupdown", kernel(before))


def ifu_plan(text: str, before: HostFacts | None = None) -> BridgePlan:
    return plan_host(task(f"persist: ifupdown\n{text}"), before or ifu_host(), min_timeout=5)


def test_vlan_bridges_and_a_host_only_bridge_are_appended_the_parent_kept() -> None:
    before = ifu_host()
    old = before.daemons.contents[INTERFACES]
    new = written(ifu_round_trip(VLAN_BRIDGES))[INTERFACES]
    assert new == old + (
        "\n# br20: managed by fleetbr (a fleetbr rollback restores the previous file).\n"
        "auto br20\niface br20 inet static\n    bridge_ports eth0.20\n    bridge_stp off\n"
        "    bridge_fd 4\n    bridge_hw 02:fb:00:00:00:01\n    address 203.0.113.20/24\n"
        "\n# br30: managed by fleetbr (a fleetbr rollback restores the previous file).\n"
        "auto br30\niface br30 inet manual\n    bridge_ports eth0.30\n    bridge_stp off\n"
        "    bridge_fd 4\n    bridge_hw 02:fb:00:00:00:01\n"
        "\n# br9: managed by fleetbr (a fleetbr rollback restores the previous file).\n"
        "auto br9\niface br9 inet static\n    bridge_ports none\n    bridge_stp off\n"
        "    bridge_fd 4\n    address 198.18.0.1/24\n"
    )


def test_two_nics_become_ports_their_stanzas_taken_their_options_moved() -> None:
    plan = ifu_round_trip(TWO_NICS)
    new = written(plan)[INTERFACES]
    assert "iface eth0" not in new and "auto eth1" not in new and "iface eth1" not in new
    assert "iface br0 inet static\n    bridge_ports eth0\n" in new
    assert "    address 198.51.100.10/24\n    gateway 198.51.100.1\n" in new
    assert "iface br0 inet6 static\n    address 2001:db8:100::a/64\n" in new
    assert "auto br1\niface br1 inet manual\n    bridge_ports eth1\n" in new
    assert f"bridge_hw {MAC1}\n    mtu 1500\n" in new  # eth1's option moved to its bridge
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert (apply.args["links"], apply.args["prior_links"]) == ("br0 br1 br9", "eth0 eth1")
    assert plan.expected.managers == dict.fromkeys(("br0", "br1", "br9"), "ifupdown")


def test_the_apply_brings_every_bridge_up_and_the_rollback_the_nics() -> None:
    plan = ifu_plan(TWO_NICS)
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert apply.startswith(
        "{ sync; ifup --ignore-errors br0 >/dev/null 2>&1; ifup --ignore-errors br1 >/dev/null "
        "2>&1; ifup --ignore-errors br9 >/dev/null 2>&1; ifdown --force eth0 >/dev/null 2>&1; "
        "ifdown --force eth1 >/dev/null 2>&1; ifquery --state br0 >/dev/null 2>&1 && "
    )
    release = step_command(next(s for s in plan.rollback if s.kind == "backend_release"))
    assert release == (
        "{ ifdown --force br0 >/dev/null 2>&1; ifdown --force br1 >/dev/null 2>&1; "
        "ifdown --force br9 >/dev/null 2>&1; :; }"
    )
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert "ifdown --force eth1 >/dev/null 2>&1; ifup --ignore-errors eth1 >/dev/null" in reapply
    assert "ifquery --state eth0 >/dev/null 2>&1 && " in reapply


@pytest.mark.parametrize("text", [TWO_NICS, VLAN_BRIDGES, BOND_TASK], ids=["nics", "vlans", "bond"])
def test_every_prefix_of_a_persisted_topology_plan_rolls_back_exactly(text: str) -> None:
    before = with_ifenslave(ifu_host())
    plan = ifu_plan(text, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):
        restored = kernel(before).run(plan.steps[:k]).run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            VLAN_AWARE,
            "persist: ifupdown cannot express a VLAN-aware bridge (vlan_filtering); "
            "a VLAN interface of the bridge (vlan_interfaces) yet",
        ),
    ],
    ids=["vlan-aware"],
)
def test_what_the_image_cannot_apply_is_refused_before_any_change(text: str, reason: str) -> None:
    plan = ifu_plan(text)
    assert plan.refusal is not None and plan.refusal.startswith(reason), plan.refusal
    assert plan.steps == ()


def test_without_bridge_utils_a_topology_is_refused() -> None:
    base = ifu_host()
    before = dataclasses.replace(
        base, backends=tuple(b for b in base.backends if b.name != "brctl")
    )
    plan = ifu_plan(VLAN_BRIDGES, before)
    assert plan.refusal is not None and "bridge-utils is not installed" in plan.refusal
    assert plan.steps == ()


def test_a_new_bond_is_written_in_ifenslaves_syntax_under_the_bridge() -> None:
    before = with_ifenslave(ifu_host())
    old = before.daemons.contents[INTERFACES]
    plan = round_trip(BOND_TASK, before, "ifupdown", kernel(before))
    head = old.split("\nauto eth0\n")[0]
    assert written(plan)[INTERFACES] == head + (
        "\n# br0: managed by fleetbr (a fleetbr rollback restores the previous file).\n"
        "auto bond0\niface bond0 inet manual\n    bond-slaves eth0 eth1\n"
        "    bond-mode active-backup\n    bond-miimon 100\n    bond-primary eth1\n"
        "\nauto eth0\niface eth0 inet manual\n    bond-master bond0\n"
        "\nauto eth1\niface eth1 inet manual\n    bond-master bond0\n"
        "\nauto br0\niface br0 inet static\n    bridge_ports bond0\n    bridge_stp off\n"
        "    bridge_fd 4\n    bridge_hw 02:fb:00:00:00:01\n    address 198.51.100.10/24\n"
        "    gateway 198.51.100.1\n    mtu 1500\n"
        "\niface br0 inet6 static\n    address 2001:db8:100::a/64\n    gateway 2001:db8:100::1\n"
        "    metric 1024\n    accept_ra 0\n"
    )
    assert plan.expected.managers == dict.fromkeys(("bond0", "eth0", "eth1", "br0"), "ifupdown")


def test_a_new_bond_is_brought_up_in_file_order_and_deleted_first_by_the_rollback() -> None:
    plan = ifu_plan(BOND_TASK, with_ifenslave(ifu_host()))
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert (apply.args["links"], apply.args["prior_links"]) == ("bond0 eth0 eth1 br0", "eth0 eth1")
    # the slaves keep a stanza: ifupdown still calls them up, nothing takes them down
    assert step_command(apply).startswith(
        "{ sync; ifup --ignore-errors bond0 >/dev/null 2>&1; ifup --ignore-errors eth0 >/dev/null "
        "2>&1; ifup --ignore-errors eth1 >/dev/null 2>&1; ifup --ignore-errors br0 >/dev/null "
        "2>&1; ifquery --state bond0 >/dev/null 2>&1 && "
    )
    release = next(s for s in plan.rollback if s.kind == "backend_release")
    command = step_command(release)
    assert command.startswith("{ fbr_rc=0; for fbr_b in bond0; do ")
    assert command.index('ip link del dev "$fbr_b"') < command.index("ifdown --force bond0")
    assert command.endswith('ifdown --force br0 >/dev/null 2>&1; [ "$fbr_rc" -eq 0 ]; }')
    assert "ifdown --force eth0" not in command  # the reapply takes it down and up again
    kinds = [s.kind for s in plan.rollback]
    assert kinds.index("backend_release") < kinds.index("bond_del")


def test_an_existing_bond_becomes_the_port_and_keeps_its_bond_options() -> None:
    before = bonded_ifu_host()
    plan = round_trip("bridge: {nic: bond0}\n", before, "ifupdown", kernel(before))
    new = written(plan)[INTERFACES]
    assert "iface bond0 inet static" not in new
    assert new.endswith(
        "\nauto bond0\niface bond0 inet manual\n    bond-slaves eth0 eth1\n"
        "    bond-mode active-backup\n    bond-miimon 100\n"
        "\n# br0: managed by fleetbr (a fleetbr rollback restores the previous file).\n"
        "auto br0\niface br0 inet static\n    bridge_ports bond0\n    bridge_stp off\n"
        "    bridge_fd 4\n    bridge_hw 02:fb:00:00:00:01\n    address 198.51.100.10/24\n"
        "    gateway 198.51.100.1\n    mtu 1500\n"
        "\niface br0 inet6 static\n    address 2001:db8:100::a/64\n    gateway 2001:db8:100::1\n"
        "    metric 1024\n    accept_ra 0\n"
    )
    # the bond keeps its stanza and ifupdown's state: ifdown would run ifenslave's post-down
    # hook, which frees the slaves and deletes the bond
    commands = [step_command(s) for s in (*plan.steps, *plan.rollback)
                if s.kind in ("backend_apply", "backend_release", "backend_reapply")]  # fmt: skip
    assert commands[0].startswith("{ sync; ifup --ignore-errors br0 >/dev/null 2>&1; ifquery ")
    assert all("ifdown --force bond0" not in c and "ifup --ignore-errors bond0" not in c
               for c in commands)  # fmt: skip
    assert "ifquery --state bond0 >/dev/null 2>&1 && " in commands[2]


def test_unbridging_a_bond_is_refused() -> None:
    config = BridgeConfig(name="br0", nic="bond0", mac=None, stp=False, forward_delay=4,
                          addresses=("198.51.100.10/24",), routes=())  # fmt: skip
    with pytest.raises(BackendRefusal, match="unbridging bond bond0 is not written yet"):
        IfupdownBackend().unplan(config, bonded_ifu_host())


@pytest.mark.parametrize(
    ("text", "before"),
    [(BOND_TASK, ifu_host), ("bridge: {nic: bond0}\n", bonded_ifu_host)],
    ids=["new-bond", "bond-port"],
)
def test_without_ifenslave_a_bond_is_refused(text: str, before: Callable[[], HostFacts]) -> None:
    base = before()
    facts = dataclasses.replace(base, backends=tuple(b for b in base.backends
                                                     if b.name != "ifenslave"))  # fmt: skip
    plan = ifu_plan(text, facts)
    assert plan.refusal is not None and "ifenslave is not installed" in plan.refusal
    assert plan.steps == ()


@pytest.mark.parametrize(
    ("option", "word"), [("min_links: 1", "min_links"), ("all_slaves_active: true", "all_slaves")]
)
def test_a_bond_option_ifenslave_has_no_keyword_for_is_refused(option: str, word: str) -> None:
    text = (
        "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad,\n"
        f"         options: {{{option}}}}}\n"
    )
    plan = ifu_plan(text, with_ifenslave(ifu_host()))
    assert plan.refusal is not None and f"option {word}" in plan.refusal
    assert "no keyword in ifenslave" in plan.refusal


def test_ifenslaves_keywords_and_values() -> None:
    from fleetbr.backends.ifupdown import bond as ifbond
    from fleetbr.changes.bridge.topology import BondSpec

    spec = BondSpec("bond1", ("eth2", "eth3"), "balance-alb", (
        ("arp_interval", 100), ("arp_ip_target", "198.51.100.1,198.51.100.2"),
        ("use_carrier", False), ("tlb_dynamic_lb", True), ("xmit_hash_policy", "layer3+4"),
    ))  # fmt: skip
    assert ifbond.bond_stanza(spec) == [
        "iface bond1 inet manual",
        "    bond-slaves eth2 eth3",
        "    bond-mode balance-alb",
        "    bond-arp-interval 100",
        "    bond-arp-ip-target 198.51.100.1 198.51.100.2",
        "    bond-use-carrier 0",
        "    bond-tlb-dynamic-lb 1",
        "    bond-xmit-hash-policy layer3+4",
    ]
