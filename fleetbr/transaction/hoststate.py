"""What the host says about one transaction, and what the controller may do next. Pure, no I/O.

The host reports its side with ``tx_state.sh.j2``; :func:`next_action` turns that report into the
controller's next move. The rule it enforces: the controller never decides (confirms, reports
rolled back, or gives up) while a process fleetbr started for the transaction may still change
the host, and it never guesses how far the host got: it asks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

ARMED_STEPS = frozenset({"armed", "started", "done"})


@dataclass(frozen=True)
class HostTxState:
    """One transaction as the host sees it (see ``tx_state.sh.j2``)."""

    staged: bool
    claim: str  # "arm", "cancel" or "none"
    arm: str  # none, claimed, armed, started, done, "failed N"
    arm_alive: bool
    arm_error: str
    apply: str  # none, running, applied, "failed:N", "stopped:N"
    apply_alive: bool
    decision: str  # none, confirmed, "rolled_back REASON"
    rollback: str  # none or "done failed=N"
    rollback_alive: bool
    timer_alive: bool
    remaining: int | None  # seconds until the host's timer fires (negative: it is past)
    writable: bool  # a lock can be created in the transaction folder
    armed_marker: str  # /var/lib/fleetbr/armed names "this" transaction, an "other" one, or "none"

    @property
    def busy(self) -> bool:
        """A process fleetbr started for this transaction is still running."""
        return self.arm_alive or self.apply_alive or self.rollback_alive

    @property
    def armed(self) -> bool:
        """The arm script got as far as starting the timer."""
        return self.arm in ARMED_STEPS

    @property
    def rolled_back(self) -> bool:
        """The rollback took the decision."""
        return self.decision.startswith("rolled_back")

    def summary(self) -> str:
        """A short one-line description for reports."""
        left = "?" if self.remaining is None else f"{self.remaining}s"
        return (
            f"claim={self.claim} arm={self.arm} apply={self.apply} decision={self.decision} "
            f"rollback={self.rollback} timer={'on' if self.timer_alive else 'off'} left={left}"
        )


def parse_state(marks: dict[str, str]) -> HostTxState:
    """Build the state from the markers of ``tx_state.sh.j2`` (``@@NONCE name value`` lines, as
    :func:`fleetbr.transaction.scripts.markers` returns them: name -> value)."""
    remaining = marks.get("remaining", "none")
    return HostTxState(
        staged=marks.get("staged") == "yes",
        claim=marks.get("claim", "none") or "none",
        arm=marks.get("arm", "none") or "none",
        arm_alive=marks.get("arm_alive") == "yes",
        arm_error=marks.get("arm_error", ""),
        apply=marks.get("apply", "none") or "none",
        apply_alive=marks.get("apply_alive") == "yes",
        decision=marks.get("decision", "none") or "none",
        rollback=marks.get("rollback", "none") or "none",
        rollback_alive=marks.get("rollback_alive") == "yes",
        timer_alive=marks.get("timer_alive") == "yes",
        remaining=int(remaining) if remaining.lstrip("-").isdigit() else None,
        writable=marks.get("writable", "yes") != "no",
        armed_marker=marks.get("armed_marker", "none") or "none",
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
    if state.decision == "confirmed":
        return Action.CONFIRMED
    if state.rolled_back:
        if state.rollback != "none" and not state.busy:
            return Action.VERIFY_ROLLBACK
        return Action.WAIT if state.busy else Action.STUCK
    if state.claim == "none":
        # no arm script can claim a folder that takes no lock: nothing can have changed
        return Action.CANCEL if state.writable else Action.NOTHING_CHANGED
    if state.claim != "arm":
        return Action.NOTHING_CHANGED
    if not state.armed:
        return _before_armed(state)
    return _armed(state, margin)


def _before_armed(state: HostTxState) -> Action:
    if state.arm_alive:
        return Action.WAIT  # slow, but making progress: the host decides how long arming takes
    if state.arm == "failed 10":
        return Action.REFUSED
    if state.armed_marker == "this":  # died between arming and starting the apply
        return Action.TRIGGER_ROLLBACK
    return Action.NOTHING_CHANGED


def _armed(state: HostTxState, margin: float) -> Action:
    apply = state.apply
    if apply == "applied":
        if state.remaining is None or state.remaining > margin:
            return Action.CONFIRM
        return Action.WAIT_TIMER if state.timer_alive else Action.TRIGGER_ROLLBACK
    if apply.startswith(("failed", "stopped")) or state.busy:
        return Action.WAIT  # the apply's own rollback (or the apply itself) is at work
    # Armed, nothing running, the change not complete: nobody will finish it. Revert now.
    return Action.TRIGGER_ROLLBACK
