"""Validators for every value that can reach a remote shell command.

All of them raise :class:`~fleetbr.errors.ValidationError` with a message naming the field, and
return the value in canonical form. Quoting still happens in the templates (``| q``); validation is
the first of two fences, not the only one.
"""

from __future__ import annotations

import ipaddress
import re

from fleetbr.errors import ValidationError

IFNAME_MAX = 15  # IFNAMSIZ - 1
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def interface_name(value: object, field: str = "interface") -> str:
    """Return ``value`` if it is a valid Linux interface name (kernel rules, no shell chars)."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: interface name must be a non-empty string, got {value!r}")
    if len(value) > IFNAME_MAX:
        raise ValidationError(
            f"{field}: interface name {value!r} is {len(value)} characters, the kernel allows "
            f"at most {IFNAME_MAX}"
        )
    if value in (".", "..") or not _IFNAME_RE.match(value):
        raise ValidationError(
            f"{field}: interface name {value!r} may only contain letters, digits, '_', '-' and '.'"
        )
    return value


def cidr(value: object, field: str = "address") -> str:
    """Return a canonical ``addr/prefix`` (host bits kept) for an IPv4 or IPv6 interface address."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(f"{field}: {value!r} is not an address with a prefix (a.b.c.d/nn)")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise ValidationError(f"{field}: {value!r} is not a valid CIDR address: {exc}") from None
    return iface.with_prefixlen


def ip_address(value: object, field: str = "gateway") -> str:
    """Return a canonical IPv4 or IPv6 address (no prefix)."""
    if not isinstance(value, str):
        raise ValidationError(f"{field}: {value!r} is not an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValidationError(f"{field}: {value!r} is not a valid IP address") from None


def mac_address(value: object, field: str = "mac") -> str:
    """Return a lower-case unicast MAC address ``aa:bb:cc:dd:ee:ff``."""
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise ValidationError(f"{field}: {value!r} is not a MAC address like 52:54:00:12:34:56")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise ValidationError(f"{field}: {mac} is multicast; a bridge needs a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise ValidationError(f"{field}: the all-zero MAC is not usable")
    return mac


def integer(value: object, field: str, minimum: int, maximum: int) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field}: expected a whole number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{field}: {value} is outside {minimum}..{maximum}")
    return value


def boolean(value: object, field: str) -> bool:
    """Return ``value`` if it is a YAML boolean."""
    if not isinstance(value, bool):
        raise ValidationError(f"{field}: expected true or false, got {value!r}")
    return value


def choice(value: object, field: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValidationError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
    assert isinstance(value, str)
    return value
