"""Ctrl-C during a run: the first stops new hosts (hosts already armed finish their transaction),
the second exits at once. Light on purpose: every command that runs jobs uses it, and a plain
``fleetbr run`` must not pay for the apply stack's imports (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fleetbr.output import warning

FIRST_CTRL_C = (
    "interrupted: starting no more hosts; hosts already armed finish their transaction (confirm "
    "or rollback), then every host is reported. Ctrl-C again exits at once: hosts armed then "
    "roll back by themselves when their timers fire"
)


@dataclass(frozen=True)
class Stop:
    """A reason other than Ctrl-C for a run to start no new host (the run's exit code stays its
    hosts'): ``reason`` what happened, ``then`` what to do next (both in the skipped hosts'
    reports)."""

    reason: str
    then: str

    def __str__(self) -> str:
        return f"{self.reason}; {self.then}"


class Interruption:
    """Ctrl-C during a rollout: the first stops new hosts, the second exits at once. A check
    given to :meth:`stop_when` stops new hosts too (the run lease lost), without Ctrl-C's
    exit code."""

    def __init__(self) -> None:
        self.count = 0
        self._check: Callable[[], Stop | None] | None = None

    @property
    def pressed(self) -> bool:
        """Ctrl-C was pressed (the run ends interrupted, exit 130)."""
        return self.count > 0

    @property
    def stop(self) -> Stop | None:
        """The :meth:`stop_when` check's reason to start no new host, if it has one now."""
        return None if self._check is None else self._check()

    def stop_when(self, check: Callable[[], Stop | None]) -> None:
        """Start no new host either once ``check`` (cheap: called before every host and every
        arm) returns a :class:`Stop`; it must keep returning it from then on."""
        self._check = check

    @property
    def stop_not_pressed(self) -> Stop | None:
        """The check's :class:`Stop` when Ctrl-C was not pressed (Ctrl-C's own words win)."""
        return None if self.pressed else self.stop

    @property
    def requested(self) -> bool:
        """Ctrl-C was pressed, or the check stops the run: no new host may start or arm."""
        return self.count > 0 or self.stop is not None

    @property
    def reason(self) -> str:
        """Why no new host may start (the skipped hosts' reports say it)."""
        return "interrupted (Ctrl-C)"

    def __call__(self) -> None:
        """The SIGINT handler (called on the event loop)."""
        self.count += 1
        if self.count == 1:
            warning(FIRST_CTRL_C)
            return
        raise KeyboardInterrupt  # the CLI says what it means for armed hosts


@contextlib.contextmanager
def sigint_handled(interrupt: Interruption) -> Iterator[None]:
    """Route SIGINT to ``interrupt`` while the rollout runs (main thread only)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread: leave it
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
