"""``fleetbr run --deadman`` and a power cut inside the window (issue 14, item 2).

The change is an operator's command; its undo is the only thing that can take it back. After a
reboot in the window the boot guard must run that undo, exactly once, and the host (its journal,
``fleetbr status``) and the controller must say ``rolled_back`` only if it exited 0.

Each phase is reached from the host's own state, never by timing: the command has written
``/etc/x`` and still runs (it sleeps), or (a command that ends at once, then a rollback the
controller starts) the undo has started and is held by a flag in ``/run`` (a tmpfs: the flag is
gone after the reboot, so an undo run again at boot would not hang).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from fleetbr.changes.command.change import CommandChange
from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult, Status
from fleetbr.transaction import scripts
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare, resolve
from fleetbr.transport.ssh import open_connection
from tests.integration.helpers import armed, events, fleetbr, sh, specs, wait_for

pytestmark = pytest.mark.lab

WINDOW = 60  # the timer never fires before the reboot: the boot guard must do the work
COMMAND = "echo changed > /etc/x; sleep 40"
QUICK = "echo changed > /etc/x"
COUNT = "/root/undo.count"  # one line per run of the undo
HOLD = "/run/fleetbr-test-hold-undo"  # while it exists, the undo hangs after its work
UNDOS = {
    "ok": f"echo ran >> {COUNT}; rm -f /etc/x",
    "fails": f"echo ran >> {COUNT}; rm -f /etc/x; exit 3",
    "held": f"echo ran >> {COUNT}; rm -f /etc/x; while [ -e {HOLD} ]; do sleep 0.2; done",
}


def command_running(lab: Lab, host: str) -> bool:
    """The command made its change and is still running (the window is open)."""
    found = sh(lab, host, "cat /etc/x 2>/dev/null; ps -eo args || :")
    return found.startswith("changed\n") and "sleep 40" in found


def applied(lab: Lab, host: str) -> bool:
    """The command finished (the quick one)."""
    return "applied" in events(lab, host)


async def to_window(lab: Lab, host: str, command: str, undo: str) -> Transaction:
    """Stage, arm and start the command; return once it changed the host (and, the slow
    command, while it still runs)."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, CommandChange(command, undo, WINDOW))
    async with open_connection(spec) as conn:
        early = await _prepare(tx, conn)
        assert early is None, early
        await _arm_and_apply(tx, conn)
    ready = command_running if command == COMMAND else applied
    await asyncio.to_thread(wait_for, lambda: ready(lab, host), 30, "the command")
    assert armed(lab, host)
    return tx


def after_reboot(
    lab: Lab, host: str, undo: str, *, hold: bool = False, hard: bool = True
) -> HostResult:
    """The command in the window, then (``hold``: with the controller's rollback holding the
    undo) a power cut (or, not ``hard``, a clean reboot); the controller resuming reports the
    host."""

    async def run() -> HostResult:
        tx = await to_window(lab, host, QUICK if hold else COMMAND, undo)
        if hold:
            sh(lab, host, f"touch {HOLD}")
            async with open_connection(tx.spec) as conn:
                script = scripts.trigger_rollback_script(tx.txid, "test")
                await conn.run_script(script, label="rollback")
            await asyncio.to_thread(
                wait_for, lambda: undo_runs(lab, host) == 1, 30, "the undo started"
            )
        await asyncio.to_thread(reboot, lab, host, hard=hard)
        return await resolve(tx)

    return asyncio.run(run())


def undo_runs(lab: Lab, host: str) -> int:
    """How many times the undo started on the host."""
    return len(sh(lab, host, f"cat {COUNT} 2>/dev/null || :").splitlines())


def host_status(lab: Lab, host: str) -> tuple[int, dict[str, Any]]:
    """``fleetbr status`` of the host: exit code and its JSON result."""
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "status")
    assert isinstance(doc, dict), (code, doc, err)
    return code, dict(doc[host])


@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
def test_a_reboot_in_the_window_runs_the_undo_once_at_boot(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], hard: bool
) -> None:
    fresh_distro_host("hv01")
    result = after_reboot(distro_lab, "hv01", UNDOS["ok"], hard=hard)
    assert result.status == Status.ROLLED_BACK, result.message
    assert sh(distro_lab, "hv01", "[ -e /etc/x ] && echo there || :").strip() == ""
    assert undo_runs(distro_lab, "hv01") == 1
    assert not armed(distro_lab, "hv01")
    assert events(distro_lab, "hv01")[-1] == "rolled_back"
    code, status = host_status(distro_lab, "hv01")
    assert code == 0 and "rolled_back reason=reboot failed_steps=0" in status["message"], status


def test_an_undo_that_fails_at_boot_is_reported_failed(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost]
) -> None:
    fresh_distro_host("hv02")
    result = after_reboot(distro_lab, "hv02", UNDOS["fails"])
    assert result.status == Status.FAILED, result.message
    assert "rollback step(s) failed" in result.message
    assert undo_runs(distro_lab, "hv02") == 1
    assert events(distro_lab, "hv02")[-1] == "rollback_failed"
    code, status = host_status(distro_lab, "hv02")
    assert code == 1 and status["status"] == "failed", status
    assert "rollback_failed reason=reboot failed_steps=1" in status["message"], status


def test_an_undo_cut_by_the_power_is_not_run_again_at_boot(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost]
) -> None:
    """The controller's rollback is inside the undo when the power goes: the boot guard must not
    run it a second time (it may not be safe twice), and nothing may say rolled_back."""
    fresh_distro_host("hv01")
    result = after_reboot(distro_lab, "hv01", UNDOS["held"], hold=True)
    assert undo_runs(distro_lab, "hv01") == 1
    assert result.status == Status.FAILED, result.message
    assert not armed(distro_lab, "hv01")
    code, status = host_status(distro_lab, "hv01")
    assert code == 1 and "rollback_failed reason=reboot" in status["message"], status
    out = sh(distro_lab, "hv01", "cat /var/lib/fleetbr/tx/*/undo.sh.err")
    assert "did not finish" in out, out
