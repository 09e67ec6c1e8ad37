"""``fleetbr check``: is every host still what the task made it? Read-only (docs/drift.md).

One facts round trip per host, then the pure planner: the host is ``in_sync`` exactly when
``plan`` would call it ``unchanged`` (both come from the same plan), ``drifted`` with the plan's
differences (field, want, have) otherwise, ``refused`` when the task cannot be checked there (the
NIC is missing, fleetbr's state cannot be read...). An armed transaction, live or stale, is itself
a difference: the host is mid-change or was left unconfirmed. Nothing is written to the host.

``drift`` and ``check_facts`` are pure; ``check_job`` is the async job for one host (the bridge
change kind's ``check``, which the CLI, the API and the watch loop run; the Nornir task checks
the facts it gathers over its own connection).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.model import Difference
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import min_timeout
from fleetbr.transport import open_session


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """What ``check`` says about one host, before it becomes a :class:`HostResult`."""

    status: Status
    message: str
    differences: tuple[Difference, ...] = ()
    repair: tuple[str, ...] = ()  # the steps `fleetbr apply` would take

    def data(self) -> dict[str, Any]:
        """The JSON part: every difference as (field, want, have, text), and the repair steps."""
        return {
            "differences": [d.to_dict() for d in self.differences],
            "repair": list(self.repair),
        }


def transaction_difference(facts: HostFacts) -> Difference | None:
    """An armed transaction (live, stale or damaged) as a difference; None when none is."""
    armed = facts.armed
    if armed is None:
        return None
    if armed.problem:
        have = f"{armed.problem} marker"
    else:
        have = f"{'stale' if armed.stale else 'live'} {armed.txid}"
    return Difference("transaction", None, have, armed.describe())


def check_plan(task: BridgeTask, facts: HostFacts, min_timeout: int) -> BridgePlan:
    """The plan for the host as if nothing were armed: the rest of the drift still shows."""
    return plan_host(task, dataclasses.replace(facts, armed=None), min_timeout=min_timeout)


def check_facts(task: BridgeTask, facts: HostFacts, *, min_timeout: int = 0) -> CheckOutcome:
    """``check`` for one host's facts: in sync, drifted (and how), or refused."""
    armed = facts.armed
    if armed is not None and armed.problem == "unreadable":
        return CheckOutcome(Status.REFUSED, armed.describe())
    plan = check_plan(task, facts, min_timeout)
    if plan.refusal is not None and not plan.differences:
        return CheckOutcome(Status.REFUSED, plan.refusal)
    if plan.refusal is not None:  # drift the planner has no step for: apply refuses it
        return CheckOutcome(Status.DRIFTED, plan.refusal, plan.differences)
    tx = transaction_difference(facts)
    differences = ((tx,) if tx else ()) + plan.differences
    repair = tuple(step.description for step in plan.steps)
    if not differences and plan.unchanged:
        return CheckOutcome(Status.IN_SYNC, "matches the task")
    if not differences:  # steps the comparison does not explain: still not in sync
        differences = (Difference("steps", None, None, "; ".join(repair)),)
    message = "; ".join(d.text for d in differences)
    return CheckOutcome(Status.DRIFTED, message, differences, repair)


def drift(task: BridgeTask, facts: HostFacts, *, min_timeout: int = 0) -> list[Difference]:
    """How the host differs from the task ([] = in sync; a refused host raises no difference
    here: ``check_facts`` says why it cannot be checked)."""
    return list(check_facts(task, facts, min_timeout=min_timeout).differences)


def outcome_result(host: str, outcome: CheckOutcome) -> HostResult:
    """``outcome`` as the host's result."""
    return HostResult(host, outcome.status, outcome.message, data=outcome.data())


async def check_job(spec: HostSpec, task: BridgeTask) -> HostResult:
    """Gather the host's facts over one connection and check them; changes nothing."""
    async with open_session(spec) as conn:
        facts = await gather(conn)
    outcome = check_facts(task, facts, min_timeout=min_timeout(spec.ssh))
    return outcome_result(spec.name, outcome)
