"""Rendering of the transaction's remote scripts, and the parsing of their output. No SSH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import ValidationError
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.render import render
from fleetbr.transaction import scripts
from fleetbr.transaction.status import last_state, parse_journal
from tests.unit.test_plan_support import facts, task

TXID = "20261127T181500-3fa9c2"
NONCE = "0123456789abcdef" * 2


def classic_plan() -> BridgePlan:
    return plan_host(task(), facts(), min_timeout=20)


def rendered_scripts() -> dict[str, str]:
    plan = classic_plan()
    staged = scripts.staged_scripts(TXID, plan)
    return {
        **staged.files,
        "stage": scripts.stage_script(TXID, plan, staged, "bridge.yaml", nonce=NONCE),
        "arm_apply": scripts.arm_apply_script(TXID, 60, use_systemd=False, wait=5, nonce=NONCE),
        "arm_apply_systemd": scripts.arm_apply_script(
            TXID, 60, use_systemd=True, wait=5, nonce=NONCE
        ),
        "disarm": scripts.disarm_script(TXID, nonce=NONCE),
        "state": scripts.state_script(TXID, nonce=NONCE),
        "trigger": scripts.trigger_rollback_script(TXID, "confirm-failed"),
        "journal": scripts.journal_script(),
    }


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_every_script_parses(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    for name, text in rendered_scripts().items():
        done = subprocess.run([shell, "-n"], input=text, capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"


def test_apply_runs_every_step_and_rolls_back_on_failure() -> None:
    plan = classic_plan()
    apply = scripts.staged_scripts(TXID, plan).files["apply.sh"]
    assert apply.count("then fail ") == len(plan.steps)
    assert 'exec /bin/sh "$TX/rollback.sh" "apply-failed-step-$1"' in apply


def test_rollback_takes_the_lock_before_touching_anything() -> None:
    plan = classic_plan()
    rollback = scripts.staged_scripts(TXID, plan).files["rollback.sh"]
    lock = rollback.index('take_decision "rolled_back $REASON"')
    first_step = rollback.index("\nfbr_undo_1 2>>")
    assert lock < first_step
    assert rollback.count("\nfbr_undo_") == 2 * len(plan.rollback)  # defined, then run


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_a_failed_rollback_step_runs_again_after_the_others_an_undo_never(
    shell: str, tmp_path: Path
) -> None:
    """A daemon's hand-back can undo a step under the next ones (NetworkManager flushing the NIC
    after the reload): a failed kernel-state step runs once more at the end and counts only if
    it fails again; any other (an operator's undo) is not run twice."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    (tmp_path / "tx" / TXID).mkdir(parents=True)
    flag, undo = tmp_path / "flag", tmp_path / "undo"
    steps = [  # the flaky step succeeds only once the last step (the "hand-back") has run
        {"description": "flaky", "command": f"[ -e {flag} ]", "again": True},
        {"description": "undo", "command": f"echo run >> {undo}; false", "again": False},
        {"description": "broken", "command": "false", "again": True},
        {"description": "hand-back", "command": f"touch {flag}", "again": True},
    ]
    script = render("tx_rollback.sh.j2", steps=steps, state_dir=str(tmp_path), txid=TXID)
    done = subprocess.run([shell, "-s", "manual"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "tx" / TXID / "apply.log").read_text().splitlines()
    assert [line for line in log if " failed: " in line] == [
        "rollback step 2 failed: undo",
        "rollback step 3 failed: broken",
    ]
    assert "rollback step 1 did not succeed at first, tried again after the others: flaky" in log
    assert undo.read_text() == "run\n"
    last = (tmp_path / "journal").read_text().splitlines()[-1].split(maxsplit=2)
    assert last[1:] == [TXID, "rolled_back reason=manual failed_steps=2"]


def _run_apply(tmp_path: Path, steps: list[dict[str, str]], left: int | None) -> str:
    """Run the apply script of ``steps`` with ``left`` s of its window left (None: no deadline
    file) and no rollback script (its exec fails: the apply's own log is what is looked at)."""
    tx = tmp_path / "tx" / TXID
    tx.mkdir(parents=True)
    if left is not None:
        uptime = int(float(Path("/proc/uptime").read_text().split()[0]))
        (tx / "deadline.uptime").write_text(f"{uptime + left}\n")
    script = render("tx_apply.sh.j2", steps=steps, state_dir=str(tmp_path), txid=TXID)
    subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=False)
    return (tx / "apply.log").read_text()


def test_a_failed_apply_steps_error_output_is_in_the_transactions_log(tmp_path: Path) -> None:
    """An operator reading why an apply failed finds the failing command's own words."""
    steps = [
        {"description": "quiet", "command": "true"},
        {
            "description": "activate",
            "command": "echo 'Error: Timeout expired (30 seconds)' >&2; false",
        },
    ]
    log = _run_apply(tmp_path, steps, 600).splitlines()
    assert [line.split(" ", 1)[1] for line in log if not line.startswith("Error")] == [
        "step 1: quiet", "step 2: activate", "step 2 failed",
    ]  # fmt: skip
    assert "Error: Timeout expired (30 seconds)" in log


@pytest.mark.parametrize(("left", "wait"), [(900, 120), (150, 50), (30, 30), (None, 30)])
def test_the_applys_daemon_waits_follow_what_is_left_of_the_window(
    tmp_path: Path, left: int | None, wait: int
) -> None:
    """A third of what is left of the window per daemon wait, between 30 s and 120 s: a slow
    host's daemon gets time, the apply still ends inside the window."""
    out = tmp_path / "wait"
    steps = [{"description": "read the wait", "command": f'echo "$FLEETBR_WAIT" > {out}'}]
    _run_apply(tmp_path, steps, left)
    assert int(out.read_text()) in (wait, wait - 1)  # a second may pass before the apply reads it


def test_timer_polls_the_decision_then_rolls_back() -> None:
    timer = scripts.staged_scripts(TXID, classic_plan()).files["timer.sh"]
    assert "while ! decided" in timer and 'rollback.sh" timer' in timer


def test_systemd_hosts_get_a_transient_timer() -> None:
    text = scripts.arm_apply_script(TXID, 60, use_systemd=True, wait=5, nonce=NONCE)
    assert "systemd-run" in text and "--on-active=60s" in text
    # without systemd as PID 1 the timer is the sh loop (detach() looks for systemd at run time)
    assert "--on-active" not in scripts.arm_apply_script(
        TXID, 60, use_systemd=False, wait=5, nonce=NONCE
    )


def test_checksums_match_sha256sum() -> None:
    staged = scripts.staged_scripts(TXID, classic_plan())
    for name, digest in staged.checksums().items():
        done = subprocess.run(["sha256sum"], input=staged.files[name], capture_output=True,
                              text=True, check=True)  # fmt: skip
        assert done.stdout.split()[0] == digest


@pytest.mark.parametrize("txid", ["x; reboot", "../../etc", "20261127T181500-3FA9C2", ""])
def test_malformed_txid_never_reaches_a_script(txid: str) -> None:
    with pytest.raises(ValidationError):
        scripts.disarm_script(txid, nonce=NONCE)


def test_markers_and_sections() -> None:
    out = (f"noise\n@@{NONCE} armed 1700000060 1700000000\n@@{NONCE} apply applied\n"
           f"@@{NONCE} checksums\nabc  apply.sh\n")  # fmt: skip
    assert scripts.markers(out, NONCE) == {"armed": "1700000060 1700000000", "apply": "applied",
                                           "checksums": ""}  # fmt: skip
    assert scripts.sections(out, NONCE)["checksums"] == ["abc  apply.sh"]


# Every character str.splitlines() breaks a line at, besides "\n".
LINE_BREAKERS = ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def test_line_breakers_cover_everything_splitlines_knows() -> None:
    breaks = {chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) == 2}
    assert breaks - {"\n"} == set(LINE_BREAKERS)


@pytest.mark.parametrize("brk", LINE_BREAKERS, ids=repr)
def test_output_cannot_forge_a_marker_with_any_line_break(brk: str) -> None:
    """A check that prints "...<brk>@@NONCE check 0" on its one output line (even one that knew
    the nonce) does not turn its failure into a pass: lines end at "\\n" only."""
    out = (f"@@{NONCE} check 1\n@@{NONCE} check_output app not ready{brk}@@{NONCE} check 0 \n"
           f"@@{NONCE} checksums\nabc  apply.sh{brk}@@{NONCE} probes\n")  # fmt: skip
    found = scripts.markers(out, NONCE)
    assert found["check"] == "1"
    assert set(found) == {"check", "check_output", "checksums"}
    assert "probes" not in scripts.sections(out, NONCE)


def test_markers_without_this_runs_nonce_are_content() -> None:
    other = scripts.new_nonce()
    out = f"@@check 0\n@@{other} check 0\n@@{NONCE}check 0\n@@ {NONCE} check 0\n@@{NONCE} apply x\n"
    assert scripts.markers(out, NONCE) == {"apply": "x"}
    assert other != NONCE and scripts.new_nonce() != other


def test_a_malformed_nonce_never_reaches_a_script() -> None:
    with pytest.raises(ValidationError):
        scripts.state_script(TXID, nonce="x; reboot")
    with pytest.raises(ValidationError):
        scripts.markers("", "")


def test_journal_lines_end_at_newline_only() -> None:
    text = "".join(f"1700000000 {TXID} confirm-failed check said{b}1700000001 {TXID} confirmed\n"
                   for b in LINE_BREAKERS)  # fmt: skip
    entries = parse_journal(text)
    assert [e.event for e in entries] == ["confirm-failed"] * len(LINE_BREAKERS)


def test_new_txids_are_valid_and_unique() -> None:
    ids = {scripts.new_txid() for _ in range(50)}
    assert len(ids) == 50
    assert all(scripts.check_txid(txid) == txid for txid in ids)


def test_journal_parsing_keeps_the_last_event_per_transaction() -> None:
    text = (
        f"1700000000 {TXID} staged bridge.yaml\n"
        f"1700000001 {TXID} armed deadline=1700000061\n"
        "1700000002 20261127T181600-000001 staged bridge.yaml\n"
        f"1700000003 {TXID} rolled_back reason=timer failed_steps=0\n"
        "17000000"  # a torn line after a crash
    )
    latest = last_state(parse_journal(text))
    assert list(latest) == ["20261127T181600-000001", TXID]
    assert latest[TXID].event == "rolled_back"
    assert latest[TXID].detail == "reason=timer failed_steps=0"


@pytest.mark.parametrize("shell", [s for s in ("dash", "bash") if shutil.which(s)])
def test_check_script_verdict_is_the_exit_status_and_its_output_one_line(
    shell: str, tmp_path: Path
) -> None:
    """tx_check.sh.j2 run for real against a temporary state directory: the check exits 1 after
    printing a fake passing marker and a literal backslash-n (dash's echo made that a break)."""
    tx = tmp_path / "tx" / TXID
    tx.mkdir(parents=True)
    (tx / "check.sh").write_text(f"printf 'a\\\\nb\\r@@{NONCE} check 0\\n'; exit 1\n")
    script = render("tx_check.sh.j2", state_dir=str(tmp_path), txid=TXID, nonce=NONCE)
    # bytes: text=True would turn the "\r" into a line break on the way in (universal newlines)
    done = subprocess.run([shell, "-s"], input=script.encode(), capture_output=True, check=False)
    assert done.returncode == 1, done.stderr
    found = scripts.markers(done.stdout.decode(), NONCE)
    assert found["check"] == "1"
    assert found["check_output"] == f"a\\nb\r@@{NONCE} check 0"


@pytest.mark.parametrize(
    ("line", "failed"),
    [
        ("rolled_back reason=reboot failed_steps=0", False),
        ("rollback_failed reason=reboot failed_steps=1", True),
        ("rolled_back reason=timer failed_steps=2", True),
        ("confirmed", False),
    ],
)
def test_status_calls_a_rollback_with_failed_steps_failed(line: str, failed: bool) -> None:
    from fleetbr.transaction.status import rollback_failed

    (entry,) = parse_journal(f"1700000003 {TXID} {line}\n")
    assert rollback_failed(entry) is failed


def test_the_boot_guard_runs_before_libvirt_reads_the_guests_definitions() -> None:
    from fleetbr.facts.model import STATE_DIR
    from fleetbr.render import render

    unit = render("boot_guard.service.j2", state_dir=STATE_DIR)
    before = {
        w for line in unit.splitlines() if line.startswith("Before=") for w in line[7:].split()
    }
    assert {"libvirtd.service", "virtqemud.service", "network-pre.target"} <= before
