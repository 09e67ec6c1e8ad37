"""The read-only ``fleetbr status`` job: the transaction journals on the hosts (the kinds' dry
runs are theirs: :mod:`fleetbr.changes.bridge.dryrun`)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetbr.facts.filemeta import kept_note
from fleetbr.facts.gather import gather
from fleetbr.facts.model import STATE_DIR
from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.hoststate import JournalEvent, parse_event
from fleetbr.transport import Transport, open_session
from fleetbr.validate import split_lines


@dataclass(frozen=True)
class JournalEntry:
    """One journal line: ``EPOCH TXID EVENT [detail]``."""

    at: int
    txid: str
    event: str
    detail: str


def parse_journal(text: str) -> list[JournalEntry]:
    """Parse journal lines, skipping malformed ones (a torn last line after a crash)."""
    entries = []
    for line in split_lines(text):
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0].isdigit():
            entries.append(JournalEntry(int(parts[0]), parts[1], parts[2], "".join(parts[3:])))
    return entries


def last_state(entries: list[JournalEntry]) -> dict[str, JournalEntry]:
    """The latest entry of each transaction, oldest transaction first."""
    latest: dict[str, JournalEntry] = {}
    for entry in entries:
        latest.pop(entry.txid, None)
        latest[entry.txid] = entry
    return latest


async def status_job(spec: HostSpec, *, transport: Transport | None = None) -> HostResult:
    """Where this host stands: armed (live or stale) transaction and its journal's last states."""
    async with open_session(spec, transport=transport) as conn:
        facts = await gather(conn)
        journal = await conn.run_script(scripts.journal_script(), label="journal")
    history = last_state(parse_journal(journal.stdout))
    data: dict[str, object] = {
        "transactions": {
            txid: {"state": e.event, "at": e.at, "detail": e.detail} for txid, e in history.items()
        },
        "armed": facts.armed.txid if facts.armed else None,
    }
    if facts.armed is not None and facts.armed.boot_guard_failed:
        data["boot_guard_failed"] = facts.armed.boot_guard_failed
        return HostResult(spec.name, Status.FAILED, facts.armed.describe(), data=data)
    if facts.armed is not None and facts.armed.problem:
        data["armed_problem"] = facts.armed.problem
        return HostResult(spec.name, Status.FAILED, facts.armed.describe(), data=data)
    if facts.armed is not None and facts.armed.stale:
        data["stale"] = True
        return HostResult(
            spec.name, Status.FAILED,
            f"STALE armed transaction {facts.armed.txid}: its timer is gone or the host rebooted; "
            "the host is in an unconfirmed state - inspect it, then roll back or clear it",
            data=data,
        )  # fmt: skip
    if facts.armed is not None:
        left = facts.armed.deadline - facts.armed.now
        return HostResult(
            spec.name, Status.OK, f"armed {facts.armed.txid}, timer fires in {left}s", data=data
        )
    if not history:
        return HostResult(spec.name, Status.OK, "no fleetbr transaction recorded", data=data)
    if facts.kept:
        data["kept"] = {txid: list(paths) for txid, paths in facts.kept.items()}
    txid, entry = next(reversed(history.items()))
    text = f"last {txid}: {entry.event} {entry.detail}{kept_note(facts.kept, txid, STATE_DIR)}"
    if rollback_failed(entry):
        return HostResult(spec.name, Status.FAILED, f"{text}: the host is NOT back", data=data)
    return HostResult(spec.name, Status.OK, text, data=data)


def rollback_failed(entry: JournalEntry) -> bool:
    """The entry records a rollback that did not complete: ``rollback_failed`` (the boot guard),
    or ``rolled_back`` with failed steps (a runtime rollback)."""
    event = parse_event(entry.event)
    if event is JournalEvent.ROLLBACK_FAILED:
        return True
    failed = entry.detail.partition("failed_steps=")[2].split(" ")[0]
    return event is JournalEvent.ROLLED_BACK and failed.isdigit() and int(failed) > 0
