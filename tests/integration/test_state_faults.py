"""fleetbr's own state on the host under bad conditions (issue 6, items 1, 4, 5 and 8): process
records that point at somebody else's process, a full or read-only state directory, a damaged
armed marker, a user who cannot read the state, two controllers racing for the arm lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetbr.lab import Lab, host_state
from fleetbr.lab.faults import enter_argv
from tests.integration.helpers import fleetbr
from tests.integration.txhelpers import (
    armed,
    enslaved,
    events,
    fleetbr_processes,
    sh,
    task_file,
    wait_for,
)

STATE = "/var/lib/fleetbr"
OTHER_BOOT = "00000000-0000-4000-8000-000000000000"


def marker(lab: Lab, host: str) -> str:
    """What the armed marker names: a symlink's target, or a plain file's first line (0.1)."""
    return sh(lab, host, f"readlink {STATE}/armed || head -n 1 {STATE}/armed").strip()


def stale_bridged_transaction(lab: Lab, host: str, tmp_path: Path) -> str:
    """Apply the bridge task, then SIGKILL the controller and every process fleetbr left on the
    host (the timer too): the host stays bridged under an armed transaction nobody will decide."""
    controller = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "-i", str(lab.inventory_dir), "-l", host, "apply",
         str(task_file(tmp_path, timeout=120))],
        env={**os.environ, "FLEETBR_TEST_PAUSE_BEFORE_CONFIRM": "600"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: enslaved(lab, host) and "applied" in events(lab, host), 30, "apply")
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    for line in fleetbr_processes(lab, host):
        os.kill(int(line.split(" ", 1)[0]), signal.SIGKILL)
    wait_for(lambda: not fleetbr_processes(lab, host), 5, "fleetbr's processes to die")
    return marker(lab, host)


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
