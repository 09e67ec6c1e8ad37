"""The boot guard on a host whose root file system turns writable late (issue 14, item 1).

Debian boots with ``ro`` on the kernel command line and ``systemd-remount-fs`` makes ``/``
writable later (after the root fsck). The lab emulates it (fleetbr.lab.distro.lateroot): the
host boots read-only and the remount waits for a barrier that is released only once the boot
guard has run or waits for the remount, so a guard not ordered after ``systemd-remount-fs``
always runs on the read-only root (it could restore nothing, and the host booted into the
cut-off address, still armed, ``unreachable``), and one ordered after it always finds it
writable.

``tasks/cut-off.yaml`` with ``persist: auto`` on ifupdown, networkd and netplan, a power cut
once applied: the host must come back on its old configuration, nothing armed, decided
``rolled_back reboot``, and the resuming controller reports ``rolled_back``; the guard ran after
the remount, before systemd-sysctl and the daemon, and systemd broke no ordering cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest

from fleetbr.errors import LabError
from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import lateroot, reboot
from fleetbr.lab.distro.supervisor import init_pid, wait_up
from fleetbr.report import Status
from fleetbr.transaction.change import BridgeChange
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare, resolve
from fleetbr.transport import open_connection
from tests.integration.distro.persisthelpers import (
    HOSTS,
    gather_each,
    on_each,
    persist_task,
    settled_state,
)
from tests.integration.distro.test_persist_reboot import old_config_problems
from tests.integration.helpers import fleetbr, specs
from tests.integration.txhelpers import armed, enslaved, events, rendered, sh, wait_for

pytestmark = pytest.mark.lab

WINDOW = 120  # the timer never fires before the power cut: the boot guard must do the work
GUARD = "fleetbr-boot-guard.service"
CUT_OFF = "203.0.113.250/32"  # tasks/cut-off.yaml's default
# NetworkManager will not activate the cut-off bridge profile (the gateway is outside its /32):
# the apply fails and rolls back at once, so there is no window to cut the power in.
BACKENDS = {b: h for b, h in HOSTS.items() if b != "networkmanager"}


async def _cut_off_applied(lab: Lab, host: str, task: Path) -> Transaction:
    """Stage, arm and apply the cut-off task; return once the host says applied."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, task, host), task.name))
    async with open_connection(spec) as conn:
        assert await _prepare(tx, conn) is None, host
        await _arm_and_apply(tx, conn)
    await asyncio.to_thread(
        wait_for,
        lambda: bool({"applied", "apply_failed"} & set(events(lab, host))),
        60,
        f"{host}: applied",
    )
    assert "applied" in events(lab, host), (
        host,
        sh(lab, host, "cat /var/lib/fleetbr/tx/*/apply.log"),
    )
    assert armed(lab, host) and enslaved(lab, host), host
    return tx


def _power_cut_late_root(lab: Lab, host: LabHost) -> str | None:
    """Cut the power; let the root turn writable only once the guard ran or waits for it.
    None once the host accepts SSH again, else why not."""
    old = init_pid(host)
    reboot(lab, host, hard=True, wait=False)
    lateroot.release_root_after(lab, host, GUARD, old_init=old)
    try:
        wait_up(host, time.monotonic() + 60, after=old)
    except LabError as exc:
        guard = sh(lab, host.name, f"journalctl -b -u {GUARD} --no-pager | tail -n 5", False)
        return f"not reachable after the power cut ({exc}); guard: {guard}"
    return None


DAEMON = {
    "ifupdown": "networking.service",
    "networkd": "systemd-networkd.service",
    "netplan": "systemd-networkd.service",
    "networkmanager": "NetworkManager.service",
}


def _stamps(lab: Lab, host: str, unit: str) -> tuple[int, int]:
    """(started, ended) of ``unit`` this boot, monotonic microseconds (0: not yet)."""
    names = ("InactiveExit", "ExecMainExit", "ActiveEnter")
    args = " ".join(f"-p {name}TimestampMonotonic" for name in names)
    out = sh(lab, host, f"systemctl show {args} {unit}")
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    started, exited, active = (int(got[f"{name}TimestampMonotonic"]) for name in names)
    return started, max(exited, active)


def boot_order_problems(lab: Lab, backend: str, host: str) -> list[str]:
    """The guard ran after the root turned writable, before systemd-sysctl and the backend's
    daemon; systemd broke no ordering cycle this boot."""
    out = []
    cycles = sh(lab, host, "journalctl -b --no-pager | grep -ci 'ordering cycle' || :").strip()
    if cycles != "0":
        out.append(f"{cycles} ordering cycle line(s) in the boot's journal")
    guard_start, guard_end = _stamps(lab, host, GUARD)
    if not 0 < _stamps(lab, host, "systemd-remount-fs.service")[1] <= guard_start:
        out.append("the guard started before systemd-remount-fs finished")
    for unit in ("systemd-sysctl.service", DAEMON[backend]):
        started = _stamps(lab, host, unit)[0]
        if not 0 < guard_end <= started:
            out.append(f"{unit} started at {started}, before the guard finished ({guard_end})")
    return out


def test_power_cut_in_the_window_with_a_late_writable_root(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    hosts = on_each(BACKENDS.values(), fresh_distro_host)
    before = on_each(BACKENDS.values(), lambda h: settled_state(distro_lab, h))
    for host in hosts.values():
        lateroot.late_writable_root(distro_lab, host)
    task = persist_task(tmp_path, "cut-off.yaml", timeout=WINDOW, addresses=[CUT_OFF])

    async def run(name: str) -> tuple[str | None, str]:
        tx = await _cut_off_applied(distro_lab, name, task)
        down = await asyncio.to_thread(_power_cut_late_root, distro_lab, hosts[name])
        if down is not None:
            return down, ""
        result = await resolve(tx)
        return None, f"{result.status.value} {result.message}"

    try:
        outcome = asyncio.run(gather_each(BACKENDS.values(), run))
    finally:
        for host in hosts.values():  # a stuck host boots on; the next reset boots it normally
            lateroot.normal_root(host)
            with suppress(LabError):
                sh(distro_lab, host.name, f"touch {lateroot.BARRIER}")
    problems = []
    for backend, name in BACKENDS.items():
        down, resumed = outcome[name]
        if down is not None:
            problems.append(f"{backend}: {down}")
            continue
        if not resumed.startswith(Status.ROLLED_BACK.value):
            problems.append(f"{backend}: resumed {resumed}")
        problems += [
            f"{backend}: {p}" for p in old_config_problems(distro_lab, backend, *before[name])
        ]
        problems += [f"{backend}: {p}" for p in boot_order_problems(distro_lab, backend, name)]
        last = sh(distro_lab, name, "tail -n 1 /var/lib/fleetbr/journal")
        if "rolled_back reason=reboot failed_steps=0" not in last:
            problems.append(f"{backend}: journal ends {last}")
        code, doc, err = fleetbr("-i", str(distro_lab.inventory_dir), "-l", name, "status")
        if code != 0 or "rolled_back reason=reboot" not in doc[name]["message"]:
            problems.append(f"{backend}: status {code} {doc} {err}")
    assert not problems, "\n".join(problems)
