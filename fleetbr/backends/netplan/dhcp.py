"""netplan (networkd renderer): a bridge that keeps its uplink's DHCP leases (``addresses:
dhcp``).

The bridge's ``bridges:`` entry has the NIC's MAC, ``dhcp4``/``dhcp6`` and what the NIC's entry
said about its client (``dhcp-identifier``, ``dhcp4-overrides``, ``dhcp6-overrides``,
``accept-ra``); the NIC's entry loses them. netplan 0.106 cannot name an IAID or a DUID
(doc/netplan-yaml.md: ``dhcp-identifier`` is ``mac`` or networkd's default ``duid``, whose IAID
networkd derives from the interface, so the bridge's would differ from its NIC's): the identity
the NIC's lease records is pinned by a networkd drop-in beside the file netplan generates for the
bridge (``/etc/systemd/network/10-netplan-BR.network.d/``), which networkd reads after it and
``netplan generate`` never touches (the same [DHCPv4]/[DHCPv6] lines as
fleetbr.backends.networkd.dhcp writes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ruamel.yaml.comments import CommentedMap, CommentedSeq

import fleetbr.backends.netplan.backend as np
from fleetbr.backends import ini
from fleetbr.backends.dhcp_identity import ClientIdentity
from fleetbr.backends.model import BackendRefusal, FileChange, Holder
from fleetbr.backends.networkd import dhcp as nd_dhcp
from fleetbr.backends.networkd.backend import HEADER
from fleetbr.facts.model import HostFacts

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import TopoBridge

# what a NIC's entry says about its DHCP client: moved to the bridge with the leases
CLIENT_KEYS = ("dhcp-identifier", "dhcp4-overrides", "dhcp6-overrides", "accept-ra")
DROPIN_DIR = "/etc/systemd/network/10-netplan-{bridge}.network.d"
DROPIN = "50-fleetbr-dhcp-identity.conf"
_LEARNT = ("dhcp", "ra")  # routes networkd makes from the lease and router advertisements


def dropin_path(bridge: str) -> str:
    """The drop-in that pins ``bridge``'s client identity."""
    return f"{DROPIN_DIR.format(bridge=bridge)}/{DROPIN}"


def client_keys(entry: CommentedMap) -> CommentedMap:
    """The NIC entry's client settings (taken out of it: the NIC becomes a plain port)."""
    return CommentedMap((k, entry.pop(k)) for k in CLIENT_KEYS if k in entry)


def identity(bridge: TopoBridge, source: str, facts: HostFacts, path: str) -> ClientIdentity:
    """The client identity of the NIC's lease (or the bridge's, on a plan again)."""
    return nd_dhcp.identity(facts, tuple(d for d in (source, bridge.name) if d), path, "netplan")


def bridge_entry(
    bridge: TopoBridge,
    holder: Holder,
    port: str | None,
    mac: str | None,
    carried: CommentedMap,
    *,
    ident: ClientIdentity,
) -> CommentedMap:
    """The ``bridges:`` entry of a DHCP bridge (``carried``: the NIC's name servers, policy
    rules and client settings; ``dhcp-identifier: mac`` when that is the lease's identity)."""
    if ident.kind == "mac":
        carried["dhcp-identifier"] = "mac"
    elif carried.get("dhcp-identifier") == "mac":
        raise BackendRefusal(
            f"persist: netplan: dhcp-identifier: mac of {holder.source or bridge.name} does not "
            "match its lease, given to an IAID+DUID client id"
        )
    ipv4, ipv6 = (True, True) if bridge.dhcp is None else (bridge.dhcp.ipv4, bridge.dhcp.ipv6)
    entry = CommentedMap([("interfaces", CommentedSeq([port] if port else []))])
    if mac:
        entry["macaddress"] = mac
    entry["dhcp4"] = ipv4
    entry["dhcp6"] = ipv6
    kept = [r for r in holder.routes if r.protocol not in _LEARNT]
    if kept:
        entry["routes"] = CommentedSeq([np.route_entry(r) for r in kept])
    for key in (*np.CARRIED, *CLIENT_KEYS):  # one order, so a plan again writes the same
        if key in carried:
            entry[key] = carried[key]
    if "accept-ra" not in carried:
        entry["accept-ra"] = ipv6  # networkd starts DHCPv6 on an advertisement's M flag
    entry["parameters"] = CommentedMap(
        [("stp", bridge.stp), ("forward-delay", bridge.forward_delay)]
    )
    return entry


def identity_dropin(bridge: TopoBridge, source: str, ident: ClientIdentity) -> FileChange:
    """The networkd drop-in that makes the bridge's client present ``ident``."""
    v4, v6 = nd_dhcp.identity_lines(ident)
    what = f"the DHCP client identity of {source} on {bridge.name}"
    parts: list[tuple[str, list[str]]] = [("", [HEADER.format(what=what)]), ("DHCPv4", v4)]
    if v6:
        parts.append(("DHCPv6", v6))
    return FileChange(dropin_path(bridge.name), ini.render(parts))
