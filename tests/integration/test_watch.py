"""``fleetbr watch`` on real lab hosts (issue 9 item 3): a seconds-level period, drift injected
between runs is repaired by the next run, and SIGTERM ends the loop with exit 0, after the hosts
of a repair run in flight have finished their transaction."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from fleetbr.lab import Lab
from fleetbr.report import Status
from tests.integration.barrier import Gate
from tests.integration.helpers import (
    armed,
    bridged_host,
    events,
    fleetbr,
    fleetbr_processes,
    sh,
    task_file,
)

RUN_PATIENCE = 60.0  # seconds to wait for a run report (a repair run on a loaded machine)


class Watch:
    """A ``fleetbr --json watch`` child; its JSON lines arrive on a queue."""

    def __init__(self, lab: Lab, host: str, task: Path, *extra: str, gate: Gate | None = None,
                 options: tuple[str, ...] = ()) -> None:  # fmt: skip
        """With ``gate``, every repair is held before its confirm until the gate releases it."""
        args = ["--json", *options, "-i", str(lab.inventory_dir), "-l", host, "watch", str(task),
                "--every", "3s", *extra]  # fmt: skip
        argv = gate.argv("confirm", *args) if gate else [sys.executable, "-m", "fleetbr", *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=gate.env if gate else None)  # fmt: skip
        self.runs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.runs.put(json.loads(line))

    def next_run(self) -> dict[str, Any]:
        return self.runs.get(timeout=RUN_PATIENCE)

    def first_run_after(self, moment: float) -> dict[str, Any]:
        """The first run that started after ``moment`` (runs start on a 3 s grid)."""
        while True:
            run = self.next_run()
            if run["started"] > moment:
                return run

    def stop(self, then: Callable[[], object] = lambda: None) -> tuple[int, str]:
        """SIGTERM, then ``then()`` (e.g. release a held repair), then wait for the exit."""
        self.proc.send_signal(signal.SIGTERM)
        then()
        code = self.proc.wait(timeout=RUN_PATIENCE)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_watch_repairs_drift_by_the_next_run_and_sigterm_lets_armed_hosts_finish(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv19", task)
    # every repair is held between apply and confirm: a window to send SIGTERM in
    history = tmp_path / "h.sqlite3"
    gate = Gate(tmp_path / "barrier")
    watch = Watch(lab, "hv19", task, "--repair", gate=gate, options=("--history", str(history)))
    try:
        first = watch.next_run()
        assert first["hosts"]["hv19"]["status"] == Status.UNCHANGED
        assert first["command"] == "apply"
        injected = time.time()
        sh(lab, "hv19", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
        assert gate.reached("confirm", 1, timeout=RUN_PATIENCE) == "hv19"
        gate.release("confirm", 1)
        repair = watch.first_run_after(injected)
        result = repair["hosts"]["hv19"]
        assert result["status"] == Status.CONFIRMED, result
        assert result["steps"] == ["set net.bridge.bridge-nf-call-iptables = 0 (was 1)"]
        grid = repair["started"] - first["started"]
        assert abs(grid / 3 - round(grid / 3)) < 0.2  # on the grid: never a queued catch-up

        sh(lab, "hv19", "rm /etc/udev/rules.d/99-bridge.rules")
        gate.reached("confirm", 2, timeout=RUN_PATIENCE)  # the next repair, armed and held
        assert armed(lab, "hv19")
        code, stderr = watch.stop(then=lambda: gate.release("confirm", 2))
        assert code == 0, stderr
        assert "stopping once the current repair run has decided every host" in stderr
        assert not armed(lab, "hv19") and not fleetbr_processes(lab, "hv19")
        assert events(lab, "hv19")[-1] == "confirmed"
        last = watch.next_run()  # reported before the loop ended
        assert last["hosts"]["hv19"]["status"] == Status.CONFIRMED
        assert sh(lab, "hv19", "ls /etc/udev/rules.d/99-bridge.rules").strip()
    finally:
        watch.kill()
    code, found, err = fleetbr("--history", str(history), "history", "-l", "hv19")
    assert code == 0, err
    rows = [(row["command"], row["status"]) for row in found["hosts"]]  # newest first
    assert rows[0] == ("apply", "confirmed") and rows[-1] == ("apply", "unchanged"), rows
    assert rows.count(("apply", "confirmed")) == 2, "both repairs are in the history"
    code, found, err = fleetbr("--history", str(history), "history")
    assert code == 0, err
    runs = [(run["options"]["origin"], run["options"]["watch_run"]) for run in found["runs"]]
    assert runs == [("watch", len(runs) - i) for i in range(len(runs))], runs


def test_watch_checks_reports_drift_and_stops_at_once(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    task = task_file(tmp_path)
    bridged_host(lab, fresh_host, "hv19", task)
    journal = events(lab, "hv19")
    history, prom = tmp_path / "h.sqlite3", tmp_path / "fleetbr.prom"
    watch = Watch(lab, "hv19", task,
                  options=("--history", str(history), "--metrics-file", str(prom)))  # fmt: skip
    try:
        first = watch.next_run()
        assert first["command"] == "check" and first["exit_code"] == 0
        assert first["hosts"]["hv19"]["status"] == Status.IN_SYNC
        assert drifted_hosts(prom) == 0  # written before the run is reported
        injected = time.time()
        sh(lab, "hv19", "ip link set dev br0 type bridge stp_state 1")
        seen = watch.first_run_after(injected)
        assert seen["exit_code"] == 3
        assert [d["field"] for d in seen["hosts"]["hv19"]["differences"]] == ["bridge.stp"]
        assert drifted_hosts(prom) == 1
        started = time.monotonic()
        code, stderr = watch.stop()
        assert code == 0, stderr
        assert time.monotonic() - started < 10  # nothing to finish: a check is abandoned
        assert events(lab, "hv19") == journal  # a check stages nothing
    finally:
        watch.kill()
    assert drifted_hosts(prom) == 1, "an abandoned run leaves the last run's metrics"
    code, found, err = fleetbr("--history", str(history), "history", "--command", "check",
                               "-l", "hv19")  # fmt: skip
    assert code == 0, err
    rows = [row for row in found["hosts"] if row["status"] != "started"]  # newest first
    statuses = [row["status"] for row in rows]
    assert statuses[-1] == "in_sync" and "drifted" in statuses, statuses
    drift = next(row for row in rows if row["status"] == "drifted")
    assert [d["field"] for d in drift["diff"]] == ["bridge.stp"]
    assert drift["started"] > injected


def drifted_hosts(prom: Path) -> float:
    """``fleetbr_drifted_hosts`` of the metrics file ``watch`` wrote for its last run."""
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    [sample] = families["fleetbr_drifted_hosts"].samples
    assert sample.labels == {"command": "check", "selection": "hv19", "schedule": ""}
    return sample.value
