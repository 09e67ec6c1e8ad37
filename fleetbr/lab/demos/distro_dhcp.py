"""The DHCP host of ``fleetbr demo --distro``: a systemd-networkd host whose NIC takes its IPv4 and
IPv6 addresses as fixed leases from the lab switch's dnsmasq (fleetbr.lab.dhcp). Its task is the
demo's task with ``addresses: dhcp`` (:func:`with_dhcp`): br0 runs the NIC's DHCP client with the
NIC's client identity. The demo shows its leases before and after confirm, as the host holds them
(:func:`lease_view`, from the facts) and as the server recorded them
(:func:`fleetbr.lab.dhcp.server_leases`); tests/integration/distro/test_demo_distro.py judges that
br0 holds the same addresses under the same client id, IAID and DUID.

A fifth host of the one demo rather than a demo of its own (``--topology dhcp``): it shares the
demo's lab boot and its one apply (about 2 s more, README), and the demo's networkd host stays
the static one every other backend is compared with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.changes.bridge.topology import Topology
from fleetbr.changes.bridge.topology_parse import check_topology, topo_bridge
from fleetbr.errors import TaskError, ValidationError
from fleetbr.facts.model import HostFacts
from fleetbr.lab import dhcp

# networkd's own DHCP client (netplan renders the same one); the demo's networkd host stays static
DHCP_BACKEND = "networkd"


@dataclass(frozen=True)
class LeaseView:
    """One DHCP lease as the host's facts show it (no lifetime: it only counts down)."""

    dev: str
    family: int
    cidr: str
    client: str  # the DHCP client that holds it: networkd
    # the client id of the client's lease record, if read (networkd keeps one per link, RFC 4361's
    # ff + IAID + DUID: the DHCPv6 identity too, so the facts give it to both families' leases)
    client_id: str | None


Held = tuple[LeaseView, ...] | None
Recorded = tuple[dhcp.ServerLease, ...] | None


def hosts_with_dhcp(backends: tuple[str, ...]) -> tuple[str, ...]:
    """The demo's hosts' backends: ``backends`` plus one :data:`DHCP_BACKEND` DHCP host, last."""
    return (*backends, DHCP_BACKEND)


def dhcp_flags(backends: tuple[str, ...]) -> list[bool]:
    """Per-host DHCP flags for the lab of :func:`hosts_with_dhcp`: only the last host."""
    return [False] * (len(backends) - 1) + [True]


def with_dhcp(task: BridgeTask) -> BridgeTask:
    """``task`` with ``addresses: dhcp`` on its bridge (both families): the bridge takes over the
    NIC's DHCP client and identity instead of moving its addresses. A TaskError for a task that
    has no one bridge to give it (topology keys, ``state: absent``) or sets a gateway."""
    spec = task.bridge
    if task.topology is not None or spec.state != "present":
        raise TaskError(
            f"{task.source}: demo --distro: the DHCP host needs a task of one present bridge "
            "without topology keys (bond, vlan, bridges...), to set addresses: dhcp on it"
        )
    # the bridge's keys as task.py validated them; addresses: dhcp parses no address list
    base = {"name": spec.name, "nic": spec.nic, "gateway4": spec.gateway4,
            "gateway6": spec.gateway6, "mac": spec.mac, "stp": spec.stp,
            "forward_delay": spec.forward_delay, "addresses_parser": None}  # fmt: skip
    try:
        bridge = topo_bridge({"addresses": "dhcp"}, "bridge", base)
        topology: Topology = check_topology((bridge,), "bridge")
    except ValidationError as exc:
        raise TaskError(f"{task.source}: demo --distro: the DHCP host's task: {exc}") from None
    return dataclasses.replace(
        task, bridge=dataclasses.replace(spec, addresses=None), topology=topology
    )


def lease_view(facts: HostFacts, dev: str) -> tuple[LeaseView, ...]:
    """The DHCP leases on ``dev``, by family."""
    leases = sorted(facts.topology.leases_of(dev), key=lambda lease: (lease.family, lease.cidr))
    return tuple(
        LeaseView(dev=lease.dev, family=lease.family, cidr=lease.cidr, client=lease.client,
                  client_id=lease.client_id)
        for lease in leases
    )  # fmt: skip


def lease_lines(host: tuple[LeaseView, ...], server: tuple[dhcp.ServerLease, ...]) -> list[str]:
    """One line per lease the host holds, one per lease the server recorded."""
    out = [f"{lease.cidr} on {lease.dev} from {lease.client}"
           + (f", client id {lease.client_id}" if lease.client_id else "")
           for lease in host]  # fmt: skip
    out += [
        f"server: {lease.address} for {'MAC' if lease.family == 4 else 'IAID'} {lease.key}, "
        f"{'client id' if lease.family == 4 else 'DUID'} {lease.client}, handed out "
        f"{lease.acks} time{'' if lease.acks == 1 else 's'}"
        for lease in server
    ]
    return out or ["no lease"]


def identity(held: Held, recorded: Recorded) -> tuple[object, ...]:
    """What the bridge keeps of the NIC's leases: each held lease's family, address and client
    id, each recorded lease's address, key (MAC, IAID) and client (client id, DUID)."""
    return (
        tuple((lease.family, lease.cidr, lease.client_id) for lease in held or ()),
        tuple((lease.family, lease.address, lease.key, lease.client) for lease in recorded or ()),
    )


def compared(held: tuple[Held, Held], recorded: tuple[Recorded, Recorded]) -> str:
    """Before and after (each pair), in words: the same leases and client identity or not, and
    whether the server handed each address out again (a renewal by the bridge's client)."""
    same = bool(held[0]) and identity(held[0], recorded[0]) == identity(held[1], recorded[1])
    before, after = ([lease.acks for lease in side or ()] for side in recorded)
    anew = len(before) == len(after) > 0 and all(
        new > old for old, new in zip(before, after, strict=True)
    )
    return (
        f"{'the same' if same else 'NOT the same'} addresses and client identity as before; "
        f"{'handed out again' if anew else 'NOT handed out again'} by the server"
    )
