"""Scripted hosts for unit tests of the controller's side of a transaction (no SSH).

The machinery is :mod:`fleetbr.transport.memory` (a :class:`FakeHost` is its
:class:`~fleetbr.transport.memory.ScriptedHost`, a transport to one host, on a virtual clock);
this module adds what the tests share: the host's facts, the state script's markers of an applied
or rolled back transaction, and the inventory host the fake stands for.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbr.errors import SessionLost
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.plan import Plan, plan_host
from fleetbr.transaction import scripts
from fleetbr.transaction.change import Change
from fleetbr.transaction.protocol import Transaction, min_timeout
from fleetbr.transaction.scripts import markers
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome
from fleetbr.transport import Session
from fleetbr.transport.memory import (
    Call,
    MemorySession,
    MemoryTransport,
    Reply,
    ScriptedHost,
    VirtualClock,
    marks,
    script_nonce,
    with_nonce,
)
from tests.unit.test_plan_support import facts, task

__all__ = [
    "APPLIED", "GATEWAY_DOWN", "GATEWAY_UP", "PLAIN_FACTS", "PLAN", "ROLLED_BACK", "TIMEOUT",
    "TXID_RE", "Call", "FakeClock", "FakeConnection", "FakeHost", "MemoryTransport", "Reply",
    "ScriptedChange", "ending", "marks", "parsed", "script_nonce", "spec", "stage_reply", "state",
    "with_nonce",
]  # fmt: skip

FakeHost = ScriptedHost
FakeClock = VirtualClock
FakeConnection = MemorySession

FACTS_DIR = Path(__file__).resolve().parent.parent / "data" / "facts"
PLAIN_FACTS = (FACTS_DIR / "plain.txt").read_text()  # its probes: 198.51.100.1 ok, .254 fail


def parsed(stdout: str) -> dict[str, str]:
    """The markers of :func:`marks` output, as the controller reads them."""
    nonce = "0" * 32
    return markers(with_nonce(stdout, nonce), nonce)


# The state script's markers of an armed transaction whose apply completed (tx_state.sh.j2).
APPLIED: dict[str, str] = {
    "staged": "yes", "claim": "arm", "arm": "done", "arm_alive": "no", "arm_error": "",
    "apply": "applied", "apply_alive": "no", "decision": "none", "rollback": "none",
    "rollback_alive": "no", "timer_alive": "yes", "remaining": "40", "writable": "yes",
    "armed_marker": "this",
}  # fmt: skip


def state(**changes: str) -> str:
    """The state script's output: :data:`APPLIED` with ``changes``."""
    return marks({**APPLIED, **changes})


ROLLED_BACK = {"decision": "rolled_back timer", "rollback": "done failed=0", "timer_alive": "no",
               "remaining": "-3", "armed_marker": "none"}  # fmt: skip


def spec(
    *, command_timeout: float = 20.0, connect_timeout: float = 5.0, name: str = "hv01"
) -> HostSpec:
    """The inventory host the fake stands for (a lab address)."""
    return HostSpec(
        name=name, hostname="198.51.100.10", port=22, username="root", password=None,
        groups=(), data={"nic": "eth0"},
        ssh=SSHOptions(command_timeout=command_timeout, connect_timeout=connect_timeout),
    )  # fmt: skip


PLAN = plan_host(task(), facts(), min_timeout=20)
TIMEOUT = 40
GATEWAY_UP, GATEWAY_DOWN = "198.51.100.1", "198.51.100.254"  # as plain.txt's probes say


@dataclass
class ScriptedChange:
    """A :class:`~fleetbr.transaction.change.Change` whose verdicts the test sets."""

    problems: list[str] = field(default_factory=list)  # what confirm finds wrong
    restore: RollbackCheck = field(default_factory=RollbackCheck)  # how the rollback compares
    restores: list[RollbackCheck] = field(default_factory=list)  # per look, before ``restore``
    label: str = "test"
    timeout: int = TIMEOUT
    confirm_calls: int = 0
    planned: Plan = PLAN
    files: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[object, ...]] = field(default_factory=list)  # the arguments it was given

    def plan(self, facts: HostFacts, min_timeout: int) -> Plan:
        self.seen.append(("plan", facts, min_timeout))
        return self.planned

    def staged_files(self) -> dict[str, str]:
        return dict(self.files)

    def view(self, host: str, facts: HostFacts, plan: Plan) -> dict[str, Any] | None:
        return None

    async def confirm_problems(
        self, conn: Session, txid: str, plan: Plan, after: HostFacts
    ) -> list[str]:
        self.confirm_calls += 1
        self.seen.append(("confirm_problems", conn, txid, plan, after))
        return list(self.problems)

    def rollback_check(self, plan: Plan, before: HostFacts, after: HostFacts) -> RollbackCheck:
        self.seen.append(("rollback_check", plan, before, after))
        return self.restores.pop(0) if self.restores else self.restore

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        return ScriptOutcome({}, "")  # a bridge change has no scripts of the operator's


TXID_RE = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def stage_reply(tx: Transaction, *, spoil: str | None = None) -> Reply:
    """The stage script's answer: the sha256 of each file the host wrote (``spoil``: that one
    differs, as if the disk or something in the way changed it)."""

    def answer(script: str) -> str:
        match = TXID_RE.search(script)
        assert match and tx.plan is not None
        staged = scripts.staged_scripts(match.group(0), tx.plan, tx.change.staged_files())
        sums = staged.checksums()
        if spoil is not None:
            sums[spoil] = "0" * 64
        lines = "".join(f"{digest}  {name}\n" for name, digest in sums.items())
        return f"@@checksums\n{lines}@@probes\nprobe {GATEWAY_UP} ok\n"

    return Reply(answer)


UNCHANGED_PLAN = dataclasses.replace(PLAN, steps=())


def ending(outcome: str, change: Change) -> FakeHost:
    """A scripted host on which ``change``'s whole transaction (any kind's: its plan of
    :data:`PLAIN_FACTS`) ends as ``outcome`` says:
    ``confirmed``; ``unchanged`` (the plan has no step); ``rolled_back`` (the host rolled back;
    verified over a new connection); ``lost_mid_apply`` (the arm+apply session dies; the host,
    asked again, rolled back); ``refused`` (another transaction armed, at stage);
    ``arm_failed``; ``unreachable`` (no connection at all)."""
    host = FakeHost()
    if outcome == "unreachable":
        return host.refuse(0.0)
    probe = Transaction(spec(), change, clock=host.clock)  # for the stage's checksums
    probe.plan = change.plan(parse_facts(PLAIN_FACTS), min_timeout(spec().ssh))
    host.on("facts", PLAIN_FACTS)
    if outcome == "unchanged":
        assert isinstance(change, ScriptedChange)
        change.planned = UNCHANGED_PLAN
        return host
    if outcome == "refused":
        return host.on("stage", Reply(exit_status=10, stderr="another transaction is armed"))
    host.on("stage", stage_reply(probe))
    running = Reply(marks({"armed": "38", "apply": "running"}))
    if outcome == "confirmed":
        host.on("arm+apply", marks({"armed": "38", "apply": "applied"})).on("facts", PLAIN_FACTS)
        return host.on("disarm", marks({"decision": "confirmed"}))
    if outcome == "arm_failed":
        failed = state(arm="failed 11", arm_error="disk full", apply="none", timer_alive="no",
                       remaining="none", armed_marker="none")  # fmt: skip
        return host.on("arm+apply", running).on("state", failed)
    lost = Reply(error=SessionLost("connection lost during arm+apply"))
    host.on("arm+apply", lost if outcome == "lost_mid_apply" else running)
    assert outcome in {"rolled_back", "lost_mid_apply"}, outcome
    return host.on("state", state(**ROLLED_BACK)).on("facts", PLAIN_FACTS)
