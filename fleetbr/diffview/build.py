"""A :class:`HostDiff` from a host's facts and the plan made on them (pure)."""

from __future__ import annotations

from fleetbr.diffview.files import file_diffs
from fleetbr.diffview.model import SECTIONS, HostDiff, Mode, Section
from fleetbr.diffview.project import project
from fleetbr.diffview.runtime import lines, state_of
from fleetbr.facts.model import HostFacts
from fleetbr.plan.model import BridgePlan, Plan


def host_diff(host: str, facts: HostFacts, plan: Plan, mode: Mode) -> HostDiff:
    """The view of ``plan`` on ``facts``: before = the facts, after = the plan's expected state
    laid over them (a refused plan, or one without an expected state, changes nothing: the
    ``note`` says why), and the files its steps write or remove."""
    before = state_of(facts)
    note = ""
    if plan.refusal is not None:
        after, note = before, f"refused: {plan.refusal}"
    elif isinstance(plan, BridgePlan):
        after = project(before, plan.expected)
    else:
        after, note = before, "this kind of change has no expected state to show"
    old, new = lines(before), lines(after)
    sections = tuple(Section(name, old[name], new[name]) for name in SECTIONS)
    return HostDiff(host, mode, sections, file_diffs(plan.steps, facts), note)
