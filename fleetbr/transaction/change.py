"""What a transaction changes: the bridge task, or (``fleetbr run --deadman``) an operator's
command with its undo. The protocol (stage, arm, resolve, confirm, verify) is the same for both;
a :class:`Change` says how to plan, what extra files to stage, how to check the change once
applied and how to judge the rollback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan, plan_host, verify_applied
from fleetbr.plan.scope import touched_by
from fleetbr.tasks import BridgeTask
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome, compare
from fleetbr.transport import Session


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
        """Everything the plan touched must be back at the snapshot, as its daemons saw it;
        other differences (a guest's tap device that came meanwhile) are only reported
        (:func:`fleetbr.transaction.verdict.compare`, as ``fleetbr rollback`` judges it)."""
        return compare(before, after, touched_by(plan))
