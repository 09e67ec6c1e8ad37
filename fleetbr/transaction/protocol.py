"""The per-host transaction, controller side.

stage -> arm + apply (detached on the host) -> close that connection -> confirm over a NEW
connection (verify state, run probes) -> disarm. If confirm cannot happen, the host's own timer
rolls it back and the controller verifies the rollback. See docs/safety.md.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from fleetbr.errors import CommandTimeout, FleetbrError, SessionLost, TransportError
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_probes
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.plan import Plan, plan_host, verify_applied, verify_restored
from fleetbr.report import HostResult, Status
from fleetbr.tasks import BridgeTask
from fleetbr.transaction import scripts
from fleetbr.transport import Connection, connect, open_connection

MARGIN = 3.0  # confirm must be done this long before the host's deadline
ROLLBACK_GRACE = 2.0  # after the deadline, give the host's rollback this long before looking
EXIT_ARMED_ELSEWHERE = 10


def min_timeout(ssh: SSHOptions) -> int:
    """Shortest dead-man timeout that leaves room to reconnect (twice), probe and disarm."""
    return math.ceil(2 * ssh.connect_timeout + 4 + MARGIN)


@dataclass
class Transaction:
    """Everything one host's transaction needs and learns along the way."""

    spec: HostSpec
    task: BridgeTask
    task_label: str
    before: HostFacts | None = None
    plan: Plan | None = None
    txid: str = ""
    probes: list[str] = field(default_factory=list)
    armed_at: float = 0.0  # controller monotonic time just before arming
    log: list[str] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        """Earliest controller time at which the host's timer may fire."""
        return self.armed_at + self.task.deadman_timeout

    def result(self, status: Status, message: str, **data: Any) -> HostResult:
        """A result carrying the transaction's data."""
        payload: dict[str, Any] = {"txid": self.txid or None, "events": self.log, **data}
        if self.plan is not None:
            payload["steps"] = [step.description for step in self.plan.steps]
        return HostResult(self.spec.name, status, message, data=payload)

    def note(self, event: str) -> None:
        """Record a timestamped event for the report."""
        self.log.append(f"{time.strftime('%H:%M:%S')} {event}")


async def apply_host(spec: HostSpec, task: BridgeTask, task_label: str) -> HostResult:
    """Run the whole transaction on one host; always ends confirmed, rolled back or explained."""
    tx = Transaction(spec, task, task_label)
    async with open_connection(spec) as conn:
        early = await _prepare(tx, conn)
        if early is not None:
            return early
        apply_status = await _arm_and_apply(tx, conn)
    if apply_status.startswith("refused"):
        return tx.result(Status.REFUSED, apply_status)
    if apply_status.startswith("failed"):
        tx.note(f"apply failed ({apply_status}); the host reverts at once")
        return await settle_rollback(tx, wait_until=time.monotonic(), reason=apply_status)
    await _fault_pause("FLEETBR_TEST_PAUSE_BEFORE_CONFIRM")
    return await confirm(tx)


async def _prepare(tx: Transaction, conn: Connection) -> HostResult | None:
    """Facts, plan, stage. Returns a final result when there is nothing to apply."""
    tx.before = await gather(conn)
    tx.plan = plan = plan_host(tx.task, tx.before, min_timeout=min_timeout(tx.spec.ssh))
    if plan.refusal:
        return tx.result(Status.REFUSED, plan.refusal)
    if plan.unchanged:
        return tx.result(Status.UNCHANGED, "already matches the task")
    tx.txid = scripts.new_txid()
    staged = scripts.staged_scripts(tx.txid, plan, tx.task.deadman_timeout)
    out = await conn.run_script(
        scripts.stage_script(tx.txid, plan, staged, tx.task_label), label="stage", check=False
    )
    if out.exit_status == EXIT_ARMED_ELSEWHERE:
        return tx.result(Status.REFUSED, out.stderr.strip())
    if out.exit_status != 0:
        hint = ""
        if "Permission denied" in out.stderr and not tx.spec.ssh.sudo:
            hint = " (not root? set sudo: true in connection_options.fleetbr.extras)"
        return tx.result(
            Status.FAILED, f"staging failed: {out.stderr.strip()}; nothing changed{hint}"
        )
    found = scripts.sections(out.stdout)
    remote_sums = {line.split()[1]: line.split()[0] for line in found.get("checksums", [])}
    if remote_sums != staged.checksums():
        return tx.result(
            Status.FAILED, "staged scripts do not match their checksums; nothing changed"
        )
    answered, _ = parse_probes(found.get("probes", []))
    tx.probes = [target for target in plan.probes if answered.get(target)]
    tx.note(f"staged {tx.txid}; probes that pass before the change: {tx.probes or 'none'}")
    return None


async def _arm_and_apply(tx: Transaction, conn: Connection) -> str:
    """Arm the timer and start the apply; returns the apply status seen (or "cut")."""
    assert tx.before is not None
    wait = max(1.0, min(10.0, tx.task.deadman_timeout / 4))
    script = scripts.arm_apply_script(
        tx.txid, tx.task.deadman_timeout, use_systemd=tx.before.pid1_systemd, wait=wait
    )
    tx.armed_at = time.monotonic()
    try:
        out = await conn.run_script(script, label="arm+apply", timeout=wait + 5, check=False)
    except (SessionLost, CommandTimeout) as exc:
        tx.note(f"session cut during apply ({exc}); confirming over a new connection")
        return "cut"
    marks = scripts.markers(out.stdout)
    if out.exit_status == EXIT_ARMED_ELSEWHERE:
        return f"refused: {out.stderr.strip()}"
    if "armed" not in marks:
        return f"failed: arming failed: {out.stderr.strip() or out.exit_status}"
    tx.note(f"armed for {tx.task.deadman_timeout}s; apply {marks.get('apply', 'unknown')}")
    return marks.get("apply", "unknown")


async def confirm(tx: Transaction) -> HostResult:
    """Reconnect over a NEW connection, verify, probe and disarm before the deadline."""
    assert tx.plan is not None
    budget = tx.deadline - MARGIN - time.monotonic()
    try:
        conn = await connect(tx.spec, attempts=1000, give_up_after=max(0.0, budget))
    except TransportError as exc:
        tx.note(f"no fresh connection before the deadline: {exc}")
        return await settle_rollback(
            tx,
            wait_until=tx.deadline,
            reason=f"no fresh SSH connection before the deadline ({exc})",
        )
    try:
        return await _verify_and_disarm(tx, conn)
    finally:
        await conn.close()


async def _verify_and_disarm(tx: Transaction, conn: Connection) -> HostResult:
    assert tx.plan is not None
    try:
        after = await gather(conn, tx.probes)
        problems = verify_applied(tx.plan, after)
        problems += [f"gateway {t} no longer answers" for t in tx.probes if not after.probes.get(t)]
        if problems:
            tx.note("confirm found problems; rolling back now: " + "; ".join(problems))
            await conn.run_script(
                scripts.trigger_rollback_script(tx.txid, "confirm-failed"), label="rollback"
            )
            return await settle_rollback(tx, time.monotonic(), "; ".join(problems), conn=conn)
        await _fault_pause("FLEETBR_TEST_PAUSE_BEFORE_DISARM")
        out = await conn.run_script(scripts.disarm_script(tx.txid), label="disarm")
    except FleetbrError as exc:  # lost session, odd facts, a failing script: never disarmed
        tx.note(f"confirm did not complete: {exc}")
        return await settle_rollback(tx, wait_until=tx.deadline, reason=f"confirm failed: {exc}")
    decision = scripts.markers(out.stdout).get("decision", "")
    if decision == "confirmed":
        tx.note("confirmed and disarmed")
        return tx.result(Status.CONFIRMED, f"confirmed {tx.txid}", decision="confirmed")
    tx.note(f"confirm lost the race: {decision}")
    return await settle_rollback(tx, time.monotonic(), f"timer fired first ({decision})", conn=conn)


async def settle_rollback(
    tx: Transaction, wait_until: float, reason: str, conn: Connection | None = None
) -> HostResult:
    """Wait for the host's own rollback, reconnect, and verify it is back at its snapshot."""
    delay = wait_until - time.monotonic()
    if delay > 0 or conn is None:
        await asyncio.sleep(max(0.0, delay) + ROLLBACK_GRACE)
        try:
            async with open_connection(
                tx.spec, attempts=1000, give_up_after=max(30.0, tx.task.deadman_timeout)
            ) as fresh:
                return await _check_rolled_back(tx, fresh, reason)
        except TransportError as exc:
            return tx.result(
                Status.UNREACHABLE,
                f"UNREACHABLE after its rollback should have run ({reason}); last error: {exc}",
                reason=reason,
            )
    return await _check_rolled_back(tx, conn, reason)


async def _check_rolled_back(tx: Transaction, conn: Connection, reason: str) -> HostResult:
    assert tx.before is not None and tx.plan is not None
    state = await wait_decided(conn, tx.txid)
    decision = state.get("decision", "none")
    if decision == "confirmed":
        return tx.result(Status.CONFIRMED, f"confirmed {tx.txid}", decision=decision)
    if not rollback_finished(state):
        return tx.result(
            Status.FAILED, f"transaction undecided on the host ({state}); see `fleetbr status`"
        )
    after = await gather(conn)
    problems = verify_restored(tx.before, after, tx.plan)
    if problems:
        return tx.result(
            Status.FAILED, "rolled back but not at its snapshot: " + "; ".join(problems)
        )
    tx.note(f"host rolled back ({decision}) and matches its snapshot")
    return tx.result(Status.ROLLED_BACK, f"rolled back: {reason}", decision=decision, reason=reason)


def rollback_finished(state: dict[str, str]) -> bool:
    """The transaction state shows a rollback decision and a finished rollback script."""
    return state.get("decision", "none").startswith("rolled_back") and (
        state.get("rollback", "none") != "none"
    )


async def wait_decided(conn: Connection, txid: str, patience: float = 15.0) -> dict[str, str]:
    """Poll the transaction state until a decision and a finished rollback (or confirm) show."""
    give_up = time.monotonic() + patience
    while True:
        out = await conn.run_script(scripts.state_script(txid), label="state")
        state = scripts.markers(out.stdout)
        decided = state.get("decision", "none")
        if decided == "confirmed" or state.get("rollback", "none") != "none":
            return state
        if time.monotonic() > give_up or (decided == "none" and state.get("apply") == "none"):
            return state
        await asyncio.sleep(0.5)


async def _fault_pause(variable: str) -> None:
    """Test-only fault injection: sleep as many seconds as the environment variable says."""
    seconds = os.environ.get(variable)
    if seconds:
        await asyncio.sleep(float(seconds))
