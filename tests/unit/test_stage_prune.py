"""The stage script keeps fleetbr's state folder bounded (issue 6, item 4): the real
``tx_stage.sh.j2`` run with dash and bash against a temporary state directory full of old
transactions in every state. The newest 20 always stay; older ones go once finished."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.render import render
from fleetbr.transaction.hoststate import ExitCode

KEEP = 20
NEW = "20261127T181500-ffffff"
SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]
pytestmark = pytest.mark.skipif(not SHELLS, reason="needs dash or bash")


def txid(i: int) -> str:
    return f"20250101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:06x}"


def stage(shell: str, state: Path) -> subprocess.CompletedProcess[str]:
    script = render(
        "tx_stage.sh.j2",
        state_dir=str(state),
        txid=NEW,
        scripts={"facts.sh": "echo facts\n"},
        files=[],
        probes=[],
        task="bridge.yaml",
        nonce="0" * 32,
        exits=ExitCode,
    )
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=60)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def record_of(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return f"{pid} {stat[stat.rindex(')') + 2 :].split()[19]} {boot}\n"


def make(state: Path, i: int, kind: str, live: int | None = None) -> str:
    """An old transaction folder in state ``kind``; returns its id."""
    tx = state / "tx" / txid(i)
    tx.mkdir(parents=True)
    if kind in ("confirmed", "rolled_back", "live"):
        (tx / "claim").symlink_to("arm")
        (tx / "arm.status").write_text("done\n")
        (tx / "decision").symlink_to("confirmed" if kind != "rolled_back" else "rolled_back timer")
    elif kind == "decided_0.1":  # fleetbr 0.1: the decision lock was a directory
        (tx / "decision").mkdir()
        (tx / "decision" / "by").write_text("confirmed\n")
    elif kind == "cancelled":
        (tx / "claim").symlink_to("cancel")
    elif kind == "arm_failed":
        (tx / "claim").symlink_to("arm")
        (tx / "arm.status").write_text("failed 10\n")
    elif kind == "armed_undecided":
        (tx / "claim").symlink_to("arm")
        (tx / "arm.status").write_text("started\n")
    elif kind in ("unclaimed_old", "unclaimed_recent"):
        (tx / "SHA256SUMS").write_text("")
    if live is not None:
        (tx / "rollback.proc").write_text(record_of(live))
    if kind == "unclaimed_old":
        old = time.time() - 2 * 86400
        os.utime(tx, (old, old))
    return txid(i)


@pytest.mark.parametrize("shell", SHELLS)
def test_old_finished_transactions_are_pruned_and_nothing_else(
    shell: str, tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    state = tmp_path / "state"
    keep, remove = [], []
    # the oldest ones, in every state: removable only when finished
    for i, kind in enumerate(
        ["confirmed", "rolled_back", "decided_0.1", "cancelled", "arm_failed", "unclaimed_old"]
    ):
        remove.append(make(state, i, kind))
    for i, kind in enumerate(["armed_undecided", "unclaimed_recent"], start=10):
        keep.append(make(state, i, kind))
    keep.append(make(state, 20, "live", live=sleeper.pid))  # decided, its rollback still runs
    (state / "tx" / "not a txid").mkdir()  # someone else's folder: never touched
    # then many finished ones: only the newest KEEP of all folders are safe from pruning
    for i in range(100, 100 + KEEP + 5):
        (keep if i >= 105 else remove).append(make(state, i, "confirmed"))

    done = stage(shell, state)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in (state / "tx").iterdir())
    assert left == sorted([*keep, NEW, "not a txid"])
    assert not set(remove) & set(left)


@pytest.mark.parametrize("shell", SHELLS)
def test_few_transactions_are_all_kept(shell: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    made = [make(state, i, "confirmed") for i in range(KEEP)]
    assert stage(shell, state).returncode == 0
    assert sorted(p.name for p in (state / "tx").iterdir()) == sorted([*made, NEW])
