"""The systemd path of the dead-man transaction, on real systemd hosts with no network daemon
(``--backend none``): the timer is a transient systemd timer (``systemd-run --on-active``), and
the detached apply and every rollback run outside the SSH session's scope, so a sudo user whose
session logind kills at logout (``KillUserProcesses=yes``) does not take them down. After a
confirm or a rollback no fleetbr unit is left loaded."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost, host_exec, host_state
from tests.integration.barrier import Gate
from tests.integration.helpers import (
    TIMEOUT,
    derived_inventory,
    enslaved,
    events,
    fleetbr,
    sh,
    task_file,
    wait_for,
)

pytestmark = pytest.mark.lab
USER = "ops"
MARKER = "/var/tmp/fleetbr-test-marker"


def fleetbr_units(lab: Lab, host: str) -> str:
    """Every fleetbr unit systemd has loaded in the host (empty: none)."""
    return sh(lab, host, "systemctl list-units 'fleetbr-*' --all --no-legend --plain").strip()


def timer_units(lab: Lab, host: str) -> list[str]:
    """The timer units the host's transactions recorded (the systemd path was taken)."""
    out = sh(lab, host, "for l in /var/lib/fleetbr/tx/*/timer.unit; do readlink $l; done || :")
    return out.split()


def kill_user_processes_at_logout(lab: Lab, host: str, tmp_path: Path) -> Path:
    """logind kills a session's processes when it ends; user ``ops`` logs in with the lab key
    and may sudo. Returns an inventory that logs in as ``ops`` with ``sudo: true``."""
    setup = f"""
set -e
mkdir -p /etc/systemd/logind.conf.d
printf '[Login]\\nKillUserProcesses=yes\\n' > /etc/systemd/logind.conf.d/fleetbr-test.conf
systemctl restart systemd-logind
useradd -m -s /bin/sh {USER}
printf '{USER} ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/{USER}
chmod 440 /etc/sudoers.d/{USER}
install -d -o {USER} -m 700 /home/{USER}/.ssh
install -o {USER} -m 600 /root/.ssh/authorized_keys /home/{USER}/.ssh/authorized_keys
"""
    sh(lab, host, setup)

    def as_ops(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        defaults["username"] = USER
        defaults["connection_options"]["fleetbr"]["extras"]["sudo"] = True

    return derived_inventory(lab, tmp_path / f"inventory-{USER}", as_ops)


def in_session_scope(lab: Lab, host: str, inventory: Path) -> str:
    """The cgroup of a command run over SSH as ``ops`` through sudo: the session's scope."""
    code, doc, err = fleetbr("-i", str(inventory), "-l", host, "run", "--", "cat /proc/self/cgroup")
    assert code == 0, err
    return str(doc[host]["stdout"])


def test_confirmed_cutover_leaves_no_fleetbr_unit(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_distro_host("hv01")
    code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "-l", "hv01", "apply",
                             str(task_file(tmp_path)))  # fmt: skip
    assert code == 0, err
    assert doc["hv01"]["status"] == "confirmed", doc
    assert enslaved(distro_lab, "hv01")
    assert len(timer_units(distro_lab, "hv01")) == 1  # a systemd timer, not the sh fallback
    assert fleetbr_units(distro_lab, "hv01") == ""
    assert events(distro_lab, "hv01") == ["staged", "armed", "applied", "confirmed"]


def apply_and_kill_controller(lab: Lab, host: str, task: Path, inventory: Path) -> None:
    """Start ``apply``, SIGKILL the controller once the NIC is enslaved and the change applied."""
    gate = Gate(task.parent / f"barrier-{host}")  # never released: no confirm
    controller = subprocess.Popen(
        gate.argv("confirm", "-i", str(inventory), "-l", host, "apply", str(task)),
        env=gate.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=120)
        wait_for(lambda: enslaved(lab, host) and "applied" in events(lab, host), 30,
                 "the NIC to be enslaved")  # fmt: skip
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    finally:
        controller.kill()


def assert_rolled_back_by_timer(lab: Lab, host: str, before: dict[str, Any]) -> None:
    wait_for(lambda: "rolled_back" in events(lab, host), TIMEOUT + 15, "the host's own rollback")
    assert "reason=timer" in sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")
    assert host_state(lab, host) == before
    wait_for(lambda: fleetbr_units(lab, host) == "", 10, "no fleetbr unit loaded")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "facts")
    assert code == 0, (doc, err)
    assert doc[host]["facts"]["hostname"] == host


def test_controller_sigkilled_the_systemd_timer_rolls_back(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_distro_host("hv02")
    before = host_state(distro_lab, "hv02")
    apply_and_kill_controller(distro_lab, "hv02", task_file(tmp_path), distro_lab.inventory_dir)
    assert timer_units(distro_lab, "hv02")
    assert_rolled_back_by_timer(distro_lab, "hv02", before)


def test_logged_out_sudo_user_the_systemd_timer_still_rolls_back(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_distro_host("hv01")
    inventory = kill_user_processes_at_logout(distro_lab, "hv01", tmp_path)
    assert "/session-" in in_session_scope(distro_lab, "hv01", inventory)
    before = host_state(distro_lab, "hv01")
    apply_and_kill_controller(distro_lab, "hv01", task_file(tmp_path), inventory)
    assert_rolled_back_by_timer(distro_lab, "hv01", before)


def test_logged_out_sudo_user_a_slow_apply_completes(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    """The apply outlives the SSH session that started it (the arm script waits at most a
    quarter of the timeout for it). Before: logind killed it at logout and the change was rolled
    back as "never completed"."""
    fresh_distro_host("hv02")
    inventory = kill_user_processes_at_logout(distro_lab, "hv02", tmp_path)
    code, doc, err = fleetbr(
        "-i", str(inventory), "-l", "hv02", "run", "--deadman", "30",
        "--undo", f"rm -f {MARKER}", "--", f"sleep 12 && touch {MARKER}",
    )  # fmt: skip
    assert doc["hv02"]["status"] == "confirmed", (doc, err)
    assert code == 0
    assert host_exec(distro_lab, "hv02", ["test", "-e", MARKER], check=False).returncode == 0
    assert fleetbr_units(distro_lab, "hv02") == ""


def test_logged_out_sudo_user_a_rollback_started_by_the_controller_completes(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    """A failing confirm check starts the undo from the controller's SSH session; the controller
    dies right after, which ends the session. Before: logind killed the undo at logout, half
    done, with the timer already stopped: nothing would ever finish it."""
    fresh_distro_host("hv01")
    inventory = kill_user_processes_at_logout(distro_lab, "hv01", tmp_path)
    controller = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "-i", str(inventory), "-l", "hv01", "run",
         "--deadman", "60", "--undo", f"sleep 8 && rm -f {MARKER}", "--confirm-check", "false",
         "--", f"touch {MARKER}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: "rolling_back" in events(distro_lab, "hv01"), 40, "the undo to start")
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    finally:
        controller.kill()
    wait_for(lambda: "rolled_back" in events(distro_lab, "hv01"), 30, "the undo to finish")
    assert "reason=confirm" in sh(distro_lab, "hv01", "tail -n 1 /var/lib/fleetbr/journal")
    assert host_exec(distro_lab, "hv01", ["test", "-e", MARKER], check=False).returncode != 0
    wait_for(lambda: fleetbr_units(distro_lab, "hv01") == "", 10, "no fleetbr unit loaded")
