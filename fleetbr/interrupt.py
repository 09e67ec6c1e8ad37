"""Ctrl-C during a run: the first stops new hosts (hosts already armed finish their transaction),
the second exits at once. Light on purpose: every command that runs jobs uses it, and a plain
``fleetbr run`` must not pay for the apply stack's imports (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from fleetbr.output import warning

FIRST_CTRL_C = (
    "interrupted: starting no more hosts; hosts already armed finish their transaction (confirm "
    "or rollback), then every host is reported. Ctrl-C again exits at once: hosts armed then "
    "roll back by themselves when their timers fire"
)


class Interruption:
    """Ctrl-C during a rollout: the first stops new hosts, the second exits at once."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def requested(self) -> bool:
        """Ctrl-C was pressed: no new host may start or arm."""
        return self.count > 0

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
