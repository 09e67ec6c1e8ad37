"""The ``command`` kind (``fleetbr run --deadman N --undo UNDO -- CMD``): the operator's command
and its undo under the dead-man transaction (:class:`fleetbr.changes.command.change.CommandChange`,
planned by :mod:`fleetbr.changes.command.plan`). The same change for every host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetbr.changes.command.change import CommandChange
from fleetbr.errors import UsageError
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status
from fleetbr.transaction.change import Change
from fleetbr.transaction.protocol import min_timeout


@dataclass(frozen=True)
class CommandSource:
    """What ``run --deadman`` was given: the command line (bytes as read), its undo, the
    timeout in seconds and the optional confirm check."""

    command: bytes
    undo: str | None
    deadman: int | None
    confirm_check: str | None = None


def check_paired(deadman: int | None, undo: str | None) -> tuple[int, str]:
    """A command needs both its timeout and a non-empty undo (UsageError); both, checked."""
    if deadman is None or not undo or not undo.strip():
        raise UsageError("run: --deadman N and --undo UNDO go together (and UNDO may not be empty)")
    return deadman, undo


class CommandKind:
    """An operator's command with its undo."""

    name = "command"
    commands = frozenset({"plan", "apply"})

    def load(self, source: Any) -> CommandChange:
        """The validated change (UsageError: exit 2, nothing contacted)."""
        if isinstance(source, CommandChange):
            return source
        if not isinstance(source, CommandSource):
            raise UsageError(f"command: expected a CommandSource, got {source!r:.80}")
        deadman, undo = check_paired(source.deadman, source.undo)
        try:
            command = source.command.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("run: with --deadman the command must be UTF-8 text") from None
        texts = ((command, "CMD"), (undo, "--undo"), (source.confirm_check, "CMD2"))
        for text, what in texts:
            if text is not None and "\0" in text:
                raise UsageError(f"run: {what} contains a NUL byte")
        if source.confirm_check is not None and not source.confirm_check.strip():
            raise UsageError("run: --confirm-check is empty")
        return CommandChange(command, undo, deadman, source.confirm_check, label="run")

    def label(self, source: Any) -> str:
        """``run``, as the journal names it."""
        return "run"

    def render(self, loaded: CommandChange, spec: HostSpec, label: str) -> CommandChange:
        """The same command on every host."""
        return loaded

    def plan(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """The one step (the command) and its inverse (the undo), or why the host refuses."""
        plan = change.plan(facts, min_timeout(spec.ssh))
        steps = [step.description for step in plan.steps]
        data = {"steps": steps, "rollback": [step.description for step in plan.rollback]}
        if plan.refusal:
            return HostResult(spec.name, Status.REFUSED, plan.refusal, data=data)
        return HostResult(spec.name, Status.PLANNED, "\n".join(steps), data=data,
                          lines=tuple(steps))  # fmt: skip

    def check(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """Not supported: an arbitrary command has no desired state to compare with."""
        raise UsageError("check: a command has no desired state to check")
