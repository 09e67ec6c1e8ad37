"""Render plan steps into remote shell with the macros of ``templates/steps.sh.j2``."""

from __future__ import annotations

from collections.abc import Sequence

from fleetbr.plan.model import STEP_KINDS, Step
from fleetbr.render import environment

TEMPLATE = "steps.sh.j2"


def step_command(step: Step) -> str:
    """One shell command line for ``step`` that exits 0 on success."""
    if step.kind not in STEP_KINDS:
        raise ValueError(f"unknown step kind {step.kind!r}")
    module = environment().get_template(TEMPLATE).module
    command = str(getattr(module, step.kind)(dict(step.args))).strip()
    if "\n" in command:
        raise ValueError(f"step {step.kind} rendered to more than one line")
    return command


def _script(steps: Sequence[Step], *, keep_going: bool) -> str:
    commands = [{"command": step_command(s), "description": s.description} for s in steps]
    return environment().get_template(TEMPLATE).render(commands=commands, keep_going=keep_going)


def steps_script(steps: Sequence[Step]) -> str:
    """A POSIX sh script running ``steps`` in order, stopping at the first failure (exit 1)."""
    return _script(steps, keep_going=False)


def rollback_script(steps: Sequence[Step]) -> str:
    """A POSIX sh script running every rollback step even after a failure; exit 1 if any failed."""
    return _script(steps, keep_going=True)
