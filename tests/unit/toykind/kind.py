"""The ``toy`` kind: writes a marker (nothing real: its transaction is faked in the tests). It
shows the whole surface of a change kind: load and validate the source, render a per-host
:class:`~fleetbr.transaction.change.Change`, and judge a host's facts for plan and check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetbr.errors import UsageError
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.plan.model import Plan, Step
from fleetbr.report import HostResult, Status
from fleetbr.transaction.change import Change
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome
from fleetbr.transport import Session


@dataclass(frozen=True)
class ToyChange:
    """Put ``marker`` on the host (the transaction is faked in the tests)."""

    marker: str
    label: str
    timeout: int = 60

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        """One step, no inverse needed beyond removing the marker."""
        step = Step("run_staged", {"file": "toy.sh"}, f"mark {self.marker}")
        return Plan(facts.hostname, None, (step,), (), (), ())

    def staged_files(self) -> dict[str, str]:
        """Nothing to stage."""
        return {}

    def view(self, host: str, facts: HostFacts, plan: Plan) -> dict[str, Any] | None:
        return None

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        """Always confirmable."""
        return []

    def settling(self, plan: Plan, before: HostFacts, after: HostFacts) -> bool:
        """Never settling."""
        return False

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """Nothing to compare."""
        return RollbackCheck()

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """No scripts of its own."""
        return ScriptOutcome()


class ToyKind:
    """Source: a marker name (a non-empty string)."""

    name = "toy"
    commands = frozenset({"plan", "apply", "check"})

    def load(self, source: Any) -> str:
        """The marker (UsageError when it is not a non-empty string)."""
        if not isinstance(source, str) or not source:
            raise UsageError(f"toy: the marker must be a non-empty string, got {source!r:.40}")
        return source

    def label(self, source: Any) -> str:
        """``toy``."""
        return "toy"

    def render(self, loaded: str, spec: HostSpec, label: str) -> ToyChange:
        """The marker, with the host's name in it."""
        return ToyChange(f"{loaded}-{spec.name}", label)

    def plan(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """``planned``, with the one step."""
        steps = [step.description for step in change.plan(facts, 0).steps]
        return HostResult(spec.name, Status.PLANNED, "\n".join(steps), data={"steps": steps})

    def check(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """``drifted``: the marker is never there (nothing really writes it)."""
        assert isinstance(change, ToyChange)
        text = f"no marker {change.marker}"
        return HostResult(spec.name, Status.DRIFTED, text, data={"differences": [{"text": text}]})
