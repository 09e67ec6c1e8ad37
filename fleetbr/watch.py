"""``fleetbr watch TASK --every D [--repair]``: the scheduled loop in the foreground (containers).

Runs start on a fixed grid (start + k x period). One run at a time, always: a run that takes
longer than the period delays the next to the next grid point after it ends (missed ticks are
skipped, never queued). A check run reads only; a repair run is ``apply`` (in-sync hosts are
``unchanged`` and nothing is staged on them).

SIGTERM or SIGINT: between runs, stop at once. During a check run, abandon it (it changed
nothing). During a repair run, let it finish: every host it armed is confirmed or rolled back
and reported, then stop. A second signal changes nothing (say so on stderr); only SIGKILL stops
sooner, and then the hosts' own timers roll back whatever was not confirmed. Exit 0 after a
signal; 2 for bad input before the first run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetbr.core.assemble import Prepared, prepare, run_prepared
from fleetbr.core.request import RunRequest
from fleetbr.errors import UsageError
from fleetbr.output import Human, error, plain, warning
from fleetbr.report import SUCCESS, AggregatedResult, Status, hosts_text

_DURATION_RE = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# Called after every run with (run number, the results, start and end, epoch seconds): a hook
# for metrics (node_exporter textfile) or a run history.
RunHook = Callable[[int, AggregatedResult, float, float], None]


def parse_every(text: str) -> int:
    """``--every``: a whole number of seconds, minutes, hours or days (``15m``) in seconds."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise UsageError(f"--every: {plain(text)!r} is not a duration like 30s, 15m, 2h or 1d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def duration_text(seconds: int) -> str:
    """``seconds`` as ``--every`` takes it, in the largest unit that divides it: 420 -> ``7m``."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WatchSpec:
    """What to run and how often."""

    task_path: Path
    every: float  # seconds
    repair: bool
    forks: int
    as_json: bool


class Watcher:
    """The loop; ``run`` returns the exit code. Every run is ``prepared`` (hosts selected, the
    task rendered once, before the first run) run again by the engine, recorded as its own run
    (``watch_run``: its number)."""

    def __init__(
        self, prepared: Prepared | None, spec: WatchSpec, on_run: RunHook | None = None
    ) -> None:
        self.prepared, self.spec, self.on_run = prepared, spec, on_run
        self.number = 0  # of the current run
        self.stopping: asyncio.Event | None = None
        self.current: asyncio.Task[AggregatedResult] | None = None
        self.out = Human()

    def _signal(self, signum: int) -> None:
        assert self.stopping is not None
        name = signal.Signals(signum).name
        if self.stopping.is_set():
            warning(f"{name} again: still waiting for the repair run to finish its hosts")
            return
        self.stopping.set()
        if self.current is None or self.current.done():
            return
        if self.spec.repair:
            warning(f"{name}: stopping once the current repair run has decided every host")
        else:
            self.current.cancel()  # a check changes nothing: abandon it

    async def _one_run(self) -> AggregatedResult:
        assert self.prepared is not None
        request = self.prepared.request
        numbered = request.replace(recorded={**request.recorded, "watch_run": self.number})
        outcome = await run_prepared(dataclasses.replace(self.prepared, request=numbered))
        return outcome.result

    async def run(self) -> int:
        """Run until a signal; 0 once stopped."""
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._signal, signum)
        try:
            await self._loop(loop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return 0

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.stopping is not None
        origin, number = loop.time(), 0
        while not self.stopping.is_set():
            number += 1
            wall = time.time()
            self.number = number
            self.current = asyncio.create_task(self._one_run())
            try:
                result = await self.current  # only a check run is ever cancelled (_signal)
            except asyncio.CancelledError:
                if not self.stopping.is_set():
                    raise
                break
            self._report(number, result, wall, time.time())
            # the next point of the grid after now: missed ticks are skipped, never queued
            ticks = int((loop.time() - origin) // self.spec.every) + 1
            wait = origin + ticks * self.spec.every - loop.time()
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, wait))
            except TimeoutError:
                continue

    def _report(self, number: int, result: AggregatedResult, start: float, end: float) -> None:
        if self.on_run is not None:
            try:
                self.on_run(number, result, start, end)
            except Exception as exc:  # a metrics file that cannot be written must not stop us
                error(f"run {number}: the run hook failed: {type(exc).__name__}: {exc}")
        if self.spec.as_json:
            document = {
                "run": number,
                "command": result.command,
                "started": round(start, 3),
                "ended": round(end, 3),
                "exit_code": result.exit_code,
                "counts": result.counts(),
                "hosts": result.to_dict(),
            }
            sys.stdout.write(json.dumps(document, default=str) + "\n")
            sys.stdout.flush()
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))
        counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items()))
        self.out.line(f"{stamp} run {number} {result.command}: {hosts_text(len(result))}: {counts}")
        for host in result.values():
            if host.status not in SUCCESS or host.status is Status.CONFIRMED:
                self.out.line(f"  {host.host}  {host.status.value}  {host.message}")


def watch(request: RunRequest, *, every: str, repair: bool, as_json: bool) -> int:
    """``fleetbr watch``: validate everything (the period, the hosts, the task rendered for
    every host), then loop; ``request`` is the check (``apply`` with ``repair``) to repeat."""
    seconds = parse_every(every)
    command = "apply" if repair else "check"
    request = request.replace(command=command, origin="watch",
                              recorded={**request.recorded, "watch": every})  # fmt: skip
    prepared = prepare(request)
    task = request.change.recorded_file if request.change is not None else None
    spec = WatchSpec(task or Path(), float(seconds), repair, request.rollout.forks, as_json)
    return asyncio.run(Watcher(prepared, spec).run())
