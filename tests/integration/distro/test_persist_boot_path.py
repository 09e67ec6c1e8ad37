"""The boot path as one table (issue 14, "Also"): for the bridge kind with ``persist: auto`` on
every backend, a power cut with a root that turns writable late (the lab's
``fleetbr.lab.distro.lateroot``: read-only until ``systemd-remount-fs``, released once the guard
ran or waits for it) at each phase where the boot guard has work: after arm and inside the
window. Every cell ends with the host reachable, on its old configuration, and reported
truthfully: the checks are test_persist_reboot.py's (``boothelpers.check_phase``), plus that the
guard ran after the remount and before systemd-sysctl and the daemon.

Cells this table once had and no longer needs (docs/testing.md, "The distro tier's reboot
matrix"): a power cut with a normal root is test_persist_reboot.py's ``hard`` cell, the same
code path; after stage and after confirm nothing is armed, so the guard unit is skipped by its
``ConditionPathIsSymbolicLink`` whatever the root does. Other change kinds (command, guests) join
the table as their boot path lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import lateroot
from fleetbr.report import HostResult
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro.boothelpers import (
    WINDOW,
    boot_order_problems,
    check_phase,
    power_cut,
    resume,
    to_phase,
)
from tests.integration.distro.persisthelpers import (
    HOSTS,
    gather_each,
    on_each,
    persist_task,
    settled_state,
)

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("phase", ["arm", "window"])
def test_power_cut_with_a_late_writable_root_at_each_phase(
    distro_lab: Lab,
    fresh_distro_host: Callable[[str], LabHost],
    tmp_path: Path,
    phase: str,
) -> None:
    hosts = on_each(HOSTS.values(), fresh_distro_host)
    before = on_each(HOSTS.values(), lambda h: settled_state(distro_lab, h))
    for host in hosts.values():
        lateroot.late_writable_root(distro_lab, host)
    task = persist_task(tmp_path, timeout=WINDOW)

    async def run(name: str) -> tuple[Transaction | HostResult, HostResult | None, str | None]:
        got = await to_phase(distro_lab, name, task, phase)
        down = await asyncio.to_thread(power_cut, distro_lab, hosts[name], late_root=True)
        return got, (None if down else await resume(got)), down

    try:
        outcome = asyncio.run(gather_each(HOSTS.values(), run))
    finally:
        for host in hosts.values():
            lateroot.normal_root(host)
    problems = []
    for backend, name in HOSTS.items():
        first, resumed, down = outcome[name]
        if down is not None:
            problems.append(f"{backend}: {down}")
            continue
        found = check_phase(distro_lab, backend, phase, first, resumed, before[name])
        found += boot_order_problems(distro_lab, backend, name)
        problems += [f"{backend}: {line}" for line in found]
    assert not problems, "\n".join(problems)
