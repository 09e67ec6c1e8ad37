"""A reboot in the dead-man window is safe with ``persist: auto`` (issue 7, part 5).

The test drives the controller's own transaction pieces (stage, arm + apply, resolve) and
restarts the hosts (cleanly, or by a power cut) at a precise phase, on every backend at once:

- after stage (nothing armed): the host comes back as it was; the controller, resuming, finds
  the transaction never claimed and cancels it ("nothing changed");
- after arm (the apply is held by a slow ``ip ... master`` step: the NIC not yet enslaved), and
- inside the window (the NIC enslaved, the backend's files written and applied):
  the boot guard puts the old files back before any network daemon starts, so the host comes
  back on its OLD configuration, reachable; the transaction is decided ``rolled_back reboot``,
  ``fleetbr status`` says so, and the resuming controller verifies the rollback (kernel state,
  files, the daemon's view) and reports ``rolled_back``;
- after confirm: the host comes back with the bridge, still the daemon's.

No phase depends on timing: each reboot happens when the host's own state shows the phase.

The cells: a clean reboot and a power cut where the boot guard has work (arm, window); only a
power cut where it has none (stage, confirm: ``fleetbr-boot-guard.service`` is skipped by its
``ConditionPathIsSymbolicLink`` on the armed marker, so a clean reboot takes the same path).
See docs/testing.md ("The distro tier's reboot matrix").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro.boothelpers import WINDOW, check_phase, resume, to_phase
from tests.integration.distro.persisthelpers import (
    HOSTS,
    gather_each,
    on_each,
    persist_task,
    settled_state,
)

pytestmark = pytest.mark.lab

# (phase, hard): every phase once by a power cut; a clean reboot only where the guard has work
CELLS = [("stage", True), ("arm", False), ("arm", True), ("window", False), ("window", True),
         ("confirm", True)]  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "hard"), CELLS, ids=[f"{p}-{'hard' if h else 'soft'}" for p, h in CELLS]
)
def test_reboot_at_each_phase(
    distro_lab: Lab,
    fresh_distro_host: Callable[[str], LabHost],
    tmp_path: Path,
    phase: str,
    hard: bool,
) -> None:
    on_each(HOSTS.values(), fresh_distro_host)
    before = on_each(HOSTS.values(), lambda h: settled_state(distro_lab, h))
    task = persist_task(tmp_path, timeout=WINDOW)

    async def run(host: str) -> tuple[Transaction | HostResult, HostResult | None]:
        got = await to_phase(distro_lab, host, task, phase)
        await asyncio.to_thread(reboot, distro_lab, host, hard=hard)
        return got, await resume(got)

    outcome = asyncio.run(gather_each(HOSTS.values(), run))
    problems: dict[str, list[str]] = {}
    for backend, host in HOSTS.items():
        first, resumed = outcome[host]
        problems[backend] = check_phase(distro_lab, backend, phase, first, resumed, before[host])
    assert not any(problems.values()), "\n".join(
        f"{b}: {line}" for b, lines in problems.items() for line in lines
    )
