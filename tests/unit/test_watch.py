"""The watch loop without hosts: a fixed grid, never two runs at once, missed ticks skipped, and
what a signal does between runs, during a check run and during a repair run."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from fleetbr.errors import UsageError
from fleetbr.report import AggregatedResult
from fleetbr.watch import Watcher, WatchSpec, parse_every


class Recorder(Watcher):
    """A watcher whose runs only sleep ``run_time`` and record when they ran."""

    def __init__(self, every: float, run_time: float, repair: bool = False) -> None:
        super().__init__(None, WatchSpec(Path("t.yaml"), every, repair, 1, True))
        self.run_time = run_time
        self.spans: list[tuple[float, float]] = []
        self.active = 0
        self.overlapped = False
        self.finished = 0

    async def _one_run(self) -> AggregatedResult:
        loop = asyncio.get_running_loop()
        self.active += 1
        self.overlapped |= self.active > 1
        start = loop.time()
        try:
            await asyncio.sleep(self.run_time)
            self.finished += 1
        finally:
            self.active -= 1
            self.spans.append((start, loop.time()))
        return AggregatedResult("apply" if self.spec.repair else "check")

    def _report(self, *args: object) -> None:
        pass


async def _run_then_signal(watcher: Recorder, after: float) -> int:
    loop = asyncio.get_running_loop()
    loop.call_later(after, os.kill, os.getpid(), signal.SIGTERM)
    return await watcher.run()


@pytest.mark.parametrize(
    ("text", "seconds"), [("3s", 3), ("15m", 900), ("2h", 7200), ("1d", 86400)]
)
def test_periods(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "0s", "1.5m", "-1m", "15 m", "1w", "15min"])
def test_bad_periods_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_every(text)


def test_runs_follow_the_grid_and_never_overlap() -> None:
    watcher = Recorder(every=0.2, run_time=0.05)
    assert asyncio.run(_run_then_signal(watcher, 0.9)) == 0
    starts = [start - watcher.spans[0][0] for start, _ in watcher.spans]
    assert len(starts) >= 2 and not watcher.overlapped
    # each run in a grid slot of its own: a late wake-up can only skip slots, never share one
    slots = [int((s + 0.01) // 0.2) for s in starts]
    assert slots == sorted(set(slots))


def test_a_long_run_skips_missed_ticks_instead_of_queueing_them() -> None:
    watcher = Recorder(every=0.1, run_time=0.35)
    asyncio.run(_run_then_signal(watcher, 1.0))
    assert not watcher.overlapped
    gaps = [b[0] - a[1] for a, b in zip(watcher.spans, watcher.spans[1:], strict=False)]
    assert gaps and all(g > 0 for g in gaps)  # the next run waits for the next grid point
    assert len(watcher.spans) <= 3  # 1 s / 0.35 s, not 1 s / 0.1 s


def test_sigterm_abandons_a_check_run_but_lets_a_repair_run_finish() -> None:
    check = Recorder(every=10, run_time=5)
    asyncio.run(_run_then_signal(check, 0.2))
    assert check.finished == 0  # abandoned: a check changes nothing
    repair = Recorder(every=10, run_time=0.6, repair=True)
    asyncio.run(_run_then_signal(repair, 0.2))
    assert repair.finished == 1 and len(repair.spans) == 1  # finished, and no new run
