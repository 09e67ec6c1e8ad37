"""Transports: how the controller reaches hosts (:mod:`.base`: the protocols and the current
transport; :mod:`.ssh`: asyncssh, the only module that knows its errors; :mod:`.memory`: scripted
hosts for tests).

The package exports only :mod:`.base`: importing asyncssh costs about 0.3 s of CPU, which a
process that never opens a connection (the distributed coordinator, ``history``, ``lab``) should
not pay. Code that opens SSH connections itself imports :mod:`fleetbr.transport.ssh`."""

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

__all__ = [
    "Captured",
    "CommandOutput",
    "CommandResult",
    "OutputSink",
    "Session",
    "Transport",
    "current_transport",
    "open_session",
    "use_transport",
]
