"""The pure planner: (task, facts) -> plan, the step shell, and the verification helpers."""

from fleetbr.plan.model import BridgePlan, ExpectedState, Plan, Step
from fleetbr.plan.planner import plan_host
from fleetbr.plan.restore import RestoreCheck, diff_facts, restore_check, verify_restored
from fleetbr.plan.scope import Touched, touched_by, touched_lines
from fleetbr.plan.shell import rollback_script, step_command, steps_script
from fleetbr.plan.verify import verify_applied

__all__ = [
    "BridgePlan",
    "ExpectedState",
    "Plan",
    "RestoreCheck",
    "Step",
    "Touched",
    "diff_facts",
    "plan_host",
    "restore_check",
    "rollback_script",
    "step_command",
    "steps_script",
    "touched_by",
    "touched_lines",
    "verify_applied",
    "verify_restored",
]
