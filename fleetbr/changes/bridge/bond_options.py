"""The bond options a task may set: an allow-list with typed values and the modes each applies to.

Names and values are the kernel's (``ip link add bond0 type bond mode 802.3ad miimon 100
lacp_rate fast``; Documentation/networking/bonding.rst). Anything else is a validation error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleetbr import validate
from fleetbr.changes.bridge.topology import BOND_MODES, OptionValue
from fleetbr.errors import ValidationError
from fleetbr.validate import label, show

MS_MAX = 2**31 - 1
ARP_TARGETS_MAX = 16  # BOND_MAX_ARP_TARGETS


def _ms(value: object, field: str) -> OptionValue:
    return validate.integer(value, field, 0, MS_MAX)


def _count(value: object, field: str) -> OptionValue:
    return validate.integer(value, field, 0, 65535)


def _flag(value: object, field: str) -> OptionValue:
    return validate.boolean(value, field)


def _words(*allowed: str) -> Callable[[object, str], OptionValue]:
    def check(value: object, field: str) -> OptionValue:
        return validate.choice(value, field, allowed)

    return check


def _ifname(value: object, field: str) -> OptionValue:
    return validate.interface_name(value, field)


def _targets(value: object, field: str) -> OptionValue:
    """A list of IPv4 addresses, kept as ``ip link`` takes them: comma-separated."""
    if not isinstance(value, list) or not 1 <= len(value) <= ARP_TARGETS_MAX:
        raise ValidationError(
            f"{field}: expected a list of 1 to {ARP_TARGETS_MAX} IPv4 addresses, got {show(value)}"
        )
    out = []
    for i, item in enumerate(value):
        addr = validate.ip_address(item, f"{field}[{i}]")
        if ":" in addr:
            raise ValidationError(f"{field}[{i}]: {addr} is not an IPv4 address")
        out.append(addr)
    return ",".join(dict.fromkeys(out))


@dataclass(frozen=True)
class BondOption:
    """One allowed option: its value check and the modes it applies to (empty: every mode)."""

    check: Callable[[object, str], OptionValue]
    modes: tuple[str, ...] = ()


_LB = ("balance-xor", "802.3ad", "balance-tlb", "balance-alb")
_PRIMARY = ("active-backup", "balance-tlb", "balance-alb")
BOND_OPTIONS: Mapping[str, BondOption] = {
    "miimon": BondOption(_ms),
    "updelay": BondOption(_ms),
    "downdelay": BondOption(_ms),
    "use_carrier": BondOption(_flag),
    "arp_interval": BondOption(_ms),
    "arp_ip_target": BondOption(_targets),
    "arp_validate": BondOption(
        _words("none", "active", "backup", "all", "filter", "filter_active", "filter_backup")
    ),
    "lacp_rate": BondOption(_words("slow", "fast"), ("802.3ad",)),
    "ad_select": BondOption(_words("stable", "bandwidth", "count"), ("802.3ad",)),
    "min_links": BondOption(_count, ("802.3ad",)),
    "xmit_hash_policy": BondOption(
        _words("layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4", "vlan+srcmac"), _LB
    ),
    "primary": BondOption(_ifname, _PRIMARY),
    "primary_reselect": BondOption(_words("always", "better", "failure"), _PRIMARY),
    "fail_over_mac": BondOption(_words("none", "active", "follow"), ("active-backup",)),
    "all_slaves_active": BondOption(_flag),
    "tlb_dynamic_lb": BondOption(_flag, ("balance-tlb",)),
}


def bond_options(
    raw: object, field: str, mode: str, slaves: tuple[str, ...]
) -> tuple[tuple[str, OptionValue], ...]:
    """The ``options:`` mapping checked for ``mode`` and ``slaves``, as sorted pairs."""
    assert mode in BOND_MODES
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValidationError(f"{field}: expected a mapping, got {show(raw)}")
    out: dict[str, OptionValue] = {}
    for key, value in raw.items():
        option = BOND_OPTIONS.get(key) if isinstance(key, str) else None
        if option is None:
            raise ValidationError(
                f"{field}: unknown bond option {label(key)} "
                f"(allowed: {', '.join(sorted(BOND_OPTIONS))})"
            )
        if option.modes and mode not in option.modes:
            raise ValidationError(
                f"{field}.{key}: only with mode {' or '.join(option.modes)}, not {mode}"
            )
        out[key] = option.check(value, f"{field}.{key}")
    _cross_check(out, field, slaves)
    return tuple(sorted(out.items()))


def _cross_check(options: dict[str, OptionValue], field: str, slaves: tuple[str, ...]) -> None:
    primary = options.get("primary")
    if primary is not None and primary not in slaves:
        raise ValidationError(f"{field}.primary: {primary} is not one of the slaves")
    if options.get("miimon") and options.get("arp_interval"):
        raise ValidationError(
            f"{field}: miimon and arp_interval exclude each other (the kernel uses one link "
            "monitor); set one of them to 0 or leave it out"
        )
    if options.get("arp_interval") and "arp_ip_target" not in options:
        raise ValidationError(f"{field}: arp_interval needs arp_ip_target")
