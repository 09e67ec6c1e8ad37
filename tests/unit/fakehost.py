"""A scripted host for unit tests of the controller's side of a transaction (no SSH).

:class:`FakeHost` answers the scripts the controller runs, by their label (``state``, ``facts``,
``disarm``, ``rollback``, ``stage``...), from per-label queues of :class:`Reply`s written by the
test: the markers the host's scripts would print, an exit status, or a lost connection. The
time is virtual (:class:`FakeClock`): a wait of 30 s takes no real time, so stalls, timers and
reconnect budgets are tested exactly, never by racing the wall clock.

Strict on purpose: a script whose label has no reply left (the controller did something the test
did not expect, e.g. started a rollback) fails the test, and every call is recorded.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetbr.errors import ConnectFailed, RemoteCommandFailed, TransportError
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.transaction.scripts import markers
from fleetbr.transport import CommandResult, Connection

FACTS_DIR = Path(__file__).resolve().parent.parent / "data" / "facts"
PLAIN_FACTS = (FACTS_DIR / "plain.txt").read_text()  # its probes: 198.51.100.1 ok, .254 fail


class FakeClock:
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
    """``@@name value`` lines; the fake host adds the nonce of the script it answers
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


def parsed(stdout: str) -> dict[str, str]:
    """The markers of :func:`marks` output, as the controller reads them."""
    nonce = "0" * 32
    return markers(with_nonce(stdout, nonce), nonce)


# The state script's markers of an armed transaction whose apply completed (tx_state.sh.j2).
APPLIED: dict[str, str] = {
    "staged": "yes", "claim": "arm", "arm": "done", "arm_alive": "no", "arm_error": "",
    "apply": "applied", "apply_alive": "no", "decision": "none", "rollback": "none",
    "rollback_alive": "no", "timer_alive": "yes", "remaining": "40", "writable": "yes",
    "armed_marker": "this",
}  # fmt: skip


def state(**changes: str) -> str:
    """The state script's output: :data:`APPLIED` with ``changes``."""
    return marks({**APPLIED, **changes})


ROLLED_BACK = {"decision": "rolled_back timer", "rollback": "done failed=0", "timer_alive": "no",
               "remaining": "-3", "armed_marker": "none"}  # fmt: skip


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
    """A script the controller ran: when (virtual), its label, its text and on which
    connection."""

    at: float
    label: str
    script: str
    conn: int  # which connection: its index in FakeHost.opened (-1: one the test opened)


@dataclass
class FakeHost:
    """The host side of every connection the controller opens (see the module docstring)."""

    clock: FakeClock = field(default_factory=FakeClock)
    replies: dict[str, deque[Reply]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    refusals: dict[int, float] = field(default_factory=dict)  # connect number -> tried for
    connects: list[tuple[float, int, float | None]] = field(default_factory=list)
    opened: list[FakeConnection] = field(default_factory=list)

    def on(self, label: str, *replies: Reply | str) -> FakeHost:
        """Queue replies (a bare string: that stdout, exit 0) for scripts labelled ``label``."""
        queue = self.replies.setdefault(label, deque())
        queue.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)
        return self

    def refuse(self, *seconds: float, first: int = 0) -> FakeHost:
        """Connects number ``first``, ``first + 1``... (0: the resolver's first) fail, each after
        trying for its ``seconds`` (``math.inf``: for its whole budget; a finite time may overrun
        the budget, as a slow TCP timeout does); the others succeed."""
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
    ) -> Connection:
        """The resolver's connector (same signature as :func:`fleetbr.transport.connect`)."""
        self.connects.append((self.clock.now(), attempts, give_up_after))
        tried = self.refusals.get(len(self.connects) - 1)
        if tried is not None:
            await self.clock.sleep(give_up_after or 0.0 if math.isinf(tried) else tried)
            raise ConnectFailed(f"{spec.hostname}: connection refused")
        conn = FakeConnection(spec, self)
        self.opened.append(conn)
        return conn

    async def answer(self, conn: FakeConnection, script: str, label: str) -> CommandResult:
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


class FakeConnection(Connection):
    """A :class:`Connection` to a :class:`FakeHost`: implements exactly what the transaction
    calls on a connection (``run_script`` and ``close``); anything else is not set up and fails.
    """

    def __init__(self, spec: HostSpec, host: FakeHost) -> None:  # no asyncssh connection at all
        self.spec = spec
        self.host = host
        self.closed = False

    async def run_script(
        self, script: str, *, label: str, timeout: float | None = None, check: bool = True
    ) -> CommandResult:
        """The host's scripted answer; ``check`` is honoured as the real connection does."""
        result = await self.host.answer(self, script, label)
        if check and result.exit_status != 0:
            raise RemoteCommandFailed(label, result.exit_status, result.stderr)
        return result

    async def close(self) -> None:
        """Mark closed (a closed connection refuses scripts)."""
        self.closed = True


def spec(*, command_timeout: float = 20.0, connect_timeout: float = 5.0) -> HostSpec:
    """The inventory host the fake stands for (a lab address)."""
    return HostSpec(
        name="hv01", hostname="198.51.100.10", port=22, username="root", password=None,
        groups=(), data={"nic": "eth0"},
        ssh=SSHOptions(command_timeout=command_timeout, connect_timeout=connect_timeout),
    )  # fmt: skip
