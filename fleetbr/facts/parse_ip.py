"""Pure parsers for the iproute2 JSON sections of the facts output: links, addr, bridges.

Routes and rules: :mod:`fleetbr.facts.parse_routes`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fleetbr import validate
from fleetbr.errors import FactsError, ValidationError
from fleetbr.facts.model import Address, Bridge, Family, Link

JsonObj = dict[str, Any]

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_FAMILIES: dict[str, Family] = {"inet": 4, "inet6": 6}


def load_json(section: str, text: str) -> list[JsonObj]:
    """Decode one JSON section: a list of objects (empty text means an empty list)."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactsError(f"section {section}: invalid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise FactsError(f"section {section}: expected a JSON list of objects")
    return data


def _get(section: str, obj: Mapping[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FactsError(
            f"section {section}: {key!r} missing or not {kind.__name__} in {obj!r:.120}"
        )
    return value


def link_kind(obj: Mapping[str, Any]) -> str:
    """``loopback``, ``ether`` for a plain NIC, else linkinfo's ``info_kind`` (bridge, veth...)."""
    link_type = obj.get("link_type")
    if link_type == "loopback":
        return "loopback"
    info = obj.get("linkinfo")
    if isinstance(info, dict) and isinstance(info.get("info_kind"), str):
        return str(info["info_kind"])
    return str(link_type) if isinstance(link_type, str) else "unknown"


def parse_links(
    data: Iterable[JsonObj], wireless: frozenset[str] = frozenset()
) -> tuple[Link, ...]:
    """Links from ``ip -j -d link show``; ``wireless`` names links that have a wireless phy."""
    links = []
    for obj in data:
        name = _get("links", obj, "ifname", str)
        flags = obj.get("flags", [])
        kind = link_kind(obj)
        mac = str(obj.get("address", "")).lower()
        master = obj.get("master")
        links.append(
            Link(
                name=name,
                kind=kind,
                mac=mac if kind != "loopback" and _MAC_RE.match(mac) else None,
                mtu=_get("links", obj, "mtu", int),
                state=str(obj.get("operstate", "UNKNOWN")),
                admin_up=isinstance(flags, list) and "UP" in flags,
                master=master if isinstance(master, str) else None,
                wireless=name in wireless,
                addrgenmode=_addrgenmode(obj.get("inet6_addr_gen_mode")),
            )
        )
    return tuple(links)


ADDRGENMODES = ("eui64", "none", "stable_secret", "random")


def _addrgenmode(value: object) -> str | None:
    """``inet6_addr_gen_mode`` when it is one ``ip link set ... addrgenmode`` takes."""
    return value if isinstance(value, str) and value in ADDRGENMODES else None


def parse_addresses(data: Iterable[JsonObj]) -> tuple[Address, ...]:
    """Addresses from ``ip -j addr show``, in kernel order; ``cidr`` keeps the host bits."""
    addresses = []
    for obj in data:
        dev = _get("addr", obj, "ifname", str)
        for info in obj.get("addr_info", []):
            # Some iproute2 versions emit {} for filtered entries; skip anything without a local.
            if not isinstance(info, dict) or "local" not in info:
                continue
            family = _FAMILIES.get(info.get("family", ""))
            if family is None:
                continue
            try:
                cidr = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").with_prefixlen
            except (KeyError, ValueError) as exc:
                raise FactsError(f"section addr: bad address on {dev}: {exc}") from None
            addresses.append(
                Address(
                    dev=dev,
                    family=family,
                    cidr=cidr,
                    scope=str(info.get("scope", "global")),
                    dynamic=bool(info.get("dynamic", False)),
                    broadcast=_broadcast(info.get("broadcast")),
                    label=_label(dev, family, info.get("label")),
                    secondary=bool(info.get("secondary", False)),
                    nodad=bool(info.get("nodad", False)),
                    noprefixroute=bool(info.get("noprefixroute", False)),
                )
            )
    return tuple(addresses)


def _label(dev: str, family: Family, value: object) -> str | None:
    """An IPv4 address label, or None when it is the device name (the kernel's default)."""
    if family != 4 or value is None or value == dev:
        return None
    if not isinstance(value, str):
        raise FactsError(f"section addr: bad label {value!r} on {dev}")
    return value


def _broadcast(value: object) -> str | None:
    """A broadcast address from ``ip -j addr``, checked (it reaches shell); None if absent."""
    if value is None:
        return None
    try:
        return validate.ip_address(value, "broadcast")
    except ValidationError as exc:
        raise FactsError(f"section addr: {exc}") from None


def _sysfs_bridges(lines: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``bridge NAME STP FD`` lines -> name -> (stp_state, forward_delay centiseconds)."""
    found = {}
    for line in lines:
        words = line.split()
        if len(words) != 4 or words[0] != "bridge":
            raise FactsError(f"section bridges: unexpected line {line!r}")
        if words[2].isdigit() and words[3].isdigit():
            found[words[1]] = (int(words[2]), int(words[3]))
    return found


def _seconds(centiseconds: int) -> int:
    return (centiseconds + 50) // 100


def parse_bridges(
    links: Iterable[JsonObj], bridge_links: Iterable[JsonObj], sysfs_lines: Iterable[str]
) -> tuple[Bridge, ...]:
    """Bridges with settings from netlink (``ip -d link`` info_data), sysfs as the fallback.

    Ports are links whose master is the bridge, plus any ``bridge -j link`` reports.
    """
    sysfs = _sysfs_bridges(sysfs_lines)
    link_list = list(links)
    ports: dict[str, list[str]] = {}
    for obj in [*link_list, *bridge_links]:
        master, name = obj.get("master"), obj.get("ifname")
        if isinstance(master, str) and isinstance(name, str):
            members = ports.setdefault(master, [])
            if name not in members:
                members.append(name)
    bridges = []
    for obj in link_list:
        if link_kind(obj) != "bridge":
            continue
        name = _get("links", obj, "ifname", str)
        info = obj.get("linkinfo")
        data = info.get("info_data") if isinstance(info, dict) else None
        data = data if isinstance(data, dict) else {}
        stp, delay = data.get("stp_state"), data.get("forward_delay")
        if not isinstance(stp, int) or not isinstance(delay, int):
            if name not in sysfs:
                raise FactsError(f"section bridges: no stp_state/forward_delay for bridge {name}")
            stp, delay = sysfs[name]
        bridges.append(Bridge(name, stp != 0, _seconds(delay), tuple(ports.get(name, ()))))
    return tuple(bridges)
