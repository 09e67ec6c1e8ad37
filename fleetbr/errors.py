"""The single exception tree of fleetbr.

Everything fleetbr raises on purpose derives from :class:`FleetbrError`. asyncssh and OS errors are
translated into :class:`TransportError` subclasses at the transport boundary
(``fleetbr.transport.ssh``), so no other module needs to know asyncssh's exceptions. The errors
of a part live beside it and derive from a class here (``BackendRefusal`` and ``GuestRefusal``
from :class:`PlanRefused`, ``HistoryError`` and ``UnsafeHistoryPath`` from
:class:`FleetbrError`); only private control-flow exceptions (a leading underscore, never leaving
their module) stand outside the tree.
"""

from __future__ import annotations


class FleetbrError(Exception):
    """Base of every error fleetbr raises deliberately."""


class UsageError(FleetbrError):
    """Bad operator input: inventory, task file, CLI value. Exit code 2, nothing contacted."""


class InventoryError(UsageError):
    """The inventory cannot be loaded or is inconsistent."""


class TaskError(UsageError):
    """A task file cannot be loaded, rendered or validated."""


class ValidationError(UsageError):
    """A value that would reach a shell command is not acceptable."""


class LabError(FleetbrError):
    """The network-namespace lab cannot be built, inspected or torn down."""


class LabUsageError(LabError, UsageError):
    """A lab command the operator got wrong (no lab there, already up, a bad name): exit 2."""


class TransportError(FleetbrError):
    """Talking to a host over SSH failed. ``retryable`` says whether a new attempt is safe."""

    retryable = False


class ConnectFailed(TransportError):
    """The TCP/SSH connection could not be set up (refused, timed out, dropped by MaxStartups)."""

    retryable = True


class HostKeyRejected(TransportError):
    """The host key is unknown or does not match known_hosts. Never retried, never auto-accepted."""


class AuthFailed(TransportError):
    """The server refused every credential offered."""


class SessionLost(TransportError):
    """An established connection died (keepalive timeout, reset) while a command ran."""


class CommandTimeout(TransportError):
    """A remote command did not finish within its time limit."""


class RemoteCommandFailed(FleetbrError):
    """A remote command exited non-zero."""

    def __init__(self, command: str, exit_status: int | None, stderr: str) -> None:
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{command} exited {exit_status}: {detail}")


class FactsError(FleetbrError):
    """The facts output of a host could not be parsed."""


class PlanRefused(FleetbrError):
    """The plan for a host must be refused; the message says why (one line). The planner turns it
    into the plan's refusal (status ``refused``, nothing changed), never into a failed command."""
