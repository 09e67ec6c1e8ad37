"""The ifupdown2 backend: the file it writes (ifupdown2's keywords, a ``manual`` stanza kept for
the port), that it rewrites its own file the same way twice and gives the NIC its stanzas back,
and the ``replaces`` declaration: on a host with ifupdown2 the ifupdown backend is absent and
ifupdown2 alone manages what /etc/network/interfaces configures."""

from __future__ import annotations

import pytest

from fleetbr.backends import BackendRefusal, choose, plan_backend, registry, unplan_backend
from fleetbr.backends.base import Backend
from fleetbr.backends.ifupdown2.backend import Ifupdown2Backend, rewrite, unwrite
from fleetbr.backends.model import BackendPlan, BridgeConfig
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.parse import parse_facts
from tests.unit.test_facts_parse import raw

CONFIG = BridgeConfig(
    name="br0",
    nic="eth0",
    mac="02:fb:00:00:00:01",
    stp=False,
    forward_delay=4,
    addresses=("198.51.100.10/24", "2001:db8:100::a/64"),
    routes=(
        Route(family=4, dst="default", dev="br0", gateway="198.51.100.1", protocol="boot"),
        Route(family=6, dst="default", dev="br0", gateway="2001:db8:100::1", protocol="boot"),
    ),
)
NIC_FILE = """auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 198.51.100.10/24
    gateway 198.51.100.1
    mtu 9000
    dns-nameservers 198.51.100.53
"""


def test_the_bridge_is_written_in_ifupdown2_keywords_and_the_nic_keeps_a_manual_stanza() -> None:
    text = rewrite(NIC_FILE, CONFIG)
    stanzas = text.split("\n\n")
    assert "auto eth0\niface eth0 inet manual" in text
    assert "gateway" not in text  # ifupdown2's gateway adds an onlink proto kernel route
    bridge = next(s for s in stanzas if s.startswith("auto br0"))
    assert bridge.splitlines() == [
        "auto br0",
        "iface br0 inet static",
        "    bridge-ports eth0",
        "    bridge-stp off",
        "    bridge-fd 4",
        "    hwaddress 02:fb:00:00:00:01",
        "    address 198.51.100.10/24",
        "    mtu 9000",
        "    dns-nameservers 198.51.100.53",
        "    up ip -4 route replace default via 198.51.100.1 dev br0",
    ]
    assert "up echo 0 > /proc/sys/net/ipv6/conf/br0/accept_ra" in text


def test_rewriting_its_own_file_changes_nothing_and_unwriting_gives_the_nic_back() -> None:
    once = rewrite(NIC_FILE, CONFIG)
    assert rewrite(once, CONFIG) == once
    back = unwrite(once, CONFIG)
    assert "br0" not in back
    assert "iface eth0 inet static\n    address 198.51.100.10/24\n    mtu 9000" in back
    assert "up ip -4 route replace default via 198.51.100.1 dev eth0" in back


def test_two_default_routes_of_a_family_are_refused() -> None:
    second = Route(family=4, dst="default", dev="br0", gateway="198.51.100.2", metric=10)
    config = BridgeConfig(**{**CONFIG.__dict__, "routes": (*CONFIG.routes, second)})
    with pytest.raises(BackendRefusal, match="more than one IPv4 default route"):
        rewrite(NIC_FILE, config)


def test_on_an_ifupdown2_host_ifupdown2_alone_manages_the_nic() -> None:
    facts = parse_facts(raw("distro_ifupdown2"))
    tools = {b.name: b.present for b in facts.backends}
    assert tools["ifupdown2"] is True
    assert tools["ifupdown"] is False  # its ifup is ifupdown2's
    assert facts.manager("eth0").manager == "ifupdown2"
    assert {v.backend for v in facts.manager("eth0").views} == {"ifupdown2"}
    assert choose("auto", "refuse", facts, "eth0", "br0") == "ifupdown2"
    with pytest.raises(BackendRefusal, match="ifupdown is not installed"):
        choose("ifupdown", "refuse", facts, "eth0", "br0")


def test_without_ifupdown2_the_ifupdown_host_is_unchanged() -> None:
    facts = parse_facts(raw("distro_ifupdown"))
    assert facts.manager("eth0").manager == "ifupdown"
    assert {v.backend for v in facts.manager("eth0").views} == {"ifupdown"}
    with pytest.raises(BackendRefusal, match="ifupdown2 is not installed"):
        choose("ifupdown2", "refuse", facts, "eth0", "br0")


def test_a_bridged_host_is_planned_back_and_forth() -> None:
    facts = parse_facts(raw("distro_ifupdown2_bridged"))
    assert facts.manager("br0").manager == "ifupdown2"
    assert facts.manager("br0").state == "up"
    plan = plan_backend("ifupdown2", CONFIG, facts)
    assert plan.managers == ("br0",)
    assert plan.args["backend"] == "ifupdown2"
    back = unplan_backend("ifupdown2", CONFIG, facts)
    assert back.managers == ("eth0",)
    assert back.args["direction"] == "unbridge"


class _Loop(Backend):
    """A backend for the registry's rules on ``replaces`` (never planned)."""

    name = "loopy"
    tool = "loopy"
    settled = ("up",)
    templates = Ifupdown2Backend.templates

    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """Never called."""
        raise NotImplementedError

    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """Never called."""
        raise NotImplementedError


def test_a_backend_cannot_replace_itself() -> None:
    selfish = type("Selfish", (_Loop,), {"replaces": ("loopy",)})
    with pytest.raises(ValueError, match="cannot replace loopy"):
        registry.register(selfish)
    assert registry.find("loopy") is None


def test_two_backends_cannot_replace_each_other() -> None:
    first = type("First", (_Loop,), {"name": "loopy2", "tool": "loopy2", "replaces": ("loopy",)})
    second = type("Second", (_Loop,), {"replaces": ("loopy2",)})
    registry.register(first)
    try:
        with pytest.raises(ValueError, match="cannot replace loopy2"):
            registry.register(second)
        assert registry.find("loopy") is None
    finally:
        registry.unregister("loopy2")


def test_replaced_names_what_an_installed_tool_replaces() -> None:
    assert registry.replaced(["ifupdown2", "ifupdown"]) == {"ifupdown"}
    assert registry.replaced(["ifupdown"]) == frozenset()


def test_a_gateway_route_marked_proto_kernel_is_not_the_kernels() -> None:
    gateway = Route(family=4, dst="default", dev="eth0", gateway="198.51.100.1", protocol="kernel")
    prefix = Route(family=4, dst="198.51.100.0/24", dev="eth0", protocol="kernel")
    assert not gateway.kernel_made  # ifupdown2's ``gateway``: moved and restored like any other
    assert prefix.kernel_made  # the kernel makes it again from the address
