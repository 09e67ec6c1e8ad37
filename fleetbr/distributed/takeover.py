"""A host whose worker was lost mid-transaction, taken over by the worker a redelivered chunk
reached: resolved from its history row (the txid) and the host's own state, never staged again.

Armed, applied and with time left on its timer: confirmed as the lost worker would have, by the
transaction's own resolver (:func:`fleetbr.transaction.protocol.resolve`) over a fresh
connection: the plan is made again from the facts snapshot staged with the transaction (the
facts the lost worker planned from), the host is verified against it and disarmed; a problem
found rolls it back and verifies it. Any other state is resolved as ``--resume`` resolves it
(:func:`fleetbr.resume.resolve_host`): still armed (the apply unfinished, or too little time
left): rolled back now and verified; decided: reported. ``apply --resume`` through the site
workers resolves the transactions the resumed run left the same way (:func:`resolve_left`).

The gateway probes that passed before the change are known only to the lost worker: a takeover
confirms without them (the fresh SSH connection and the verified state are the evidence).
"""

from __future__ import annotations

from fleetbr.facts.parse import parse_facts
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult
from fleetbr.resume import Resolution, resolve_host
from fleetbr.transaction import scripts
from fleetbr.transaction.change import Change
from fleetbr.transaction.hoststate import Action, Marker, next_action
from fleetbr.transaction.protocol import MARGIN, Transaction, min_timeout, read_state, resolve
from fleetbr.transport import open_session


async def take_over(
    spec: HostSpec, change: Change, txid: str, run_id: int, *, why: str = ""
) -> HostResult | None:
    """The host's result when its armed, applied ``txid`` can be confirmed (or was rolled back
    by the confirm's checks); None when it is not in that state: resolve it with
    :func:`resolve_lost`. ``why``: the note in the transaction's log."""
    async with open_session(spec) as conn:
        state = await read_state(conn, txid)
        confirmable = next_action(state, MARGIN) is Action.CONFIRM
        if state.armed_marker is not Marker.THIS or not confirmable:
            return None
        snapshot = (await conn.run_script(scripts.snapshot_script(txid), label="snapshot")).stdout
    before = parse_facts(snapshot)
    plan = change.plan(before, min_timeout(spec.ssh))
    if plan.refusal or plan.unchanged:  # not the plan that was applied: do not judge by it
        return None
    tx = Transaction(spec, change, before=before, plan=plan, txid=txid)
    tx.deadline = tx.clock.now() + change.timeout  # until the host's own count below
    tx.heard(state.remaining)
    why = why or f"taken over after its worker was lost (run {run_id})"
    tx.note(f"{why}: {state.summary()}")
    return await resolve(tx)


async def resolve_lost(spec: HostSpec, change: Change, txid: str, run_id: int) -> Resolution:
    """How a host a lost worker left with ``txid`` ends: confirmed when it can be
    (:func:`take_over`), else as ``--resume`` resolves it."""
    taken = await take_over(spec, change, txid, run_id)
    if taken is not None:
        return Resolution(taken, taken.message)
    return await resolve_host(spec, txid, run_id)


async def resolve_left(spec: HostSpec, change: Change, txid: str, run_id: int) -> Resolution:
    """``apply --resume`` through a site worker: the transaction ``txid`` that run ``run_id``
    (the run resumed) left on ``spec``. Armed, applied and with time left: confirmed as a
    takeover confirms it (:func:`take_over`); any other state as the local resume resolves it
    (:func:`fleetbr.resume.resolve_host`: rolled back now and verified, or reported decided)."""
    taken = await take_over(spec, change, txid, run_id,
                            why=f"resumed after run {run_id} stopped")  # fmt: skip
    if taken is None:
        return await resolve_host(spec, txid, run_id)
    taken.data.update(txid=txid, from_run=run_id)
    taken.message = f"{txid} of run {run_id} was armed and applied: {taken.message}"
    return Resolution(taken, taken.message)
