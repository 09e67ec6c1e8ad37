"""Persistence backends: the bridge written in the format of the daemon that manages the NIC
(ifupdown, ifupdown2, systemd-networkd, netplan, NetworkManager) and applied with that daemon's
own tool.

Each backend is one :class:`~fleetbr.backends.base.Backend` in its own folder (``NAME/backend.py``
and ``NAME/templates/shell.sh.j2``), found through :mod:`fleetbr.backends.registry`; the shared
helpers (``carry``, ``ini``, ``model``) stay here. :func:`choose` picks the backend for a task's
``persist:`` (``auto``: whatever manages the NIC now) or says why it refuses; :func:`plan_backend`
renders that backend's files. Both are pure: their input is the facts, their output data the
planner turns into steps (:mod:`fleetbr.plan.persist`).
"""

from __future__ import annotations

from fleetbr.backends import registry
from fleetbr.backends.base import Backend
from fleetbr.backends.model import BackendPlan, BackendRefusal, BridgeConfig, FileChange
from fleetbr.facts.model import HostFacts

__all__ = [
    "Backend",
    "BackendPlan",
    "BackendRefusal",
    "BridgeConfig",
    "FileChange",
    "choose",
    "plan_backend",
    "unplan_backend",
]


def choose(persist: str, daemon_conflict: str, facts: HostFacts, nic: str, bridge: str) -> str:
    """The backend that will persist the bridge (``none``: runtime only), or a BackendRefusal."""
    manager = facts.manager(nic)
    if len(manager.claimed_by) > 1:
        raise BackendRefusal(
            f"{nic} is configured by {' and '.join(manager.claimed_by)} at once; they fight "
            "over it: leave it to one of them first"
        )
    # a NIC that is already a port may be left to the daemon that manages its bridge (ifupdown)
    owner = manager.manager or facts.manager(bridge).manager
    backend = (owner or "none") if persist == "auto" else persist
    if backend == "none":
        if owner is not None and daemon_conflict != "accept":
            name = nic if manager.manager else bridge
            raise BackendRefusal(
                f"{name} is managed by {owner} ({facts.manager(name).state}), which can undo a "
                "runtime-only change at its next reload and will at boot: set persist: auto "
                f"(or {owner}), or daemon_conflict: accept to change it anyway"
            )
        return "none"
    _known(backend).refusals(facts, nic, bridge)
    return backend


def _known(name: str) -> Backend:
    backend = registry.find(name)
    if backend is None:
        raise BackendRefusal(f"persist: {name} is not a backend fleetbr knows")
    return backend


def plan_backend(backend: str, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """The files and apply arguments of ``backend`` for ``config`` (BackendRefusal if unsafe)."""
    return _known(backend).plan(config, facts)


def unplan_backend(backend: str, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the files that give the NIC its addresses back in ``backend``'s format and
    remove the bridge (``config`` describes the NIC's addresses and routes to be)."""
    return _known(backend).unplan(config, facts)
