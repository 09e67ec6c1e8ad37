"""The per-host transaction, controller side.

stage -> arm + apply (detached on the host) -> close that connection -> resolve over NEW
connections: ask the host how far it got, then confirm (verify state, run probes, disarm), wait,
cancel a late arm, or trigger and verify the rollback. The host's own report decides every step
(``hoststate.next_action``); time budgets come from the host's timer and its progress, never from
a fixed guess of how long a step takes. See docs/safety.md.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetbr.errors import TransportError
from fleetbr.facts.gather import gather
from fleetbr.facts.model import STATE_DIR, HostFacts
from fleetbr.facts.parse import parse_probes
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.plan import Plan
from fleetbr.plan.scope import touched_by
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.change import Change
from fleetbr.transaction.hoststate import (
    Action,
    ApplyStep,
    Claim,
    Decision,
    ExitCode,
    HostTxState,
    next_action,
    parse_apply,
    parse_decision,
    parse_state,
)
from fleetbr.transaction.verdict import Judged, judge_rollback
from fleetbr.transport import Session, Transport, current_transport

MARGIN = 3.0  # confirm only while the host's timer has more than this left
ROLLBACK_GRACE = 2.0  # after the deadline, give the host's rollback this long before looking
POLL = 0.5  # seconds between looks at a host that is still working

Hook = Callable[[str], None]


class Clock(Protocol):
    """Where the controller's side of a transaction reads the time and waits (a seam for the
    unit tests, which run the resolver on a virtual clock)."""

    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""


class MonotonicClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        await asyncio.sleep(seconds)


def min_timeout(ssh: SSHOptions) -> int:
    """Shortest dead-man timeout that leaves room to reconnect (twice), probe and disarm."""
    return math.ceil(2 * ssh.connect_timeout + 4 + MARGIN)


@dataclass
class Transaction:
    """Everything one host's transaction needs and learns along the way."""

    spec: HostSpec
    change: Change
    before: HostFacts | None = None
    plan: Plan | None = None
    txid: str = ""
    probes: list[str] = field(default_factory=list)
    armed_at: float = 0.0  # controller monotonic time just before the arm script was sent
    deadline: float = 0.0  # controller monotonic estimate of when the host's timer fires
    log: list[str] = field(default_factory=list)
    view: dict[str, Any] | None = None  # the plan's before/after view (diffview JSON)
    # (phase, epoch seconds) each time the transaction enters a phase: the report's timeline
    timeline: list[tuple[str, float]] = field(default_factory=list)
    on_armed: Hook | None = None  # rollout pacing: a dead-man window opened on this host
    on_staged: Hook | None = None  # run history: called with the txid before it is armed
    clock: Clock = field(default_factory=MonotonicClock)

    def result(self, status: Status, message: str, **data: Any) -> HostResult:
        """A result carrying the transaction's data."""
        payload: dict[str, Any] = {"txid": self.txid or None, "events": self.log, **data}
        if self.plan is not None:
            payload["steps"] = [step.description for step in self.plan.steps]
            payload["inverses"] = [
                None if step.inverse is None else step.inverse.description
                for step in self.plan.steps
            ]
        if self.view is not None:
            payload["diff"] = self.view
        if self.timeline:
            payload["timeline"] = [[phase, round(at, 3)] for phase, at in self.timeline]
        if self.armed_at:
            payload["window"] = round(self.clock.now() - self.armed_at, 3)
        return HostResult(self.spec.name, status, message, data=payload)

    def note(self, event: str) -> None:
        """Record a timestamped event for the report."""
        self.log.append(f"{time.strftime('%H:%M:%S')} {event}")

    def enter(self, phase: str) -> None:
        """The transaction enters ``phase`` now (wall clock; a repeat of the current one is
        not recorded)."""
        if not self.timeline or self.timeline[-1][0] != phase:
            self.timeline.append((phase, time.time()))

    def heard(self, remaining: int | None) -> None:
        """The host says its timer fires in ``remaining`` seconds: trust it over any estimate."""
        if remaining is not None:
            self.deadline = self.clock.now() + remaining


async def run_transaction(
    spec: HostSpec,
    change: Change,
    *,
    on_armed: Hook | None = None,
    on_staged: Hook | None = None,
    transport: Transport | None = None,
    clock: Clock | None = None,
) -> HostResult:
    """The dead-man transaction for any :class:`Change` on one host, over ``transport`` (default:
    the current one, see :func:`fleetbr.transport.current_transport`)."""
    transport = transport or current_transport()
    tx = Transaction(spec, change, on_armed=on_armed, on_staged=on_staged)
    if clock is not None:
        tx.clock = clock
    tx.enter("prepare")
    conn = await transport.connect(spec)
    try:
        early = await _prepare(tx, conn)
        if early is not None:
            return early
        applied = await _arm_and_apply(tx, conn)
    finally:
        await conn.close()
    return await resolve(tx, applied=applied, transport=transport)


async def _prepare(tx: Transaction, conn: Session) -> HostResult | None:
    """Facts, plan, stage. Returns a final result when there is nothing to apply."""
    tx.before = await gather(conn)
    tx.plan = plan = tx.change.plan(tx.before, min_timeout(tx.spec.ssh))
    if plan.refusal:
        return tx.result(Status.REFUSED, plan.refusal)
    if plan.unchanged:
        return tx.result(Status.UNCHANGED, "already matches the task")
    # only a host that changes records its view: a fleet of unchanged hosts (a drift repair)
    # would otherwise store every host's whole network again on every run
    tx.view = tx.change.view(tx.spec.name, tx.before, plan)
    tx.txid = scripts.new_txid()
    staged = scripts.staged_scripts(tx.txid, plan, tx.change.staged_files())
    nonce = scripts.new_nonce()
    script = scripts.stage_script(tx.txid, plan, staged, tx.change.label, nonce=nonce)
    try:
        out = await conn.run_script(script, label="stage", check=False)
    except TransportError as exc:  # the stage only writes fleetbr's own folder: nothing armed
        return tx.result(Status.FAILED, f"staging did not complete ({exc}); nothing changed")
    if out.exit_status == ExitCode.ARMED_ELSEWHERE:
        return tx.result(Status.REFUSED, out.stderr.strip())
    if out.exit_status != 0:
        hint = ""
        if "Permission denied" in out.stderr and not tx.spec.ssh.sudo:
            hint = " (not root? set sudo: true in connection_options.fleetbr.extras)"
        return tx.result(
            Status.FAILED, f"staging failed: {out.stderr.strip()}; nothing changed{hint}"
        )
    found = scripts.sections(out.stdout, nonce)
    remote_sums = {line.split()[1]: line.split()[0] for line in found.get("checksums", [])}
    if remote_sums != staged.checksums():
        return tx.result(
            Status.FAILED, "staged scripts do not match their checksums; nothing changed"
        )
    answered, _ = parse_probes(found.get("probes", []))
    tx.probes = [target for target in plan.probes if answered.get(target)]
    tx.note(f"staged {tx.txid}; probes that pass before the change: {tx.probes or 'none'}")
    if tx.on_staged is not None:
        tx.on_staged(tx.txid)
    return None


async def _arm_and_apply(tx: Transaction, conn: Session) -> bool:
    """Send the arm script; True when the host reported the change applied.

    Whatever happens here (refusal, a slow host, a cut session), the host's own state is read
    again over a new connection before anything is decided, so this only notes what it saw.
    """
    assert tx.before is not None
    timeout = tx.change.timeout
    wait = max(1.0, min(10.0, timeout / 4))
    nonce = scripts.new_nonce()
    script = scripts.arm_apply_script(
        tx.txid, timeout, use_systemd=tx.before.pid1_systemd, wait=wait, nonce=nonce
    )
    tx.armed_at = tx.clock.now()
    tx.enter("arm")
    tx.deadline = tx.armed_at + timeout  # until the host tells us better
    if tx.on_armed is not None:
        tx.on_armed(tx.spec.name)
    try:
        out = await conn.run_script(script, label="arm+apply", check=False)
    except TransportError as exc:
        tx.note(f"arm+apply session ended early ({exc}); asking the host over a new connection")
        return False
    tx.enter("apply")
    marks = scripts.markers(out.stdout, nonce)
    remaining = marks.get("armed", "")
    if remaining.lstrip("-").isdigit():
        tx.heard(int(remaining))
        tx.note(f"armed, timer fires in {remaining}s; apply {marks.get('apply', 'unknown')}")
    elif out.stderr.strip():
        tx.note(f"arm script: {out.stderr.strip()}")
    return parse_apply(marks.get("apply", ""))[0] is ApplyStep.APPLIED


async def resolve(
    tx: Transaction, *, applied: bool = False, transport: Transport | None = None
) -> HostResult:
    """Drive the host to a decision over fresh connections (over ``transport``, default: the
    current one) and report it truthfully."""
    resolver = _Resolver(tx, skip_first_look=applied, transport=transport or current_transport())
    try:
        return await resolver.run()
    finally:
        await resolver.close()


class _Resolver:
    """The loop behind :func:`resolve`: look at the host, act, repeat."""

    def __init__(self, tx: Transaction, *, skip_first_look: bool, transport: Transport) -> None:
        self.tx = tx
        self.connect = transport.connect
        self.conn: Session | None = None
        self.skip_first_look = skip_first_look  # the arm said "applied": go straight to confirm
        self.last: HostTxState | None = None
        self.last_change = tx.clock.now()
        self.stall = max(30.0, float(tx.spec.ssh.command_timeout))
        self.reason = ""  # why confirm itself started the rollback, if it did

    async def close(self) -> None:
        """Close the current connection, if any."""
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def run(self) -> HostResult:
        """Loop until a final result."""
        while True:
            try:
                if self.conn is None:
                    failure = await self._reconnect()
                    if failure is not None:
                        return failure
                assert self.conn is not None
                result = await self._step(self.conn)
            except TransportError as exc:
                self.tx.note(f"connection lost while resolving: {exc}")
                await self.close()
                continue
            if result is not None:
                return result

    async def _reconnect(self) -> HostResult | None:
        """A new connection: tried until shortly before the host's timer fires; failing that,
        wait for the timer and its rollback, then try again for a while (max(30 s, timeout))."""
        tx = self.tx
        before_deadline = tx.deadline - MARGIN - tx.clock.now()
        if before_deadline > 0:
            try:
                self.conn = await self.connect(
                    tx.spec, attempts=1000, give_up_after=before_deadline
                )
                return None
            except TransportError as exc:
                tx.note(f"no fresh connection before the deadline: {exc}")
                tx.enter("rollback")  # the host's timer rolls it back
                self.reason = f"no fresh SSH connection before the deadline ({exc})"
            await tx.clock.sleep(max(0.0, tx.deadline - tx.clock.now()) + ROLLBACK_GRACE)
        self.skip_first_look = False  # past the deadline the arm's "applied" is stale: ask
        budget = max(30.0, float(tx.change.timeout), 2.0 * tx.spec.ssh.connect_timeout)
        try:
            self.conn = await self.connect(tx.spec, attempts=1000, give_up_after=budget)
            return None
        except TransportError as exc:
            return self._unreachable(exc)

    def _unreachable(self, exc: TransportError) -> HostResult:
        return self.tx.result(
            Status.UNREACHABLE,
            f"UNREACHABLE: no connection since the change, even after its rollback should have "
            f"run; last error: {exc}",
        )

    async def _step(self, conn: Session) -> HostResult | None:
        tx = self.tx
        if self.skip_first_look:
            self.skip_first_look = False
            return await self._confirm(conn)
        state = await self._look(conn)
        action = next_action(state, MARGIN)
        if action is Action.CONFIRM:
            return await self._confirm(conn)
        if action is Action.CONFIRMED:
            return tx.result(Status.CONFIRMED, f"confirmed {tx.txid}", decision=state.decision_text)
        if action is Action.VERIFY_ROLLBACK:
            return await self._verify_rollback(conn, state)
        if action is Action.NOTHING_CHANGED:
            return self._nothing_changed(state)
        if action is Action.REFUSED:
            return tx.result(Status.REFUSED, state.arm_error or "another transaction is armed")
        if action is Action.CANCEL:
            return await self._cancel(conn)
        if action is Action.TRIGGER_ROLLBACK:
            tx.note(f"nothing on the host will finish the change: {state.summary()}")
            await self._trigger(conn, "unfinished")
            return None
        return await self._wait(state, action)

    async def _look(self, conn: Session, *, cancel: bool = False) -> HostTxState:
        state = await read_state(conn, self.tx.txid, cancel=cancel)
        self.tx.heard(state.remaining)
        if self.last is None or _progress(self.last) != _progress(state):
            self.last_change = self.tx.clock.now()
        self.last = state
        return state

    async def _wait(self, state: HostTxState, action: Action) -> HostResult | None:
        tx = self.tx
        if action is Action.WAIT_TIMER and state.remaining is not None:
            await tx.clock.sleep(max(POLL, state.remaining + 1.0))
            return None
        waiting_on_timer = state.timer_alive and (state.remaining or 0) > 0
        if tx.clock.now() - self.last_change > self.stall and not waiting_on_timer:
            return tx.result(
                Status.FAILED,
                f"transaction {tx.txid} undecided on the host and not progressing for "
                f"{self.stall:.0f}s ({state.summary()}); resolve it with `fleetbr rollback`",
                host_state=state.summary(),
            )
        await tx.clock.sleep(POLL)
        return None

    async def _cancel(self, conn: Session) -> HostResult | None:
        state = await self._look(conn, cancel=True)
        self.tx.note(f"arm script had not started; claim now: {state.claim}")
        if state.claim is Claim.NONE:  # neither the arm script nor we could take it
            return self._nothing_changed(state)
        return None

    async def _trigger(self, conn: Session, reason: str) -> None:
        self.tx.enter("rollback")
        self.tx.note(f"starting the rollback now ({reason})")
        await conn.run_script(scripts.trigger_rollback_script(self.tx.txid, reason),
                              label="rollback")  # fmt: skip

    def _nothing_changed(self, state: HostTxState) -> HostResult:
        tx = self.tx
        if state.claim is Claim.CANCEL:
            why = "the arm script had not started when the controller looked; it was cancelled"
        elif state.claim is Claim.NONE:
            why = (
                f"the host's {STATE_DIR} takes no lock (read-only or full?): the arm could not "
                "start"
            )
        else:
            why = f"arming failed: {state.arm_error or state.arm_text}"
        return tx.result(Status.FAILED, f"{why}; nothing changed", host_state=state.summary())

    async def _confirm(self, conn: Session) -> HostResult | None:
        """Verify, probe and disarm over this connection (never the one that made the change)."""
        tx = self.tx
        assert tx.plan is not None
        tx.enter("confirm")
        after = await gather(conn, tx.probes)
        problems = await tx.change.confirm_problems(conn, tx.txid, tx.plan, after)
        problems += [f"gateway {t} no longer answers" for t in tx.probes if not after.probes.get(t)]
        if problems:
            tx.note("confirm found problems; rolling back now: " + "; ".join(problems))
            self.reason = "; ".join(problems)
            await self._trigger(conn, "confirm-failed")
            return None
        nonce = scripts.new_nonce()
        out = await conn.run_script(scripts.disarm_script(tx.txid, nonce=nonce), label="disarm")
        decision = scripts.markers(out.stdout, nonce).get("decision", "")
        if parse_decision(decision)[0] is Decision.CONFIRMED:
            tx.note("confirmed and disarmed")
            return tx.result(Status.CONFIRMED, f"confirmed {tx.txid}", decision="confirmed")
        tx.note(f"not confirmed: {decision}")
        return None  # the next look says what the host did instead

    async def _verify_rollback(self, conn: Session, state: HostTxState) -> HostResult:
        tx = self.tx
        assert tx.before is not None and tx.plan is not None
        tx.enter("verify")
        plan, reason = tx.plan, self.reason or _reason(state)
        verdict = await judge_rollback(
            Judged(tx.txid, tx.before, touched_by(plan)),
            state,
            lambda: gather(conn),
            tx.clock,
            outcome=lambda: tx.change.script_outcome(conn, tx.txid),
            check=lambda before, after: tx.change.rollback_check(plan, before, after),
        )
        outcome = verdict.outcome
        said = f" ({outcome.summary})" if outcome.summary else ""
        kept = verdict.kept_note(tx.txid)
        extra: dict[str, object] = {"verdict": verdict.to_dict()}
        if verdict.kept:
            extra["kept"] = list(verdict.kept)
        extra.update(outcome.data)
        if not verdict.at_snapshot:
            text = "rolled back but not at its snapshot: " + "; ".join(verdict.failures(tx.txid))
            return tx.result(Status.FAILED, text + said + kept, **extra)
        tx.note(f"host rolled back ({state.decision_text}) and matches its snapshot")
        if verdict.notes:
            extra["differences"] = list(verdict.notes)
        return tx.result(
            Status.ROLLED_BACK,
            f"rolled back: {reason}{said}{kept}",
            decision=state.decision_text,
            reason=reason,
            **extra,
        )


def _progress(state: HostTxState) -> tuple[object, ...]:
    """The parts of a state that show the host moving on."""
    return (state.claim, state.arm, state.arm_code, state.apply, state.apply_step,
            state.decision, state.reason, state.rollback, state.failed_steps)  # fmt: skip


def _reason(state: HostTxState) -> str:
    why = state.reason or "unknown"
    return {
        "timer": "the host's timer fired before a confirmation (no fresh SSH connection in time)",
        "unfinished": "the change never completed on the host",
        "reboot": "reboot: the host restarted before a confirmation; its boot guard put the "
        "old configuration back",
    }.get(why, why)


async def read_state(conn: Session, txid: str, *, cancel: bool = False) -> HostTxState:
    """The host's view of transaction ``txid`` (``cancel``: first take the arm's claim)."""
    nonce = scripts.new_nonce()
    script = scripts.state_script(txid, nonce=nonce, cancel=cancel)
    out = await conn.run_script(script, label="state")
    return parse_state(scripts.markers(out.stdout, nonce))


async def wait_settled(
    conn: Session, txid: str, patience: float = 60.0, *, clock: Clock | None = None
) -> HostTxState:
    """Poll until the transaction is decided and none of its processes run (or ``patience``)."""
    clock = clock or MonotonicClock()
    give_up = clock.now() + patience
    while True:
        state = await read_state(conn, txid)
        settled = state.decided and not state.busy
        if state.rolled_back:
            settled = settled and state.rollback_ended
        if settled or clock.now() > give_up:
            return state
        await clock.sleep(POLL)


def rollback_finished(state: HostTxState) -> bool:
    """The transaction state shows a rollback decision, a finished rollback, nothing running."""
    return state.rolled_back and state.rollback_ended and not state.busy
