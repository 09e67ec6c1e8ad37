"""``fleetbr plan`` for the bridge task: the pure planner's plan for one host, read-only."""

from __future__ import annotations

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import plan_host
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import min_timeout
from fleetbr.transport import Transport, open_session


async def plan_job(
    spec: HostSpec, task: BridgeTask, *, transport: Transport | None = None
) -> HostResult:
    """Gather facts and plan; change nothing."""
    async with open_session(spec, transport=transport) as conn:
        facts = await gather(conn)
    return plan_result(spec, task, facts)


def plan_result(spec: HostSpec, task: BridgeTask, facts: HostFacts) -> HostResult:
    """The ``plan`` result for one host's facts (shared with the Nornir plan task)."""
    plan = plan_host(task, facts, min_timeout=min_timeout(spec.ssh))
    steps = [step.description for step in plan.steps]
    data = {"steps": steps, "rollback": [step.description for step in plan.rollback]}
    if plan.refusal:
        return HostResult(spec.name, Status.REFUSED, plan.refusal, data=data)
    if plan.unchanged:
        return HostResult(spec.name, Status.UNCHANGED, "already matches the task", data=data)
    return HostResult(spec.name, Status.PLANNED, "\n".join(steps), data=data, lines=tuple(steps))
