"""What a transaction changes: the bridge task, or (``fleetbr run --deadman``) an operator's
command with its undo. The protocol (stage, arm, resolve, confirm, verify) is the same for both;
a :class:`Change` says how to plan, what extra files to stage, how to check the change once
applied and how to judge the rollback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetbr.backends import registry
from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan, plan_host, restore_check, verify_applied
from fleetbr.plan.scope import touched_by
from fleetbr.tasks import BridgeTask
from fleetbr.transport import Session


@dataclass(frozen=True)
class RollbackCheck:
    """How a rolled-back host compares with its snapshot: ``problems`` fail it, ``notes`` don't."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScriptOutcome:
    """What a change's own scripts left on the host (``run --deadman``: the command's and the
    undo's exit status and stderr): ``data`` for the result, ``summary`` for its message."""

    data: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


class Change(Protocol):
    """One kind of change under the dead-man timer."""

    @property
    def label(self) -> str:
        """Short name for the journal and reports (the task file's name, ``run``)."""

    @property
    def timeout(self) -> int:
        """Dead-man timeout in seconds."""

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        """Steps and inverses for this host (or a refusal)."""

    def staged_files(self) -> dict[str, str]:
        """Extra files to stage beside apply.sh (name -> text), checksummed with the scripts."""

    async def confirm_problems(self, conn: Session, txid: str, plan: Plan,
                               after: HostFacts) -> list[str]:  # fmt: skip
        """Why the applied change must not be confirmed ([] = confirm)."""

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """How the host compares with its snapshot after the rollback."""

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """What the change's own scripts left, for the report of a rolled-back host."""


@dataclass(frozen=True)
class BridgeChange:
    """The bridge task: planned from facts, verified field by field both ways."""

    task: BridgeTask
    label: str

    @property
    def timeout(self) -> int:
        """The task's dead-man timeout."""
        return self.task.deadman_timeout

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        """The pure planner's plan for this host."""
        return plan_host(self.task, facts, min_timeout=min_timeout)

    def staged_files(self) -> dict[str, str]:
        """Nothing beyond the step scripts."""
        return {}

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        """Differences between the host and the plan's expected state."""
        return verify_applied(plan, after)

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """Nothing: the bridge's steps are fleetbr's own (apply.log names a failed one)."""
        return ScriptOutcome()

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Everything the plan touched must be back at the snapshot; other differences (a guest's
        tap device that came meanwhile) are only reported."""
        check = restore_check(before, after, touched_by(plan))
        return RollbackCheck(
            problems=list(check.problems) + daemon_problems(plan, before, after),
            notes=list(check.unrelated),
        )


def daemon_problems(plan: Plan, before: HostFacts, after: HostFacts) -> list[str]:
    """A persisted change: the daemon must see the NIC and the bridge as it did before."""
    out = []
    for name in dict.fromkeys([*plan.expected.managers, plan.expected.nic]):
        if not plan.expected.managers:
            break
        was, now = before.manager(name), after.manager(name)
        if (was.manager, was.state) != (now.manager, now.state):
            out.append(
                f"{name}: {was.manager or 'no daemon'} {was.state} before, "
                f"{now.manager or 'no daemon'} {now.state} after the rollback"
            )
    return out


def daemons_settling(facts: HostFacts, names: tuple[str, ...] | None = None) -> bool:
    """A network daemon is still configuring an interface (after a boot, a reload): one of
    ``names``, or any when None."""
    found = facts.daemons.interfaces
    managers = found.values() if names is None else [facts.manager(n) for n in names]
    # words of a daemon still bringing an interface up or down (Backend.settling): networkd's
    # setup states, NetworkManager's device states; its final word is yet to come
    settling = registry.settling_words()
    return any(
        word.startswith(settling)
        for manager in managers
        for word in (manager.state, *(view.state for view in manager.views))
    )


def guests_settling(plan: Plan, before: HostFacts, after: HostFacts) -> bool:
    """libvirt is still bringing back a guest ``plan`` moved that ran before (after a boot:
    libvirtd does not answer yet, the autostarted guest does not run yet, or its tap is not
    there yet): its final state is yet to come."""
    moved = {want.uuid for want in plan.expected.guests}
    if not moved or before.guests is None:
        return False
    if after.guests is None or after.guests.error:
        return True
    for domain in before.guests.domains:
        if domain.uuid not in moved or not domain.active:
            continue
        now = after.guests.by_uuid(domain.uuid)
        if now is None or not now.active:
            return True
        if any(iface.tap and after.link(iface.tap) is None for iface in now.live):
            return True
    return False
