"""What the host says about one transaction, and what the controller may do next. Pure, no I/O.

The host reports its side with ``tx_state.sh.j2``; :func:`next_action` turns that report into the
controller's next move. The rule it enforces: the controller never decides (confirms, reports
rolled back, or gives up) while a process fleetbr started for the transaction may still change
the host, and it never guesses how far the host got: it asks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar


class ExitCode(enum.IntEnum):
    """Exit statuses of the host scripts that the controller tells apart (the templates get them
    from here: ``exits`` in their render context)."""

    OK = 0
    FAILED = 1  # anything else that went wrong
    ARMED_ELSEWHERE = 10  # stage, arm: another transaction is armed on the host (a refusal)
    SCRIPTS_CHANGED = 11  # arm: the staged scripts no longer match their checksums
    CANCELLED = 12  # arm: the controller cancelled it first, or it was decided before arming
    NO_CLAIM = 13  # arm: the transaction folder takes no claim (read-only or full)


class Claim(enum.StrEnum):
    """Who took the transaction's claim: the arm script, the controller's cancel, or nobody."""

    ARM = "arm"
    CANCEL = "cancel"
    NONE = "none"
    OTHER = "other"  # a word no fleetbr script writes


class ArmStep(enum.StrEnum):
    """How far the arm script got (``arm.status``; ``failed N``: it exited N)."""

    NONE = "none"
    CLAIMED = "claimed"
    ARMED = "armed"
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    OTHER = "other"


class ApplyStep(enum.StrEnum):
    """How far the apply got (``apply.status``; ``failed:N``, ``stopped:N``: at step N)."""

    NONE = "none"
    RUNNING = "running"
    APPLIED = "applied"
    FAILED = "failed"
    STOPPED = "stopped"
    OTHER = "other"


class Decision(enum.StrEnum):
    """Who decided the transaction (``rolled_back REASON``: the rollback, and why)."""

    NONE = "none"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"
    OTHER = "other"


class RollbackStep(enum.StrEnum):
    """The rollback's end (``done failed=N``: finished, N of its steps failed)."""

    NONE = "none"
    DONE = "done"
    OTHER = "other"


class Marker(enum.StrEnum):
    """Which transaction the host's armed marker names, from this one's point of view."""

    THIS = "this"
    OTHER = "other"
    NONE = "none"


class JournalEvent(enum.StrEnum):
    """The events of the host's journal (``journal EVENT detail`` in the templates) that the
    controller tells apart; any other word (a note, an older script's) is OTHER."""

    ROLLED_BACK = "rolled_back"  # detail: reason=... failed_steps=N
    ROLLBACK_FAILED = "rollback_failed"  # the boot guard could not put everything back
    OTHER = "other"


def parse_event(word: str) -> JournalEvent:
    """A journal line's event word as a :class:`JournalEvent`."""
    return _choice(JournalEvent, word, JournalEvent.OTHER)


ARMED_STEPS = frozenset({ArmStep.ARMED, ArmStep.STARTED, ArmStep.DONE})


@dataclass(frozen=True)
class HostTxState:
    """One transaction as the host sees it (see ``tx_state.sh.j2``), parsed into types."""

    staged: bool
    claim: Claim
    arm: ArmStep
    arm_code: int | None  # the arm script's exit status when it failed
    arm_alive: bool
    arm_error: str
    apply: ApplyStep
    apply_step: int | None  # the step the apply failed or was stopped at
    apply_alive: bool
    decision: Decision
    reason: str  # why it was rolled back (timer, unfinished, reboot, operator, ...)
    rollback: RollbackStep
    failed_steps: int  # rollback steps that failed (0 when none or unknown)
    rollback_alive: bool
    timer_alive: bool
    remaining: int | None  # seconds until the host's timer fires (negative: it is past)
    writable: bool  # a lock can be created in the transaction folder
    armed_marker: Marker

    @property
    def busy(self) -> bool:
        """A process fleetbr started for this transaction is still running."""
        return self.arm_alive or self.apply_alive or self.rollback_alive

    @property
    def armed(self) -> bool:
        """The arm script got as far as starting the timer."""
        return self.arm in ARMED_STEPS

    @property
    def decided(self) -> bool:
        """Something took the decision (confirmed, rolled back, or a word fleetbr never writes)."""
        return self.decision is not Decision.NONE

    @property
    def confirmed(self) -> bool:
        """The disarm took the decision."""
        return self.decision is Decision.CONFIRMED

    @property
    def rolled_back(self) -> bool:
        """The rollback took the decision."""
        return self.decision is Decision.ROLLED_BACK

    @property
    def rollback_ended(self) -> bool:
        """The rollback script wrote its end."""
        return self.rollback is not RollbackStep.NONE

    @property
    def refused(self) -> bool:
        """The arm script refused: another transaction is armed on the host."""
        return self.arm is ArmStep.FAILED and self.arm_code == ExitCode.ARMED_ELSEWHERE

    @property
    def arm_text(self) -> str:
        """How far the arm script got, as the host wrote it (``failed 10``)."""
        return f"{self.arm} {self.arm_code}" if self.arm_code is not None else str(self.arm)

    @property
    def decision_text(self) -> str:
        """The decision as the host wrote it (``rolled_back timer``)."""
        return f"{self.decision} {self.reason}" if self.reason else str(self.decision)

    def summary(self) -> str:
        """A short one-line description for reports."""
        left = "?" if self.remaining is None else f"{self.remaining}s"
        apply = f"{self.apply}:{self.apply_step}" if self.apply_step is not None else self.apply
        rollback = (
            f"done failed={self.failed_steps}" if self.rollback is RollbackStep.DONE
            else str(self.rollback)
        )  # fmt: skip
        return (
            f"claim={self.claim} arm={self.arm_text} apply={apply} decision={self.decision_text} "
            f"rollback={rollback} timer={'on' if self.timer_alive else 'off'} left={left}"
        )


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _seconds(text: str | None) -> int | None:
    """A signed count of seconds (``remaining``), None when the host could not tell."""
    if text is None or not text.lstrip("-").isdigit():
        return None
    return int(text)


_Word = TypeVar("_Word", bound=enum.StrEnum)


def _choice(kind: type[_Word], text: str, other: _Word) -> _Word:
    """The member of ``kind`` spelt ``text``, else ``other``."""
    return next((member for member in kind if member.value == text), other)


def parse_arm(text: str) -> tuple[ArmStep, int | None]:
    """``arm.status``: the step, and the exit status of a ``failed N``."""
    word, _, code = text.partition(" ")
    step = _choice(ArmStep, word, ArmStep.OTHER)
    return step, _number(code) if step is ArmStep.FAILED else None


def parse_apply(text: str) -> tuple[ApplyStep, int | None]:
    """``apply.status``: the step, and the step number of a ``failed:N`` or ``stopped:N``."""
    word, _, number = text.partition(":")
    step = _choice(ApplyStep, word, ApplyStep.OTHER)
    return step, _number(number) if step in (ApplyStep.FAILED, ApplyStep.STOPPED) else None


def parse_decision(text: str) -> tuple[Decision, str]:
    """The decision lock's value: who decided, and (``rolled_back REASON``) why."""
    word, _, reason = text.partition(" ")
    decision = _choice(Decision, word, Decision.OTHER)
    return decision, reason.strip() if decision is Decision.ROLLED_BACK else ""


def parse_rollback(text: str) -> tuple[RollbackStep, int]:
    """``rollback.status``: ended or not, and (``done failed=N``) how many of its steps failed."""
    word, _, count = text.partition(" failed=")
    step = _choice(RollbackStep, word, RollbackStep.OTHER)
    return step, (_number(count) or 0) if step is RollbackStep.DONE else 0


def parse_state(marks: dict[str, str]) -> HostTxState:
    """Build the state from the markers of ``tx_state.sh.j2`` (``@@NONCE name value`` lines, as
    :func:`fleetbr.transaction.scripts.markers` returns them: name -> value)."""
    arm, arm_code = parse_arm(marks.get("arm") or "none")
    apply, apply_step = parse_apply(marks.get("apply") or "none")
    decision, reason = parse_decision(marks.get("decision") or "none")
    rollback, failed = parse_rollback(marks.get("rollback") or "none")
    return HostTxState(
        staged=marks.get("staged") == "yes",
        claim=_choice(Claim, marks.get("claim") or "none", Claim.OTHER),
        arm=arm,
        arm_code=arm_code,
        arm_alive=marks.get("arm_alive") == "yes",
        arm_error=marks.get("arm_error", ""),
        apply=apply,
        apply_step=apply_step,
        apply_alive=marks.get("apply_alive") == "yes",
        decision=decision,
        reason=reason,
        rollback=rollback,
        failed_steps=failed,
        rollback_alive=marks.get("rollback_alive") == "yes",
        timer_alive=marks.get("timer_alive") == "yes",
        remaining=_seconds(marks.get("remaining")),
        writable=marks.get("writable") != "no",  # only a "no" means the lock cannot be made
        armed_marker=_choice(Marker, marks.get("armed_marker") or "none", Marker.OTHER),
    )


class Action(enum.Enum):
    """The controller's next move for one transaction."""

    CONFIRM = "confirm"  # verify the change over this (fresh) connection, probe, disarm
    WAIT = "wait"  # the host is still working (or its timer is about to fire): look again later
    WAIT_TIMER = "wait_timer"  # nothing to do until the host's timer fires
    CANCEL = "cancel"  # the arm script has not started: take its claim so it never will
    TRIGGER_ROLLBACK = "trigger_rollback"  # armed but nothing will finish the change: revert now
    VERIFY_ROLLBACK = "verify_rollback"  # rolled back and quiet: compare with the snapshot
    CONFIRMED = "confirmed"  # decided: confirmed
    NOTHING_CHANGED = "nothing_changed"  # never armed (cancelled or arming failed)
    REFUSED = "refused"  # another transaction is armed on the host
    STUCK = "stuck"  # undecided and nothing on the host will move it: report, do not decide


def next_action(state: HostTxState, margin: float) -> Action:
    """The controller's next move, given the host's state of the transaction."""
    if not state.staged:
        return Action.STUCK
    if state.confirmed:
        return Action.CONFIRMED
    if state.rolled_back:
        if state.rollback_ended and not state.busy:
            return Action.VERIFY_ROLLBACK
        return Action.WAIT if state.busy else Action.STUCK
    if state.claim is Claim.NONE:
        # no arm script can claim a folder that takes no lock: nothing can have changed
        return Action.CANCEL if state.writable else Action.NOTHING_CHANGED
    if state.claim is not Claim.ARM:
        return Action.NOTHING_CHANGED
    if not state.armed:
        return _before_armed(state)
    return _armed(state, margin)


def _before_armed(state: HostTxState) -> Action:
    if state.arm_alive:
        return Action.WAIT  # slow, but making progress: the host decides how long arming takes
    if state.refused:
        return Action.REFUSED
    if state.armed_marker is Marker.THIS:  # died between arming and starting the apply
        return Action.TRIGGER_ROLLBACK
    return Action.NOTHING_CHANGED


def _armed(state: HostTxState, margin: float) -> Action:
    apply = state.apply
    if apply is ApplyStep.APPLIED:
        if state.remaining is None or state.remaining > margin:
            return Action.CONFIRM
        return Action.WAIT_TIMER if state.timer_alive else Action.TRIGGER_ROLLBACK
    if apply in (ApplyStep.FAILED, ApplyStep.STOPPED) or state.busy:
        return Action.WAIT  # the apply's own rollback (or the apply itself) is at work
    # Armed, nothing running, the change not complete: nobody will finish it. Revert now.
    return Action.TRIGGER_ROLLBACK
