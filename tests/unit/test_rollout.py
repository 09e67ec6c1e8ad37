"""Batches, canary and the failure threshold: the real transaction on scripted hosts (the
in-memory transport, no SSH)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetbr.batchplan import batches
from fleetbr.errors import ConnectFailed, UsageError
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.report import HostResult, Status
from fleetbr.rollout import rollout_changes
from fleetbr.runner import run_hosts
from fleetbr.transport import use_transport
from tests.unit.fakehost import MemoryTransport, ScriptedChange, ending


def hosts(n: int) -> list[HostSpec]:
    return [HostSpec(f"h{i:02d}", f"198.51.100.{10 + i}", 22, "root", None, (), {}, SSHOptions())
            for i in range(n)]  # fmt: skip


def names(groups: list[list[HostSpec]]) -> list[list[str]]:
    return [[h.name for h in g] for g in groups]


def test_batches_with_canary() -> None:
    assert names(batches(hosts(7), canary=1, size=3)) == [
        ["h00"],
        ["h01", "h02", "h03"],
        ["h04", "h05", "h06"],
    ]
    assert names(batches(hosts(3), canary=0, size=None)) == [["h00", "h01", "h02"]]
    with pytest.raises(UsageError):
        batches(hosts(3), canary=-1, size=None)


OUTCOMES = {
    Status.CONFIRMED: "confirmed", Status.UNCHANGED: "unchanged", Status.ROLLED_BACK: "rolled_back",
    Status.REFUSED: "refused", Status.FAILED: "arm_failed", Status.UNREACHABLE: "unreachable",
}  # fmt: skip


def run_with(outcomes: dict[str, Status], **kw: Any) -> Any:
    """Roll out to six scripted hosts (the in-memory transport) whose transactions end as
    ``outcomes`` says (default: confirmed); the result and the hosts contacted."""
    group = hosts(6)
    changes = {h.name: ScriptedChange() for h in group}
    scripted = {
        name: ending(OUTCOMES[outcomes.get(name, Status.CONFIRMED)], change)
        for name, change in changes.items()
    }
    with use_transport(MemoryTransport(scripted)):
        result = asyncio.run(rollout_changes(group, changes, forks=2, **kw))
    return result, [name for name, host in sorted(scripted.items()) if host.connects]


def test_failed_canary_stops_the_rollout() -> None:
    result, seen = run_with({"h00": Status.ROLLED_BACK}, canary=1, batch_size=2)
    assert seen == ["h00"]
    assert [r.status for r in result.values()] == [Status.ROLLED_BACK] + [Status.SKIPPED] * 5
    assert result.exit_code == 1


@pytest.mark.parametrize("status", [Status.REFUSED, Status.FAILED, Status.UNREACHABLE])
def test_canary_that_is_not_confirmed_stops_the_rollout(
    status: Status,
) -> None:
    result, seen = run_with({"h00": status}, canary=1, max_failures=0)
    assert seen == ["h00"]
    assert result.counts() == {status.value: 1, "skipped": 5}
    assert "canary h00 did not end confirmed" in result["h01"].message


def test_unchanged_canary_lets_the_rollout_go_on() -> None:
    result, seen = run_with({"h00": Status.UNCHANGED}, canary=1)
    assert len(seen) == 6 and result.exit_code == 0


def test_max_failures_threshold() -> None:
    bad = {"h01": Status.UNREACHABLE, "h02": Status.FAILED}
    result, seen = run_with(bad, batch_size=3, max_failures=1)
    assert seen == ["h00", "h01", "h02"]
    assert result.counts() == {"confirmed": 1, "unreachable": 1, "failed": 1, "skipped": 3}


def test_all_confirmed_exit_0() -> None:
    result, seen = run_with({}, canary=1, batch_size=2, max_failures=0)
    assert len(seen) == 6 and result.exit_code == 0


def test_runner_bounds_concurrency_and_turns_errors_into_results() -> None:
    running = 0
    peak = 0

    async def job(spec: HostSpec) -> HostResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if spec.name == "h03":
            raise ConnectFailed("refused")
        if spec.name == "h04":
            raise RuntimeError("bug")
        return HostResult(spec.name, Status.OK)

    result = asyncio.run(run_hosts("x", hosts(10), job, forks=3))
    assert peak == 3
    assert result["h03"].status == Status.UNREACHABLE
    assert result["h04"].status == Status.FAILED and "internal error" in result["h04"].message
    assert list(result) == [f"h{i:02d}" for i in range(10)]
