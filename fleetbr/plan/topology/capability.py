"""Which tier expresses a topology: the runtime tier (``persist: none``, iproute2) or a backend,
each with a declared feature set (``Backend.topologies``). A task that needs a feature its tier
lacks is refused before any change, with the reason; no if-chains on backend names here."""

from __future__ import annotations

from fleetbr.backends import choose, registry
from fleetbr.backends.model import BackendRefusal
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.changes.bridge.topology import FEATURES, Feature, TopoBridge, Topology
from fleetbr.facts.model import HostFacts

# What the runtime tier's steps (fleetbr.plan.topology.runtime) build and undo. DHCP is not
# here: keeping a lease means running the client on the bridge with the NIC's identity, which
# only a daemon's files do (networkd: fleetbr.backends.networkd.dhcp; docs/topologies.md).
RUNTIME: frozenset[str] = frozenset(FEATURES) - {"dhcp"}
DESCRIBE: dict[Feature, str] = {
    "bond_port": "a bond as the port (nic: BOND)",
    "bond_create": "creating a bond (bond:)",
    "vlan_uplink": "a VLAN uplink (vlan:)",
    "multi_bridge": "several bridges (bridges:)",
    "vlan_filtering": "a VLAN-aware bridge (vlan_filtering)",
    "vlan_interface": "a VLAN interface of the bridge (vlan_interfaces)",
    "host_only": "a host-only bridge (host_only)",
    "dhcp": "DHCP addresses kept with their client identity (addresses: dhcp)",
}


def host_bonds(facts: HostFacts) -> frozenset[str]:
    """The host's bonds (facts: link kind bond)."""
    return frozenset(link.name for link in facts.links if link.kind == "bond")


def taken_devices(topology: Topology, facts: HostFacts) -> list[tuple[str, str]]:
    """(device, bridge) for each existing device the task takes over: a NIC or existing bond,
    a VLAN's parent, a new bond's slaves."""
    out: list[tuple[str, str]] = []
    for bridge in topology.bridges:
        if bridge.bond is not None:
            out += [(slave, bridge.name) for slave in bridge.bond.slaves]
        elif bridge.nic is not None and facts.link(bridge.nic) is not None:
            out.append((bridge.nic, bridge.name))
    return list(dict.fromkeys(out))


def idle_slave(topology: Topology, facts: HostFacts, dev: str) -> bool:
    """``dev`` becomes a slave of a new bond and nothing configures it now (no daemon, no
    address: an idle second NIC): no daemon to conflict with, no file of its own to rewrite (the
    backend writes it a new one)."""
    slaves = {s for b in topology.bonds() for s in b.slaves}
    return (
        dev in slaves
        and facts.manager(dev).manager is None
        and not any(a.dev == dev and a.scope == "global" for a in facts.addresses)
    )


def tier(task: BridgeTask, topology: Topology, facts: HostFacts) -> str:
    """The backend that would persist the topology (``none``: the runtime tier)."""
    if task.persist != "auto":
        return task.persist
    owners = set()
    for dev, bridge in taken_devices(topology, facts):
        owner = facts.manager(dev).manager or facts.manager(bridge).manager
        if owner is not None:
            owners.add(owner)
    if len(owners) > 1:
        raise BackendRefusal(
            f"the task's uplinks are managed by different daemons ({', '.join(sorted(owners))}); "
            "one transaction persists through one backend"
        )
    return owners.pop() if owners else "none"


def supported(name: str) -> frozenset[str]:
    """The features tier ``name`` declares."""
    if name == "none":
        return RUNTIME
    backend = registry.find(name)
    return backend.topologies if backend is not None else frozenset()


def missing_features(needed: frozenset[str], name: str) -> list[Feature]:
    """The features in ``needed`` that tier ``name`` does not declare, in FEATURES order."""
    return [f for f in FEATURES if f in needed and f not in supported(name)]


def capability_refusal(task: BridgeTask, topology: Topology, facts: HostFacts) -> str | None:
    """Why the task's tier cannot express its topology (None: it can), checked before any other
    host condition; then the backend's own refusals (daemon conflicts...) as for one bridge."""
    try:
        name = tier(task, topology, facts)
    except BackendRefusal as exc:
        return str(exc)
    needed = topology.features(host_bonds(facts))
    missing = missing_features(needed, name)
    if missing:
        where = "the runtime tier (persist: none)" if name == "none" else f"persist: {name}"
        what = "; ".join(DESCRIBE[f] for f in missing)
        runtime = name != "none" and all(f in RUNTIME for f in missing)
        hint = " yet (use persist: none for a runtime-only change)" if runtime else " yet"
        return f"{where} cannot express {what}{hint}: docs/topologies.md"
    try:
        for dev, bridge in taken_devices(topology, facts):
            if not idle_slave(topology, facts, dev):
                choose(task.persist, task.daemon_conflict, facts, dev, bridge)
    except BackendRefusal as exc:
        return str(exc)
    return None


def bond_port_refusal(task: BridgeTask, facts: HostFacts) -> str | None:
    """A one-NIC task whose NIC is a bond: the runtime tier bridges it as any NIC; a backend
    must declare ``bond_port`` (its writers must know the bond stays the bond's)."""
    spec = task.bridge
    if spec.state != "present" or spec.nic not in host_bonds(facts):
        return None
    single = Topology((TopoBridge(name=spec.name, nic=spec.nic),))
    return capability_refusal(task, single, facts)


def dhcp_nic_refusal(task: BridgeTask, facts: HostFacts) -> str | None:
    """A one-NIC task whose NIC holds a DHCP lease: moving the leased address to the bridge as
    a static one would outlive the lease (the client keeps renewing it on the NIC), and the
    rollback could not give the client its lease back; so it is refused before any change:
    ``addresses: dhcp`` keeps the lease (docs/topologies.md)."""
    spec = task.bridge
    if spec.state != "present":
        return None
    leases = [lease for lease in facts.topology.dhcp if lease.dev == spec.nic]
    if not leases:
        return None
    lease = leases[0]
    keeping = " or ".join(b.name for b in registry.backends() if "dhcp" in b.topologies)
    return (
        f"{spec.nic}'s address {lease.cidr} is a DHCP lease ({lease.client}): moving it to "
        f"{spec.name} as a static address would outlive the lease; use addresses: dhcp to "
        f"keep it (persist: {keeping}; docs/topologies.md)"
    )
