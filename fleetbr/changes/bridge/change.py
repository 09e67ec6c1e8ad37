"""The bridge task under the dead-man transaction: a :class:`~fleetbr.transaction.change.Change`
planned from facts by the pure planner, verified field by field both ways."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.diffview.build import host_diff
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import BridgePlan, Plan, plan_host, verify_applied
from fleetbr.plan.scope import touched_by
from fleetbr.report import AggregatedResult, HostResult
from fleetbr.rollout import rollout_changes
from fleetbr.transaction.protocol import Hook, run_transaction
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome, compare
from fleetbr.transport import Session, Transport


@dataclass(frozen=True)
class BridgeChange:
    """The bridge task: planned from facts, verified field by field both ways."""

    task: BridgeTask
    label: str

    @property
    def timeout(self) -> int:
        """The task's dead-man timeout."""
        return self.task.deadman_timeout

    def plan(self, facts: HostFacts, min_timeout: int) -> BridgePlan:
        """The pure planner's plan for this host."""
        return plan_host(self.task, facts, min_timeout=min_timeout)

    def staged_files(self) -> dict[str, str]:
        """Nothing beyond the step scripts."""
        return {}

    def view(self, host: str, facts: HostFacts, plan: Plan) -> dict[str, Any] | None:
        """The before/after view (:func:`fleetbr.diffview.build.host_diff`) of the plan the
        transaction made, the one it applies."""
        return host_diff(host, facts, bridge_plan(plan), "apply").to_json()

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        """Differences between the host and the plan's expected state."""
        return verify_applied(bridge_plan(plan), after)

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """Nothing: the bridge's steps are fleetbr's own (apply.log names a failed one)."""
        return ScriptOutcome()

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Everything the plan touched must be back at the snapshot, as its daemons saw it;
        other differences (a guest's tap device that came meanwhile) are only reported
        (:func:`fleetbr.transaction.verdict.compare`, as ``fleetbr rollback`` judges it)."""
        return compare(before, after, touched_by(bridge_plan(plan)))


def bridge_plan(plan: Plan) -> BridgePlan:
    """``plan`` as the bridge task's plan (TypeError: the transaction mixed up its change)."""
    if not isinstance(plan, BridgePlan):
        raise TypeError(f"bridge: not a bridge plan: {plan!r:.80}")
    return plan


async def apply_host(
    spec: HostSpec,
    task: BridgeTask,
    task_label: str,
    *,
    on_armed: Hook | None = None,
    transport: Transport | None = None,
) -> HostResult:
    """Run the whole transaction on one host; always ends confirmed, rolled back or explained."""
    change = BridgeChange(task, task_label)
    return await run_transaction(spec, change, on_armed=on_armed, transport=transport)


async def rollout(
    hosts: Sequence[HostSpec],
    tasks: dict[str, BridgeTask],
    label: str,
    **options: Any,
) -> AggregatedResult:
    """Apply the bridge task (rendered per host) as :func:`fleetbr.rollout.rollout_changes`
    does: the rollout of bridge changes without the engine's request (tests, benchmarks)."""
    changes = {name: BridgeChange(task, label) for name, task in tasks.items()}
    return await rollout_changes(hosts, changes, **options)
