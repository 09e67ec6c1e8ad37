"""What the DHCP tests of every backend check alike (tests/integration/distro/test_dhcp*.py):
the bridge holding the NIC's leases once confirmed, and the NIC holding them again after a
bridge with another MAC was rolled back; a confirmed bridge coming back with the same leases
after a reboot, and a power cut in the dead-man window bringing the host back as before."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from fleetbr.lab import Lab
from fleetbr.lab.dhcp import LEASE_TIMEOUT, LOG, leased, server_leases, wait_leases
from fleetbr.lab.distro import reboot
from fleetbr.lab.model import LabHost
from fleetbr.report import HostResult
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro.boothelpers import check_phase, resume, to_phase
from tests.integration.distro.persisthelpers import (
    daemon_view,
    owns,
    settled_facts,
    settled_state,
)
from tests.integration.helpers import events, fleetbr, sh


def plain(addresses: list[str]) -> set[str]:
    """The addresses without their prefix lengths."""
    return {a.split("/")[0] for a in addresses}


def settled_leases(lab: Lab, host: LabHost) -> list[str]:
    """The NIC's leases once it holds them and its daemon is no longer configuring it: a
    transaction's snapshot taken while networkd still says ``configuring`` differs from the
    ``configured`` its rollback ends in (seen on a quiet machine, where the apply starts sooner
    after ``reset_host``)."""
    before = wait_leases(host)
    settled_facts(lab, host.name, timeout=60)
    return before


def bridge_holds_the_leases(host: LabHost, before: list[str]) -> None:
    """br0 holds the v4 and v6 leases the NIC held (``before``); the NIC holds none."""
    assert plain(leased(host, "br0")) == plain(before) == {host.ip4, host.ip6}
    assert leased(host) == []


def nic_got_its_leases_back(
    lab: Lab, host: LabHost, before: list[str], message: str, mac: str
) -> None:
    """A bridge with ``mac`` (which the server does not know) was cut off and rolled back: the
    server gave that MAC another address, the NIC has its leases (``before``) again, br0 is gone."""
    assert f"no fresh SSH connection before the deadline (connect to {host.ip4}:22" in message
    log = (lab.dir / LOG).read_text().splitlines()
    pattern = re.compile(rf"DHCPACK\(\S+\) (\S+) {re.escape(mac)}")
    acks = [m[1] for line in log if (m := pattern.search(line))]
    assert acks and all(a.startswith("198.51.100.2") and a != host.ip4 for a in acks), log[-20:]
    assert plain(wait_leases(host)) == plain(before)
    assert "br0" not in sh(lab, host.name, "ip -o link show")


def acks(lab: Lab, host: LabHost) -> dict[int, int]:
    """How often the server handed out ``host``'s fixed IPv4 and IPv6 addresses, by family."""
    return {lease.family: lease.acks for lease in server_leases(lab, host)}


def not_handed_out_again(lab: Lab, host: LabHost, since: dict[int, int]) -> str | None:
    """None if the server handed out both fixed addresses again after ``since`` (acks()), so the
    leases held now are fresh ones (a reboot gives the host a new network namespace: nothing of
    the kernel's old addresses survives it); else what it handed out."""
    now = acks(lab, host)
    if all(now.get(family, 0) > since.get(family, 0) for family in (4, 6)):
        return None
    return f"the server handed out no fresh leases (acks by family {since} -> {now})"


def comes_back_confirmed(
    lab: Lab, host: LabHost, backend: str, before: list[str], task: Path, *, hard: bool = False
) -> None:
    """Reboot a host whose bridge was confirmed (``hard``: a power cut): br0 holds the NIC's
    leases (``before``) again, handed out anew by the server, ``backend`` owns it, the journal
    still ends confirmed (nothing armed, nothing rolled back) and ``check`` of ``task`` says
    in_sync."""
    since = acks(lab, host)
    reboot(lab, host.name, hard=hard)
    wait_leases(host, dev="br0")
    bridge_holds_the_leases(host, before)
    stale = not_handed_out_again(lab, host, since)
    assert stale is None, stale
    facts = settled_facts(lab, host.name, timeout=60)
    assert owns(facts, "br0", backend), daemon_view(facts, "br0")
    assert events(lab, host.name) == ["staged", "armed", "applied", "confirmed"]
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host.name, "check", str(task))
    assert isinstance(doc, dict), (doc, err)
    assert (code, doc[host.name]["status"]) == (0, "in_sync"), doc


def power_cut_in_the_window(
    lab: Lab, host: LabHost, backend: str, before: list[str], task: Path
) -> list[str]:
    """Apply ``task`` (a long dead-man window) up to its window (the bridge applied and holding
    the NIC's leases, the transaction armed), cut the power, resume the controller: why the host
    did not come back as before (empty: it did). Besides boothelpers.check_phase's checks (the
    boot guard put the files back before the daemon started: files, the daemon's view of the NIC,
    the kernel state as before, no bridge, nothing armed; the journal and ``status`` say
    rolled_back reboot; the resuming controller says rolled_back), the NIC holds its leases
    (``before``) again, handed out anew by the server after the cut. The caller maps ``backend``
    to ``host`` in persisthelpers.HOSTS."""
    state = settled_state(lab, host.name)
    since: dict[int, int] = {}

    async def run() -> tuple[Transaction | HostResult, HostResult | None]:
        got = await to_phase(lab, host.name, task, "window")
        await asyncio.to_thread(wait_leases, host, LEASE_TIMEOUT, "br0")
        since.update(acks(lab, host))  # the bridge's leases counted: later acks are the NIC's
        await asyncio.to_thread(reboot, lab, host.name, hard=True)
        return got, await resume(got)

    got, resumed = asyncio.run(run())
    problems = check_phase(lab, backend, "window", got, resumed, state)
    if plain(wait_leases(host)) != plain(before):
        problems.append(f"eth0's leases {leased(host)}, before {before}")
    if leased(host, "br0"):
        problems.append(f"br0 holds leases: {leased(host, 'br0')}")
    stale = not_handed_out_again(lab, host, since)
    return problems + ([stale] if stale else [])
