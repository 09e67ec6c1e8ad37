"""The dead-man transaction against real lab hosts: every case ends confirmed with the new state,
or back exactly at the host's snapshot and reachable at its original address."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fleetbr.changes.bridge.change import apply_host, rollout
from fleetbr.lab import Lab, host_state, kill_sshd, set_switch_port, start_sshd, switch_exec
from fleetbr.report import Status
from fleetbr.transaction import scripts
from fleetbr.transaction.protocol import ROLLBACK_GRACE
from fleetbr.transport import Transport
from tests.integration.barrier import Gate
from tests.integration.helpers import (
    TIMEOUT,
    api_status,
    armed,
    armed_txid,
    assert_at_snapshot,
    assert_bridged,
    enslaved,
    events,
    fleetbr,
    fleetbr_processes,
    host_processes,
    rendered,
    sh,
    slow_command,
    specs,
    task_file,
    wait_for,
)


def apply(lab: Lab, host: str, task: Path, transport: Transport | None = None) -> Any:
    """Run the transaction for one host in-process (over ``transport``, default SSH)."""
    spec = specs(lab.inventory_dir)[host]
    bridge_task = rendered(lab, task, host)
    return asyncio.run(apply_host(spec, bridge_task, task.name, transport=transport))


def test_confirmed_cutover_then_unchanged_then_unbridge(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv01")
    result = apply(lab, "hv01", task_file(tmp_path))
    assert result.status == Status.CONFIRMED, result.message
    assert_bridged(lab, "hv01")
    assert events(lab, "hv01") == ["staged", "armed", "applied", "confirmed"]
    assert not armed(lab, "hv01") and not fleetbr_processes(lab, "hv01"), "timer left running"

    again = apply(lab, "hv01", task_file(tmp_path))
    assert again.status == Status.UNCHANGED

    back = apply(lab, "hv01", task_file(tmp_path, state="absent"))
    assert back.status == Status.CONFIRMED, back.message
    state = host_state(lab, "hv01")
    # unbridge leaves the netfilter files and sysctls alone; the network is as it was
    for key in ("links", "addresses", "routes4", "routes6"):
        if key in state:
            assert state[key] == pristine["hv01"][key], key


def test_plan_changes_nothing(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    fresh_host("hv02")
    before = host_state(lab, "hv02")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv02", "plan",
                             str(task_file(tmp_path)))  # fmt: skip
    assert code == 0, err
    assert doc["hv02"]["status"] == "planned"
    assert any("make eth0 a port of br0" in step for step in doc["hv02"]["steps"])
    assert host_state(lab, "hv02") == before
    assert events(lab, "hv02") == []


def test_plan_prints_one_step_per_line(lab: Lab, fresh_host: Any, tmp_path: Path) -> None:
    """Before: all steps of a host on one line, joined by a literal `\\n` (issue 15, defect 6)."""
    fresh_host("hv02")
    task = str(task_file(tmp_path))
    _, doc, _ = fleetbr("-i", str(lab.inventory_dir), "-l", "hv02", "plan", task)
    steps = doc["hv02"]["steps"]
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(lab.inventory_dir), "-l", "hv02", "plan", task],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, first, *more, summary = done.stdout.splitlines()
    column = header.index("detail")
    assert first.split()[:2] == ["hv02", "planned"] and first[column:] == steps[0]
    assert more == [" " * column + step for step in steps[1:]] and len(steps) > 2
    assert summary == "1 host: 1 planned"
    assert "\\n" not in done.stdout


def test_cutting_address_rolls_back(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv02")
    result = apply(lab, "hv02", task_file(tmp_path, addresses=["198.51.100.202/30"]))
    assert result.status == Status.ROLLED_BACK, result.message
    # the resolver's promise: it looks again ROLLBACK_GRACE after the deadline, and gives
    # reconnecting its budget; the verification is one command
    ssh = specs(lab.inventory_dir)["hv02"].ssh
    budget = max(30.0, TIMEOUT, 2.0 * ssh.connect_timeout)
    assert result.data["window"] < TIMEOUT + ROLLBACK_GRACE + budget + ssh.command_timeout
    assert_at_snapshot(lab, "hv02", pristine)
    assert events(lab, "hv02")[-2:] == ["rolling_back", "rolled_back"]
    assert "reason=timer" in sh(lab, "hv02", "tail -n 1 /var/lib/fleetbr/journal")


def test_controller_sigkilled_host_reverts_by_itself(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv03")
    task = task_file(tmp_path)
    gate = Gate(tmp_path / "barrier")  # never released: the controller never confirms
    controller = subprocess.Popen(
        gate.argv("confirm", "-i", str(lab.inventory_dir), "-l", "hv03", "apply", str(task)),
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=120)
        wait_for(lambda: enslaved(lab, "hv03") and "applied" in events(lab, "hv03"), 20,
                 "the NIC to be enslaved")  # fmt: skip
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    finally:
        controller.kill()
    assert armed(lab, "hv03")
    wait_for(lambda: "rolled_back" in events(lab, "hv03"), TIMEOUT + 5, "the host's own rollback")
    assert_at_snapshot(lab, "hv03", pristine)
    found = api_status(lab, "hv03")
    assert found.exit_code == 0 and "rolled_back reason=timer" in found["hv03"].message


def _apply_session(lab: Lab, host: str) -> int | None:
    """PID of the sshd session process running arm+apply (the only script with a `sleep 0.1`)."""
    listener = lab.host(host).sshd_pid
    for pid, argv in host_processes(lab, host).items():
        if argv != ["sleep", "0.1"]:
            continue
        chain = pid
        while chain > 1:  # walk up to the child of the listening sshd
            parent = int(Path(f"/proc/{chain}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == listener:
                return chain
            chain = parent
    return None


HELD_APPLY = 8.0  # at most: the cutter releases the enslaving step once it cut the session
CUT_TIMEOUT = 40  # the arm script waits timeout / 4 = 10 s for the apply: more than HELD_APPLY


def _kill_apply_session(lab: Lab, host: str, release: Path) -> threading.Thread:
    """In the background: SIGKILL the SSH session that is waiting for the apply to finish, then
    create ``release`` (the held enslaving step goes on)."""

    def cut() -> None:
        found: list[int] = []

        def session_seen() -> bool:
            pid = _apply_session(lab, host)
            found.extend([pid] if pid else [])
            return bool(found)

        try:
            wait_for(session_seen, 20, "the arm+apply session")
            os.kill(found[0], signal.SIGKILL)
        finally:
            release.touch()

    thread = threading.Thread(target=cut)
    thread.start()
    return thread


def test_session_cut_during_apply(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv04")
    # the enslaving step is held (HELD_APPLY s at most, less than the arm script waits for the
    # apply) until the session that waits for it was found and cut: there for a poll to find,
    # however loaded the machine, not a race
    release = lab.host("hv04").dir / "release-ip-master"
    release.unlink(missing_ok=True)
    with slow_command(lab, "hv04", "ip", " master ", HELD_APPLY, release=release):
        cutter = _kill_apply_session(lab, "hv04", release)
        result = apply(lab, "hv04", task_file(tmp_path, timeout=CUT_TIMEOUT))
        cutter.join()
    release.unlink(missing_ok=True)
    assert any("session ended early" in event for event in result.data["events"]), result.data
    # the detached apply completed; confirm went over a new connection
    assert result.status == Status.CONFIRMED, result.message
    assert_bridged(lab, "hv04")
    assert not armed(lab, "hv04")


def apply_with_fault_in_window(
    lab: Lab, host: str, task: Path, inject: Callable[[], object], heal: Callable[[], object]
) -> Any:
    """Apply; once the change is in place and the controller is held before its confirm
    connection, ``inject`` a fault, then let it go on; ``heal`` the fault after the host has
    rolled itself back, as an operator fixing the network would."""
    gate = Gate(task.parent / f"barrier-{host}")

    def fault() -> None:
        gate.reached("confirm", timeout=120)
        try:
            wait_for(lambda: "applied" in events(lab, host), 20, "apply")
            inject()
        finally:
            gate.release("confirm")
        try:
            wait_for(lambda: "rolled_back" in events(lab, host), TIMEOUT + 5, "the rollback")
        finally:
            heal()  # while the controller is still waiting to verify the rollback

    helper = threading.Thread(target=fault)
    helper.start()
    try:
        return apply(lab, host, task, gate.transport("confirm"))
    finally:
        helper.join()


def test_sshd_killed_during_window_no_false_confirm(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv05")
    result = apply_with_fault_in_window(
        lab, "hv05", task_file(tmp_path),
        inject=lambda: kill_sshd(lab, "hv05"),  # established sessions survive, new ones are refused
        heal=lambda: start_sshd(lab, "hv05"),
    )  # fmt: skip
    assert result.status == Status.ROLLED_BACK, result.message
    assert "confirmed" not in events(lab, "hv05")
    assert_at_snapshot(lab, "hv05", pristine)


def test_switch_link_down_during_window(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv06")
    result = apply_with_fault_in_window(
        lab, "hv06", task_file(tmp_path),
        inject=lambda: set_switch_port(lab, "hv06", up=False),
        heal=lambda: set_switch_port(lab, "hv06", up=True),
    )  # fmt: skip
    assert result.status == Status.ROLLED_BACK, result.message
    assert_at_snapshot(lab, "hv06", pristine)


def test_confirm_after_timer_fired_reports_rolled_back(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv01")
    # the controller verifies and probes, then is held before disarming until the host's timer
    # has fired and rolled back
    gate = Gate(tmp_path / "barrier")

    def hold_past_the_deadline() -> None:
        gate.reached("disarm", timeout=120)
        try:
            wait_for(lambda: "rolled_back" in events(lab, "hv01"), TIMEOUT + 5, "the timer")
        finally:
            gate.release("disarm")

    helper = threading.Thread(target=hold_past_the_deadline)
    helper.start()
    try:
        result = apply(lab, "hv01", task_file(tmp_path), gate.transport("disarm"))
    finally:
        helper.join()
    assert result.status == Status.ROLLED_BACK, result.message
    assert "timer fired before a confirmation" in result.message
    assert "confirmed" not in events(lab, "hv01")
    assert_at_snapshot(lab, "hv01", pristine)


@pytest.mark.parametrize("attempt", range(3))
def test_confirm_and_rollback_racing_on_the_host(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path, attempt: int
) -> None:
    """Start disarm and rollback at the same instant: exactly one wins, the host matches it."""
    fresh_host("hv02")

    task = task_file(tmp_path, timeout=30)
    # Stage and arm through the real controller path, held (never released) before confirm:
    gate = Gate(tmp_path / "barrier")
    proc = subprocess.Popen(
        gate.argv("confirm", "-i", str(lab.inventory_dir), "-l", "hv02", "apply", str(task)),
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=120)
        wait_for(lambda: "applied" in events(lab, "hv02"), 20, "apply")
    finally:
        proc.kill()
        proc.wait()
    txid = armed_txid(lab, "hv02")
    nonce = scripts.new_nonce()
    disarm = scripts.disarm_script(txid, nonce=nonce)
    race = (
        f"cat > /tmp/disarm.sh <<'EOF_DISARM'\n{disarm}EOF_DISARM\n"
        f"sh /var/lib/fleetbr/tx/{txid}/rollback.sh race > /dev/null & "
        "sh /tmp/disarm.sh > /tmp/disarm.out & wait; cat /tmp/disarm.out"
    )
    out = sh(lab, "hv02", race)
    decision = sh(lab, "hv02", f"readlink /var/lib/fleetbr/tx/{txid}/decision").strip()
    said = scripts.markers(out, nonce).get("decision", "")
    assert said == decision, "what confirm reports must be what the host did"
    tail = events(lab, "hv02")
    assert tail.count("confirmed") + tail.count("rolled_back") == 1
    if decision == "confirmed":
        assert_bridged(lab, "hv02")
    else:
        assert decision == "rolled_back race"
        assert_at_snapshot(lab, "hv02", pristine)
    assert not armed(lab, "hv02")


def test_blackhole_route_to_the_controller_rolls_back(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv03")
    controller = lab.controller4.split("/")[0]
    task = task_file(tmp_path, routes=[{"to": f"{controller}/32", "type": "blackhole"}])
    result = apply(lab, "hv03", task)
    assert result.status == Status.ROLLED_BACK, result.message
    assert any(f"blackhole {controller}/32" in step for step in result.data["steps"])
    assert_at_snapshot(lab, "hv03", pristine)
    assert "blackhole" not in sh(lab, "hv03", "ip route")


def test_failing_step_reverts_at_once_without_waiting_for_the_timer(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv04")
    # a read-only /etc/sysctl.d inside the host: writing bridge.conf fails after the sysctls changed
    sh(lab, "hv04", "mount --bind /etc/sysctl.d /etc/sysctl.d && "
       "mount -o remount,bind,ro /etc/sysctl.d")  # fmt: skip
    try:
        started = time.monotonic()
        result = apply(lab, "hv04", task_file(tmp_path, timeout=60))
        elapsed = time.monotonic() - started
    finally:
        sh(lab, "hv04", "umount /etc/sysctl.d")
    assert result.status == Status.ROLLED_BACK, result.message
    assert "failed" in result.message
    assert elapsed < 60, f"the host must revert at once, not after the 60s timer ({elapsed:.0f}s)"
    assert "apply_failed" in events(lab, "hv04")
    assert not enslaved(lab, "hv04"), "the NIC was never touched"
    assert_at_snapshot(lab, "hv04", pristine)


def test_gateway_silent_after_change_rolls_back_at_once(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv05")
    gateway = f"{lab.gateway4}/24"
    gate = Gate(tmp_path / "barrier")

    def silence_gateway() -> None:
        gate.reached("confirm", timeout=120)
        try:
            wait_for(lambda: "applied" in events(lab, "hv05"), 20, "apply")
            switch_exec(lab, ["ip", "addr", "del", gateway, "dev", "sw0"])
        finally:
            gate.release("confirm")

    helper = threading.Thread(target=silence_gateway)
    helper.start()
    try:
        started = time.monotonic()
        result = apply(lab, "hv05", task_file(tmp_path, timeout=60), gate.transport("confirm"))
        elapsed = time.monotonic() - started
    finally:
        helper.join()
        switch_exec(lab, ["ip", "addr", "replace", gateway, "dev", "sw0"])
    assert result.status == Status.ROLLED_BACK, result.message
    assert f"gateway {lab.gateway4} no longer answers" in result.message
    assert elapsed < 60, "a failed probe must trigger the rollback, not wait for the 60s timer"
    assert "reason=confirm-failed" in sh(lab, "hv05", "grep rolled_back /var/lib/fleetbr/journal")
    assert_at_snapshot(lab, "hv05", pristine)


def test_twenty_hosts_three_cutting(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    names = [h.name for h in lab.hosts[:20]]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fresh_host, names))
    cutting = {"hv05", "hv12", "hv18"}
    good, bad = task_file(tmp_path), task_file(tmp_path, addresses=["203.0.113.9/24"])
    all_specs = specs(lab.inventory_dir)
    tasks = {n: rendered(lab, bad if n in cutting else good, n) for n in names}
    result = asyncio.run(rollout([all_specs[n] for n in names], tasks, "bridge", forks=50))
    counts = result.counts()
    assert counts == {"confirmed": 17, "rolled_back": 3}, {n: r.message for n, r in result.items()}
    assert {n for n, r in result.items() if r.status == Status.ROLLED_BACK} == cutting
    for name in names:
        if name in cutting:
            assert host_state(lab, name) == pristine[name], name
        else:
            assert enslaved(lab, name), name
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", ",".join(names), "facts")
    assert code == 0, err
    assert all(doc[n]["status"] == "ok" for n in names)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fresh_host, names))
