"""The run history in PostgreSQL on real lab hosts: an apply recorded with ``--history
postgresql://...`` whose controller is SIGKILLed mid-rollout, read back by ``history`` and
``show``, then finished by ``apply --resume`` from the same database (tests/pgserver.py)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from fleetbr.lab import Lab
from tests.integration.barrier import Gate
from tests.integration.helpers import armed_txid, fleetbr, task_file, wait_for
from tests.integration.test_resume import applied, controller, resume, settled


def test_a_killed_rollout_recorded_in_postgresql_is_shown_and_resumed(
    lab: Lab, fresh_host: Any, tmp_path: Path, pg_url: str
) -> None:
    names = ["hv15", "hv16"]
    for name in names:
        fresh_host(name)
    task = task_file(tmp_path)
    gate = Gate(tmp_path / "barrier")  # never released: the canary is never confirmed
    proc = controller(lab, pg_url, "-l", ",".join(names), "apply", str(task), "--canary", "1",
                      gate=gate)  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=30) == "hv15"
        wait_for(applied(lab, "hv15"), 30, "the canary to be applied")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        proc.communicate()
    txid = armed_txid(lab, "hv15")

    code, listing, err = fleetbr("--history", pg_url, "history")
    assert code == 0, err
    [run] = listing["runs"]
    assert (run["command"], run["state"], run["host_count"]) == ("apply", "running", 2)
    code, shown, err = fleetbr("--history", pg_url, "show", str(run["run"]))
    assert code == 0, err
    assert set(shown["hosts"]) == {"hv15"}, "the second host never started"
    canary = shown["hosts"]["hv15"]
    assert (canary["status"], canary["txid"]) == ("started", txid), "recorded before arming"
    assert canary["worker"] == f"{shown['controller']['host']}:{shown['controller']['pid']}"

    code, doc, err = resume(lab, pg_url, "--resume")  # no TASK, no -l: the run's own
    assert code == 0, (err, doc)
    assert err.startswith(f"resuming run {run['run']} (apply started "), err
    assert {n: doc[n]["status"] for n in names} == dict.fromkeys(names, "confirmed"), doc
    assert txid in doc["hv15"]["resolved"]
    assert all(settled(lab, n) for n in names)

    code, listing, err = fleetbr("--history", pg_url, "history")
    latest = listing["runs"][0]
    want = (run["run"], "finished", 0)
    assert (latest["resumed_from"], latest["state"], latest["exit_code"]) == want
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in str(listing) + str(shown) + str(doc) + err
    for name in names:
        fresh_host(name)
