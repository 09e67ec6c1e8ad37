"""Unbridge in a backend's own files: the cutover's rewrite and the unbridge's are inverses (the
NIC's addresses and routes come back, the bridge goes, comments stay)."""

from __future__ import annotations

import yaml

from fleetbr.backends.ifupdown import backend as ifupdown
from fleetbr.backends.model import BridgeConfig
from fleetbr.backends.netplan import backend as netplan
from fleetbr.facts.model import Route

ROUTES = (Route(4, "default", "br0", "198.51.100.1"), Route(6, "default", "br0", "2001:db8::1"))
BRIDGE = BridgeConfig("br0", "eth0", "02:fb:00:00:00:03", False, 4,
                      ("198.51.100.12/24", "2001:db8::c/64"), ROUTES)  # fmt: skip
NETPLAN = """# the lab's file
network:
  version: 2
  renderer: networkd
  ethernets:
    eth0:
      addresses: ["198.51.100.12/24", "2001:db8::c/64"]
      nameservers: {addresses: [198.51.100.53]}
      routes: [{to: default, via: 198.51.100.1}, {to: default, via: "2001:db8::1"}]
"""
INTERFACES = """# interfaces(5)
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet static
    address 198.51.100.12/24
    gateway 198.51.100.1
    dns-nameservers 198.51.100.53
"""


def test_netplan_unbridge_puts_addresses_routes_and_name_servers_back_on_the_nic() -> None:
    bridged, _ = netplan.rewrite(NETPLAN, "/etc/netplan/01.yaml", BRIDGE)
    assert yaml.safe_load(bridged)["network"]["bridges"]["br0"]["interfaces"] == ["eth0"]
    nic_config = BridgeConfig("br0", "eth0", None, False, 4, BRIDGE.addresses, ROUTES)
    back, renderer = netplan.unrewrite(bridged, "/etc/netplan/01.yaml", nic_config)
    doc = yaml.safe_load(back)["network"]
    assert renderer == "networkd" and "bridges" not in doc
    eth0 = doc["ethernets"]["eth0"]
    assert eth0["addresses"] == ["198.51.100.12/24", "2001:db8::c/64"]
    assert eth0["nameservers"] == {"addresses": ["198.51.100.53"]}
    assert [r["via"] for r in eth0["routes"]] == ["198.51.100.1", "2001:db8::1"]
    assert back.startswith("# the lab's file\n")


def test_ifupdown_unbridge_gives_the_nic_its_stanzas_back() -> None:
    bridged = ifupdown.rewrite(INTERFACES, BRIDGE)
    assert "iface eth0" not in bridged and "bridge_ports eth0" in bridged
    _, options = ifupdown.split(bridged, "br0")
    assert "dns-nameservers 198.51.100.53" in options["inet"]
    assert "auto lo" in bridged and "iface lo inet loopback" in bridged
