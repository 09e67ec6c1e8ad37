"""The coordinator's runner (``--executor celery``): each batch the rollout hands it is split by
site, sent as one chunk per site to the site's queue, and waited for.

The rollout above it is the local one, untouched: canary, batches, ``--max-failures``, Ctrl-C,
the report and the exit code work on the results this runner returns. The per-host job closure
it is given is not called (it cannot cross a process); the work travels as
:class:`~fleetbr.distributed.message.Chunk` messages. The coordinator records the run and every
host's final row; the workers claim the hosts and write their phases as they happen.

``apply --resume`` of a run that left transactions to resolve (rows ``started`` with a txid):
the rollout's resolve step is not done here (the coordinator has no keys); each such host goes
to its site's worker in its batch's chunk with the txid and the run that left it
(:class:`~fleetbr.distributed.message.Left`), and the worker resolves it before it applies.

A chunk no worker starts by its deadline (the settings' ``start_wait``, or at once after
Ctrl-C) is given up: the coordinator claims its hosts itself (a worker that starts it later finds
them taken and stages nothing) and reports them ``skipped`` ("not started").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetbr.distributed.app import CHUNK_TASK, make_app, queue_of
from fleetbr.distributed.config import Settings, load_settings
from fleetbr.distributed.message import (
    BadMessage,
    ChangeSpec,
    Chunk,
    Left,
    result_from_json,
    sites_of,
)
from fleetbr.errors import UsageError
from fleetbr.history.lease import identity
from fleetbr.history.location import DatabaseUrl, HistoryLocation, open_store
from fleetbr.history.store import HistoryError, HostRow
from fleetbr.interrupt import Interruption
from fleetbr.inventory import HostSpec
from fleetbr.observe import Observers, RunObserver
from fleetbr.output import plain
from fleetbr.pacing import WindowPacer
from fleetbr.report import AggregatedResult, HostResult, Status
from fleetbr.runner import HostJob

if TYPE_CHECKING:
    from celery import Celery
    from celery.result import AsyncResult

    from fleetbr.core.assemble import Prepared
    from fleetbr.history.record import Recorder, RunContext

log = logging.getLogger(__name__)
COMMANDS = frozenset({"apply", "check"})
POLL = 0.5  # seconds between looks at a chunk's state
CHUNK_GRACE = 600.0  # seconds beyond start wait and redeliveries a started chunk may take
RUN_ID_WAIT = 30.0  # seconds to wait for the history to take the run before sending anything
NO_HISTORY = "not started: the run history cannot be written"
READY = frozenset({"SUCCESS", "FAILURE", "REVOKED"})  # celery.states.READY_STATES


@dataclass
class _Work:
    """What the chunks carry, taken from the prepared run."""

    command: str
    change: ChangeSpec
    location: HistoryLocation
    observer: RunObserver
    recorder: Recorder
    interrupt: Interruption
    left: dict[str, Left] = field(default_factory=dict)  # --resume: what the resumed run left
    batch: int = -1
    sent: dict[str, float] = field(default_factory=dict)


class CeleryRunner:
    """Runs each batch on the site workers (module docstring)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._app: Celery | None = None
        self._work: _Work | None = None

    @property
    def settings(self) -> Settings:
        """The distributed settings (read when first needed)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def pacer(self, forks: int) -> WindowPacer:
        """The coordinator's pacer (the workers pace their own hosts)."""
        return WindowPacer(forks)

    def check(self, prepared: Prepared) -> None:
        """The commands, change kinds and history the site workers can take (UsageError)."""
        request = prepared.request
        if request.diff:  # apply --diff plans first: say why, not that plan is not supported
            raise UsageError("--diff with the celery executor is not supported yet")
        if request.command not in COMMANDS or request.recorded_name != request.command:
            raise UsageError(f"{request.recorded_name}: not a command site workers run (the "
                             "celery executor runs apply and check)")  # fmt: skip
        if not isinstance(request.history.path, DatabaseUrl):
            raise UsageError(
                "the celery executor needs the run history in PostgreSQL "
                "(--history postgresql://...), shared with the site workers"
            )
        if request.change is None or request.change.kind != "bridge":
            raise UsageError("the celery executor runs bridge tasks only (for now)")
        if request.change.recorded_file is None:
            raise UsageError("the celery executor sends a task file's content: give TASK")
        sites_of(prepared.hosts)
        self.settings  # noqa: B018 (no broker configured: exit 2 before anything is recorded)

    def attach(self, prepared: Prepared, context: RunContext, interrupt: Interruption) -> None:
        """Take the work description and the observers of the run about to start."""
        request, recorder = prepared.request, context.recorder
        assert request.change is not None and request.change.recorded_file is not None
        assert isinstance(request.history.path, DatabaseUrl) and recorder is not None
        task = request.change.recorded_file
        content = task.read_bytes().decode()
        label = request.change.label or task.name
        recorder.worker = None  # the site workers claim the hosts
        observer = Observers(context.observer, _BatchIndex(self))
        prior = prepared.prior
        left = {} if prior is None else {h: Left(t, prior.run_id) for h, t in prior.resolve.items()}
        # a host the rollout settles without sending it (skipped) keeps its txid to resolve
        recorder.txids.update({host: entry.txid for host, entry in left.items()})
        self._work = _Work(request.command, ChangeSpec.of("bridge", content, label),
                           request.history.path, observer, recorder, interrupt, left)  # fmt: skip

    async def run(
        self, command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
    ) -> AggregatedResult:
        """``hosts`` on their sites' workers; ``job`` is not called (module docstring)."""
        work = self._work
        if not hosts or command == "resolve":  # a resume's hosts to resolve: in their batches
            return AggregatedResult(command)
        if work is None or command != work.command:
            raise UsageError(f"{command}: not something the celery executor runs")
        run_id = await _run_id(work.recorder)
        work.recorder.consequence = history_lost(run_id)
        for spec in hosts:
            work.observer.started(spec.name)
            if spec.name in work.left:  # as the local resolve step: the txid until it is resolved
                work.observer.staged(spec.name, work.left[spec.name].txid)
        await asyncio.to_thread(work.recorder.flush, RUN_ID_WAIT)
        stop = work.interrupt.stop  # the run lease lost meanwhile (history.md, Leases)
        if work.recorder.failed or stop is not None:  # rows written, run lease held, or none
            why = NO_HISTORY if stop is None else f"not started: {stop}"
            return _report(work, hosts, {s.name: HostResult(s.name, Status.SKIPPED, why,
                                                            {"site": s.data.get("site")})
                                         for s in hosts})  # fmt: skip
        start_by = time.time() + self.settings.start_wait
        waits = [self._one_site(work, _chunk(work, run_id, site, specs, start_by=start_by,
                                             forks=forks))
                 for site, specs in sites_of(hosts).items()]  # fmt: skip
        found: dict[str, HostResult] = {}
        for part in await asyncio.gather(*waits):
            found.update(part)
        return _report(work, hosts, found)

    @property
    def app(self) -> Celery:
        """The Celery app (built when first needed)."""
        if self._app is None:
            self._app = make_app(self.settings)
        return self._app

    async def _one_site(self, work: _Work, chunk: Chunk) -> dict[str, HostResult]:
        sent = await asyncio.to_thread(self.app.send_task, CHUNK_TASK, args=[chunk.to_json()],
                                       queue=queue_of(chunk.site))  # fmt: skip
        return await _Waiter(self, work, chunk, sent).results()


def _chunk(
    work: _Work, run_id: int, site: str, specs: Sequence[HostSpec], *, start_by: float, forks: int
) -> Chunk:
    names = tuple(spec.name for spec in specs)
    left = {name: work.left[name] for name in names if name in work.left}
    return Chunk(run_id, work.command, site, names, work.change, max(work.batch, 0), start_by,
                 forks, left)  # fmt: skip


def history_lost(run_id: int) -> str:
    """What the coordinator's one warning line says when the history cannot be written."""
    return (f"no new host starts; hosts already armed finish on their site workers (confirm or "
            f"rollback); once it is back, `fleetbr apply --resume {run_id}` finishes the "
            "run")  # fmt: skip


def _report(work: _Work, hosts: Sequence[HostSpec], found: dict[str, HostResult]
            ) -> AggregatedResult:  # fmt: skip
    aggregated = AggregatedResult(work.command)
    for spec in hosts:  # the final row carries the txid (the worker recorded it first)
        result = found[spec.name]
        work.observer.finished(result)
        aggregated.add(result)
    return aggregated


class _BatchIndex:
    """Keeps the runner told which batch the rollout is in (for the chunks)."""

    def __init__(self, runner: CeleryRunner) -> None:
        self.runner = runner

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        if self.runner._work is not None:
            self.runner._work.batch = index

    def started(self, host: str) -> None:
        """Not needed."""

    def staged(self, host: str, txid: str) -> None:
        """Not needed."""

    def finished(self, result: HostResult) -> None:
        """Not needed."""


async def _run_id(recorder: Recorder) -> int:
    deadline = time.monotonic() + RUN_ID_WAIT
    while not recorder.run_id:
        if recorder.failed or time.monotonic() > deadline:
            raise UsageError("the run history did not take the run; the site workers check every "
                             "chunk against it, so nothing was sent")  # fmt: skip
        await asyncio.sleep(0.05)
    return recorder.run_id


@dataclass
class _Waiter:
    """Waits for one chunk: its results, or its hosts given up (never started)."""

    runner: CeleryRunner
    work: _Work
    chunk: Chunk
    sent: AsyncResult
    gave_up: bool = False

    async def results(self) -> dict[str, HostResult]:
        settings = self.runner.settings
        bound = settings.start_wait + 2 * settings.visibility_timeout + CHUNK_GRACE
        hard = time.monotonic() + bound
        while True:
            try:
                state = await asyncio.to_thread(lambda: self.sent.state)
                # a chunk's meta is cached once it is ready: one broker read per poll
                value = self.sent.result if state in READY else None
            except Exception as exc:  # a broker restarting: kombu's and redis' errors
                log.warning("site %s: the broker did not answer (%s); waiting on",
                            self.chunk.site, plain(str(exc)))  # fmt: skip
                state = value = None
            if state == "SUCCESS":
                return self._read(value)
            if state in ("FAILURE", "REVOKED"):
                return self._all(Status.FAILED, f"site {self.chunk.site}: the chunk ended "
                                 f"{state.lower()}: {value!s:.200}")  # fmt: skip
            late = time.time() > self.chunk.start_by or self.work.interrupt.requested
            if state == "PENDING" and late and not self.gave_up:
                given_up = await asyncio.to_thread(self._give_up)
                if given_up is not None:
                    return given_up
            if time.monotonic() > hard:
                return self._all(Status.FAILED, f"site {self.chunk.site}: no result from its "
                                 "worker in time; see `fleetbr show` for its hosts")  # fmt: skip
            await asyncio.sleep(POLL)

    def _give_up(self) -> dict[str, HostResult] | None:
        """Claim the chunk's hosts so no worker starts them any more; None when a worker took
        some meanwhile: the hosts claimed here are recorded ``skipped`` at once (the worker
        reads their rows and stages nothing on them), and the chunk's result is waited for."""
        self.gave_up = True
        stop = self.work.interrupt.stop_not_pressed
        why = ("interrupted (Ctrl-C)" if self.work.interrupt.pressed else
               str(stop) if stop is not None else
               f"no worker of site {self.chunk.site} started it within "
               f"{self.runner.settings.start_wait:g} s")  # fmt: skip
        message, me = f"not started: {why}", identity()
        try:
            store = open_store(self.work.location)
        except HistoryError as exc:
            return self._not_recorded(exc)
        try:
            mine = [h for h in self.chunk.hosts if store.claim_host(self.chunk.run_id, h, me)]
            if len(mine) < len(self.chunk.hosts):
                for host in mine:
                    row = HostRow(host, Status.SKIPPED, message, ended=time.time(), worker=me)
                    store.put_host(self.chunk.run_id, row)
                return None
        except HistoryError as exc:
            return self._not_recorded(exc)
        finally:
            store.close()
        self.sent.revoke()
        return self._all(Status.SKIPPED, message)

    def _not_recorded(self, exc: HistoryError) -> dict[str, HostResult] | None:
        """The hosts cannot be claimed: a chunk past its start deadline is never started by a
        worker (it checks), so it is given up; else (Ctrl-C) it is waited for until then."""
        if time.time() <= self.chunk.start_by:
            self.gave_up = False
            return None
        self.sent.revoke()
        return self._all(Status.SKIPPED, f"{NO_HISTORY} ({exc})")

    def _all(self, status: Status, message: str) -> dict[str, HostResult]:
        return {h: HostResult(h, status, message, {"site": self.chunk.site})
                for h in self.chunk.hosts}  # fmt: skip

    def _read(self, value: Any) -> dict[str, HostResult]:
        items = value.get("results") if isinstance(value, dict) else None
        try:
            results = [result_from_json(item) for item in items or []]
        except BadMessage as exc:
            return self._all(Status.FAILED, f"site {self.chunk.site}: {exc}")
        found = {r.host: r for r in results if r.host in self.chunk.hosts}
        if set(found) != set(self.chunk.hosts):
            refused = value.get("refused", "") if isinstance(value, dict) else ""
            return self._all(
                Status.REFUSED if refused else Status.FAILED,
                f"site {self.chunk.site}: {refused or 'an incomplete result'}",
            )
        worker = value.get("worker") if isinstance(value, dict) else None
        for result in found.values():
            result.data.setdefault("site", self.chunk.site)
            if isinstance(worker, str):  # the worker that ran the chunk (a host's row may name
                result.data.setdefault("worker", worker)  # another: a lost one's taker)
        return found
