"""Settings of the NIC's configuration that fleetbr does not own but must not lose: the MTU,
name servers and policy rules. Each backend carries them to where they belong (the port, the
bridge) and reports them as :class:`Carried`, which confirm and ``check`` compare with the host
(:mod:`fleetbr.plan.diff`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from fleetbr.backends.model import BackendRefusal

# The rule selectors fleetbr can compare with ``ip -j rule``: its words for them.
RULE_KEYS = ("from", "to", "table", "priority")
_MAX_MTU = 65535


@dataclass(frozen=True)
class PolicyRule:
    """A policy rule a backend writes: ``ip rule`` ``from``/``to`` prefixes (None: all), the
    table and the priority (None: the kernel picks one)."""

    family: int
    table: str
    src: str | None = None
    dst: str | None = None
    priority: int | None = None

    def text(self) -> str:
        """The rule as :class:`fleetbr.facts.model.Rule` ``text`` (``ip -j rule`` fields but the
        priority, sorted): what the kernel shows once the daemon added it."""
        fields: dict[str, str] = {"table": self.table, "src": "all"}
        for name, value in (("src", self.src), ("dst", self.dst)):
            if value is None:
                continue
            net = ipaddress.ip_network(value, strict=False)
            fields[name] = str(net.network_address)
            if net.prefixlen != net.max_prefixlen:
                fields[f"{name}len"] = str(net.prefixlen)
        return " ".join(f"{key} {fields[key]}" for key in sorted(fields))

    def describe(self) -> str:
        """``from 198.51.100.10/32 table 100 priority 100`` (for messages)."""
        words = [f"from {self.src or 'all'}"]
        words += [f"to {self.dst}"] * bool(self.dst)
        words.append(f"table {self.table}")
        words += [f"priority {self.priority}"] * (self.priority is not None)
        return f"ipv{self.family} {' '.join(words)}"


@dataclass(frozen=True)
class Carried:
    """What the bridge must show once its daemon applied the files: the MTU of the bridge and
    its port (None: not configured), the policy rules, and the name servers the files give it."""

    mtu: int | None = None
    rules: tuple[PolicyRule, ...] = ()
    dns: tuple[str, ...] = ()


def refuse(backend: str, setting: str, why: str) -> BackendRefusal:
    """A refusal that names the setting fleetbr would otherwise lose."""
    return BackendRefusal(
        f"persist: {backend}: {setting} {why}; fleetbr will not lose it silently: change it first"
    )


def mtu(value: object, backend: str, setting: str) -> int:
    """An MTU in bytes (digits only; BackendRefusal otherwise)."""
    text = str(value).strip()
    if not text.isdigit() or not 68 <= int(text) <= _MAX_MTU:
        raise refuse(backend, f"{setting}={text}", "is not an MTU in bytes fleetbr can read")
    return int(text)


def rule(
    selectors: Mapping[str, object], backend: str, setting: str, family: int | None = None
) -> PolicyRule:
    """A rule from its selectors in fleetbr's words (``from``, ``to``, ``table``, ``priority``;
    anything else, or a value that is not a prefix or a number, is refused with the setting).
    ``family``: the one the format gives it, if any (else its prefixes tell)."""
    shown = " ".join(f"{k}={v}" for k, v in selectors.items())
    extra = [key for key in selectors if key not in RULE_KEYS]
    if extra:
        why = f"uses {', '.join(extra)}, which it cannot carry"
        raise refuse(backend, f"{setting} ({shown})", why)
    table = str(selectors.get("table", "main"))
    priority = selectors.get("priority")
    if not table.isdigit() and table != "main":
        raise refuse(backend, f"{setting} ({shown})", "has a table that is not a number")
    if priority is not None and not str(priority).isdigit():
        raise refuse(backend, f"{setting} ({shown})", "has a priority that is not a number")
    prefixes: list[str | None] = []
    families = {family} if family is not None else set()
    for key in ("from", "to"):
        value = selectors.get(key)
        if value is None or str(value) == "all":
            prefixes.append(None)
            continue
        try:
            net = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            why = f"has a {key} that is not a prefix"
            raise refuse(backend, f"{setting} ({shown})", why) from None
        families.add(net.version)
        prefixes.append(str(value))
    if len(families) != 1:
        why = "has no family (from/to prefixes of one family)"
        raise refuse(backend, f"{setting} ({shown})", why)
    return PolicyRule(
        families.pop(),
        table,
        src=prefixes[0],
        dst=prefixes[1],
        priority=None if priority is None else int(str(priority)),
    )
