"""The ``persist:`` part of a topology plan: the tier's backend describes the topology as the
runtime steps build it (:class:`~fleetbr.backends.model.TopologyConfig`), and its files and
apply wrap the runtime steps exactly as for one bridge (fleetbr.plan.persist): the rollback
restores the files and makes the daemon forget them before the runtime inverses delete the
devices the plan created (a daemon that only creates devices never deletes them itself)."""

from __future__ import annotations

from fleetbr.backends import registry
from fleetbr.backends.base import Backend
from fleetbr.backends.model import BackendRefusal, Holder, TopologyConfig
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.changes.bridge.topology import Topology
from fleetbr.facts.model import HostFacts
from fleetbr.plan.model import ExpectedState
from fleetbr.plan.persist import PersistSteps, backend_steps
from fleetbr.plan.topology.capability import host_bonds, tier
from fleetbr.plan.topology.macs import bond_macs


def topology_config(
    topology: Topology, expected: ExpectedState, sources: dict[str, str], facts: HostFacts
) -> TopologyConfig:
    """The topology as the runtime plan with ``expected`` leaves it (``sources``: each
    holder's address source)."""
    holders = tuple(
        Holder(
            e.address_dev,
            e.addresses,
            tuple(r for r in e.routes if r.dev in (e.address_dev, "") and not r.kernel_made),
            sources.get(e.address_dev, ""),
        )
        for e in (expected, *expected.more)
    )
    macs = {e.bridge: e.mac for e in (expected, *expected.more) if e.address_dev == e.bridge}
    macs |= bond_macs(topology, facts)
    table = () if expected.topology is None else expected.topology.table
    return TopologyConfig(
        topology=topology,
        macs=macs,
        holders=holders,
        table=tuple(table),
        host_bonds=host_bonds(facts),
    )


def topology_persist(
    task: BridgeTask,
    topology: Topology,
    facts: HostFacts,
    expected: ExpectedState,
    *,
    sources: dict[str, str],
    backup_dir: str | None,
) -> PersistSteps:
    """The steps that persist the topology (none for the runtime tier); BackendRefusal if the
    backend cannot do it safely."""
    name = tier(task, topology, facts)
    if name == "none":
        return PersistSteps("none")
    config = topology_config(topology, expected, sources, facts)
    backend = registry.get(name)
    for holder in config.holders:
        old = facts.topology.vlan(holder.source) if holder.source else None
        port = {b.port for b in topology.bridges}
        if old is not None and holder.source not in port and not backend.rewrites_vlan_sources:
            raise BackendRefusal(
                f"persist: {name}: the task deletes VLAN device {holder.source}, whose files "
                "fleetbr does not rewrite yet (use persist: none for a runtime-only change)"
            )
    # the host-wide conditions (systemd, installed, daemon running) even when the task takes no
    # existing device (host-only bridges), which the capability check asks per device
    for bridge in topology.bridges:
        Backend.refusals(backend, facts, bridge.name, bridge.name)
    return backend_steps(backend.plan_topology(config, facts), facts, backup_dir)
