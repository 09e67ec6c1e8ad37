"""Guests + a power cut inside the window (issue 14, item 5), on real libvirtd 9.0 hosts.

``g1`` is autostarted by libvirtd at boot (and the lab's own ``lab-guests.service``, which would
define it on its network again, is disabled): after a power cut with g1 moved onto br0 (a runtime
bridge, gone after the reboot), libvirtd must find g1's persistent definition back on its old
network, start it, and the host and the controller must say ``rolled_back`` only then. The phase
is read from the host (the apply journalled ``applied``), never reached by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare, resolve
from fleetbr.transport.ssh import open_connection
from tests.integration.guests.guesthelpers import domains, host_facts, master, task
from tests.integration.helpers import armed, events, rendered, sh, specs, wait_for

pytestmark = pytest.mark.lab

WINDOW = 120  # the timer never fires before the reboot: the boot guard must do the work


def autostart_g1(lab: Lab, host: str) -> None:
    """libvirtd starts the lab network and g1 at boot; nothing else defines them again."""
    sh(lab, host, "virsh -q net-autostart lab && virsh -q autostart g1 >/dev/null"
                  " && systemctl disable -q lab-guests.service")  # fmt: skip


async def in_window_then_power_cut(lab: Lab, host: str, path: Path) -> HostResult:
    """Apply the task up to ``applied`` (g1 on br0 in both definitions), cut the power, and let
    the controller resolve the transaction after the boot."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, path, host), path.name))
    async with open_connection(spec) as conn:
        early = await _prepare(tx, conn)
        assert early is None, early
        await _arm_and_apply(tx, conn)
    await asyncio.to_thread(wait_for, lambda: "applied" in events(lab, host), 60, "the apply")
    (config,) = domains(host_facts(lab, host))["g1"].interfaces("config")
    assert (config.type, config.source) == ("bridge", "br0")
    await asyncio.to_thread(reboot, lab, host, hard=True)
    return await resolve(tx)


def test_an_autostarted_guest_comes_back_on_its_network_after_a_power_cut(
    guest_lab: Lab, fresh_guest_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_guest_host("hv02")
    autostart_g1(guest_lab, "hv02")
    before = domains(host_facts(guest_lab, "hv02"))["g1"]
    path = task(tmp_path, {"move": ["g1"], "from": "lab"})
    doc = yaml.safe_load(path.read_text())
    doc["deadman"]["timeout"] = WINDOW
    path.write_text(yaml.safe_dump(doc))
    result = asyncio.run(in_window_then_power_cut(guest_lab, "hv02", path))
    assert result.status == Status.ROLLED_BACK, result.message
    facts = host_facts(guest_lab, "hv02")
    g1 = domains(facts)["g1"]
    assert [i.canonical for i in g1.interfaces("config")] == [
        i.canonical for i in before.interfaces("config")
    ]
    assert g1.active
    (live,) = g1.live
    assert (live.type, live.source, live.mac) == ("network", "lab", before.live[0].mac)
    assert master(facts, live.tap) == "virbr-lab"
    assert not armed(guest_lab, "hv02")
    last = sh(guest_lab, "hv02", "tail -n 1 /var/lib/fleetbr/journal")
    assert "rolled_back reason=reboot failed_steps=0" in last, last
