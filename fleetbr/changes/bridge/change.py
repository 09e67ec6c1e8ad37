"""The bridge task under the dead-man transaction: a :class:`~fleetbr.transaction.change.Change`
planned from facts by the pure planner, verified field by field both ways."""

from __future__ import annotations

from dataclasses import dataclass

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import BridgePlan, Plan, plan_host, restore_check, verify_applied
from fleetbr.plan.scope import touched_by
from fleetbr.report import HostResult
from fleetbr.transaction.change import RollbackCheck, ScriptOutcome, daemons_settling
from fleetbr.transaction.protocol import Hook, run_transaction
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

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        """Differences between the host and the plan's expected state."""
        return verify_applied(bridge_plan(plan), after)

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """Nothing: the bridge's steps are fleetbr's own (apply.log names a failed one)."""
        return ScriptOutcome()

    def settling(self, plan: Plan, before: HostFacts, after: HostFacts) -> bool:
        """A daemon still configuring the NIC or the bridge, or libvirt still bringing back a
        guest the plan moved."""
        names = bridge_plan(plan).interfaces
        return daemons_settling(after, names) or guests_settling(plan, before, after)

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Everything the plan touched must be back at the snapshot; other differences (a guest's
        tap device that came meanwhile) are only reported."""
        bridged = bridge_plan(plan)
        check = restore_check(before, after, touched_by(bridged))
        return RollbackCheck(
            problems=list(check.problems) + daemon_problems(bridged, before, after),
            notes=list(check.unrelated),
        )


def daemon_problems(plan: BridgePlan, before: HostFacts, after: HostFacts) -> list[str]:
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


def guests_settling(plan: Plan, before: HostFacts, after: HostFacts) -> bool:
    """libvirt is still bringing back a guest ``plan`` moved that ran before (after a boot:
    libvirtd does not answer yet, the autostarted guest does not run yet, or its tap is not
    there yet): its final state is yet to come."""
    moved = {want.uuid for want in bridge_plan(plan).expected.guests}
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
