"""The ``fleetbr`` Nornir connection plugin: a host-key-verified fleetbr SSH connection.

Registered through the ``nornir.plugins.connections`` entry point, so
``task.host.get_connection("fleetbr", task.nornir.config)`` returns a
:class:`fleetbr.transport.Session` (``await conn.run_script(...)`` on the shared loop). Its
settings are the host's ``connection_options.fleetbr`` (``extras`` as in fleetbr's inventory),
checked by the same code (and every private key must be readable), and host keys are checked
exactly as the CLI checks them: always, against ``known_hosts`` (default
``~/.ssh/known_hosts``), never accepted on their own.
"""

from __future__ import annotations

from typing import Any

from nornir.core.configuration import Config
from nornir.core.inventory import ConnectionOptions

from fleetbr.errors import InventoryError, ValidationError
from fleetbr.inventory import HostSpec, key_problem, spec_from_connection
from fleetbr.nornir.loop import SHARED, LoopThread
from fleetbr.transport import Session, current_transport

CONNECTION_NAME = "fleetbr"


class FleetbrConnection:
    """Nornir ``ConnectionPlugin``: :attr:`connection` is an open fleetbr ``Connection``."""

    def __init__(self) -> None:
        self.connection: Session | None = None
        self._loop: LoopThread | None = None

    def open(  # noqa: PLR0917 - nornir's ConnectionPlugin protocol
        self,
        hostname: str | None,
        username: str | None,
        password: str | None,
        port: int | None,
        platform: str | None,
        extras: dict[str, Any] | None = None,
        configuration: Config | None = None,
    ) -> None:
        """Connect (retrying set-up failures as the CLI does); raises fleetbr's errors, e.g.
        :class:`~fleetbr.errors.HostKeyRejected` for an unknown or changed host key."""
        spec = connection_spec(hostname, username, password, port, extras)
        loop = SHARED.acquire()
        try:
            self.connection = loop.run(current_transport().connect(spec))
        except BaseException:
            SHARED.release()
            raise
        self._loop = loop

    def close(self) -> None:
        """Close the SSH connection; the shared loop stops once nothing else uses it."""
        conn, loop = self.connection, self._loop
        self.connection, self._loop = None, None
        if conn is None or loop is None:
            return
        try:
            loop.run(conn.close())
        finally:
            SHARED.release()


def connection_spec(
    hostname: str | None,
    username: str | None,
    password: str | None,
    port: int | None,
    extras: dict[str, Any] | None,
) -> HostSpec:
    """The parameters nornir hands :meth:`FleetbrConnection.open`, checked into a HostSpec."""
    params = ConnectionOptions(
        hostname=hostname, port=port, username=username, password=password, extras=extras
    )
    try:
        spec = spec_from_connection(str(hostname), params)
    except ValidationError as exc:
        raise InventoryError(f"{CONNECTION_NAME} connection to {hostname}: {exc}") from None
    problem = key_problem(spec)
    if problem:
        raise InventoryError(f"{CONNECTION_NAME} connection to {hostname}: {problem}")
    return spec
