"""Per-host results as data (after nornir's Result / AggregatedResult), and the exit code."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """Where a host ended. Only OK, PLANNED, UNCHANGED, CONFIRMED and IN_SYNC count as success;
    DRIFTED is not a success, but not a failure either (see ``exit_code``)."""

    OK = "ok"  # a read-only command succeeded (facts, status)
    PLANNED = "planned"  # dry run: the host would change
    UNCHANGED = "unchanged"  # the host already matches the task
    CONFIRMED = "confirmed"  # changed, reconnected over a fresh connection, probes passed, disarmed
    ROLLED_BACK = (
        "rolled_back"  # the change was reverted and the host verified back at its snapshot
    )
    REFUSED = "refused"  # the plan refused the host; nothing was changed
    FAILED = "failed"  # an error that is not a connectivity problem
    UNREACHABLE = "unreachable"  # the host could not be reached (before, or even after rollback)
    TIMED_OUT = "timed_out"  # `fleetbr run`: the command did not end within its time limit
    SKIPPED = "skipped"  # not attempted: the rollout stopped before this host's batch
    IN_SYNC = "in_sync"  # `fleetbr check`: the host matches the task (what `plan` calls unchanged)
    DRIFTED = "drifted"  # `fleetbr check`: the host differs from the task; the differences say how


SUCCESS = frozenset({Status.OK, Status.PLANNED, Status.UNCHANGED, Status.CONFIRMED, Status.IN_SYNC})
ROLLBACK_SUCCESS = SUCCESS | {Status.ROLLED_BACK}  # `fleetbr rollback`: rolled back was asked for


def success_of(command: str) -> frozenset[Status]:
    """The statuses that count as success for a run of ``command`` (as the history records it)."""
    return ROLLBACK_SUCCESS if command == "rollback" else SUCCESS


# The exit codes of fleetbr's commands (README: "Per-host statuses and exit codes"), only here.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3  # usage: bad input, nothing contacted
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it: a first Ctrl-C
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE (128 + 13)


def hosts_text(count: int) -> str:
    """``1 host``, ``6 hosts``: every count of hosts fleetbr prints."""
    return f"{count} host" if count == 1 else f"{count} hosts"


@dataclass
class HostResult:
    """The outcome for one host: status, one-line message, and structured data for ``--json``."""

    host: str
    status: Status
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    # The detail as separate lines for human output (plan's steps), each escaped on its own;
    # empty: the message, on one line. --json keeps the message (and data) as they are.
    lines: tuple[str, ...] = ()

    @property
    def detail_lines(self) -> tuple[str, ...]:
        """What the detail column shows, one entry per printed line (not yet escaped)."""
        return self.lines or (self.message,)

    @property
    def ok(self) -> bool:
        """True when the host ended in a success status."""
        return self.status in SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "status": self.status.value,
            "message": self.message,
            "elapsed": round(self.elapsed, 3),
            **self.data,
        }


@dataclass
class AggregatedResult(Mapping[str, HostResult]):
    """Results of one command over many hosts, keyed by host name in inventory order."""

    command: str
    results: dict[str, HostResult] = field(default_factory=dict)
    success: frozenset[Status] = SUCCESS  # what counts as success for this command

    def add(self, result: HostResult) -> None:
        """Record one host's result."""
        self.results[result.host] = result

    def __getitem__(self, host: str) -> HostResult:
        return self.results[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[HostResult]:
        """Hosts that did not end in a success status (for this command)."""
        return [r for r in self.results.values() if r.status not in self.success]

    def counts(self) -> dict[str, int]:
        """How many hosts ended in each status."""
        tally: dict[str, int] = {}
        for result in self.results.values():
            tally[result.status.value] = tally.get(result.status.value, 0) + 1
        return tally

    @property
    def exit_code(self) -> int:
        """0 when every host succeeded; 3 when the others only drifted (``check``: drift found,
        every host checked); else 1 (some host could not be checked, failed, was refused...)."""
        failed = self.failed
        if not failed:
            return EXIT_OK
        if all(r.status == Status.DRIFTED for r in failed):
            return EXIT_DRIFT
        return EXIT_FAILED

    def to_dict(self) -> dict[str, Any]:
        """One JSON document keyed by host name."""
        return {name: result.to_dict() for name, result in self.results.items()}
