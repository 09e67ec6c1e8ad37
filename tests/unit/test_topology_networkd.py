"""systemd-networkd writes the uplink topologies (issue 17 point 4): the files each topology's plan
writes, exactly; plan -> apply -> confirm -> plan again (unchanged) -> rollback -> restore check
on the kernel model (tests/unit/topology_sim.py) with the daemon's files modelled beside it (the
rollback gives every file back byte for byte and removes the new ones); what stays refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from fleetbr.errors import ValidationError
from fleetbr.facts.model import ConfigFile, DaemonView, HostFacts, InterfaceManager, Link
from fleetbr.facts.topology import TopologyFacts, VlanDevice
from fleetbr.plan import BridgePlan, Step, plan_host
from fleetbr.plan import steps as psteps
from fleetbr.plan.diff import compare
from fleetbr.plan.netfilter import sha256
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import touched_by
from fleetbr.plan.shell import step_command
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_topology_plan import task
from tests.unit.topology_sim import Kernel, bonded

ETC = "/etc/systemd/network"
MAC0 = "02:fb:00:00:00:02"
MAC1 = "02:fb:00:00:00:03"
ETH1_FILE = "[Match]\nName=eth1\n\n[Network]\nLinkLocalAddressing=no\n"


def _managers(contents: dict[str, str], names: list[str]) -> dict[str, InterfaceManager]:
    """networkd's view: every interface a .network file matches by name is configured."""
    out = {}
    for name in names:
        paths = [p for p, t in contents.items() if p.endswith(".network") and f"Name={name}\n" in t]
        if paths:
            files = tuple(ConfigFile(p, sha256(contents[p])) for p in paths[:1])
            view = DaemonView("networkd", "configured", files, claims=True)
            out[name] = InterfaceManager(name, "networkd", "configured", files, (view,))
    return out


def with_files(base: HostFacts, contents: dict[str, str]) -> HostFacts:
    """``base`` with these networkd files (and networkd's view of its links from them)."""
    others = {p: t for p, t in base.daemons.contents.items() if not p.startswith(ETC)}
    every = {**others, **contents}
    daemons = dataclasses.replace(
        base.daemons,
        contents=every,
        files={p: sha256(t) for p, t in every.items()},
        interfaces=_managers(contents, [link.name for link in base.links]),
    )
    return dataclasses.replace(base, daemons=daemons)


def nd_host() -> HostFacts:
    """The distro lab's networkd host (eth0 with the addresses) plus an idle eth1 that networkd
    also configures."""
    base = distro_facts("networkd")
    base = dataclasses.replace(
        base,
        links=(*base.links, Link("eth1", "ether", MAC1, 1500, "UP", True, None)),
        routes=tuple(r for r in base.routes if r.protocol != "kernel"),
    )
    nd = {p: t for p, t in base.daemons.contents.items() if p.startswith(ETC)}
    return with_files(base, {**nd, f"{ETC}/10-eth1.network": ETH1_FILE})


def bonded_nd_host() -> HostFacts:
    """eth0 and eth1 in a bond0 networkd creates (its .netdev and .network: the addresses)."""
    base = nd_host()
    old = base.daemons.contents[f"{ETC}/10-eth0.network"]
    files = {
        f"{ETC}/05-bond0.netdev": "[NetDev]\nName=bond0\nKind=bond\n\n[Bond]\nMode=active-backup\n",
        f"{ETC}/05-bond0.network": old.replace("Name=eth0", "Name=bond0"),
        f"{ETC}/10-eth0.network": "[Match]\nName=eth0\n\n[Network]\nBond=bond0\n",
        f"{ETC}/10-eth1.network": "[Match]\nName=eth1\n\n[Network]\nBond=bond0\n",
    }
    return with_files(bonded(base), files)


Rebuild = Callable[[HostFacts, dict[str, str]], HostFacts]


@dataclasses.dataclass
class FileKernel(Kernel):
    """The kernel model plus a daemon's directory (``prefix``): written, removed and restored
    files; ``rebuild`` gives the facts the daemon's view of them."""

    prefix: str = ETC
    rebuild: Rebuild = with_files
    etc: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def with_dir(
        cls, facts: HostFacts, prefix: str = ETC, rebuild: Rebuild = with_files
    ) -> FileKernel:
        """The kernel ``facts`` describe, with the daemon's files under ``prefix``."""
        k = Kernel.of(facts)
        fields = {f.name: getattr(k, f.name) for f in dataclasses.fields(Kernel)}
        etc = {p: t for p, t in facts.daemons.contents.items() if p.startswith(prefix)}
        return cls(**fields, prefix=prefix, rebuild=rebuild, etc=etc)

    def _file_write(self, a: dict[str, Any]) -> None:
        if not a["path"].startswith(self.prefix):
            return super()._file_write(a)
        self.etc[a["path"]] = a["content"]
        return None

    def _file_remove(self, a: dict[str, Any]) -> None:
        self.etc.pop(a["path"], None)

    def _file_restore(self, a: dict[str, Any]) -> None:
        if not a["path"].startswith(self.prefix):
            return super()._file_restore(a)
        old = self.base.daemons.contents.get(a["path"])
        if old is None:
            self.etc.pop(a["path"], None)
        else:
            self.etc[a["path"]] = old
        return None

    def _file_guard(self, a: dict[str, Any]) -> None:
        del a

    def _backend_mark(self, a: dict[str, Any]) -> None:
        del a

    _backend_apply = _backend_reapply = _backend_mark

    def _backend_release(self, a: dict[str, Any]) -> None:
        """networkd's release deletes the bonds the task created before it reloads."""
        for bond in (a.get("new_bond_links") or "").split():
            self._bond_del({"name": bond})

    def facts(self) -> HostFacts:
        return self.rebuild(super().facts(), dict(self.etc))

    def _backend_hold(self, a: dict[str, Any]) -> None:
        del a

    _backend_unhold = _backend_hold


@dataclasses.dataclass
class NetworkdKernel(FileKernel):
    """FileKernel plus what networkd does when a bond's enslave bounces a link it configures:
    it puts the link's old addresses back (those its old file gave it: the facts' before),
    unless the plan made it leave the link alone (``backend_hold``) until its apply."""

    held: set[str] = dataclasses.field(default_factory=set)

    def _backend_hold(self, a: dict[str, Any]) -> None:
        self.held |= set(a["hold_links"].split())

    def _backend_unhold(self, a: dict[str, Any]) -> None:
        del a
        self.held.clear()

    def _backend_apply(self, a: dict[str, Any]) -> None:
        """take_bridge drops the hold; networkd's reload then configures the slaves from their
        new files, which take every address off them."""
        self.held.clear()
        slaves = {s for b in self.base.topology.bonds for s in b.slave_names}
        slaves |= {
            d
            for d in (a.get("links") or "").split()
            if self.devs.get(d) and self.devs[d].link.master
        }
        self.addresses = [x for x in self.addresses if x.dev not in slaves]

    def _bond_enslave(self, a: dict[str, Any]) -> None:
        super()._bond_enslave(a)
        dev = a["dev"]
        view = next((v for v in self.base.manager(dev).views if v.backend == "networkd"), None)
        if view is not None and view.files and dev not in self.held:
            self.addresses += [x for x in self.base.addresses_of(dev) if x.scope == "global"]


def nd_plan(text: str, before: HostFacts) -> BridgePlan:
    return plan_host(task(f"persist: networkd\n{text}"), before, min_timeout=5)


def written(plan: BridgePlan) -> dict[str, str]:
    """The files the plan writes, by path."""
    return {str(s.args["path"]): str(s.args["content"]) for s in plan.steps
            if s.kind == "file_write"}  # fmt: skip


def round_trip(
    text: str, before: HostFacts, backend: str = "networkd", kernel: FileKernel | None = None
) -> BridgePlan:
    """Plan, apply (confirm finds nothing), plan again (unchanged), roll back: the restore
    check finds nothing and the daemon's files are the old ones exactly."""
    plan = plan_host(task(f"persist: {backend}\n{text}"), before, min_timeout=5)
    assert plan.refusal is None, plan.refusal
    model = kernel or (NetworkdKernel if backend == "networkd" else FileKernel).with_dir(before)
    model.run(plan.steps)
    after = model.facts()
    assert [d.text for d in compare(plan.expected, after)] == []
    again = plan_host(task(f"persist: {backend}\n{text}"), after, min_timeout=5)
    assert (again.refusal, [s.description for s in again.steps]) == (None, [])
    restored = model.run(plan.rollback).facts()
    assert restore_check(before, restored, touched_by(plan)).problems == []
    assert restored.daemons.contents == before.daemons.contents
    kinds = [s.kind for s in plan.steps]
    assert kinds[0] == "backend_mark" and kinds[-1] == "backend_apply"
    back = [s.kind for s in plan.rollback]
    # the files come back and the daemon forgets them before the runtime inverses delete the
    # devices it would not delete itself; it takes the old interfaces back last
    assert back.index("backend_release") > max(i for i, k in enumerate(back) if k == "file_restore")
    assert back[-1] == "backend_reapply"
    return plan


BOND_TASK = (
    "bridge:\n  bond: {name: bond0, slaves: [eth0, eth1], mode: 802.3ad,\n"
    "         options: {miimon: 100, lacp_rate: fast, primary: eth1}}\n"
)
BOND_TASK = BOND_TASK.replace("802.3ad", "active-backup").replace("lacp_rate: fast, ", "")
VLAN_AWARE = (
    "bridge:\n  name: br0\n  nic: eth0\n  addresses: none\n  vlan_filtering: true\n  pvid: 1\n"
    "  vids: [10, '100-199']\n  vlan_interfaces:\n    - {vid: 10, addresses: move}\n"
)
VLAN_BRIDGES = (
    "bridges:\n  - {name: br20, nic: eth0, vlan: 20, addresses: [203.0.113.20/24]}\n"
    "  - {name: br30, nic: eth0, vlan: 30, addresses: none}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
)


def _enslaved(steps: list[Step], before: HostFacts) -> HostFacts:
    """The host after ``steps`` up to their last enslave (before the apply)."""
    last = max(i for i, s in enumerate(steps) if s.kind == "bond_enslave")
    return NetworkdKernel.with_dir(before).run(steps[: last + 1]).facts()


def test_networkd_leaves_the_new_bonds_slaves_alone_until_the_apply() -> None:
    plan = nd_plan(BOND_TASK, nd_host())
    enslaved = _enslaved(list(plan.steps), nd_host())
    # the bond bounced eth0: networkd, held off, did not put its old addresses back
    assert enslaved.addresses_of("eth0") == ()
    assert {a.cidr for a in enslaved.addresses_of("br0")} == {
        "198.51.100.11/24",
        "2001:db8:100::b/64",
    }
    kinds = [s.kind for s in plan.steps]
    (hold,) = [s for s in plan.steps if s.kind == "backend_hold"]
    assert hold.args["hold_links"] == "eth0"  # eth1 has no address networkd would give back
    at = kinds.index("backend_hold")
    # after the moves took eth0's addresses (unmanaging drops what networkd configured), before
    # any enslave
    assert max(i for i, k in enumerate(kinds) if k == "addr_del") < at < kinds.index("bond_enslave")
    back = [s.kind for s in plan.rollback]
    # the hold is dropped without a reload; the reapply, last, reloads
    assert back.index("bond_release") < back.index("backend_unhold") < back.index("backend_reapply")


def test_without_the_hold_networkd_would_put_the_slaves_address_back() -> None:
    unheld = [s for s in nd_plan(BOND_TASK, nd_host()).steps if s.kind != "backend_hold"]
    enslaved = _enslaved(unheld, nd_host())
    assert {a.cidr for a in enslaved.addresses_of("eth0")} == {
        "198.51.100.11/24",
        "2001:db8:100::b/64",
    }


def test_an_existing_bond_or_a_plain_nic_needs_no_hold() -> None:
    assert not [s for s in nd_plan("bridge: {nic: eth0}", nd_host()).steps
                if s.kind == "backend_hold"]  # fmt: skip


def test_a_bond_created_from_the_nic_is_written_as_netdev_and_slave_files() -> None:
    plan = round_trip(BOND_TASK, nd_host())
    files = written(plan)
    assert sorted(files) == [
        f"{ETC}/10-bond0.netdev",
        f"{ETC}/10-bond0.network",
        f"{ETC}/10-br0.netdev",
        f"{ETC}/10-br0.network",
        f"{ETC}/10-eth0.network",
        f"{ETC}/10-eth1.network",
    ]
    bond = files[f"{ETC}/10-bond0.netdev"]
    assert "Kind=bond" in bond and f"MACAddress={MAC0}" in bond  # the first slave's, as at runtime
    assert "[Bond]\nMode=active-backup\nMIIMonitorSec=100ms\n" in bond
    assert "Bridge=br0" in files[f"{ETC}/10-bond0.network"]
    assert (
        "[Network]\nBond=bond0\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        in files[f"{ETC}/10-eth0.network"]
    )
    assert "PrimarySlave=yes" in files[f"{ETC}/10-eth1.network"]
    assert "Address=" not in files[f"{ETC}/10-eth0.network"]
    network = files[f"{ETC}/10-br0.network"]
    assert "Address=198.51.100.11/24" in network and "[Route]\nGateway=198.51.100.1" in network
    assert plan.expected.managers == dict.fromkeys(("br0", "bond0", "eth0", "eth1"), "networkd")
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    assert apply.args["links"] == "br0 bond0 eth0 eth1"
    assert apply.args["prior_links"] == "eth0 eth1"
    assert apply.args["new_bond_links"] == "bond0"


def test_the_rollback_deletes_a_new_bond_before_networkd_reloads() -> None:
    """Reloaded with a new bond still up, networkd takes eth0 out while eth1 stays in and the
    bond and bridge keep eth0's MAC: eth0's link-local address fails DAD (the VM tier)."""
    plan = nd_plan(BOND_TASK, nd_host())
    release = next(s for s in plan.rollback if s.kind == "backend_release")
    command = step_command(release)
    assert command.index('ip link del dev "$fbr_b"') < command.index("networkctl reload")
    assert "for fbr_b in bond0;" in command
    kinds = [s.kind for s in plan.rollback]
    assert kinds.index("backend_release") < kinds.index("bond_del")  # the release goes first
    existing = nd_plan("bridge: {nic: bond0}", bonded_nd_host())
    kept = next(s for s in existing.rollback if s.kind == "backend_release")
    assert kept.args.get("new_bond_links") is None and step_command(kept) == "networkctl reload"


def idle_eth1_host() -> HostFacts:
    """nd_host, but nothing configures eth1 (no .network file, down): a spare second NIC."""
    base = nd_host()
    contents = {p: t for p, t in base.daemons.contents.items()
                if p.startswith(ETC) and p != f"{ETC}/10-eth1.network"}  # fmt: skip
    links = tuple(
        dataclasses.replace(k, admin_up=False, state="DOWN") if k.name == "eth1" else k
        for k in base.links
    )
    return with_files(dataclasses.replace(base, links=links), contents)


def test_an_idle_second_nic_becomes_a_slave_with_a_new_file_and_goes_back_unmanaged() -> None:
    before = idle_eth1_host()
    assert before.manager("eth1").manager is None
    plan = round_trip(BOND_TASK, before)
    files = written(plan)
    assert files[f"{ETC}/10-eth1.network"].endswith(
        "[Match]\nName=eth1\n\n[Network]\nBond=bond0\nLinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\nPrimarySlave=yes\n"
    )
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    # the rollback waits for networkd to configure again only what it configured before
    assert apply.args["prior_links"] == "eth0"
    assert next(s for s in plan.steps if s.kind == "bond_add").args["mac"] == MAC0


def test_a_vlan_aware_bridge_writes_its_vlan_table_and_br0_10() -> None:
    files = written(round_trip(VLAN_AWARE, nd_host()))
    assert "VLANFiltering=yes\nDefaultPVID=none" in files[f"{ETC}/10-br0.netdev"]
    bridge = files[f"{ETC}/10-br0.network"]
    assert "VLAN=br0.10" in bridge and "[BridgeVLAN]\nVLAN=10\n" in bridge
    assert "Address=" not in bridge
    port = files[f"{ETC}/10-eth0.network"]
    assert port.endswith(
        "[BridgeVLAN]\nVLAN=10\n\n[BridgeVLAN]\nVLAN=100-199\n\n"
        "[BridgeVLAN]\nPVID=1\nEgressUntagged=1\n"
    )
    assert "[VLAN]\nId=10\n" in files[f"{ETC}/10-br0.10.netdev"]
    vif = files[f"{ETC}/10-br0.10.network"]
    assert "Address=198.51.100.11/24" in vif and "Gateway=198.51.100.1" in vif


def test_vlan_bridges_and_a_host_only_bridge_keep_the_parents_file_and_add_vlan_lines() -> None:
    before = nd_host()
    files = written(round_trip(VLAN_BRIDGES, before))
    old = before.daemons.contents[f"{ETC}/10-eth0.network"]
    assert files[f"{ETC}/10-eth0.network"] == old.rstrip("\n") + "\nVLAN=eth0.20\nVLAN=eth0.30\n"
    assert "Bridge=br20" in files[f"{ETC}/10-eth0.20.network"]
    assert "[VLAN]\nId=30\n" in files[f"{ETC}/10-eth0.30.netdev"]
    assert "MACAddress" not in files[f"{ETC}/10-br9.netdev"]  # host-only: no uplink's MAC
    assert "Address=198.18.0.1/24" in files[f"{ETC}/10-br9.network"]


def test_an_existing_bond_is_the_port_its_netdev_untouched() -> None:
    before = bonded_nd_host()
    plan = round_trip("bridge: {nic: bond0}", before)
    files = written(plan)
    assert f"{ETC}/05-bond0.netdev" not in files and f"{ETC}/10-eth0.network" not in files
    assert "Bridge=br0" in files[f"{ETC}/05-bond0.network"]
    assert "Address=198.51.100.11/24" in files[f"{ETC}/10-br0.network"]


@pytest.mark.parametrize(
    ("text", "before", "reason"),
    [
        (
            BOND_TASK.replace("primary: eth1", "use_carrier: false"),
            nd_host(),
            "bond bond0: option use_carrier has no [Bond] key in systemd-networkd",
        ),
        (
            "bridge: {bond: {name: bond0, slaves: [eth0, eth1], options: "
            "{arp_interval: 100, arp_ip_target: [198.51.100.1], arp_validate: filter}}}",
            nd_host(),
            "arp_validate filter has no ARPValidate= value in systemd 252",
        ),
    ],
    ids=["use-carrier", "arp-validate-filter"],
)
def test_what_networkd_cannot_write_is_refused_before_any_change(
    text: str, before: HostFacts, reason: str
) -> None:
    plan = nd_plan(text, before)
    assert plan.refusal is not None and reason in plan.refusal, plan.refusal
    assert plan.steps == ()


def test_the_apply_reconfigures_every_link_and_waits_for_them() -> None:
    plan = nd_plan(BOND_TASK, nd_host())
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert "networkctl reload" in apply and "for fbr_l in br0 bond0 eth0 eth1;" in apply
    assert "networkctl reconfigure" in apply
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert "for fbr_l in eth0 eth1;" in reapply and "bond0" not in reapply


def test_link_lists_in_backend_steps_are_interface_names() -> None:
    args = {"backend": "networkd", "bridge": "br0", "nic": "eth0", "links": "br0 eth0;reboot"}
    with pytest.raises(ValidationError):
        psteps.backend_apply(args)


@pytest.mark.parametrize(
    "text", [BOND_TASK, VLAN_AWARE, VLAN_BRIDGES], ids=["bond", "vlan-aware", "vlans"]
)
def test_every_prefix_of_a_persisted_topology_plan_rolls_back_exactly(text: str) -> None:
    """A step that fails anywhere, files written or not: the whole rollback leaves the kernel
    and networkd's files as they were."""
    before = nd_host()
    plan = nd_plan(text, before)
    assert plan.refusal is None, plan.refusal
    for k in range(1, len(plan.steps) + 1):  # the hold's prefixes included
        kernel = NetworkdKernel.with_dir(before).run(plan.steps[:k])
        restored = kernel.run(plan.rollback).facts()
        problems = restore_check(before, restored, touched_by(plan)).problems
        assert problems == [], f"after {k} steps ({plan.steps[k - 1].description})"
        assert restored.daemons.contents == before.daemons.contents


def test_a_management_address_moving_from_an_existing_nic_vlan_is_refused_when_persisted() -> None:
    base = nd_host()
    vlan = Link("eth0.10", "vlan", MAC0, 1500, "UP", True, None)
    before = dataclasses.replace(
        base,
        links=(*base.links, vlan),
        addresses=tuple(dataclasses.replace(a, dev="eth0.10") for a in base.addresses),
        routes=tuple(dataclasses.replace(r, dev="eth0.10") for r in base.routes),
        topology=TopologyFacts(vlans=(VlanDevice("eth0.10", 10, "eth0"),), vlan_table=()),
    )
    plan = nd_plan(VLAN_AWARE, before)
    assert plan.refusal is not None and plan.steps == ()
    assert "the task deletes VLAN device eth0.10, whose files fleetbr does not rewrite" in (
        plan.refusal
    )


def test_host_only_bridges_alone_still_need_the_daemon() -> None:
    before = nd_host()
    text = "bridge: {host_only: true, addresses: [198.18.0.1/24]}\n"
    assert nd_plan(text, before).refusal is None
    stopped = dataclasses.replace(before, daemons=dataclasses.replace(before.daemons, running=()))
    plan = nd_plan(text, stopped)
    assert plan.refusal == "persist: networkd needs networkd, which is not running"


BOND_VLAN = "bridge: {name: br20, bond: {name: bond0, slaves: [eth0, eth1]}, vlan: 20}\n"


def test_vlans_of_a_new_bond_put_their_vlan_lines_in_the_bonds_own_file() -> None:
    files = written(round_trip(BOND_VLAN, nd_host()))
    bond = files[f"{ETC}/10-bond0.network"]
    assert "VLAN=bond0.20\n" in bond and "Bridge=" not in bond
    assert "Bridge=br20" in files[f"{ETC}/10-bond0.20.network"]
    assert "Address=198.51.100.11/24" in files[f"{ETC}/10-br20.network"]
    assert "Bond=bond0" in files[f"{ETC}/10-eth0.network"]


NEW_BOND_VLANS = (
    "bridges:\n"
    "  - {name: br20, nic: bond0, vlan: 20, addresses: [203.0.113.20/24],\n"
    "     bond: {name: bond0, slaves: [eth0, eth1]}}\n"
    "  - {name: br30, nic: bond0, vlan: 30, addresses: none}\n"
    "  - {name: br9, host_only: true, addresses: [198.18.0.1/24]}\n"
)


def test_a_new_bond_that_keeps_the_addresses_has_them_in_its_own_file() -> None:
    files = written(round_trip(NEW_BOND_VLANS, nd_host()))
    bond = files[f"{ETC}/10-bond0.network"]
    assert "Address=198.51.100.11/24" in bond and "[Route]\nGateway=198.51.100.1" in bond
    assert "VLAN=bond0.20\nVLAN=bond0.30\n" in bond and "LinkLocalAddressing=no" not in bond
    assert "Address=203.0.113.20/24" in files[f"{ETC}/10-br20.network"]
    assert "Address=" not in files[f"{ETC}/10-br30.network"]
