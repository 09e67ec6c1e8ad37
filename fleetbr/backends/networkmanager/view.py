"""NetworkManager's view of the host, from the facts' ``daemons`` section: ``nm-device`` and
``nm-connection`` (``nmcli -t`` fields), ``nm-dns UUID SETTING:VALUE`` (the settings of each
active profile persist carries) and ``nm-dhcp DEVICE FIELD:OPTION = VALUE`` (the DHCP client
identity of each device, ``nmcli -t -f DHCP4,DHCP6 device show DEVICE``). Pure."""

from __future__ import annotations

import re

from fleetbr.facts.model import NmDhcpIdentity
from fleetbr.facts.views import ViewContext

WORDS = ("nm-device", "nm-connection", "nm-dns", "nm-dhcp")
NM_DNS_KEYS = ("ipv4.dns", "ipv4.dns-search", "ipv6.dns", "ipv6.dns-search")
# the other settings of an active profile persist carries to the bridge (backend.py)
NM_CARRIED_KEYS = ("802-3-ethernet.mtu", "ipv4.routing-rules", "ipv6.routing-rules")


def split_terse(line: str) -> list[str]:
    """Fields of an ``nmcli -t`` line: ``:`` separates, ``\\`` escapes ``:`` and itself."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def devices(ctx: ViewContext) -> list[list[str]]:
    """DEVICE, TYPE, STATE, CONNECTION, CON-UUID of each device."""
    return [[*split_terse(rest), "", "", "", "", ""][:5] for _, rest in ctx.words("nm-device")]


def connection_files(ctx: ViewContext) -> dict[str, str]:
    """Connection profile uuid -> its file."""
    files: dict[str, str] = {}
    for _, rest in ctx.words("nm-connection"):
        uuid, _, filename = [*split_terse(rest), "", "", ""][:3]
        if uuid and filename:
            files[uuid] = filename
    return files


def profile_settings(ctx: ViewContext) -> dict[str, dict[str, str]]:
    """Active profile uuid -> setting -> value (name servers, MTU, policy rules)."""
    settings: dict[str, dict[str, str]] = {}
    for _, rest in ctx.words("nm-dns"):
        uuid, _, setting = rest.partition(" ")
        key, _, value = setting.partition(":")
        if key in NM_DNS_KEYS + NM_CARRIED_KEYS and value:
            settings.setdefault(uuid, {})[key] = value
    return settings


# nmcli's DHCP option names of the client identity -> NmDhcpIdentity's fields
NM_DHCP_OPTIONS = {"dhcp_client_identifier": "client_id", "dhcp6_client_id": "duid", "iaid": "iaid"}
_BYTES_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2})*")


def dhcp_identities(ctx: ViewContext) -> dict[str, NmDhcpIdentity]:
    """Device -> the DHCP client identity NetworkManager's client presents there (a value that
    is not hex bytes is left out: it is written into a profile)."""
    found: dict[str, dict[str, str]] = {}
    for _, rest in ctx.words("nm-dhcp"):
        dev, _, line = rest.partition(" ")
        option, _, value = line.partition(":")[2].partition(" = ")
        key = NM_DHCP_OPTIONS.get(option.strip())
        value = value.strip().lower()
        if dev and key and _BYTES_RE.fullmatch(value):
            found.setdefault(dev, {})[key] = value
    return {dev: NmDhcpIdentity(**fields) for dev, fields in found.items()}


def add_views(ctx: ViewContext, found: list[list[str]], files: dict[str, str]) -> None:
    """One view of each device NetworkManager lists."""
    for fields in found:
        if not fields[0]:
            continue
        state, uuid = fields[2], fields[4]
        filename = files.get(uuid, "") if uuid else ""
        claims = state != "unmanaged" and "externally" not in state
        ctx.add(fields[0], ctx.daemon_view("networkmanager", fields[0], state, [filename], claims))
