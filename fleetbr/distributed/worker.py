"""The site worker's side of a chunk: check it, claim its hosts, run them, report them.

A worker trusts nothing in a message but its shape: the run must be running in the worker's own
history with the change's sha256, every host must be one of that run's hosts and in the worker's
own inventory at the worker's site, and the change kind must be one its settings allow. Hosts are
then claimed in the shared history (:meth:`~fleetbr.history.store.HistoryStore.claim_host`)
before anything is staged: a host that is already taken in this run (the chunk was delivered
twice, or its first worker was lost) is never staged again; it is resolved from its history row
and, when the worker that held it is gone, from the host's own state as ``--resume`` does
(:func:`fleetbr.resume.resolve_host`).

A chunk of ``apply --resume`` names, for some of its hosts, the transaction the resumed run
left there (:class:`~fleetbr.distributed.message.Left`): the run must resume that run and the
txid must be the one that run recorded for the host (else the host is refused); the worker
resolves it over its own connection (:func:`~fleetbr.distributed.takeover.resolve_left`) and
records it as the local resume does (the same rollout code, :class:`~fleetbr.resume.Prior`), then
applies the hosts that still need the change, under the same claim: one transaction per host
per run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbr.changes.bridge.task import TaskTemplate
from fleetbr.core import kinds
from fleetbr.core.assemble import execute_async
from fleetbr.core.request import ChangeRef, HistoryOptions, RolloutOptions, RunRequest, Selection
from fleetbr.distributed.config import Settings
from fleetbr.distributed.message import BadMessage, Chunk, Left, parse, result_to_json
from fleetbr.distributed.record import WorkerRecorder
from fleetbr.distributed.takeover import resolve_left, resolve_lost
from fleetbr.errors import FleetbrError
from fleetbr.history.lease import (
    LEASE,
    Lease,
    holder_alive,
    holders_text,
    identity,
    wait_bound,
    wait_released,
)
from fleetbr.history.location import HistoryLocation, open_store
from fleetbr.history.store import (
    STARTED,
    HistoryError,
    HistoryStore,
    HostRow,
    RunRecord,
    RunState,
)
from fleetbr.interrupt import Interruption
from fleetbr.inventory import HostSpec
from fleetbr.output import plain
from fleetbr.report import HostResult, Status
from fleetbr.resume import Prior, Resolution
from fleetbr.rollout import rollout_changes
from fleetbr.transaction.change import Change

log = logging.getLogger(__name__)
POLL = 0.5  # seconds between reads of a host row another worker holds
NO_HISTORY = "not started: the run history cannot be written"


@dataclass(frozen=True)
class WorkerContext:
    """What a site worker runs with: its site, its own inventory (with its keys) and history,
    and its settings. Set once in the worker's main process, before the pool forks."""

    site: str
    hosts: Mapping[str, HostSpec]
    history: HistoryLocation
    settings: Settings


_context: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    """Make ``context`` the one this process's chunks run with."""
    global _context  # noqa: PLW0603 (set once before the pool starts)
    _context = context


def handle(body: object, *, redelivered: bool = False) -> dict[str, Any]:
    """Run one chunk message; its hosts' results (JSON), refusals included."""
    if _context is None:
        raise RuntimeError("no worker context: start workers with `fleetbr worker --site SITE`")
    try:
        chunk = parse(body)
    except BadMessage as exc:
        log.warning("chunk refused: %s", plain(str(exc)))
        return {"refused": str(exc), "results": []}
    results = asyncio.run(run_chunk(_context, chunk, redelivered=redelivered))
    return {"worker": identity(), "results": [result_to_json(r) for r in results]}


async def run_chunk(
    context: WorkerContext, chunk: Chunk, *, redelivered: bool = False
) -> list[HostResult]:
    """The chunk's results in its host order (see the module docstring)."""
    refused, forged = _refusal(context, chunk)
    if refused:
        log.warning("chunk of run %d refused: %s", chunk.run_id, plain(refused))
        return [HostResult(h, Status.REFUSED, f"refused by site {context.site}'s worker: "
                           f"{refused}") for h in chunk.hosts]  # fmt: skip
    # host -> why, as logged and as its result says it: outsiders first, then forged entries
    turned_away = {h: ("not in this worker's inventory", "not in its inventory")
                   for h in chunk.hosts if h not in context.hosts}  # fmt: skip
    turned_away.update({h: (why, why) for h, why in forged.items() if h not in turned_away})
    for host, (logged, _) in turned_away.items():
        log.warning("run %d: host %s refused: %s", chunk.run_id, plain(host), plain(logged))
    specs = [context.hosts[h] for h in chunk.hosts if h not in turned_away]
    if chunk.command == "check":
        done = await _check(chunk, specs)
    else:
        done = await _apply(context, chunk, specs, redelivered=redelivered)
    for host, (_, why) in turned_away.items():
        done[host] = HostResult(host, Status.REFUSED, f"refused by site {context.site}'s worker:"
                                f" {why}")  # fmt: skip
    return [done[h] for h in chunk.hosts]


def _refusal(context: WorkerContext, chunk: Chunk) -> tuple[str, dict[str, str]]:
    """Why the whole chunk is refused ("" when it is not), and why single hosts are (their
    ``resolve`` entries are not what the resumed run recorded)."""
    if chunk.site != context.site:
        return f"the chunk is for site {chunk.site}", {}
    if chunk.change.kind not in context.settings.kinds:
        return f"change kind {chunk.change.kind!r} is not allowed on this worker", {}
    if chunk.change.kind != "bridge":
        return f"change kind {chunk.change.kind!r} does not run through site workers yet", {}
    if time.time() > chunk.start_by:
        return "the chunk arrived after its deadline to start", {}
    earlier = chunk.resumed_run
    try:
        store = open_store(context.history, create=False)
        try:
            run = store.run(chunk.run_id)
            rows = [] if earlier is None else store.hosts_of(earlier)
            later = store.resumed_by(chunk.run_id)
        finally:
            store.close()
    except HistoryError as exc:
        return f"run {chunk.run_id} cannot be read ({exc})", {}
    if run.state is not RunState.RUNNING or run.command != chunk.command:
        return f"run {chunk.run_id} is not a running {chunk.command}", {}
    if later is not None:  # the resume may be resolving its hosts: never two actors on one
        return f"run {chunk.run_id} was resumed by run {later}", {}
    if run.task_sha256 != chunk.change.sha256:
        return f"the change is not the one run {chunk.run_id} records (sha256)", {}
    strangers = [h for h in chunk.hosts if h not in run.hosts]
    if strangers:
        return f"host {strangers[0]} is not in run {chunk.run_id}", {}
    return _left_checked(chunk, run, rows)


def _left_checked(
    chunk: Chunk, run: RunRecord, rows: Sequence[HostRow]
) -> tuple[str, dict[str, str]]:
    """The chunk's ``resolve`` entries against the history: the run must resume their run, and
    each txid must be the one that run recorded for its host (else that host is refused)."""
    earlier = chunk.resumed_run
    if earlier is None:
        return "", {}
    if run.resumed_from != earlier:
        return f"run {chunk.run_id} does not resume run {earlier}", {}
    recorded = {row.host: row.txid for row in rows}
    return "", {host: f"transaction {left.txid} is not one run {earlier} recorded for it"
                for host, left in chunk.resolve.items()
                if recorded.get(host) != left.txid}  # fmt: skip


def _rendered(chunk: Chunk, specs: Sequence[HostSpec]) -> dict[str, Any]:
    kind = kinds.get(chunk.change.kind)
    loaded = kind.load(TaskTemplate(source=chunk.change.label, text=chunk.change.content))
    return {spec.name: kind.render(loaded, spec, chunk.change.label) for spec in specs}


async def _check(chunk: Chunk, specs: Sequence[HostSpec]) -> dict[str, HostResult]:
    template = TaskTemplate(source=chunk.change.label, text=chunk.change.content)
    request = RunRequest("check", Selection(hosts=tuple(specs)),
                         ChangeRef("bridge", template, label=chunk.change.label),
                         RolloutOptions(forks=chunk.forks), HistoryOptions(path=None))  # fmt: skip
    outcome = await execute_async(request)
    return dict(outcome.result.results)


async def _apply(
    context: WorkerContext, chunk: Chunk, specs: Sequence[HostSpec], *, redelivered: bool
) -> dict[str, HostResult]:
    try:
        changes = _rendered(chunk, specs)
    except FleetbrError as exc:
        return {s.name: HostResult(s.name, Status.FAILED, str(exc)) for s in specs}
    me = identity()
    try:
        claimed, taken = await asyncio.to_thread(_claim, context.history, chunk.run_id, specs, me)
    except HistoryError as exc:  # a claim whose answer was lost may have been taken: stage none
        log.warning("run %d: no host started: the run history cannot be written (%s)",
                    chunk.run_id, plain(str(exc)))  # fmt: skip
        return {s.name: HostResult(s.name, Status.SKIPPED, f"{NO_HISTORY} ({exc})")
                for s in specs}  # fmt: skip
    if taken:
        log.warning("run %d: %s already taken in this run (%s delivery): resolved, not staged "
                    "again", chunk.run_id, ", ".join(s.name for s in taken),
                    "a repeated" if redelivered else "another")  # fmt: skip
    recorder = WorkerRecorder(context.history, chunk.run_id, me, chunk.batch,
                              consequence="this worker starts no new host of the chunk; hosts "
                              "already armed finish (confirm or rollback)")  # fmt: skip
    try:
        claimed, refused = await _guarded(context, chunk, claimed)
        for result in refused.values():
            recorder.finished(result)
        applied = rollout_changes(claimed, changes, forks=chunk.forks, observer=recorder,
                                  interrupt=HistoryDown(recorder),
                                  prior=_prior(chunk, claimed, changes))  # fmt: skip
        waits = asyncio.gather(*(_taken(context, chunk, spec, changes[spec.name], recorder)
                                 for spec in taken))  # fmt: skip
        first, rest = await asyncio.gather(applied, waits)
    finally:
        await asyncio.to_thread(recorder.close)
    done = dict(first.results) | refused
    done.update({result.host: result for result in rest})
    return done


async def _guarded(
    context: WorkerContext, chunk: Chunk, claimed: Sequence[HostSpec]
) -> tuple[list[HostSpec], dict[str, HostResult]]:
    """The claimed hosts free to work on, and those refused: a run that resumes another waits
    (bounded) until no worker of that run holds the host any more (its lease released, run
    out, or its holder dead), as the resume itself did before it started."""
    try:
        still = await asyncio.to_thread(_resumed_run_holds, context.history, chunk.run_id,
                                        [spec.name for spec in claimed])  # fmt: skip
    except HistoryError as exc:  # whether the resumed run still holds them cannot be told
        return [], {spec.name: HostResult(spec.name, Status.SKIPPED, f"{NO_HISTORY} ({exc})")
                    for spec in claimed}  # fmt: skip
    if not still:
        return list(claimed), {}
    log.warning("run %d: still held by the run it resumes, refused: %s", chunk.run_id,
                plain(holders_text(still)))  # fmt: skip
    refused = {lease.host: HostResult(lease.host, Status.REFUSED, "not started: the run it "
                                      f"resumes still works on it ({holders_text([lease])})")
               for lease in still}  # fmt: skip
    return [spec for spec in claimed if spec.name not in refused], refused


def _resumed_run_holds(location: HistoryLocation, run_id: int, hosts: list[str]) -> list[Lease]:
    """The leases the run that run ``run_id`` resumes still holds on ``hosts`` after a bounded
    wait ([]: none, or run ``run_id`` resumes nothing)."""
    store = open_store(location)
    try:
        earlier = store.run(run_id).resumed_from
        if earlier is None or not hosts:
            return []

        def say(leases: Sequence[Lease]) -> None:
            log.warning("run %d: waiting for run %d to finish %s", run_id, earlier,
                        plain(holders_text(leases)))  # fmt: skip

        every = functools.partial(store.leases, earlier, hosts, lapsed=True)
        return wait_released(every, wait_bound(), say=say)
    finally:
        store.close()


def _prior(chunk: Chunk, claimed: Sequence[HostSpec], changes: dict[str, Change]) -> Prior | None:
    """What the resumed run left on the claimed hosts, for the rollout's resolve step (as the
    local resume: resolved first; decided or failed: final; else applied after)."""
    left = {spec.name: chunk.resolve[spec.name] for spec in claimed if spec.name in chunk.resolve}
    earlier = chunk.resumed_run
    if not left or earlier is None:
        return None

    async def resolver(spec: HostSpec, txid: str, run_id: int) -> Resolution:
        return await resolve_left(spec, changes[spec.name], txid, run_id)

    return Prior(earlier, resolve={host: entry.txid for host, entry in left.items()},
                 resolver=resolver)  # fmt: skip


class HistoryDown(Interruption):
    """Stops the chunk's new hosts (not yet started, or staged and not armed) once its rows
    cannot be written: a host armed then would leave no txid for ``--resume`` to resolve.
    Hosts already armed finish their transaction."""

    def __init__(self, recorder: WorkerRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    @property
    def requested(self) -> bool:
        """Ctrl-C, or the history failed."""
        return self.count > 0 or self.recorder.failed

    @property
    def reason(self) -> str:
        """Why hosts stop starting."""
        return "the run history cannot be written" if self.recorder.failed else super().reason


def _claim(
    location: HistoryLocation, run_id: int, specs: Sequence[HostSpec], me: str
) -> tuple[list[HostSpec], list[HostSpec]]:
    store = open_store(location)
    try:
        claimed: list[HostSpec] = []
        taken: list[HostSpec] = []
        for spec in specs:
            won = store.claim_host(run_id, spec.name, me, lease=LEASE)
            (claimed if won else taken).append(spec)
        return claimed, taken
    finally:
        store.close()


async def _taken(
    context: WorkerContext, chunk: Chunk, spec: HostSpec, change: Change,
    recorder: WorkerRecorder,
) -> HostResult:  # fmt: skip
    """A host another delivery holds: its result once that holder decides it; if the holder is
    gone, what the host's own state says (never staged again; :mod:`.takeover`)."""
    deadline = time.monotonic() + context.settings.visibility_timeout
    while True:
        try:
            row = await asyncio.to_thread(_row, context.history, chunk.run_id, spec.name)
        except HistoryError:  # a read, safe to repeat: the history may come back in time
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(POLL)
            continue
        if row is not None and row.status is not STARTED:
            return _from_row(row)
        if row is None or row.worker is None:  # the claim failed, not taken: the run is fenced
            return HostResult(spec.name, Status.SKIPPED, f"not started: run {chunk.run_id} was "
                              "resumed by another run meanwhile")  # fmt: skip
        holder = row.worker
        if holder_alive(holder) is False or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL)
    recorder.hold(spec.name)  # a resume must not touch the host while this worker resolves it
    result = await _resolve(spec, change, row, chunk.run_id, holder,
                            left=chunk.resolve.get(spec.name))  # fmt: skip
    recorder.finished(result)
    return result


def _row(location: HistoryLocation, run_id: int, host: str) -> HostRow | None:
    store: HistoryStore = open_store(location)
    try:
        return next((row for row in store.hosts_of(run_id) if row.host == host), None)
    finally:
        store.close()


def _from_row(row: HostRow) -> HostResult:
    assert isinstance(row.status, Status)
    data = dict(row.data) | {"duplicate": f"already decided by {row.worker}; not staged again"}
    return HostResult(row.host, row.status, row.message, data, row.elapsed or 0.0)


async def _resolve(
    spec: HostSpec, change: Change, row: HostRow | None, run_id: int, holder: str | None,
    *, left: Left | None = None,
) -> HostResult:  # fmt: skip
    lost = f"worker {holder} was lost"
    data: dict[str, Any] = {"resolved_after": holder}
    txid = None if row is None else row.txid
    if not txid:
        return HostResult(spec.name, Status.FAILED, f"{lost} before it recorded a transaction; "
                          "not staged again (one it armed rolls back by its own timer)",
                          data)  # fmt: skip
    data["txid"] = txid
    if left is not None and left.txid == txid:  # lost while it resolved the resumed run's
        run_id = left.run_id
    resolution = await resolve_lost(spec, change, txid, run_id)
    if resolution.final is not None:
        final = resolution.final
        final.data.update(data)
        final.message = f"{lost}: {final.message}; not staged again"
        return final
    status = Status.ROLLED_BACK if resolution.verdict is not None else Status.SKIPPED
    return HostResult(spec.name, status, f"{lost}: {resolution.note}; not staged again", data)
