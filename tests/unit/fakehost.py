"""Scripted hosts for unit tests of the controller's side of a transaction (no SSH).

The machinery is :mod:`fleetbr.transport.memory` (a :class:`FakeHost` is its
:class:`~fleetbr.transport.memory.ScriptedHost`, a transport to one host, on a virtual clock);
this module adds what the tests share: the host's facts, the state script's markers of an applied
or rolled back transaction, and the inventory host the fake stands for.
"""

from __future__ import annotations

from pathlib import Path

from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.transaction.scripts import markers
from fleetbr.transport.memory import (
    Call,
    MemorySession,
    MemoryTransport,
    Reply,
    ScriptedHost,
    VirtualClock,
    marks,
    script_nonce,
    with_nonce,
)

__all__ = [
    "APPLIED", "PLAIN_FACTS", "ROLLED_BACK", "Call", "FakeClock", "FakeConnection", "FakeHost",
    "MemoryTransport", "Reply", "marks", "parsed", "script_nonce", "spec", "state", "with_nonce",
]  # fmt: skip

FakeHost = ScriptedHost
FakeClock = VirtualClock
FakeConnection = MemorySession

FACTS_DIR = Path(__file__).resolve().parent.parent / "data" / "facts"
PLAIN_FACTS = (FACTS_DIR / "plain.txt").read_text()  # its probes: 198.51.100.1 ok, .254 fail


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


def spec(
    *, command_timeout: float = 20.0, connect_timeout: float = 5.0, name: str = "hv01"
) -> HostSpec:
    """The inventory host the fake stands for (a lab address)."""
    return HostSpec(
        name=name, hostname="198.51.100.10", port=22, username="root", password=None,
        groups=(), data={"nic": "eth0"},
        ssh=SSHOptions(command_timeout=command_timeout, connect_timeout=connect_timeout),
    )  # fmt: skip
