"""``fleetbr rollback``: resolve an armed transaction (live or stale) by running its staged
rollback now, then verify the host against the facts snapshot taken when it was staged.

The snapshot may be days old, so only what the transaction touched is compared: the staged facts
script carries the plan's objects as its ``touched`` section (fleetbr.plan.scope). Differences
elsewhere (a guest's tap device that came or went) are listed as ``unrelated``, never a failure.
A snapshot without that section (staged by an older fleetbr) is compared in full."""

from __future__ import annotations

from fleetbr.facts.filemeta import kept_note
from fleetbr.facts.gather import gather
from fleetbr.facts.model import STATE_DIR, ArmedTransaction, HostFacts
from fleetbr.facts.parse import parse_facts, split_sections
from fleetbr.inventory import HostSpec
from fleetbr.plan import RestoreCheck, restore_check
from fleetbr.plan.scope import parse_touched
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.protocol import rollback_finished, wait_settled
from fleetbr.transport import Session, open_session


async def rollback_job(spec: HostSpec) -> HostResult:
    """Roll back the host's armed transaction, if any, and verify it is back at its snapshot."""
    async with open_session(spec) as conn:
        facts = await gather(conn)
        if facts.armed is None:
            return HostResult(spec.name, Status.OK, "no armed transaction: nothing to roll back")
        if facts.armed.problem:
            return await _untrusted_marker(conn, spec.name, facts.armed)
        txid = facts.armed.txid
        data: dict[str, object] = {"txid": txid, "was_stale": facts.armed.stale}
        await conn.run_script(scripts.trigger_rollback_script(txid, "operator"), label="rollback")
        state = await wait_settled(conn, txid)
        decision = state.decision
        data["decision"] = decision
        if decision == "confirmed":
            return HostResult(
                spec.name, Status.CONFIRMED, f"{txid} was confirmed before the rollback ran", data
            )
        if not rollback_finished(state):
            summary = f"{txid} still undecided: {state.summary()}"
            return HostResult(spec.name, Status.FAILED, summary, data)
        snapshot = (await conn.run_script(scripts.snapshot_script(txid), label="snapshot")).stdout
        after = await gather(conn)
    check = compare_with_snapshot(snapshot, after)
    kept = kept_note(after.kept, txid, STATE_DIR)
    if kept:
        data["kept"] = list(after.kept[txid])
    if check.unrelated:
        data["unrelated"] = check.unrelated
    failed = state.rollback.removeprefix("done failed=")
    if failed.isdigit() and int(failed):  # an operator's undo that exited non-zero, too
        data["failed_steps"] = int(failed)
        summary = (
            f"{txid} rollback ({decision}) did not complete: {failed} rollback step(s) failed "
            f"on the host (see {STATE_DIR}/tx/{txid}/apply.log)"
        )
        return HostResult(spec.name, Status.FAILED, summary, data)
    if check.problems:
        data["differences"] = check.problems
        summary = f"{txid} rolled back ({decision}) but differs from its snapshot: "
        text = summary + "; ".join(check.problems) + kept
        return HostResult(spec.name, Status.FAILED, text, data)
    return HostResult(
        spec.name,
        Status.ROLLED_BACK,
        f"{txid} rolled back ({decision}); matches its snapshot in what it touched"
        + _unrelated_note(check.unrelated)
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


def compare_with_snapshot(snapshot: str, after: HostFacts) -> RestoreCheck:
    """The host against the staged snapshot output, within the transaction's ``touched`` scope."""
    lines = split_sections(snapshot).get("touched")
    touched = None if lines is None else parse_touched(lines)
    return restore_check(parse_facts(snapshot), after, touched)
