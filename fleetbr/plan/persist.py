"""The ``persist:`` part of a plan: the backend's files and its own apply, as steps with
inverses around the runtime steps (see :func:`backend_marks` for the rollback's order)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetbr.backends import (
    BackendPlan,
    BackendRefusal,
    BridgeConfig,
    FileChange,
    choose,
    plan_backend,
    registry,
    unplan_backend,
)
from fleetbr.backends.carry import Carried
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.filemeta import FileMeta
from fleetbr.facts.model import CONTENT_MAX_BYTES, HostFacts
from fleetbr.plan import steps
from fleetbr.plan.model import ExpectedState, Step
from fleetbr.plan.netfilter import sha256


@dataclass(frozen=True)
class PersistSteps:
    """Steps before the runtime ones (``head``), after them (``tail``), and what the host must
    then show: file digests (None: absent) and the interfaces' managing backend."""

    backend: str
    head: list[Step] = field(default_factory=list)
    tail: list[Step] = field(default_factory=list)
    hold: list[Step] = field(default_factory=list)  # between the moves and the enslaves
    files: dict[str, str | None] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)
    backups: tuple[str, ...] = ()
    carried: Carried = field(default_factory=Carried)
    meta: dict[str, FileMeta] = field(default_factory=dict)  # of the files written


def bridge_config(task: BridgeTask, expected: ExpectedState) -> BridgeConfig:
    """The bridge as the runtime steps build it, for the backend to describe."""
    bridge = task.bridge.name
    routes = tuple(r for r in expected.routes if r.dev in (bridge, "") and not r.kernel_made)
    return BridgeConfig(
        name=bridge,
        nic=task.bridge.nic,
        mac=expected.mac,
        stp=task.bridge.stp,
        forward_delay=task.bridge.forward_delay,
        addresses=expected.addresses,
        routes=routes,
    )


def choose_backend(task: BridgeTask, facts: HostFacts) -> str:
    """The backend for this host (``none``: runtime only); BackendRefusal says why not."""
    spec = task.bridge
    return choose(task.persist, task.daemon_conflict, facts, spec.nic, spec.name)


def persist_steps(
    task: BridgeTask, facts: HostFacts, expected: ExpectedState, backup_dir: str | None
) -> PersistSteps:
    """The steps that persist the bridge (none for ``persist: none``); BackendRefusal if
    the backend cannot do it safely."""
    backend = choose_backend(task, facts)
    if backend == "none":
        return PersistSteps("none")
    plan = plan_backend(backend, bridge_config(task, expected), facts)
    return backend_steps(plan, facts, backup_dir)


def unbridge_steps(
    task: BridgeTask, facts: HostFacts, expected: ExpectedState, backup_dir: str | None
) -> PersistSteps:
    """Unbridge: the backend gives the NIC its addresses back and forgets the bridge."""
    backend = choose_backend(task, facts)
    if backend == "none":
        return PersistSteps("none")
    nic = task.bridge.nic
    config = BridgeConfig(
        name=task.bridge.name,
        nic=nic,
        mac=None,
        stp=task.bridge.stp,
        forward_delay=task.bridge.forward_delay,
        addresses=expected.addresses,
        routes=tuple(r for r in expected.routes if r.dev in (nic, "") and not r.kernel_made),
    )
    return backend_steps(unplan_backend(backend, config, facts), facts, backup_dir)


def backend_steps(plan: BackendPlan, facts: HostFacts, backup_dir: str | None) -> PersistSteps:
    """The steps of a backend's plan: its files written (backed up), its tool's apply, and the
    marks whose inverses make the daemon forget and re-take the interfaces in a rollback."""
    files: dict[str, str | None] = {}
    meta: dict[str, FileMeta] = {}
    writes: list[Step] = []
    for change in plan.files:
        if change.path in facts.daemons.oversized:
            raise BackendRefusal(
                f"persist: {plan.backend}: {change.path} is larger than "
                f"{CONTENT_MAX_BYTES // 1024} KiB: fleetbr rewrites a file only from a whole copy"
            )
        have = facts.daemons.file_digest(change.path)
        exists = change.path in facts.daemons.files
        if change.content is None:
            files[change.path] = None
            if exists:
                writes.append(steps.file_remove(change.path, backup_dir))
            continue
        files[change.path] = sha256(change.content)
        if have != files[change.path]:
            if (want := _written_meta(change, facts, exists)) is not None:
                meta[change.path] = want
            writes.append(
                steps.file_write(
                    change.path,
                    change.content,
                    existed=exists,
                    backup_dir=backup_dir,
                    mode=change.mode,
                    force_mode=change.private,
                )
            )
    managers = {name: plan.backend for name in plan.managers}
    backend = registry.get(plan.backend)
    settled = all(
        backend.detect(facts, name) and backend.is_settled(facts.manager(name).state)
        for name in plan.managers
    )
    carried = plan.carried or Carried()
    if not writes and settled:
        return PersistSteps(plan.backend, files=files, managers=managers, carried=carried)
    guards = [steps.file_guard(path, backup_dir) for path in plan.guarded]
    reapply, release = steps.backend_marks(plan.args)
    return PersistSteps(
        plan.backend,
        head=[reapply],
        tail=[release, *guards, *writes, steps.backend_apply(plan.args)],
        hold=[steps.backend_hold(plan.args)] if plan.args.get("hold_links") else [],
        files=files,
        managers=managers,
        backups=tuple(plan.guarded),
        carried=carried,
        meta=meta,
    )


def _written_meta(change: FileChange, facts: HostFacts, exists: bool) -> FileMeta | None:
    """What the path is once written: a file that exists keeps its owner, group, mode and
    symlink (a private mode replaces its mode); a new file has ``change.mode``, any owner.
    None: not known (the facts do not report it)."""
    mode = int(change.mode, 8)
    if not exists:
        return FileMeta(mode)
    old = None if facts.file_meta is None else facts.file_meta.get(change.path)
    if old is None or old.mode is None:
        return None
    return old.with_mode(mode) if change.private else old


__all__ = [
    "BackendRefusal",
    "PersistSteps",
    "backend_steps",
    "bridge_config",
    "persist_steps",
    "unbridge_steps",
]
