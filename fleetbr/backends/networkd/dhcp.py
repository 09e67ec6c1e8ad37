"""systemd-networkd: a bridge that keeps its uplink's DHCP leases (``addresses: dhcp``).

The bridge runs networkd's DHCP client with the uplink's identity, so the server hands it the
same leases: the bridge has the NIC's MAC (``MACAddress=`` of its .netdev, the runtime steps'
MAC), and its .network pins the client identity the NIC's lease records (networkd's lease file,
``CLIENTID=``): ``ClientIdentifier=mac``, or ``ClientIdentifier=duid`` with the same ``IAID=``,
``DUIDType=`` and ``DUIDRawData=`` for DHCPv4 and DHCPv6 (networkd derives the IAID from the
interface, so the bridge's own would differ; systemd 252, systemd.network(5) [DHCPv4] and
[DHCPv6]). The NIC's other [Network] keys and its [DHCPv4]/[DHCPv6] settings are carried over.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import fleetbr.backends.networkd.backend as nd
from fleetbr.backends import ini
from fleetbr.backends.dhcp_identity import DUID_TYPES, ClientIdentity, parse_client_id
from fleetbr.backends.model import BackendRefusal, Holder
from fleetbr.facts.model import HostFacts

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import TopoBridge

Sections = list[tuple[str, list[str]]]
IDENTITY_KEYS = frozenset({"ClientIdentifier", "IAID", "DUIDType", "DUIDRawData"})
DHCP_SECTIONS = ("DHCPv4", "DHCPv6")
_KNOWN = frozenset(
    {"", "Match", "Link", "Network", "Route", "DHCP", *DHCP_SECTIONS, "IPv6AcceptRA"}
)
# [Network] keys fleetbr writes itself on the bridge
_OURS = frozenset(
    {"Address", "Gateway", "DHCP", "Bridge", "Bond", "VLAN", "ConfigureWithoutCarrier"}
)
# routes networkd makes itself from the lease and router advertisements
_LEARNT = ("dhcp", "ra")


def dhcp_word(ipv4: bool, ipv6: bool) -> str:
    """``DHCP=`` for these families."""
    return "yes" if ipv4 and ipv6 else "ipv4" if ipv4 else "ipv6"


def old_file(facts: HostFacts, bridge: str, source: str) -> tuple[str, Sections]:
    """The file whose settings the bridge takes: its own when fleetbr wrote it before (a plan
    again), else the source NIC's .network (refused as for one NIC)."""
    own = posixpath.join(nd.ETC, f"10-{bridge}.network")
    text = facts.daemons.contents.get(own)
    if text is not None:
        return own, ini.sections(text)
    return nd.nic_network(facts, source)


def _check(path: str, parts: Sections) -> None:
    unknown = sorted({name for name, _ in parts} - _KNOWN)
    if unknown:
        raise BackendRefusal(
            f"persist: networkd: [{'], ['.join(unknown)}] in {path} is not carried to the bridge "
            "with addresses: dhcp"
        )
    keys = [kv for name, lines in parts if name == "Network" for kv in ini.values(lines)]
    stacked = [f"{k}={v}" for k, v in keys if k in nd._STACKED]
    if stacked:
        raise BackendRefusal(
            f"persist: networkd: {path} stacks {', '.join(stacked)} on the NIC; fleetbr does not "
            "move it to the bridge"
        )


def identity(
    facts: HostFacts, devs: tuple[str, ...], path: str, backend: str = "networkd"
) -> ClientIdentity:
    """The client identity of the DHCPv4 lease networkd's client holds on ``devs`` (the NIC, or
    the bridge on a plan again); refused when none was read or it is an opaque identifier
    (``backend``: the name in the refusal; netplan renders for networkd's client too)."""
    leases = [lease for d in devs for lease in facts.topology.leases_of(d)]
    other = next((lease for lease in leases if lease.client != "networkd"), None)
    if other is not None:
        raise BackendRefusal(
            f"persist: {backend}: the DHCP lease {other.cidr} on {other.dev} is held by "
            f"{other.client}, not networkd; fleetbr would change the client"
        )
    found = next((x.client_id for x in leases if x.family == 4 and x.client_id), None)
    parsed = parse_client_id(found)
    if parsed is None:
        what = f"client id {found} is neither a MAC nor an IAID+DUID" if found else "was not read"
        raise BackendRefusal(
            f"persist: {backend}: the DHCP client identity of {' or '.join(devs)} ({path}) "
            f"{what}; fleetbr keeps a lease only with the identity it was given to"
        )
    return parsed


def identity_lines(ident: ClientIdentity) -> tuple[list[str], list[str]]:
    """The [DHCPv4] and [DHCPv6] lines that make networkd present ``ident``."""
    if ident.kind == "mac":
        return ["ClientIdentifier=mac"], []
    assert ident.iaid is not None and ident.duid_type is not None
    duid = [f"DUIDType={DUID_TYPES.get(ident.duid_type, str(ident.duid_type))}"]
    duid += [f"DUIDRawData={ident.duid_data}"] * bool(ident.duid_data)
    both = [f"IAID={ident.iaid}", *duid]
    return ["ClientIdentifier=duid", *both], both


def _carried_lines(parts: Sections, section: str) -> list[str]:
    """``section``'s settings (``DHCP`` is networkd's old name of ``DHCPv4``) but the identity."""
    names = (section, "DHCP") if section == "DHCPv4" else (section,)
    return [
        f"{k}={v}"
        for name, lines in parts
        if name in names
        for k, v in ini.values(lines)
        if k not in IDENTITY_KEYS
    ]


def holder_network(
    bridge: TopoBridge, holder: Holder, facts: HostFacts, vlans: list[str]
) -> Sections:
    """The bridge's .network: networkd's DHCP client with the NIC's identity, the NIC's other
    settings, and the routes networkd does not learn from the lease or router advertisements."""
    ipv4, ipv6 = (True, True) if bridge.dhcp is None else (bridge.dhcp.ipv4, bridge.dhcp.ipv6)
    source = holder.source or (bridge.nic or "")
    path, parts = old_file(facts, bridge.name, source)
    _check(path, parts)
    v4, v6 = identity_lines(identity(facts, (source, bridge.name), path))
    keys = [
        f"{k}={v}"
        for name, lines in parts
        if name == "Network"
        for k, v in ini.values(lines)
        if k not in _OURS
    ]
    if ipv6 and not any(k.startswith("IPv6AcceptRA=") for k in keys):
        keys.append("IPv6AcceptRA=yes")  # networkd starts DHCPv6 on an advertisement's M flag
    network = [f"DHCP={dhcp_word(ipv4, ipv6)}", *keys, *(f"VLAN={v}" for v in vlans)]
    out: Sections = [
        ("", [nd.HEADER.format(what=f"DHCP client of {holder.dev} with {source}'s identity")]),
        ("Match", [f"Name={holder.dev}"]),
        ("Network", [*network, "ConfigureWithoutCarrier=yes"]),
    ]
    if ipv4:
        out.append(("DHCPv4", [*_carried_lines(parts, "DHCPv4"), *v4]))
    if ipv6 and (v6 or _carried_lines(parts, "DHCPv6")):
        out.append(("DHCPv6", [*_carried_lines(parts, "DHCPv6"), *v6]))
    out += [(n, ls) for n, ls in parts if n == "IPv6AcceptRA"]
    kept = [r for r in holder.routes if r.protocol not in _LEARNT]
    return out + [("Route", nd._route_section(r)) for r in kept]


def lease_words(bridges: tuple[TopoBridge, ...], facts: HostFacts) -> str | None:
    """``DEV=ADDRESS`` of every lease a DHCP bridge keeps, on the bridge (the apply waits for
    them) and on its NIC (the rollback's re-apply waits for them there)."""
    words = [
        f"{holder}={lease.cidr.split('/')[0]}"
        for bridge in bridges
        if bridge.addresses == "dhcp"
        for dev in dict.fromkeys((bridge.nic or "", bridge.name))
        for lease in facts.topology.leases_of(dev)
        for holder in (bridge.name, bridge.nic)
        if holder
    ]
    return " ".join(dict.fromkeys(words)) or None
