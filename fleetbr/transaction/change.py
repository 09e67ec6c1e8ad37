"""What a transaction changes, as the transaction sees it: the :class:`Change` protocol. The
protocol (stage, arm, resolve, confirm, verify) is the same for every kind of change; a change
says how to plan, what extra files to stage, how to check the change once applied, and how to
judge the rollback. The kinds' changes live in their folders:
:mod:`fleetbr.changes.bridge.change` (the bridge task), :mod:`fleetbr.changes.command.change`
(``fleetbr run --deadman``)."""

from __future__ import annotations

from typing import Any, Protocol

from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome
from fleetbr.transport import Session


class Change(Protocol):
    """One kind of change under the dead-man timer."""

    @property
    def label(self) -> str:
        """Short name for the journal and reports (the task file's name, ``run``)."""

    @property
    def timeout(self) -> int:
        """Dead-man timeout in seconds."""

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        """Steps and inverses for this host (or a refusal)."""

    def staged_files(self) -> dict[str, str]:
        """Extra files to stage beside apply.sh (name -> text), checksummed with the scripts."""

    def view(self, host: str, facts: HostFacts, plan: Plan) -> dict[str, Any] | None:
        """The host's before/after view of ``plan`` on ``facts`` as data (:mod:`fleetbr.diffview`
        JSON, mode ``apply``), recorded with the host and shown by the HTML report; None when
        the kind has no such view."""

    async def confirm_problems(self, conn: Session, txid: str, plan: Plan,
                               after: HostFacts) -> list[str]:  # fmt: skip
        """Why the applied change must not be confirmed ([] = confirm)."""

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """How the host compares with its snapshot after the rollback."""

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """What the change's own scripts left, for the report of a rolled-back host."""
