"""Planning ``fleetbr run --deadman`` and running its staged command step (no SSH)."""

from __future__ import annotations

import base64
import dataclasses
import subprocess
from pathlib import Path

import pytest

from fleetbr.changes.command.change import CommandChange
from fleetbr.changes.command.plan import plan_command
from fleetbr.facts.model import ArmedTransaction
from fleetbr.plan import step_command
from fleetbr.transaction import scripts
from fleetbr.transaction.outcome import script_outcome
from tests.unit.test_plan_support import facts

# the operator's own shell line: it runs exactly as written, with its own quoting
HOSTILE = "printf '%s\\n' '$(reboot)' '`id`' \"it's\"; echo 'a;b' | tr ';' '|'"


def test_one_step_with_the_undo_as_its_inverse_and_gateways_as_probes() -> None:
    plan = plan_command("hv01", facts(), "ip link set eth0 mtu 9000", "ip link set eth0 mtu 1500",
                        timeout=60, min_timeout=13)  # fmt: skip
    assert plan.refusal is None and len(plan.steps) == 1
    assert plan.steps[0].inverse == plan.rollback[0]
    assert plan.steps[0].description == "run: ip link set eth0 mtu 9000"
    assert plan.rollback[0].description == "undo: ip link set eth0 mtu 1500"
    assert plan.probes and all(":" in p or "." in p for p in plan.probes)
    assert step_command(plan.steps[0]).startswith(
        '{ (umask 022 && exec /bin/sh "${TX:?}"/command.sh'
    )


def test_the_operators_command_runs_with_umask_022_not_fleetbrs_077(tmp_path: Path) -> None:
    """Transaction scripts run with umask 077; what the operator's command creates does not."""
    plan = plan_command("hv01", facts(), "x", "y", timeout=60, min_timeout=13)
    (tmp_path / "command.sh").write_text(f"echo made > {tmp_path}/made\n")
    script = f"umask 077; TX={tmp_path}; {step_command(plan.steps[0])}"
    subprocess.run(["sh", "-c", script], check=True)
    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "command.sh.out").stat().st_mode & 0o777 == 0o600


def test_refused_while_armed_or_with_a_too_short_timer() -> None:
    armed = dataclasses.replace(facts(), armed=ArmedTransaction("20261127T181500-3fa9c2", 10,
                                                                True, True, 5))  # fmt: skip
    assert "armed on the host" in str(plan_command("h", armed, "true", "true", timeout=60,
                                                   min_timeout=13).refusal)  # fmt: skip
    assert "too short" in str(plan_command("h", facts(), "true", "true", timeout=5,
                                           min_timeout=13).refusal)  # fmt: skip


def test_staged_command_runs_literally(tmp_path: Path) -> None:
    change = CommandChange(HOSTILE, "true", 60, confirm_check="test -e /")
    files = change.staged_files()
    assert set(files) == {"command.sh", "undo.sh", "check.sh"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    plan = change.plan(facts(), 13)
    line = step_command(plan.steps[0])
    subprocess.run(["sh", "-c", line], env={"TX": str(tmp_path), "PATH": "/usr/bin:/bin"},
                   check=True)  # fmt: skip
    out = (tmp_path / "command.sh.out").read_text()
    assert out.splitlines() == ["$(reboot)", "`id`", "it's", "a|b"]
    assert (tmp_path / "command.sh.rc").read_text() == "0\n"


def test_staged_command_keeps_its_stderr_and_exit_status_apart(tmp_path: Path) -> None:
    change = CommandChange("echo out; echo err >&2; exit 3", "true", 60)
    for name, text in change.staged_files().items():
        (tmp_path / name).write_text(text)
    line = step_command(change.plan(facts(), 13).steps[0])
    done = subprocess.run(["sh", "-c", line], env={"TX": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          check=False)  # fmt: skip
    assert done.returncode != 0, "a failing command fails its step"
    read = {ext: (tmp_path / f"command.sh.{ext}").read_text() for ext in ("out", "err", "rc")}
    assert read == {"out": "out\n", "err": "err\n", "rc": "3\n"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_script_outcome_bounds_the_tail_in_the_message_and_skips_what_never_ran() -> None:
    tail = b"x" * 300 + b"\n\xff bad\x1b[2J\n"
    outcome = script_outcome({"0_rc": "3", "0_err_bytes": "9000", "0_err_tail": _b64(tail)})
    assert list(outcome.data) == ["command"], "the undo never ran: no entry"
    said = outcome.data["command"]
    assert said == {"exit_status": 3, "stderr_tail": tail.decode("utf-8", "replace"),
                    "stderr_bytes": 9000, "stderr_truncated": True}  # fmt: skip
    assert outcome.summary.startswith("the command exited 3: ...xxx")
    assert outcome.summary.endswith("x \ufffd bad\x1b[2J") and len(outcome.summary) < 240
    undo = {"1_rc": "1", "1_err_bytes": "4", "1_err_tail": _b64(b"no\n")}
    both = script_outcome({"0_rc": "0", "0_err_bytes": "0", "0_err_tail": "", **undo})
    assert both.summary == "the command exited 0; the undo exited 1: no"
    assert script_outcome({"0_rc": "", "1_err_tail": "!!"}).data == {}


def test_long_commands_get_a_short_one_line_description() -> None:
    plan = plan_command("h", facts(), "echo x\n" * 40, "true", timeout=60, min_timeout=13)
    description = plan.steps[0].description
    assert "\n" not in description and len(description) <= 65


def test_a_command_plan_can_be_staged() -> None:
    """Its snapshot names no touched object (fleetbr cannot know what a command changes)."""
    change = CommandChange("true", "true", 60)
    plan = change.plan(facts(), 13)
    staged = scripts.staged_scripts("20261127T181500-3fa9c2", plan, change.staged_files())
    assert {"command.sh", "undo.sh", "facts.sh"} <= set(staged.files)


def test_a_failed_undo_is_never_run_a_second_time_by_the_rollback() -> None:
    """The rollback runs a failed step again after the others; an operator's undo need not be
    idempotent, so it counts as failed at once (tx_rollback.sh.j2, scripts.AGAIN_KINDS)."""
    change = CommandChange("true", "false", 60)
    plan = change.plan(facts(), 13)
    rollback = scripts.staged_scripts("20261127T181500-3fa9c2", plan).files["rollback.sh"]
    assert '\nfbr_undo_1 2>>"$STEP_ERR" || { failed=$((failed + 1));' in rollback
    assert 'again="$again 1"' not in rollback


def test_the_command_plan_stages_a_valid_snapshot_script() -> None:
    """A command plan names no bridge and no NIC: its scope must not hold empty device names
    (the staged facts script refused ``dev `` and every ``run --deadman`` failed)."""
    from fleetbr.plan.scope import touched_by
    from fleetbr.transaction import scripts

    plan = plan_command("hv01", facts(), "true", "true", timeout=60, min_timeout=13)
    assert "" not in touched_by(plan).devs
    staged = scripts.staged_scripts("20261127T181500-3fa9c2", plan)
    assert "section touched" not in staged.files["facts.sh"].replace("@@fleetbr-section ", "")


def run_undo(tmp_path: Path) -> int:
    """Run the plan's undo step (the rollback's, or the boot guard's) as the host would."""
    plan = plan_command("h", facts(), "true", "true", timeout=60, min_timeout=13)
    line = step_command(plan.rollback[0])
    done = subprocess.run(["sh", "-c", line], env={"TX": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          check=False)  # fmt: skip
    return done.returncode


@pytest.mark.parametrize("exit_status", [0, 3])
def test_the_undo_runs_once_and_a_second_rollback_only_reports_it(
    tmp_path: Path, exit_status: int
) -> None:
    """The timer's rollback, then the boot guard after a power cut: the undo runs once."""
    (tmp_path / "undo.sh").write_text(f"echo ran >> {tmp_path}/count\nexit {exit_status}\n")
    expected = 0 if exit_status == 0 else 1
    assert [run_undo(tmp_path), run_undo(tmp_path)] == [expected, expected]
    assert (tmp_path / "count").read_text() == "ran\n"


def test_an_undo_that_started_and_never_finished_is_not_run_again(tmp_path: Path) -> None:
    (tmp_path / "undo.sh").write_text(f"echo ran >> {tmp_path}/count\n")
    (tmp_path / "undo.sh.ran").symlink_to("started")  # the power went inside it
    assert run_undo(tmp_path) != 0
    assert not (tmp_path / "count").exists()
    assert "did not finish" in (tmp_path / "undo.sh.err").read_text()


def test_the_boot_guard_runs_the_undo() -> None:
    plan = plan_command("h", facts(), "true", "true", timeout=60, min_timeout=13)
    assert scripts.boot_steps(plan) == list(plan.rollback)
    boot = scripts.staged_scripts("20261127T181500-3fa9c2", plan).files["boot.sh"]
    assert step_command(plan.rollback[0]) in boot
