"""Validators for every value that can reach a remote shell command.

All of them raise :class:`~fleetbr.errors.ValidationError` with a message naming the field, and
return the value in canonical form. Quoting still happens in the templates (``| q``); validation is
the first of two fences, not the only one.
"""

from __future__ import annotations

import ipaddress
import os
import re
import reprlib
from typing import Any

from fleetbr.errors import ValidationError

IFNAME_MAX = 15  # IFNAMSIZ - 1
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
USERNAME_MAX = 256
SHOW_MAX = 100  # characters of a value quoted in an error message
# Nesting levels a loaded YAML document may have. Real files need fewer than 10; the bound keeps
# every recursive walk of a document (deepcopy, json, redaction) far from Python's recursion
# limit, whichever parser loaded it (libyaml does not stop at depth, the pure parsers do).
MAX_DEPTH = 64
_SEQUENCES = (list, tuple, set, frozenset)
_CONTAINERS = (dict, *_SEQUENCES)

_SHOW = reprlib.Repr()
_SHOW.maxlevel = 2
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 60
_SHOW.maxlist = _SHOW.maxtuple = _SHOW.maxdict = _SHOW.maxset = _SHOW.maxfrozenset = 4


def show(value: object) -> str:
    """``repr(value)`` bounded to SHOW_MAX characters, for error messages.

    Never the whole repr: a value may be a YAML alias bomb whose repr takes gigabytes.
    """
    try:
        text = _SHOW.repr(value)
    except ValueError:  # an int beyond Python's digit limit
        text = f"<{type(value).__name__}>"
    return clip(text)


def clip(text: str, limit: int = SHOW_MAX) -> str:
    """``text`` cut to ``limit`` characters (``...`` marks the cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_lines(text: str) -> list[str]:
    """``text`` split on ``\\n`` only: the host's shell ends lines with it, and nothing else
    (``str.splitlines`` also splits on ``\\r``, ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, U+0085,
    U+2028 and U+2029, which any output can contain in the middle of a line)."""
    return text.split("\n")


def label(value: object) -> str:
    """A mapping key for an error message: a string as it is (cut), anything else via show()."""
    return clip(value) if isinstance(value, str) else show(value)


def bounded(document: object, limit: int, field: str) -> None:
    """Refuse a loaded YAML document with more than ``limit`` values once aliases are expanded,
    or nested deeper than :data:`MAX_DEPTH` levels.

    YAML aliases share objects, so a few lines can stand for billions of values (the "billion
    laughs"); anything that walks, copies, prints or serialises the document expands them. The walk
    stops as soon as the budget is spent, so checking costs at most ``limit`` steps; a recursive
    alias is refused as too deep.
    """
    budget = limit - 1  # the document itself is a value
    stack: list[tuple[object, int]] = [(document, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            members = [*item.keys(), *item.values()]
        elif isinstance(item, _SEQUENCES):
            members = list(item)
        else:
            continue
        budget -= len(members)
        if budget < 0:
            raise ValidationError(
                f"{field}: more than {limit} values once YAML aliases (*name) are expanded"
            )
        if members and depth >= MAX_DEPTH:
            raise ValidationError(f"{field}: nested deeper than {MAX_DEPTH} levels")
        stack.extend((m, depth + 1) for m in members if isinstance(m, _CONTAINERS))


def bounded_yaml(text: str, limit: int, field: str) -> Any:
    """``text`` loaded by PyYAML's safe loader, then checked by :func:`bounded`. A document too
    deep for the loader itself (it recurses) is the same ValidationError as one :func:`bounded`
    finds too deep; bad YAML is PyYAML's ``yaml.YAMLError``."""
    import yaml  # noqa: PLC0415 - the CLI's start-up imports this module and needs no PyYAML

    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise ValidationError(f"{field}: nested deeper than {MAX_DEPTH} levels") from None
    bounded(document, limit, field)
    return document


def interface_name(value: object, field: str = "interface") -> str:
    """Return ``value`` if it is a valid Linux interface name (kernel rules, no shell chars)."""
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"{field}: interface name must be a non-empty string, got {show(value)}"
        )
    if len(value) > IFNAME_MAX:
        raise ValidationError(
            f"{field}: interface name {show(value)} is {len(value)} characters, the kernel allows "
            f"at most {IFNAME_MAX}"
        )
    if value in (".", "..") or not _IFNAME_RE.match(value):
        raise ValidationError(
            f"{field}: interface name {show(value)} may only contain letters, digits, '_', '-' "
            "and '.'"
        )
    return value


def cidr(value: object, field: str = "address") -> str:
    """Return a canonical ``addr/prefix`` (host bits kept) for an IPv4 or IPv6 interface address."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(
            f"{field}: {show(value)} is not an address with a prefix (a.b.c.d/nn)"
        )
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise ValidationError(
            f"{field}: {show(value)} is not a valid CIDR address: {clip(str(exc))}"
        ) from None
    _check_scope(iface, value, field)
    return iface.with_prefixlen


def ip_address(value: object, field: str = "gateway") -> str:
    """Return a canonical IPv4 or IPv6 address (no prefix)."""
    if not isinstance(value, str):
        raise ValidationError(f"{field}: {show(value)} is not an IP address")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(f"{field}: {show(value)} is not a valid IP address") from None
    _check_scope(addr, value, field)
    return str(addr)


def _check_scope(addr: object, value: str, field: str) -> None:
    """An IPv6 scope id (``fe80::1%eth0``) must be an interface name or a zone number.

    Python accepts any characters after ``%``; they would reach ``ip`` and the probe's ``ping``.
    """
    scope = getattr(addr, "scope_id", None)
    if scope is None:
        return
    if not (scope.isdigit() or (len(scope) <= IFNAME_MAX and _IFNAME_RE.match(scope))):
        raise ValidationError(
            f"{field}: {show(value)}: the scope id after % must be an interface name or a "
            "number (letters, digits, '_', '-', '.')"
        )


_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def uuid(value: object, field: str = "uuid") -> str:
    """Return ``value`` if it is a lower-case UUID (as NetworkManager prints them)."""
    if not isinstance(value, str) or not _UUID_RE.match(value):
        raise ValidationError(f"{field}: {show(value)} is not a UUID")
    return value


def mac_address(value: object, field: str = "mac") -> str:
    """Return a lower-case unicast MAC address ``aa:bb:cc:dd:ee:ff``."""
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise ValidationError(f"{field}: {show(value)} is not a MAC address like 52:54:00:12:34:56")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise ValidationError(f"{field}: {mac} is multicast; a bridge needs a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise ValidationError(f"{field}: the all-zero MAC is not usable")
    return mac


def integer(value: object, field: str, minimum: int, maximum: int) -> int:
    """Return ``value`` as an int within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field}: expected a whole number, got {show(value)}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{field}: {value} is outside {minimum}..{maximum}")
    return value


def boolean(value: object, field: str) -> bool:
    """Return ``value`` if it is a YAML boolean."""
    if not isinstance(value, bool):
        raise ValidationError(f"{field}: expected true or false, got {show(value)}")
    return value


def choice(value: object, field: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValidationError(f"{field}: {show(value)} is not one of {', '.join(allowed)}")
    assert isinstance(value, str)
    return value


def username(value: object, field: str = "username") -> str:
    """Return ``value`` if it is usable as an SSH user name (no whitespace or control characters).

    asyncssh runs user names through SASLprep, which rejects control characters with an error no
    operator should meet at connect time; checking here makes it a load-time error instead.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: expected a non-empty string, got {show(value)}")
    if len(value) > USERNAME_MAX:
        raise ValidationError(f"{field}: longer than {USERNAME_MAX} characters")
    if value.startswith("-") or any(not c.isprintable() or c.isspace() for c in value):
        raise ValidationError(
            f"{field}: {show(value)} is not a user name (no whitespace, control characters "
            "or leading '-')"
        )
    return value


def seconds_from_env(name: str, default: float, low: float, high: float) -> float:
    """The environment variable ``name`` as seconds in ``[low, high]``; ``default`` when it is
    unset, not a number or out of range (a tuning knob, never a reason to stop a run)."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if low <= value <= high else default
