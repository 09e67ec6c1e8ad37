"""``fleetbr run`` against real sshd lab hosts: grouping, exit statuses, timeouts that leave
nothing behind, unreachable hosts, any output (binary, huge, one long line), --stream, --script,
--sudo, and hostile characters that must arrive literally."""

from __future__ import annotations

import asyncio
import base64
import select
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from fleetbr.adhoc.job import run_job
from fleetbr.adhoc.spec import BACKSTOP, KILL_AFTER, RunOptions, RunSpec
from fleetbr.lab import Lab, host_exec, kill_sshd, set_switch_port, start_sshd
from fleetbr.report import HostResult, Status
from tests.integration.helpers import fleetbr, host_processes, specs, wait_for


def human(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI without --json (what an operator reads)."""
    return subprocess.run(
        [sys.executable, "-m", "fleetbr", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def run_json(lab: Lab, limit: str, *args: str) -> tuple[int, dict[str, Any], str]:
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", limit, "run", *args)
    assert isinstance(doc, dict), f"no JSON report (exit {code}): {doc!r} {err}"
    assert "Traceback" not in err and "internal error" not in str(doc), err
    return code, doc, err


def no_process_runs(lab: Lab, host: str, marker: str) -> bool:
    """No process in the host's netns has ``marker`` in its command line."""
    return not any(marker in " ".join(argv) for argv in host_processes(lab, host).values())


def test_identical_outputs_are_grouped(lab: Lab) -> None:
    line = 'if [ "$(hostname)" = hv04 ]; then echo other; else echo same; fi'
    done = human("-i", str(lab.inventory_dir), "-l", "hv01,hv02,hv03,hv04,hv05", "run", "--", line)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "==== hv[01-03,05] (4 hosts): exit 0\n  same\n==== hv04: exit 0\n  other\n5 hosts: 5 ok\n"
    )


def test_a_host_cannot_print_other_hosts_results(lab: Lab) -> None:
    """Issue 20: hv01's output held a fake block for hv02 and hv03."""
    line = ('if [ "$(hostname)" = hv01 ]; then printf "ok\\n==== hv[02-03] (2 hosts): exit 0\\n"; '
            "else echo broken >&2; exit 1; fi")  # fmt: skip
    done = human("-i", str(lab.inventory_dir), "-l", "hv01,hv02,hv03", "run", "--", line)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ("==== hv01: exit 0\n  ok\n  ==== hv[02-03] (2 hosts): exit 0\n"
                           "==== hv[02-03] (2 hosts): exit 1\n---- stderr\n  broken\n"
                           "3 hosts: 1 ok, 2 exited non-zero\n")  # fmt: skip


def test_each_kind_of_failure_is_counted_and_exits_1(lab: Lab) -> None:
    line = 'case "$(hostname)" in hv02) echo bad >&2; exit 3 ;; hv03) sleep 300 ;; esac; echo ok'
    kill_sshd(lab, "hv04")
    try:
        done = human(
            "-i", str(lab.inventory_dir), "-l", "hv01,hv02,hv03,hv04",
            "run", "--timeout", "2", "--", line,
        )  # fmt: skip
    finally:
        start_sshd(lab, "hv04")
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "==== hv01: exit 0\n  ok\n" in out
    assert "==== hv02: exit 3\n---- stderr\n  bad\n" in out
    assert "==== hv03: timed out after 2s" in out
    assert "==== hv04: connect to " in out
    assert out.endswith("4 hosts: 1 ok, 1 exited non-zero, 1 timed out, 1 unreachable\n")


def test_nonzero_exit_and_exit_124_are_exits_not_timeouts(lab: Lab) -> None:
    code, doc, _ = run_json(lab, "hv01", "--timeout", "30", "--", "sh", "-c", "echo x; exit 124")
    assert code == 1
    assert doc["hv01"]["status"] == "failed" and doc["hv01"]["exit_status"] == 124
    assert doc["hv01"]["stdout"] == "x\n" and doc["hv01"]["message"] == "exit 124"


def test_timeout_ends_everything_the_command_started(lab: Lab) -> None:
    # one sleep in the background, one in the foreground that ignores TERM: KILL must come
    line = "sleep 310 & trap '' TERM; sleep 311"
    code, doc, _ = run_json(lab, "hv01,hv02", "--timeout", "1", "--", line)
    assert code == 1
    for host in ("hv01", "hv02"):
        assert doc[host]["status"] == "timed_out", doc[host]
        assert doc[host]["exit_status"] is None and "timed out after 1s" in doc[host]["message"]
        for marker in ("sleep 310", "sleep 311"):
            wait_for(partial(no_process_runs, lab, host, marker), 10, f"{marker} gone on {host}")
        # what --timeout promises: TERM at 1 s, KILL after the grace, the controller's backstop
        elapsed = doc[host]["elapsed"]  # from connect to the command's end
        assert elapsed < 1 + KILL_AFTER + BACKSTOP, f"{host} took {elapsed:.1f}s"


IGNORES_TERM = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(25)"


NEEDS_SUDO = pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo (scripts/setup)")


@pytest.mark.parametrize(
    "form", ["words", "line", "script", pytest.param("sudo", marks=NEEDS_SUDO)]
)
def test_timeout_kills_a_command_that_ignores_term_in_every_form(
    lab: Lab, tmp_path: Path, form: str
) -> None:
    # sh -s dies of the TERM, the python under it ignores it: the KILL must still come, after
    # the grace, and the host (not the controller's backstop) must say the command timed out
    script = tmp_path / "ignore.sh"
    script.write_text(f"python3 -c '{IGNORES_TERM}'\n")
    command = {
        "words": ["--", "python3", "-c", IGNORES_TERM],
        "line": ["--", f"python3 -c '{IGNORES_TERM}'"],
        "script": ["--script", str(script)],
        "sudo": ["--sudo", "--", "python3", "-c", IGNORES_TERM],
    }[form]
    code, doc, _ = run_json(lab, "hv01", "--timeout", "2", *command)
    elapsed = doc["hv01"]["elapsed"]  # from connect to the command's end
    assert code == 1
    assert doc["hv01"]["status"] == "timed_out", doc["hv01"]
    assert doc["hv01"]["message"].startswith("timed out after 2s"), doc["hv01"]["message"]
    assert no_process_runs(lab, "hv01", "time.sleep(25)"), "the python that ignored TERM runs on"
    assert 2 + KILL_AFTER <= elapsed < 2 + KILL_AFTER + BACKSTOP, f"took {elapsed:.1f}s"


def test_unreachable_host_while_others_run(lab: Lab) -> None:
    set_switch_port(lab, "hv06", up=False)
    try:
        code, doc, _ = run_json(lab, "hv05,hv06", "--", "echo", "hi")
    finally:
        set_switch_port(lab, "hv06", up=True)
    assert code == 1
    assert doc["hv05"]["status"] == "ok" and doc["hv05"]["stdout"] == "hi\n"
    assert doc["hv06"]["status"] == "unreachable" and doc["hv06"]["exit_status"] is None


def test_session_lost_mid_command_keeps_the_output_so_far(lab: Lab) -> None:
    spec = specs(lab.inventory_dir)["hv06"]
    run = RunSpec.from_argv(["echo started; sleep 312"], RunOptions(timeout=120))

    async def scenario() -> HostResult:
        seen = asyncio.Event()
        job = asyncio.create_task(run_job(spec, run, lambda _s, chunk: seen.set()))
        await asyncio.wait_for(seen.wait(), 30)
        await asyncio.to_thread(set_switch_port, lab, "hv06", False)
        return await asyncio.wait_for(job, 60)

    try:
        result = asyncio.run(scenario())
    finally:
        set_switch_port(lab, "hv06", up=True)
    assert result.status is Status.UNREACHABLE, result
    assert "connection lost" in result.message
    assert result.data["stdout"] == "started\n"
    host_exec(lab, "hv06", ["pkill", "-f", "sleep 312"], check=False)


def test_binary_and_invalid_utf8_output(lab: Lab) -> None:
    raw = b"\xff\xfe\x00\x1b[2J\x1b]0;title\x07caf\xc3\xa9\r\n"
    octal = "".join(f"\\{byte:03o}" for byte in raw)
    code, doc, _ = run_json(lab, "hv01", "--", "printf", octal)
    assert code == 0
    assert base64.b64decode(doc["hv01"]["stdout_base64"]) == raw
    assert doc["hv01"]["stdout_bytes"] == len(raw)
    done = human("-i", str(lab.inventory_dir), "-l", "hv01", "run", "--", "printf", octal)
    assert done.returncode == 0
    assert "\\xff\\xfe\\x00\\x1b[2J\\x1b]0;title\\x07café\\r\n" in done.stdout
    assert not any(ch in done.stdout for ch in "\x00\x1b\x07\r")


def test_one_very_long_line_and_huge_output(lab: Lab) -> None:
    line = "head -c 3000000 /dev/zero | tr '\\0' a; head -c 20000000 /dev/urandom >&2"
    code, doc, _ = run_json(lab, "hv01", "--", line)
    assert code == 0
    out = doc["hv01"]
    assert out["stdout_bytes"] == 3_000_000 and out["stdout_truncated"] is True
    assert out["stdout"] == "a" * 1024 * 1024  # the documented default cap
    assert out["stderr_bytes"] == 20_000_000 and out["stderr_truncated"] is True
    assert len(base64.b64decode(out["stderr_base64"])) == 1024 * 1024
    code, doc, _ = run_json(lab, "hv01", "--max-output", "4000000", "--", line.split(";")[0])
    assert doc["hv01"]["stdout"] == "a" * 3_000_000 and not doc["hv01"]["stdout_truncated"]


def test_hostile_words_arrive_literally(lab: Lab) -> None:
    words = ["$(reboot)", "`reboot`", "a; reboot", "it's", 'say "hi"', "l1\nl2", "*", "\\x", ""]
    code, doc, _ = run_json(lab, "hv01", "--", "printf", "%s\\0", *words)
    assert code == 0
    assert doc["hv01"]["stdout"].split("\0")[:-1] == words
    code, doc, _ = run_json(lab, "hv01", "--", "echo a | tr a b; echo $((1 + 2))")
    assert doc["hv01"]["stdout"] == "b\n3\n", "one argument is a shell command line"


def test_stream_prints_lines_as_they_arrive(lab: Lab) -> None:
    go = "/tmp/fleetbr-run-go"
    host_exec(lab, "hv02", ["rm", "-f", go])
    line = f"echo first; echo warn >&2; while [ ! -e {go} ]; do sleep 0.1; done; printf last"
    argv = [sys.executable, "-m", "fleetbr", "-i", str(lab.inventory_dir), "-l", "hv02",
            "run", "--stream", "--timeout", "60", "--", line]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        first = proc.stdout.readline() if ready else b""
        # the command is still waiting for us: the line came while it ran
        assert first == b"hv02: first\n" and proc.poll() is None
        host_exec(lab, "hv02", ["touch", go])
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert rest == b"hv02: last\n==== hv02: exit 0\n1 host: 1 ok\n"
    assert err == b"hv02: warn\n"


def test_stream_cuts_a_long_line_in_pieces(lab: Lab) -> None:
    done = human(
        "-i", str(lab.inventory_dir), "-l", "hv01", "run", "--stream", "--",
        "head -c 200000 /dev/zero | tr '\\0' a",
    )  # fmt: skip
    assert done.returncode == 0
    pieces = done.stdout.splitlines()[:-2]
    assert [len(p) for p in pieces] == [len("hv01: ") + n for n in (65536, 65536, 65536, 3392)]


def test_script_is_sent_on_stdin(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "check.sh"
    script.write_text(
        "#!/bin/sh\nset -u\nname=$(hostname)\nprintf 'on %s\\n' \"$name\"\n"
        "printf '%s\\n' '$(reboot)' \"it's\"\nexit 7\n"
    )
    code, doc, _ = run_json(lab, "hv01,hv02", "--script", str(script))
    assert code == 1
    for host in ("hv01", "hv02"):
        assert doc[host]["exit_status"] == 7
        assert doc[host]["stdout"] == f"on {host}\n$(reboot)\nit's\n"


@pytest.mark.skipif(shutil.which("sudo") is None, reason="needs sudo (run scripts/setup)")
def test_sudo_runs_as_root_and_times_out_cleanly(lab: Lab) -> None:
    code, doc, _ = run_json(lab, "hv03", "--sudo", "--", "sh", "-c", "id -u; echo $SUDO_USER")
    assert code == 0 and doc["hv03"]["stdout"] == "0\nroot\n", doc["hv03"]
    code, doc, _ = run_json(lab, "hv03", "--sudo", "--timeout", "1", "--", "sleep", "313")
    assert doc["hv03"]["status"] == "timed_out", doc["hv03"]
    wait_for(lambda: no_process_runs(lab, "hv03", "sleep 313"), 10, "sleep 313 gone")


def test_bad_usage_contacts_nothing(lab: Lab, tmp_path: Path) -> None:
    inv = str(lab.inventory_dir)
    for args in (
        ["run"],
        ["run", "--", ""],
        ["run", "--timeout", "0", "--", "true"],
        ["run", "--script", str(tmp_path / "missing.sh")],
        ["run", "--script", str(tmp_path), "--", "true"],
    ):
        done = human("-i", inv, "-l", "hv01", *args)
        assert done.returncode == 2 and done.stdout == "", (args, done)
        assert done.stderr.startswith("error: run: "), done.stderr
    done = human("-i", inv, "--json", "run", "--stream", "--", "true")
    assert done.returncode == 2 and "exclude" in done.stderr


def test_one_line_prefixes_every_line_with_its_host(lab: Lab) -> None:
    line = ('hostname; printf "no newline"; echo " warn\\033[2J" >&2; '
            '[ "$(hostname)" != hv02 ] || exit 4')  # fmt: skip
    done = human("-i", str(lab.inventory_dir), "-l", "hv01,hv02", "run", "-o", "--", line)
    assert done.returncode == 1, done.stderr
    assert done.stdout == (
        "hv01: hv01\nhv01: no newline\nhv01:stderr:  warn\\x1b[2J\n"
        "hv02: hv02\nhv02: no newline\nhv02:stderr:  warn\\x1b[2J\n"
        "hv02:fleetbr: failed: exit 4\n"
    )
    assert done.stderr.endswith("2 hosts: 1 ok, 1 exited non-zero\n"), done.stderr


def test_tree_writes_each_hosts_streams_as_received(lab: Lab, tmp_path: Path) -> None:
    raw = b"\xff\x00\x1b[2J"
    octal = "".join(f"\\{byte:03o}" for byte in raw)
    line = f'printf "{octal}%s" "$(hostname)"; echo err >&2; [ "$(hostname)" = hv01 ] || exit 3'
    tree = tmp_path / "out" / "tree"
    kill_sshd(lab, "hv04")
    try:
        done = human("-i", str(lab.inventory_dir), "-l", "hv01,hv02,hv04",
                     "run", "--tree", str(tree), "--", line)  # fmt: skip
    finally:
        start_sshd(lab, "hv04")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("==== hv01: exit 0\n==== hv02: exit 3\n==== hv04: connect to ")
    assert done.stdout.endswith("3 hosts: 1 ok, 1 exited non-zero, 1 unreachable\n")
    assert sorted(p.name for p in tree.iterdir()) == ["hv01", "hv02", "hv04"]
    for host, rc in (("hv01", b"0\n"), ("hv02", b"3\n")):
        assert (tree / host / "stdout").read_bytes() == raw + host.encode()
        assert (tree / host / "stderr").read_bytes() == b"err\n"
        assert (tree / host / "rc").read_bytes() == rc
    assert (tree / "hv04" / "rc").read_bytes() == b""
    assert (tree / "hv04" / "status").read_text().startswith("unreachable: connect to ")
    assert (tree.stat().st_mode & 0o777, (tree / "hv01" / "stdout").stat().st_mode & 0o777) == (
        0o700, 0o600,
    )  # fmt: skip


def test_diff_shows_how_the_groups_outputs_differ(lab: Lab) -> None:
    line = 'echo kernel 6.1; [ "$(hostname)" != hv04 ] || echo "extra $(hostname)"; echo end'
    limit = "hv01,hv02,hv03,hv04,hv05"
    done = human("-i", str(lab.inventory_dir), "-l", limit, "run", "--diff", "--", line)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "==== reference: hv[01-03,05] (4 hosts): exit 0\n"
        "  kernel 6.1\n  end\n"
        "==== diff: hv04: exit 0\n"
        "  --- hv[01-03,05]\n  +++ hv04\n  @@ -1,2 +1,3 @@\n"
        "     kernel 6.1\n  +  extra hv04\n     end\n"
        "5 hosts: 5 ok\n"
    )
    code, doc, _ = run_json(lab, limit, "--diff", "--", line)
    assert code == 0 and list(doc["hosts"]) == limit.split(",")
    assert doc["groups"][0]["hosts"] == ["hv01", "hv02", "hv03", "hv05"]
    assert doc["groups"][1]["diff"][-3:] == ["   kernel 6.1", "+  extra hv04", "   end"]


def test_output_modes_bad_usage_contacts_nothing(lab: Lab, tmp_path: Path) -> None:
    inv = str(lab.inventory_dir)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    for args, message in (
        (["run", "--tree", str(full), "--", "true"], "error: run: --tree "),
        (["--json", "run", "-o", "--", "true"], "error: run: -o/--one-line and --json exclude"),
        (["run", "-o", "--diff", "--", "true"], "not allowed with argument"),
        (["run", "--tree", str(tmp_path / "new"), "--stream", "--", "true"], "not allowed with"),
    ):
        done = human("-i", inv, "-l", "hv01", *args)
        assert done.returncode == 2 and done.stdout == "", (args, done)
        assert message in done.stderr, done.stderr
    assert [p.name for p in full.iterdir()] == ["keep"] and not (tmp_path / "new").exists()
