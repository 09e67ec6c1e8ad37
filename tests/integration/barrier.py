"""Barriers: stop the real controller at a point of its transaction until the test says go.

The controller runs unchanged over real SSH; a :class:`BarrierTransport` wraps the SSH transport
(through the transport seam, :func:`fleetbr.transport.use_transport`) and stops at two points:

- ``confirm``: before the first connection to a host after its arm+apply script ran (the
  connection that confirms or looks at the host after the change);
- ``disarm``: before the disarm script (after the host was verified and probed);
- ``batch`` (the CLI only): before each batch of an apply but the first starts, the earlier
  batches' hosts all decided: the controller holds no host then, only its run (the run lease);
  the name is the batch's first host.

Arriving there the n-th time (counted per point, over every host), the controller writes
``<point>.<n>.reached`` (holding the host's name) in the barrier's folder and waits until the test
writes ``<point>.<n>.go`` (or ``<point>.open``: let every arrival through). So a test waits for
"reached", injects its fault, then releases: the fault always lands inside the window, however
loaded the machine. A test that SIGKILLs the controller simply never releases it.

In-process: pass ``gate.transport("confirm")`` to the transaction (``transport=``). For the CLI
in a subprocess: ``gate.argv("confirm", *fleetbr_args)`` runs this module (``python -m
tests.integration.barrier DIR POINTS ARGS...``), which installs the wrapper and runs fleetbr's CLI
``main``; pass ``env=gate.env`` so the subprocess finds this package.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from fleetbr.cli import main as fleetbr_main
from fleetbr.core.runner import LocalRunner, register
from fleetbr.inventory import HostSpec
from fleetbr.report import AggregatedResult
from fleetbr.runner import HostJob
from fleetbr.transport import (
    CommandOutput,
    CommandResult,
    OutputSink,
    Session,
    Transport,
    use_transport,
)
from fleetbr.transport.ssh import SSHTransport

REPO = Path(__file__).resolve().parents[2]
POINTS = ("confirm", "disarm", "batch")
POLL = 0.05  # how often a waiting side looks for the other's file (not a timing window)


class Barrier:
    """The controller's side: numbered arrivals at points, each waiting for its go."""

    def __init__(self, directory: Path, points: Collection[str]) -> None:
        unknown = set(points) - set(POINTS)
        if unknown:
            raise ValueError(f"unknown barrier points {sorted(unknown)}; known: {POINTS}")
        self.directory = directory
        self.points = frozenset(points)
        self.arrivals: dict[str, int] = {}

    async def wait(self, point: str, host: str) -> float:
        """Say ``point`` is reached (for ``host``), wait for the go; returns the seconds waited."""
        number = self.arrivals[point] = self.arrivals.get(point, 0) + 1
        started = time.monotonic()
        reached = self.directory / f"{point}.{number}.reached"
        partial = reached.with_suffix(".partial")
        partial.write_text(host)
        partial.rename(reached)  # atomic: the test never reads it half-written
        go, always = self.directory / f"{point}.{number}.go", self.directory / f"{point}.open"
        while not go.exists() and not always.exists():
            await asyncio.sleep(POLL)
        return time.monotonic() - started


class BarrierTransport:
    """A transport that passes everything to ``inner`` and stops at the barrier's points."""

    def __init__(self, inner: Transport, barrier: Barrier) -> None:
        self.inner = inner
        self.barrier = barrier
        self.applied: set[str] = set()  # hosts whose arm+apply ran since their last connect

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> Session:
        """The inner transport's session; first the ``confirm`` barrier after an arm+apply."""
        if spec.name in self.applied and "confirm" in self.barrier.points:
            self.applied.discard(spec.name)
            waited = await self.barrier.wait("confirm", spec.name)
            if give_up_after is not None:  # the caller's budget ran while it was held here
                give_up_after = max(0.0, give_up_after - waited)
        session = await self.inner.connect(spec, attempts=attempts, give_up_after=give_up_after)
        return BarrierSession(session, spec.name, self)


class BarrierSession:
    """A session of :class:`BarrierTransport`: notes arm+apply, holds before ``disarm``."""

    def __init__(self, inner: Session, host: str, transport: BarrierTransport) -> None:
        self.inner = inner
        self.host = host
        self.transport = transport

    async def run_script(
        self, script: str, *, label: str, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """The inner session's answer, after the ``disarm`` barrier for the disarm script."""
        if label == "disarm" and "disarm" in self.transport.barrier.points:
            await self.transport.barrier.wait("disarm", self.host)
        try:
            return await self.inner.run_script(script, label=label, timeout=timeout, check=check)
        finally:
            if label == "arm+apply":
                self.transport.applied.add(self.host)

    async def run_command(
        self,
        command: str,
        *,
        stdin: bytes,
        timeout: float,
        limit: int,
        on_output: OutputSink | None = None,
    ) -> CommandOutput:
        """The inner session's (no barrier here)."""
        return await self.inner.run_command(
            command, stdin=stdin, timeout=timeout, limit=limit, on_output=on_output
        )

    async def close(self) -> None:
        """Close the inner session."""
        await self.inner.close()


class Gate:
    """The test's side of a barrier folder."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        path = os.environ.get("PYTHONPATH")
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [path])])}

    def reached(self, point: str, number: int = 1, timeout: float = 60.0) -> str:
        """Wait until the controller reached ``point`` the ``number``-th time; the host's name.

        ``timeout`` only bounds a test that went wrong (the controller died or took another
        path); no outcome depends on it."""
        path = self.directory / f"{point}.{number}.reached"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the controller did not reach {point} #{number} in {timeout}s"
                )
            time.sleep(POLL)
        return path.read_text()

    def is_reached(self, point: str, number: int = 1) -> bool:
        """The controller reached ``point`` the ``number``-th time."""
        return (self.directory / f"{point}.{number}.reached").exists()

    def release(self, point: str, number: int = 1) -> None:
        """Let the ``number``-th arrival at ``point`` go on."""
        (self.directory / f"{point}.{number}.go").touch()

    def open(self, point: str) -> None:
        """Let every arrival at ``point``, waiting or to come, go on."""
        (self.directory / f"{point}.open").touch()

    def transport(self, *points: str) -> BarrierTransport:
        """The SSH transport held at ``points`` (for a transaction run in this process)."""
        return BarrierTransport(SSHTransport(), Barrier(self.directory, points))

    def argv(self, points: str | Collection[str], *fleetbr_args: str) -> list[str]:
        """The command line of fleetbr's CLI with ``fleetbr_args``, held at ``points`` (run it
        with ``env=self.env``)."""
        names = [points] if isinstance(points, str) else list(points)
        return [sys.executable, "-m", "tests.integration.barrier", str(self.directory),
                ",".join(names), *fleetbr_args]  # fmt: skip


class BatchBarrierRunner(LocalRunner):
    """The local runner, held at the ``batch`` point before each apply batch but the first (on
    the event loop: Ctrl-C is handled while it is held)."""

    barrier: Barrier | None = None
    batches = 0

    async def run(
        self, command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
    ) -> AggregatedResult:
        """:meth:`LocalRunner.run`, after the barrier for the second batch on."""
        if command == "apply" and hosts and self.barrier is not None:
            type(self).batches += 1
            if type(self).batches > 1:
                await self.barrier.wait("batch", hosts[0].name)
        return await super().run(command, hosts, job, forks=forks)


def main(argv: list[str]) -> int:
    """``DIR POINTS FLEETBR_ARGS...``: fleetbr's CLI over SSH held at the comma-separated
    ``POINTS``, its barrier files in ``DIR``."""
    directory, points, *rest = argv
    barrier = Barrier(Path(directory), [p for p in points.split(",") if p])
    if "batch" in barrier.points:
        BatchBarrierRunner.barrier = barrier
        register("local", BatchBarrierRunner)
    with use_transport(BarrierTransport(SSHTransport(), barrier)):
        return fleetbr_main(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
