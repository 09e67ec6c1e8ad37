"""``fleetbr rollback``: an operator resolves a stale transaction left by a crashed run."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from fleetbr.changes.command.change import CommandChange
from fleetbr.lab import Lab, host_state
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare
from fleetbr.transport.ssh import open_connection
from tests.integration.helpers import (
    armed,
    events,
    fleetbr,
    fleetbr_processes,
    sh,
    specs,
    stale_bridged_transaction,
    wait_for,
)


def test_stale_transaction_is_rolled_back_on_request(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv02")
    inventory = str(lab.inventory_dir)
    # the controller dies, and so does the dead-man timer (OOM killer, an operator's pkill):
    # nobody will ever decide
    txid = stale_bridged_transaction(lab, "hv02", tmp_path)

    code, doc, _ = fleetbr("-i", inventory, "-l", "hv02", "status")
    assert code == 1 and "STALE" in doc["hv02"]["message"]

    code, doc, err = fleetbr("-i", inventory, "-l", "hv02", "rollback")
    assert code == 0, (doc, err)
    assert doc["hv02"]["status"] == "rolled_back"
    assert doc["hv02"]["was_stale"] is True and "matches its snapshot" in doc["hv02"]["message"]
    assert host_state(lab, "hv02") == pristine["hv02"]
    assert not armed(lab, "hv02")
    assert "reason=operator" in sh(lab, "hv02", "tail -n 1 /var/lib/fleetbr/journal")

    code, doc, _ = fleetbr("-i", inventory, "-l", "hv02", "status")
    assert code == 0 and f"last {txid}: rolled_back reason=operator" in doc["hv02"]["message"]


def test_rollback_with_nothing_armed_changes_nothing(lab: Lab, fresh_host: Any) -> None:
    fresh_host("hv03")
    before = host_state(lab, "hv03")
    code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv03", "rollback")
    assert code == 0 and doc["hv03"]["status"] == "ok"
    assert "nothing to roll back" in doc["hv03"]["message"]
    assert host_state(lab, "hv03") == before


def test_a_stale_command_whose_undo_fails_is_not_reported_rolled_back(
    lab: Lab, fresh_host: Any
) -> None:
    """``run --deadman`` left armed (controller and timer gone); ``fleetbr rollback`` runs the
    undo, which exits 3: the host is not back, so neither rollback nor status may say it is."""
    fresh_host("hv04")
    spec = specs(lab.inventory_dir)["hv04"]

    async def arm() -> None:
        tx = Transaction(spec, CommandChange("true", "exit 3", 120))
        async with open_connection(spec) as conn:
            assert await _prepare(tx, conn) is None
            await _arm_and_apply(tx, conn)

    asyncio.run(arm())
    wait_for(lambda: "applied" in events(lab, "hv04"), 30, "the command")
    for line in fleetbr_processes(lab, "hv04"):  # the timer: nobody will ever decide
        os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)
    wait_for(lambda: not fleetbr_processes(lab, "hv04"), 5, "fleetbr's processes to die")
    inventory = str(lab.inventory_dir)
    code, doc, err = fleetbr("-i", inventory, "-l", "hv04", "rollback")
    assert code == 1 and doc["hv04"]["status"] == "failed", (doc, err)
    assert "1 rollback step(s) failed" in doc["hv04"]["message"]
    code, doc, _ = fleetbr("-i", inventory, "-l", "hv04", "status")
    assert code == 1 and "rolled_back reason=operator failed_steps=1" in doc["hv04"]["message"]
