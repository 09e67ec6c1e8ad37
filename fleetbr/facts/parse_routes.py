"""Pure parsers for the routes (every table) and policy rules sections of the facts output."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

from fleetbr.errors import FactsError
from fleetbr.facts.model import Family, Route, Rule

JsonObj = dict[str, Any]

ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")
_ROUTE_DEFAULTS = ("default", "0.0.0.0/0", "::/0")
# Keys of an ``ip -j route`` object that Route records (expires: a dynamic route, moved static).
_KNOWN_KEYS = frozenset(
    {"type", "dst", "gateway", "via", "dev", "table", "protocol", "scope", "prefsrc", "metric",
     "flags", "metrics", "pref", "expires", "nexthops"}
)  # fmt: skip
# Route flags that describe state, not configuration; "onlink" is recorded, others unsupported.
_STATE_FLAGS = frozenset(
    {"linkdown", "dead", "offload", "trap", "offload_failed", "rt_offload", "rt_trap",
     "rt_offload_failed", "notify", "unresolved"}
)  # fmt: skip
# ``ip -j route`` metrics -> the ``ip route add`` keyword and the unit its value needs.
_INT_METRICS = frozenset(
    {"mtu", "advmss", "hoplimit", "initcwnd", "initrwnd", "window", "ssthresh", "cwnd",
     "reordering", "quickack", "fastopen_no_cookie"}
)  # fmt: skip
_MS_METRICS = frozenset({"rtt", "rttvar", "rto_min"})


def _canonical_dst(section: str, dst: object) -> str:
    if not isinstance(dst, str):
        raise FactsError(f"section {section}: route without a destination")
    if dst in _ROUTE_DEFAULTS:
        return "default"
    try:
        return ipaddress.ip_network(dst, strict=False).with_prefixlen
    except ValueError:
        raise FactsError(f"section {section}: bad route destination {dst!r}") from None


def _address(section: str, what: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise FactsError(f"section {section}: bad {what} {value!r}") from None


def _gateway(section: str, hop: Mapping[str, Any]) -> str | None:
    gateway = hop.get("gateway")
    via = hop.get("via")
    if gateway is None and isinstance(via, dict):  # RFC 5549: v4 route via a v6 next hop
        gateway = via.get("host")
    return _address(section, "gateway", gateway)


def _metrics(obj: Mapping[str, Any], unsupported: list[str]) -> str:
    """``metrics`` as ``ip route`` options; what cannot be written back goes to ``unsupported``."""
    words: list[str] = []
    entries = obj.get("metrics", [])
    for entry in entries if isinstance(entries, list) else [entries]:
        for name, value in entry.items() if isinstance(entry, dict) else ():
            if name in _INT_METRICS and isinstance(value, int) and not isinstance(value, bool):
                words += [name, str(value)]
            elif name in _MS_METRICS and isinstance(value, int) and not isinstance(value, bool):
                words += [name, f"{value}ms"]
            elif name == "congestion" and isinstance(value, str) and value.isidentifier():
                words += ["congctl", value]
            elif name == "ecn" and value is None:
                words += ["features", "ecn"]
            else:
                unsupported.append(f"metric {name}")
    return " ".join(words)


def _flags(obj: Mapping[str, Any], unsupported: list[str]) -> bool:
    """True when the route (or its hop) is ``onlink``."""
    flags = obj.get("flags", [])
    names = [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []
    unsupported += [f"flag {f}" for f in names if f != "onlink" and f not in _STATE_FLAGS]
    return "onlink" in names


def _attributes(section: str, obj: JsonObj, family: Family) -> dict[str, Any]:
    """The Route fields shared by every next hop of ``obj``."""
    unsupported = [key for key in sorted(obj) if key not in _KNOWN_KEYS]
    metric = obj.get("metric")
    pref = obj.get("pref")
    scope = obj.get("scope")
    attrs: dict[str, Any] = {
        "family": family,
        "dst": _canonical_dst(section, obj.get("dst")),
        "metric": metric if isinstance(metric, int) and not isinstance(metric, bool) else None,
        "protocol": str(obj.get("protocol", "boot")),
        "type": str(obj.get("type", "unicast")),
        "table": str(obj.get("table", "main")),
        "src": _address(section, "prefsrc", obj.get("prefsrc")),
        # iproute2 leaves out the IPv4 scope when it is global (universe)
        "scope": str(scope) if scope is not None else ("global" if family == 4 else None),
        "pref": str(pref) if pref is not None and pref != "medium" else None,
        "metrics": _metrics(obj, unsupported),
        "onlink": _flags(obj, unsupported),
    }
    attrs["unsupported"] = tuple(unsupported)
    return attrs


def parse_routes(section: str, data: Iterable[JsonObj], family: Family) -> tuple[Route, ...]:
    """Unicast and blackhole/unreachable/prohibit routes of every table; one Route per next hop.

    Other types (local, broadcast, multicast, anycast: the kernel's own, mostly in table local)
    are skipped.
    """
    routes = []
    for obj in data:
        if obj.get("type", "unicast") not in ROUTE_TYPES:
            continue
        attrs = _attributes(section, obj, family)
        if attrs["type"] != "unicast":
            routes.append(Route(dev="", **attrs))
            continue
        nexthops = obj.get("nexthops")
        hops: list[JsonObj] = nexthops if isinstance(nexthops, list) else [obj]
        for hop in hops:
            dev = hop.get("dev")
            if not isinstance(dev, str):
                raise FactsError(f"section {section}: route to {attrs['dst']} without a device")
            hop_attrs = attrs
            if hop is not obj:
                extra: list[str] = []
                hop_attrs = {**attrs, "onlink": _flags(hop, extra)}
                hop_attrs["unsupported"] = attrs["unsupported"] + tuple(extra)
            routes.append(Route(dev=dev, gateway=_gateway(section, hop), **hop_attrs))
    return tuple(routes)


def _rule_text(obj: Mapping[str, Any]) -> str:
    words = []
    for key in sorted(obj):
        value = obj[key]
        if key == "priority":
            continue
        if value is True:
            words.append(key)
        elif isinstance(value, str | int):
            words.append(f"{key} {value}")
        else:
            words.append(f"{key} {json.dumps(value, sort_keys=True)}")
    return " ".join(words)


def parse_rules(section: str, data: Iterable[JsonObj], family: Family) -> tuple[Rule, ...]:
    """Policy rules from ``ip -j rule show``, in priority order."""
    rules = []
    for obj in data:
        priority = obj.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise FactsError(f"section {section}: rule without a numeric priority: {obj!r:.120}")
        iif, oif = obj.get("iif"), obj.get("oif")
        rules.append(
            Rule(
                family=family,
                priority=priority,
                text=_rule_text(obj),
                iif=iif if isinstance(iif, str) else None,
                oif=oif if isinstance(oif, str) else None,
            )
        )
    return tuple(rules)
