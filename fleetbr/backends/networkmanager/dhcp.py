"""NetworkManager: a bridge that keeps its uplink's DHCP leases (``addresses: dhcp``).

The bridge's profile runs NetworkManager's internal client (``method=auto`` for each family the
task keeps) with the NIC's MAC (``cloned-mac-address``, the runtime steps' MAC) and the identity
the NIC's client presents (facts: ``Daemons.nm_dhcp``, from ``nmcli -f DHCP4,DHCP6 device
show``): ``ipv4.dhcp-client-id`` the NIC's client id as its bytes, ``ipv6.dhcp-duid`` its DUID and
``ipv6.dhcp-iaid`` its IAID (a number). NetworkManager 1.42 derives the IAID from the interface
name by default, so a bridge with NM's defaults gets the IPv4 lease (client id ``01``+MAC) but no
IPv6 one (measured on the distro tier: docs/topologies.md, "DHCP"). The route metrics the NIC's
learnt routes had are pinned too (NM's default for a bridge is 425, for an ethernet 100).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetbr.backends.model import BackendRefusal, Holder
from fleetbr.backends.networkmanager import backend as nm
from fleetbr.facts.model import HostFacts, NmDhcpIdentity

if TYPE_CHECKING:  # the task model is not imported on the facts and run paths
    from fleetbr.changes.bridge.topology import TopoBridge

_LEARNT = ("dhcp", "ra")  # routes NetworkManager makes from the lease and router advertisements


def _refuse(why: str) -> BackendRefusal:
    return BackendRefusal(f"persist: networkmanager: {why}")


def source_nic(bridge: TopoBridge, holder: Holder, created: set[str]) -> str:
    """The NIC whose identity a DHCP bridge takes (refused on a VLAN interface, over a VLAN or a
    bond the task creates: the identity pinned is a NIC's, read while it holds the leases)."""
    if bridge.nic is None or bridge.vlan is not None or bridge.nic in created:
        raise _refuse(
            f"addresses: dhcp on {bridge.name} is written over a NIC only (not over a VLAN or a "
            "bond the task creates)"
        )
    return holder.source or bridge.nic


def identity(facts: HostFacts, devs: tuple[str, ...], ipv4: bool, ipv6: bool) -> NmDhcpIdentity:
    """The identity NetworkManager's client presents on the first of ``devs`` (the NIC, or the
    bridge on a plan again) that holds the leases; refused when a lease is another client's or
    a part a kept lease needs was not read (client id: IPv4; DUID and IAID: IPv6)."""
    leases = [lease for d in devs for lease in facts.topology.leases_of(d)]
    other = next((lease for lease in leases if lease.client != "networkmanager"), None)
    if other is not None:
        raise _refuse(
            f"the DHCP lease {other.cidr} on {other.dev} is held by {other.client}, not "
            "NetworkManager; fleetbr would change the client"
        )
    dev = next((lease.dev for lease in leases), devs[0])
    found = facts.daemons.nm_dhcp.get(dev, NmDhcpIdentity())
    v4 = ipv4 and any(lease.family == 4 for lease in leases)
    v6 = ipv6 and any(lease.family == 6 for lease in leases)
    missing = [name for name, value, kept in (
        ("client id", found.client_id, v4), ("DUID", found.duid, v6),
        ("IAID", found.iaid, v6)) if kept and value is None]  # fmt: skip
    if missing:
        raise _refuse(
            f"the DHCP client identity of {dev} ({', '.join(missing)}) was not read "
            f"(nmcli -f DHCP4,DHCP6 device show {dev}); fleetbr keeps a lease only with the "
            "identity it was given to"
        )
    return found


def _metric(holder: Holder, family: int) -> int | None:
    """The metric of the routes the NIC's client learnt (NetworkManager gives them all the
    profile's ``route-metric``)."""
    return next(
        (
            r.metric
            for r in holder.routes
            if r.family == family and r.protocol in _LEARNT and r.metric is not None
        ),
        None,
    )


def ip_lines(bridge: TopoBridge, holder: Holder, facts: HostFacts, created: set[str]) -> list[str]:
    """[ipv4] and [ipv6] of a DHCP bridge's profile: NetworkManager's client with the NIC's
    identity, the NIC profile's name servers, the NIC's route metrics."""
    ipv4, ipv6 = (True, True) if bridge.dhcp is None else (bridge.dhcp.ipv4, bridge.dhcp.ipv6)
    source = source_nic(bridge, holder, created)
    devs = tuple(dict.fromkeys((source, bridge.name)))
    ident = identity(facts, devs, ipv4, ipv6)
    profile = bridge.name if facts.daemons.nm_active.get(bridge.name) else source
    if nm.profile_mtu(facts, profile) or nm.routing_rules(facts, profile):
        raise _refuse(
            f"{profile}'s profile has an MTU or routing rules, which a topology does not carry "
            "yet (use persist: none for a runtime-only change)"
        )
    dns = nm.name_servers(facts, profile)
    out = _family(4, ipv4, ident, _metric(holder, 4), dns)
    return [*out, "", *_family(6, ipv6, ident, _metric(holder, 6), dns)]


def _family(
    family: int, kept: bool, ident: NmDhcpIdentity, metric: int | None, dns: dict[str, str]
) -> list[str]:
    section = f"ipv{family}"
    if not kept:
        return [f"[{section}]", "method=disabled" if family == 4 else "method=ignore"]
    lines = [f"[{section}]", "method=auto"]
    if family == 4 and ident.client_id is not None:
        lines.append(f"dhcp-client-id={ident.client_id}")
    if family == 6 and ident.duid is not None and ident.iaid is not None:
        # nmcli shows the IAID as its bytes on the wire; the setting takes it as a number
        lines += [f"dhcp-duid={ident.duid}", f"dhcp-iaid={int(ident.iaid.replace(':', ''), 16)}"]
    lines += [f"{k}={dns[f'{section}.{k}']}" for k in ("dns", "dns-search")
              if dns.get(f"{section}.{k}")]  # fmt: skip
    lines += [f"route-metric={metric}"] * (metric is not None)
    if family == 6:
        lines.append("addr-gen-mode=eui64")
    return lines
