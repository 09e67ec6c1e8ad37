"""A synthetic recorded apply run for the HTML report's tests: hosts that confirmed, rolled
back, were refused and failed, with timelines, steps and events as the transaction records
them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fleetbr.core import kinds
from fleetbr.facts.parse import parse_facts
from fleetbr.history.store import HostRow, RunRecord
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.report import Status

DATA = Path(__file__).resolve().parent / "data"
TASK = Path(__file__).resolve().parents[1] / "tasks" / "bridge.yaml"

START = 1_780_000_000.0
OUTCOMES = (Status.CONFIRMED, Status.CONFIRMED, Status.CONFIRMED, Status.ROLLED_BACK,
            Status.REFUSED, Status.FAILED, Status.CONFIRMED, Status.SKIPPED)  # fmt: skip


def run_record(names: list[str], *, canary: int = 1) -> RunRecord:
    """An apply run over ``names`` that ended with exit code 1."""
    return RunRecord(
        command="apply", hosts=names, started=START, ended=START + 60.0, exit_code=1,
        options={"origin": "cli", "forks": 20, "canary": canary, "batch_size": 10},
        controller={"host": "ctl", "pid": 4242, "version": "0.test"},
        task_path="/srv/tasks/bridge.yaml", task_sha256="ab" * 32, selection="hv*", id=7,
    )  # fmt: skip


@functools.cache
def planned_view() -> dict[str, Any]:
    """A real before/after view (the bridge task planned on a plain host's facts), as an apply
    host's row records it."""
    kind = kinds.get("bridge")
    spec = HostSpec("hv", "198.51.100.10", 22, "root", None, (), {"nic": "eth0"}, SSHOptions())
    change = kind.render(kind.load(TASK), spec, TASK.name)
    facts = parse_facts((DATA / "facts" / "plain.txt").read_text())
    view = change.view("hv", facts, change.plan(facts, 10))
    assert view is not None
    return view


def host_row(name: str, index: int, status: Status) -> HostRow:
    """One host's row, its phases ``index``-dependent so hosts spread over the axis."""
    began = START + (index % 50) * 1.0
    timeline = [["prepare", began], ["arm", began + 1.0], ["apply", began + 1.5]]
    data: dict[str, object] = {
        "txid": f"tx{index:05d}",
        "events": [f"08:00:{index % 60:02d} staged tx{index:05d}", "confirmed and disarmed"],
        "steps": ["create bridge br0", "move 198.51.100.10/24 from eth0 to br0"],
        "inverses": ["delete bridge br0", "move 198.51.100.10/24 from br0 to eth0"],
    }
    if status is Status.ROLLED_BACK:
        timeline += [["confirm", began + 3.0], ["rollback", began + 4.0], ["verify", began + 6.0]]
        data |= {"decision": "rolled_back", "reason": "gateway 198.51.100.1 no longer answers",
                 "differences": ["route 203.0.113.0/24 via 198.51.100.1 came back"]}  # fmt: skip
    elif status is Status.CONFIRMED:
        timeline.append(["confirm", began + 3.0])
        data["decision"] = "confirmed"
    elif status in (Status.REFUSED, Status.SKIPPED):
        timeline = timeline[:1]
        data = {"events": []}
    if status is not Status.SKIPPED:
        data["timeline"] = timeline
    return HostRow(
        host=name, status=status, message=f"{status.value} ({name})",
        txid=str(data.get("txid") or "") or None, batch=0 if index == 0 else 1 + index // 10,
        started=began, ended=began + 8.0, elapsed=8.0,
        phases={"prepare": 1.0, "window": 7.0, "total": 8.0}, data=data, run_id=7,
        diff=planned_view() | {"host": name} if status is not Status.SKIPPED else None,
    )  # fmt: skip


def synthetic(count: int) -> tuple[RunRecord, list[HostRow]]:
    """A run of ``count`` hosts ``hv0000``..., their outcomes cycling through :data:`OUTCOMES`."""
    names = [f"hv{i:04d}" for i in range(count)]
    rows = [host_row(name, i, OUTCOMES[i % len(OUTCOMES)]) for i, name in enumerate(names)]
    return run_record(names), rows
