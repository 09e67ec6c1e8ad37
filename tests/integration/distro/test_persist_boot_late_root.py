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
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest

from fleetbr.errors import LabError
from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import lateroot
from fleetbr.report import Status
from fleetbr.transaction.protocol import resolve
from tests.integration.distro.boothelpers import (
    CUT_OFF_BACKENDS,
    boot_order_problems,
    cut_off_applied,
    cut_off_hosts,
    old_config_problems,
    power_cut,
)
from tests.integration.distro.persisthelpers import (
    gather_each,
)
from tests.integration.helpers import fleetbr, sh

pytestmark = pytest.mark.lab


def test_power_cut_in_the_window_with_a_late_writable_root(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    hosts, before, task = cut_off_hosts(
        distro_lab, fresh_distro_host, tmp_path, lateroot.late_writable_root
    )

    async def run(name: str) -> tuple[str | None, str]:
        tx = await cut_off_applied(distro_lab, name, task)
        down = await asyncio.to_thread(power_cut, distro_lab, hosts[name], late_root=True)
        if down is not None:
            return down, ""
        result = await resolve(tx)
        return None, f"{result.status.value} {result.message}"

    try:
        outcome = asyncio.run(gather_each(CUT_OFF_BACKENDS.values(), run))
    finally:
        for host in hosts.values():  # a stuck host boots on; the next reset boots it normally
            lateroot.normal_root(host)
            with suppress(LabError):
                sh(distro_lab, host.name, f"touch {lateroot.BARRIER}")
    problems = []
    for backend, name in CUT_OFF_BACKENDS.items():
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
