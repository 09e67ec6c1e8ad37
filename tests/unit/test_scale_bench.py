"""bench/scale_bench.py: every side gets the same 30 s connect timeout.

The helper that sets it existed but was never called, so both sides ran with the lab's 3 s:
fleetbr retried a timed-out connect, the floor (no retries) failed at 1000 hosts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import yaml

from bench import scale_bench
from fleetbr.inventory import load_inventory
from fleetbr.transaction.protocol import min_timeout

DEFAULTS = {
    "username": "root",
    "connection_options": {"fleetbr": {"extras": {"connect_timeout": 3, "keepalive_interval": 1}}},
}


def _lab(tmp_path: Path) -> Any:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yaml").write_text("hv1:\n  hostname: 198.51.100.11\n", encoding="utf-8")
    (inventory / "defaults.yaml").write_text(yaml.safe_dump(DEFAULTS), encoding="utf-8")
    return SimpleNamespace(inventory_dir=inventory)


def test_both_sides_read_the_bench_connect_timeout(tmp_path: Path) -> None:
    built = _lab(tmp_path)
    sides = scale_bench._sides(cast(Any, built), tmp_path, False, None)
    assert set(sides) == {"floor facts", "fleetbr facts"}
    targets = json.loads((tmp_path / "targets.json").read_text(encoding="utf-8"))
    assert [t["connect_timeout"] for t in targets] == [scale_bench.CONNECT_TIMEOUT] == [30]
    fleetbr_side = load_inventory(built.inventory_dir)["hv1"]
    assert fleetbr_side.ssh.connect_timeout == 30
    assert fleetbr_side.ssh.keepalive_interval == 1  # the rest of the lab's options kept


def test_the_apply_task_is_one_both_sides_accept_with_that_connect_timeout(
    tmp_path: Path,
) -> None:
    # 30 s, the bench's first timer, is shorter than fleetbr's minimum for a 30 s connect
    # timeout (67 s): every host of both apply sides was refused, "0/50 hosts succeeded".
    built = _lab(tmp_path)
    sides = scale_bench._sides(cast(Any, built), tmp_path, True, None)
    task_path = Path(sides["fleetbr apply"][0][-1])
    task = yaml.safe_load(task_path.read_text(encoding="utf-8"))
    spec = load_inventory(built.inventory_dir)["hv1"]
    assert task["deadman"]["timeout"] >= min_timeout(spec.ssh) > scale_bench.DEADMAN
    assert task["persist"] == "none"
    assert sides["floor apply"][0][-3] == str(task_path)
