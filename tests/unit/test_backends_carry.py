"""Issue 14 item 6: every setting of the NIC's configuration fleetbr does not own is carried to
where it belongs (the port, the bridge) or the host is refused with the setting named; the
backend reports the MTU, name servers and policy rules the bridge must then show."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fleetbr.backends import BackendRefusal, BridgeConfig, plan_backend, unplan_backend
from fleetbr.backends.carry import Carried, PolicyRule
from fleetbr.changes.bridge.drift import check_facts
from fleetbr.facts.model import HostFacts, Rule
from fleetbr.facts.parse_daemons import parse_daemons
from fleetbr.plan import plan_host
from fleetbr.plan.diff import compare
from fleetbr.plan.model import ExpectedState
from fleetbr.plan.netfilter import sha256
from fleetbr.report import Status
from tests.unit.test_backends_plan import config, facts, persist
from tests.unit.test_plan_support import task

NETWORKD = "/etc/systemd/network/10-eth0.network"
NETPLAN = "/etc/netplan/01-netcfg.yaml"


def with_content(f: HostFacts, path: str, text: str) -> HostFacts:
    contents = {**f.daemons.contents, path: text}
    return dataclasses.replace(f, daemons=dataclasses.replace(f.daemons, contents=contents))


def rendered(backend: str, f: HostFacts) -> dict[str, str]:
    return {c.path: c.content or "" for c in plan_backend(backend, config(f), f).files}


# --- networkd --------------------------------------------------------------------------------

NIC_NETWORK = """[Match]
Name=eth0

[Link]
MTUBytes=9000

[Network]
Address=198.51.100.11/24
Gateway=198.51.100.1
DNS=198.51.100.53
DNS=198.51.100.54
Domains=lab.example
IPv6AcceptRA=no

[RoutingPolicyRule]
From=198.51.100.11/32
Table=100
Priority=100
"""


def networkd_facts(text: str = NIC_NETWORK) -> HostFacts:
    return with_content(facts("networkd"), NETWORKD, text)


def test_networkd_keeps_repeated_dns_lines_in_order() -> None:
    network = rendered("networkd", networkd_facts())["/etc/systemd/network/10-br0.network"]
    assert "DNS=198.51.100.53\nDNS=198.51.100.54\nDomains=lab.example\n" in network


def test_networkd_carries_policy_rules_and_mtu_to_the_bridge() -> None:
    files = rendered("networkd", networkd_facts())
    network = files["/etc/systemd/network/10-br0.network"]
    assert "[RoutingPolicyRule]\nFrom=198.51.100.11/32\nTable=100\nPriority=100\n" in network
    assert "[Link]\nMTUBytes=9000\n" in network
    assert "[Link]\nMTUBytes=9000\n" in files[NETWORKD]  # the port keeps it
    assert "RoutingPolicyRule" not in files[NETWORKD]


def test_networkd_reports_what_the_bridge_carries() -> None:
    plan = plan_backend("networkd", config(networkd_facts()), networkd_facts())
    rule = PolicyRule(4, "100", src="198.51.100.11/32", priority=100)
    assert plan.carried == Carried(9000, (rule,), ("198.51.100.53", "198.51.100.54"))
    assert rule.text() == "src 198.51.100.11 table 100"


def test_networkd_a_rerun_renders_the_same_bridge_file() -> None:
    first = rendered("networkd", networkd_facts())
    bridge_network = "/etc/systemd/network/10-br0.network"
    again = with_content(networkd_facts(first[NETWORKD]), bridge_network, first[bridge_network])
    plan = plan_backend("networkd", config(again), again)
    assert {c.path: c.content for c in plan.files} == first
    assert plan.carried is not None and plan.carried.rules and plan.carried.mtu == 9000


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("VLAN=vlan10", "VLAN=vlan10"),
        ("MACVLAN=mv0", "MACVLAN=mv0"),
    ],
)
def test_networkd_a_device_stacked_on_the_nic_is_refused_by_name(line: str, named: str) -> None:
    text = NIC_NETWORK.replace("IPv6AcceptRA=no", f"IPv6AcceptRA=no\n{line}")
    with pytest.raises(BackendRefusal, match=f"stacks {named} on the NIC"):
        plan_backend("networkd", config(networkd_facts(text)), networkd_facts(text))


def test_networkd_a_section_it_cannot_carry_is_refused_by_name() -> None:
    text = NIC_NETWORK + "\n[Neighbor]\nAddress=198.51.100.9\nLinkLayerAddress=02:00:00:00:00:09\n"
    with pytest.raises(BackendRefusal, match=r"\[Neighbor\] in .*10-eth0.network"):
        plan_backend("networkd", config(networkd_facts(text)), networkd_facts(text))


def test_networkd_a_dhcp_section_is_refused_as_dhcp() -> None:
    text = NIC_NETWORK + "\n[DHCPv4]\nUseDNS=no\n"
    with pytest.raises(BackendRefusal, match="uses DHCP"):
        plan_backend("networkd", config(networkd_facts(text)), networkd_facts(text))


def test_networkd_a_rule_selector_it_cannot_compare_is_refused_by_name() -> None:
    text = NIC_NETWORK.replace("Priority=100", "Priority=100\nFirewallMark=7")
    with pytest.raises(BackendRefusal, match="RoutingPolicyRule.*uses FirewallMark"):
        plan_backend("networkd", config(networkd_facts(text)), networkd_facts(text))


# --- netplan ---------------------------------------------------------------------------------

NETPLAN_YAML = """network:
  version: 2
  renderer: networkd
  ethernets:
    eth0:
      mtu: 9000
      addresses: ["198.51.100.12/24"]
      routes:
        - to: default
          via: 198.51.100.1
      nameservers:
        addresses: [198.51.100.53, 198.51.100.54]
      routing-policy:
        - from: 198.51.100.12/32
          table: 100
          priority: 100
"""


def netplan_facts(text: str = NETPLAN_YAML) -> HostFacts:
    return with_content(facts("netplan"), NETPLAN, text)


def test_netplan_carries_routing_policy_and_mtu_to_the_bridge() -> None:
    doc = yaml.safe_load(rendered("netplan", netplan_facts())[NETPLAN])["network"]
    br0, eth0 = doc["bridges"]["br0"], doc["ethernets"]["eth0"]
    assert br0["routing-policy"] == [{"from": "198.51.100.12/32", "table": 100, "priority": 100}]
    assert br0["nameservers"] == {"addresses": ["198.51.100.53", "198.51.100.54"]}
    assert br0["mtu"] == eth0["mtu"] == 9000  # the port keeps it
    assert "routing-policy" not in eth0


def test_netplan_reports_what_the_bridge_carries_and_a_rerun_is_stable() -> None:
    plan = plan_backend("netplan", config(netplan_facts()), netplan_facts())
    rule = PolicyRule(4, "100", src="198.51.100.12/32", priority=100)
    assert plan.carried == Carried(9000, (rule,), ("198.51.100.53", "198.51.100.54"))
    written = plan.files[0].content or ""
    again = plan_backend("netplan", config(netplan_facts(written)), netplan_facts(written))
    assert again.files[0].content == written and again.carried == plan.carried


def test_netplan_a_rule_it_cannot_compare_is_refused_by_name() -> None:
    text = NETPLAN_YAML.replace("priority: 100", "priority: 100\n          mark: 7")
    with pytest.raises(BackendRefusal, match="routing-policy.*uses mark"):
        plan_backend("netplan", config(netplan_facts(text)), netplan_facts(text))


# --- NetworkManager --------------------------------------------------------------------------

ETC_NM = "/etc/NetworkManager/system-connections"
NM_SETTINGS = {  # as the facts script reports them (nmcli -t), recorded on NM 1.42
    "802-3-ethernet.mtu": "9000",
    "ipv4.dns": "198.51.100.53,198.51.100.54",
    "ipv4.routing-rules": "priority 100 from 198.51.100.13 table 100, "
    "priority 101 to 203.0.113.0/24 table 101",
    "ipv6.routing-rules": "priority 100 from 2001:db8:100::d table 100",
}


def nm_facts(settings: dict[str, str] = NM_SETTINGS) -> HostFacts:
    f = facts("networkmanager")
    uuid = f.daemons.nm_active["eth0"][0]
    daemons = dataclasses.replace(f.daemons, nm_dns={uuid: settings})
    return dataclasses.replace(f, daemons=daemons)


def test_nm_facts_lines_keep_the_mtu_and_routing_rules() -> None:
    uuid = "5e7d0be0-333a-52c4-a634-696a36e68dd6"
    lines = [f"nm-dns {uuid} {key}:{value}" for key, value in NM_SETTINGS.items()]
    assert parse_daemons(lines, (), []).nm_dns == {uuid: NM_SETTINGS}


def test_nm_carries_the_mtu_to_the_port_and_the_bridge() -> None:
    files = rendered("networkmanager", nm_facts())
    assert "[ethernet]\nmtu=9000\n" in files[f"{ETC_NM}/br0-port-eth0.nmconnection"]
    bridge = files[f"{ETC_NM}/br0.nmconnection"]
    assert "\nmtu=9000\n" in bridge.split("[bridge]")[0]  # in [ethernet]


def test_nm_carries_routing_rules_to_the_bridge_profile() -> None:
    bridge = rendered("networkmanager", nm_facts())[f"{ETC_NM}/br0.nmconnection"]
    ipv4, ipv6 = bridge.split("[ipv6]")
    assert "routing-rule1=priority 100 from 198.51.100.13 table 100\n" in ipv4
    assert "routing-rule2=priority 101 to 203.0.113.0/24 table 101\n" in ipv4
    assert "routing-rule1=priority 100 from 2001:db8:100::d table 100\n" in ipv6


def test_nm_reports_what_the_bridge_carries() -> None:
    plan = plan_backend("networkmanager", config(nm_facts()), nm_facts())
    assert plan.carried == Carried(
        9000,
        (
            PolicyRule(4, "100", src="198.51.100.13", priority=100),
            PolicyRule(4, "101", dst="203.0.113.0/24", priority=101),
            PolicyRule(6, "100", src="2001:db8:100::d", priority=100),
        ),
        ("198.51.100.53", "198.51.100.54"),
    )


def test_nm_a_rule_it_cannot_compare_is_refused_by_name() -> None:
    odd = {**NM_SETTINGS, "ipv4.routing-rules": "priority 100 fwmark 0x7 table 100"}
    with pytest.raises(BackendRefusal, match="ipv4.routing-rules .*uses fwmark"):
        plan_backend("networkmanager", config(nm_facts(odd)), nm_facts(odd))


# --- ifupdown --------------------------------------------------------------------------------

INTERFACES = "/etc/network/interfaces"
STANZAS = """# interfaces(5) file used by ifup(8) and ifdown(8)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    # uplink to the rack switch, jumbo frames (ticket 4711)
    address 198.51.100.10/24
    gateway 198.51.100.1
    mtu 9000
    dns-nameservers 198.51.100.53 198.51.100.54
    up ip rule add from 198.51.100.10 table 100 priority 100
# storage network below
iface eth0 inet6 static
    address 2001:db8:100::a/64
    gateway 2001:db8:100::1
    accept_ra 0
"""


def ifupdown_facts(text: str = STANZAS) -> HostFacts:
    return with_content(facts("ifupdown"), INTERFACES, text)


def test_ifupdown_keeps_the_comments_of_the_nic_stanza() -> None:
    new = rendered("ifupdown", ifupdown_facts())[INTERFACES]
    inet = new.split("iface br0 inet static")[1].split("iface br0 inet6")[0]
    assert "    # uplink to the rack switch, jumbo frames (ticket 4711)\n" in inet
    assert "# storage network below\n" in new.split("auto br0")[0]  # at the margin: in place
    assert "    mtu 9000\n" in inet and "up ip rule add from 198.51.100.10" in inet


def test_ifupdown_reports_what_the_bridge_carries_and_a_rerun_is_stable() -> None:
    plan = plan_backend("ifupdown", config(ifupdown_facts()), ifupdown_facts())
    rule = PolicyRule(4, "100", src="198.51.100.10", priority=100)
    assert plan.carried == Carried(9000, (rule,), ("198.51.100.53", "198.51.100.54"))
    written = plan.files[0].content or ""
    f = ifupdown_facts(written)
    daemons = dataclasses.replace(f.daemons, ifupdown={INTERFACES: ("lo", "br0")})
    f = dataclasses.replace(f, daemons=daemons)
    again = plan_backend("ifupdown", config(f), f)
    assert again.files[0].content == written and again.carried == plan.carried


# --- confirm and check compare what was carried ------------------------------------------------

RULE = PolicyRule(4, "100", src="198.51.100.11/32", priority=100)


def bridged(mtu: int = 9000, rules: tuple[Rule, ...] | None = None) -> HostFacts:
    """networkd's host after the cutover, with ``mtu`` on br0 and eth0 and ``rules``."""
    f = facts("networkd_bridged")
    links = tuple(
        dataclasses.replace(link, mtu=mtu) if link.name in ("br0", "eth0") else link
        for link in f.links
    )
    if rules is None:
        rules = (Rule(4, 100, "protocol static src 198.51.100.11 table 100"),)
    return dataclasses.replace(f, links=links, rules=rules)


def carried_differences(exp: ExpectedState, f: HostFacts) -> list[str]:
    return [d.text for d in compare(exp, f) if d.field.split(".")[0] in ("mtu", "rules", "dns")]


def test_the_plan_expects_what_the_backend_carried() -> None:
    p = plan_host(task(persist("auto")), networkd_facts(), min_timeout=10)
    assert p.refusal is None, p.refusal
    assert (p.expected.mtu, p.expected.rules) == (9000, (RULE,))


def test_confirm_and_check_compare_mtu_and_policy_rules() -> None:
    exp = ExpectedState("br0", "eth0", True, "br0", mtu=9000, rules=(RULE,))
    assert carried_differences(exp, bridged()) == []
    assert carried_differences(exp, bridged(mtu=1500)) == [
        "br0 MTU is 1500, expected 9000",
        "eth0 MTU is 1500, expected 9000",
    ]
    assert carried_differences(exp, bridged(rules=())) == [
        "policy rule ipv4 from 198.51.100.11/32 table 100 priority 100 missing"
    ]
    other = (Rule(4, 101, "src 198.51.100.11 table 100"),)  # another priority
    assert carried_differences(exp, bridged(rules=other)) != []


def test_check_compares_networkmanagers_name_servers_of_the_bridge() -> None:
    f = bridged()
    uuid = "620240e4-255a-52c1-9907-65d88c2b952c"
    servers = {"ipv4.dns": "198.51.100.53,198.51.100.54"}
    daemons = dataclasses.replace(
        f.daemons, nm_active={"br0": (uuid, "br0")}, nm_dns={uuid: servers}
    )
    f = dataclasses.replace(f, daemons=daemons)
    exp = ExpectedState(
        "br0", "eth0", True, "br0", managers={"br0": "networkmanager"},
        dns=("198.51.100.53", "198.51.100.54"),
    )  # fmt: skip
    assert carried_differences(exp, f) == []
    lost = dataclasses.replace(f.daemons, nm_dns={uuid: {"ipv4.dns": "198.51.100.53"}})
    assert carried_differences(exp, dataclasses.replace(f, daemons=lost)) == [
        "br0's name servers are 198.51.100.53, expected 198.51.100.53 198.51.100.54"
    ]


def confirmed_networkd(rules: tuple[Rule, ...] | None = None, mtu: int = 9000) -> HostFacts:
    """networkd's host as the confirm finds it: the files fleetbr wrote from networkd_facts(),
    br0 and eth0 with ``mtu``, the kernel with ``rules``."""
    f = bridged(mtu, rules)
    written = plan_backend("networkd", config(networkd_facts()), networkd_facts()).files
    contents = {**f.daemons.contents, **{c.path: c.content or "" for c in written}}
    digests = {**f.daemons.files, **{c.path: sha256(c.content or "") for c in written}}
    daemons = dataclasses.replace(f.daemons, contents=contents, files=digests)
    return dataclasses.replace(f, daemons=daemons)


def test_check_is_in_sync_after_confirm_and_reports_a_removed_rule_as_drift() -> None:
    t = task(persist("auto") + "netfilter: keep\n")
    assert check_facts(t, confirmed_networkd()).status == Status.IN_SYNC
    outcome = check_facts(t, confirmed_networkd(rules=()))
    assert outcome.status == Status.DRIFTED, outcome.message
    assert [d.field for d in outcome.differences] == ["rules"]
    assert outcome.repair == ()  # apply refuses it: the daemon's files are as written
    assert plan_host(t, confirmed_networkd(rules=()), min_timeout=10).refusal is not None
    lowered = check_facts(t, confirmed_networkd(mtu=1500))
    assert lowered.status == Status.DRIFTED
    assert [d.field for d in lowered.differences] == ["mtu.br0", "mtu.eth0"]


def test_nm_name_servers_of_a_family_the_bridge_has_no_address_of_are_refused() -> None:
    v4_only = {**NM_SETTINGS, "ipv6.dns": "2001:db8:100::53"}
    v4_only.pop("ipv6.routing-rules")
    f = nm_facts(v4_only)
    cfg = dataclasses.replace(config(f), addresses=config(f).family_addresses(4))
    with pytest.raises(BackendRefusal, match="ipv6.dns=2001:db8:100::53; has no IPv6 address"):
        plan_backend("networkmanager", cfg, f)


# --- unbridge carries them back to the NIC -----------------------------------------------------


def nic_config(f: HostFacts) -> BridgeConfig:
    return dataclasses.replace(config(f), mac=None)


def test_netplan_unbridge_moves_the_routing_policy_back_to_the_nic() -> None:
    bridged = rendered("netplan", netplan_facts())[NETPLAN]
    plan = unplan_backend("netplan", nic_config(netplan_facts()), netplan_facts(bridged))
    eth0 = yaml.safe_load(plan.files[0].content or "")["network"]["ethernets"]["eth0"]
    assert eth0["routing-policy"] == [{"from": "198.51.100.12/32", "table": 100, "priority": 100}]
    assert eth0["mtu"] == 9000


def test_networkd_unbridge_moves_the_rules_back_to_the_nic() -> None:
    first = rendered("networkd", networkd_facts())
    bridge_network = "/etc/systemd/network/10-br0.network"
    bridged = with_content(networkd_facts(first[NETWORKD]), bridge_network, first[bridge_network])
    plan = unplan_backend("networkd", nic_config(bridged), bridged)
    nic = next(c.content or "" for c in plan.files if c.path == NETWORKD)
    assert "[RoutingPolicyRule]\nFrom=198.51.100.11/32\nTable=100\nPriority=100\n" in nic
    assert "[Link]\nMTUBytes=9000\n" in nic and "DNS=198.51.100.53\nDNS=198.51.100.54\n" in nic


def test_nm_unbridge_gives_fleetbrs_nic_profile_the_mtu_and_rules() -> None:
    f = nm_facts()
    eth0_uuid = f.daemons.nm_active["eth0"][0]
    bridge_uuid = "620240e4-255a-52c1-9907-65d88c2b952c"
    active = {"eth0": (eth0_uuid, "br0-port-eth0"), "br0": (bridge_uuid, "br0")}
    settings = {eth0_uuid: {"802-3-ethernet.mtu": "9000"}, bridge_uuid: NM_SETTINGS}
    daemons = dataclasses.replace(f.daemons, nm_active=active, nm_dns=settings)
    f = dataclasses.replace(f, daemons=daemons)
    plan = unplan_backend("networkmanager", nic_config(f), f)
    profile = next(
        c.content or "" for c in plan.files if c.path.endswith("fleetbr-eth0.nmconnection")
    )
    assert "[ethernet]\nmtu=9000\n" in profile
    assert "routing-rule1=priority 100 from 198.51.100.13 table 100\n" in profile


def carried_values(exp: ExpectedState, f: HostFacts) -> list[tuple[str, object, object]]:
    """``(field, want, have)`` of every carried difference: what --json and the history show."""
    return [(d.field, d.want, d.have) for d in compare(exp, f)
            if d.field.split(".")[0] in ("mtu", "rules", "dns")]  # fmt: skip


def test_carried_differences_hold_what_was_wanted_and_what_the_host_has() -> None:
    exp = ExpectedState("br0", "eth0", True, "br0", mtu=9000, rules=(RULE,))
    assert carried_values(exp, bridged(mtu=1500, rules=())) == [
        ("mtu.br0", 9000, 1500),
        ("mtu.eth0", 9000, 1500),
        ("rules", "ipv4 from 198.51.100.11/32 table 100 priority 100", None),
    ]


def test_policy_rules_are_not_compared_when_the_host_could_not_list_them() -> None:
    exp = ExpectedState("br0", "eth0", True, "br0", rules=(RULE,))
    unknown = dataclasses.replace(bridged(), rules=None)
    assert carried_values(exp, unknown) == []


def test_a_bridge_with_no_name_server_left_says_none() -> None:
    f = bridged()
    uuid = "620240e4-255a-52c1-9907-65d88c2b952c"
    daemons = dataclasses.replace(f.daemons, nm_active={"br0": (uuid, "br0")}, nm_dns={uuid: {}})
    exp = ExpectedState(
        "br0", "eth0", True, "br0", managers={"br0": "networkmanager"},
        dns=("198.51.100.53", "198.51.100.54"),
    )  # fmt: skip
    [found] = [d for d in compare(exp, dataclasses.replace(f, daemons=daemons))
               if d.field == "dns.br0"]  # fmt: skip
    assert (found.want, found.have) == ("198.51.100.53 198.51.100.54", None)
    assert found.text == "br0's name servers are none, expected 198.51.100.53 198.51.100.54"
    two = dataclasses.replace(daemons, nm_dns={uuid: {"ipv4.dns": "198.51.100.54,198.51.100.53"}})
    [swapped] = [d for d in compare(exp, dataclasses.replace(f, daemons=two))
                 if d.field == "dns.br0"]  # fmt: skip
    assert swapped.have == "198.51.100.54 198.51.100.53", "the order the daemon uses, spaced"
