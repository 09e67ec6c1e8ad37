"""A DHCP client's identity as a lease records it (``DhcpLease.client_id``), for a backend that
moves the client to a bridge and must present the same identity so the server hands the same
lease (docs/topologies.md, "DHCP"). Pure.

A DHCPv4 client identifier (RFC 2132 option 61) is a type byte and its data: type 1 is a MAC
(``01`` + 6 bytes); type 255 (RFC 4361) is an IAID (4 bytes) and a DUID (a 2-byte DUID type and
its data), the one the same client also uses for DHCPv6 (with the same IAID by default in
systemd-networkd). Any other type is an opaque identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_HEX_RE = re.compile(r"^(?:[0-9a-f]{2})+$")
# RFC 8415 DUID types by the names systemd-networkd's DUIDType= takes
DUID_TYPES = {1: "link-layer-time", 2: "vendor", 3: "link-layer", 4: "uuid"}


@dataclass(frozen=True)
class ClientIdentity:
    """``mac``: the client id is the MAC; ``duid``: IAID and DUID (type and data bytes as
    ``aa:bb:...``)."""

    kind: Literal["mac", "duid"]
    mac: str | None = None
    iaid: int | None = None
    duid_type: int | None = None
    duid_data: str | None = None


def _bytes(text: str) -> list[str]:
    return [text[i : i + 2] for i in range(0, len(text), 2)]


def parse_client_id(text: str | None) -> ClientIdentity | None:
    """The identity in a client id (hex, with or without colons); None when there is none, or
    it is of another type (an opaque identifier a backend cannot reproduce by its settings)."""
    if not text:
        return None
    raw = text.lower().replace(":", "")
    if not _HEX_RE.match(raw):
        return None
    parts = _bytes(raw)
    if parts[0] == "01" and len(parts) == 7:
        return ClientIdentity("mac", mac=":".join(parts[1:]))
    if parts[0] == "ff" and len(parts) >= 7:
        return ClientIdentity(
            "duid",
            iaid=int("".join(parts[1:5]), 16),
            duid_type=int("".join(parts[5:7]), 16),
            duid_data=":".join(parts[7:]) or None,
        )
    return None
