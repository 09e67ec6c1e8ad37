"""``fleetbr rollback``: resolve an armed transaction (live or stale) by running its staged
rollback now, then judge the host against the facts snapshot taken when it was staged, with the
one verdict of every rolled-back transaction (:mod:`fleetbr.transaction.verdict`).

The snapshot may be days old, so only what the transaction touched is compared: the staged facts
script carries the plan's objects as its ``touched`` section (fleetbr.plan.scope). Differences
elsewhere (a guest's tap device that came or went) are listed as ``unrelated``, never a failure.
A snapshot without that section (staged by an older fleetbr) is compared in full.
:func:`judge_staged` is the same judgement for ``apply --resume``."""

from __future__ import annotations

from fleetbr.facts.gather import gather
from fleetbr.facts.model import ArmedTransaction
from fleetbr.facts.parse import parse_facts, split_sections
from fleetbr.inventory import HostSpec
from fleetbr.plan.scope import parse_touched
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.hoststate import HostTxState
from fleetbr.transaction.outcome import read_outcome
from fleetbr.transaction.protocol import Clock, MonotonicClock, rollback_finished, wait_settled
from fleetbr.transaction.verdict import Judged, RollbackVerdict, judge_rollback
from fleetbr.transport import Session, open_session


async def rollback_job(spec: HostSpec) -> HostResult:
    """Roll back the host's armed transaction, if any, and verify it is back at its snapshot."""
    async with open_session(spec) as conn:
        return await rollback_on(conn, spec.name)


async def rollback_on(conn: Session, name: str, *, clock: Clock | None = None) -> HostResult:
    """:func:`rollback_job` over an open connection to host ``name`` (``clock``: a test's)."""
    facts = await gather(conn)
    if facts.armed is None:
        return HostResult(name, Status.OK, "no armed transaction: nothing to roll back")
    if facts.armed.problem:
        return await _untrusted_marker(conn, name, facts.armed)
    txid = facts.armed.txid
    data: dict[str, object] = {"txid": txid, "was_stale": facts.armed.stale}
    await conn.run_script(scripts.trigger_rollback_script(txid, "operator"), label="rollback")
    state = await wait_settled(conn, txid, clock=clock)
    data["decision"] = state.decision_text
    if state.confirmed:
        return HostResult(
            name, Status.CONFIRMED, f"{txid} was confirmed before the rollback ran", data
        )
    if not rollback_finished(state):
        return HostResult(name, Status.FAILED, f"{txid} still undecided: {state.summary()}", data)
    verdict = await judge_staged(conn, txid, state, clock=clock)
    return _reported(name, txid, verdict, data)


async def judge_staged(
    conn: Session, txid: str, state: HostTxState, *, clock: Clock | None = None
) -> RollbackVerdict:
    """The verdict on rolled-back ``txid`` against the snapshot staged with it, within the scope
    staged as its ``touched`` section (a snapshot without one: everything)."""
    snapshot = (await conn.run_script(scripts.snapshot_script(txid), label="snapshot")).stdout
    return await judge_rollback(
        staged_judged(txid, snapshot),
        state,
        lambda: gather(conn),
        clock or MonotonicClock(),
        outcome=lambda: read_outcome(conn, txid),
    )


def _reported(
    name: str, txid: str, verdict: RollbackVerdict, data: dict[str, object]
) -> HostResult:
    decision = verdict.decision
    kept = verdict.kept_note(txid)
    data["verdict"] = verdict.to_dict()
    if verdict.kept:
        data["kept"] = list(verdict.kept)
    if verdict.notes:
        data["unrelated"] = list(verdict.notes)
    data.update(verdict.outcome.data)
    said = f" ({verdict.outcome.summary})" if verdict.outcome.summary else ""
    if verdict.failed_steps:  # an operator's undo that exited non-zero, too
        data["failed_steps"] = verdict.failed_steps
    if not verdict.at_snapshot:
        data["differences"] = list(verdict.problems)
        summary = f"{txid} rollback ({decision}) did not complete: " if verdict.failed_steps else (
            f"{txid} rolled back ({decision}) but differs from its snapshot: ")  # fmt: skip
        return HostResult(name, Status.FAILED, summary + "; ".join(verdict.failures(txid))
                          + said + kept, data)  # fmt: skip
    return HostResult(
        name,
        Status.ROLLED_BACK,
        f"{txid} rolled back ({decision}); matches its snapshot in what it touched"
        + said
        + _unrelated_note(list(verdict.notes))
        + kept,
        data,
    )


async def _untrusted_marker(conn: Session, name: str, armed: ArmedTransaction) -> HostResult:
    """A damaged marker is removed once nothing fleetbr started runs on the host; a state this
    login cannot read fails (there is nothing it could safely do)."""
    data: dict[str, object] = {"armed_problem": armed.problem, "detail": armed.detail}
    if armed.problem != "damaged":
        return HostResult(name, Status.FAILED, armed.describe(), data)
    nonce = scripts.new_nonce()
    out = await conn.run_script(scripts.clear_marker_script(nonce=nonce), label="clear marker")
    verdict, _, rest = scripts.markers(out.stdout, nonce).get("clear", "").partition(" ")
    data["cleared"] = verdict in ("done", "gone")
    if verdict == "done":
        message = (
            f"removed the damaged armed marker ({armed.detail}); no fleetbr process was running"
        )
        return HostResult(name, Status.OK, message, data)
    if verdict == "gone":
        return HostResult(name, Status.OK, "no armed transaction: nothing to roll back", data)
    if verdict == "busy":
        txid, _, what = rest.partition(" ")
        message = (
            f"damaged armed marker ({armed.detail}) left in place: {what} of transaction {txid} "
            "is still running; run `fleetbr rollback` again once it has finished"
        )
    elif verdict == "usable":
        message = "the armed marker changed while it was examined; run `fleetbr rollback` again"
    else:
        message = f"cannot remove the damaged armed marker: {rest or 'no answer from the host'}"
    return HostResult(name, Status.FAILED, message, data)


def _unrelated_note(unrelated: list[str], shown: int = 5) -> str:
    if not unrelated:
        return ""
    more = (
        f"; and {len(unrelated) - shown} more (--json lists them)" if len(unrelated) > shown else ""
    )
    return (
        "; info, changed since the snapshot but not by fleetbr: "
        + "; ".join(unrelated[:shown])
        + more
    )


def staged_judged(txid: str, snapshot: str) -> Judged:
    """What ``txid`` is judged against, from the staged snapshot's output."""
    lines = split_sections(snapshot).get("touched")
    return Judged(txid, parse_facts(snapshot), None if lines is None else parse_touched(lines))
