"""The pure planner: (task, facts) -> plan, the step shell, and the verification helpers."""

from fleetbr.plan.model import ExpectedState, Plan, Step
from fleetbr.plan.planner import plan_host
from fleetbr.plan.shell import rollback_script, step_command, steps_script
from fleetbr.plan.verify import diff_facts, verify_applied, verify_restored

__all__ = [
    "ExpectedState",
    "Plan",
    "Step",
    "diff_facts",
    "plan_host",
    "rollback_script",
    "step_command",
    "steps_script",
    "verify_applied",
    "verify_restored",
]
