"""The controller's next move from the host's report of a transaction (pure, no SSH)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fleetbr.transaction.hoststate import (
    Action,
    ApplyStep,
    ArmStep,
    Claim,
    Decision,
    HostTxState,
    Marker,
    RollbackStep,
    next_action,
    parse_state,
)

TXID = "20261129T000000-abcdef"

ARMED = {
    "staged": "yes", "claim": "arm", "arm": "done", "arm_alive": "no", "arm_error": "",
    "apply": "applied", "apply_alive": "no", "decision": "none", "rollback": "none",
    "rollback_alive": "no", "timer_alive": "yes", "remaining": "30", "writable": "yes",
    "armed_marker": "this",
}  # fmt: skip


def word(value: object) -> str:
    """A value as the state script prints it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)


def state(**changes: object) -> HostTxState:
    """The parsed state of :data:`ARMED` with ``changes`` (as the script would print them)."""
    return parse_state({**ARMED, **{name: word(value) for name, value in changes.items()}})


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({}, Action.CONFIRM),
        ({"remaining": 2}, Action.WAIT_TIMER),  # too late to confirm safely: let the timer act
        ({"remaining": 2, "timer_alive": False}, Action.TRIGGER_ROLLBACK),
        ({"decision": "confirmed"}, Action.CONFIRMED),
        # the arm script has not started: cancel it, never guess
        ({"claim": "none", "arm": "none", "apply": "none"}, Action.CANCEL),
        ({"claim": "cancel", "arm": "none", "apply": "none"}, Action.NOTHING_CHANGED),
        # a read-only or full state dir: no arm script can claim, cancelling is impossible too
        (
            {"claim": "none", "arm": "none", "apply": "none", "writable": False},
            Action.NOTHING_CHANGED,
        ),
        # slow arm script: wait for it, whatever the controller's own timeout was
        ({"arm": "claimed", "arm_alive": True, "apply": "none"}, Action.WAIT),
        ({"arm": "failed 11", "apply": "none", "armed_marker": "none"}, Action.NOTHING_CHANGED),
        ({"arm": "failed 10", "apply": "none", "armed_marker": "other"}, Action.REFUSED),
        # died after creating the armed marker, before the apply: revert (releases the marker)
        ({"arm": "claimed", "apply": "none"}, Action.TRIGGER_ROLLBACK),
        # the apply is still at work: wait, even past the controller's guesses
        ({"apply": "running", "apply_alive": True}, Action.WAIT),
        ({"apply": "running", "apply_alive": False}, Action.TRIGGER_ROLLBACK),  # it died
        ({"apply": "none", "arm": "started", "arm_alive": True}, Action.WAIT),
        ({"apply": "none", "arm": "armed"}, Action.TRIGGER_ROLLBACK),  # never launched
        ({"apply": "failed:3"}, Action.WAIT),  # its own rollback is about to decide
        # rolled back: verify only once nothing of the transaction runs any more
        ({"decision": "rolled_back timer", "rollback_alive": True}, Action.WAIT),
        (
            {
                "decision": "rolled_back timer",
                "rollback": "done failed=0",
                "apply_alive": True,
                "apply": "running",
            },
            Action.WAIT,
        ),
        ({"decision": "rolled_back timer", "rollback": "done failed=0"}, Action.VERIFY_ROLLBACK),
        ({"decision": "rolled_back timer"}, Action.STUCK),  # rollback died half-way
        ({"staged": False}, Action.STUCK),
        # the host's uptime could not be read: no remaining time known; the decision lock still
        # stands between the disarm and the timer, so confirm
        ({"remaining": None}, Action.CONFIRM),
        ({"remaining": 4}, Action.CONFIRM),  # more than the 3 s margin
        ({"remaining": 3}, Action.WAIT_TIMER),  # exactly the margin is not more than it
        ({"remaining": 3, "timer_alive": False}, Action.TRIGGER_ROLLBACK),
        ({"apply": "stopped:4"}, Action.WAIT),  # stopped by a decision: the rollback is at work
        # armed marker created, then the arm script failed (not "another one armed"): revert
        ({"arm": "failed 11", "apply": "none", "armed_marker": "this"}, Action.TRIGGER_ROLLBACK),
        # claimed, then died before creating the armed marker: nothing was armed
        ({"arm": "claimed", "apply": "none", "armed_marker": "none"}, Action.NOTHING_CHANGED),
        ({"arm": "claimed", "apply": "none", "armed_marker": "other"}, Action.NOTHING_CHANGED),
        # applied while another process of the transaction still runs (the arm script waiting
        # on the apply's status, the apply exiting): the change is complete, confirm; a rollback
        # starting meanwhile loses or wins the decision lock against the disarm, never both
        ({"arm_alive": True}, Action.CONFIRM),
        ({"apply_alive": True}, Action.CONFIRM),
        ({"rollback_alive": True}, Action.CONFIRM),
    ],
)
def test_next_action(changes: dict[str, object], action: Action) -> None:
    assert next_action(state(**changes), margin=3.0) is action


def test_parse_state_reads_the_markers() -> None:
    marks = {
        "staged": "yes", "claim": "arm", "arm": "failed 10", "arm_alive": "no",
        "arm_error": "refused: transaction X is already armed", "apply": "none",
        "apply_alive": "no", "decision": "rolled_back timer", "rollback": "done failed=0",
        "rollback_alive": "no", "timer_alive": "no", "remaining": "-4", "armed_marker": "other",
    }  # fmt: skip
    parsed = parse_state(marks)
    assert parsed.remaining == -4 and parsed.rolled_back and not parsed.busy
    assert parsed.arm_error.startswith("refused")
    assert parse_state({"remaining": "none"}).remaining is None
    assert parse_state({}).claim == "none"


def test_the_state_script_samples_liveness_before_it_reads_the_status_files() -> None:
    """A process seen gone has written its last status, so a status read after the liveness
    check is final. The other order let an apply that wrote "applied" and exited between the
    two reads look like one that died half-way (seen in CI: a confirmed change rolled back as
    "never completed")."""
    from fleetbr.transaction.scripts import state_script

    text = state_script("20261129T000000-abcdef", nonce="ab" * 16)
    for name, status in (("arm", "arm.status"), ("apply", "apply.status"),
                         ("rollback", "rollback.status")):  # fmt: skip
        sampled = text.index(f"{name}_alive=$(alive {name})")
        assert sampled < text.index(f'cat "$TX/{status}"'), name


EVERY_MARKER = {
    "staged": "yes", "claim": "arm", "arm": "done", "arm_alive": "yes", "arm_error": "x",
    "apply": "applied", "apply_alive": "yes", "decision": "confirmed",
    "rollback": "done failed=1", "rollback_alive": "yes", "timer_alive": "yes",
    "remaining": "12", "writable": "no", "armed_marker": "this",
}  # fmt: skip


def test_parse_state_reads_every_marker_the_state_script_prints() -> None:
    from fleetbr.transaction.scripts import state_script

    nonce = "ab" * 16
    script = state_script("20261129T000000-abcdef", nonce=nonce)
    printed = set(re.findall(rf'echo "@@{nonce} ([a-z_]+) ', script))
    assert printed - {"cancel"} == EVERY_MARKER.keys()
    assert parse_state(EVERY_MARKER) == HostTxState(
        staged=True, claim=Claim.ARM, arm=ArmStep.DONE, arm_code=None, arm_alive=True,
        arm_error="x", apply=ApplyStep.APPLIED, apply_step=None, apply_alive=True,
        decision=Decision.CONFIRMED, reason="", rollback=RollbackStep.DONE, failed_steps=1,
        rollback_alive=True, timer_alive=True, remaining=12, writable=False,
        armed_marker=Marker.THIS,
    )  # fmt: skip


NOTHING = HostTxState(
    staged=False, claim=Claim.NONE, arm=ArmStep.NONE, arm_code=None, arm_alive=False,
    arm_error="", apply=ApplyStep.NONE, apply_step=None, apply_alive=False,
    decision=Decision.NONE, reason="", rollback=RollbackStep.NONE, failed_steps=0,
    rollback_alive=False, timer_alive=False, remaining=None, writable=True,
    armed_marker=Marker.NONE,
)  # fmt: skip


def test_parse_state_of_missing_or_empty_markers_is_nothing_known() -> None:
    """A marker the script did not print, or printed empty: never read as yes, a claim, a
    decision or a time; the folder counts as writable unless the script said it is not."""
    assert parse_state({}) == NOTHING
    assert parse_state(dict.fromkeys(EVERY_MARKER, "")) == NOTHING


@pytest.mark.parametrize(
    ("marks", "changes"),
    [
        ({"staged": "no", "arm_alive": "no", "writable": "yes"}, {}),
        ({"staged": "YES", "timer_alive": "1", "apply_alive": "true"}, {}),  # only "yes" is yes
        ({"remaining": "-4"}, {"remaining": -4}),
        ({"remaining": "0"}, {"remaining": 0}),
        ({"remaining": "none"}, {}),
        ({"remaining": "-"}, {}),
        ({"remaining": "12s"}, {}),
        ({"remaining": "X5"}, {}),
    ],
)
def test_parse_state_values(marks: dict[str, str], changes: dict[str, object]) -> None:
    assert parse_state(marks) == dataclasses.replace(NOTHING, **changes)  # type: ignore[arg-type]


def test_summary_names_every_part_of_the_state() -> None:
    assert state(remaining=None, timer_alive=False).summary() == (
        "claim=arm arm=done apply=applied decision=none rollback=none timer=off left=?"
    )
    assert state(decision="rolled_back timer", rollback="done failed=0").summary() == (
        "claim=arm arm=done apply=applied decision=rolled_back timer rollback=done failed=0 "
        "timer=on left=30s"
    )


def test_the_scripts_exit_with_the_codes_the_controller_reads() -> None:
    """The stage and arm templates get their exit codes from ExitCode (spelt once)."""
    from fleetbr.transaction import scripts
    from fleetbr.transaction.hoststate import ExitCode

    arm = scripts.arm_apply_script(TXID, 30, use_systemd=False, wait=1.0, nonce="ab" * 16)
    for code in (ExitCode.ARMED_ELSEWHERE, ExitCode.SCRIPTS_CHANGED, ExitCode.CANCELLED):
        assert f"refuse {code.value} " in arm, code
    assert (
        f"exit {ExitCode.CANCELLED.value}\n" in arm and f"exit {ExitCode.NO_CLAIM.value}\n" in arm
    )
    assert parse_state(
        {"claim": "arm", "staged": "yes", "arm": f"failed {ExitCode.ARMED_ELSEWHERE.value}"}
    ).refused
    assert not parse_state({"arm": f"failed {ExitCode.SCRIPTS_CHANGED.value}"}).refused


@pytest.mark.parametrize(
    ("marks", "text"),
    [
        ({"arm": "failed 11", "apply": "stopped:4", "decision": "rolled_back timer",
          "rollback": "done failed=2"},
         "claim=none arm=failed 11 apply=stopped:4 decision=rolled_back timer "
         "rollback=done failed=2 timer=off left=?"),
        ({"claim": "sideways", "arm": "odd", "apply": "x", "decision": "maybe", "rollback": "half"},
         "claim=other arm=other apply=other decision=other rollback=other timer=off left=?"),
    ],
)  # fmt: skip
def test_the_summary_spells_the_state_as_the_host_did(marks: dict[str, str], text: str) -> None:
    assert parse_state(marks).summary() == text


def test_words_parse_into_types_with_their_numbers() -> None:
    state = parse_state({"arm": "failed 10", "apply": "failed:3", "decision": "rolled_back  reboot",
                         "rollback": "done failed=x"})  # fmt: skip
    assert (state.arm, state.arm_code, state.arm_text) == (ArmStep.FAILED, 10, "failed 10")
    assert (state.apply, state.apply_step) == (ApplyStep.FAILED, 3)
    assert (state.decision, state.reason, state.decision_text) == (
        Decision.ROLLED_BACK, "reboot", "rolled_back reboot")  # fmt: skip
    assert (state.rollback, state.failed_steps, state.rollback_ended) == (
        RollbackStep.DONE,
        0,
        True,
    )
    assert parse_state({"arm": "done 3"}).arm_code is None  # a number only on a failure
    assert parse_state({"apply": "applied:3"}).apply_step is None
    assert parse_state({"decision": "confirmed now"}).reason == ""
    assert parse_state({"rollback": "half failed=2"}).failed_steps == 0
    other = parse_state({"decision": "maybe"})
    assert other.decided and not other.confirmed and not other.rolled_back
    assert parse_state({"armed_marker": "mine"}).armed_marker is Marker.OTHER
    assert parse_state({"armed_marker": "other"}).armed_marker is Marker.OTHER
    assert parse_state({"remaining": "-12"}).remaining == -12
    assert parse_state({"remaining": "1-2"}).remaining is None


def test_journal_events_parse_into_types() -> None:
    from fleetbr.transaction.hoststate import JournalEvent, parse_event

    assert parse_event("rolled_back") is JournalEvent.ROLLED_BACK
    assert parse_event("rollback_failed") is JournalEvent.ROLLBACK_FAILED
    assert parse_event("rolling_back") is JournalEvent.OTHER
