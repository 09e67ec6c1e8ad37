"""fleetbr's own state on the host under bad conditions (issue 6, items 1, 4, 5 and 8): process
records that point at somebody else's process, a full or read-only state directory, a damaged
armed marker, a user who cannot read the state, two controllers racing for the arm lock."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetbr.lab import Lab, host_state
from fleetbr.lab.faults import enter_argv
from tests.integration.helpers import (
    NO_SUDOER,
    SUDO_HOST,
    api_status,
    armed,
    assert_bridged,
    events,
    fleetbr,
    fleetbr_processes,
    sh,
    slow_command,
    stale_bridged_transaction,
    sudo_inventory,
    task_file,
    wait_for,
)

STATE = "/var/lib/fleetbr"
OTHER_BOOT = "00000000-0000-4000-8000-000000000000"


def marker(lab: Lab, host: str) -> str:
    """What the armed marker names: a symlink's target, or a plain file's first line (0.1)."""
    return sh(lab, host, f"readlink {STATE}/armed || head -n 1 {STATE}/armed").strip()


@contextmanager
def bystander(lab: Lab, host: str) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process on the host that fleetbr did not start (think of a guest's qemu),
    leading its own process group."""
    proc = subprocess.Popen([*enter_argv(lab.host(host)), "sleep", "600"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


# --- item 1: fleetbr signals only its own processes ------------------------------------------


def test_rollback_never_signals_a_process_that_reused_a_recorded_pid(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    """A stale transaction (say, from before a reboot) whose recorded timer, arm and apply PIDs now
    belong to an unrelated process: `fleetbr rollback` resolves it and that process lives on."""
    host = "hv11"
    fresh_host(host)
    txid = stale_bridged_transaction(lab, host, tmp_path)
    with bystander(lab, host) as other:
        pid, boot = other.pid, sh(lab, host, "cat /proc/sys/kernel/random/boot_id").strip()
        tx = f"{STATE}/tx/{txid}"
        sh(lab, host, (
            # this boot, the PID, another start time: the PID was reused
            f"echo '{pid} {start_time(pid) - 1} {boot}' > {tx}/timer.proc; "
            f"echo '{pid} {start_time(pid) + 1} {boot}' > {tx}/arm.proc; "
            # the PID and its start time, but recorded in another boot
            f"echo '{pid} {start_time(pid)} {OTHER_BOOT}' > {tx}/apply.proc; "
            # what fleetbr 0.1 recorded: a bare PID
            f"echo {pid} > {tx}/timer.pid; echo {pid} > {tx}/apply.pid; "
            # the apply never finished (the host went down under it)
            f"echo running > {tx}/apply.status"
        ))  # fmt: skip

        code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "rollback")
        assert code == 0, (doc, err)
        assert doc[host]["status"] == "rolled_back", doc[host]
        assert other.poll() is None, f"fleetbr signalled process {pid}: {other.returncode}"
        assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    assert host_state(lab, host) == pristine[host]
    assert not armed(lab, host)


# --- item 4: a full or read-only state directory, a damaged armed marker ---------------------


def start_cli(*args: str) -> subprocess.Popen[str]:
    """The real CLI with --json, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, Any, str]:
    """Wait for a ``start_cli`` process: (exit code, parsed JSON, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"fleetbr still running after {timeout}s: {err[-2000:]}") from None
    return proc.returncode, json.loads(out) if out.strip() else None, err


@contextmanager
def small_state_fs(lab: Lab, host: str) -> Iterator[None]:
    """A 1 MiB tmpfs over the host's /var/lib/fleetbr, inside that host's mount namespace only."""
    sh(lab, host, f"mkdir -p {STATE} && mount -t tmpfs -o size=1m,mode=700 fleetbr-test {STATE}")
    try:
        yield
    finally:
        sh(lab, host, f"umount -l {STATE}", check=False)


def fill(lab: Lab, host: str) -> None:
    """Write zeros until the state file system is full."""
    sh(lab, host, f"dd if=/dev/zero of={STATE}/zz-fill bs=64k 2>/dev/null; sync", check=False)
    assert sh(lab, host, f"df --output=avail {STATE} | tail -n 1").strip() == "0"


def read_only(lab: Lab, host: str) -> None:
    sh(lab, host, f"mount -o remount,ro {STATE}")


def writable(lab: Lab, host: str) -> None:
    sh(lab, host, f"rm -f {STATE}/zz-fill; mount -o remount,rw {STATE}")


def claimed(lab: Lab, host: str) -> bool:
    return sh(lab, host, f"readlink {STATE}/tx/*/claim 2>/dev/null || :").strip() == "arm"


def assert_unchanged_and_resolvable(
    lab: Lab, host: str, pristine: dict[str, Any], tmp_path: Path
) -> None:
    """Unchanged and reachable; status and rollback answer; once the disk is usable again, the
    next apply confirms."""
    inventory = str(lab.inventory_dir)
    assert host_state(lab, host) == pristine[host]
    assert not fleetbr_processes(lab, host)
    code, doc, err = fleetbr("-i", inventory, "-l", host, "status")
    assert doc and doc[host]["status"] in ("ok", "failed"), (code, doc, err)
    assert "internal error" not in doc[host]["message"] and "Traceback" not in err
    code, doc, err = fleetbr("-i", inventory, "-l", host, "rollback")
    assert code == 0, (doc, err)
    assert not armed(lab, host)
    writable(lab, host)
    code, doc, err = fleetbr("-i", inventory, "-l", host, "apply", str(task_file(tmp_path)))
    assert code == 0 and doc[host]["status"] == "confirmed", (doc, err)


@pytest.mark.parametrize("fault", [fill, read_only], ids=["full", "read-only"])
def test_state_dir_full_or_read_only_between_stage_and_arm(
    lab: Lab,
    fresh_host: Any,
    pristine: dict[str, Any],
    tmp_path: Path,
    fault: Callable[[Lab, str], None],
) -> None:
    """The state file system fills up (or turns read-only) after the stage, while the arm script
    checks the staged scripts: nothing is armed, the host is unchanged, every command still
    answers for it, and it is usable again once the disk is."""
    host = "hv12"
    fresh_host(host)
    with small_state_fs(lab, host), slow_command(lab, host, "sha256sum", " -c ", 5):
        proc = start_cli(
            "-i", str(lab.inventory_dir), "-l", host, "apply", str(task_file(tmp_path))
        )
        try:
            # the arm script has claimed the transaction and is checking the staged scripts
            wait_for(lambda: claimed(lab, host), 60, "the arm script's claim")
            fault(lab, host)
        finally:
            code, doc, err = finish(proc)
        wait_for(lambda: not fleetbr_processes(lab, host), 15, "the arm script to end")
        result = doc[host]
        assert code == 1, (doc, err)
        assert result["status"] == "failed" and "nothing changed" in result["message"], result
        assert not armed(lab, host)
        assert_unchanged_and_resolvable(lab, host, pristine, tmp_path)


def test_a_staged_script_changed_before_the_arm_is_never_run(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    """docs/security.md: the arm script re-checks the staged scripts' sha256. apply.sh changed
    after the stage (here while the arm script waits on its `sha256sum -c`) is refused before
    anything is armed: the added line never runs and the host is unchanged."""
    host = "hv13"
    fresh_host(host)
    planted = "/root/fleetbr-test-tampered"
    tamper = (f'for d in {STATE}/tx/*; do [ "$(readlink "$d/claim")" = arm ] && '
              f"echo 'touch {planted}' >> \"$d/apply.sh\"; done; :")  # fmt: skip
    with slow_command(lab, host, "sha256sum", " -c ", 5):
        proc = start_cli(
            "-i", str(lab.inventory_dir), "-l", host, "apply", str(task_file(tmp_path))
        )
        try:
            wait_for(lambda: claimed(lab, host), 60, "the arm script's claim")
            sh(lab, host, tamper)
        finally:
            code, doc, err = finish(proc)
    assert code == 1, (doc, err)
    assert doc[host]["status"] == "failed", doc
    assert "staged scripts changed" in doc[host]["message"], doc
    assert not armed(lab, host)
    assert sh(lab, host, f"[ -e {planted} ] && echo yes || echo no").strip() == "no"
    assert host_state(lab, host) == pristine[host]


def plant_0_1_leftover(lab: Lab, host: str) -> None:
    """What fleetbr 0.1 left on a full disk: an empty plain `armed` file (created, never
    written), next to the transaction it staged."""
    tx = f"{STATE}/tx/20250101T000000-abcdef"
    sh(lab, host, f"umask 077; mkdir -p {tx}; echo staged > {tx}/SHA256SUMS; : > {STATE}/armed")


def test_damaged_armed_marker_is_reported_refused_and_cleared(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    host = "hv12"
    fresh_host(host)
    inventory = str(lab.inventory_dir)
    plant_0_1_leftover(lab, host)

    code, doc, err = fleetbr("-i", inventory, "-l", host, "status")
    assert code == 1, (doc, err)
    assert doc[host]["status"] == "failed" and "DAMAGED armed marker" in doc[host]["message"]
    assert doc[host]["armed_problem"] == "damaged"
    task = str(task_file(tmp_path))
    for command in ("plan", "apply"):
        code, doc, err = fleetbr("-i", inventory, "-l", host, command, task)
        assert code == 1, (command, doc, err)
        assert doc[host]["status"] == "refused", (command, doc[host])
        assert "DAMAGED armed marker" in doc[host]["message"]
    assert host_state(lab, host) == pristine[host]

    # a process fleetbr started for some transaction still runs: the marker stays for now
    with bystander(lab, host) as other:
        boot = sh(lab, host, "cat /proc/sys/kernel/random/boot_id").strip()
        record = f"{other.pid} {start_time(other.pid)} {boot}"
        sh(lab, host, f"echo '{record}' > {STATE}/tx/20250101T000000-abcdef/apply.proc")
        code, doc, err = fleetbr("-i", inventory, "-l", host, "rollback")
        assert (
            code == 1
            and "apply.proc of transaction 20250101T000000-abcdef" in (doc[host]["message"])
        ), (doc, err)
        assert sh(lab, host, f"ls {STATE}/armed").strip()
        assert other.poll() is None
    code, doc, err = fleetbr("-i", inventory, "-l", host, "rollback")
    assert code == 0, (doc, err)
    assert (
        doc[host]["status"] == "ok" and "removed the damaged armed marker" in doc[host]["message"]
    )
    assert not armed(lab, host)
    assert host_state(lab, host) == pristine[host]
    code, doc, err = fleetbr("-i", inventory, "-l", host, "apply", task)
    assert code == 0 and doc[host]["status"] == "confirmed", (doc, err)


def test_old_transaction_folders_are_pruned_on_a_real_host(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    host = "hv12"
    fresh_host(host)
    old = [f"20250101T0000{i:02d}-abcdef" for i in range(25)]
    sh(lab, host, "umask 077; " + "; ".join(
        f"mkdir -p {STATE}/tx/{txid} && ln -s confirmed {STATE}/tx/{txid}/decision" for txid in old
    ))  # fmt: skip
    code, doc, err = fleetbr(
        "-i", str(lab.inventory_dir), "-l", host, "apply", str(task_file(tmp_path))
    )
    assert code == 0 and doc[host]["status"] == "confirmed", (doc, err)
    left = sh(lab, host, f"ls {STATE}/tx").split()
    assert left == [*old[5:], doc[host]["txid"]]


def test_state_dir_read_only_before_the_arm_starts(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    """The state file system turns read-only after the stage wrote its journal line, before the
    arm script starts: nothing can be claimed, so nothing may change and the apply must end."""
    host = "hv12"
    fresh_host(host)
    with small_state_fs(lab, host):
        with slow_command(lab, host, "ping", " -c 1 ", 5):  # the stage's last step: probes
            proc = start_cli(
                "-i", str(lab.inventory_dir), "-l", host, "apply", str(task_file(tmp_path))
            )
            try:
                wait_for(lambda: "staged" in events(lab, host), 60, "the stage")
                read_only(lab, host)
            finally:
                code, doc, err = finish(proc, timeout=90)
            wait_for(lambda: not fleetbr_processes(lab, host), 15, "the stage to end")
        assert code == 1, (doc, err)
        assert doc[host]["status"] == "failed" and "nothing changed" in doc[host]["message"]
        assert_unchanged_and_resolvable(lab, host, pristine, tmp_path)


def test_state_dir_read_only_after_a_cutting_apply(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    """/var turns read-only (think ext4 errors=remount-ro) after a change that cuts the host off:
    the host's own timer must still revert it."""
    host = "hv12"
    fresh_host(host)
    task = task_file(tmp_path, addresses=["203.0.113.9/24"])
    with small_state_fs(lab, host):
        proc = start_cli("-i", str(lab.inventory_dir), "-l", host, "apply", str(task))
        try:
            wait_for(lambda: "applied" in events(lab, host), 60, "the apply")
            read_only(lab, host)
        finally:
            code, doc, err = finish(proc, timeout=180)
        assert doc[host]["status"] == "rolled_back", (code, doc, err)
        assert host_state(lab, host) == pristine[host]


# --- item 5: a login that cannot read fleetbr's state -----------------------------------------


def plant_live_transaction(lab: Lab, host: str, timer_pid: int, plain_file: bool) -> str:
    """An armed transaction whose timer (``timer_pid``, recorded as fleetbr records it) runs; the
    marker is a symlink, or a plain file as fleetbr 0.1 wrote it."""
    txid = "20261127T181500-3fa9c2"
    tx = f"{STATE}/tx/{txid}"
    boot = sh(lab, host, "cat /proc/sys/kernel/random/boot_id").strip()
    mark = f"echo {txid} > {STATE}/armed" if plain_file else f"ln -s {txid} {STATE}/armed"
    sh(lab, host, (
        f"umask 077; mkdir -p {tx} && echo $(( $(date +%s) + 600 )) > {tx}/deadline && "
        f"echo {boot} > {tx}/boot_id && echo '{timer_pid} {start_time(timer_pid)} {boot}' "
        f"> {tx}/timer.proc && echo {timer_pid} > {tx}/timer.pid && {mark}"
    ))  # fmt: skip
    return txid


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs the sudo package (scripts/setup)")
@pytest.mark.usefixtures("users")
@pytest.mark.parametrize("plain_file", [False, True], ids=["symlink", "file-0.1"])
def test_login_that_cannot_read_the_state_fails_instead_of_seeing_nothing(
    lab: Lab, tmp_path: Path, plain_file: bool
) -> None:
    """A non-root user without sudo cannot read /var/lib/fleetbr: status must not say "no fleetbr
    transaction recorded" (exit 0), plan must not plan over an armed transaction."""
    with bystander(lab, SUDO_HOST) as timer:
        txid = plant_live_transaction(lab, SUDO_HOST, timer.pid, plain_file)
        found = api_status(lab, SUDO_HOST)  # as root
        assert found.exit_code == 0 and f"armed {txid}" in found[SUDO_HOST].message, found

        inventory = str(sudo_inventory(lab, tmp_path / "inv", NO_SUDOER, sudo=False))
        before = host_state(lab, SUDO_HOST)
        task = str(task_file(tmp_path))
        expected = {"status": "failed", "plan": "refused", "apply": "refused", "rollback": "failed"}
        for command, status in expected.items():
            args = (command, task) if command in ("plan", "apply") else (command,)
            code, doc, err = fleetbr("-i", inventory, "-l", SUDO_HOST, *args)
            assert code == 1, (command, doc, err)
            result = doc[SUDO_HOST]
            assert result["status"] == status, (command, result)
            assert "cannot read fleetbr's state in /var/lib/fleetbr" in result["message"], result
            assert "sudo: true" in result["message"]
        assert host_state(lab, SUDO_HOST) == before
        assert timer.poll() is None
        assert marker(lab, SUDO_HOST) == txid


# --- item 8: the arm lock -------------------------------------------------------------------


@contextmanager
def arm_barrier(lab: Lab, host: str, parties: int) -> Iterator[None]:
    """While active, each arm script's checksum check (`sha256sum -c`) on ``host`` waits until
    ``parties`` of them have reached it (at most 60 s), then all go on at once. Both stages have
    then passed their own "already armed?" check, so only the arm lock can keep them apart."""
    member = lab.host(host)
    real = sh(lab, host, 'readlink -f "$(command -v sha256sum)"').strip()
    copy, wrapper = member.dir / "real-sha256sum", member.dir / "barrier-sha256sum"
    shutil.copy2(real, copy)
    gate = "/run/fleetbr-test-barrier"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" -c "*)\n'
        f"    mkdir -p {gate} && : > {gate}/$$\n"
        "    n=0\n"
        f'    while [ "$(ls {gate} | wc -l)" -lt {parties} ] && [ "$n" -lt 600 ]; do\n'
        "        sleep 0.1; n=$((n + 1))\n"
        "    done ;;\n"
        "esac\n"
        f'exec {shlex.quote(member.inside(copy.name))} "$@"\n'
    )
    wrapper.chmod(0o755)
    sh(lab, host, f"rm -rf {gate}; mount --bind {shlex.quote(member.inside(wrapper.name))} {real}")
    try:
        yield
    finally:
        sh(lab, host, f"umount {real}; rm -rf {gate}")


def test_two_controllers_racing_for_the_same_host_arm_exactly_once(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    host = "hv13"
    fresh_host(host)
    task = str(task_file(tmp_path))
    with arm_barrier(lab, host, parties=2):
        procs = [start_cli("-i", str(lab.inventory_dir), "-l", host, "apply", task) for _ in "ab"]
        results = [finish(proc) for proc in procs]
        wait_for(lambda: not fleetbr_processes(lab, host), 15, "fleetbr's processes to end")
    got = sorted((doc[host]["status"], code) for code, doc, _ in results)
    assert got == [("confirmed", 0), ("refused", 1)], results
    loser = next(doc[host] for _, doc, _ in results if doc[host]["status"] == "refused")
    assert "already armed" in loser["message"], loser
    # both got past their stage; exactly one armed; the other's arm script exited 10
    seen = events(lab, host)
    assert sorted(seen) == sorted(["staged", "staged", "armed", "applied", "confirmed"]), seen
    statuses = sh(lab, host, f"cat {STATE}/tx/*/arm.status").split("\n")
    assert sorted(s for s in statuses if s) == ["done", "failed 10"], statuses
    assert not armed(lab, host)
    assert_bridged(lab, host)
