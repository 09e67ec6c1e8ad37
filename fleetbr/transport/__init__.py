"""SSH transport: connections to hosts, remote scripts, and translation of asyncssh errors."""

from fleetbr.transport.ssh import CommandResult, Connection, connect, open_connection

__all__ = ["CommandResult", "Connection", "connect", "open_connection"]
