"""The resolver loop (``fleetbr.transaction.protocol``) against scripted host states and failures.

No SSH: a :class:`~tests.unit.fakehost.FakeHost` answers the state, facts, disarm and rollback
scripts with the markers the real scripts print, on a virtual clock, and fails the test on any
script it was not told to expect. Each test pins one row of docs/safety.md's "the host says / the
controller does" table or one failure of the protocol.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleetbr.errors import SessionLost
from fleetbr.facts.model import HostFacts
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.hoststate import parse_state
from fleetbr.transaction.protocol import (
    MARGIN,
    POLL,
    ROLLBACK_GRACE,
    Transaction,
    _arm_and_apply,
    _prepare,
    _reason,
    min_timeout,
    resolve,
    rollback_finished,
    run_transaction,
    wait_settled,
)
from fleetbr.transaction.verdict import RollbackCheck, ScriptOutcome
from fleetbr.transport import Session
from tests.unit.fakehost import (
    GATEWAY_DOWN,
    GATEWAY_UP,
    PLAIN_FACTS,
    PLAN,
    ROLLED_BACK,
    TIMEOUT,
    TXID_RE,
    FakeConnection,
    FakeHost,
    Reply,
    ScriptedChange,
    marks,
    parsed,
    script_nonce,
    spec,
    stage_reply,
    state,
)
from tests.unit.test_plan_support import facts

TXID = "20261206T014500-abcdef"


def transaction(
    host: FakeHost, change: ScriptedChange | None = None, *, probes: tuple[str, ...] = ()
) -> Transaction:
    """A transaction just armed on ``host`` (its timer fires in TIMEOUT seconds)."""
    return Transaction(
        spec(), change or ScriptedChange(), before=facts(), plan=PLAN, txid=TXID,
        probes=list(probes), deadline=host.clock.now() + TIMEOUT, clock=host.clock,
    )  # fmt: skip


async def run(host: FakeHost, tx: Transaction, *, applied: bool = False) -> HostResult:
    result = await resolve(tx, applied=applied, transport=host)
    assert host.left() == {}, "the controller skipped scripts the test expected"
    assert all(conn.closed for conn in host.opened), "a connection was left open"
    return result


def rolled_back(**changes: str) -> str:
    return state(**{**ROLLED_BACK, **changes})


def triggered(host: FakeHost) -> list[str]:
    """The reasons of the rollbacks the controller started."""
    found = []
    for call in host.calls:
        if call.label == "rollback":
            match = re.search(r'rollback\.sh" \'?([A-Za-z-]+)', call.script)
            found.append(match.group(1) if match else "?")
    return found


# --- confirm ------------------------------------------------------------------------------


async def test_an_applied_host_is_confirmed_over_a_fresh_connection() -> None:
    host = FakeHost().on("state", state()).on("facts", PLAIN_FACTS)
    host.on("disarm", marks({"decision": "confirmed"}))
    change = ScriptedChange()
    tx = transaction(host, change, probes=(GATEWAY_UP,))
    result = await run(host, tx)
    assert (result.status, result.message) == (Status.CONFIRMED, f"confirmed {TXID}")
    assert result.data["decision"] == "confirmed"
    assert host.labels() == ["state", "facts", "disarm"]
    assert GATEWAY_UP in host.calls[1].script  # the gateway is probed again after the change
    assert f"TXID={TXID}" in host.calls[2].script
    ((_, conn, txid, plan, after),) = [a for a in change.seen if a[0] == "confirm_problems"]
    assert (conn, txid, plan) == (host.opened[0], TXID, PLAN)
    assert isinstance(after, HostFacts) and after.hostname == "plain"  # the facts just read
    assert re.fullmatch(r"\d\d:\d\d:\d\d confirmed and disarmed", tx.log[-1])


async def test_applied_at_arm_time_goes_straight_to_confirm() -> None:
    host = FakeHost().on("facts", PLAIN_FACTS).on("disarm", marks({"decision": "confirmed"}))
    result = await run(host, transaction(host), applied=True)
    assert result.status is Status.CONFIRMED
    assert host.labels() == ["facts", "disarm"]


async def test_straight_to_confirm_only_once() -> None:
    """The disarm lost (the timer decided first): the next step looks at the host."""
    host = FakeHost().on("facts", PLAIN_FACTS, PLAIN_FACTS)
    host.on("disarm", marks({"decision": "rolled_back timer"})).on("state", rolled_back())
    result = await run(host, transaction(host), applied=True)
    assert result.status is Status.ROLLED_BACK
    assert host.labels() == ["facts", "disarm", "state", "facts"]


@pytest.mark.parametrize(
    "answer",
    [
        "rolled_back timer",  # the timer took the decision lock first
        "not-applied running",  # the disarm script found the apply not finished
        "",  # no answer at all
    ],
)
async def test_only_a_confirmed_disarm_confirms(answer: str) -> None:
    """A disarm that did not take the decision is never reported confirmed: the next look at
    the host says what happened instead (here: the timer's rollback, then verified)."""
    host = FakeHost().on("state", state(), rolled_back()).on("facts", PLAIN_FACTS, PLAIN_FACTS)
    host.on("disarm", marks({"decision": answer}) if answer else "")
    tx = transaction(host)
    result = await run(host, tx)
    assert result.status is Status.ROLLED_BACK, result.message
    assert host.labels() == ["state", "facts", "disarm", "state", "facts"]
    assert any(line.endswith(f" not confirmed: {answer}") for line in tx.log)


async def test_a_gateway_that_stops_answering_rolls_the_host_back_at_once() -> None:
    host = FakeHost().on("state", state(), rolled_back(decision="rolled_back confirm-failed"))
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("rollback", "")
    result = await run(host, transaction(host, probes=(GATEWAY_UP, GATEWAY_DOWN)))
    assert result.status is Status.ROLLED_BACK
    assert triggered(host) == ["confirm-failed"]
    assert f"gateway {GATEWAY_DOWN} no longer answers" in result.message
    assert "disarm" not in host.labels()


async def test_a_change_that_does_not_verify_is_rolled_back_with_its_problems() -> None:
    host = FakeHost().on("state", state(), rolled_back(decision="rolled_back confirm-failed"))
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("rollback", "")
    change = ScriptedChange(problems=["bridge br0 does not exist", "route x missing"])
    tx = transaction(host, change)
    result = await run(host, tx)
    assert result.status is Status.ROLLED_BACK
    assert triggered(host) == ["confirm-failed"]
    assert result.message == "rolled back: bridge br0 does not exist; route x missing"
    assert any(line.endswith(" confirm found problems; rolling back now: bridge br0 does not "
                             "exist; route x missing") for line in tx.log)  # fmt: skip


async def test_the_result_records_when_each_phase_began_and_each_steps_inverse() -> None:
    """The HTML report's timeline and steps (docs/report.md): the phases the resolver went
    through, in order, on the wall clock; every planned step beside its inverse."""
    host = FakeHost().on("state", state(), rolled_back(decision="rolled_back confirm-failed"))
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("rollback", "")
    tx = transaction(host, ScriptedChange(problems=["bridge br0 does not exist"]))
    before = time.time()
    result = await run(host, tx)
    phases = [phase for phase, _ in result.data["timeline"]]
    assert phases == ["confirm", "rollback", "verify"]
    times = [at for _, at in result.data["timeline"]]
    assert before - 0.01 <= times[0] <= times[1] <= times[2] <= time.time() + 0.01
    assert result.data["inverses"] == [
        None if step.inverse is None else step.inverse.description for step in PLAN.steps
    ]
    assert any(inverse is not None for inverse in result.data["inverses"])


# --- verifying a rollback -----------------------------------------------------------------


async def test_a_rollback_whose_steps_failed_is_not_rolled_back() -> None:
    """The host matches its snapshot as far as the facts show, but two rollback steps failed:
    that is a failure, never "rolled back"."""
    host = FakeHost().on("state", rolled_back(rollback="done failed=2")).on("facts", PLAIN_FACTS)
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED
    assert "2 rollback step(s) failed on the host" in result.message
    assert result.message.startswith("rolled back but not at its snapshot")


def with_kept(text: str, txid: str, *paths: str) -> str:
    """Facts ``text`` with a ``kept`` section: ``txid``'s rollback kept edits to ``paths``."""
    lines = "".join(f"kept {txid} {path.replace('/', '%')}\n" for path in paths)
    return text.replace("@@fleetbr-end", f"@@fleetbr-section kept\n{lines}@@fleetbr-end")


@dataclass
class OutcomeChange(ScriptedChange):
    """A change whose own scripts (an operator's command) left an outcome, and which records
    the session and txid it was asked over."""

    asked: list[tuple[object, str]] = field(default_factory=list)

    async def script_outcome(self, conn: Session, txid: str) -> ScriptOutcome:
        self.asked.append((conn, txid))
        return ScriptOutcome({"undo": {"exit_status": 3}}, "the undo exited 3")


async def test_a_failed_rollback_names_its_log_its_scripts_outcome_and_the_kept_edits() -> None:
    after = with_kept(PLAIN_FACTS, TXID, "/etc/network/interfaces")
    host = FakeHost().on("state", rolled_back(rollback="done failed=1")).on("facts", after)
    change = OutcomeChange()
    result = await run(host, transaction(host, change))
    assert result.status is Status.FAILED
    assert result.message.startswith(
        "rolled back but not at its snapshot: 1 rollback step(s) failed on the host "
        f"(see /var/lib/fleetbr/tx/{TXID}/apply.log) (the undo exited 3); kept what someone "
        "else wrote to /etc/network/interfaces during the window "
        f"(in /var/lib/fleetbr/kept/{TXID}/) before restoring"
    ), result.message
    assert result.data["kept"] == ["/etc/network/interfaces"]
    assert result.data["undo"] == {"exit_status": 3}
    assert result.data["verdict"]["failed_steps"] == 1
    [(conn, txid)] = change.asked
    assert txid == TXID and conn in host.opened, "asked over this transaction's own session"


async def test_kept_edits_of_another_transaction_are_not_this_ones() -> None:
    after = with_kept(PLAIN_FACTS, "20261206T000000-000000", "/etc/network/interfaces")
    host = FakeHost().on("state", rolled_back()).on("facts", after)
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK
    assert "kept" not in result.data and "kept what" not in result.message


async def test_a_rollback_with_no_failed_step_that_matches_its_snapshot_is_rolled_back() -> None:
    host = FakeHost().on("state", rolled_back()).on("facts", PLAIN_FACTS)
    tx = transaction(host)
    result = await run(host, tx)
    assert result.status is Status.ROLLED_BACK
    assert result.data["reason"].startswith("the host's timer fired before a confirmation")
    assert result.data["decision"] == "rolled_back timer"
    assert "differences" not in result.data  # none to list
    assert tx.log[-1].endswith(" host rolled back (rolled_back timer) and matches its snapshot")


async def test_a_host_not_at_its_snapshot_fails_with_the_differences() -> None:
    host = FakeHost().on("state", rolled_back()).on("facts", PLAIN_FACTS)
    change = ScriptedChange(restore=RollbackCheck(problems=["address x missing", "route y new"]))
    result = await run(host, transaction(host, change))
    assert result.status is Status.FAILED
    assert result.message == "rolled back but not at its snapshot: address x missing; route y new"


async def test_differences_outside_the_change_are_reported_not_judged() -> None:
    host = FakeHost().on("state", rolled_back()).on("facts", PLAIN_FACTS)
    change = ScriptedChange(restore=RollbackCheck(notes=["link vnet0 appeared"]))
    result = await run(host, transaction(host, change))
    assert result.status is Status.ROLLED_BACK
    assert result.data["differences"] == ["link vnet0 appeared"]


async def test_a_rollback_still_running_is_waited_for_before_it_is_verified() -> None:
    host = FakeHost().on(
        "state",
        rolled_back(rollback="none", rollback_alive="yes"),
        rolled_back(rollback="none", rollback_alive="yes"),
        rolled_back(),
    )
    host.on("facts", PLAIN_FACTS)
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK
    assert host.labels() == ["state", "state", "state", "facts"]
    assert host.clock.slept == [POLL, POLL]


# --- the host cannot finish the change ----------------------------------------------------


async def test_an_apply_that_died_is_rolled_back_by_the_controller() -> None:
    host = FakeHost().on(
        "state",
        state(apply="running", apply_alive="no"),
        rolled_back(decision="rolled_back unfinished"),
    )
    host.on("rollback", "").on("facts", PLAIN_FACTS)
    tx = transaction(host)
    result = await run(host, tx)
    assert triggered(host) == ["unfinished"]
    assert result.status is Status.ROLLED_BACK
    assert result.data["reason"] == "the change never completed on the host"
    dead = parse_state(parsed(state(apply="running", apply_alive="no"))).summary()
    assert any(line.endswith(f" nothing on the host will finish the change: {dead}")
               for line in tx.log)  # fmt: skip


async def test_applied_too_late_to_confirm_waits_for_the_timer() -> None:
    host = FakeHost().on("state", state(remaining="2"), rolled_back()).on("facts", PLAIN_FACTS)
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK
    assert host.clock.slept == [3.0]  # the timer's 2 s and one more: never a confirm
    assert host.labels() == ["state", "state", "facts"]


async def test_arming_failed_reports_nothing_changed() -> None:
    host = FakeHost().on(
        "state",
        state(arm="failed 11", arm_error="staged scripts changed", apply="none",
              timer_alive="no", remaining="none", armed_marker="none"),
    )  # fmt: skip
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED
    assert result.message == "arming failed: staged scripts changed; nothing changed"


async def test_another_transaction_armed_is_a_refusal() -> None:
    error = "refused: transaction 20261206T000000-123456 is already armed"
    host = FakeHost().on(
        "state",
        state(arm="failed 10", arm_error=error, apply="none", timer_alive="no",
              remaining="none", armed_marker="other"),
    )  # fmt: skip
    result = await run(host, transaction(host))
    assert result.status is Status.REFUSED
    assert result.message == error


async def test_a_refusal_without_a_reason_says_another_transaction_is_armed() -> None:
    host = FakeHost().on("state", state(arm="failed 10", apply="none", armed_marker="other"))
    result = await run(host, transaction(host))
    assert (result.status, result.message) == (Status.REFUSED, "another transaction is armed")


async def test_an_arm_script_that_never_started_is_cancelled() -> None:
    never = {"claim": "none", "arm": "none", "apply": "none", "timer_alive": "no",
             "remaining": "none", "armed_marker": "none"}  # fmt: skip
    host = FakeHost().on("state", state(**never), state(**{**never, "claim": "cancel"}))
    host.on("state", state(**{**never, "claim": "cancel"}))
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED
    assert "it was cancelled; nothing changed" in result.message
    assert "ln -s cancel" in host.calls[1].script and "ln -s cancel" not in host.calls[0].script


# --- stalls -------------------------------------------------------------------------------

ARMING_FOREVER = {"arm": "claimed", "arm_alive": "yes", "apply": "none", "timer_alive": "no",
                  "remaining": "none", "armed_marker": "none"}  # fmt: skip


@pytest.mark.parametrize(("command_timeout", "stall"), [(20.0, 30.0), (45.0, 45.0)])
async def test_a_host_that_stops_progressing_is_failed_without_deciding(
    command_timeout: float, stall: float
) -> None:
    """A hung arm script: nothing moves on the host and no timer runs. After max(30 s,
    command_timeout) without progress the controller gives up, undecided: no rollback, no
    disarm, only looks."""
    host = FakeHost().on("state", Reply(state(**ARMING_FOREVER), until=10_000.0))
    tx = transaction(host)
    tx.spec = spec(command_timeout=command_timeout)
    start = host.clock.now()
    result = await resolve(tx, transport=host)
    assert result.status is Status.FAILED
    assert f"not progressing for {stall:.0f}s" in result.message
    assert result.data["host_state"] == parse_state(parsed(state(**ARMING_FOREVER))).summary()
    assert "fleetbr rollback" in result.message
    assert set(host.labels()) == {"state"}
    waited = host.clock.now() - start
    assert stall < waited <= stall + POLL  # gives up on the first look past the stall


async def test_progress_restarts_the_stall_clock() -> None:
    """The arm script moves on at t+25 (claimed -> armed, apply started): the stall counts from
    there, so a host that keeps moving is never given up on."""
    host = FakeHost()
    start = host.clock.now()
    host.on("state", Reply(state(**ARMING_FOREVER), until=start + 25))
    moved = {**ARMING_FOREVER, "arm": "started", "armed_marker": "this"}
    host.on("state", Reply(state(**moved), until=start + 10_000))
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED and "not progressing" in result.message
    assert 55 < host.clock.now() - start <= 55 + 2 * POLL


async def test_a_slow_apply_under_a_running_timer_is_not_a_stall() -> None:
    """The apply runs for 50 s without any visible progress, but the host's timer is running
    with time left: the controller keeps waiting (the timer bounds it), then confirms."""
    host = FakeHost()
    start = host.clock.now()

    def running(_: str) -> str:
        left = int(start + 60 - host.clock.now())
        return state(apply="running", apply_alive="yes", remaining=str(left))

    host.on("state", Reply(running, until=start + 50), state(remaining="10"))
    host.on("facts", PLAIN_FACTS).on("disarm", marks({"decision": "confirmed"}))
    result = await run(host, transaction(host))
    assert result.status is Status.CONFIRMED, result.message


async def test_a_timer_with_one_second_left_still_holds_off_the_stall() -> None:
    host = FakeHost()
    start = host.clock.now()

    def running(_: str) -> str:  # the timer fires at start + 31.5
        return state(apply="running", apply_alive="yes",
                     remaining=str(int(start + 31.5 - host.clock.now())))  # fmt: skip

    host.on("state", Reply(running, until=start + 31), rolled_back()).on("facts", PLAIN_FACTS)
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK, result.message


async def test_a_timer_past_its_deadline_does_not_hold_off_the_stall() -> None:
    """Alive but with no time left (remaining 0 and below): it is not coming, so the stall
    check applies."""
    host = FakeHost().on(
        "state",
        Reply(state(apply="failed:2", remaining="0", rollback="none"), until=10_000.0),
    )
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED and "not progressing" in result.message


async def test_stuck_is_reported_not_decided() -> None:
    """Decided rolled back, but the rollback never finished and nothing runs (STUCK): the
    controller neither verifies nor starts anything; it reports the host undecided."""
    host = FakeHost().on("state", Reply(rolled_back(rollback="none"), until=10_000.0))
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED
    assert "undecided on the host and not progressing" in result.message
    assert set(host.labels()) == {"state"}


async def test_a_transaction_folder_that_is_gone_is_stuck() -> None:
    host = FakeHost().on("state", Reply(marks({"staged": "no"}), until=10_000.0))
    result = await run(host, transaction(host))
    assert result.status is Status.FAILED and "not progressing" in result.message
    assert set(host.labels()) == {"state"}


# --- connections --------------------------------------------------------------------------


async def test_a_connection_lost_mid_step_is_replaced_and_the_host_asked_again() -> None:
    host = FakeHost().on("state", state(), state())
    host.on("facts", Reply(error=SessionLost("connection lost during facts")), PLAIN_FACTS)
    host.on("disarm", marks({"decision": "confirmed"}))
    tx = transaction(host)
    result = await run(host, tx)
    assert result.status is Status.CONFIRMED
    assert host.labels() == ["state", "facts", "state", "facts", "disarm"]
    assert len(host.opened) == 2
    assert [c.script for c in host.calls if c.label == "disarm"]
    assert any("connection lost while resolving" in line for line in tx.log)


async def test_a_connection_lost_during_the_disarm_never_disarms_twice() -> None:
    """The disarm may have taken the decision before the session died: the next look says so."""
    host = FakeHost().on("state", state(), state(decision="confirmed", timer_alive="no"))
    host.on("facts", PLAIN_FACTS)
    host.on("disarm", Reply(error=SessionLost("connection lost during disarm")))
    result = await run(host, transaction(host))
    assert (result.status, result.message) == (Status.CONFIRMED, f"confirmed {TXID}")
    assert result.data["decision"] == "confirmed"
    assert host.labels().count("disarm") == 1


async def test_unreachable_after_the_rollback_budget() -> None:
    """No connection before the deadline, none for the rollback budget after the timer fired:
    the host is unreachable, and the controller tried for as long as it promises."""
    host = FakeHost().refuse(math.inf, math.inf)
    tx = transaction(host)
    deadline = tx.deadline
    result = await run(host, tx, applied=True)
    assert result.status is Status.UNREACHABLE
    assert result.message == (
        "UNREACHABLE: no connection since the change, even after its rollback should have run; "
        "last error: 198.51.100.10: connection refused"
    )
    (t1, _, budget1), (t2, _, budget2) = host.connects
    assert budget1 == pytest.approx(deadline - MARGIN - t1)  # until shortly before the deadline
    assert t2 >= deadline + ROLLBACK_GRACE  # then only once the timer's rollback had its time
    assert budget2 == max(30.0, TIMEOUT, 2 * tx.spec.ssh.connect_timeout)
    assert host.calls == []


async def test_unreachable_until_the_timer_fired_then_the_rollback_is_verified() -> None:
    """The arm said "applied", but no connection came before the deadline: once one does, the
    controller asks the host (it never goes straight to confirm past the deadline, where only
    the decision lock would stand between a late confirm and the timer's rollback)."""
    host = FakeHost().refuse(math.inf).on("state", rolled_back()).on("facts", PLAIN_FACTS)
    tx = transaction(host)
    result = await run(host, tx, applied=True)
    assert result.status is Status.ROLLED_BACK
    assert result.data["reason"].startswith("no fresh SSH connection before the deadline")
    assert host.connects[1][0] >= tx.deadline + ROLLBACK_GRACE


async def test_a_connection_before_the_deadline_gets_the_time_left() -> None:
    """The host said its timer fires in 12 s: the next connect may try until 3 s before."""
    host = FakeHost().on("state", state(remaining="12"))
    host.on("facts", Reply(error=SessionLost("cut")))
    host.refuse(1.0, first=1).on("state", rolled_back()).on("facts", PLAIN_FACTS)
    start = host.clock.now()  # the look that says 12 s
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK
    t, _, budget = host.connects[1]
    assert budget == pytest.approx(start + 12 - MARGIN - t)  # not the 40 s of the task
    assert host.connects[2][0] >= start + 12 + ROLLBACK_GRACE


# --- stage --------------------------------------------------------------------------------


async def prepare(
    spoil: str | None,
    change: ScriptedChange | None = None,
    stage: Reply | None = None,
    *,
    sudo: bool = False,
) -> tuple[HostResult | None, Transaction, FakeHost]:
    host = FakeHost()
    tx = Transaction(spec(), change or ScriptedChange(), clock=host.clock)
    tx.spec = dataclasses.replace(tx.spec, ssh=dataclasses.replace(tx.spec.ssh, sudo=sudo))
    host.on("facts", PLAIN_FACTS).on("stage", stage or stage_reply(tx, spoil=spoil))
    conn = FakeConnection(tx.spec, host)
    return await _prepare(tx, conn), tx, host


async def test_a_stage_whose_checksums_match_goes_on_to_arm() -> None:
    result, tx, host = await prepare(None)
    assert result is None
    assert host.labels() == ["facts", "stage"]
    assert tx.probes == [GATEWAY_UP] if GATEWAY_UP in PLAN.probes else tx.probes == []


@pytest.mark.parametrize("spoiled", ["apply.sh", "rollback.sh", "timer.sh"])
async def test_a_checksum_mismatch_at_stage_stops_before_arming(spoiled: str) -> None:
    result, _, host = await prepare(spoiled)
    assert result is not None and result.status is Status.FAILED
    assert result.message == "staged scripts do not match their checksums; nothing changed"
    assert host.labels() == ["facts", "stage"]


# --- arm, the report, the settled state ---------------------------------------------------


async def test_the_arm_hears_the_hosts_timer_and_reports_applied() -> None:
    host = FakeHost().on("arm+apply", marks({"armed": "37", "apply": "applied"}))
    tx = transaction(host)
    tx.before = facts()
    armed: list[str] = []
    tx.on_armed = armed.append
    conn = FakeConnection(tx.spec, host)
    assert await _arm_and_apply(tx, conn) is True
    assert armed == ["hv01"]
    assert tx.armed_at == host.clock.now()
    assert tx.deadline == host.clock.now() + 37  # the host's word, not the task's 40 s
    assert "armed, timer fires in 37s; apply applied" in tx.log[-1]
    # facts(): PID 1 is systemd; the arm waits a quarter of the timeout for the apply's status
    nonce = script_nonce(host.calls[0].script)
    assert nonce is not None
    expected = scripts.arm_apply_script(TXID, TIMEOUT, use_systemd=True, wait=10.0, nonce=nonce)
    assert host.calls[0].script == expected


@pytest.mark.parametrize(("timeout", "wait"), [(2, 1.0), (20, 5.0), (60, 10.0)])
async def test_the_arm_waits_a_quarter_of_the_timeout_between_1_and_10_s(
    timeout: int, wait: float
) -> None:
    host = FakeHost().on("arm+apply", marks({"armed": str(timeout), "apply": "applied"}))
    tx = transaction(host, ScriptedChange(timeout=timeout))
    tx.before = dataclasses.replace(facts(), pid1_systemd=False)
    assert await _arm_and_apply(tx, FakeConnection(tx.spec, host)) is True
    nonce = script_nonce(host.calls[0].script)
    assert nonce is not None
    expected = scripts.arm_apply_script(TXID, timeout, use_systemd=False, wait=wait, nonce=nonce)
    assert host.calls[0].script == expected


@pytest.mark.parametrize(
    ("reply", "note"),
    [
        (Reply(marks({"armed": "40", "apply": "running"})), "apply running"),
        (Reply(marks({"armed": "-2", "apply": "failed:3"})), "timer fires in -2s"),
        (Reply("", exit_status=10, stderr="refused: another transaction"), "arm script: refused"),
        (Reply(error=SessionLost("cut")), "arm+apply session ended early (cut)"),
        (Reply(marks({"armed": "40"})), "armed, timer fires in 40s; apply unknown"),
        (Reply(marks({"armed": "X5", "apply": "applied"}), stderr="odd"), "arm script: odd"),
    ],
)
async def test_what_the_arm_said_is_noted_and_the_resolver_will_ask(
    reply: Reply, note: str
) -> None:
    host = FakeHost().on("arm+apply", reply)
    tx = transaction(host)
    applied = await _arm_and_apply(tx, FakeConnection(tx.spec, host))
    assert applied is (reply.stderr == "odd")  # an unreadable timer: the apply's word still heard
    assert note in tx.log[-1]
    assert tx.deadline == host.clock.now() + (-2 if "-2s" in note else TIMEOUT)


async def test_the_result_carries_the_transaction() -> None:
    host = FakeHost()
    tx = transaction(host)
    tx.armed_at = host.clock.now()
    tx.note("something happened")
    await host.clock.sleep(2.12345)
    result = tx.result(Status.FAILED, "why", extra=1)
    assert (result.host, result.status, result.message) == ("hv01", Status.FAILED, "why")
    assert result.data["txid"] == TXID and result.data["extra"] == 1
    assert result.data["events"][0].endswith(" something happened")
    assert result.data["steps"] == [s.description for s in PLAN.steps]
    assert result.data["window"] == 2.123  # milliseconds
    bare = Transaction(spec(), ScriptedChange()).result(Status.REFUSED, "no")
    assert bare.data == {"txid": None, "events": []}


def test_min_timeout_leaves_room_to_reconnect_twice_probe_and_disarm() -> None:
    assert min_timeout(spec(connect_timeout=5.0).ssh) == 17  # 2 * 5 + 4 + 3
    assert min_timeout(spec(connect_timeout=2.2).ssh) == 12  # rounded up: 11.4


@pytest.mark.parametrize(
    ("changes", "finished"),
    [
        (ROLLED_BACK, True),
        ({**ROLLED_BACK, "rollback": "none"}, False),  # decided, rollback not done
        ({**ROLLED_BACK, "rollback_alive": "yes"}, False),
        ({**ROLLED_BACK, "apply_alive": "yes"}, False),
        ({**ROLLED_BACK, "arm_alive": "yes"}, False),
        ({"decision": "confirmed", "rollback": "done failed=0"}, False),
    ],
)
def test_rollback_finished(changes: dict[str, str], finished: bool) -> None:
    assert rollback_finished(parse_state(parsed(state(**changes)))) is finished


async def test_wait_settled_waits_for_the_decision_and_the_rollback() -> None:
    host = FakeHost().on(
        "state",
        state(apply="running", apply_alive="yes"),
        state(),  # undecided, nothing running: not settled
        rolled_back(rollback="none"),  # decided, the rollback's status not written yet
        rolled_back(),
    )
    conn = FakeConnection(spec(), host)
    settled = await wait_settled(conn, TXID, patience=60.0)
    assert rollback_finished(settled)
    assert host.left() == {}
    assert not any("ln -s cancel" in call.script for call in host.calls)  # only looks


async def test_wait_settled_returns_a_confirmed_transaction_at_once() -> None:
    host = FakeHost().on("state", state(decision="confirmed"))
    settled = await wait_settled(FakeConnection(spec(), host), TXID, patience=60.0)
    assert settled.decision == "confirmed"


async def test_wait_settled_gives_up_after_its_patience() -> None:
    host = FakeHost().on("state", state(apply="running", apply_alive="yes"))
    settled = await wait_settled(FakeConnection(spec(), host), TXID, patience=0.0)
    assert settled.apply == "running" and host.labels() == ["state"]


async def test_wait_settled_looks_for_a_minute_by_default() -> None:
    host = FakeHost().on("state", Reply(state(apply="running", apply_alive="yes"), until=1e9))
    start = host.clock.now()
    settled = await wait_settled(FakeConnection(spec(), host), TXID, clock=host.clock)
    assert settled.apply == "running"
    assert host.clock.now() - start == 60 + POLL  # the first look past 60 s returns


async def test_a_stage_reports_what_it_staged_and_the_probes_that_answered() -> None:
    staged: list[str] = []
    change = ScriptedChange(label="tasks/label-in-the-journal.yaml",
                            files={"command.sh": "#!/bin/sh\ntrue\n"})  # fmt: skip
    host = FakeHost()
    tx = Transaction(spec(), change, clock=host.clock, on_staged=staged.append)
    host.on("facts", PLAIN_FACTS).on("stage", stage_reply(tx))
    assert await _prepare(tx, FakeConnection(tx.spec, host)) is None
    assert staged == [tx.txid] and TXID_RE.fullmatch(tx.txid)
    assert change.seen[0][1:] == (tx.before, min_timeout(tx.spec.ssh))
    stage = host.calls[1].script
    assert "tasks/label-in-the-journal.yaml" in stage and "command.sh" in stage
    assert tx.log[-1].endswith(f"staged {tx.txid}; probes that pass before the change: "
                               f"{[GATEWAY_UP]}")  # fmt: skip


async def test_a_stage_without_probe_results_keeps_no_probe() -> None:
    host = FakeHost()
    tx = Transaction(spec(), ScriptedChange(), clock=host.clock)
    good = stage_reply(tx).stdout
    assert callable(good)
    host.on("facts", PLAIN_FACTS).on("stage", Reply(lambda s: good(s).split("@@probes")[0]))
    assert await _prepare(tx, FakeConnection(tx.spec, host)) is None
    assert tx.probes == [] and tx.log[-1].endswith("probes that pass before the change: none")


async def test_a_stage_that_prints_no_checksums_stops_before_arming() -> None:
    result, _, _ = await prepare(None, stage=Reply("@@probes\n"))
    assert result is not None and result.status is Status.FAILED
    assert result.message == "staged scripts do not match their checksums; nothing changed"


async def test_a_refused_or_unchanged_plan_stages_nothing() -> None:
    refused = ScriptedChange(planned=dataclasses.replace(PLAN, refusal="eth0 is a wireless NIC"))
    result, tx, host = await prepare(None, refused)
    assert result is not None and (result.status, result.message) == (
        Status.REFUSED, "eth0 is a wireless NIC")  # fmt: skip
    assert host.labels() == ["facts"] and tx.txid == ""
    unchanged = ScriptedChange(planned=dataclasses.replace(PLAN, steps=(), rollback=()))
    result, _, host = await prepare(None, unchanged)
    assert result is not None and (result.status, result.message) == (
        Status.UNCHANGED, "already matches the task")  # fmt: skip
    assert host.labels() == ["facts"]


@pytest.mark.parametrize(
    ("stage", "sudo", "status", "message"),
    [
        (Reply(error=SessionLost("cut")), False, Status.FAILED,
         "staging did not complete (cut); nothing changed"),
        (Reply("", exit_status=10, stderr=" another transaction is armed \n"), False,
         Status.REFUSED, "another transaction is armed"),
        (Reply("", exit_status=1, stderr="mkdir: Permission denied\n"), False, Status.FAILED,
         "staging failed: mkdir: Permission denied; nothing changed (not root? set sudo: true "
         "in connection_options.fleetbr.extras)"),
        (Reply("", exit_status=1, stderr="mkdir: Permission denied\n"), True, Status.FAILED,
         "staging failed: mkdir: Permission denied; nothing changed"),
        (Reply("", exit_status=1, stderr="No space left on device\n"), False, Status.FAILED,
         "staging failed: No space left on device; nothing changed"),
    ],
)  # fmt: skip
async def test_a_stage_that_failed_changed_nothing(
    stage: Reply, sudo: bool, status: Status, message: str
) -> None:
    result, _, host = await prepare(None, stage=stage, sudo=sudo)
    assert result is not None and (result.status, result.message) == (status, message)
    assert host.labels() == ["facts", "stage"]


async def test_a_state_dir_that_takes_no_lock_cannot_be_cancelled_either() -> None:
    never = {"claim": "none", "arm": "none", "apply": "none", "timer_alive": "no",
             "remaining": "none", "armed_marker": "none"}  # fmt: skip
    host = FakeHost().on("state", state(**never), state(**never))
    tx = transaction(host)
    result = await run(host, tx)
    assert result.status is Status.FAILED
    assert result.message == ("the host's /var/lib/fleetbr takes no lock (read-only or full?): "
                              "the arm could not start; nothing changed")  # fmt: skip
    assert result.data["host_state"] == parse_state(parsed(state(**never))).summary()
    assert tx.log[-1].endswith("arm script had not started; claim now: none")


async def test_a_started_rollback_is_noted() -> None:
    host = FakeHost().on(
        "state", state(apply="none", arm="armed"), rolled_back(decision="rolled_back unfinished")
    )
    host.on("rollback", "").on("facts", PLAIN_FACTS)
    tx = transaction(host)
    await run(host, tx)
    assert any(line.endswith("starting the rollback now (unfinished)") for line in tx.log)


SETTLED_TEXT = (Path(__file__).parent.parent / "data/facts/distro_networkd.txt").read_text()
_CONFIGURED = '"AdministrativeState":"configured","OperationalState":"routable"'
SETTLING_TEXT = SETTLED_TEXT.replace(_CONFIGURED, _CONFIGURED.replace("configured", "configuring"))


async def test_a_rollback_is_judged_once_the_daemon_has_settled() -> None:
    """After a reboot the NIC's daemon may still be configuring it when SSH answers: the
    differences it would show are looked at again (every second, up to 30 s), not judged."""
    problem = RollbackCheck(problems=["address 198.51.100.11/24 missing"])
    change = ScriptedChange(restores=[problem, problem])
    host = FakeHost().on("state", rolled_back(decision="rolled_back reboot"))
    host.on("facts", SETTLING_TEXT, SETTLING_TEXT, SETTLED_TEXT)
    tx = transaction(host, change)
    result = await run(host, tx)
    assert result.status is Status.ROLLED_BACK, result.message
    assert host.clock.slept == [1, 1]
    checks = [args for args in change.seen if args[0] == "rollback_check"]
    assert [args[1:3] for args in checks] == [(PLAN, tx.before)] * 3
    assert [args[3].manager("eth0").state for args in checks] == [  # type: ignore[attr-defined]
        "configuring", "configuring", "configured"]  # fmt: skip


async def test_a_daemon_that_never_settles_is_judged_after_30_s() -> None:
    problem = RollbackCheck(problems=["address 198.51.100.11/24 missing"])
    host = FakeHost().on("state", rolled_back())
    host.on("facts", Reply(SETTLING_TEXT, until=10_000.0))
    start = host.clock.now()
    result = await run(host, transaction(host, ScriptedChange(restore=problem)))
    assert result.status is Status.FAILED
    assert result.message == "rolled back but not at its snapshot: address 198.51.100.11/24 missing"
    assert 30 < host.clock.now() - start <= 32


async def test_only_the_nic_and_the_bridge_settling_are_waited_for() -> None:
    problem = RollbackCheck(problems=["x"])
    other = SETTLED_TEXT.replace('"Name":"eth0"', '"Name":"eth9"')
    other = other.replace(_CONFIGURED, _CONFIGURED.replace("configured", "configuring"))
    host = FakeHost().on("state", rolled_back()).on("facts", other)
    result = await run(host, transaction(host, ScriptedChange(restore=problem)))
    assert result.status is Status.FAILED and host.clock.slept == []


async def test_a_clean_rollback_is_not_looked_at_again_while_a_daemon_settles() -> None:
    host = FakeHost().on("state", rolled_back()).on("facts", SETTLING_TEXT)
    result = await run(host, transaction(host))
    assert result.status is Status.ROLLED_BACK and host.clock.slept == []


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        ("rolled_back timer",
         "the host's timer fired before a confirmation (no fresh SSH connection in time)"),
        ("rolled_back unfinished", "the change never completed on the host"),
        ("rolled_back reboot", "reboot: the host restarted before a confirmation; its boot "
         "guard put the old configuration back"),
        ("rolled_back confirm-failed", "confirm-failed"),
        ("rolled_back", "unknown"),
    ],
)  # fmt: skip
def test_the_reason_of_a_rollback(decision: str, reason: str) -> None:
    assert _reason(parse_state(parsed(rolled_back(decision=decision)))) == reason


# --- reconnecting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "connect_timeout", "budget"),
    [(40, 5.0, 40.0), (20, 5.0, 30.0), (20, 25.0, 50.0)],
)
async def test_the_rollback_budget_is_the_longest_of_30_s_the_timeout_and_two_connects(
    timeout: int, connect_timeout: float, budget: float
) -> None:
    host = FakeHost().refuse(math.inf, math.inf)
    tx = transaction(host, ScriptedChange(timeout=timeout))
    tx.spec = spec(connect_timeout=connect_timeout)
    tx.deadline = host.clock.now() + timeout
    result = await run(host, tx, applied=True)
    assert result.status is Status.UNREACHABLE
    assert host.connects[1][2] == budget
    assert all(attempts >= 100 for _, attempts, _ in host.connects)  # the time bounds it
    assert any("no fresh connection before the deadline: " in line for line in tx.log)


@pytest.mark.parametrize(("left", "tries_before"), [(MARGIN + 0.5, True), (MARGIN, False)])
async def test_a_connect_before_the_deadline_only_while_more_than_the_margin_is_left(
    left: float, tries_before: bool
) -> None:
    host = FakeHost().on("state", rolled_back()).on("facts", PLAIN_FACTS)
    if tries_before:
        host.refuse(math.inf)
    tx = transaction(host)
    tx.deadline = host.clock.now() + left
    result = await run(host, tx, applied=True)
    assert result.status is Status.ROLLED_BACK
    budgets = [budget for _, _, budget in host.connects]
    assert budgets == ([0.5, 40.0] if tries_before else [40.0])


async def test_after_a_connect_that_overran_the_deadline_only_the_grace_is_waited() -> None:
    host = FakeHost().refuse(45.0).on("state", rolled_back()).on("facts", PLAIN_FACTS)
    tx = transaction(host)  # deadline in 40 s; the failed connect takes 45 s
    start = host.clock.now()
    assert (await run(host, tx, applied=True)).status is Status.ROLLED_BACK
    assert host.connects[1][0] == start + 45 + ROLLBACK_GRACE


# --- the whole transaction ----------------------------------------------------------------


async def test_a_whole_transaction_stages_arms_closes_and_confirms_over_a_new_connection() -> None:
    host = FakeHost()
    change = ScriptedChange()
    armed: list[str] = []
    staged: list[str] = []
    probe = Transaction(spec(), change, clock=host.clock)  # for the stage's checksums
    probe.plan = PLAN
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("stage", stage_reply(probe))
    host.on("arm+apply", marks({"armed": "38", "apply": "applied"}))
    host.on("disarm", marks({"decision": "confirmed"}))
    result = await run_transaction(spec(), change, on_armed=armed.append,
                                   on_staged=staged.append, transport=host,
                                   clock=host.clock)  # fmt: skip
    assert (result.status, result.message) == (Status.CONFIRMED, f"confirmed {staged[0]}")
    assert armed == ["hv01"] and result.data["txid"] == staged[0]
    assert host.labels() == ["facts", "stage", "arm+apply", "facts", "disarm"]
    # the change is made over the first connection, closed; confirmed over a new one
    assert [c.conn for c in host.calls] == [0, 0, 0, 1, 1]
    assert all(conn.spec == spec() for conn in host.opened)
    assert all(conn.closed for conn in host.opened) and host.left() == {}


async def test_a_whole_transaction_that_is_refused_at_stage_closes_its_connection() -> None:
    host = FakeHost().on("facts", PLAIN_FACTS)
    change = ScriptedChange(planned=dataclasses.replace(PLAN, refusal="no"))
    result = await run_transaction(spec(), change, transport=host, clock=host.clock)
    assert (result.status, result.message) == (Status.REFUSED, "no")
    assert len(host.opened) == 1 and host.opened[0].closed


async def test_a_whole_transaction_whose_arm_did_not_report_applied_asks_the_host() -> None:
    host = FakeHost()
    probe = Transaction(spec(), ScriptedChange(), clock=host.clock)
    probe.plan = PLAN
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("stage", stage_reply(probe))
    host.on("arm+apply", marks({"armed": "38", "apply": "running"}))
    host.on("state", state(apply="running", apply_alive="yes"), state())
    host.on("disarm", marks({"decision": "confirmed"}))
    result = await run_transaction(spec(), ScriptedChange(), transport=host,
                                   clock=host.clock)  # fmt: skip
    assert result.status is Status.CONFIRMED
    assert host.labels() == ["facts", "stage", "arm+apply", "state", "state", "facts", "disarm"]
    assert host.clock.slept == [POLL]  # the transaction's clock is the one given


# --- docs/safety.md's "the host says / the controller does", one test per row -------------
# Each runs the whole transaction over the in-memory transport: stage and arm+apply on the first
# connection (the arm does not report "applied", so the controller must ask), then the host
# says the row's state over a new connection.

NEVER_CLAIMED = {"claim": "none", "arm": "none", "apply": "none", "timer_alive": "no",
                 "remaining": "none", "armed_marker": "none"}  # fmt: skip


async def whole(host: FakeHost, *, arm: Reply | None = None) -> HostResult:
    """A whole transaction on ``host``, whose arm+apply answers ``arm`` (default: armed, the
    apply still running); checks the connection discipline and that every reply was used."""
    change = ScriptedChange()
    probe = Transaction(spec(), change, clock=host.clock)  # for the stage's checksums
    probe.plan = PLAN
    host.on("facts", PLAIN_FACTS).on("stage", stage_reply(probe))
    host.on("arm+apply", arm or Reply(marks({"armed": "38", "apply": "running"})))
    result = await run_transaction(spec(), change, transport=host, clock=host.clock)
    assert host.labels()[:3] == ["facts", "stage", "arm+apply"]
    assert {c.conn for c in host.calls[:3]} == {0} and all(c.conn > 0 for c in host.calls[3:])
    assert host.left() == {}, "the controller skipped scripts the test expected"
    assert all(conn.closed for conn in host.opened), "a connection was left open"
    return result


async def test_row_nobody_claimed_the_transaction_takes_the_claim_nothing_changed() -> None:
    host = FakeHost().on("state", state(**NEVER_CLAIMED))
    host.on("state", state(**{**NEVER_CLAIMED, "claim": "cancel"}), state(**{**NEVER_CLAIMED,
            "claim": "cancel"}))  # fmt: skip
    result = await whole(host, arm=Reply(error=SessionLost("cut before the arm script ran")))
    assert result.status is Status.FAILED
    assert result.message.endswith("it was cancelled; nothing changed")
    cancel_looks = [c for c in host.calls if c.label == "state" and "ln -s cancel" in c.script]
    assert len(cancel_looks) == 1 and triggered(host) == []


async def test_row_the_arm_script_still_running_is_waited_for() -> None:
    host = FakeHost()
    start = host.clock.now()
    host.on("state", Reply(state(**ARMING_FOREVER), until=start + 5), state())
    host.on("facts", PLAIN_FACTS).on("disarm", marks({"decision": "confirmed"}))
    result = await whole(host)
    assert result.status is Status.CONFIRMED, result.message
    assert 5 <= host.clock.now() - start <= 5 + 2 * POLL  # waited, polling, for the host
    assert triggered(host) == []


@pytest.mark.parametrize(
    ("arm", "error", "status"),
    [
        ("failed 11", "staged scripts changed", Status.FAILED),
        ("failed 10", "refused: transaction 20261206T000000-123456 is already armed",
         Status.REFUSED),
    ],
)  # fmt: skip
async def test_row_the_arm_script_failed_before_arming_is_failed_or_refused_nothing_changed(
    arm: str, error: str, status: Status
) -> None:
    host = FakeHost().on(
        "state",
        state(arm=arm, arm_error=error, apply="none", timer_alive="no", remaining="none",
              armed_marker="none" if status is Status.FAILED else "other"),
    )  # fmt: skip
    result = await whole(host)
    assert result.status is status
    assert error in result.message
    assert host.labels()[3:] == ["state"], "nothing is started on a host that did not arm"


async def test_row_armed_the_apply_still_running_is_waited_for() -> None:
    host = FakeHost()
    start = host.clock.now()
    running = state(apply="running", apply_alive="yes", remaining="30")
    host.on("state", Reply(running, until=start + 20), state(remaining="15"))
    host.on("facts", PLAIN_FACTS).on("disarm", marks({"decision": "confirmed"}))
    result = await whole(host)
    assert result.status is Status.CONFIRMED, result.message
    assert host.clock.now() - start >= 20 and triggered(host) == []


@pytest.mark.parametrize(
    ("remaining", "confirms"), [(str(int(MARGIN) + 1), True), (str(int(MARGIN)), False)]
)
async def test_row_applied_with_more_than_the_margin_left_confirms(
    remaining: str, confirms: bool
) -> None:
    """More than MARGIN seconds left: confirm. Exactly MARGIN: too late, the timer decides."""
    host = FakeHost().on("state", state(remaining=remaining)).on("facts", PLAIN_FACTS)
    if confirms:
        host.on("disarm", marks({"decision": "confirmed"}))
    else:
        host.on("state", rolled_back())
    result = await whole(host)
    assert result.status is (Status.CONFIRMED if confirms else Status.ROLLED_BACK)
    assert ("disarm" in host.labels()) is confirms


async def test_row_armed_but_nothing_will_finish_the_change_starts_the_rollback_now() -> None:
    host = FakeHost().on("state", state(apply="running", apply_alive="no"))
    host.on("rollback", "").on("state", rolled_back(decision="rolled_back unfinished"))
    host.on("facts", PLAIN_FACTS)
    start = host.clock.now()
    result = await whole(host)
    assert triggered(host) == ["unfinished"]
    assert host.clock.now() - start < TIMEOUT, "the rollback is started now, not by the timer"
    assert result.status is Status.ROLLED_BACK
    assert result.data["reason"] == "the change never completed on the host"


async def test_row_decided_rolled_back_waits_for_the_rollback_then_verifies() -> None:
    host = FakeHost().on(
        "state",
        rolled_back(rollback="none", rollback_alive="yes"),
        rolled_back(rollback="done failed=0", rollback_alive="yes"),
        rolled_back(),
    )
    host.on("facts", PLAIN_FACTS)
    result = await whole(host)
    assert result.status is Status.ROLLED_BACK, result.message
    assert host.labels()[3:] == ["state", "state", "state", "facts"]  # verified once settled
    assert triggered(host) == []


async def test_row_decided_confirmed_is_confirmed() -> None:
    host = FakeHost().on(
        "state", state(decision="confirmed", timer_alive="no", remaining="none",
                       armed_marker="none"),
    )  # fmt: skip
    result = await whole(host)
    assert (result.status, result.data["decision"]) == (Status.CONFIRMED, "confirmed")
    assert host.labels()[3:] == ["state"], "nothing more is run on a confirmed host"


async def test_row_undecided_and_nothing_moving_fails_without_deciding() -> None:
    host = FakeHost().on("state", Reply(state(**ARMING_FOREVER), until=10_000.0))
    start = host.clock.now()
    result = await whole(host)
    assert result.status is Status.FAILED
    assert "undecided on the host and not progressing for 30s" in result.message
    assert "fleetbr rollback" in result.message
    assert set(host.labels()[3:]) == {"state"}, "no rollback, no disarm: only looks"
    assert 30 < host.clock.now() - start <= 30 + 2 * POLL
