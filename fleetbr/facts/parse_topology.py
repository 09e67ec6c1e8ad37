"""Parse the topology facts: bonds and VLAN devices from ``ip -j -d link``, the bridge VLAN table
from ``bridge -j vlan show``, DHCP leases from ``ip -j addr`` and the ``dhcp`` section. Pure.

Every value that could reach a command is validated; anything the host reports that fleetbr does
not know (a newer iproute2's key) is ignored, never an error.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fleetbr import validate
from fleetbr.errors import FactsError, ValidationError
from fleetbr.facts.model import Daemons
from fleetbr.facts.topology import (
    Bond,
    BondSlave,
    DhcpClientName,
    DhcpLease,
    OptionValue,
    PortVlan,
    TopologyFacts,
    VlanDevice,
)

JsonObj = dict[str, Any]
FOREVER = 4294967295  # valid_life_time of an address that never expires
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")
# ip -j -d link's bond info_data key -> the task's option name (fleetbr.changes.bridge.bond_options)
BOND_JSON_KEYS: Mapping[str, str] = {
    "miimon": "miimon",
    "updelay": "updelay",
    "downdelay": "downdelay",
    "use_carrier": "use_carrier",
    "arp_interval": "arp_interval",
    "arp_ip_target": "arp_ip_target",
    "arp_validate": "arp_validate",
    "ad_lacp_rate": "lacp_rate",
    "ad_select": "ad_select",
    "min_links": "min_links",
    "xmit_hash_policy": "xmit_hash_policy",
    "primary": "primary",
    "primary_reselect": "primary_reselect",
    "fail_over_mac": "fail_over_mac",
    "all_slaves_active": "all_slaves_active",
    "tlb_dynamic_lb": "tlb_dynamic_lb",
}
_FLAGS = frozenset({"use_carrier", "all_slaves_active", "tlb_dynamic_lb"})
DHCP_PROGRAMS: tuple[DhcpClientName, ...] = ("dhclient", "dhcpcd", "udhcpc")


def _info(obj: Mapping[str, Any], key: str) -> JsonObj:
    linkinfo = obj.get("linkinfo")
    value = linkinfo.get(key) if isinstance(linkinfo, dict) else None
    return value if isinstance(value, dict) else {}


def _kind(obj: Mapping[str, Any], key: str = "info_kind") -> str | None:
    linkinfo = obj.get("linkinfo")
    value = linkinfo.get(key) if isinstance(linkinfo, dict) else None
    return value if isinstance(value, str) else None


def _word(value: object) -> str | None:
    return value if isinstance(value, str) and _WORD_RE.match(value) else None


def _mac(value: object) -> str | None:
    text = str(value).lower() if isinstance(value, str) else ""
    return text if _MAC_RE.match(text) else None


def _option(key: str, value: object) -> OptionValue | None:
    if key in _FLAGS:
        return bool(value) if isinstance(value, int) else None
    if key == "arp_ip_target":
        if not isinstance(value, list) or not value:
            return None
        return ",".join(str(v) for v in value if _word(v))
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return _word(value)


def _ifname(value: object, what: str) -> str:
    try:
        return validate.interface_name(value, what)
    except ValidationError as exc:
        raise FactsError(f"section links: {exc}") from None


def parse_bonds(links: Iterable[JsonObj]) -> tuple[Bond, ...]:
    """Bonds (``info_kind`` bond) with their options and slaves (``info_slave_kind`` bond)."""
    link_list = list(links)
    slaves: dict[str, list[BondSlave]] = {}
    for obj in link_list:
        if _kind(obj, "info_slave_kind") != "bond" or not isinstance(obj.get("master"), str):
            continue
        data = _info(obj, "info_slave_data")
        partner = data.get("ad_partner_oper_port_state_str")
        slaves.setdefault(obj["master"], []).append(
            BondSlave(
                name=_ifname(obj.get("ifname"), "bond slave"),
                state=_word(data.get("state")) or "unknown",
                mii_status=_word(data.get("mii_status")) or "unknown",
                perm_mac=_mac(data.get("perm_hwaddr")),
                partner_state=tuple(
                    s for s in (partner if isinstance(partner, list) else []) if _word(s)
                ),
            )
        )
    bonds = []
    for obj in link_list:
        if _kind(obj) != "bond":
            continue
        name = _ifname(obj.get("ifname"), "bond")
        data = _info(obj, "info_data")
        options = {
            BOND_JSON_KEYS[key]: value
            for key, raw in data.items()
            if key in BOND_JSON_KEYS and (value := _option(key, raw)) is not None
        }
        ad_info = data.get("ad_info")
        bonds.append(
            Bond(
                name=name,
                mode=_word(data.get("mode")) or "unknown",
                options=tuple(sorted(options.items())),
                slaves=tuple(slaves.get(name, ())),
                active_slave=_word(data.get("active_slave")),
                partner_mac=_mac(ad_info.get("partner_mac")) if isinstance(ad_info, dict) else None,
            )
        )
    return tuple(bonds)


def parse_vlans(links: Iterable[JsonObj]) -> tuple[VlanDevice, ...]:
    """VLAN devices (``info_kind`` vlan): id, protocol and parent (``link``)."""
    vlans = []
    for obj in links:
        if _kind(obj) != "vlan":
            continue
        data = _info(obj, "info_data")
        vid = data.get("id")
        if not isinstance(vid, int) or isinstance(vid, bool) or not 0 <= vid <= 4095:
            raise FactsError(f"section links: VLAN {obj.get('ifname')!r} has no valid id")
        parent = obj.get("link")
        vlans.append(
            VlanDevice(
                name=_ifname(obj.get("ifname"), "vlan"),
                vid=vid,
                parent=_ifname(parent, "vlan parent") if isinstance(parent, str) else None,
                protocol=_word(data.get("protocol")) or "802.1Q",
            )
        )
    return tuple(vlans)


def vlan_filtering_bridges(links: Iterable[JsonObj]) -> tuple[str, ...]:
    """Bridges whose ``vlan_filtering`` is 1."""
    return tuple(
        str(obj["ifname"])
        for obj in links
        if _kind(obj) == "bridge" and _info(obj, "info_data").get("vlan_filtering") == 1
    )


def default_pvids(links: Iterable[JsonObj]) -> tuple[tuple[str, int], ...]:
    """Each bridge's ``vlan_default_pvid`` (bridges that do not report one are left out)."""
    out = []
    for obj in links:
        pvid = _info(obj, "info_data").get("vlan_default_pvid") if _kind(obj) == "bridge" else None
        if isinstance(pvid, int) and not isinstance(pvid, bool) and 0 <= pvid <= 4094:
            out.append((str(obj["ifname"]), pvid))
    return tuple(out)


def parse_vlan_table(text: str) -> tuple[PortVlan, ...]:
    """``bridge -j vlan show``: a list of ``{ifname, vlans: [{vlan, vlanEnd?, flags}]}`` (iproute2
    5.x and later) or, from older versions, one mapping ``{ifname: [{vlan, flags}]}``."""
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactsError(f"section bridge_vlans: invalid JSON: {exc}") from None
    if isinstance(data, dict):  # the old format
        data = [{"ifname": k, "vlans": v} for k, v in data.items()]
    if not isinstance(data, list):
        raise FactsError("section bridge_vlans: expected a JSON list")
    table: list[PortVlan] = []
    for obj in data:
        if not isinstance(obj, dict) or not isinstance(obj.get("vlans"), list):
            raise FactsError(f"section bridge_vlans: unexpected entry {obj!r:.120}")
        try:
            dev = validate.interface_name(obj.get("ifname"), "bridge vlan port")
        except ValidationError as exc:
            raise FactsError(f"section bridge_vlans: {exc}") from None
        table.extend(_port_vlan(dev, entry) for entry in obj["vlans"])
    return tuple(table)


def _port_vlan(dev: str, entry: object) -> PortVlan:
    if not isinstance(entry, dict) or not isinstance(entry.get("vlan"), int):
        raise FactsError(f"section bridge_vlans: unexpected VLAN entry {entry!r:.120} of {dev}")
    vid = int(entry["vlan"])
    end = entry.get("vlanEnd", vid)
    flags = entry.get("flags", [])
    flags = flags if isinstance(flags, list) else []
    return PortVlan(
        dev=dev,
        vid=vid,
        vid_end=end if isinstance(end, int) else vid,
        pvid="PVID" in flags,
        untagged="Egress Untagged" in flags,
    )


def _decode(section: str, data: str) -> str:
    try:
        return base64.b64decode(data.encode("ascii"), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise FactsError(f"section {section}: bad base64 {data[:40]!r}") from None


def _dhcp_lines(lines: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """``proc NAME B64-ARGS``, ``networkd IFINDEX B64``, ``nm FILE B64``, ``dhclient FILE B64``
    -> (client program -> its argument words, lease key -> KEY=VALUE of the lease)."""
    procs: dict[str, list[str]] = {}
    leases: dict[str, dict[str, str]] = {}
    for line in lines:
        kind, _, rest = line.partition(" ")
        name, _, data = rest.partition(" ")
        if kind not in ("proc", "networkd", "nm", "dhclient") or not name:
            raise FactsError(f"section dhcp: unexpected line {line!r:.120}")
        text = _decode("dhcp", data) if data else ""
        if kind == "proc":
            procs.setdefault(name, []).extend(text.split())
        elif kind == "dhclient":
            leases[f"dhclient:{name}"] = _dhclient_lease(text)
        else:
            leases[f"{kind}:{name}"] = _key_values(text)
    return procs, leases


def _key_values(text: str) -> dict[str, str]:
    out = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def _dhclient_lease(text: str) -> dict[str, str]:
    """The last lease of a dhclient lease file: interface, address, client identifier."""
    last: dict[str, str] = {}
    current: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip().rstrip(";")
        if line.startswith("lease"):
            current = {}
        elif line == "}":
            last = current
        elif line.startswith("interface "):
            current["IFACE"] = line.split(" ", 1)[1].strip('"')
        elif line.startswith("fixed-address "):
            current["ADDRESS"] = line.split(" ", 1)[1]
        elif line.startswith("option dhcp-client-identifier "):
            current["CLIENTID"] = line.split(" ", 2)[2]
    return last


def parse_dhcp(
    lines: Sequence[str], addr: Iterable[JsonObj], daemons: Daemons
) -> tuple[tuple[DhcpLease, ...], tuple[str, ...]]:
    """DHCP leases: each dynamic IPv4 address, and each dynamic global IPv6 /128 (DHCPv6; SLAAC
    ones are /64), with the client that holds it. Returns (leases, running client programs)."""
    procs, leases = _dhcp_lines(lines)
    sources = _Sources(procs, leases, daemons)
    found = []
    for obj in addr:
        dev, index = obj.get("ifname"), obj.get("ifindex")
        if not isinstance(dev, str):
            continue
        for info in obj.get("addr_info", []):
            lease = _lease(dev, index, info, sources)
            if lease is not None:
                found.append(lease)
    return tuple(found), tuple(sorted(procs))


@dataclass(frozen=True)
class _Sources:
    """What tells which client holds a lease: programs' arguments, lease records, daemons."""

    procs: dict[str, list[str]]
    leases: dict[str, dict[str, str]]
    daemons: Daemons


def _lease(dev: str, index: object, info: object, sources: _Sources) -> DhcpLease | None:
    if not isinstance(info, dict) or not info.get("dynamic") or info.get("scope") != "global":
        return None
    family: Literal[4, 6] = 6 if info.get("family") == "inet6" else 4
    if family == 6 and info.get("prefixlen") != 128:
        return None  # SLAAC
    try:
        cidr = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").with_prefixlen
    except (KeyError, ValueError):
        return None
    life = info.get("valid_life_time")
    client, record = _client(dev, index, str(info["local"]), sources)
    return DhcpLease(
        dev=dev,
        family=family,
        cidr=cidr,
        client=client,
        expires_in=life if isinstance(life, int) and life != FOREVER else None,
        client_id=_word(record.get("CLIENTID")),
    )


def _client(
    dev: str, index: object, address: str, sources: _Sources
) -> tuple[DhcpClientName, dict[str, str]]:
    """Which client holds ``dev``'s lease, and its lease record (may be empty)."""
    leases = sources.leases
    for key, record in leases.items():
        if key.startswith("dhclient:") and (record.get("IFACE"), record.get("ADDRESS")) == (
            dev,
            address,
        ):
            return "dhclient", record
    for program in DHCP_PROGRAMS:
        if dev in sources.procs.get(program, ()):
            return program, {}
    networkd = leases.get(f"networkd:{index}")
    if networkd is not None:
        return "networkd", networkd
    nm = next((r for k, r in leases.items() if k.startswith("nm:") and k.endswith(f"-{dev}")), None)
    if nm is not None:
        return "networkmanager", nm
    manager = sources.daemons.manager(dev).manager
    if manager in ("networkd", "netplan"):
        return "networkd", {}
    if manager == "networkmanager":
        return "networkmanager", {}
    return "unknown", {}


def parse_topology(
    links: Sequence[JsonObj],
    addr: Sequence[JsonObj],
    vlan_text: str | None,
    dhcp_lines: Sequence[str] | None,
    daemons: Daemons,
) -> TopologyFacts:
    """All topology facts; ``vlan_text`` None: no VLAN table reported, ``dhcp_lines`` None: no
    dhcp section (older script): leases are still found from the addresses."""
    leases, clients = parse_dhcp(dhcp_lines or (), addr, daemons)
    return TopologyFacts(
        bonds=parse_bonds(links),
        vlans=parse_vlans(links),
        vlan_table=None if vlan_text is None else parse_vlan_table(vlan_text),
        vlan_filtering=vlan_filtering_bridges(links),
        default_pvids=default_pvids(links),
        dhcp=leases,
        dhcp_clients=clients,
    )
