"""Local process plumbing for the lab: running ip/nsenter, tracking and killing lab processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fleetbr.errors import LabError

INSTALL_HINT = "apt-get install openssh-server iproute2"
SSHD = "/usr/sbin/sshd"
REQUIRED_TOOLS = ("ip", "bridge", "nsenter", "unshare", "mount", "ssh-keygen")

# Popen objects of the holders and sshds this process started, so they can be reaped (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


def require_tools() -> None:
    """Raise LabError unless we are root and sshd, iproute2 and util-linux are installed."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, veth links, mounts)")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD)
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)}: run `{INSTALL_HINT}`")


def run(
    argv: Sequence[str], *, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a local command, capturing text output; LabError with its stderr if ``check`` fails."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip() or "no output"
        raise LabError(f"{' '.join(argv)} exited {proc.returncode}: {detail}")
    return proc


def ip_batch(commands: Iterable[str], netns: str | None = None, *, check: bool = True) -> None:
    """Run ``ip -batch`` (optionally ``-n netns``) with one ip command per line.

    With ``check=False`` every line is attempted (``-force``) and errors are ignored.
    """
    argv = ["ip", *(["-n", netns] if netns else []), *([] if check else ["-force"]), "-batch", "-"]
    run(argv, stdin="".join(f"{line}\n" for line in commands), check=check)


def netns_exists(name: str) -> bool:
    """True if ``ip netns`` knows a namespace called ``name``."""
    return Path("/run/netns", name).exists()


def link_exists(name: str) -> bool:
    """True if the caller's network namespace has a link ``name`` (asks netlink: /sys/class/net
    shows the namespace that mounted /sys, not necessarily ours)."""
    return run(["ip", "-o", "link", "show", "dev", name], check=False).returncode == 0


def netns_pids(name: str) -> list[int]:
    """The processes whose network namespace is ``name`` (empty if it does not exist)."""
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


def pids_in_netns(names: Iterable[str]) -> list[int]:
    """The processes whose network namespace is one of ``names``, in one pass over /proc (as
    ``ip netns pids`` finds them, without a process per namespace: a 1000-host lab has 1000)."""
    wanted = set()
    for name in names:
        with contextlib.suppress(OSError):
            st = os.stat(Path("/run/netns", name))
            wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{entry}/ns/net")
                if (st.st_dev, st.st_ino) in wanted:
                    pids.append(int(entry))
    return pids


def spawn(argv: Sequence[str], log: Path, *, stdout_pipe: bool = False) -> subprocess.Popen[bytes]:
    """Start a long-lived lab process in its own session, stderr (and stdout) to ``log``."""
    with log.open("ab") as logf:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else logf,
            stderr=logf,
            start_new_session=True,
            cwd="/",
        )
    _children[proc.pid] = proc
    return proc


def alive(pid: int | None) -> bool:
    """True if ``pid`` is a live (not zombie) process; reaps it if it is our dead child."""
    if pid is None:
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_sshd(pid: int | None) -> bool:
    """True if ``pid`` is a live sshd (guards against a recorded pid reused by another program)."""
    try:
        return alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "sshd"
    except OSError:
        return False


def kill(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL ``pids`` and wait until none of them is alive."""
    pending = {pid for pid in pids if pid > 1}
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if alive(pid)}
        if pending:
            time.sleep(0.01)
    if pending:
        raise LabError(f"processes {sorted(pending)} survived SIGKILL for {timeout} s")


def port_open(address: str, port: int = 22, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``address:port`` succeeds from the caller's namespace."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(address: str, deadline: float, port: int = 22) -> bool:
    """Poll ``address:port`` until it accepts TCP or ``deadline`` (monotonic) passes."""
    while True:
        if port_open(address, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def run_build(script: str, log: Path, *, timeout: float, what: str) -> None:
    """Run a cache build ``script`` with ``sh -s`` in a private mount namespace (its mounts
    vanish with it), its output in ``log``; LabError naming ``what`` with the log's last lines
    when it fails or outlasts ``timeout`` seconds."""
    with log.open("w") as out:
        try:
            done = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-s"],
                input=script,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
            failed = done.returncode != 0
        except subprocess.TimeoutExpired:
            failed = True
    if failed:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-8:])
        raise LabError(f"building {what} failed (log {log}): {tail}")
