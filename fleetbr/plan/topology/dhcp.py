"""``addresses: dhcp``: which DHCP leases a bridge keeps from its uplink, checked before any
change. The runtime steps move the leased addresses to the bridge as for ``move`` (the host stays
reachable); the tier's daemon then runs the uplink's DHCP client on the bridge with the same
identity (fleetbr.backends.networkd.dhcp), and the confirm checks that the bridge holds the very
same leases (``TopologyExpect.leases``, fleetbr.plan.topology.check)."""

from __future__ import annotations

import ipaddress

from fleetbr.changes.bridge.topology import DhcpSpec, TopoBridge
from fleetbr.facts.model import HostFacts


def canon(cidr: str) -> str:
    """``cidr`` as the confirm compares it (host bits kept)."""
    return ipaddress.ip_interface(cidr).with_prefixlen


def kept_leases(
    bridge: TopoBridge, source: str, holder: str, facts: HostFacts
) -> tuple[list[str], str | None]:
    """The leases (canonical CIDRs) ``holder`` keeps: the source NIC's, or its own on a plan
    again; else why the task cannot keep them (no lease, a lease of a family the task turns off,
    a static address beside them)."""
    devs = [d for d in (source, holder) if d]
    leases = [lease for d in devs for lease in facts.topology.leases_of(d)]
    where = " or ".join(devs)
    if not leases:
        return [], f"addresses: dhcp: {where} holds no DHCP lease to keep"
    spec = bridge.dhcp or DhcpSpec()
    for lease in leases:
        if not (spec.ipv4 if lease.family == 4 else spec.ipv6):
            return [], (
                f"addresses: dhcp: {lease.cidr} on {lease.dev} is a DHCPv{lease.family} lease "
                f"but the task turns DHCP for IPv{lease.family} off (dhcp: ipv{lease.family})"
            )
    kept = sorted({canon(lease.cidr) for lease in leases})
    static = [
        a.cidr
        for d in devs
        for a in facts.addresses_of(d)
        if not a.dynamic and canon(a.cidr) not in kept
    ]
    if static:
        return [], (
            f"addresses: dhcp: {where} also has static addresses ({', '.join(static)}); the "
            "bridge would keep only the DHCP leases: list the addresses instead"
        )
    return kept, None
