"""Building ``fleetbr run`` results without SSH, for the tests of its presentation."""

from __future__ import annotations

from fleetbr.adhoc.job import host_result
from fleetbr.errors import TransportError
from fleetbr.report import AggregatedResult, HostResult
from fleetbr.transport import Captured, CommandOutput


def captured(data: bytes, limit: int = 1024) -> Captured:
    """``data`` as a stream kept up to ``limit`` bytes."""
    kept = Captured(limit)
    kept.add(data)
    return kept


def output(
    stdout: bytes = b"",
    stderr: bytes = b"",
    status: int | None = 0,
    exit_signal: str | None = None,
    error: TransportError | None = None,
) -> CommandOutput:
    """What a host's command gave."""
    return CommandOutput(captured(stdout), captured(stderr), status, exit_signal, error)


def ran(host: str, stdout: bytes = b"", stderr: bytes = b"", status: int = 0) -> HostResult:
    """The result of a command that exited ``status`` on ``host``."""
    return host_result(host, output(stdout, stderr, status), 5.0)


def aggregate(*results: HostResult) -> AggregatedResult:
    """``results`` as one run's, in this order."""
    aggregated = AggregatedResult("run")
    for result in results:
        aggregated.add(result)
    return aggregated
