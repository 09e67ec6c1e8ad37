"""``/var/lib/fleetbr`` on a tmpfs (issue 14, item 4): the boot guard's record (armed marker,
backups, boot.sh) would be gone after a reboot, and a host that reboots inside the window would
keep the new files. A persisting apply is refused at stage, with the reason in one line, before
anything is written: the host's state as before, nothing in the state directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost, host_state
from tests.integration.distro.persisthelpers import HOSTS, persist_task, plan
from tests.integration.helpers import sh

pytestmark = pytest.mark.lab

STATE = "/var/lib/fleetbr"


@pytest.mark.parametrize("backend", ["ifupdown", "networkd"])
def test_a_state_directory_on_a_tmpfs_is_refused_before_any_change(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path, backend: str
) -> None:
    host = fresh_distro_host(HOSTS[backend]).name
    sh(distro_lab, host, f"mkdir -p {STATE} && mount -t tmpfs -o mode=0700 fleetbr-test {STATE}")
    try:
        before = host_state(distro_lab, host)
        code, status, message = plan(distro_lab, host, persist_task(tmp_path), "apply")
        left = sh(distro_lab, host, f"ls -A {STATE}")
        after = host_state(distro_lab, host)
    finally:
        sh(distro_lab, host, f"umount {STATE}")
    assert (code, status) == (1, "refused"), message
    assert f"{STATE} is on a tmpfs" in message and "would not survive a reboot" in message
    assert "\n" not in message
    assert after == before
    assert left == ""  # nothing staged
