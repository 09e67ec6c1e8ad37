"""The process identity helpers of the transaction scripts (``proc.sh.j2`` and ``kill_ours`` in
``tx_common.sh.j2``), run for real with dash and bash against processes this test starts.

fleetbr may signal a process only when it can prove it started it: same PID, same start time,
same boot. A reused PID (a guest's qemu), a record from an earlier boot, a zombie or a torn record
must never be signalled (issue 6, item 1).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.render import render

TXID = "20261127T181500-3fa9c2"
SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat, counted after the command name's last ')'."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()[19]


def helpers(tmp_path: Path) -> str:
    return render("tx_common.sh.j2", state_dir=str(tmp_path / "state"), txid=TXID)


def run(shell: str, tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` after the helpers, with ``F`` pointing at a record file in ``tmp_path``."""
    script = f"{helpers(tmp_path)}\nF={tmp_path / 'x.proc'}\n{body}\n"
    return subprocess.run(
        [shell, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )


def is_ours(shell: str, tmp_path: Path) -> bool:
    done = run(shell, tmp_path, 'if ours "$F"; then echo yes; else echo no; fi')
    assert done.returncode == 0 and done.stderr == "", done
    return done.stdout.strip() == "yes"


def kill_ours(shell: str, tmp_path: Path) -> None:
    done = run(shell, tmp_path, 'kill_ours "$F" TERM')
    assert done.returncode == 0 and done.stderr == "", done


def record(tmp_path: Path, text: str) -> None:
    (tmp_path / "x.proc").write_text(text)


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process fleetbr did not start: its own process group, as a guest's qemu would be."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def assert_alive(proc: subprocess.Popen[bytes]) -> None:
    time.sleep(0.2)  # a signal, had one been sent, would have landed by now
    assert proc.poll() is None, f"process {proc.pid} was signalled ({proc.returncode})"


pytestmark = pytest.mark.skipif(not SHELLS, reason="needs dash or bash")


@pytest.mark.parametrize("shell", SHELLS)
def test_record_proc_records_pid_start_time_and_boot(shell: str, tmp_path: Path) -> None:
    done = run(shell, tmp_path, 'record_proc "$F" && cat "$F" && cat /proc/$$/stat')
    assert done.returncode == 0, done
    recorded, stat = done.stdout.splitlines()
    pid, start, boot = recorded.split(" ")
    assert int(pid) == int(stat.split(" ", 1)[0])
    assert start == stat[stat.rindex(")") + 2 :].split()[19]
    assert boot == boot_id()
    assert not list(tmp_path.glob("*.new"))  # written aside, then renamed into place


@pytest.mark.parametrize("shell", SHELLS)
def test_own_process_is_ours_and_kill_ours_stops_its_group(
    shell: str, tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    done = run(shell, tmp_path, f'record_proc "$F" {victim.pid}')
    assert done.returncode == 0, done
    expected = f"{victim.pid} {start_time(victim.pid)} {boot_id()}\n"
    assert (tmp_path / "x.proc").read_text() == expected
    assert is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)
    assert victim.wait(timeout=5) == -signal.SIGTERM
    assert not is_ours(shell, tmp_path)  # gone (reaped)


@pytest.mark.parametrize("shell", SHELLS)
def test_kill_ours_signals_a_process_that_does_not_lead_its_group(
    shell: str, tmp_path: Path
) -> None:
    proc = subprocess.Popen(["sleep", "300"])  # same group as pytest: `kill -- -PID` must miss
    try:
        record(tmp_path, f"{proc.pid} {start_time(proc.pid)} {boot_id()}\n")
        kill_ours(shell, tmp_path)
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("shell", SHELLS)
def test_reused_pid_is_not_ours(
    shell: str, tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    """The PID was fleetbr's once; now another program has it (another start time)."""
    other_start = int(start_time(victim.pid)) - 1
    record(tmp_path, f"{victim.pid} {other_start} {boot_id()}\n")
    assert not is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)
    assert_alive(victim)


@pytest.mark.parametrize("shell", SHELLS)
def test_record_from_another_boot_is_not_ours(
    shell: str, tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    """Same PID and start time, but recorded before a reboot: a different process."""
    other_boot = "00000000-0000-4000-8000-000000000000"
    assert other_boot != boot_id()
    record(tmp_path, f"{victim.pid} {start_time(victim.pid)} {other_boot}\n")
    assert not is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)
    assert_alive(victim)


@pytest.mark.parametrize("shell", SHELLS)
def test_zombie_is_not_ours(shell: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        record(tmp_path, f"{proc.pid} {start_time(proc.pid)} {boot_id()}\n")
        assert is_ours(shell, tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        # wait for its death without reaping it: a zombie
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        stat = Path(f"/proc/{proc.pid}/stat")
        assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert not is_ours(shell, tmp_path)
        # and a zombie cannot be recorded as ours either: no start time is written
        done = run(shell, tmp_path, f'record_proc "$F" {proc.pid}; cat "$F"')
        assert done.stdout.split(" ")[1] == ""
        assert not is_ours(shell, tmp_path)
    finally:
        proc.wait()


@pytest.mark.parametrize("shell", SHELLS)
def test_gone_process_is_not_ours(shell: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    record(tmp_path, f"{proc.pid} 12345 {boot_id()}\n")
    assert not is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "text",
    ["", "\n", "garbage\n", "{pid}\n", "{pid} {start}\n", "{pid} {start} {boot} extra\n",
     "-1 {start} {boot}\n", "{pid}  {boot}\n", "*\n"],
)  # fmt: skip
def test_torn_or_foreign_records_are_never_ours(
    shell: str, text: str, tmp_path: Path, victim: subprocess.Popen[bytes]
) -> None:
    record(tmp_path, text.format(pid=victim.pid, start=start_time(victim.pid), boot=boot_id()))
    assert not is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)
    assert_alive(victim)


@pytest.mark.parametrize("shell", SHELLS)
def test_missing_record_is_not_ours(shell: str, tmp_path: Path) -> None:
    assert not is_ours(shell, tmp_path)
    kill_ours(shell, tmp_path)


@pytest.mark.parametrize("shell", SHELLS)
def test_command_name_with_spaces_and_parentheses(shell: str, tmp_path: Path) -> None:
    """The start time is found after the LAST ')' of /proc/PID/stat, whatever the name holds."""
    odd = tmp_path / "a) b (c"
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", odd)
    proc = subprocess.Popen([str(odd), "300"], start_new_session=True)
    try:
        assert ") b (c" in Path(f"/proc/{proc.pid}/stat").read_text()
        done = run(shell, tmp_path, f"proc_start {proc.pid}")
        assert done.stdout.strip() == start_time(proc.pid)
        run(shell, tmp_path, f'record_proc "$F" {proc.pid}')
        assert is_ours(shell, tmp_path)
    finally:
        proc.kill()
        proc.wait()
