"""An in-memory transport: scripted hosts that answer the controller's scripts, no network.

A :class:`ScriptedHost` is a :class:`~fleetbr.transport.base.Transport` to one host. It answers
each script by its label (``state``, ``facts``, ``disarm``, ``rollback``, ``stage``...) from a
queue of :class:`Reply`s the test wrote: the markers the host's scripts would print, an exit
status, or a lost connection. As a real host does, it prints every ``@@name value`` marker of a
reply as ``@@NONCE name value`` with the nonce the controller put into that script, so the
controller's nonce check is exercised too. :class:`MemoryTransport` routes several hosts by
inventory name (a rollout over a scripted fleet).

Time is virtual (:class:`VirtualClock`, the transaction's ``clock`` seam): a wait of 30 s takes
no real time, so stalls, timers and reconnect budgets are exact, never races with the wall clock.
Strict on purpose: a script whose label has no reply left (the controller did something the test
did not expect, e.g. started a rollback) raises AssertionError, and every call is recorded.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleetbr.errors import ConnectFailed, RemoteCommandFailed, TransportError
from fleetbr.inventory import HostSpec
from fleetbr.transport.base import Captured, CommandOutput, CommandResult, OutputSink


class VirtualClock:
    """Virtual monotonic time: :meth:`sleep` moves it on at once."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        """The virtual time."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Advance the virtual time by ``seconds`` (and let other tasks run)."""
        self.slept.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


def marks(values: Mapping[str, str]) -> str:
    """``@@name value`` lines; the scripted host adds the nonce of the script it answers
    (:func:`with_nonce`), as the real scripts print ``@@NONCE name value``."""
    return "".join(f"@@{name} {value}\n" for name, value in values.items())


# A script's marker nonce, as the templates print it: `@@NONCE ` or printf '@@%s ...' NONCE.
_SCRIPT_NONCE = re.compile(r"@@([0-9a-f]{32}) |printf '@@%s [^']*' '?([0-9a-f]{32})")


def script_nonce(script: str) -> str | None:
    """The nonce the controller put into ``script`` (None: the script prints no markers)."""
    found = _SCRIPT_NONCE.search(script)
    return None if found is None else found.group(1) or found.group(2)


def with_nonce(stdout: str, nonce: str) -> str:
    """``stdout`` with every ``@@name`` marker line carrying ``nonce``, as the host prints it."""
    return "".join(
        f"@@{nonce} {line[2:]}" if line.startswith("@@") else line
        for line in stdout.splitlines(keepends=True)
    )


@dataclass(frozen=True)
class Reply:
    """One answer of the host to a script.

    ``stdout`` may be a function of the script's text. ``error`` is raised instead of answering
    (the connection died during the script). With ``until`` (virtual time) the reply is given
    again and again until then; otherwise once. ``takes`` moves the clock on (a slow script).
    """

    stdout: str | Callable[[str], str] = ""
    exit_status: int = 0
    stderr: str = ""
    error: TransportError | None = None
    until: float | None = None
    takes: float = 0.0


@dataclass(frozen=True)
class Call:
    """A script the controller ran: when (virtual), its label, its text and on which session."""

    at: float
    label: str
    script: str
    conn: int  # which session: its index in ScriptedHost.opened (-1: one the test opened)


@dataclass
class ScriptedHost:
    """One host behind every session the controller opens to it (see the module docstring)."""

    clock: VirtualClock = field(default_factory=VirtualClock)
    replies: dict[str, deque[Reply]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    refusals: dict[int, float] = field(default_factory=dict)  # connect number -> tried for
    connects: list[tuple[float, int, float | None]] = field(default_factory=list)
    opened: list[MemorySession] = field(default_factory=list)

    def on(self, label: str, *replies: Reply | str) -> ScriptedHost:
        """Queue replies (a bare string: that stdout, exit 0) for scripts labelled ``label``."""
        queue = self.replies.setdefault(label, deque())
        queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)
        return self

    def refuse(self, *seconds: float, first: int = 0) -> ScriptedHost:
        """Connects number ``first``, ``first + 1``... (0: the first) fail, each after trying for
        its ``seconds`` (``math.inf``: for its whole budget; a finite time may overrun the
        budget, as a slow TCP timeout does); the others succeed."""
        self.refusals.update({first + i: s for i, s in enumerate(seconds)})
        return self

    def labels(self) -> list[str]:
        """The labels of the scripts run so far, in order."""
        return [c.label for c in self.calls]

    def left(self) -> dict[str, int]:
        """One-time replies queued but never asked for (by label)."""
        counts = {k: sum(r.until is None for r in q) for k, q in self.replies.items()}
        return {k: n for k, n in counts.items() if n}

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> MemorySession:
        """A session to this host, or :class:`ConnectFailed` as :meth:`refuse` says."""
        self.connects.append((self.clock.now(), attempts, give_up_after))
        tried = self.refusals.get(len(self.connects) - 1)
        if tried is not None:
            await self.clock.sleep(give_up_after or 0.0 if math.isinf(tried) else tried)
            raise ConnectFailed(f"{spec.hostname}: connection refused")
        conn = MemorySession(spec, self)
        self.opened.append(conn)
        return conn

    async def answer(self, conn: MemorySession, script: str, label: str) -> CommandResult:
        """The reply to ``script``: the head of ``label``'s queue (see :class:`Reply`)."""
        assert not conn.closed, f"{label} run on a closed connection"
        which = next((i for i, c in enumerate(self.opened) if c is conn), -1)
        self.calls.append(Call(self.clock.now(), label, script, which))
        queue = self.replies.get(label, deque())
        while queue and queue[0].until is not None and self.clock.now() >= (queue[0].until or 0):
            queue.popleft()
        if not queue:
            raise AssertionError(f"unexpected script {label!r} at t={self.clock.now()}")
        reply = queue[0] if queue[0].until is not None else queue.popleft()
        if reply.takes:
            await self.clock.sleep(reply.takes)
        if reply.error is not None:
            raise reply.error
        out = reply.stdout(script) if callable(reply.stdout) else reply.stdout
        nonce = script_nonce(script)
        if nonce is not None:
            out = with_nonce(out, nonce)
        return CommandResult(stdout=out, stderr=reply.stderr, exit_status=reply.exit_status)


class MemorySession:
    """A :class:`~fleetbr.transport.base.Session` to a :class:`ScriptedHost`."""

    def __init__(self, spec: HostSpec, host: ScriptedHost) -> None:
        self.spec = spec
        self.host = host
        self.closed = False

    async def run_script(
        self, script: str, *, label: str, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """The host's scripted answer; ``check`` is honoured as the SSH session does."""
        result = await self.host.answer(self, script, label)
        if check and result.exit_status != 0:
            raise RemoteCommandFailed(label, result.exit_status, result.stderr)
        return result

    async def run_command(
        self,
        command: str,
        *,
        stdin: bytes,
        timeout: float,
        limit: int,
        on_output: OutputSink | None = None,
    ) -> CommandOutput:
        """The reply queued under the label ``command``; a reply's error is returned, not
        raised, as the SSH session does."""
        stdout, stderr = Captured(limit), Captured(limit)
        try:
            result = await self.host.answer(self, command, "command")
        except TransportError as exc:
            return CommandOutput(stdout, stderr, None, None, exc)
        for name, text, into in (("stdout", result.stdout, stdout),
                                 ("stderr", result.stderr, stderr)):  # fmt: skip
            if text:
                into.add(text.encode())
                if on_output is not None:
                    on_output(name, text.encode())
        return CommandOutput(stdout, stderr, result.exit_status, None)

    async def close(self) -> None:
        """Mark closed (a closed session refuses scripts)."""
        self.closed = True


@dataclass
class MemoryTransport:
    """A :class:`~fleetbr.transport.base.Transport` to several scripted hosts, by inventory
    name; a host it does not know refuses connections."""

    hosts: dict[str, ScriptedHost]

    async def connect(
        self, spec: HostSpec, *, attempts: int = 4, give_up_after: float | None = None
    ) -> MemorySession:
        """A session to the scripted host named like ``spec``."""
        host = self.hosts.get(spec.name)
        if host is None:
            raise ConnectFailed(f"{spec.hostname}: no such host")
        return await host.connect(spec, attempts=attempts, give_up_after=give_up_after)
