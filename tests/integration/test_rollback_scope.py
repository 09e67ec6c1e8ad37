"""``fleetbr rollback`` of a stale transaction compares only what the transaction touched; changes
made since by others (a guest's tap device) are listed as unrelated, never a failure (issue 6
item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetbr.lab import Lab, host_state
from tests.integration.helpers import (
    api_status,
    armed,
    fleetbr,
    sh,
    stale_bridged_transaction,
    wait_for,
)


def leave_stale(lab: Lab, host: str, tmp_path: Path) -> str:
    """Apply the bridge task and kill the controller and the timer: a stale transaction."""
    txid = stale_bridged_transaction(lab, host, tmp_path)

    def stale() -> bool:
        return "STALE" in api_status(lab, host)[host].message

    wait_for(stale, 10, "the transaction to be reported stale", every=0.5)
    return txid


def test_rollback_ignores_a_guest_link_that_appeared_after_staging(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv10")
    leave_stale(lab, "hv10", tmp_path)
    # days later a guest started: its tap (here a veth) is a port of br0, plus an unrelated route
    sh(lab, "hv10", "ip link add vnet0 type veth peer name vnet0-peer && "
                    "ip link set vnet0 master br0 up && "
                    "ip route add 203.0.113.64/26 dev vnet0 table 200")  # fmt: skip

    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv10", "rollback")
    assert code == 0, (doc, err)
    result = doc["hv10"]
    assert result["status"] == "rolled_back", result
    assert result["was_stale"] is True
    assert "matches its snapshot in what it touched" in result["message"]
    unrelated = "\n".join(result["unrelated"])
    assert "link vnet0: veth master None" in unrelated and "is new" in unrelated
    assert "link vnet0-peer: veth" in unrelated
    assert "route 203.0.113.64/26 dev vnet0 table 200" in unrelated
    assert "info, changed since the snapshot but not by fleetbr" in result["message"]
    assert "differences" not in result
    assert not armed(lab, "hv10")

    sh(lab, "hv10", "ip link del vnet0")
    assert host_state(lab, "hv10") == pristine["hv10"]


def test_rollback_still_fails_when_what_it_touched_differs(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv11")
    leave_stale(lab, "hv11", tmp_path)
    nic = lab.host("hv11").nic
    # the NIC got another address meanwhile: the host is not back at its snapshot there
    sh(lab, "hv11", f"ip addr add 203.0.113.66/32 dev {nic}")
    code, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv11", "rollback")
    assert code == 1
    assert doc["hv11"]["status"] == "failed"
    assert doc["hv11"]["differences"] == [f"address 203.0.113.66/32 on {nic} is new"]
    fresh_host("hv11")
