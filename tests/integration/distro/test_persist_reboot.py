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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab, LabHost, host_state
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult, Status
from fleetbr.transaction.change import BridgeChange
from fleetbr.transaction.protocol import Transaction, _arm_and_apply, _prepare, resolve
from fleetbr.transport import open_connection
from tests.integration.distro.persisthelpers import (
    BOOT_GENERATED,
    HOSTS,
    bridge_view,
    daemon_view,
    file_sha256,
    gather_each,
    on_each,
    owns,
    persist_task,
    settled_facts,
    settled_state,
    state_diff,
)
from tests.integration.helpers import fleetbr, specs
from tests.integration.txhelpers import armed, enslaved, events, rendered, sh, wait_for

pytestmark = pytest.mark.lab

WINDOW = 120  # the timer never fires before the reboot: the boot guard must do the work
HOLD = "/run/fleetbr-test"  # tmpfs in the host: the slow wrapper is gone after the reboot
PHASES = ("stage", "arm", "window", "confirm")


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


async def _to_phase(lab: Lab, host: str, task_path: Path, phase: str) -> Transaction | HostResult:
    """Run the transaction up to ``phase``; the Transaction to resume (or the final result)."""
    spec = specs(lab.inventory_dir)[host]
    tx = Transaction(spec, BridgeChange(rendered(lab, task_path, host), task_path.name))
    if phase == "confirm":
        return await resolve_after(tx, full=True)
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
        await asyncio.to_thread(
            wait_for, lambda: "applied" in events(lab, host), 60, f"{host}: applied"
        )
        assert armed(lab, host) and enslaved(lab, host), host
    return tx


async def resolve_after(tx: Transaction, *, full: bool = False) -> HostResult:
    """The controller resuming: resolve (or, ``full``, the whole transaction)."""
    if full:
        from fleetbr.transaction.protocol import run_transaction

        return await run_transaction(tx.spec, tx.change)
    return await resolve(tx)


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


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("phase", PHASES)
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
        got = await _to_phase(distro_lab, host, task, phase)
        await asyncio.to_thread(reboot, distro_lab, host, hard=hard)
        if isinstance(got, HostResult):
            return got, None
        return got, await resolve_after(got)

    try:
        outcome = asyncio.run(gather_each(HOSTS.values(), run))
    finally:
        with suppress(Exception):  # a failed phase leaves a held apply: the reset clears it
            on_each(HOSTS.values(), lambda h: None)
    problems: dict[str, list[str]] = {}
    for backend, host in HOSTS.items():
        first, resumed = outcome[host]
        problems[backend] = check_phase(distro_lab, backend, phase, first, resumed, before[host])
    assert not any(problems.values()), "\n".join(
        f"{b}: {line}" for b, lines in problems.items() for line in lines
    )


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
