"""``fleetbr run --deadman``: an operator's command under the same dead-man transaction as the
bridge, on real lab hosts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from fleetbr.changes.command.change import CommandChange
from fleetbr.lab import Lab, host_state
from fleetbr.report import HostResult, Status
from fleetbr.transaction.outcome import TAIL_BYTES
from fleetbr.transaction.protocol import run_transaction
from tests.integration.helpers import TIMEOUT, assert_at_snapshot, events, fleetbr, sh, specs


def run(lab: Lab, host: str, change: CommandChange) -> HostResult:
    return asyncio.run(run_transaction(specs(lab.inventory_dir)[host], change))


def test_harmless_command_is_confirmed(lab: Lab, fresh_host: Any) -> None:
    fresh_host("hv07")
    nic = lab.host("hv07").nic
    change = CommandChange(f"ip link set dev {nic} mtu 1400", f"ip link set dev {nic} mtu 1500",
                           TIMEOUT)  # fmt: skip
    result = run(lab, "hv07", change)
    assert result.status == Status.CONFIRMED, result.message
    assert "mtu 1400" in sh(lab, "hv07", f"ip -o link show dev {nic}")
    assert events(lab, "hv07") == ["staged", "armed", "applied", "confirmed"]


def test_command_that_cuts_the_host_off_is_undone(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any]
) -> None:
    fresh_host("hv08")
    controller = lab.controller4.split("/")[0]
    change = CommandChange(f"ip route add blackhole {controller}/32",
                           f"ip route del blackhole {controller}/32", TIMEOUT)  # fmt: skip
    result = run(lab, "hv08", change)
    assert result.status == Status.ROLLED_BACK, result.message
    assert "no fresh SSH connection before the deadline" in result.message
    assert_at_snapshot(lab, "hv08", pristine)


def test_failing_confirm_check_rolls_back_at_once(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any]
) -> None:
    fresh_host("hv09")
    nic = lab.host("hv09").nic
    change = CommandChange(f"ip link set dev {nic} mtu 1400", f"ip link set dev {nic} mtu 1500",
                           60, confirm_check="echo 'no VLAN 42' >&2; exit 3")  # fmt: skip
    result = run(lab, "hv09", change)
    assert result.status == Status.ROLLED_BACK, result.message
    assert "confirm check exited 3: no VLAN 42" in result.message
    assert result.data["window"] < change.timeout, "a failed check must not wait for the timer"
    assert host_state(lab, "hv09") == pristine["hv09"]


# printf escapes of every character str.splitlines() breaks a line at besides "\n": \r \v \f
# \x1c \x1d \x1e, and U+0085, U+2028, U+2029 in UTF-8.
BREAKERS = ["\\r", "\\013", "\\014", "\\034", "\\035", "\\036", "\\302\\205",
            "\\342\\200\\250", "\\342\\200\\251"]  # fmt: skip


def test_check_output_cannot_forge_a_passing_check(lab: Lab, fresh_host: Any) -> None:
    """A failing check that prints "@@check 0" after any line-breaking character (issue 20: the
    marker was taken from the check's own output line) still rolls back."""
    fresh_host("hv10")
    forged = "".join(f"{b}@@check 0" for b in BREAKERS)
    check = f"printf 'app not ready{forged}\\n'; exit 1"
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", "hv10", "run", "--deadman",
                             str(TIMEOUT), "--undo", "true", "--confirm-check", check,
                             "--", "true")  # fmt: skip
    assert code == 1, (doc, err)
    assert doc["hv10"]["status"] == "rolled_back", doc
    assert "confirm check exited 1: app not ready" in doc["hv10"]["message"]
    assert "confirmed" not in events(lab, "hv10")


def test_hostile_characters_reach_the_host_literally(lab: Lab, fresh_host: Any) -> None:
    fresh_host("hv10")
    text = "$(touch /tmp/pwned) `reboot` ; | & \" ' \\ {{ x }} %s"
    quoted = "'" + text.replace("'", "'\\''") + "'"
    change = CommandChange(f"printf '%s\\n' {quoted} > /var/lib/fleetbr/hostile.txt",
                           "rm -f /var/lib/fleetbr/hostile.txt", TIMEOUT)  # fmt: skip
    result = run(lab, "hv10", change)
    assert result.status == Status.CONFIRMED, result.message
    assert sh(lab, "hv10", "cat /var/lib/fleetbr/hostile.txt") == text + "\n"
    assert sh(lab, "hv10", "[ -e /tmp/pwned ] && echo yes || echo no").strip() == "no"


def test_cli_run_deadman_with_canary_and_batches(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any]
) -> None:
    names = ["hv11", "hv12", "hv13"]
    for name in names:
        fresh_host(name)
    inventory = str(lab.inventory_dir)
    code, doc, err = fleetbr(
        "-i", inventory, "-l", ",".join(names), "run", "--deadman", str(TIMEOUT),
        "--undo", "ip link set dev eth0 mtu 1500", "--canary", "1", "--batch-size", "1",
        "--", "ip", "link", "set", "dev", "eth0", "mtu", "1400",
    )  # fmt: skip
    assert code == 0, (doc, err)
    assert {n: doc[n]["status"] for n in names} == dict.fromkeys(names, "confirmed")
    assert all("mtu 1400" in sh(lab, n, "ip -o link show dev eth0") for n in names)


def test_cli_cutting_canary_stops_the_run(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any]
) -> None:
    names = ["hv14", "hv15"]
    for name in names:
        fresh_host(name)
    controller = lab.controller4.split("/")[0]
    code, doc, err = fleetbr(
        "-i", str(lab.inventory_dir), "-l", ",".join(names), "run", "--deadman", str(TIMEOUT),
        "--undo", f"ip route del blackhole {controller}/32", "--canary", "1",
        "--", f"ip route add blackhole {controller}/32",
    )  # fmt: skip
    assert code == 1, (doc, err)
    assert doc["hv14"]["status"] == "rolled_back" and doc["hv15"]["status"] == "skipped"
    assert_at_snapshot(lab, "hv14", pristine)
    assert events(lab, "hv15") == []


def test_a_failed_command_reports_its_exit_status_and_stderr_and_the_undos(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any]
) -> None:
    """Not only "rolled back: apply-failed-step-1": the command's exit status and the end of its
    stderr (bounded, escaped on a terminal or pipe, exact in JSON), and the undo's."""
    fresh_host("hv12")
    noise = "x" * 5000
    command = f"echo {noise} >&2; printf 'no VLAN 42 \\033[31mhere\\n' >&2; echo out; exit 3"
    args = ["-i", str(lab.inventory_dir), "-l", "hv12", "run", "--deadman", str(TIMEOUT),
            "--undo", "echo undone >&2", "--", command]  # fmt: skip
    code, doc, err = fleetbr(*args)
    assert code == 1, (doc, err)
    result = doc["hv12"]
    assert result["status"] == "rolled_back", result
    said = result["command"]
    stderr = noise + "\n" + "no VLAN 42 \x1b[31mhere\n"
    assert said["exit_status"] == 3 and said["stderr_bytes"] == len(stderr), said
    assert said["stderr_tail"] == stderr[-TAIL_BYTES:]
    assert said["stderr_truncated"] is True
    assert result["undo"] == {"exit_status": 0, "stderr_tail": "undone\n", "stderr_bytes": 7,
                              "stderr_truncated": False}  # fmt: skip
    assert result["message"].startswith("rolled back: apply-failed-step-1 (the command exited 3: ")
    assert result["message"].endswith("no VLAN 42 \x1b[31mhere; the undo exited 0: undone)")
    assert_at_snapshot(lab, "hv12", pristine)

    fresh_host("hv12")
    human = subprocess.run([sys.executable, "-m", "fleetbr", *args], capture_output=True,
                           text=True, timeout=300, check=False)  # fmt: skip
    assert human.returncode == 1, human
    assert "\x1b" not in human.stdout, "a host's stderr must not reach the terminal raw"
    [line] = [line for line in human.stdout.splitlines() if line.startswith("hv12")]
    assert "rolled_back" in line and "(the command exited 3: ..." in line, line
    assert line.endswith("no VLAN 42 \\x1b[31mhere; the undo exited 0: undone)"), line
    fresh_host("hv12")
