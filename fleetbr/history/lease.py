"""Leases: a host's history row says, truthfully, whether a process fleetbr started still works
on the host; a run's row, whether the process that drives the run still does.

Whoever works on a host of a run (a site worker that claimed it, a taker of a lost worker's
host, a local controller) holds a lease on the host's row: its identity (``host:pid:start``)
and an expiry, renewed every :data:`RENEW` seconds while the host is in its hands and cleared
with the host's final row. The process that drives a run (a local controller, a celery
coordinator) holds the **run lease** on the run's row the same way: taken when the run is
recorded, renewed with the same beat, released when the run ends (finished, interrupted,
aborted), so it is held between two batches too, when it works on no host. A holder that dies
(SIGKILL, a machine lost) renews nothing: its lease runs out :data:`LEASE` seconds after its
last renewal.

Clocks: an expiry is written and compared by the database, with the database's own clock
(PostgreSQL's ``clock_timestamp()``; SQLite, a local file, the clock of the one machine its
processes share), never one machine's wall clock against another's. The processes only count
their own waits, on their own monotonic clocks.

``apply --resume`` (:mod:`fleetbr.resume`) waits, bounded, until the resumed run holds no live
lease (its run lease, its hosts' leases) before it reads what the run left
(:func:`wait_released`); then the resuming run checks each host's lease again right before it
resolves or stages anything there (the local rollout for each host, a site worker for each
host of its chunk).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetbr.validate import seconds_from_env

LEASE = 30.0  # seconds a lease lives after its last renewal
RENEW = LEASE / 3  # seconds between renewals: two may fail before the lease runs out
# seconds a lease that ran out, its holder not known dead, is still waited for: a holder cut off
# from the history (renewing nothing meanwhile) renews it within RENEW once the history is back
GRACE = RENEW + 5.0
STOP_WAIT = 1.0  # seconds a stopped heartbeat's renewal in progress is waited for
POLL = 0.5  # seconds between looks at the leases a wait waits for
WAIT_ENV = "FLEETBR_RESUME_WAIT"
WAIT = 900.0  # seconds a resume waits for the resumed run's leases at most (default)
# seconds before its run lease could have run out that a driver cut off from the history stops
# starting hosts (RunLeaseWatch): a resume elsewhere may go on from the moment it ran out
MARGIN = RENEW / 2


def process_start(pid: int) -> str:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), "" if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class Lease:
    """A live lease: ``host`` is held by ``holder`` for ``left`` more seconds unless renewed
    (``host`` "": the run lease, ``holder`` drives the run)."""

    host: str
    holder: str
    left: float


def identity() -> str:
    """This process as a lease holder and a history row's ``worker``: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def holder_alive(holder: str | None) -> bool | None:
    """Whether the process ``holder`` names still runs: None when it cannot be told from here
    (another machine, an unknown form)."""
    host, _, rest = (holder or "").partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or not start:
        return None
    return process_start(int(pid)) == start


def held(leases: Sequence[Lease]) -> list[Lease]:
    """The leases whose holder may still work: a holder known dead (this machine, its process
    gone) holds nothing, whatever its lease's expiry says."""
    return [lease for lease in leases if holder_alive(lease.holder) is not False]


def wait_bound() -> float:
    """``$FLEETBR_RESUME_WAIT`` (seconds, 0 to 86400), else :data:`WAIT`."""
    return seconds_from_env(WAIT_ENV, WAIT, 0, 86400)


def wait_released(
    read: Callable[[], Sequence[Lease]],
    bound: float,
    *,
    say: Callable[[Sequence[Lease]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Lease]:
    """Wait until no lease ``read`` returns (every one not released; run out: ``left`` <= 0) is
    held (:func:`held`), at most ``bound`` seconds of ``clock``; the live leases then ([] once
    released or run out). A lease that ran out is still waited for until :data:`GRACE` seconds
    after it ran out (its holder, if it was only cut off from the history, renews it
    meanwhile), whether it ran out before the wait began or during it. ``say`` is told the
    leases once, when a wait begins."""
    give_up = clock() + bound
    told = False
    graced: dict[tuple[str, str], float] = {}  # a lease seen run out -> the end of its grace
    while True:
        holding = held(read())
        now = clock()
        live = [lease for lease in holding if lease.left > 0]
        waiting = live or [lease for lease in holding if now < _grace_end(graced, lease, now)]
        if not waiting:
            return []
        if now >= give_up:
            return live
        if say is not None and not told:
            say(waiting)
            told = True
        sleep(min(POLL, give_up - now))


def _grace_end(graced: dict[tuple[str, str], float], lease: Lease, now: float) -> float:
    """When the grace of run-out ``lease`` ends on the waiter's clock: :data:`GRACE` seconds
    after its expiry, as the history's clock put it (``left``) when first seen run out."""
    key = (lease.host, lease.holder)
    if key not in graced:
        graced[key] = now + lease.left + GRACE
    return graced[key]


def holders_text(leases: Sequence[Lease]) -> str:
    """``hv04 (held by w1, its lease runs out in 28 s unless renewed)``, for the one line that
    names what a wait waits for (three hosts at most); the run lease reads ``its rollout
    (driven by ctl:4242:9876, ...)``."""
    shown = [(f"{lease.host} (held by " if lease.host else "its rollout (driven by ")
             + f"{lease.holder}, its lease "
             + (f"runs out in {lease.left:.0f} s unless renewed)" if lease.left > 0 else
                f"ran out {-lease.left:.0f} s ago)") for lease in leases[:3]]  # fmt: skip
    more = f" and {len(leases) - 3} more" if len(leases) > 3 else ""
    return ", ".join(shown) + more


class RunLeaseWatch:
    """Whether the process that drives a run can still be sure it holds the run lease.

    It is sure from the run lease's first taking (:meth:`renewed`) until :data:`LEASE` -
    :data:`MARGIN` seconds after the start of its last successful renewal, on this process's
    own monotonic ``clock``: the database stamped that renewal's expiry no earlier than the
    renewal began, so the lease cannot have run out (and a resume elsewhere cannot have gone on)
    before then. Past that point it is :meth:`lost`, for good (a later renewal does not undo
    it: hosts were already left unstarted). A lease never taken (a history that could not be
    written from the start) is never lost: recording never puts the run at risk."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # the start of the last successful renewal
        self._lost = False

    @property
    def held(self) -> bool:
        """The run lease was taken once."""
        return self._since is not None

    def renewed(self, began: float) -> None:
        """A taking or a renewal that began at ``began`` (``clock``'s reading) succeeded."""
        with self._lock:
            if not self._lost and (self._since is None or began > self._since):
                self._since = began

    def left(self) -> float:
        """Seconds until the lease would be :meth:`lost` without a renewal (:data:`LEASE` -
        :data:`MARGIN` when never taken)."""
        since = self._since
        return LEASE - MARGIN if since is None else since + LEASE - MARGIN - self.clock()

    def lost(self) -> bool:
        """Held once, and not renewed since long enough that it may have run out by now (with
        :data:`MARGIN`); stays True once True."""
        with self._lock:
            if not self._lost and self._since is not None:
                self._lost = self.clock() >= self._since + LEASE - MARGIN
            return self._lost


class Heartbeat:
    """Calls ``renew`` every ``every`` seconds in a thread of its own until :meth:`stop`, then
    ``close`` in that thread (``renew`` handles its own failures: a lease not renewed runs out,
    as a dead holder's)."""

    def __init__(
        self, renew: Callable[[], None], close: Callable[[], None], *, every: float
    ) -> None:
        self._renew = renew
        self._close = close
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="fleetbr-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self._every):
            self._renew()
        self._close()

    def stop(self) -> None:
        """No more renewals. One in progress may finish later (a history that does not answer):
        it is not waited for beyond a second (it can only extend leases not yet released)."""
        self._stopped.set()
        self._thread.join(STOP_WAIT)
