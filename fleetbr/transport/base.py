"""The transport seam: how the controller reaches a host, whatever carries the bytes.

A :class:`Transport` opens a :class:`Session` to an inventory host (retrying set-up failures
within a budget); a session runs scripts and commands and is closed. The asyncssh implementation
is :class:`fleetbr.transport.ssh.SSHTransport`, the in-memory one for tests
:mod:`fleetbr.transport.memory`. Every call site takes a transport or uses the process's current
one (:func:`current_transport`: SSH unless :func:`use_transport` installed another), so a test can
put a scripted host or a wrapper around the real SSH path without patching modules by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from fleetbr.errors import TransportError
from fleetbr.inventory import HostSpec


@dataclass(frozen=True)
class CommandResult:
    """What a remote script printed and how it exited."""

    stdout: str
    stderr: str
    exit_status: int | None


OutputSink = Callable[[str, bytes], None]
"""Called with ``("stdout" | "stderr", chunk)`` for every chunk of output as it arrives."""


@dataclass
class Captured:
    """One output stream of a command: its first ``limit`` bytes, and how many it wrote in all."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    size: int = 0

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk`` up to the limit; count it in any case."""
        self.size += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        """More was written than kept."""
        return self.size > len(self.data)


@dataclass(frozen=True)
class CommandOutput:
    """What a command printed (as bytes, capped) and how it ended.

    ``error`` is set when the command's end was not seen: :class:`CommandTimeout` (no end within
    the time limit) or :class:`SessionLost`; the output that arrived before it is kept.
    """

    stdout: Captured
    stderr: Captured
    exit_status: int | None
    exit_signal: str | None
    error: TransportError | None = None


class Session(Protocol):
    """An open session to one host: what every caller of the transport uses."""

    async def run_script(
        self, script: str, *, label: str, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """Run ``script`` with POSIX sh on the host (``label`` names it in errors); raise
        :class:`~fleetbr.errors.RemoteCommandFailed` on a non-zero exit when ``check``,
        :class:`~fleetbr.errors.CommandTimeout` or :class:`~fleetbr.errors.SessionLost` when its
        end was not seen. Never retried: it may have changed the host."""

    async def run_command(
        self,
        command: str,
        *,
        stdin: bytes,
        timeout: float,
        limit: int,
        on_output: OutputSink | None = None,
    ) -> CommandOutput:
        """Run ``command`` as given with ``stdin``; keep ``limit`` bytes per stream. Never raises
        once started: a timeout or lost session is in :attr:`CommandOutput.error`."""

    async def close(self) -> None:
        """Close the session and wait for it to be gone."""


class Transport(Protocol):
    """Opens sessions to inventory hosts."""

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> Session:
        """A verified session to ``spec``; set-up failures that are ``retryable`` are tried again
        (at most ``attempts`` times, and never after ``give_up_after`` seconds), the last one
        raised as a :class:`~fleetbr.errors.TransportError`."""


_installed: list[Transport] = []


def current_transport() -> Transport:
    """The transport call sites use when given none: the innermost :func:`use_transport`, else
    SSH."""
    if _installed:
        return _installed[-1]
    from fleetbr.transport.ssh import SSHTransport  # noqa: PLC0415 - ssh.py imports this module

    return SSHTransport()


@contextmanager
def use_transport(transport: Transport) -> Iterator[Transport]:
    """Within the block, :func:`current_transport` is ``transport`` (process-wide: the rollout's
    tasks and nornir's threads see it too)."""
    _installed.append(transport)
    try:
        yield transport
    finally:
        _installed.remove(transport)


@asynccontextmanager
async def open_session(
    spec: HostSpec,
    *,
    transport: Transport | None = None,
    attempts: int = 4,
    give_up_after: float | None = None,
) -> AsyncIterator[Session]:
    """``async with open_session(spec) as conn:`` - connect (over ``transport``, default: the
    current one) and always close."""
    conn = await (transport or current_transport()).connect(
        spec, attempts=attempts, give_up_after=give_up_after
    )
    try:
        yield conn
    finally:
        await conn.close()
