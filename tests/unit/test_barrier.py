"""The integration tests' barriers (tests/integration/barrier.py) on a scripted host: the
controller is held exactly at its point (before the confirm connection, before the disarm) until
the test releases it, and nothing else changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import Transaction, run_transaction
from tests.integration.barrier import Barrier, BarrierTransport, Gate
from tests.unit.fakehost import (
    PLAIN_FACTS,
    PLAN,
    FakeHost,
    ScriptedChange,
    marks,
    spec,
    stage_reply,
)


def confirming_host() -> FakeHost:
    """A host whose transaction confirms: stage, arm+apply (applied), facts, disarm."""
    host = FakeHost()
    probe = Transaction(spec(), ScriptedChange(), clock=host.clock)
    probe.plan = PLAN
    host.on("facts", PLAIN_FACTS, PLAIN_FACTS).on("stage", stage_reply(probe))
    host.on("arm+apply", marks({"armed": "38", "apply": "applied"}))
    return host.on("disarm", marks({"decision": "confirmed"}))


async def until(path: Path) -> None:
    """Let the controller run until ``path`` exists."""
    async with asyncio.timeout(10):  # only bounds a broken test; no outcome depends on it
        while not path.exists():
            await asyncio.sleep(0.01)


async def held_run(host: FakeHost, gate: Gate, *points: str) -> asyncio.Task[HostResult]:
    transport = BarrierTransport(host, Barrier(gate.directory, points))
    return asyncio.create_task(
        run_transaction(spec(), ScriptedChange(), transport=transport, clock=host.clock)
    )


async def test_held_before_the_confirm_connection_until_released(tmp_path: Path) -> None:
    host, gate = confirming_host(), Gate(tmp_path)
    run = await held_run(host, gate, "confirm")
    await until(tmp_path / "confirm.1.reached")
    await asyncio.sleep(0.1)  # held: it does not go on by itself
    assert host.labels() == ["facts", "stage", "arm+apply"]
    assert len(host.connects) == 1 and host.opened[0].closed, "the arm's connection is closed"
    assert (tmp_path / "confirm.1.reached").read_text() == "hv01"
    gate.release("confirm")
    result = await run
    assert result.status is Status.CONFIRMED
    assert host.labels() == ["facts", "stage", "arm+apply", "facts", "disarm"]
    assert not (tmp_path / "disarm.1.reached").exists()


async def test_held_before_the_disarm_after_verifying(tmp_path: Path) -> None:
    host, gate = confirming_host(), Gate(tmp_path)
    run = await held_run(host, gate, "disarm")
    await until(tmp_path / "disarm.1.reached")
    await asyncio.sleep(0.1)
    assert host.labels() == ["facts", "stage", "arm+apply", "facts"]
    assert not (tmp_path / "confirm.1.reached").exists(), "only the points asked for hold"
    gate.open("disarm")
    assert (await run).status is Status.CONFIRMED
    assert host.labels()[-1] == "disarm"


async def test_the_hold_is_taken_from_the_connect_budget(tmp_path: Path) -> None:
    """The resolver computed its budget before the hold: the wrapper passes on what is left."""
    host, gate = FakeHost(), Gate(tmp_path)
    transport = BarrierTransport(host, Barrier(tmp_path, ["confirm"]))
    transport.applied.add("hv01")
    connect = asyncio.create_task(transport.connect(spec(), attempts=9, give_up_after=30.0))
    await until(tmp_path / "confirm.1.reached")
    await asyncio.sleep(0.2)
    gate.release("confirm")
    await (await connect).close()
    ((_, attempts, budget),) = host.connects
    assert attempts == 9 and budget is not None and 0.0 <= budget <= 30.0 - 0.2


def test_unknown_points_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown barrier points"):
        Barrier(tmp_path, ["confrim"])


def test_the_command_line_runs_this_module_with_the_points(tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    argv = gate.argv(["confirm", "disarm"], "-l", "hv01", "apply", "t.yaml")
    assert argv[1:] == ["-m", "tests.integration.barrier", str(tmp_path), "confirm,disarm",
                        "-l", "hv01", "apply", "t.yaml"]  # fmt: skip
    assert gate.env["PYTHONPATH"].split(":")[0] == str(Path(__file__).resolve().parents[2])
