"""The run history in PostgreSQL on real lab hosts: an apply recorded with ``--history
postgresql://...`` whose controller is SIGKILLed mid-rollout, read back by ``history`` and
``show``, then finished by ``apply --resume`` from the same database (tests/pgserver.py); an
apply whose PostgreSQL stops mid-run, until its run lease may have run out (no new host starts),
then finished by ``apply --resume`` once the server is back."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from fleetbr.history.lease import LEASE, MARGIN
from fleetbr.lab import Lab
from tests.integration.barrier import Gate
from tests.integration.helpers import armed_txid, events, fleetbr, task_file, wait_for
from tests.integration.test_resume import applied, controller, resume, settled
from tests.pgserver import PgServer


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
        assert gate.reached("confirm", timeout=120) == "hv15"
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


def test_postgresql_stopped_until_the_run_lease_may_have_run_out_starts_no_new_host(
    lab: Lab, fresh_host: Any, tmp_path: Path, own_pg_server: PgServer
) -> None:
    """A local controller holds its canary armed (held before its confirm) when PostgreSQL
    stops; it stays cut off until its run lease may have run out (LEASE - MARGIN s after its
    last renewal, which began before the stop), then goes on: the armed canary is confirmed,
    the next batches start nothing (skipped, saying why and how to go on), one warning line,
    exit 1 (not Ctrl-C's 130). Once PostgreSQL is back, ``apply --resume RUN`` finds the canary
    decided on the host and applies the rest: one transaction per host."""
    names = ["hv15", "hv16", "hv17"]
    for name in names:
        fresh_host(name)
    url = own_pg_server.create_database()
    task = task_file(tmp_path, timeout=120)  # the canary's timer outlives the cut-off
    gate = Gate(tmp_path / "barrier")
    proc = controller(lab, url, "-l", ",".join(names), "apply", str(task), "--canary", "1",
                      "--batch-size", "1", gate=gate)  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=60) == "hv15"
        wait_for(applied(lab, "hv15"), 30, "the canary to be applied")
        txid = armed_txid(lab, "hv15")
        own_pg_server.halt()
        # the controller's last renewal began before the stop: lost by now, on its own clock
        time.sleep(LEASE - MARGIN + 1)
        gate.open("confirm")  # every arrival goes on: only the canary may arrive
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
        proc.communicate()
        if not own_pg_server.running():
            own_pg_server.resume()
    doc = json.loads(out)
    assert proc.returncode == 1, (err, doc)
    assert {n: doc[n]["status"] for n in names} == {
        "hv15": "confirmed", "hv16": "skipped", "hv17": "skipped"}, doc  # fmt: skip
    code, listing, _ = fleetbr("--history", url, "history")
    run_id = listing["runs"][0]["run"]
    for name in ("hv16", "hv17"):
        assert doc[name]["message"] == (
            "not started: the run lease could not be renewed (history unreachable); resume "
            f"with fleetbr apply --resume {run_id}"), doc  # fmt: skip
        assert events(lab, name) == [], f"{name} never touched"
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("warning: run history unreachable ("), err
    assert f"the run lease of run {run_id} could not be renewed for " in warnings[0], err
    assert "no new host starts; hosts already armed finish (confirm or rollback)" in warnings[0]
    assert f"`fleetbr apply --resume {run_id}` finishes the run" in warnings[0], err
    assert settled(lab, "hv15") and events(lab, "hv15")[-1] == "confirmed"

    code, shown, err = fleetbr("--history", url, "show", str(run_id))
    assert code == 0, err
    assert (shown["state"], set(shown["hosts"])) == ("running", {"hv15"}), "rows unwritten"
    assert (shown["hosts"]["hv15"]["status"], shown["hosts"]["hv15"]["txid"]) == ("started", txid)
    code, resumed, err = resume(lab, url, "--resume", str(run_id))
    assert code == 0, (err, resumed)
    assert {n: resumed[n]["status"] for n in names} == dict.fromkeys(names, "confirmed"), resumed
    assert resumed["hv15"]["message"] == (
        f"confirmed {txid} (decided on the host after run {run_id} stopped)"), resumed  # fmt: skip
    for name in names:
        assert events(lab, name).count("staged") == 1, f"{name}: one transaction"
        assert settled(lab, name)
    code, listing, err = fleetbr("--history", url, "history")
    latest = listing["runs"][0]
    assert (latest["resumed_from"], latest["state"], latest["exit_code"]) == (
        run_id, "finished", 0)  # fmt: skip
    for name in names:
        fresh_host(name)
