"""Pacing of an apply rollout: never open more dead-man windows than the controller can confirm.

Every armed host is a deadline: its confirm (a new SSH connection, facts, probes, disarm) must
finish before the host's timer fires. A controller that keeps starting new hosts while confirms
wait for CPU turns a slow run into a mass rollback. So, on top of ``--forks``:

- hosts in flight (from facts to decision) are bounded by an adaptive ``capacity``: it starts
  small, grows by one for every confirm that took less than a quarter of its timeout, and halves
  (at most once per quarter timeout) when a confirm took more than half of it (AIMD, as TCP);
- no new host starts while the event loop lags (the controller itself is short of CPU), so the
  confirms already under way come first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

START = 8  # hosts in flight at the start of a rollout
GROW_BELOW = 0.25  # a confirm faster than this share of its timeout: one more host in flight
SHRINK_ABOVE = 0.5  # slower than this share: half as many
LAG_LIMIT = 0.25  # seconds of event-loop lag above which no new host starts
TICK = 0.1


class WindowPacer:
    """Admission control for hosts of one apply rollout (see the module docstring).

    Waiting hosts queue in order and are woken one by one as places free up, never polled: with
    every host of a batch waiting here, polling and waking them all on each change cost O(hosts)
    per host (~1000 hosts of a 1000-host batch woken ten times a second).
    """

    def __init__(self, forks: int, start: int = START, lag_limit: float = LAG_LIMIT) -> None:
        self.ceiling = max(1, forks)
        self.lag_limit = lag_limit
        self.capacity = min(self.ceiling, max(1, start))
        self.active = 0
        self._lag = 0.0
        self.opened: dict[str, tuple[float, float]] = {}  # host -> (armed at, its timeout)
        self.last_cut = 0.0
        self.peak = self.capacity
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def lag(self) -> float:
        """The event loop's recent lag in seconds (:meth:`watch_lag`)."""
        return self._lag

    @lag.setter
    def lag(self, value: float) -> None:
        self._lag = value
        self._wake()

    def _room(self) -> bool:
        return self.active < self.capacity and self._lag <= self.lag_limit

    def _wake(self) -> None:
        """Hand free places to the longest-waiting hosts (a place is taken when handed over)."""
        while self._waiting and self._room():
            waiter = self._waiting.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of ``capacity`` places while a host's transaction runs."""
        if self._waiting or not self._room():
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed a place just before the cancel: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(waiter)
                raise
        else:
            self.active += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.active -= 1
        self._wake()

    def armed(self, host: str, timeout: float) -> None:
        """``host``'s dead-man window opened (its arm script was sent)."""
        self.opened[host] = (time.monotonic(), timeout)

    def decided(self, host: str, confirmed: bool) -> None:
        """``host``'s window closed; a confirm's duration tunes the capacity."""
        armed_at, timeout = self.opened.pop(host, (0.0, 0.0))
        if not armed_at or not confirmed:
            return  # a rollback's duration is the host's timer, not the controller's speed
        took = time.monotonic() - armed_at
        if took > SHRINK_ABOVE * timeout:
            now = time.monotonic()
            if now - self.last_cut > timeout / 4:
                self.capacity = max(1, self.capacity // 2)
                self.last_cut = now
        elif took < GROW_BELOW * timeout:
            self.capacity = min(self.ceiling, self.capacity + 1)
            self.peak = max(self.peak, self.capacity)
        self._wake()

    async def watch_lag(self) -> None:
        """Measure event-loop lag until cancelled (a decaying maximum of sleep overshoot)."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(TICK)
            overshoot = time.monotonic() - started - TICK
            self.lag = max(overshoot, self.lag * 0.8)
