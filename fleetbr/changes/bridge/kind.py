"""The ``bridge`` kind: a task file, rendered per host (jinja2) into a :class:`BridgeChange`;
planned by the pure planner, checked for drift by :mod:`fleetbr.changes.bridge.drift`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.changes.bridge.drift import check_facts, check_plan, outcome_result
from fleetbr.changes.bridge.dryrun import plan_result
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, load_task, render_task
from fleetbr.diffview.build import host_diff
from fleetbr.diffview.model import HostDiff, Mode
from fleetbr.errors import UsageError
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan import plan_host
from fleetbr.report import HostResult
from fleetbr.transaction.change import Change
from fleetbr.transaction.protocol import min_timeout


class BridgeKind:
    """A task file (a path, or a :class:`TaskTemplate` already read)."""

    name = "bridge"
    commands = frozenset({"plan", "apply", "check"})

    def load(self, source: Any) -> TaskTemplate:
        """The task template (TaskError: exit 2)."""
        if isinstance(source, TaskTemplate):
            return source
        if isinstance(source, str | os.PathLike):
            return load_task(Path(source))
        raise UsageError(f"bridge: expected a task file or a TaskTemplate, got {source!r:.80}")

    def label(self, source: Any) -> str:
        """The task file's name, as in host journals."""
        return Path(source.source if isinstance(source, TaskTemplate) else source).name

    def render(self, loaded: TaskTemplate, spec: HostSpec, label: str) -> BridgeChange:
        """The task rendered and validated for ``spec`` (TaskError)."""
        return BridgeChange(render_task(loaded, spec.context()), label)

    def plan(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """The pure planner's plan for the task on this host."""
        return plan_result(spec, _task(change), facts)

    def check(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """The host's facts compared with the task (:mod:`fleetbr.changes.bridge.drift`)."""
        outcome = check_facts(_task(change), facts, min_timeout=min_timeout(spec.ssh))
        return outcome_result(spec.name, outcome)

    def diff(self, spec: HostSpec, change: Change, facts: HostFacts, mode: Mode) -> HostDiff:
        """The ``--diff`` view: the plan (``check``: the plan as if nothing were armed, as
        ``check`` judges) laid over the facts (:mod:`fleetbr.diffview`)."""
        task, least = _task(change), min_timeout(spec.ssh)
        if mode == "check":
            plan = check_plan(task, facts, least)
        else:
            plan = plan_host(task, facts, min_timeout=least)
        return host_diff(spec.name, facts, plan, mode)


def _task(change: Change) -> BridgeTask:
    if not isinstance(change, BridgeChange):
        raise TypeError(f"bridge: not a bridge change: {change!r:.80}")
    return change.task
