"""``fleetbr rollback``: an operator resolves a stale transaction left by a crashed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetbr.lab import Lab, host_state
from tests.integration.helpers import fleetbr
from tests.integration.txhelpers import armed, sh, stale_bridged_transaction


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
