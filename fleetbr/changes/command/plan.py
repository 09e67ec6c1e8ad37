"""Planning ``fleetbr run --deadman``: the operator's command and its undo as one step with its
inverse. fleetbr cannot know what an arbitrary command changes: the undo is the operator's
promise, reachability (a fresh SSH connection, the gateways that answered before) is fleetbr's."""

from __future__ import annotations

from fleetbr.facts.model import HostFacts
from fleetbr.plan.model import Plan, Step
from fleetbr.transaction.outcome import COMMAND_FILE, UNDO_FILE

CHECK_FILE = "check.sh"


def plan_command(
    host: str, facts: HostFacts, command: str, undo: str, *, timeout: int, min_timeout: int
) -> Plan:
    """One step running the staged command, its inverse running the staged undo."""
    refusal = _refusal(facts, timeout, min_timeout)
    if refusal is not None:
        return Plan(host, refusal, (), (), (), ())
    # once: the timer's rollback and, after a power cut inside it, the boot guard both run it
    undo_step = Step("run_staged", {"file": UNDO_FILE, "once": True}, f"undo: {_short(undo)}",
                     touches_nic=True)  # fmt: skip
    step = Step("run_staged", {"file": COMMAND_FILE}, f"run: {_short(command)}",
                touches_nic=True, inverse=undo_step)  # fmt: skip
    gateways = [r.gateway for r in sorted(facts.default_routes(), key=lambda r: r.family)]
    probes = tuple(dict.fromkeys(g for g in gateways if g))
    return Plan(host, None, (step,), (undo_step,), (), probes)


def _refusal(facts: HostFacts, timeout: int, min_timeout: int) -> str | None:
    if facts.armed is not None:
        kind = "a stale" if facts.armed.stale else "a live"
        return (
            f"{kind} fleetbr transaction {facts.armed.txid} is armed on the host; "
            "resolve it (confirm or roll back) first"
        )
    if timeout < min_timeout:
        return (
            f"--deadman {timeout}s is too short: reconnecting, probing and disarming need at "
            f"least {min_timeout}s with this host's connect timeout"
        )
    return None


def _short(text: str, limit: int = 60) -> str:
    """One line, at most ``limit`` characters, for step descriptions."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
