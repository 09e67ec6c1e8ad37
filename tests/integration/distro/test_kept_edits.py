"""A rollback never silently drops an edit someone else made during the window (issue 14, item 7).

An operator adds a stanza to ``/etc/network/interfaces`` while a cut-off host waits for its timer.
The rollback still brings the old network back (the file is the snapshot's again), but the
edited file is kept in ``/var/lib/fleetbr/kept/TXID/`` with its mode, and the rollback result
and ``fleetbr status`` name it.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.report import Status
from fleetbr.transaction.status import status_job
from tests.integration.distro.persisthelpers import (
    HOSTS,
    apply_all,
    on_each,
    persist_task,
    settled_facts,
)
from tests.integration.helpers import events, sh, specs, wait_for

pytestmark = pytest.mark.lab

CUT = "203.0.113.9/24"  # a wrong address on the bridge: the host is cut off
PATH = "/etc/network/interfaces"
STANZA = "\n# added by an operator during the window\niface dummy9 inet manual\n"


@pytest.mark.skipif("ifupdown" not in HOSTS, reason="FLEETBR_TEST_BACKENDS leaves ifupdown out")
def test_an_edit_made_during_the_window_is_kept_and_reported(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    host = HOSTS["ifupdown"]
    fresh_distro_host(host)
    settled_facts(distro_lab, host)
    original = sh(distro_lab, host, f"cat {PATH}")
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(apply_all, distro_lab, [host], task)
        wait_for(lambda: "applied" in events(distro_lab, host), 20, f"{host}: the apply")
        sh(distro_lab, host, f"printf '%s' {shlex.quote(STANZA)} >> {PATH}")
        got = running.result()[host]

    assert got.status == Status.ROLLED_BACK, (got.message, got.data.get("events"))
    assert got.data["kept"] == [PATH]
    txid = got.data["txid"]
    assert f"kept what someone else wrote to {PATH}" in got.message
    assert sh(distro_lab, host, f"cat {PATH}") == original  # the old network came back
    kept = f"/var/lib/fleetbr/kept/{txid}/%etc%network%interfaces"
    text = sh(distro_lab, host, f"cat {kept}")
    assert text.endswith(STANZA) and "iface br0" in text  # fleetbr's file plus the edit
    modes = sh(distro_lab, host, f"stat -c '%a %U' {PATH} {kept} /var/lib/fleetbr/kept/{txid}")
    assert modes.split("\n")[:3] == ["644 root", "644 root", "700 root"]

    status = asyncio.run(status_job(specs(distro_lab.inventory_dir)[host]))
    assert status.data["kept"] == {txid: [PATH]}
    assert f"kept what someone else wrote to {PATH}" in status.message


def test_a_rollback_keeps_nothing_when_nobody_else_wrote(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    """What a backend's own tool does to the files (NetworkManager, netplan) is no edit."""
    on_each(HOSTS.values(), fresh_distro_host)
    on_each(HOSTS.values(), lambda h: settled_facts(distro_lab, h))
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    result = apply_all(distro_lab, HOSTS.values(), task)
    for backend, host in HOSTS.items():
        got = result[host]
        assert got.status == Status.ROLLED_BACK, (backend, got.message, got.data.get("events"))
        assert "kept" not in got.data and "kept" not in got.message, backend
        assert sh(distro_lab, host, "ls -A /var/lib/fleetbr/kept 2>/dev/null || :") == ""
