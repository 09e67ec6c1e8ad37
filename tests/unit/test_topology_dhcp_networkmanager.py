"""``addresses: dhcp`` persisted by NetworkManager: the facts read the identity NM's client
presents (``nmcli -t -f DHCP4,DHCP6 device show``, captured on the distro lab's NM DHCP host);
the bridge's profile pins it (client id, DUID, IAID) with the NIC's MAC and route metrics; plan
-> apply -> confirm -> plan again (unchanged) -> rollback -> restore check on a model of NM's
internal client and a server with fixed leases; the lease waits; what stays refused."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Literal

import pytest

from fleetbr.backends import ini
from fleetbr.backends.model import BackendRefusal, Holder
from fleetbr.backends.networkmanager.dhcp import source_nic
from fleetbr.changes.bridge.topology import TopoBridge
from fleetbr.facts.model import Address, HostFacts, NmDhcpIdentity, Route
from fleetbr.facts.topology import DhcpLease
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.shell import step_command
from tests.unit.test_facts_nm_dhcp import HOST_DUID
from tests.unit.test_topology_networkd import FileKernel, round_trip, written
from tests.unit.test_topology_networkmanager import ETC, ETH0_UUID, MAC0, nm_host, with_nm
from tests.unit.test_topology_plan import task

TASK = "bridge: {addresses: dhcp}\n"
LEASE4, LEASE6 = "198.51.100.10/24", "2001:db8:100::a/128"
POOL = "198.51.100.220/24"  # the lab's: no IPv6 pool (fleetbr.lab.dhcp)
DHCP_PROFILE = (
    "# fleetbr lab host hv01: eth0 configured by NetworkManager (keyfile).\n"
    f"[connection]\nid=eth0\nuuid={ETH0_UUID}\ntype=ethernet\ninterface-name=eth0\n"
    "autoconnect=true\n\n[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n"
    "addr-gen-mode=eui64\n"
)


def _sections(text: str) -> dict[str, dict[str, str]]:
    return {name: dict(ini.values(lines)) for name, lines in ini.sections(text)}


def default_iaid(dev: str) -> str:
    """NM's IAID of ``dev`` when nothing pins it (derived from the name: ``ifname``)."""
    raw = f"{zlib.crc32(dev.encode()):08x}"
    return ":".join(raw[i : i + 2] for i in range(0, 8, 2))


@dataclasses.dataclass
class NmDhcpKernel(FileKernel):
    """The kernel and NM's keyfiles (each device's active profile: the highest
    autoconnect-priority), with NM's internal client on every up device that is no port and
    whose profile says ``method=auto``, and the lab's server: ``fixed`` maps an identity (``4
    CLIENT-ID`` or ``6 DUID IAID``) to its lease; another IPv4 identity gets a pool address,
    another IPv6 one none. NM's defaults: client id ``01``+MAC, the host's DUID, IAID from the
    name. The leases replace the same addresses put there statically."""

    fixed: dict[str, str] = dataclasses.field(default_factory=dict)

    def _profile(self, dev: str) -> dict[str, dict[str, str]] | None:
        found = [
            (int(s.get("connection", {}).get("autoconnect-priority", "0")), s)
            for s in map(_sections, self.etc.values())
            if s.get("connection", {}).get("interface-name") == dev
        ]
        return max(found, key=lambda f: f[0])[1] if found else None

    def identity(self, dev: str, mac: str, profile: dict[str, dict[str, str]]) -> NmDhcpIdentity:
        """What NM's client presents on ``dev`` with ``profile``."""
        v4, v6 = profile.get("ipv4", {}), profile.get("ipv6", {})
        iaid = v6.get("dhcp-iaid")
        return NmDhcpIdentity(
            client_id=v4.get("dhcp-client-id") or f"01:{mac}",
            duid=v6.get("dhcp-duid") or HOST_DUID,
            iaid=":".join(f"{int(iaid):08x}"[i : i + 2] for i in range(0, 8, 2))
            if iaid
            else default_iaid(dev),
        )

    def facts(self) -> HostFacts:
        base = super().facts()
        addresses, leases, idents = list(base.addresses), [], {}
        for name, dev in self.devs.items():
            profile = self._profile(name)
            if profile is None or not dev.link.admin_up or dev.link.master is not None:
                continue
            ident = self.identity(name, dev.link.mac or "", profile)
            idents[name] = ident
            got = []
            if profile.get("ipv4", {}).get("method") == "auto":
                got.append(self.fixed.get(f"4 {ident.client_id}", POOL))
            lease6 = self.fixed.get(f"6 {ident.duid} {ident.iaid}")
            if profile.get("ipv6", {}).get("method") == "auto" and lease6:
                got.append(lease6)
            for cidr in got:
                family: Literal[4, 6] = 6 if ":" in cidr else 4
                addresses = [a for a in addresses if (a.dev, a.cidr) != (name, cidr)]
                addresses.append(Address(name, family, cidr, "global", dynamic=True))
                leases.append(DhcpLease(name, family, cidr, "networkmanager", 3600))
        topology = dataclasses.replace(base.topology, dhcp=tuple(leases))
        daemons = dataclasses.replace(base.daemons, nm_dhcp=idents)
        return dataclasses.replace(
            base, addresses=tuple(addresses), topology=topology, daemons=daemons
        )


def kernel(facts: HostFacts, fixed: dict[str, str]) -> NmDhcpKernel:
    """The model of a host ``facts`` describe, with the server's ``fixed`` leases."""
    model = NmDhcpKernel.with_dir(facts, ETC, with_nm)
    assert isinstance(model, NmDhcpKernel)
    model.fixed = dict(fixed)
    return model


def nm_dhcp_host(profile: str = DHCP_PROFILE) -> tuple[HostFacts, dict[str, str]]:
    """The NetworkManager lab host with eth0 a DHCP client of NM's (``profile``) holding its
    fixed leases (the facts as the model renders them), and the server's fixed leases."""
    base = nm_host()
    static = [a for a in base.addresses if not (a.dev == "eth0" and a.scope == "global")]
    routes = (
        Route(4, "default", "eth0", "198.51.100.1", 100, "dhcp"),
        Route(6, "2001:db8:100::/64", "eth0", None, 100, "ra"),
        Route(6, "default", "eth0", "fe80::1", 100, "ra"),
    )
    base = dataclasses.replace(base, addresses=tuple(static), routes=routes)
    contents = {p: t for p, t in base.daemons.contents.items() if p.startswith(ETC)}
    base = with_nm(base, {**contents, f"{ETC}/eth0.nmconnection": profile})
    model = kernel(base, {})
    ident = model.identity("eth0", MAC0, _sections(profile))
    fixed = {f"4 {ident.client_id}": LEASE4, f"6 {ident.duid} {ident.iaid}": LEASE6}
    return kernel(base, fixed).facts(), fixed


def nm_plan(text: str, before: HostFacts) -> BridgePlan:
    return plan_host(task(f"persist: networkmanager\n{text}"), before, min_timeout=5)


def test_the_bridge_keeps_the_nics_leases_and_the_rollback_gives_them_back() -> None:
    before, fixed = nm_dhcp_host()
    assert sorted(a.cidr for a in before.topology.leases_of("eth0")) == [LEASE4, LEASE6]
    plan = round_trip(TASK, before, "networkmanager", kernel(before, fixed))
    bridge = _sections(written(plan)[f"{ETC}/br0.nmconnection"])
    assert bridge["ethernet"] == {"cloned-mac-address": MAC0.upper()}
    assert bridge["ipv4"] == {
        "method": "auto",
        "dhcp-client-id": f"01:{MAC0}",
        "route-metric": "100",
    }
    iaid = int(default_iaid("eth0").replace(":", ""), 16)
    assert bridge["ipv6"] == {
        "method": "auto",
        "dhcp-duid": HOST_DUID,
        "dhcp-iaid": str(iaid),
        "route-metric": "100",
        "addr-gen-mode": "eui64",
    }
    port = _sections(written(plan)[f"{ETC}/br0-port-eth0.nmconnection"])
    assert "ipv4" not in port and port["connection"]["slave-type"] == "bridge"


def test_nms_defaults_on_the_bridge_would_lose_the_ipv6_lease() -> None:
    """Why the identity is pinned: the bridge's own IAID (from its name) is another IA."""
    before, fixed = nm_dhcp_host()
    model = kernel(before, fixed)
    model.run(nm_plan(TASK, before).steps)
    text = model.etc[f"{ETC}/br0.nmconnection"]
    model.etc[f"{ETC}/br0.nmconnection"] = "\n".join(
        line for line in text.splitlines() if not line.startswith(("dhcp-iaid", "dhcp-duid"))
    )
    assert [a.cidr for a in model.facts().topology.leases_of("br0")] == [LEASE4]


def test_the_bridge_with_the_nic_profiles_identity_setting_keeps_it() -> None:
    """A NIC profile that sets its own client id: the bridge presents what the NIC did."""
    profile = DHCP_PROFILE.replace("method=auto\n\n", "method=auto\ndhcp-client-id=01:aa\n\n", 1)
    before, fixed = nm_dhcp_host(profile)
    assert before.daemons.nm_dhcp["eth0"].client_id == "01:aa"
    plan = round_trip(TASK, before, "networkmanager", kernel(before, fixed))
    assert "dhcp-client-id=01:aa\n" in written(plan)[f"{ETC}/br0.nmconnection"]


def test_the_apply_waits_for_the_leases_on_the_bridge_and_the_rollback_on_the_nic() -> None:
    before, _ = nm_dhcp_host()
    plan = nm_plan(TASK, before)
    apply = next(s for s in plan.steps if s.kind == "backend_apply")
    reapply = next(s for s in plan.rollback if s.kind == "backend_reapply")
    words = "br0=198.51.100.10 eth0=198.51.100.10 br0=2001:db8:100::a eth0=2001:db8:100::a"
    assert apply.args["leases"] == reapply.args["leases"] == words
    forward, back = step_command(apply), step_command(reapply)
    assert "for fbr_w in br0=198.51.100.10 br0=2001:db8:100::a; do" in forward
    assert "for fbr_w in eth0=198.51.100.10 eth0=2001:db8:100::a; do" in back


def test_a_lease_of_ipv4_only_needs_no_dhcpv6_identity() -> None:
    before, fixed = nm_dhcp_host()
    v4 = [lease for lease in before.topology.dhcp if lease.family == 4]
    idents = {"eth0": NmDhcpIdentity(client_id=f"01:{MAC0}")}
    only = dataclasses.replace(
        before,
        addresses=tuple(a for a in before.addresses if a.cidr != LEASE6),
        topology=dataclasses.replace(before.topology, dhcp=tuple(v4)),
        daemons=dataclasses.replace(before.daemons, nm_dhcp=idents),
    )
    bridge = written(nm_plan(TASK, only))[f"{ETC}/br0.nmconnection"]
    assert "[ipv6]\nmethod=auto\nroute-metric=100\naddr-gen-mode=eui64\n" in bridge
    del fixed


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda f: dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, nm_dhcp={})),
            "persist: networkmanager: the DHCP client identity of eth0 (client id, DUID, IAID) "
            "was not read (nmcli -f DHCP4,DHCP6 device show eth0); fleetbr keeps a lease only "
            "with the identity it was given to",
        ),
        (
            lambda f: dataclasses.replace(
                f,
                daemons=dataclasses.replace(
                    f.daemons, nm_dhcp={"eth0": NmDhcpIdentity(client_id="01:aa")}
                ),
            ),
            "persist: networkmanager: the DHCP client identity of eth0 (DUID, IAID) was not read",
        ),
        (
            lambda f: dataclasses.replace(
                f,
                topology=dataclasses.replace(
                    f.topology,
                    dhcp=tuple(
                        dataclasses.replace(lease, client="dhclient") for lease in f.topology.dhcp
                    ),
                ),
            ),
            "persist: networkmanager: the DHCP lease 198.51.100.10/24 on eth0 is held by "
            "dhclient, not NetworkManager; fleetbr would change the client",
        ),
    ],
)
def test_what_cannot_be_pinned_is_refused_before_any_change(change: object, refusal: str) -> None:
    before, _ = nm_dhcp_host()
    assert callable(change)
    plan = nm_plan(TASK, change(before))
    assert plan.refusal is not None and plan.refusal.startswith(refusal), plan.refusal
    assert plan.steps == ()


def test_dhcp_on_a_vlan_interface_is_refused() -> None:
    before, _ = nm_dhcp_host()
    text = (
        "bridge:\n  addresses: none\n  vlan_filtering: true\n  vids: [10]\n"
        "  vlan_interfaces:\n    - {vid: 10, addresses: dhcp}\n"
    )
    refusal = nm_plan(text, before).refusal
    assert refusal is not None and "addresses: dhcp on VLAN interface br0.10" in refusal


@pytest.mark.parametrize(
    ("bridge", "created"),
    [
        (TopoBridge("br0", "eth0", vlan=20, addresses="dhcp"), set()),
        (TopoBridge("br0", "bond0", addresses="dhcp"), {"bond0"}),
        (TopoBridge("br0", None, addresses="dhcp"), set()),
    ],
)
def test_the_identity_is_a_nics_only(bridge: TopoBridge, created: set[str]) -> None:
    """Over a VLAN, a new bond or nothing, no NIC's client presented the identity to pin."""
    with pytest.raises(BackendRefusal, match="addresses: dhcp on br0 is written over a NIC only"):
        source_nic(bridge, Holder("br0", (), ()), created)
    assert source_nic(TopoBridge("br0", "eth0"), Holder("br0", (), (), "eth0"), set()) == "eth0"
