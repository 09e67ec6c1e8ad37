"""Slow hosts: a step that takes longer than the controller waits for one SSH command must never
lead to a host decided while fleetbr's own scripts may still change it (issue 6, item 0).

Each case makes one command slow on one lab host (a wrapper bind-mounted in that host's mount
namespace), with a controller command timeout shorter than the slowness, and applies either the
bridge task or a task that cuts the host off. Every host must end confirmed with the bridge, or
rolled back exactly at its snapshot, reachable, with nothing of fleetbr's left running and no
journal event after the decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from fleetbr.changes.bridge.change import rollout
from fleetbr.changes.bridge.task import load_task, render_task
from fleetbr.lab import Lab, host_state
from fleetbr.report import Status
from tests.integration.helpers import (
    TIMEOUT,
    armed,
    assert_at_snapshot,
    assert_bridged,
    derived_inventory,
    events,
    fleetbr,
    fleetbr_processes,
    slow_command,
    specs,
    task_file,
    wait_for,
)

COMMAND_TIMEOUT = 5  # the controller gives up on one SSH command after this long...
SLOW = 12  # ...and each slow step takes this long (more than fleetbr 0.1's arm wait, too)
# The dead-man window: one slow step inside it, plus what the product says a window needs
# without one (protocol.min_timeout: reconnect twice, probe, disarm, the confirm margin) for
# the lab's SSH options. Was a flat 20 s: some 5 s for 10 hosts on a loaded 2-core machine.
WINDOW = SLOW + TIMEOUT
# How long a host's own work (a stage the controller gave up on, a slowed command) may take to
# finish after the controller is done: a bound, not a guess at the machine's speed (CI timed out
# at 15 s with fifteen test jobs sharing 2 cores); a host that finishes sooner ends the wait.
SETTLE = 120

# host -> (step, command made slow, pattern in its arguments, seconds, task cuts the host off)
CASES: dict[str, tuple[str, str, str, float, bool]] = {
    "hv01": ("stage", "mkdir", "/backups", 3, False),
    "hv02": ("stage", "mkdir", "/backups", 3, True),
    "hv03": ("checksum", "sha256sum", " -c ", SLOW, False),
    "hv04": ("checksum", "sha256sum", " -c ", SLOW, True),
    "hv05": ("arm", "ln", "fleetbr/armed", SLOW, False),
    "hv06": ("arm", "ln", "fleetbr/armed", SLOW, True),
    "hv07": ("apply", "ip", " master ", SLOW, False),
    "hv08": ("apply", "ip", " master ", SLOW, True),
    # the detached apply takes longer to start than the arm script waits for it
    "hv10": ("apply start", "setsid", "apply.sh", SLOW, False),
    "hv11": ("apply start", "setsid", "apply.sh", SLOW, True),
}


def _short_command_timeout(lab: Lab, dest: Path) -> Path:
    def edit(_: dict[str, Any], defaults: dict[str, Any]) -> None:
        defaults["connection_options"]["fleetbr"]["extras"]["command_timeout"] = COMMAND_TIMEOUT

    return derived_inventory(lab, dest, edit)


def _idle(lab: Lab, host: str) -> Callable[[], bool]:
    return lambda: not fleetbr_processes(lab, host)


def assert_decided_last(lab: Lab, host: str) -> None:
    """Nothing happened on the host after the transaction was decided."""
    seen = events(lab, host)
    decided = [i for i, e in enumerate(seen) if e in ("confirmed", "rolling_back")]
    assert len(decided) == 1, seen
    after = seen[decided[0] + 1 :]
    assert after in ([], ["rolled_back"]), f"events after the decision: {seen}"


def test_slow_step_at_every_phase_ends_decided_and_true(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    for name in CASES:
        fresh_host(name)
    inventory = _short_command_timeout(lab, tmp_path / "inventory")
    hosts = specs(inventory)
    good = load_task(task_file(tmp_path, timeout=WINDOW))
    cut = load_task(task_file(tmp_path, timeout=WINDOW, addresses=["203.0.113.9/24"]))
    tasks = {
        name: render_task(cut if cuts else good, hosts[name].context())
        for name, (_, _, _, _, cuts) in CASES.items()
    }
    with ExitStack() as stack:
        for name, (_, command, pattern, seconds, _) in CASES.items():
            stack.enter_context(slow_command(lab, name, command, pattern, seconds))
        result = asyncio.run(rollout([hosts[n] for n in CASES], tasks, "slow", forks=len(CASES)))
        for name in CASES:  # let every slowed command finish before the bind mounts go away
            wait_for(_idle(lab, name), SLOW + SETTLE, f"{name} idle")
    for name, (step, _, _, _, cuts) in CASES.items():
        got = result[name]
        where = (
            f"{name} (slow {step}, {'cutting' if cuts else 'bridge'} task): {got.message}; "
            f"events: {got.data.get('events')}"
        )
        if cuts:
            assert got.status == Status.ROLLED_BACK, where
            assert_at_snapshot(lab, name, pristine)
        else:
            assert got.status == Status.CONFIRMED, where
            assert_bridged(lab, name)
            assert not armed(lab, name)
        assert_decided_last(lab, name)


def test_stage_slower_than_the_command_timeout_changes_nothing(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv09")
    inventory = _short_command_timeout(lab, tmp_path / "inventory")
    task = task_file(tmp_path, timeout=WINDOW)
    with slow_command(lab, "hv09", "mkdir", "/backups", COMMAND_TIMEOUT + 4):
        code, doc, err = fleetbr("-i", str(inventory), "-l", "hv09", "apply", str(task))
        assert code == 1, err
        assert doc["hv09"]["status"] == "failed"
        assert "nothing changed" in doc["hv09"]["message"], doc["hv09"]
        # the stage goes on on the host and finishes; nothing ever arms
        wait_for(lambda: "staged" in events(lab, "hv09"), COMMAND_TIMEOUT + SETTLE, "the stage")
        wait_for(lambda: not fleetbr_processes(lab, "hv09"), SETTLE, "the stage to exit")
    assert events(lab, "hv09") == ["staged"]
    assert host_state(lab, "hv09") == pristine["hv09"]
    code, doc, err = fleetbr("-i", str(inventory), "-l", "hv09", "apply", str(task))
    assert code == 0 and doc["hv09"]["status"] == "confirmed", (doc, err)
