"""Helpers for the distro tier's reboot and boot-guard tests: run a transaction up to a phase,
cut the power (with a root that turns writable late, if asked), resume the controller, and check
the host afterwards (old configuration, the boot order the guard promises, a phase's outcome).

Shared by test_persist_reboot.py, test_persist_boot_path.py, test_persist_boot_late_root.py and
test_persist_boot_guard_failure.py; test modules never import from each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.errors import LabError
from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab, LabHost, host_state
from fleetbr.lab.distro import lateroot, reboot
from fleetbr.lab.distro.supervisor import init_pid, wait_up
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import (
    Transaction,
    _arm_and_apply,
    _prepare,
    resolve,
    run_transaction,
)
from fleetbr.transport.ssh import open_connection
from tests.integration.distro.persisthelpers import (
    BOOT_GENERATED,
    HOSTS,
    bridge_view,
    daemon_view,
    file_sha256,
    on_each,
    owns,
    persist_task,
    settled_facts,
    settled_state,
    state_diff,
)
from tests.integration.helpers import (
    armed,
    enslaved,
    events,
    fleetbr,
    rendered,
    sh,
    specs,
    wait_for,
)

WINDOW = 120  # the timer never fires before the reboot: the boot guard must do the work
HOLD = "/run/fleetbr-test"  # tmpfs in the host: the slow wrapper is gone after the reboot
PHASES = ("stage", "arm", "window", "confirm")
GUARD = "fleetbr-boot-guard.service"
BOOT_TIMEOUT = 90  # a host with a late-writable root is up again within this long
CUT_OFF = "203.0.113.250/32"  # tasks/cut-off.yaml's default
# NetworkManager will not activate the cut-off bridge profile (the gateway is outside its /32):
# the apply fails and rolls back at once, so there is no window to cut the power in.
CUT_OFF_BACKENDS = {b: h for b, h in HOSTS.items() if b != "networkmanager"}
DAEMON = {
    "ifupdown": "networking.service",
    "networkd": "systemd-networkd.service",
    "netplan": "systemd-networkd.service",
    "networkmanager": "NetworkManager.service",
}


# --- up to a phase -----------------------------------------------------------------------------


def hold_enslaving(lab: Lab, host: str) -> None:
    """Until the host reboots, its ``ip ... master ...`` (the step that enslaves the NIC) hangs:
    a wrapper bind-mounted over ``ip`` in the host's own mount namespace."""
    real = sh(lab, host, 'readlink -f "$(command -v ip)"').strip()
    sh(
        lab,
        host,
        f"""set -e
mkdir -p {HOLD}
cp {real} {HOLD}/ip.real
cat > {HOLD}/ip <<'EOF'
#!/bin/sh
case " $* " in *" master "*) exec sleep 3600 ;; esac
exec {HOLD}/ip.real "$@"
EOF
chmod 755 {HOLD}/ip
mount --bind {HOLD}/ip {real}""",
    )


def held(lab: Lab, host: str) -> bool:
    """The apply is blocked in the held step."""
    return "sleep 3600" in sh(lab, host, "ps -eo args || :")


async def to_phase(lab: Lab, host: str, task_path: Path, phase: str) -> Transaction | HostResult:
    """Run the transaction up to ``phase``; the Transaction to resume (or, at ``confirm``, the
    whole transaction's result)."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, task_path, host), task_path.name))
    if phase == "confirm":
        return await run_transaction(tx.spec, tx.change)
    if phase == "arm":
        hold_enslaving(lab, host)
    async with open_connection(spec) as conn:
        early = await _prepare(tx, conn)
        assert early is None, (host, early)
        if phase != "stage":
            await _arm_and_apply(tx, conn)
    if phase == "arm":
        await asyncio.to_thread(wait_for, lambda: held(lab, host), 30, f"{host}: apply held")
        assert armed(lab, host) and not enslaved(lab, host), host
    if phase == "window":
        await asyncio.to_thread(wait_applied, lab, host)
        assert armed(lab, host) and enslaved(lab, host), host
    return tx


def wait_applied(lab: Lab, host: str, timeout: float = 60) -> None:
    """Wait until the host's apply finished and says ``applied``; else fail with its apply log."""
    try:
        wait_for(lambda: bool({"applied", "apply_failed"} & set(events(lab, host))), timeout,
                 f"{host}: applied")  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{apply_log(lab, host)}") from None
    assert "applied" in events(lab, host), (host, apply_log(lab, host))


def apply_log(lab: Lab, host: str) -> str:
    """The host's transaction apply logs and journal (what a failed apply said)."""
    logs = "tail -n 40 /var/lib/fleetbr/tx/*/apply.log /var/lib/fleetbr/journal"
    journal = "journalctl -b --no-pager -o short-monotonic | tail -n 60"
    return sh(lab, host, f"{logs}; {journal}", False)


async def cut_off_applied(lab: Lab, host: str, task: Path) -> Transaction:
    """Stage, arm and apply the cut-off task; return once the host says applied."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, task, host), task.name))
    async with open_connection(spec) as conn:
        assert await _prepare(tx, conn) is None, host
        await _arm_and_apply(tx, conn)
    await asyncio.to_thread(wait_applied, lab, host)
    assert armed(lab, host) and enslaved(lab, host), host
    return tx


def cut_off_hosts(
    lab: Lab,
    fresh: Callable[[str], LabHost],
    tmp_path: Path,
    prepare: Callable[[Lab, LabHost], object],
) -> tuple[dict[str, LabHost], dict[str, tuple[dict[str, Any], HostFacts]], Path]:
    """The CUT_OFF_BACKENDS hosts reset, their settled state taken, then ``prepare``d (a late
    root, a read-only /etc); and the cut-off task with the long WINDOW. Returns (hosts by name,
    states before by name, task)."""
    hosts = on_each(CUT_OFF_BACKENDS.values(), fresh)
    before = on_each(CUT_OFF_BACKENDS.values(), lambda h: settled_state(lab, h))
    for host in hosts.values():
        prepare(lab, host)
    return (
        hosts,
        before,
        persist_task(tmp_path, "cut-off.yaml", timeout=WINDOW, addresses=[CUT_OFF]),
    )


async def resume(got: Transaction | HostResult) -> HostResult | None:
    """The controller resuming a transaction left at a phase (None: it had already finished)."""
    return None if isinstance(got, HostResult) else await resolve(got)


# --- the reboot --------------------------------------------------------------------------------


def power_cut(lab: Lab, host: LabHost, *, late_root: bool) -> str | None:
    """Cut the power; with ``late_root``, let the root turn writable only once the guard ran or
    waits for it. None once the host accepts SSH again, else why not."""
    if not late_root:
        reboot(lab, host, hard=True)
        return None
    old = init_pid(host)
    reboot(lab, host, hard=True, wait=False)
    lateroot.release_root_after(lab, host, GUARD, old_init=old)
    try:
        wait_up(host, time.monotonic() + BOOT_TIMEOUT, after=old)
    except LabError as exc:
        guard = sh(lab, host.name, f"journalctl -b -u {GUARD} --no-pager | tail -n 5", False)
        return f"not reachable after the power cut ({exc}); guard: {guard}"
    return None


# --- checks after the reboot -------------------------------------------------------------------


def old_config_problems(
    lab: Lab, backend: str, state: dict[str, Any], facts: HostFacts
) -> list[str]:
    """How the host differs from its state before the transaction (empty: not at all)."""
    host = HOSTS[backend]
    now = settled_facts(lab, host)
    out = []
    files = {p: d for p, d in facts.daemons.files.items() if p not in BOOT_GENERATED}
    if {p: d for p, d in now.daemons.files.items() if p not in BOOT_GENERATED} != files:
        out.append(f"files {files} -> {now.daemons.files}")
    for path, digest in files.items():
        if file_sha256(lab, host, path) != digest:
            out.append(f"{path} differs")
    if daemon_view(now, "eth0") != daemon_view(facts, "eth0"):
        out.append(f"eth0: {daemon_view(facts, 'eth0')} -> {daemon_view(now, 'eth0')}")
    if now.bridge("br0") is not None or "br0" in now.daemons.interfaces:
        out.append("br0 is back")
    out += state_diff(state, host_state(lab, host))
    if armed(lab, host):
        out.append("still armed")
    return out


def _stamps(lab: Lab, host: str, unit: str) -> tuple[int, int]:
    """(started, ended) of ``unit`` this boot, monotonic microseconds (0: not yet)."""
    names = ("InactiveExit", "ExecMainExit", "ActiveEnter")
    args = " ".join(f"-p {name}TimestampMonotonic" for name in names)
    out = sh(lab, host, f"systemctl show {args} {unit}")
    got = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    started, exited, active = (int(got[f"{name}TimestampMonotonic"]) for name in names)
    return started, max(exited, active)


def boot_order_problems(lab: Lab, backend: str, host: str) -> list[str]:
    """The guard ran after the root turned writable, before systemd-sysctl and the backend's
    daemon; systemd broke no ordering cycle this boot."""
    out = []
    cycles = sh(lab, host, "journalctl -b --no-pager | grep -ci 'ordering cycle' || :").strip()
    if cycles != "0":
        out.append(f"{cycles} ordering cycle line(s) in the boot's journal")
    guard_start, guard_end = _stamps(lab, host, GUARD)
    if not 0 < _stamps(lab, host, "systemd-remount-fs.service")[1] <= guard_start:
        out.append("the guard started before systemd-remount-fs finished")
    for unit in ("systemd-sysctl.service", DAEMON[backend]):
        started = _stamps(lab, host, unit)[0]
        if not 0 < guard_end <= started:
            out.append(f"{unit} started at {started}, before the guard finished ({guard_end})")
    return out


def _confirmed_problems(lab: Lab, backend: str, first: HostResult) -> list[str]:
    """After the reboot of a confirmed host: the bridge is back, still the daemon's."""
    host = HOSTS[backend]
    if first.status != Status.CONFIRMED:
        return [f"not confirmed: {first.message}"]
    out = []
    facts = settled_facts(lab, host)
    if not owns(facts, "br0", backend):
        out.append(f"br0 after the reboot: {daemon_view(facts, 'br0')}")
    view = bridge_view(facts)
    if view["bridge"] is None or view["bridge"].ports != ("eth0",):
        out.append(f"bridge after the reboot: {view['bridge']}")
    if events(lab, host) != ["staged", "armed", "applied", "confirmed"]:
        out.append(f"journal: {events(lab, host)}")
    return out


def check_phase(
    lab: Lab,
    backend: str,
    phase: str,
    first: Transaction | HostResult,
    resumed: HostResult | None,
    before: tuple[dict[str, Any], HostFacts],
) -> list[str]:
    """What is wrong with the host after the reboot at ``phase`` (empty: nothing)."""
    host = HOSTS[backend]
    if phase == "confirm":
        assert isinstance(first, HostResult)
        return _confirmed_problems(lab, backend, first)
    assert resumed is not None
    out = old_config_problems(lab, backend, *before)
    if phase == "stage":
        if resumed.status != Status.FAILED or "nothing changed" not in resumed.message:
            out.append(f"resumed: {resumed.status.value} {resumed.message}")
        if "armed" in events(lab, host):
            out.append(f"journal: {events(lab, host)}")
        return out
    if resumed.status != Status.ROLLED_BACK:
        out.append(f"resumed: {resumed.status.value} {resumed.message}")
    last = sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")
    if "rolled_back reason=reboot failed_steps=0" not in last:
        out.append(f"journal ends: {last}")
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "status")
    if code != 0 or "rolled_back reason=reboot" not in doc[host]["message"]:
        out.append(f"status: {code} {doc} {err}")
    return out
