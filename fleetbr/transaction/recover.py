"""``fleetbr rollback``: resolve an armed transaction (live or stale) by running its staged
rollback now, then verify the host against the facts snapshot taken when it was staged."""

from __future__ import annotations

from fleetbr.facts.gather import gather
from fleetbr.facts.parse import parse_facts
from fleetbr.inventory import HostSpec
from fleetbr.plan import diff_facts
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.protocol import rollback_finished, wait_settled
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
        snapshot = parse_facts((await conn.run_script(scripts.snapshot_script(txid),
                                                      label="snapshot")).stdout)  # fmt: skip
        after = await gather(conn)
    problems = diff_facts(snapshot, after)
    if problems:
        data["differences"] = problems
        summary = f"{txid} rolled back ({decision}) but differs from its snapshot: "
        return HostResult(spec.name, Status.FAILED, summary + "; ".join(problems), data)
    return HostResult(
        spec.name,
        Status.ROLLED_BACK,
        f"{txid} rolled back ({decision}); matches its snapshot",
        data,
    )
