"""Helpers for the VM tier's topology tests: topology tasks, the host's kernel state and daemon
files over SSH (a VM has no namespace to enter), and the exact-rollback check of
tests/integration/distro/persisthelpers.py (restored_problems) for a VM."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.lab import Lab
from fleetbr.lab.state import normalise_dump
from tests.integration.distro.persisthelpers import daemon_view, settled_facts, state_diff
from tests.integration.helpers import fleetbr
from tests.integration.vm.conftest import ssh, vm_sh

# What a kernel dump may differ in without the host being different: counters, timers, indexes.
_VOLATILE = frozenset(
    {"ifindex", "link_index", "stats", "stats64", "valid_life_time", "preferred_life_time"}
)
_DUMPS = {
    "links": "ip -j -d link",
    "addresses": "ip -j addr",
    "routes4": "ip -j -4 route show table all",
    "routes6": "ip -j -6 route show table all",
    "bridge_ports": "bridge -j link",
}
BOND = {"name": "bond0", "slaves": ["eth0", "eth1"], "mode": "active-backup",
        "options": {"miimon": 100}}  # fmt: skip


def topology_task(tmp_path: Path, persist: str, timeout: int, **top: Any) -> Path:
    """A task file: ``top`` (``bridge:`` or ``bridges:``) with ``persist`` and a dead-man
    ``timeout`` (TCG guests on a loaded machine are slow to confirm)."""
    doc = {"persist": persist, "netfilter": "keep", "deadman": {"timeout": timeout}, **top}
    path = tmp_path / f"topology-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(lab: Lab, host: str, task: Path, command: str, timeout: float) -> tuple[int, str, str]:
    """``fleetbr COMMAND task`` on ``host``: exit code, status, message (``timeout``: the
    subprocess's bound; a TCG guest's apply can take minutes on a loaded machine)."""
    code, doc, err = fleetbr(
        "-i", str(lab.inventory_dir), "-l", host, command, str(task), timeout=timeout
    )
    assert isinstance(doc, dict), (doc, err)
    return code, doc[host]["status"], doc[host]["message"]


def kernel_state(lab: Lab, host: str) -> dict[str, Any]:
    """Links (with details), addresses, routes of every table, bridge ports: comparable dumps."""
    out = {}
    for key, command in _DUMPS.items():
        text = vm_sh(lab, host, command).strip()
        items = normalise_dump(json.loads(text) if text else [], _VOLATILE)
        out[key] = sorted(items, key=json.dumps)
    return out


def vm_file_sha256(lab: Lab, host: str, path: str) -> str | None:
    """sha256 of a file on the VM (None: absent)."""
    out = vm_sh(lab, host, f"[ -e {path} ] && sha256sum {path} || :").split()
    return out[0] if out else None


def vm_events(lab: Lab, host: str) -> list[str]:
    """The event words of the host's fleetbr journal, oldest first."""
    text = vm_sh(lab, host, "cat /var/lib/fleetbr/journal 2>/dev/null || :")
    return [line.split()[2] for line in text.splitlines() if len(line.split()) > 2]


def wait_vm(lab: Lab, host: str, command: str, timeout: float, what: str) -> None:
    """Poll ``command`` on the VM until it succeeds; fail after ``timeout`` s (a bound, not a
    guess at the machine's speed)."""
    deadline = time.monotonic() + timeout
    while ssh(lab, lab.host(host).ip4, command).returncode != 0:
        assert time.monotonic() < deadline, f"{host}: {what} not within {timeout} s"
        time.sleep(1)


def networkctl(lab: Lab, host: str) -> dict[str, tuple[str, str]]:
    """networkd's own view: link -> (operational, setup) state."""
    out = vm_sh(lab, host, "networkctl list --no-legend --no-pager")
    return {row[1]: (row[3], row[4]) for row in map(str.split, out.splitlines()) if len(row) >= 5}


def restored_problems_vm(
    lab: Lab,
    host: str,
    txid: str,
    before: tuple[dict[str, Any], HostFacts],
    *,
    gone: tuple[str, ...],
    reasons: tuple[str, ...] = ("reason=timer ", "reason=apply-failed-step-"),
    residue: Mapping[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """Why the VM is not exactly as before transaction ``txid`` (empty: it is): rolled back by
    the host (``reasons``), every daemon file byte for byte as in the snapshot (the new ones
    gone), the daemon's view of eth0 and eth1 as before, the ``gone`` devices gone, the kernel
    state as before, nothing armed."""
    state, facts = before
    out = []
    last = vm_sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")
    if not any(reason in last for reason in reasons):
        out.append(f"not rolled back by the host ({' or '.join(reasons)}): {last}")
    snap = parse_facts(vm_sh(lab, host, f"cat /var/lib/fleetbr/tx/{txid}/snapshot/facts.txt"))
    now = settled_facts(lab, host, timeout=120)
    if not now.daemons.files == snap.daemons.files == facts.daemons.files:
        out.append(f"files {facts.daemons.files} -> {now.daemons.files}")
    for path, digest in snap.daemons.files.items():
        if vm_file_sha256(lab, host, path) != digest:
            out.append(f"{path} differs from the snapshot")
    for nic in ("eth0", "eth1"):
        if daemon_view(now, nic) != daemon_view(facts, nic):
            out.append(f"{nic}: {daemon_view(facts, nic)} -> {daemon_view(now, nic)}")
    out += [f"{dev} still there" for dev in gone if now.link(dev) is not None]
    out += state_diff(_without(state, residue), _without(kernel_state(lab, host), residue))
    if vm_sh(lab, host, "[ -L /var/lib/fleetbr/armed ] && echo armed || :").strip():
        out.append("still armed")
    return out


def _without(
    state: dict[str, Any], residue: Mapping[str, tuple[str, ...]] | None
) -> dict[str, Any]:
    """``state`` (kernel_state) with the ``residue`` keys of each named device's entries left
    out."""
    if not residue:
        return state
    return {
        key: [
            {k: v for k, v in item.items() if k not in residue.get(item.get("ifname", ""), ())}
            if isinstance(item, dict)
            else item
            for item in items
        ]
        for key, items in state.items()
    }
