"""What fleetbr run sends: the command-line rule, RunSpec, and its wrapper run locally (no SSH)."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fleetbr.adhoc import spec as spec_module
from fleetbr.adhoc.main import spec_from_args
from fleetbr.adhoc.spec import RunOptions, RunSpec, command_line
from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec, SSHOptions

HOST = HostSpec("hv01", "198.51.100.11", 22, "root", None, ("lab",), {}, SSHOptions())


def test_one_argument_is_a_shell_line_several_are_words() -> None:
    assert command_line(["ip -br link | head -n 3"]) == "ip -br link | head -n 3"
    assert command_line(["printf", "%s\n", "$(reboot)"]) == "printf '%s\n' '$(reboot)'"
    assert command_line(["echo", "it's", "a;b", "`id`"]) == "echo 'it'\"'\"'s' 'a;b' '`id`'"
    assert command_line(["true", ""]) == "true ''"


@pytest.mark.parametrize("argv", [[], [""], ["  "], ["", " "]])
def test_no_command_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError, match="no command"):
        command_line(argv)


def test_payload_is_the_exact_bytes_typed() -> None:
    typed = os.fsdecode(b"printf '\xff\xfe'")  # how Python hands over argv that is not UTF-8
    run = RunSpec.from_argv([typed], RunOptions())
    assert run.payload == b"printf '\xff\xfe'\n"


def test_script_is_sent_byte_for_byte(tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_bytes(b"#!/bin/sh\necho '\xff'\r\n$(x)\n")
    assert RunSpec.from_script(script, RunOptions()).payload == script.read_bytes()
    with pytest.raises(UsageError, match="cannot read script"):
        RunSpec.from_script(tmp_path / "missing.sh", RunOptions())


@pytest.mark.parametrize("timeout", [0.0, -1.0, 0.05, float("nan"), float("inf"), 1e9])
def test_bad_timeout_is_a_usage_error(timeout: float) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        RunSpec.from_argv(["true"], RunOptions(timeout=timeout))


def _args(**changes: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "stream": False, "json": False, "sudo": False, "timeout": None,
        "max_output": 1024, "script": None, "argv": ["true"],
    }  # fmt: skip
    return argparse.Namespace(**{**base, **changes})


def test_option_combinations() -> None:
    assert spec_from_args(_args()).payload == b"true\n"
    with pytest.raises(UsageError, match="exclude"):
        spec_from_args(_args(stream=True, json=True))
    with pytest.raises(UsageError, match="not both"):
        spec_from_args(_args(script=Path("x.sh")))
    with pytest.raises(UsageError, match="negative"):
        spec_from_args(_args(max_output=-1))


def test_exec_line_is_fleetbr_text_only() -> None:
    run = RunSpec.from_argv(["echo", "$(reboot)", "'"], RunOptions(timeout=1.5))
    line = run.exec_line(HOST)
    assert line.startswith("exec sh -c '") and line.endswith(" fleetbr-run 1.500 5.000 500")
    assert "reboot" not in line  # the command travels on stdin, never in the exec request
    sudo_host = replace(HOST, ssh=SSHOptions(sudo=True, command_timeout=30))
    assert run.exec_line(sudo_host).startswith("exec sudo -n sh -c '")
    assert (
        RunSpec.from_argv(["id"], RunOptions(sudo=True)).exec_line(HOST).startswith("exec sudo -n ")
    )
    default = RunSpec.from_argv(["id"], RunOptions()).exec_line(sudo_host)
    assert default.endswith(" 30.000 5.000 500")


def _run_wrapper(run: RunSpec) -> subprocess.CompletedProcess[bytes]:
    """The exec request as a login shell runs it, here, with the payload on stdin."""
    return subprocess.run(
        ["sh", "-c", run.exec_line(HOST)], input=run.payload, capture_output=True, timeout=60
    )


@pytest.mark.parametrize("status", [0, 3, 124, 137, 255])
def test_wrapper_passes_the_exit_status_through(status: int) -> None:
    done = _run_wrapper(RunSpec.from_argv([f"echo out; echo err >&2; exit {status}"], RunOptions()))
    assert (done.returncode, done.stdout, done.stderr) == (status, b"out\n", b"err\n")


def test_wrapper_a_command_killed_by_term_is_not_a_timeout() -> None:
    done = _run_wrapper(RunSpec.from_argv(["kill -TERM $$"], RunOptions(timeout=30)))
    assert done.returncode == 143


def test_wrapper_runs_hostile_words_literally() -> None:
    words = ["$(echo no)", "`echo no`", "a;b", "it's", 'say "hi"', "back\\slash", "l1\nl2", "*", ""]
    done = _run_wrapper(RunSpec.from_argv(["printf", "%s\\0", *words], RunOptions()))
    assert done.stdout.decode().split("\0")[:-1] == words


def test_wrapper_command_sees_an_empty_stdin() -> None:
    done = _run_wrapper(RunSpec.from_argv(["cat; echo after"], RunOptions()))
    assert (done.returncode, done.stdout) == (0, b"after\n")


def test_wrapper_timeout_kills_everything_and_dies_of_sigalrm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spec_module, "KILL_AFTER", 0.5)
    marker = f"{300 + secrets.randbelow(10**6) / 10**6:.6f}"  # a sleep no one else runs
    line = f'echo started; sleep {marker} & trap "" TERM; sleep {marker}'  # one ignores TERM
    started = time.monotonic()
    done = _run_wrapper(RunSpec.from_argv([line], RunOptions(timeout=0.3)))
    assert done.returncode == -signal.SIGALRM, done
    assert (done.stdout, done.stderr) == (b"started\n", b"")
    assert time.monotonic() - started < 30
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.stdout == "", "the timed-out command's processes must be gone"


def test_wrapper_kills_a_command_that_ignores_term_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the command's own shell dies of the TERM, the python under it ignores it: timeout's child
    # is gone at once, so the KILL must come from the wrapper, after the grace
    monkeypatch.setattr(spec_module, "KILL_AFTER", 0.5)
    marker = f"{40 + secrets.randbelow(10**6) / 10**6:.6f}"  # ends by itself if not killed
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(%s)"
    code %= marker
    started = time.monotonic()
    done = _run_wrapper(RunSpec.from_argv([sys.executable, "-c", code], RunOptions(timeout=0.5)))
    elapsed = time.monotonic() - started
    assert done.returncode == -signal.SIGALRM, done
    assert 0.5 + 0.5 <= elapsed < 20, f"took {elapsed:.2f}s (TERM at 0.5s, KILL 0.5s later)"
    left = subprocess.run(["pgrep", "-f", f"time.sleep.{marker}"], capture_output=True, text=True)
    assert left.stdout == "", "the python that ignored TERM must be gone"
