"""The rollout over a scripted fleet: real transactions, in-memory transport (no SSH).

Each host is a :class:`~fleetbr.transport.memory.ScriptedHost` scripted to end one way; the
rollout runs the real per-host transaction through the transport seam
(:func:`fleetbr.transport.use_transport`), so the canary rule, the failure threshold and a host
lost mid-apply are tested end to end, not by replacing the transaction by name.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fleetbr.report import AggregatedResult, Status
from fleetbr.rollout import rollout_changes
from fleetbr.transport import use_transport
from tests.unit.fakehost import FakeHost, MemoryTransport, ScriptedChange, ending, spec


def roll(outcomes: list[str], **options: Any) -> tuple[AggregatedResult, dict[str, FakeHost]]:
    """Roll a change out to hosts h00, h01... whose transactions end as ``outcomes`` say."""
    names = [f"h{i:02d}" for i in range(len(outcomes))]
    changes = {name: ScriptedChange() for name in names}
    hosts = {n: ending(o, changes[n]) for n, o in zip(names, outcomes, strict=True)}
    specs = [spec(name=name) for name in names]
    with use_transport(MemoryTransport(hosts)):
        result = asyncio.run(rollout_changes(specs, changes, forks=2, **options))
    return result, hosts


def contacted(hosts: dict[str, FakeHost]) -> list[str]:
    """The hosts the rollout opened a connection to (or tried to), in name order."""
    return [name for name, host in sorted(hosts.items()) if host.connects]


def test_every_host_confirmed_over_the_transport() -> None:
    result, hosts = roll(["confirmed"] * 4, canary=1, batch_size=2)
    assert {r.status for r in result.values()} == {Status.CONFIRMED}
    assert result.exit_code == 0
    for host in hosts.values():
        assert host.labels() == ["facts", "stage", "arm+apply", "facts", "disarm"]
        assert len(host.opened) == 2 and all(conn.closed for conn in host.opened)
        assert host.left() == {}


def test_a_canary_that_rolled_back_stops_the_rollout_before_any_other_host() -> None:
    result, hosts = roll(["rolled_back", "confirmed", "confirmed"], canary=1)
    assert [r.status for r in result.values()] == [Status.ROLLED_BACK] + [Status.SKIPPED] * 2
    assert "canary h00 did not end confirmed" in result["h01"].message
    assert contacted(hosts) == ["h00"], "no other host is contacted"
    assert result.exit_code == 1


def test_a_canary_that_cannot_be_reached_stops_the_rollout() -> None:
    result, hosts = roll(["unreachable", "confirmed"], canary=1)
    assert result["h00"].status is Status.UNREACHABLE
    assert result["h01"].status is Status.SKIPPED and contacted(hosts) == ["h00"]


def test_failures_past_max_failures_stop_the_next_batches() -> None:
    outcomes = ["confirmed", "arm_failed", "unreachable", "confirmed", "confirmed", "confirmed"]
    result, hosts = roll(outcomes, batch_size=3, max_failures=1)
    assert [result[n].status for n in ("h00", "h01", "h02")] == [
        Status.CONFIRMED, Status.FAILED, Status.UNREACHABLE,
    ]  # fmt: skip
    assert "not attempted: 2 hosts failed, more than --max-failures 1" in result["h03"].message
    assert "nothing changed" in result["h01"].message
    assert [result[n].status for n in ("h03", "h04", "h05")] == [Status.SKIPPED] * 3
    assert contacted(hosts) == ["h00", "h01", "h02"]
    assert all(host.left() == {} for name, host in hosts.items() if name in contacted(hosts))


def test_failures_within_max_failures_let_the_rollout_go_on() -> None:
    """One failure is within --max-failures 1; a refusal (nothing changed) is no failure."""
    result, hosts = roll(["arm_failed", "refused", "confirmed", "confirmed"], batch_size=2,
                         max_failures=1)  # fmt: skip
    assert result.counts() == {"failed": 1, "refused": 1, "confirmed": 2}
    assert contacted(hosts) == ["h00", "h01", "h02", "h03"]


def test_a_host_lost_mid_apply_is_asked_again_and_its_rollback_verified() -> None:
    result, hosts = roll(["confirmed", "lost_mid_apply", "confirmed"], batch_size=3)
    lost = result["h01"]
    assert lost.status is Status.ROLLED_BACK, lost.message
    assert any("arm+apply session ended early" in e for e in lost.data["events"])
    assert hosts["h01"].labels() == ["facts", "stage", "arm+apply", "state", "facts"]
    assert [c.conn for c in hosts["h01"].calls] == [0, 0, 0, 1, 1], "asked over a new connection"
    assert result["h00"].status is result["h02"].status is Status.CONFIRMED
    assert result.exit_code == 1
