"""Persistence backends: the bridge written in the format of the daemon that manages the NIC
(ifupdown, systemd-networkd, netplan, NetworkManager) and applied with that daemon's own tool.

:func:`choose` picks the backend for a task's ``persist:`` (``auto``: whatever manages the NIC
now) or says why it refuses; :func:`plan_backend` renders that backend's files. Both are pure:
their input is the facts, their output data the planner turns into steps
(:mod:`fleetbr.plan.persist`).
"""

from __future__ import annotations

from fleetbr.backends import ifupdown, netplan, networkd, networkmanager
from fleetbr.backends.model import BackendPlan, BackendRefusal, BridgeConfig, FileChange
from fleetbr.facts.model import HostFacts

__all__ = [
    "BACKENDS",
    "BackendPlan",
    "BackendRefusal",
    "BridgeConfig",
    "FileChange",
    "choose",
    "plan_backend",
    "unplan_backend",
]

BACKENDS = ("ifupdown", "networkd", "netplan", "networkmanager")
# The facts' name of each backend's tool (section backends) and of its daemon (daemons.running).
_TOOL = {
    "ifupdown": "ifupdown",
    "networkd": "systemd-networkd",
    "netplan": "netplan",
    "networkmanager": "networkmanager",
}
_DAEMON = {"networkd": "networkd", "networkmanager": "networkmanager"}


def _installed(facts: HostFacts, backend: str) -> bool:
    return any(b.name == _TOOL[backend] and b.present for b in facts.backends)


def _renderer_daemon(facts: HostFacts, backend: str) -> str | None:
    if backend == "netplan":
        return "networkd" if "networkd" in facts.daemons.running else "networkmanager"
    return _DAEMON.get(backend)


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
    _check_backend(backend, facts, nic, bridge)
    return backend


def _check_backend(backend: str, facts: HostFacts, nic: str, bridge: str) -> None:
    if not facts.pid1_systemd:
        raise BackendRefusal(
            f"persist: {backend} needs systemd on the host: the boot guard that undoes an "
            "unconfirmed change at boot is a systemd unit"
        )
    if not _installed(facts, backend):
        raise BackendRefusal(f"persist: {backend} is not installed on the host")
    daemon = _renderer_daemon(facts, backend)
    if daemon is not None and daemon not in facts.daemons.running:
        raise BackendRefusal(f"persist: {backend} needs {daemon}, which is not running")
    for name in (nic, bridge):
        owner = facts.manager(name).manager
        if owner not in (None, backend):
            raise BackendRefusal(
                f"{name} is managed by {owner}; persist: {backend} would make two daemons "
                f"fight over it (use persist: auto or {owner})"
            )


def plan_backend(backend: str, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """The files and apply arguments of ``backend`` for ``config`` (BackendRefusal if unsafe)."""
    if backend == "networkd":
        return networkd.plan(config, facts)
    if backend == "netplan":
        return netplan.plan(config, facts)
    if backend == "networkmanager":
        return networkmanager.plan(config, facts)
    if backend == "ifupdown":
        return ifupdown.plan(config, facts)
    raise BackendRefusal(f"persist: {backend} is not a backend fleetbr knows")


def unplan_backend(backend: str, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
    """Unbridge: the files that give the NIC its addresses back in ``backend``'s format and
    remove the bridge (``config`` describes the NIC's addresses and routes to be)."""
    modules = {
        "networkd": networkd.unplan,
        "netplan": netplan.unplan,
        "networkmanager": networkmanager.unplan,
        "ifupdown": ifupdown.unplan,
    }
    if backend not in modules:
        raise BackendRefusal(f"persist: {backend} is not a backend fleetbr knows")
    return modules[backend](config, facts)
