"""What a transaction changes, as the transaction sees it: the :class:`Change` protocol. The
protocol (stage, arm, resolve, confirm, verify) is the same for every kind of change; a change
says how to plan, what extra files to stage, how to check the change once applied, whether the
host is still settling and how to judge the rollback. The kinds' changes live in their folders:
:mod:`fleetbr.changes.bridge.change` (the bridge task), :mod:`fleetbr.changes.command.change`
(``fleetbr run --deadman``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetbr.backends import registry
from fleetbr.facts.model import HostFacts
from fleetbr.plan import Plan
from fleetbr.transport import Session


@dataclass(frozen=True)
class RollbackCheck:
    """How a rolled-back host compares with its snapshot: ``problems`` fail it, ``notes`` don't."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScriptOutcome:
    """What a change's own scripts left on the host (``run --deadman``: the command's and the
    undo's exit status and stderr): ``data`` for the result, ``summary`` for its message."""

    data: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


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

    async def confirm_problems(self, conn: Session, txid: str, plan: Plan,
                               after: HostFacts) -> list[str]:  # fmt: skip
        """Why the applied change must not be confirmed ([] = confirm)."""

    def settling(self, plan: Plan, before: HostFacts, after: HostFacts) -> bool:
        """The rolled-back host is still on its way back (a daemon configuring an interface the
        change touched, a guest coming back): its rollback is looked at again before judged."""

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        """How the host compares with its snapshot after the rollback."""

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        """What the change's own scripts left, for the report of a rolled-back host."""


def daemons_settling(facts: HostFacts, names: tuple[str, ...] | None = None) -> bool:
    """A network daemon is still configuring an interface (after a boot, a reload): one of
    ``names``, or any when None."""
    found = facts.daemons.interfaces
    managers = found.values() if names is None else [facts.manager(n) for n in names]
    # words of a daemon still bringing an interface up or down (Backend.settling): networkd's
    # setup states, NetworkManager's device states; its final word is yet to come
    settling = registry.settling_words()
    return any(
        word.startswith(settling)
        for manager in managers
        for word in (manager.state, *(view.state for view in manager.views))
    )
