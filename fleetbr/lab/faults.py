"""Direct access to lab hosts without SSH: run commands inside them, break and repair them.

Every helper enters the host through its namespace holder (``nsenter -t HOLDER -n -m -u``), a
``sleep infinity`` process that owns the host's private mounts and hostname, so killing and
restarting sshd never loses them.
"""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab import files
from fleetbr.lab.distro import supervisor
from fleetbr.lab.model import Lab, LabHost, save
from fleetbr.lab.system import SSHD, alive, is_sshd, kill, run, spawn, wait_port

HOLDER_READY_TIMEOUT = 10.0
SSHD_START_TIMEOUT = 10.0


def _host(lab: Lab, host: LabHost | str) -> LabHost:
    return lab.host(host) if isinstance(host, str) else host


def _netns_host(lab: Lab, host: LabHost | str, what: str) -> LabHost:
    member = _host(lab, host)
    if member.backend:
        raise LabError(
            f"{member.name} is a distro host: its sshd is ssh.service (use systemctl in the "
            f"host), not {what}"
        )
    return member


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"


def enter_argv(host: LabHost) -> list[str]:
    """The nsenter prefix that joins ``host``'s network, mount and UTS namespaces."""
    if host.vm:
        raise LabError(f"{host.name} is a VM: nothing enters it without SSH (fleetbr.lab.vm)")
    if host.backend:  # a distro host: its container's namespaces
        return supervisor.enter_argv(host)
    if not alive(host.holder_pid):
        raise LabError(f"{host.name}: its namespace holder is not running; rebuild the lab")
    return ["nsenter", "-t", str(host.holder_pid), "-n", "-m", "-u", "--"]


def host_exec(
    lab: Lab,
    host: LabHost | str,
    argv: Sequence[str],
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the host's network and mount namespaces (its private /etc, /var)."""
    member = _host(lab, host)
    proc = subprocess.run(
        [*enter_argv(member), *argv], input=input, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{member.name}: {' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
    return proc


def switch_exec(
    lab: Lab, argv: Sequence[str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the switch namespace."""
    return run(["ip", "netns", "exec", lab.switch_netns, *argv], check=check)


def set_switch_port(lab: Lab, host: LabHost | str, up: bool) -> None:
    """Set the host's switch-side veth end up or down (a cable pull the host cannot see coming)."""
    member = _host(lab, host)
    state = "up" if up else "down"
    run(["ip", "-n", lab.switch_netns, "link", "set", "dev", member.switch_port, state])


def start_holder(lab: Lab, host: LabHost) -> int:
    """Start the host's namespace holder and wait until its private mounts are in place."""
    argv = ["ip", "netns", "exec", host.netns, "unshare", "-m", "-u", "--propagation", "private"]
    proc = spawn(
        [*argv, "sh", "-c", files.holder_script(lab, host)],
        host.dir / "holder.log",
        stdout_pipe=True,
    )
    assert proc.stdout is not None
    with proc.stdout:
        ready, _, _ = select.select([proc.stdout], [], [], HOLDER_READY_TIMEOUT)
        line = proc.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        kill([proc.pid])
        raise LabError(
            f"{host.name}: namespace holder failed: {_log_tail(host.dir / 'holder.log')}"
        )
    host.holder_pid = proc.pid
    return proc.pid


def spawn_sshd(host: LabHost) -> int:
    """Start the host's sshd inside its holder's namespaces without waiting for it."""
    argv = [*enter_argv(host), SSHD, "-D", "-e", "-f", host.inside("sshd_config")]
    host.sshd_pid = spawn(argv, host.dir / "sshd.log").pid
    return host.sshd_pid


def wait_sshd(host: LabHost, deadline: float) -> None:
    """Wait until the host's sshd accepts TCP on port 22; LabError with its log otherwise."""
    if not wait_port(host.ip4, deadline) or not alive(host.sshd_pid):
        raise LabError(
            f"{host.name}: sshd does not accept connections on {host.ip4}:22: "
            f"{_log_tail(host.dir / 'sshd.log')}"
        )


def start_sshd(lab: Lab, host: LabHost | str) -> int:
    """(Re)start the host's sshd in the same namespaces, wait for port 22, return its pid."""
    member = _netns_host(lab, host, "start_sshd")
    if not is_sshd(member.sshd_pid):
        spawn_sshd(member)
        save(lab)
    wait_sshd(member, time.monotonic() + SSHD_START_TIMEOUT)
    return member.sshd_pid or 0


def kill_sshd(lab: Lab, host: LabHost | str) -> None:
    """SIGKILL the host's listening sshd only; established sessions (its children) survive."""
    member = _netns_host(lab, host, "kill_sshd")
    pid = member.sshd_pid
    if pid is not None and is_sshd(pid):
        kill([pid])
    member.sshd_pid = None
    save(lab)
