"""Observers of a run: told when a batch starts, a host starts, stages a transaction and ends.

The run history (``fleetbr.history.record``), the live progress display (``fleetbr.progress``) and
the metrics file are observers; the rollout and the CLI call them, never the other way round. An
observer must not raise, block or slow the event loop: it is called from it, between the steps of
armed hosts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from fleetbr.inventory import HostSpec
from fleetbr.report import HostResult
from fleetbr.runner import HostJob, run_one


class RunObserver(Protocol):
    """What a run tells its observers."""

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """Batch ``index`` (0-based) of ``count`` starts with ``hosts``."""

    def started(self, host: str) -> None:
        """``host`` starts (its first connection is being opened)."""

    def staged(self, host: str, txid: str) -> None:
        """``host`` staged transaction ``txid`` and is about to arm it."""

    def finished(self, result: HostResult) -> None:
        """``result`` is where its host ended (also for hosts skipped or carried over)."""


class Observers:
    """Several observers as one (any of them may be left out as None)."""

    def __init__(self, *observers: RunObserver | None) -> None:
        self.observers = [o for o in observers if o is not None]

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """See :class:`RunObserver`."""
        for observer in self.observers:
            observer.batch(index, count, hosts)

    def started(self, host: str) -> None:
        """See :class:`RunObserver`."""
        for observer in self.observers:
            observer.started(host)

    def staged(self, host: str, txid: str) -> None:
        """See :class:`RunObserver`."""
        for observer in self.observers:
            observer.staged(host, txid)

    def finished(self, result: HostResult) -> None:
        """See :class:`RunObserver`."""
        for observer in self.observers:
            observer.finished(result)


def observed(job: HostJob, observer: RunObserver | None, *, announce: bool = True) -> HostJob:
    """``job`` telling ``observer`` when each host starts (unless the job does, ``announce``
    False) and ends (errors already turned into results, as the runner does, so a host that
    raised is reported too)."""
    if observer is None:
        return job

    async def wrapper(spec: HostSpec) -> HostResult:
        if announce:
            observer.started(spec.name)
        started = time.monotonic()
        result = await run_one(spec, job)
        result.elapsed = time.monotonic() - started
        observer.finished(result)
        return result

    return wrapper
