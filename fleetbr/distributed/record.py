"""A site worker's rows in the shared history: the run exists already (the coordinator created
it); the worker writes each host's phases as they happen, under its own name."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from fleetbr.history.location import HistoryLocation
from fleetbr.history.record import Recorder, controller_identity, history_timeout, process_start
from fleetbr.history.store import HistoryStore, RunRecord

CLOSE_WAIT = 30.0  # seconds a chunk's end waits for its rows to be written


def identity() -> str:
    """This process as a history row's ``worker``: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def holder_alive(worker: str | None) -> bool | None:
    """Whether the process that holds a host still runs: None when it cannot be told from here
    (another machine, an unknown form)."""
    host, _, rest = (worker or "").partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or not start:
        return None
    return process_start(int(pid)) == start


class WorkerRecorder(Recorder):
    """Records the hosts of one chunk of run ``run_id`` (batch ``batch``) as ``worker``."""

    def __init__(self, path: HistoryLocation, run_id: int, worker: str, batch: int | None) -> None:
        run = RunRecord("apply", [], {}, time.time(), controller_identity(), id=run_id)
        super().__init__(path, run, timeout=history_timeout())
        self.worker = worker
        self.batch_index = batch

    def _create(self, store: HistoryStore) -> None:
        """The coordinator created the run."""

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """The worker's own rollout of a chunk is one batch; the run's batch stays."""

    def close(self) -> None:
        """Wait (bounded) for the rows queued so far, then stop the writer."""
        self.flush(CLOSE_WAIT)
        self._queue.put(None)
        self._thread.join(CLOSE_WAIT)
