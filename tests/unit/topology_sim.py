"""A small model of the kernel for topology steps (this machine's kernel has no bonding, 8021q
or bridge VLAN filtering): applies plan steps to HostFacts as Linux would, so unit tests can run
plan -> apply -> confirm -> rollback -> restore check without a host.

What it models, because the plans depend on it: a NIC must be down to join a bond (the step sets
it down) and comes up as a slave; a released slave is closed and gets its own MAC back; a link
that goes down loses its IPv6 global addresses (and a device its routes when it is deleted); a
bond takes its first slave's MAC; a VLAN device has its parent's MAC. Kernel routes are not
modelled (the fixtures have none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetbr.facts.model import Address, Bridge, HostFacts, Link, Route
from fleetbr.facts.topology import Bond, BondSlave, PortVlan, TopologyFacts, VlanDevice
from fleetbr.plan.model import Step
from fleetbr.plan.netfilter import sha256


@dataclass
class _Dev:
    link: Link
    perm_mac: str | None
    bond: tuple[str, tuple[tuple[str, Any], ...]] | None = None  # mode, options
    vlan: tuple[int, str, str] | None = None  # vid, parent, protocol
    bridge: tuple[bool, int] | None = None  # stp, forward delay
    filtering: bool = False
    default_pvid: int = 1
    pinned: bool = False  # a bond created with a MAC (it keeps it when slaves come)


@dataclass
class Kernel:
    """Mutable host state built from HostFacts; ``facts()`` renders it back."""

    base: HostFacts
    devs: dict[str, _Dev] = field(default_factory=dict)
    addresses: list[Address] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    table: list[PortVlan] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # slaves in enslave order
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content written
    backups: dict[str, str | None] = field(default_factory=dict)  # path -> sha256 before

    @classmethod
    def of(cls, facts: HostFacts) -> Kernel:
        """The kernel state ``facts`` describe."""
        k = cls(facts, addresses=list(facts.addresses), routes=list(facts.routes))
        topo = facts.topology
        perm = {s.name: s.perm_mac for b in topo.bonds for s in b.slaves}
        for link in facts.links:
            dev = _Dev(link, perm.get(link.name) or link.mac)
            bond = topo.bond(link.name)
            if bond is not None:
                dev.bond = (bond.mode, bond.options)
            vlan = topo.vlan(link.name)
            if vlan is not None and vlan.parent is not None:
                dev.vlan = (vlan.vid, vlan.parent, vlan.protocol)
            br = facts.bridge(link.name)
            if br is not None:
                dev.bridge = (br.stp, br.forward_delay)
                dev.filtering = link.name in topo.vlan_filtering
                pvid = topo.default_pvid(link.name)
                dev.default_pvid = 1 if pvid is None else pvid
            k.devs[link.name] = dev
        k.order = [s.name for b in topo.bonds for s in b.slaves]
        k.table = list(topo.vlan_table or ())
        return k

    def run(self, steps: Iterable[Step]) -> Kernel:
        """Apply ``steps`` in order (an unknown kind is an error: the model must know it)."""
        for step in steps:
            getattr(self, f"_{step.kind}")(dict(step.args))
        return self

    # links
    def _set(self, name: str, **changes: Any) -> None:
        dev = self.devs[name]
        dev.link = dataclasses.replace(dev.link, **changes)
        if changes.get("admin_up") is False:
            self.addresses = [
                a
                for a in self.addresses
                if not (a.dev == name and a.family == 6 and a.scope == "global")
            ]

    def _new(self, name: str, kind: str, mac: str | None) -> _Dev:
        assert name not in self.devs, f"{name} exists"
        dev = _Dev(Link(name, kind, mac, 1500, "DOWN", False, None), mac)
        self.devs[name] = dev
        return dev

    def _delete(self, name: str) -> None:
        del self.devs[name]
        self.addresses = [a for a in self.addresses if a.dev != name]
        self.routes = [r for r in self.routes if r.dev != name]
        self.table = [e for e in self.table if e.dev != name]
        for other in self.devs.values():
            if other.link.master == name:
                other.link = dataclasses.replace(other.link, master=None)

    def _link_up(self, a: dict[str, Any]) -> None:
        self._set(a["dev"], admin_up=True, state="UP")

    def _link_down(self, a: dict[str, Any]) -> None:
        if a["dev"] in self.devs:
            self._set(a["dev"], admin_up=False, state="DOWN")

    def _link_master(self, a: dict[str, Any]) -> None:
        assert self.devs[a["master"]].bridge is not None
        self._set(a["dev"], master=a["master"])

    def _link_nomaster(self, a: dict[str, Any]) -> None:
        if a["dev"] not in self.devs or self.devs[a["dev"]].link.master != a["master"]:
            return  # the macro checks the master first
        self.table = [e for e in self.table if e.dev != a["dev"]]
        self._set(a["dev"], master=None)

    # bridges
    def _bridge_add(self, a: dict[str, Any]) -> None:
        dev = self._new(a["name"], "bridge", a["mac"] or "02:00:00:00:00:99")
        dev.bridge = (a["stp"], a["forward_delay"])

    def _bridge_set(self, a: dict[str, Any]) -> None:
        dev = self.devs[a["name"]]
        dev.bridge = (a["stp"], a["forward_delay"])
        if a["mac"]:
            self._set(a["name"], mac=a["mac"])

    def _bridge_del(self, a: dict[str, Any]) -> None:
        if a["name"] in self.devs:
            self._delete(a["name"])

    def _bridge_vlan_set(self, a: dict[str, Any]) -> None:
        if a["name"] not in self.devs and not a["on"]:
            return  # the macro checks the bridge first when it switches filtering off
        self.devs[a["name"]].filtering = a["on"]
        self.devs[a["name"]].default_pvid = a["default_pvid"]

    def _bridge_vlan_add(self, a: dict[str, Any]) -> None:
        dev = self.devs[a["dev"]]
        assert a["self"] or dev.link.master is not None, f"{a['dev']} is no bridge port"
        self.table.append(PortVlan(a["dev"], a["vid"], a["vid_end"], a["pvid"], a["untagged"]))

    def _bridge_vlan_del(self, a: dict[str, Any]) -> None:
        self.table = [
            e for e in self.table if (e.dev, e.vid, e.vid_end) != (a["dev"], a["vid"], a["vid_end"])
        ]

    # bonds
    def _bond_add(self, a: dict[str, Any]) -> None:
        words = a["options"].split()
        options = tuple(sorted(zip(words[::2], (_value(w) for w in words[1::2]), strict=True)))
        # a bond given a MAC keeps it; else it takes its first slave's (_bond_enslave)
        self._new(a["name"], "bond", a.get("mac") or "02:00:00:00:00:b0").bond = (
            a["mode"],
            options,
        )
        self.devs[a["name"]].pinned = bool(a.get("mac"))

    def _bond_del(self, a: dict[str, Any]) -> None:
        for dev in list(self.devs.values()):
            if dev.link.master == a["name"]:
                self._bond_release({"dev": dev.link.name, "master": a["name"], "up": False})
        if a["name"] in self.devs:
            self._delete(a["name"])

    def _bond_enslave(self, a: dict[str, Any]) -> None:
        slave, bond = self.devs[a["dev"]], self.devs[a["master"]]
        assert bond.bond is not None
        self._set(a["dev"], admin_up=False, state="DOWN")
        first = not any(d.link.master == a["master"] for d in self.devs.values())
        if first and not bond.pinned:
            self._set(a["master"], mac=slave.link.mac)  # the first slave's MAC
        self._set(a["dev"], master=a["master"], mac=bond.link.mac, admin_up=True, state="UP")
        self.order.append(a["dev"])

    def _bond_release(self, a: dict[str, Any]) -> None:
        dev = self.devs[a["dev"]]
        if dev.link.master == a["master"]:  # as steps.sh.j2: released if enslaved, then up
            self._set(a["dev"], master=None, mac=dev.perm_mac, admin_up=False, state="DOWN")
            self.order.remove(a["dev"])
        if a.get("addrgenmode"):
            self._set(a["dev"], addrgenmode=a["addrgenmode"])
        if a["up"]:
            self._set(a["dev"], admin_up=True, state="UP")

    # VLAN devices
    def _vlan_add(self, a: dict[str, Any]) -> None:
        # as the shell (steps.sh.j2): a VLAN device that is there already is kept (the rollback
        # recreates one whose deletion never ran)
        if a["name"] not in self.devs or self.devs[a["name"]].vlan is None:
            parent = self.devs[a["link"]]
            made = self._new(a["name"], "vlan", parent.link.mac)
            made.vlan = (a["vid"], a["link"], a["protocol"])
        if a["up"]:
            self._set(a["name"], admin_up=True, state="UP")

    def _vlan_del(self, a: dict[str, Any]) -> None:
        if a["name"] in self.devs:
            self._delete(a["name"])

    # files (the bridge's record): content in, sha256 out; a restore puts the old hash back
    def _file_write(self, a: dict[str, Any]) -> None:
        self.backups.setdefault(a["path"], self.base.managed_files.get(a["path"]))
        self.files[a["path"]] = a["content"]

    def _file_restore(self, a: dict[str, Any]) -> None:
        self.files.pop(a["path"], None)

    # addresses and routes
    def _addr_add(self, a: dict[str, Any]) -> None:
        assert a["dev"] in self.devs, f"no device {a['dev']}"
        cidr = a["cidr"]
        self.addresses = [x for x in self.addresses if (x.dev, x.cidr) != (a["dev"], cidr)]
        self.addresses.append(
            Address(
                a["dev"],
                a["family"],
                cidr,
                "global",
                broadcast=a.get("broadcast"),
                label=a.get("label"),
            )
        )

    def _addr_del(self, a: dict[str, Any]) -> None:
        self.addresses = [x for x in self.addresses if (x.dev, x.cidr) != (a["dev"], a["cidr"])]

    def _route_add(self, a: dict[str, Any]) -> None:
        dev = self.devs.get(a["dev"])
        assert dev is not None and dev.link.admin_up, f"route through {a['dev']}: down or absent"
        route = Route(
            a["family"],
            a["dst"],
            a["dev"],
            a.get("gateway"),
            a.get("metric"),
            a.get("protocol") or "boot",
            table=a.get("table") or "main",
            scope=a.get("scope"),
            onlink=bool(a.get("onlink")),
        )
        self.routes = [r for r in self.routes if not _same(r, route)] + [route]

    def _route_del(self, a: dict[str, Any]) -> None:
        gone = Route(a["family"], a["dst"], a["dev"], a.get("gateway"), a.get("metric"))
        self.routes = [r for r in self.routes if not _same(r, gone)]

    def facts(self) -> HostFacts:
        """The HostFacts of the current state."""
        links = tuple(d.link for d in self.devs.values())
        bridges = tuple(
            Bridge(
                n,
                d.bridge[0],
                d.bridge[1],
                tuple(x.link.name for x in self.devs.values() if x.link.master == n),
            )
            for n, d in self.devs.items()
            if d.bridge is not None
        )
        bonds = tuple(
            Bond(
                n,
                d.bond[0],
                d.bond[1],
                tuple(
                    BondSlave(s, "ACTIVE", "UP", self.devs[s].perm_mac)
                    for s in self.order
                    if self.devs[s].link.master == n
                ),
            )
            for n, d in self.devs.items()
            if d.bond is not None
        )
        vlans = tuple(
            VlanDevice(n, d.vlan[0], d.vlan[1], d.vlan[2])
            for n, d in self.devs.items()
            if d.vlan is not None
        )
        topology = dataclasses.replace(
            self.base.topology,
            bonds=bonds,
            vlans=vlans,
            vlan_table=tuple(self.table),
            vlan_filtering=tuple(n for n, d in self.devs.items() if d.filtering),
            default_pvids=tuple((n, d.default_pvid) for n, d in self.devs.items() if d.bridge),
        )
        managed = dict(self.base.managed_files)
        pins = dict(self.base.pins)
        for path, content in self.files.items():
            managed[path] = sha256(content or "")
            pins[path] = content or ""
        return dataclasses.replace(
            self.base,
            links=links,
            addresses=tuple(self.addresses),
            routes=tuple(self.routes),
            bridges=bridges,
            topology=topology,
            managed_files=managed,
            pins=pins,
        )


def _same(a: Route, b: Route) -> bool:
    return (a.family, a.dst, a.dev, a.gateway, a.table) == (
        b.family,
        b.dst,
        b.dev,
        b.gateway,
        b.table,
    )


def _value(word: str) -> str | int | bool:
    return int(word) if word.isdigit() else word


def bonded(base: HostFacts) -> HostFacts:
    """``base`` (eth0 with the addresses, an idle eth1) with both NICs in an active-backup bond0
    (miimon 100) that holds eth0's addresses and every route; bond0 and both slaves carry eth0's
    MAC, as the kernel gives a bond its first slave's. Each backend's test adds its files."""
    eth0, eth1 = base.link("eth0"), base.link("eth1")
    assert eth0 is not None and eth1 is not None and eth0.mac is not None
    links = tuple(
        dataclasses.replace(k, master="bond0", mac=eth0.mac) if k.name in ("eth0", "eth1") else k
        for k in base.links
    )
    slaves = (
        BondSlave("eth0", "ACTIVE", "UP", eth0.mac),
        BondSlave("eth1", "BACKUP", "UP", eth1.mac),
    )
    bond = Bond("bond0", "active-backup", (("miimon", 100),), slaves)
    return dataclasses.replace(
        base,
        links=(*links, Link("bond0", "bond", eth0.mac, 1500, "UP", True, None)),
        addresses=tuple(
            dataclasses.replace(a, dev="bond0") if a.dev == "eth0" else a for a in base.addresses
        ),
        routes=tuple(dataclasses.replace(r, dev="bond0") for r in base.routes),
        topology=TopologyFacts(bonds=(bond,), vlan_table=()),
    )
