"""``addresses: dhcp`` persisted by netplan (networkd renderer): the bridge's entry has DHCP and
the NIC's MAC, and a networkd drop-in beside netplan's generated file pins the identity the NIC's
lease records (netplan 0.106 cannot name an IAID or DUID); plan -> apply -> confirm -> plan again
(unchanged) -> rollback -> restore check on the DHCP model (tests/unit/dhcp_sim.py) with netplan
rendering for networkd's client modelled; what stays refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from fleetbr.backends.netplan.dhcp import dropin_path
from fleetbr.facts.model import HostFacts, Route
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.diff import compare
from fleetbr.plan.shell import step_command
from tests.unit.dhcp_sim import LEASE4, LEASE6, POOL, DhcpKernel, client_id
from tests.unit.test_topology_netplan import YAML, np_host, with_netplan
from tests.unit.test_topology_networkd import ETC, round_trip, written
from tests.unit.test_topology_plan import task

TASK = "bridge: {addresses: dhcp}\n"
DHCP_YAML = (
    "# fleetbr lab host hv03: eth0 configured by netplan (networkd renderer).\n"
    "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n"
    "    eth0:\n      dhcp4: true\n      dhcp6: true\n      accept-ra: true\n"
    "    eth1:\n      accept-ra: false\n"
)


def with_netplan_dhcp(base: HostFacts, files: dict[str, str]) -> HostFacts:
    """``base`` with these /etc/netplan files and networkd drop-ins."""
    drop = {p: t for p, t in files.items() if p.startswith(ETC)}
    kept = {p: t for p, t in base.daemons.contents.items() if not p.startswith(ETC)}
    base = dataclasses.replace(
        base, daemons=dataclasses.replace(base.daemons, contents={**kept, **drop})
    )
    return with_netplan(base, {p: t for p, t in files.items() if p.startswith("/etc/netplan")})


def _entry(text: str, dev: str) -> dict[str, Any] | None:
    network = (yaml.safe_load(text) or {}).get("network") or {}
    for group in ("ethernets", "bridges"):
        entry = (network.get(group) or {}).get(dev)
        if isinstance(entry, dict):
            return entry
    return None


@dataclasses.dataclass
class NetplanDhcpKernel(DhcpKernel):
    """The DHCP model with netplan's YAML rendered for networkd's client: a device's entry
    with ``dhcp4``/``dhcp6`` runs a client (``dhcp-identifier: mac``: the MAC as client id),
    and the drop-ins of its generated file add their [DHCPv4]/[DHCPv6] lines after it."""

    def _file_of(self, dev: str) -> str | None:
        entry = next(
            (e for p, t in self.etc.items() if p.endswith(".yaml") and (e := _entry(t, dev))),
            None,
        )
        if entry is None:
            return None
        v4, v6 = bool(entry.get("dhcp4")), bool(entry.get("dhcp6"))
        word = "yes" if v4 and v6 else "ipv4" if v4 else "ipv6" if v6 else "no"
        text = f"[Match]\nName={dev}\n\n[Network]\nDHCP={word}\n"
        if entry.get("dhcp-identifier") == "mac":
            text += "\n[DHCPv4]\nClientIdentifier=mac\n"
        drop = dropin_path(dev).replace("50-fleetbr-dhcp-identity.conf", "")
        return text + "".join(f"\n{t}" for p, t in sorted(self.etc.items()) if p.startswith(drop))


def np_dhcp_host(text: str = DHCP_YAML) -> tuple[HostFacts, dict[str, tuple[str, ...]]]:
    """The netplan lab host with eth0 a DHCP client (networkd's defaults, or ``text``'s
    ``dhcp-identifier``) holding its fixed leases, and the server's fixed leases."""
    base = np_host()
    static = [a for a in base.addresses if not (a.dev == "eth0" and a.scope == "global")]
    routes = (
        Route(4, "default", "eth0", "198.51.100.1", 1024, "dhcp"),
        Route(6, "default", "eth0", "fe80::1", 1024, "ra"),
    )
    base = dataclasses.replace(base, addresses=tuple(static), routes=routes)
    base = with_netplan_dhcp(base, {YAML: text})
    eth0 = base.link("eth0")
    assert eth0 is not None and eth0.mac is not None
    model = kernel(base, {})
    own = model._file_of("eth0")
    assert own is not None
    fixed: dict[str, tuple[str, ...]] = {client_id("eth0", eth0.mac, own): (LEASE4, LEASE6)}
    return kernel(base, fixed).facts(), fixed


def kernel(facts: HostFacts, fixed: dict[str, tuple[str, ...]]) -> NetplanDhcpKernel:
    """The model of a host ``facts`` describe, with the server's ``fixed`` leases."""
    model = NetplanDhcpKernel.with_dir(facts, "/etc/", with_netplan_dhcp)
    assert isinstance(model, NetplanDhcpKernel)
    model.fixed = dict(fixed)
    return model


def np_plan(text: str, before: HostFacts) -> BridgePlan:
    return plan_host(task(f"persist: netplan\n{text}"), before, min_timeout=5)


def _bridge_entry(plan: BridgePlan) -> dict[str, Any]:
    entry = _entry(written(plan)[YAML], "br0")
    assert entry is not None
    return entry


def test_the_bridge_keeps_the_nics_leases_and_the_rollback_gives_them_back() -> None:
    before, fixed = np_dhcp_host()
    plan = round_trip(TASK, before, "netplan", kernel(before, fixed))
    assert plan.expected.topology is not None
    assert plan.expected.topology.leases == (("br0", LEASE4), ("br0", LEASE6))
    eth0 = _entry(written(plan)[YAML], "eth0")
    assert eth0 == {"dhcp4": False, "dhcp6": False, "accept-ra": False, "link-local": []}
    assert _bridge_entry(plan) == {
        "interfaces": ["eth0"],
        "macaddress": "02:fb:00:00:00:03",
        "dhcp4": True,
        "dhcp6": True,
        "accept-ra": True,
        "parameters": {"stp": False, "forward-delay": 4},
    }


def test_the_dropin_pins_the_iaid_and_duid_the_nics_lease_records() -> None:
    before, _ = np_dhcp_host()
    lease = before.topology.leases_of("eth0")[0]
    assert lease.client_id is not None and lease.client_id.startswith("ff")
    iaid = int(lease.client_id[2:10], 16)
    duid = ":".join(lease.client_id[i : i + 2] for i in range(14, len(lease.client_id), 2))
    dropin = written(np_plan(TASK, before))[dropin_path("br0")]
    assert dropin_path("br0") == (
        "/etc/systemd/network/10-netplan-br0.network.d/50-fleetbr-dhcp-identity.conf"
    )
    assert dropin.endswith(
        f"[DHCPv4]\nClientIdentifier=duid\nIAID={iaid}\nDUIDType=vendor\nDUIDRawData={duid}\n\n"
        f"[DHCPv6]\nIAID={iaid}\nDUIDType=vendor\nDUIDRawData={duid}\n"
    )


def test_without_the_dropin_the_bridge_would_get_another_address() -> None:
    """The model is not blind: netplan's YAML alone gives the bridge networkd's own IAID."""
    before, fixed = np_dhcp_host()
    plan = np_plan(TASK, before)
    model = kernel(before, fixed)
    model.run(plan.steps)
    del model.etc[dropin_path("br0")]
    texts = [d.text for d in compare(plan.expected, model.facts())]
    assert f"br0 does not hold the DHCP lease {LEASE4} (its leases: {', '.join(POOL)})" in texts


def test_a_mac_identity_is_said_in_the_yaml_and_kept() -> None:
    before, fixed = np_dhcp_host(
        DHCP_YAML.replace("dhcp6: true\n", "dhcp6: true\n      dhcp-identifier: mac\n")
    )
    plan = round_trip(TASK, before, "netplan", kernel(before, fixed))
    assert _bridge_entry(plan)["dhcp-identifier"] == "mac"
    assert "ClientIdentifier=mac\n" in written(plan)[dropin_path("br0")]
    assert "dhcp-identifier" not in (_entry(written(plan)[YAML], "eth0") or {})


def test_the_apply_and_the_rollback_wait_for_the_leases() -> None:
    plan = np_plan(TASK, np_dhcp_host()[0])
    apply = step_command(next(s for s in plan.steps if s.kind == "backend_apply"))
    assert apply.startswith("{ sync; netplan apply && ")
    assert "for fbr_w in br0=198.51.100.11 br0=2001:db8:100::b; do" in apply
    reapply = step_command(next(s for s in plan.rollback if s.kind == "backend_reapply"))
    assert "for fbr_w in eth0=198.51.100.11 eth0=2001:db8:100::b; do" in reapply
    # what the runtime inverses put back goes; networkd's client gives the leases again
    assert (
        "{ sync; netplan generate && networkctl reload && ip addr flush dev eth0 scope global && "
        "ip -6 route flush dev eth0 "
        "proto ra && { ip -6 route del 2001:db8:100::b/128 dev eth0 proto kernel 2>/dev/null "
        "|| :; } && networkctl reconfigure -- eth0 && "
    ) in reapply


def _leases(**change: Any) -> HostFacts:
    before, _ = np_dhcp_host()
    leases = tuple(dataclasses.replace(x, **change) for x in before.topology.dhcp)
    return dataclasses.replace(before, topology=dataclasses.replace(before.topology, dhcp=leases))


@pytest.mark.parametrize(
    ("host", "text", "reason"),
    [
        (
            lambda: _leases(client="dhclient"),
            TASK,
            "persist: netplan: the DHCP lease 198.51.100.11/24 on eth0 is held by dhclient",
        ),
        (
            lambda: _leases(client_id=None),
            TASK,
            f"persist: netplan: the DHCP client identity of eth0 or br0 ({YAML}) was not read",
        ),
    ],
    ids=["other-client", "no-identity"],
)
def test_what_netplan_cannot_keep_is_refused_before_any_change(
    host: Any, text: str, reason: str
) -> None:
    plan = np_plan(text, host())
    assert plan.refusal is not None and reason in plan.refusal, plan.refusal
    assert plan.steps == ()


def test_a_static_nic_is_still_refused_with_addresses_dhcp() -> None:
    plan = np_plan(TASK, np_host())
    assert plan.refusal is not None and "holds no DHCP lease to keep" in plan.refusal


def test_a_mac_identifier_beside_a_duid_lease_is_refused() -> None:
    """The YAML says the client id is the MAC, the lease was given to an IAID+DUID one (a file
    changed since the lease): fleetbr does not guess which identity the server knows."""
    said = DHCP_YAML.replace("dhcp6: true\n", "dhcp6: true\n      dhcp-identifier: mac\n")
    before, _ = np_dhcp_host(said)
    duid = np_dhcp_host()[0].topology.dhcp
    before = dataclasses.replace(before, topology=dataclasses.replace(before.topology, dhcp=duid))
    plan = np_plan(TASK, before)
    assert plan.refusal is not None and plan.steps == ()
    assert "dhcp-identifier: mac of eth0 does not match its lease" in plan.refusal, plan.refusal
