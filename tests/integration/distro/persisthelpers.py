"""Helpers for the persistence tests on the distro lab: tasks with ``persist:``, facts gathered
in-process over real SSH, and comparisons of what a backend's daemon says and which files it
reads."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fleetbr.backends import registry
from fleetbr.changes.bridge.change import rollout
from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.lab import Lab, host_state
from fleetbr.report import AggregatedResult
from fleetbr.transaction.verdict import daemons_settling
from fleetbr.transport.ssh import open_connection
from tests.integration.helpers import REPO, fleetbr, sh, specs

# backend -> the distro_lab host whose NIC it manages (tests/integration/distro/conftest.py)
# (FLEETBR_TEST_BACKENDS=netplan,networkmanager limits the tests to those, while developing)
HOSTS = {
    backend: host
    for backend, host in {
        "ifupdown": "hv03", "networkd": "hv04", "netplan": "hv05", "networkmanager": "hv06"
    }.items()
    if backend in os.environ.get("FLEETBR_TEST_BACKENDS", backend).split(",")
}  # fmt: skip
# Files a daemon writes anew at every boot: NetworkManager's in-memory loopback profile.
BOOT_GENERATED = frozenset({"/run/NetworkManager/system-connections/lo.nmconnection"})
TIMEOUT = 30  # dead-man window: room for the slowest backend apply (NetworkManager, ~5 s)
T = TypeVar("T")


def persist_task(
    tmp_path: Path,
    base: str = "bridge.yaml",
    *,
    persist: str = "auto",
    timeout: int = TIMEOUT,
    top: dict[str, Any] | None = None,
    **bridge: Any,
) -> Path:
    """tasks/<base> with ``persist``, a dead-man ``timeout``, ``top`` merged into the task and
    ``bridge`` into its bridge section."""
    doc = yaml.safe_load((REPO / "tasks" / base).read_text())
    doc["persist"] = persist
    doc["deadman"]["timeout"] = timeout
    doc.update(top or {})
    doc["bridge"].update(bridge)
    path = tmp_path / f"persist-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def plan(lab: Lab, host: str, task: Path, command: str = "plan") -> tuple[int, str, str]:
    """``fleetbr plan`` (or apply) of ``task`` on ``host``: exit code, status, message."""
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, command, str(task))
    assert isinstance(doc, dict), (doc, err)
    return code, doc[host]["status"], doc[host]["message"]


def apply_all(lab: Lab, hosts: Iterable[str], task: Path) -> AggregatedResult:
    """Apply ``task`` to ``hosts`` at once, in-process (real SSH, real hosts)."""
    names = list(hosts)
    inventory = specs(lab.inventory_dir)
    template = load_task(task)
    tasks = {n: render_task(template, inventory[n].context()) for n in names}
    return asyncio.run(rollout([inventory[n] for n in names], tasks, task.name, forks=len(names)))


def host_facts(lab: Lab, host: str) -> HostFacts:
    """The host's facts, gathered over SSH as the controller does."""

    async def run() -> HostFacts:
        async with open_connection(specs(lab.inventory_dir)[host]) as conn:
            return await gather(conn)

    return asyncio.run(run())


def settled_facts(lab: Lab, host: str, timeout: float = 30) -> HostFacts:
    """The host's facts once no network daemon is still configuring an interface (after a
    boot the daemons bring the network up in their own time)."""
    deadline = time.monotonic() + timeout
    facts = host_facts(lab, host)
    while daemons_settling(facts) and time.monotonic() < deadline:
        time.sleep(0.5)
        facts = host_facts(lab, host)
    return facts


def settled_state(lab: Lab, host: str) -> tuple[dict[str, Any], HostFacts]:
    """host_state and facts once the daemons have settled."""
    facts = settled_facts(lab, host)
    return host_state(lab, host), facts


def snapshot_facts(lab: Lab, host: str, txid: str) -> HostFacts:
    """The facts the transaction's stage took on the host (its snapshot)."""
    return parse_facts(sh(lab, host, f"cat /var/lib/fleetbr/tx/{txid}/snapshot/facts.txt"))


def daemon_view(facts: HostFacts, name: str) -> tuple[str | None, str, tuple[Any, ...]]:
    """(manager, state, files with sha256) of one interface, in the daemon's own words."""
    found = facts.manager(name)
    return found.manager, found.state, found.files


def owns(facts: HostFacts, name: str, backend: str) -> bool:
    """``backend`` manages ``name`` and calls it settled (configured, connected, up)."""
    found = facts.manager(name)
    return found.manager == backend and registry.is_settled(backend, found.state)


def file_sha256(lab: Lab, host: str, path: str) -> str | None:
    """sha256 of a file on the host (None: absent)."""
    out = sh(lab, host, f"[ -e {path} ] && sha256sum {path} || :").split()
    return out[0] if out else None


def on_each(hosts: Iterable[str], work: Callable[[str], T]) -> dict[str, T]:
    """``work(host)`` for every host at once, in threads started now (they inherit this thread's
    network namespace, the distro lab's)."""
    names = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(work, names), strict=True))


async def gather_each(names: Iterable[str], work: Callable[[str], Awaitable[T]]) -> dict[str, T]:
    """``await work(host)`` for every host concurrently."""
    names = list(names)
    done = await asyncio.gather(*(work(n) for n in names))
    return dict(zip(names, done, strict=True))


def state_diff(want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """What differs between two host_state snapshots, one line per item (empty: equal)."""
    out = []
    for key in sorted(set(want) | set(have)):
        a, b = want.get(key), have.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            out += [f"{key} only before: {item}" for item in a if item not in b]
            out += [f"{key} only after: {item}" for item in b if item not in a]
        else:
            out.append(f"{key}: {a} != {b}")
    return out


def bridge_view(facts: HostFacts, bridge: str = "br0", nic: str = "eth0") -> dict[str, Any]:
    """What a persisted bridge must bring back after a reboot, from the facts: the bridge and
    its ports, STP and forward delay, MACs, global addresses, non-kernel routes of every table,
    and the daemon's view of both."""
    found = facts.bridge(bridge)
    links = {name: facts.link(name) for name in (bridge, nic)}
    return {
        "bridge": found,
        "links": {
            name: (link.mac, link.mtu, link.admin_up, link.master) if link else None
            for name, link in links.items()
        },
        "addresses": sorted(
            (a.dev, a.cidr, a.broadcast, a.label)
            for a in facts.addresses
            if a.dev in (bridge, nic) and a.scope == "global"
        ),
        "routes": sorted(
            (r.family, r.dst, r.dev, r.gateway or "", r.metric or 0, r.table, r.type, r.onlink)
            for r in facts.routes
            if r.dev in (bridge, nic) and not r.kernel_made
        ),
        "daemon": {name: facts.manager(name).manager for name in (bridge, nic)},
    }


def restored_problems(
    lab: Lab,
    backend: str,
    txid: str,
    state: dict[str, Any],
    facts: HostFacts,
    *,
    created: Iterable[str] = (),
    reasons: tuple[str, ...] = ("reason=timer ", "reason=apply-failed-step-"),
) -> list[str]:
    """Why the host is not exactly as before transaction ``txid`` (empty: it is): rolled back
    by the host itself (``reasons``), every backend file byte for byte as in the transaction's
    snapshot (``created`` files gone again), the daemon's view of the NIC as before and no
    bridge left, the kernel state (host_state) as before, nothing armed."""
    host = HOSTS[backend]
    out = []
    last = sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")
    if not any(reason in last for reason in reasons):
        out.append(f"not rolled back by the host ({' or '.join(reasons)}): {last}")
    snap = snapshot_facts(lab, host, txid)
    now = settled_facts(lab, host)
    if not now.daemons.files == snap.daemons.files == facts.daemons.files:
        out.append(f"files {facts.daemons.files} -> {now.daemons.files}")
    for path, digest in snap.daemons.files.items():
        if file_sha256(lab, host, path) != digest:
            out.append(f"{path} differs from the snapshot")
    out += [
        f"{path} was created and is still there"
        for path in created
        if path not in snap.daemons.files and file_sha256(lab, host, path) is not None
    ]
    if daemon_view(now, "eth0") != daemon_view(facts, "eth0"):
        out.append(f"eth0: {daemon_view(facts, 'eth0')} -> {daemon_view(now, 'eth0')}")
    if "br0" in now.daemons.interfaces or now.bridge("br0") is not None:
        out.append(f"br0 still there: {now.daemons.interfaces.get('br0')}")
    now_state = host_state(lab, host)
    # every flag compared, IPv6 nodad included (the rollback puts an address back with the
    # flag it had: a daemon's addresses get duplicate address detection again)
    out += state_diff(state, now_state)
    if sh(lab, host, "[ -L /var/lib/fleetbr/armed ] && echo armed || :").strip():
        out.append("still armed")
    return out
