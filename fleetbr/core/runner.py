"""The Runner protocol (nornir's idea: nornir/core/plugins/runners.py): run one job per host with
bounded concurrency, every host's outcome a :class:`HostResult`. The local asyncio runner is the
first implementation; a distributed one (site workers) registers beside it and is chosen by
``RunRequest.runner``, without touching the transaction or the rollout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.output import plain
from fleetbr.pacing import WindowPacer
from fleetbr.report import AggregatedResult
from fleetbr.runner import HostJob, run_hosts

if TYPE_CHECKING:
    from fleetbr.core.assemble import Prepared
    from fleetbr.history.record import RunContext
    from fleetbr.interrupt import Interruption


class Runner(Protocol):
    """Runs jobs over hosts."""

    async def run(
        self, command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
    ) -> AggregatedResult:
        """``job`` for every host, at most ``forks`` at once; results in ``hosts`` order; a
        job's error is its host's result, never an exception."""

    def pacer(self, forks: int) -> WindowPacer:
        """What bounds the hosts of an apply in flight (their dead-man windows)."""

    def check(self, prepared: Prepared) -> None:
        """UsageError when this runner cannot run ``prepared`` (before anything is recorded)."""

    def attach(self, prepared: Prepared, context: RunContext, interrupt: Interruption) -> None:
        """The run about to start: a runner that does not call the per-host jobs itself (site
        workers) takes the work description from ``prepared``, tells ``context``'s observer
        about every host and reads the run's id from its recorder."""


class LocalRunner:
    """One asyncio event loop in this process (:func:`fleetbr.runner.run_hosts`), paced by a
    :class:`~fleetbr.pacing.WindowPacer` during an apply."""

    async def run(
        self, command: str, hosts: Sequence[HostSpec], job: HostJob, *, forks: int
    ) -> AggregatedResult:
        """:func:`fleetbr.runner.run_hosts`."""
        return await run_hosts(command, hosts, job, forks=forks)

    def pacer(self, forks: int) -> WindowPacer:
        """A window pacer bounded by ``forks``."""
        return WindowPacer(forks)

    def check(self, prepared: Prepared) -> None:
        """Every run can run here."""

    def attach(self, prepared: Prepared, context: RunContext, interrupt: Interruption) -> None:
        """The local runner runs the per-host jobs it is given: nothing to take."""


def _celery() -> Runner:
    # Celery is an optional extra, imported only for a run that asks for it
    from fleetbr.distributed.coordinator import CeleryRunner  # noqa: PLC0415

    return CeleryRunner()


RUNNERS: dict[str, Callable[[], Runner]] = {"local": LocalRunner, "celery": _celery}


def register(name: str, factory: Callable[[], Runner]) -> None:
    """Make runner ``name`` available to ``RunRequest.runner``."""
    RUNNERS[name] = factory


def get(name: str) -> Runner:
    """The runner called ``name`` (UsageError when there is none)."""
    factory = RUNNERS.get(name)
    if factory is None:
        raise UsageError(f"no runner {plain(name)!r} (known: {', '.join(sorted(RUNNERS))})")
    return factory()
