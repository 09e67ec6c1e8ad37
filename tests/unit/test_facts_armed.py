"""The ``armed`` section of the facts: the real facts script run against temporary state
directories, then parsed (issue 6, items 4 and 5).

A damaged armed marker (empty, garbage, a fifo, a transaction without a folder) must be reported
as such, never fail the facts of the host (which would lock out every command, ``fleetbr
rollback`` included); a state directory this login cannot read must never look like "nothing
armed".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.facts.model import ArmedTransaction, HostFacts
from fleetbr.facts.parse import parse_armed, parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.plan import plan_host
from tests.unit.test_facts_parse import raw, replace_section
from tests.unit.test_plan_support import facts as planner_facts
from tests.unit.test_plan_support import task

TXID = "20261127T181500-3fa9c2"
NOBODY = 65534


def host_facts(state: Path, *, as_nobody: bool = False) -> HostFacts:
    """Run the real facts script with ``state`` as fleetbr's state directory; parse its output."""
    argv = ["sh", "-s"]
    if as_nobody:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    done = subprocess.run(
        argv,
        input=facts_script(state_dir=str(state), managed_files=[]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return parse_facts(done.stdout)


@pytest.fixture
def state() -> Iterator[Path]:
    """An empty state directory, mode 700, under a directory anyone may search."""
    top = Path(tempfile.mkdtemp(prefix="fleetbr-state-"))
    top.chmod(0o755)
    (top / "state").mkdir(mode=0o700)
    try:
        yield top / "state"
    finally:
        shutil.rmtree(top)


def damaged(state: Path) -> ArmedTransaction:
    armed = host_facts(state).armed
    assert armed is not None and armed.problem == "damaged", armed
    assert armed.stale
    return armed


def staged(state: Path, txid: str = TXID) -> Path:
    tx = state / "tx" / txid
    tx.mkdir(parents=True)
    return tx


def test_nothing_armed(state: Path) -> None:
    assert host_facts(state).armed is None
    assert host_facts(state / "missing").armed is None


def test_empty_armed_file_is_damaged(state: Path) -> None:
    """What fleetbr 0.1 left on a full disk: the file created, its content never written."""
    (state / "armed").write_text("")
    assert damaged(state).detail == "it is empty"


@pytest.mark.parametrize(
    "content", ["../../etc\n", "a b\n", "\n", "x\0y\n", "first\nsecond\n", "$(reboot)\n"]
)
def test_garbage_armed_file_is_damaged(state: Path, content: str) -> None:
    """Never an error; a first line that looks like an id names a transaction that is not there."""
    (state / "armed").write_text(content)
    armed = damaged(state)
    if armed.txid:
        assert armed.detail == "the transaction it names has no folder"
        assert armed.txid == content.replace("\0", "").split("\n")[0]


def test_symlink_to_garbage_is_damaged(state: Path) -> None:
    (state / "armed").symlink_to("x\ntxid_valid=yes")
    armed = damaged(state)
    assert armed.txid == "" and armed.detail == "it does not name a valid transaction id"


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_armed_marker_of_another_kind_is_damaged(state: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(state / "armed")  # reading it would block the facts forever
    else:
        (state / "armed").mkdir()
    assert damaged(state).detail == "it is neither a symlink nor a file"


def test_marker_naming_a_transaction_without_a_folder_is_damaged(state: Path) -> None:
    (state / "armed").symlink_to(TXID)
    armed = damaged(state)
    assert armed.txid == TXID and armed.detail == "the transaction it names has no folder"


def test_live_transaction(state: Path) -> None:
    tx = staged(state)
    (state / "armed").symlink_to(TXID)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    timer = subprocess.Popen(["sleep", "60"])
    try:
        stat = Path(f"/proc/{timer.pid}/stat").read_text()
        start = stat[stat.rindex(")") + 2 :].split()[19]
        (tx / "timer.proc").write_text(f"{timer.pid} {start} {boot}\n")
        (tx / "boot_id").write_text(boot + "\n")
        (tx / "deadline").write_text("9999999999\n")
        armed = host_facts(state).armed
    finally:
        timer.kill()
        timer.wait()
    assert armed == ArmedTransaction(TXID, 9999999999, True, True, armed.now if armed else 0)
    assert armed is not None and not armed.stale and not armed.problem


def test_plain_file_marker_of_fleetbr_0_1_is_still_read(state: Path) -> None:
    staged(state)
    (state / "armed").write_text(TXID + "\n")
    armed = host_facts(state).armed
    assert armed is not None and armed.txid == TXID and not armed.problem and armed.stale


def test_torn_deadline_makes_it_stale_not_unparseable(state: Path) -> None:
    (staged(state) / "deadline").write_text("17a\n")
    (state / "armed").symlink_to(TXID)
    armed = host_facts(state).armed
    assert armed is not None and armed.txid == TXID and armed.deadline == 0 and armed.stale


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)


@needs_root
def test_state_dir_of_root_is_unreadable_to_another_user(state: Path) -> None:
    staged(state)
    (state / "armed").symlink_to(TXID)
    armed = host_facts(state, as_nobody=True).armed
    assert armed is not None and armed.problem == "unreadable" and armed.stale
    assert "cannot read fleetbr's state" in armed.describe()
    assert "sudo: true" in armed.describe()


@needs_root
def test_empty_state_dir_of_root_is_unreadable_too(state: Path) -> None:
    """Even with nothing armed: this user cannot know that."""
    armed = host_facts(state, as_nobody=True).armed
    assert armed is not None and armed.problem == "unreadable"


@needs_root
def test_state_dir_behind_an_unsearchable_directory_is_unreadable(state: Path) -> None:
    state.parent.chmod(0o700)
    armed = host_facts(state, as_nobody=True).armed
    assert armed is not None and armed.problem == "unreadable"


@needs_root
def test_missing_state_dir_is_nothing_armed_for_anyone(state: Path) -> None:
    assert host_facts(state.parent / "missing", as_nobody=True).armed is None


# --- the parser alone ---------------------------------------------------------------------------


def with_armed(lines: list[str]) -> HostFacts:
    return parse_facts(replace_section(raw("plain"), "armed", lines))


def test_invalid_txid_from_fleetbr_0_1_script_is_damaged_not_an_error() -> None:
    armed = with_armed(["txid=../../etc", "txid_valid=no"]).armed
    assert armed is not None and armed.problem == "damaged" and armed.txid == ""


def test_outputs_without_the_state_line_still_parse() -> None:
    assert with_armed([]).armed is None
    armed = with_armed(["txid=t1", "txid_valid=yes", "timer=none", "timer_alive=no"]).armed
    assert armed is not None and armed.txid == "t1" and not armed.problem


def test_unknown_damage_word_is_still_damage() -> None:
    armed = with_armed(["state=readable", "txid_valid=no", "damaged=new-kind"]).armed
    assert armed is not None and armed.problem == "damaged"


def test_plan_refuses_over_a_damaged_or_unreadable_marker() -> None:
    for lines, words in (
        (["state=readable", "txid_valid=no", "damaged=empty"], "DAMAGED armed marker"),
        (["state=unreadable"], "cannot read fleetbr's state"),
    ):
        armed = with_armed(lines).armed
        assert armed is not None
        plan = plan_host(task(), planner_facts(armed=armed), min_timeout=20)
        assert plan.refusal is not None and words in plan.refusal, plan.refusal


def test_a_boot_guard_that_could_not_restore_is_reported() -> None:
    """tx_boot.sh.j2 counts the files it could not put back in /run; the facts carry the count
    and the armed transaction describes it (issue 14, item 1)."""
    lines = [f"txid={TXID}", "txid_valid=yes", "deadline=100", "boot_id=old", "timer=none",
             "timer_alive=no"]  # fmt: skip
    armed = parse_armed([*lines, "boot_guard_failed=2"], 50, "new")
    assert armed is not None and armed.boot_guard_failed == 2 and armed.stale
    assert "boot guard could not put back 2 file(s)" in armed.describe()
    plain = parse_armed(lines, 50, "new")
    assert plain is not None and plain.boot_guard_failed == 0
    assert "boot guard" not in plain.describe()
