"""A site worker's rows in the shared history: the run exists already (the coordinator created
it); the worker writes each host's phases as they happen, under its own name, and keeps the
leases on the hosts it holds alive until each host's final row (:mod:`fleetbr.history.lease`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from fleetbr.history.lease import LEASE
from fleetbr.history.location import HistoryLocation
from fleetbr.history.record import Recorder, controller_identity, history_timeout
from fleetbr.history.store import HistoryStore, RunRecord

CLOSE_WAIT = 30.0  # seconds a chunk's end waits for its rows to be written


class WorkerRecorder(Recorder):
    """Records the hosts of one chunk of run ``run_id`` (batch ``batch``) as ``worker``."""

    drives_run: ClassVar[bool] = False  # the coordinator holds the run lease

    def __init__(
        self,
        path: HistoryLocation,
        run_id: int,
        worker: str,
        batch: int | None,
        *,
        consequence: str = "the run goes on",
    ) -> None:
        run = RunRecord("apply", [], {}, time.time(), controller_identity(), id=run_id)
        super().__init__(path, run, timeout=history_timeout(), consequence=consequence)
        self.worker = self.holder = worker
        self.batch_index = batch

    def _create(self, store: HistoryStore) -> None:
        """The coordinator created the run."""

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """The worker's own rollout of a chunk is one batch; the run's batch stays."""

    def hold(self, host: str) -> None:
        """Take the lease on ``host`` (a lost holder's host this worker resolves from now on)."""
        self._queue.put(lambda store: store.hold(self.run.id, host, self.holder, LEASE))

    def close(self) -> None:
        """Wait (bounded) for the rows queued so far, then stop the writer."""
        self._heartbeat.stop()
        self.flush(CLOSE_WAIT)
        self._queue.put(None)
        self._thread.join(CLOSE_WAIT)
