"""The two-bridge topology (br0 over the NIC, host-only br9) on the distro tier's real daemons:
the task, and what a confirmed host, a reboot and a power cut in the window must show. Shared by
test_topologies_distro.py (ifupdown, networkd, NetworkManager; netplan left out, as it says) and
test_persist_ifupdown2.py (ifupdown2, a lab of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro.boothelpers import (
    WINDOW,
    apply_log,
    check_phase,
    resume,
    to_phase,
)
from tests.integration.distro.persisthelpers import (
    apply_all,
    daemon_view,
    gather_each,
    on_each,
    owns,
    plan,
    settled_facts,
)
from tests.integration.helpers import events

HOST_ONLY = "198.18.0.1/24"


def topology_task(tmp_path: Path, timeout: int) -> Path:
    """br0 over the host's NIC (its addresses moved) beside host-only br9, persisted by the
    daemon that manages the NIC."""
    doc = {
        "persist": "auto",
        "netfilter": "keep",
        "deadman": {"timeout": timeout},
        "bridges": [
            {"name": "br0", "nic": "{{ host.data.nic }}", "addresses": "move"},
            {"name": "br9", "host_only": True, "addresses": [HOST_ONLY]},
        ],
    }
    path = tmp_path / f"topology-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def bridged_problems(facts: HostFacts, backend: str) -> list[str]:
    """Why the host does not hold both bridges as the task says, its daemon's (empty: it does)."""
    out = [
        f"{name}: {daemon_view(facts, name)}"
        for name in ("br0", "br9")
        if not owns(facts, name, backend)
    ]
    br0, br9 = facts.bridge("br0"), facts.bridge("br9")
    if br0 is None or br0.ports != ("eth0",):
        out.append(f"br0: {br0}")
    if br9 is None or br9.ports:
        out.append(f"br9: {br9}")
    held = [a.cidr for a in facts.addresses_of("br9")]
    if held != [HOST_ONLY]:
        out.append(f"br9 holds {held}, not {HOST_ONLY}")
    eth0 = [a.cidr for a in facts.addresses_of("eth0")]
    if eth0:
        out.append(f"eth0 still holds {eth0}")
    return out


def confirmed_then_rebooted(lab: Lab, hosts: Mapping[str, str], tmp_path: Path) -> list[str]:
    """Apply the task on every host (backend -> host) at once, with a 120 s window (room for a
    daemon that needs a second try: the networkd wait in backends.md): why a host is not
    confirmed with both bridges its daemon's, ``check`` in sync and a plan again unchanged, or,
    after a clean reboot, not back as confirmed (empty: every host is)."""
    task = topology_task(tmp_path, WINDOW)
    results = apply_all(lab, hosts.values(), task)
    problems: list[str] = []
    for backend, host in hosts.items():
        if results[host].status != Status.CONFIRMED:
            problems.append(f"{backend}: {results[host].status.value} {results[host].message}")
            problems.append(apply_log(lab, host))
            continue
        facts = settled_facts(lab, host, timeout=60)
        problems += [f"{backend}: {line}" for line in bridged_problems(facts, backend)]
        for name, want in (("check", "in_sync"), ("plan", "unchanged")):
            got = plan(lab, host, task, name)
            if got[:2] != (0, want):
                problems.append(f"{backend}: {name} says {got}")
    if problems:
        return problems
    on_each(hosts.values(), lambda h: reboot(lab, h))
    for backend, host in hosts.items():
        facts = settled_facts(lab, host, timeout=60)
        problems += [f"{backend} after the reboot: {x}" for x in bridged_problems(facts, backend)]
        if events(lab, host) != ["staged", "armed", "applied", "confirmed"]:
            problems.append(f"{backend}: journal {events(lab, host)}")
        got = plan(lab, host, task, "check")
        if got[:2] != (0, "in_sync"):
            problems.append(f"{backend}: check after the reboot says {got}")
    return problems


def power_cut_in_the_window(
    lab: Lab,
    hosts: Mapping[str, str],
    tmp_path: Path,
    before: Mapping[str, tuple[dict[str, Any], HostFacts]],
) -> list[str]:
    """Apply the task up to its window on every host (backend -> host, each in
    persisthelpers.HOSTS) at once, cut the power, resume: why a host did not come back as
    ``before`` (boothelpers.check_phase), or holds br9 (empty: every host came back)."""
    task = topology_task(tmp_path, WINDOW)

    async def run(host: str) -> tuple[Transaction | HostResult, HostResult | None]:
        got = await to_phase(lab, host, task, "window")
        await asyncio.to_thread(reboot, lab, host, hard=True)
        return got, await resume(got)

    outcome = asyncio.run(gather_each(hosts.values(), run))
    problems: list[str] = []
    for backend, host in hosts.items():
        first, resumed = outcome[host]
        found = check_phase(lab, backend, "window", first, resumed, before[host])
        problems += [f"{backend}: {line}" for line in found]
        facts = settled_facts(lab, host)
        if facts.bridge("br9") is not None or "br9" in facts.daemons.interfaces:
            problems.append(f"{backend}: br9 is back: {daemon_view(facts, 'br9')}")
    return problems
