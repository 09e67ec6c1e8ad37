"""A boot guard that cannot put the files back fails loudly, and the host still comes back on
its old network (issue 14, item 1).

The lab makes ``/etc`` a read-only bind mount from before the guard runs (a fault: ordering
cannot help). ``tasks/cut-off.yaml`` with ``persist: auto``, a power cut once applied:

- the guard binds each file's old content over it (a file the transaction created: /dev/null),
  for this boot only, so the daemons bring the host up on its OLD configuration: reachable, its
  kernel state as before the transaction (the files it created read empty);
- the unit fails, with a line in the system journal; the transaction stays armed; the resuming
  controller reports ``failed`` (never ``rolled_back``) and ``fleetbr status`` names the boot
  guard;
- once ``/etc`` is writable again, the next boot's guard puts the files back for good: nothing
  armed, ``rolled_back reason=reboot failed_steps=0``, the files as before.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost, host_state
from fleetbr.lab.distro import lateroot, reboot
from fleetbr.report import Status
from fleetbr.transaction.protocol import resolve
from tests.integration.distro.boothelpers import (
    CUT_OFF_BACKENDS,
    GUARD,
    cut_off_applied,
    cut_off_hosts,
    old_config_problems,
)
from tests.integration.distro.persisthelpers import (
    gather_each,
    on_each,
    state_diff,
)
from tests.integration.helpers import armed, fleetbr, sh

pytestmark = pytest.mark.lab
EMPTY = hashlib.sha256(b"").hexdigest()


def failed_boot_problems(lab: Lab, host: str, state: dict[str, Any], resumed: str) -> list[str]:
    """What is wrong after the boot whose guard could not write (empty: nothing)."""
    out = []
    if sh(lab, host, f"systemctl is-failed {GUARD} || :").strip() != "failed":
        out.append("the guard did not fail")
    if "could not be put back" not in sh(lab, host, f"journalctl -b -u {GUARD} --no-pager"):
        out.append("no line in the system journal")
    if not armed(lab, host):
        out.append("no longer armed")
    if not resumed.startswith(Status.FAILED.value) or "rollback step(s) failed" not in resumed:
        out.append(f"resumed: {resumed}")
    now = host_state(lab, host)
    # a file the transaction created cannot be removed from a read-only /etc: it reads empty
    created = {p for p, digest in now["files"].items() if p not in state["files"]}
    out += [f"{p} was created and is not empty" for p in created if now["files"][p] != EMPTY]
    now["files"] = {p: d for p, d in now["files"].items() if p not in created}
    out += state_diff(state, now)
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "status")
    if code != 1 or "boot guard could not put back" not in doc[host]["message"]:
        out.append(f"status: {code} {doc} {err}")
    return out


def test_guard_that_cannot_write_fails_loudly_and_the_host_keeps_its_old_network(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    hosts, before, task = cut_off_hosts(
        distro_lab, fresh_distro_host, tmp_path, lateroot.read_only_etc
    )

    async def run(name: str) -> str:
        tx = await cut_off_applied(distro_lab, name, task)
        await asyncio.to_thread(reboot, distro_lab, name, hard=True)
        result = await resolve(tx)
        return f"{result.status.value} {result.message}"

    outcome = asyncio.run(gather_each(CUT_OFF_BACKENDS.values(), run))
    problems = []
    for backend, name in CUT_OFF_BACKENDS.items():
        found = failed_boot_problems(distro_lab, name, before[name][0], outcome[name])
        problems += [f"{backend} (read-only /etc): {p}" for p in found]
    for host in hosts.values():
        lateroot.read_only_etc(distro_lab, host, on=False)
    on_each(CUT_OFF_BACKENDS.values(), lambda h: reboot(distro_lab, h))
    for backend, name in CUT_OFF_BACKENDS.items():
        found = old_config_problems(distro_lab, backend, *before[name])
        last = sh(distro_lab, name, "tail -n 1 /var/lib/fleetbr/journal")
        if "rolled_back reason=reboot failed_steps=0" not in last:
            found.append(f"journal ends {last}")
        problems += [f"{backend} (next boot): {p}" for p in found]
    assert not problems, "\n".join(problems)
