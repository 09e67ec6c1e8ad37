"""``fleetbr rollback``: resolve an armed transaction (live or stale) by running its staged
rollback now, then verify the host against the facts snapshot taken when it was staged.

The snapshot may be days old, so only what the transaction touched is compared: the staged facts
script carries the plan's objects as its ``touched`` section (fleetbr.plan.scope). Differences
elsewhere (a guest's tap device that came or went) are listed as ``unrelated``, never a failure.
A snapshot without that section (staged by an older fleetbr) is compared in full."""

from __future__ import annotations

from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts, split_sections
from fleetbr.inventory import HostSpec
from fleetbr.plan import RestoreCheck, restore_check
from fleetbr.plan.scope import parse_touched
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.protocol import rollback_finished, wait_decided
from fleetbr.transport import open_connection


async def rollback_job(spec: HostSpec) -> HostResult:
    """Roll back the host's armed transaction, if any, and verify it is back at its snapshot."""
    async with open_connection(spec) as conn:
        facts = await gather(conn)
        if facts.armed is None:
            return HostResult(spec.name, Status.OK, "no armed transaction: nothing to roll back")
        txid = facts.armed.txid
        data: dict[str, object] = {"txid": txid, "was_stale": facts.armed.stale}
        await conn.run_script(scripts.trigger_rollback_script(txid, "operator"), label="rollback")
        state = await wait_decided(conn, txid)
        decision = state.get("decision", "none")
        data["decision"] = decision
        if decision == "confirmed":
            return HostResult(
                spec.name, Status.CONFIRMED, f"{txid} was confirmed before the rollback ran", data
            )
        if not rollback_finished(state):
            return HostResult(spec.name, Status.FAILED, f"{txid} still undecided: {state}", data)
        snapshot = (await conn.run_script(scripts.snapshot_script(txid), label="snapshot")).stdout
        after = await gather(conn)
    check = compare_with_snapshot(snapshot, after)
    if check.unrelated:
        data["unrelated"] = check.unrelated
    if check.problems:
        data["differences"] = check.problems
        summary = f"{txid} rolled back ({decision}) but differs from its snapshot: "
        return HostResult(spec.name, Status.FAILED, summary + "; ".join(check.problems), data)
    return HostResult(
        spec.name,
        Status.ROLLED_BACK,
        f"{txid} rolled back ({decision}); matches its snapshot in what it touched"
        + _unrelated_note(check.unrelated),
        data,
    )


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
