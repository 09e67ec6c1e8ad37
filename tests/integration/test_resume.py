"""Resumable rollouts on real lab hosts: a SIGKILLed controller, a Ctrl-C (one, then two), and
``fleetbr apply --resume`` finishing the rollout from the run history."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbr.history.sqlite import SqliteStore
from fleetbr.interrupt import FIRST_CTRL_C
from fleetbr.lab import Lab
from fleetbr.transaction import scripts
from tests.integration.barrier import Gate
from tests.integration.helpers import (
    armed,
    armed_txid,
    enslaved,
    events,
    fleetbr,
    sh,
    task_file,
    wait_for,
)


def controller(lab: Lab, history: Path | str, *args: str, gate: Gate) -> subprocess.Popen[str]:
    """``fleetbr --json apply ...`` in the background, held before each confirm until ``gate``
    releases it."""
    return subprocess.Popen(
        gate.argv("confirm", "--json", "--history", str(history), "-i", str(lab.inventory_dir),
                  *args),
        env=gate.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def applied(lab: Lab, *names: str) -> Callable[[], bool]:
    return lambda: all("applied" in events(lab, name) for name in names)


def _stderr_through(proc: subprocess.Popen[str], line: str, timeout: float) -> str:
    """The child's stderr up to and including the first line that contains ``line``; fails the
    test if the child closes stderr first, or after ``timeout`` seconds."""
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for got in iter(proc.stderr.readline, ""):
            seen.append(got)
            if line in got:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert found.wait(timeout), f"no {line!r} on stderr within {timeout}s: {''.join(seen)}"
    return "".join(seen)


def resume(lab: Lab, history: Path | str, *args: str, limit: str = "") -> tuple[int, Any, str]:
    """``fleetbr --json --history H -i INV [-l LIMIT] apply ARGS``."""
    selection = ["-l", limit] if limit else []
    return fleetbr("--history", str(history), "-i", str(lab.inventory_dir), *selection, "apply",
                   *args)  # fmt: skip


def settled(lab: Lab, name: str) -> bool:
    return enslaved(lab, name) and not armed(lab, name)


def test_sigkilled_controller_then_resume_finishes_the_rollout(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    names = ["hv07", "hv08", "hv09"]
    for name in names:
        fresh_host(name)
    # a window no slow controller outlasts: the resume, not the canary's timer, rolls it back
    history, task = tmp_path / "h.sqlite3", task_file(tmp_path, timeout=600)
    gate = Gate(tmp_path / "barrier")  # never released: the canary is never confirmed
    proc = controller(lab, history, "-l", ",".join(names), "apply", str(task), "--canary", "1",
                      "--batch-size", "1", gate=gate)  # fmt: skip
    try:
        assert gate.reached("confirm", timeout=300) == "hv07"
        wait_for(applied(lab, "hv07"), 300, "the canary to be applied")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        proc.communicate()
    txid = armed_txid(lab, "hv07")
    store = SqliteStore(history)
    [run] = store.runs()
    rows = {row.host: row for row in store.hosts_of(run.id)}
    assert run.state == "running" and run.hosts == names
    assert (rows["hv07"].status, rows["hv07"].txid) == ("started", txid), "recorded before arming"
    assert set(rows) == {"hv07"}, "later batches never started"
    store.close()

    code, doc, err = resume(lab, history, "--resume")  # no TASK, no -l: the run's own
    assert code == 0, (err, doc)
    assert err.splitlines()[0] == (
        f"resuming run {run.id} (apply started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(run.started))}, its controller is "
        f"gone): task {task.absolute()} (sha256 {str(run.task_sha256)[:12]}), 3 hosts "
        "hv[07-09] (-l hv07,hv08,hv09), 3 not done"
    ), err
    assert {n: doc[n]["status"] for n in names} == dict.fromkeys(names, "confirmed"), doc
    assert "rolled back" in doc["hv07"]["resolved"] and txid in doc["hv07"]["resolved"]
    journal = events(lab, "hv07")
    assert journal[:4] == ["staged", "armed", "applied", "rolling_back"], journal
    assert journal[-4:] == ["staged", "armed", "applied", "confirmed"], journal
    assert "reason=resume" in sh(lab, "hv07", "grep rolled_back /var/lib/fleetbr/journal")
    assert all(settled(lab, n) for n in names)

    store = SqliteStore(history)
    latest = store.runs()[0]
    assert (latest.resumed_from, latest.state, latest.exit_code) == (run.id, "finished", 0)
    store.close()
    again, _, err = resume(lab, history, "--resume")
    assert again == 2 and err == (
        f"error: --resume: the newest apply, run {latest.id}, finished (every host was "
        "attempted); nothing to resume\n"
    ), err
    for name in names:
        fresh_host(name)


def test_ctrl_c_lets_armed_hosts_finish_then_resume_leaves_done_hosts_alone(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    names = ["hv10", "hv11", "hv12", "hv13", "hv14"]
    for name in names:
        fresh_host(name)
    history, task = tmp_path / "h.sqlite3", task_file(tmp_path)
    selection = ",".join(names)
    gate = Gate(tmp_path / "barrier")
    proc = controller(lab, history, "-l", selection, "apply", str(task), "--canary", "1",
                      "--batch-size", "40%", gate=gate)  # fmt: skip
    try:
        assert gate.reached("confirm", 1, timeout=60) == "hv10"
        gate.release("confirm", 1)  # the canary confirms
        held = {gate.reached("confirm", 2, timeout=60), gate.reached("confirm", 3, timeout=60)}
        assert held == {"hv11", "hv12"}
        wait_for(applied(lab, "hv11", "hv12"), 60, "the second batch to be applied")
        proc.send_signal(signal.SIGINT)  # both armed, each held before its confirm
        gate.open("confirm")
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: starting no more hosts" in err
    doc = json.loads(out)
    assert {n: doc[n]["status"] for n in names} == {
        "hv10": "confirmed", "hv11": "confirmed", "hv12": "confirmed",
        "hv13": "skipped", "hv14": "skipped",
    }, doc  # fmt: skip
    assert "interrupted" in doc["hv13"]["message"]
    assert events(lab, "hv13") == [] and events(lab, "hv14") == []
    before = {name: events(lab, name) for name in names[:3]}

    code, doc, err = resume(lab, history, str(task), "--resume", limit=selection)
    assert code == 0, (err, doc)
    assert all(doc[n]["status"] == "confirmed" for n in names), doc
    for name in names[:3]:
        assert "not touched again" in doc[name]["message"]
        assert events(lab, name) == before[name], f"{name} was touched again"
    assert all(settled(lab, n) for n in names)
    store = SqliteStore(history)
    first, second = sorted(store.runs(), key=lambda r: r.id)
    assert (first.state, first.exit_code) == ("interrupted", 130)
    assert second.resumed_from == first.id
    assert second.options["batch_size"] == "40%" and second.options["batch_size_hosts"] == 2
    store.close()
    for name in names:
        fresh_host(name)


def test_second_ctrl_c_exits_at_once_then_resume_resolves_armed_hosts(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Two Ctrl-C: the controller leaves both hosts armed. hv16's transaction is then confirmed
    on the host (as a controller killed after its disarm would leave it): resume records it as
    confirmed, untouched; hv15's is still armed: resume rolls it back now, verifies it, applies
    it again."""
    names = ["hv15", "hv16"]
    for name in names:
        fresh_host(name)
    window = 300  # the hosts must still be armed after the second Ctrl-C, also on a slow machine
    history, task = tmp_path / "h.sqlite3", task_file(tmp_path, timeout=window)
    gate = Gate(tmp_path / "barrier")  # never released: both stay armed
    proc = controller(lab, history, "-l", ",".join(names), "apply", str(task), gate=gate)
    try:
        for number in (1, 2):
            gate.reached("confirm", number, timeout=window / 2)
        wait_for(applied(lab, *names), window / 2, "both hosts to be applied")
        proc.send_signal(signal.SIGINT)
        # the second Ctrl-C only once the first one was handled: its warning is on stderr
        err = _stderr_through(proc, FIRST_CTRL_C.split(";")[0], window)
        proc.send_signal(signal.SIGINT)
        # "at once": before the hosts' timers fire (they are still armed below), never after
        # a confirm (the gate never lets one start)
        proc.wait(timeout=window)
        err += proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "roll back by themselves when their timers fire" in err
    assert armed(lab, "hv15") and armed(lab, "hv16"), "the second Ctrl-C waited for the hosts"
    txid16 = armed_txid(lab, "hv16")
    sh(lab, "hv16", scripts.disarm_script(txid16, nonce=scripts.new_nonce()))
    assert events(lab, "hv16")[-1] == "confirmed"

    code, doc, err = resume(lab, history, "--resume")
    assert code == 0, (err, doc)
    assert doc["hv16"]["status"] == "confirmed" and "after run 1 stopped" in doc["hv16"]["message"]
    assert events(lab, "hv16").count("staged") == 1, "a host confirmed meanwhile is not redone"
    assert doc["hv15"]["status"] == "confirmed" and "rolled back" in doc["hv15"]["resolved"]
    assert events(lab, "hv15").count("rolled_back") == 1
    assert all(settled(lab, n) for n in names)
    for name in names:
        fresh_host(name)


def test_resume_refuses_another_task_other_hosts_or_other_thresholds(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Exit 2 and nothing contacted: the hosts' journals stay as the first run left them."""
    fresh_host("hv17")
    fresh_host("hv18")
    history = tmp_path / "h.sqlite3"
    task = task_file(tmp_path, nic="nosuchnic0")  # the canary is refused: the rollout stops
    code, doc, err = resume(lab, history, str(task), "--canary", "1", limit="hv17,hv18")
    assert code == 1, err
    assert (doc["hv17"]["status"], doc["hv18"]["status"]) == ("refused", "skipped")
    other = task_file(tmp_path)
    refusals = [
        ((str(other), "--resume"), "", "is not the task run 1 applied"),
        (("--resume", "1"), "hv17", "the selected hosts differ from run 1's (-l hv17,hv18)"),
        (("--resume",), "hv1[789]", "not in the run: hv19"),
        (("--resume", "--batch-size", "50%"), "", "leave out --batch-size"),
        (("--resume", "2"), "", "no run 2"),
    ]
    for args, limit, message in refusals:
        code, _, err = resume(lab, history, *args, limit=limit)
        assert code == 2 and message in err, (args, err)
    task.write_text(task.read_text() + "# edited\n")
    code, _, err = resume(lab, history, "--resume")
    assert code == 2 and "is not the task run 1 applied" in err
    code, _, err = fleetbr("--no-history", "-i", str(lab.inventory_dir), "apply", "--resume")
    assert code == 2 and "--no-history" in err
    assert events(lab, "hv17") == [] and events(lab, "hv18") == []


def test_bare_resume_never_takes_an_older_run_behind_a_finished_one(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Run 1 left hv17 refused (every host attempted: finished); run 2, another task, confirmed
    hv18. A bare --resume must refuse (exit 2, one line, nothing contacted) instead of applying
    run 1's task to hv17 again; --resume 1 still does, after naming the run."""
    fresh_host("hv17")
    fresh_host("hv18")
    history = tmp_path / "h.sqlite3"
    refused = task_file(tmp_path, nic="nosuchnic0")
    code, doc, err = resume(lab, history, str(refused), limit="hv17")
    assert (code, doc["hv17"]["status"]) == (1, "refused"), err
    code, doc, err = resume(lab, history, str(task_file(tmp_path)), limit="hv18")
    assert (code, doc["hv18"]["status"]) == (0, "confirmed"), err
    code, doc, err = resume(lab, history, "--resume")
    refusal = "the newest apply, run 2, finished (every host was attempted); nothing to resume"
    assert (code, doc, err) == (2, None, f"error: --resume: {refusal}\n")
    store = SqliteStore(history)
    assert [run.id for run in store.runs()] == [2, 1], "the refusal recorded no run"
    store.close()
    code, doc, err = resume(lab, history, "--resume", "1")
    assert (code, doc["hv17"]["status"]) == (1, "refused"), err
    assert err.startswith("resuming run 1 (apply started "), err
    assert f"finished): task {refused.absolute()} (sha256 " in err.splitlines()[0]
    assert err.splitlines()[0].endswith(" 1 host hv17 (-l hv17), 1 not done"), err
    for name in ("hv17", "hv18"):
        fresh_host(name)


def test_an_unwritable_history_does_not_change_an_apply(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """The history is a directory (SQLite cannot open it): the host is confirmed all the same,
    exit 0, the report as usual, one warning line on stderr."""
    fresh_host("hv19")
    broken = tmp_path / "history-is-a-directory"
    broken.mkdir()
    code, doc, err = fleetbr("--history", str(broken), "-i", str(lab.inventory_dir), "-l", "hv19",
                             "apply", str(task_file(tmp_path)))  # fmt: skip
    assert code == 0, err
    assert doc["hv19"]["status"] == "confirmed"
    [line] = err.splitlines()
    assert line.startswith("warning: run history not recorded (") and str(broken) in line
    assert settled(lab, "hv19")
    fresh_host("hv19")


# --- the run lease: a controller between two batches -------------------------------------------

BETWEEN = ["hv07", "hv08", "hv09"]  # a canary, then one batch of two


def held_between_batches(lab: Lab, history: Path, gate: Gate, tmp_path: Path) -> Any:
    """``fleetbr --json apply`` of BETWEEN, held before its second batch (the canary hv07
    confirmed): the controller holds no host, only its run lease. Returns (process, run)."""
    task = task_file(tmp_path)
    proc = subprocess.Popen(
        gate.argv("batch", "--json", "--history", str(history), "-i", str(lab.inventory_dir),
                  "-l", ",".join(BETWEEN), "apply", str(task), "--canary", "1",
                  "--batch-size", "2"),
        env=gate.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert gate.reached("batch", timeout=90) == "hv08"
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    store = SqliteStore(history)
    try:
        [run] = store.runs()
        driver = store.run_lease(run.id)
        assert driver is not None and driver.holder.split(":")[1] == str(proc.pid), driver
        assert store.leases(run.id, lapsed=True) == [], "no host in its hands"
    finally:
        store.close()
    assert events(lab, "hv07")[-1] == "confirmed"
    assert events(lab, "hv08") == [] and events(lab, "hv09") == []
    return proc, run


def resumed_after(lab: Lab, history: Path, run_id: int, doc: Any) -> None:
    """The resume of run ``run_id`` carried hv07 over untouched and applied hv08 and hv09 once
    each; both runs have let go of their run lease."""
    assert {n: doc[n]["status"] for n in BETWEEN} == dict.fromkeys(BETWEEN, "confirmed"), doc
    assert "not touched again" in doc["hv07"]["message"]
    for name in BETWEEN:
        assert events(lab, name).count("staged") == 1, f"{name}: one transaction"
        assert settled(lab, name)
    store = SqliteStore(history)
    try:
        latest = store.runs()[0]
        assert (latest.resumed_from, latest.state, latest.exit_code) == (run_id, "finished", 0)
        assert store.run_lease(latest.id, lapsed=True) is None, "released at its end"
    finally:
        store.close()


def test_a_resume_waits_for_a_controller_held_between_two_batches(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Two controllers: the first is between its canary and its next batch (held there), holding
    no host, only its run lease. ``apply --resume RUN`` started meanwhile waits on the run lease
    (one line naming the controller), records no run and touches nothing; the first controller
    is interrupted (Ctrl-C: its next batch skipped, its run ended and its lease released); the
    resume then carries the canary over and applies the rest. One transaction per host."""
    for name in BETWEEN:
        fresh_host(name)
    history, gate = tmp_path / "h.sqlite3", Gate(tmp_path / "barrier")
    errors = tmp_path / "resume.err"
    proc, run = held_between_batches(lab, history, gate, tmp_path)
    resumer: subprocess.Popen[str] | None = None
    try:
        with errors.open("w") as err_file:
            resumer = subprocess.Popen(
                [sys.executable, "-m", "fleetbr", "--json", "--history", str(history), "-i",
                 str(lab.inventory_dir), "apply", "--resume", str(run.id)],
                env=gate.env, stdout=subprocess.PIPE, stderr=err_file, text=True,
            )  # fmt: skip
        wait_for(lambda: "waiting up to" in errors.read_text() or resumer.poll() is not None, 90,
                 "the resume to wait for the run lease")  # fmt: skip
        waiting = errors.read_text()
        assert resumer.poll() is None, waiting
        assert waiting.startswith(f"--resume: run {run.id} still works on its rollout (driven "
                                  f"by {lab_holder(history, run.id)}, its lease runs out in "
                                  ), waiting  # fmt: skip
        store = SqliteStore(history)
        assert store.latest_run_id() == run.id, "the resume has not recorded its run"
        store.close()
        assert events(lab, "hv08") == [] and events(lab, "hv09") == []
        proc.send_signal(signal.SIGINT)
        _stderr_through(proc, FIRST_CTRL_C.split(";")[0], 60)
        gate.open("batch")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, out
        first = json.loads(out)
        assert {n: first[n]["status"] for n in BETWEEN} == {
            "hv07": "confirmed", "hv08": "skipped", "hv09": "skipped"}, first  # fmt: skip
        out, _ = resumer.communicate(timeout=300)
    finally:
        proc.kill()
        if resumer is not None:
            resumer.kill()
    err = errors.read_text()
    doc = json.loads(out)
    assert resumer.returncode == 0, (err, doc)
    lines = err.splitlines()
    assert lines[0] == waiting.splitlines()[0] and len(lines) == 2, err
    assert lines[1].startswith(f"resuming run {run.id} (apply started "), err
    assert ", interrupted): task " in lines[1] and lines[1].endswith(", 2 not done"), err
    resumed_after(lab, history, run.id, doc)
    store = SqliteStore(history)
    try:
        assert store.run_lease(run.id, lapsed=True) is None, "released when it was interrupted"
    finally:
        store.close()
    for name in BETWEEN:
        fresh_host(name)


def lab_holder(history: Path, run_id: int) -> str:
    """The run lease's holder of run ``run_id`` as recorded."""
    store = SqliteStore(history)
    try:
        lease = store.run_lease(run_id, lapsed=True)
        assert lease is not None
        return lease.holder
    finally:
        store.close()


@pytest.mark.parametrize("where", ["this machine", "another machine"])
def test_a_controller_sigkilled_between_two_batches_is_resumed_once_its_run_lease_is_gone(
    lab: Lab, fresh_host: Any, tmp_path: Path, where: str
) -> None:
    """The controller SIGKILLed between two batches renews nothing: on this machine (its pid
    and start time gone) its run lease holds nothing at once, the resume goes on without a
    wait; the same lease as a controller on another machine would leave it (its holder's
    machine renamed in the row: whether it lives cannot be told from here) is waited for until
    it runs out by the history's clock, then the resume goes on."""
    for name in BETWEEN:
        fresh_host(name)
    history, gate = tmp_path / "h.sqlite3", Gate(tmp_path / "barrier")
    proc, run = held_between_batches(lab, history, gate, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    store = SqliteStore(history)
    try:
        if where == "another machine":
            holder = "elsewhere.invalid:" + lab_holder(history, run.id).split(":", 1)[1]
            store.db.execute("UPDATE runs SET lease_holder = ? WHERE id = ?", (holder, run.id))
        [[expiry]] = store.db.execute("SELECT lease_until FROM runs WHERE id = ?", (run.id,))
    finally:
        store.close()
    code, doc, err = resume(lab, history, "--resume", str(run.id))
    assert code == 0, (err, doc)
    lines = err.splitlines()
    if where == "this machine":
        assert len(lines) == 1, err
    else:
        assert len(lines) == 2 and lines[0].startswith(
            f"--resume: run {run.id} still works on its rollout (driven by {holder}, its lease "
        ), err  # fmt: skip
    assert lines[-1].startswith(f"resuming run {run.id} (apply started "), err
    assert "its controller is gone): task " in lines[-1], err
    resumed_after(lab, history, run.id, doc)
    store = SqliteStore(history)
    try:
        latest = store.runs()[0]
        if where == "another machine":  # one clock (SQLite: this machine's) for both
            assert latest.started >= expiry, "recorded only once the lease ran out"
    finally:
        store.close()
    for name in BETWEEN:
        fresh_host(name)
