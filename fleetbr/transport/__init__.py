"""Transports: how the controller reaches hosts (:mod:`.base`: the protocols and the current
transport; :mod:`.ssh`: asyncssh, the only module that knows its errors; :mod:`.memory`: scripted
hosts for tests)."""

from fleetbr.transport.base import (
    Captured,
    CommandOutput,
    CommandResult,
    OutputSink,
    Session,
    Transport,
    current_transport,
    open_session,
    use_transport,
)
from fleetbr.transport.ssh import Connection, SSHTransport, connect, open_connection

__all__ = [
    "Captured",
    "CommandOutput",
    "CommandResult",
    "Connection",
    "OutputSink",
    "SSHTransport",
    "Session",
    "Transport",
    "connect",
    "current_transport",
    "open_connection",
    "open_session",
    "use_transport",
]
