"""Write topology_*.txt: hand-written facts outputs (a host with a bond, VLANs, a VLAN-aware
bridge and DHCP leases) in iproute2 6.1's JSON format (ip/iplink_bond.c, iplink_bond_slave.c,
iplink_vlan.c, bridge/vlan.c), on top of plain.txt's other sections. This machine's kernel has no
bonding or 8021q, so they cannot be recorded here: ``python tests/data/facts/make_topology.py``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAC0, MAC1 = "52:54:00:12:34:56", "52:54:00:12:34:57"


def _link(index: int, name: str, mac: str, **extra: object) -> dict[str, object]:
    flags = ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
    return {"ifindex": index, "ifname": name, "flags": flags, "mtu": 1500,
            "qdisc": "noqueue", "operstate": "UP", "group": "default", "link_type": "ether",
            "address": mac, "broadcast": "ff:ff:ff:ff:ff:ff", **extra}  # fmt: skip


def _slave(index: int, name: str, perm: str, state: str) -> dict[str, object]:
    data = {"state": state, "mii_status": "UP", "link_failure_count": 0, "perm_hwaddr": perm,
            "queue_id": 0, "ad_aggregator_id": 1, "ad_actor_oper_port_state": 61,
            "ad_actor_oper_port_state_str": ["active", "aggregating", "in_sync", "collecting",
                                             "distributing"],
            "ad_partner_oper_port_state": 61,
            "ad_partner_oper_port_state_str": ["active", "aggregating", "in_sync", "collecting",
                                               "distributing"]}  # fmt: skip
    return _link(index, name, MAC0, master="bond0",
                 linkinfo={"info_slave_kind": "bond", "info_slave_data": data})  # fmt: skip


BOND = {"mode": "802.3ad", "miimon": 100, "updelay": 0, "downdelay": 0, "peer_notify_delay": 0,
        "use_carrier": 1, "arp_interval": 0, "arp_validate": None, "arp_all_targets": "any",
        "primary_reselect": "always", "fail_over_mac": "none", "xmit_hash_policy": "layer3+4",
        "resend_igmp": 1, "num_peer_notif": 1, "all_slaves_active": 0, "min_links": 0,
        "lp_interval": 1, "packets_per_slave": 1, "ad_lacp_active": "on", "ad_lacp_rate": "fast",
        "ad_select": "stable", "ad_info": {"aggregator": 1, "num_ports": 2, "actor_key": 15,
                                           "partner_key": 1, "partner_mac": "52:54:00:aa:bb:cc"},
        "ad_actor_sys_prio": 65535, "ad_user_port_key": 0, "ad_actor_system": "00:00:00:00:00:00",
        "tlb_dynamic_lb": 1}  # fmt: skip
BRIDGE = {"forward_delay": 400, "hello_time": 200, "max_age": 2000, "ageing_time": 30000,
          "stp_state": 0, "priority": 32768, "vlan_filtering": 1, "vlan_protocol": "802.1Q",
          "vlan_default_pvid": 1}  # fmt: skip
LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
     "operstate": "UNKNOWN", "link_type": "loopback", "address": "00:00:00:00:00:00"},
    _slave(2, "eth0", MAC0, "ACTIVE"),
    _slave(3, "eth1", MAC1, "ACTIVE"),
    _link(4, "bond0", MAC0, master="br0",
          linkinfo={"info_kind": "bond", "info_data": BOND, "info_slave_kind": "bridge"}),
    _link(5, "br0", MAC0, linkinfo={"info_kind": "bridge", "info_data": BRIDGE}),
    _link(6, "br0.10", MAC0, link="br0",
          linkinfo={"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 10,
                                                       "flags": ["REORDER_HDR"]}}),
    _link(7, "eth2", "52:54:00:12:34:58"),
    _link(8, "eth2.20", "52:54:00:12:34:58", link="eth2",
          linkinfo={"info_kind": "vlan", "info_data": {"protocol": "802.1ad", "id": 20}}),
]  # fmt: skip


def _addr(index: int, name: str, *infos: dict[str, object]) -> dict[str, object]:
    return {"ifindex": index, "ifname": name, "addr_info": list(infos)}


ADDR = [
    _addr(1, "lo", {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}),
    _addr(6, "br0.10", {"family": "inet", "local": "198.51.100.10", "prefixlen": 24,
                        "broadcast": "198.51.100.255", "scope": "global", "label": "br0.10",
                        "valid_life_time": 4294967295, "preferred_life_time": 4294967295}),
    _addr(8, "eth2.20",
          {"family": "inet", "local": "203.0.113.40", "prefixlen": 24, "scope": "global",
           "dynamic": True, "valid_life_time": 3412, "preferred_life_time": 3412},
          {"family": "inet6", "local": "2001:db8:20::40", "prefixlen": 128, "scope": "global",
           "dynamic": True, "valid_life_time": 7000, "preferred_life_time": 3400},
          {"family": "inet6", "local": "2001:db8:20:0:5054:ff:fe12:3458", "prefixlen": 64,
           "scope": "global", "dynamic": True, "mngtmpaddr": True, "valid_life_time": 86000,
           "preferred_life_time": 14000}),
]  # fmt: skip
VLANS = [
    {"ifname": "bond0", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]},
                                  {"vlan": 10}, {"vlan": 100, "vlanEnd": 199}]},
    {"ifname": "br0", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]},
                                {"vlan": 10}]},
    {"ifname": "eth2", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]},
]  # fmt: skip


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


DHCP = [
    "proc dhclient " + _b64("/sbin/dhclient -4 -v -pf /run/dhclient.eth2.20.pid eth2.20 "),
    "networkd 9 " + _b64("ADDRESS=198.51.100.99\nCLIENTID=ff00112233000100012b\nLIFETIME=3600\n"),
    "dhclient dhclient.eth2.20.leases "
    + _b64(
        'lease {\n  interface "eth2.20";\n  fixed-address 203.0.113.40;\n'
        "  option dhcp-client-identifier 1:52:54:0:12:34:58;\n}\n"
    ),
]


def main() -> None:
    """Write topology_bond_vlan.txt from plain.txt's sections and the values above."""
    plain = (HERE / "plain.txt").read_text()
    head, _, rest = plain.partition("@@fleetbr-section links\n")
    _, _, rest = rest.partition("@@fleetbr-section routes4\n")
    _, _, tail = rest.partition("@@fleetbr-section bridge_links\n")
    _, _, tail = tail.partition("@@fleetbr-section bridges\n")
    out = (
        head
        + "@@fleetbr-section links\n" + json.dumps(LINKS, separators=(",", ":")) + "\n"
        + "@@fleetbr-section addr\n" + json.dumps(ADDR, separators=(",", ":")) + "\n"
        + "@@fleetbr-section routes4\n[]\n@@fleetbr-section routes6\n[]\n"
        + "@@fleetbr-section rules4\n[]\n@@fleetbr-section rules6\n[]\n"
        + "@@fleetbr-section bridge_links\n[]\n"
        + "@@fleetbr-section bridge_vlans\n" + json.dumps(VLANS, separators=(",", ":")) + "\n"
        + "@@fleetbr-section dhcp\n" + "\n".join(DHCP) + "\n"
        + "@@fleetbr-section bridges\nbridge br0 0 400\n" + tail
    )  # fmt: skip
    (HERE / "topology_bond_vlan.txt").write_text(out)


if __name__ == "__main__":
    main()
