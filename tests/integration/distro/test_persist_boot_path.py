"""The boot path as one table (issue 14, "Also"): for the bridge kind with ``persist: auto`` on
every backend, a power cut at each phase (after stage, after arm, inside the window, after
confirm), with a normal root and with a root that turns writable late (the lab's
``fleetbr.lab.distro.lateroot``: read-only until ``systemd-remount-fs``, released once the guard
ran or waits for it). Every cell ends with the host reachable, on its old configuration (or,
after confirm, on the bridge, still the daemon's), and reported truthfully: the checks are
test_persist_reboot.py's (``check_phase``), plus, where the guard had work, that it ran after the
remount and before systemd-sysctl and the daemon. Other change kinds (command, guests) join the
table as their boot path lands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import lateroot, reboot
from fleetbr.lab.distro.supervisor import init_pid, wait_up
from fleetbr.report import HostResult
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro.persisthelpers import (
    HOSTS,
    gather_each,
    on_each,
    persist_task,
    settled_state,
)
from tests.integration.distro.test_persist_boot_late_root import GUARD, boot_order_problems
from tests.integration.distro.test_persist_reboot import (
    PHASES,
    WINDOW,
    _to_phase,
    check_phase,
    resolve_after,
)

pytestmark = pytest.mark.lab

ROOTS = ("normal", "late-writable")


def power_cut(lab: Lab, host: LabHost, root: str) -> None:
    """Cut the power; with a late-writable root, release it once the guard ran or waits."""
    old = init_pid(host)
    reboot(lab, host, hard=True, wait=root == "normal")
    if root != "normal":
        lateroot.release_root_after(lab, host, GUARD, old_init=old)
        wait_up(host, time.monotonic() + 90, after=old)


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("phase", PHASES)
def test_power_cut_at_each_phase(
    distro_lab: Lab,
    fresh_distro_host: Callable[[str], LabHost],
    tmp_path: Path,
    phase: str,
    root: str,
) -> None:
    hosts = on_each(HOSTS.values(), fresh_distro_host)
    before = on_each(HOSTS.values(), lambda h: settled_state(distro_lab, h))
    if root != "normal":
        for host in hosts.values():
            lateroot.late_writable_root(distro_lab, host)
    task = persist_task(tmp_path, timeout=WINDOW)

    async def run(name: str) -> tuple[Transaction | HostResult, HostResult | None]:
        got = await _to_phase(distro_lab, name, task, phase)
        await asyncio.to_thread(power_cut, distro_lab, hosts[name], root)
        if isinstance(got, HostResult):
            return got, None
        return got, await resolve_after(got)

    try:
        outcome = asyncio.run(gather_each(HOSTS.values(), run))
    finally:
        for host in hosts.values():
            lateroot.normal_root(host)
    problems = []
    for backend, name in HOSTS.items():
        first, resumed = outcome[name]
        found = check_phase(distro_lab, backend, phase, first, resumed, before[name])
        if root != "normal" and phase in ("arm", "window"):  # the guard had files to restore
            found += boot_order_problems(distro_lab, backend, name)
        problems += [f"{backend}: {line}" for line in found]
    assert not problems, "\n".join(problems)
