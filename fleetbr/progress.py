"""A live progress line on stderr while hosts run: hosts done / total, counts per status, the
current batch, hosts in flight. Only on a terminal and never with ``--json``: anywhere else
nothing extra is printed (the report on stdout is the same either way)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from fleetbr.output import is_terminal
from fleetbr.report import HostResult

if TYPE_CHECKING:  # rich is imported only when a progress display is shown (start-up time)
    from rich.console import Console
    from rich.progress import Progress, TaskID


def wanted(*, as_json: bool, stream: TextIO | None = None) -> bool:
    """A live display goes on ``stream`` (stderr) only when it is a terminal and not --json."""
    return not as_json and is_terminal(stream or sys.stderr)


class LiveProgress:
    """The display (a :class:`fleetbr.observe.RunObserver`); ``start`` and ``stop`` it."""

    def __init__(self, command: str, total: int, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.command = command
        self.total = total
        self.counts: dict[str, int] = {}
        self.in_flight: set[str] = set()
        self.batch_text = ""
        self.console = console or Console(stderr=True, highlight=False, markup=False,
                                          emoji=False)  # fmt: skip
        self.progress: Progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task(command, total=total, detail="")

    def start(self) -> None:
        """Show the display."""
        self.progress.start()

    def stop(self) -> None:
        """Remove the display (the report follows on stdout)."""
        self.progress.stop()

    def detail(self) -> str:
        """``batch 2/5 · 3 in flight · 4 confirmed, 1 rolled_back``."""
        parts = [self.batch_text] if self.batch_text else []
        if self.in_flight:
            parts.append(f"{len(self.in_flight)} in flight")
        if self.counts:
            parts.append(", ".join(f"{n} {s}" for s, n in sorted(self.counts.items())))
        return " · ".join(parts)

    def _refresh(self) -> None:
        done = sum(self.counts.values())
        self.progress.update(self.task, completed=done, detail=self.detail())

    def batch(self, index: int, count: int, hosts: Sequence[str]) -> None:
        """A new batch starts."""
        self.batch_text = f"batch {index + 1}/{count}"
        self._refresh()

    def started(self, host: str) -> None:
        """A host starts."""
        self.in_flight.add(host)
        self._refresh()

    def staged(self, host: str, txid: str) -> None:
        """Nothing to show."""

    def finished(self, result: HostResult) -> None:
        """A host ended."""
        self.in_flight.discard(result.host)
        status = result.status.value
        self.counts[status] = self.counts.get(status, 0) + 1
        self._refresh()
        if sum(self.counts.values()) >= self.total:
            self.stop()  # every host is in: the report comes next, on a clean terminal
