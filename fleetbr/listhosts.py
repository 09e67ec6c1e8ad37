"""``apply|check|run --list-hosts``: the hosts a command would run on, batch by batch, from its
request alone. Nothing is contacted (no SSH, no key or secret read), nothing is recorded, the
task is not read; the selection is resolved as the run would resolve it (``@failed:`` terms
too), and an apply's batches are the rollout's own plan (:mod:`fleetbr.batchplan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetbr.batchplan import plan_batches
from fleetbr.core.request import RunRequest
from fleetbr.errors import UsageError
from fleetbr.output import Human, print_json
from fleetbr.report import EXIT_OK, hosts_text


@dataclass(frozen=True)
class HostPlan:
    """Who a run would contact: its canary (apply only) and then its batches, in order."""

    command: str
    selection: str | None
    canary: list[str]
    batches: list[list[str]]

    @property
    def hosts(self) -> list[str]:
        """Every host, in the order the run reaches them."""
        return [*self.canary, *(host for batch in self.batches for host in batch)]

    def to_dict(self) -> dict[str, Any]:
        """The plan as data (``--json``)."""
        return {"command": self.command, "selection": self.selection, "hosts": self.hosts,
                "canary": self.canary, "batches": self.batches}  # fmt: skip


def host_plan(request: RunRequest) -> HostPlan:
    """The plan of ``request`` (UsageError/InventoryError as the run itself would raise)."""
    if request.history.resume is not None:
        raise UsageError("--list-hosts does not combine with --resume (`fleetbr show RUN` lists "
                         "a run's hosts)")  # fmt: skip
    history = request.history.path
    names = [spec.name for spec in request.selection.resolve(connecting=False, history=history)]
    if request.command != "apply":  # check, plain run: every host at once, within --forks
        return HostPlan(request.recorded_name, request.selection.limit, [], [names])
    canary = request.rollout.canary or 0
    groups = plan_batches(names, canary, request.rollout.batch_size)
    if canary:
        return HostPlan(request.recorded_name, request.selection.limit, groups[0], groups[1:])
    return HostPlan(request.recorded_name, request.selection.limit, [], groups)


def list_hosts(request: RunRequest, *, as_json: bool) -> int:
    """Print the plan of ``request`` (human lines, or one JSON document); exit 0."""
    plan = host_plan(request)
    if as_json:
        print_json(plan.to_dict())
        return EXIT_OK
    out = Human()
    parts = [hosts_text(len(plan.hosts))]
    if plan.canary:
        parts.append("the canary first")
    parts.append(f"{len(plan.batches)} batch{'' if len(plan.batches) == 1 else 'es'}")
    out.line(f"{plan.command}: {', '.join(parts)}; no host contacted", style="bold")
    if plan.canary:
        _group(out, f"canary ({hosts_text(len(plan.canary))})", plan.canary)
    for number, batch in enumerate(plan.batches, 1):
        _group(out, f"batch {number} of {len(plan.batches)} ({hosts_text(len(batch))})", batch)
    return EXIT_OK


def _group(out: Human, title: str, hosts: list[str]) -> None:
    out.line(f"{title}:")
    for host in hosts:
        out.line(f"  {host}")
