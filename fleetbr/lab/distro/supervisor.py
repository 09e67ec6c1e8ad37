"""Power and console of distro lab hosts: the supervisor that (re)boots a host with nspawn, the
container's init, entering the host without SSH, reboots and power cuts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab.model import Lab, LabHost
from fleetbr.lab.render import render
from fleetbr.lab.system import alive, kill, netns_pids, port_open, run, spawn

# A clean environment for commands run inside a host (nothing of this machine's leaks in).
HOST_ENV = (
    "env",
    "-i",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
)
SOFT_REBOOT_TIMEOUT = 60.0
BOOT_TIMEOUT = 90.0
# Where a host's own cgroups go, in every writable hierarchy (lab_distro_supervisor.sh.j2).
CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")
CGROUP_PARENT = "fleetbr-lab"
CGROUP_REMOVE_TIMEOUT = 5.0
# In the host's lab dir: boot it with a read-only root (fleetbr.lab.distro.lateroot).
ROOT_RO_FLAG = "root-ro"


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _innermost_pid(pid: int) -> int | None:
    """The pid of ``pid`` in its own pid namespace (``NSpid``'s last field)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def init_pid(host: LabHost) -> int | None:
    """The pid (here) of the host's running systemd, or None if the host is not up."""
    pid = _read_pid(host.dir / "init.pid")
    if pid is None or not alive(pid) or _innermost_pid(pid) != 1:
        return None
    return pid


def running(host: LabHost) -> bool:
    """True while the host's supervisor runs (the host is powered, booted or booting)."""
    pid = host.supervisor_pid
    return pid is not None and alive(pid) and pid in netns_pids(host.netns)


def sshd_alive(host: LabHost) -> bool:
    """True if an sshd runs in the host's container."""
    for pid in netns_pids(host.container_netns):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                return True
    return False


def enter_argv(host: LabHost) -> list[str]:
    """The prefix that runs a command inside the booted host: its namespaces, a clean env."""
    pid = init_pid(host)
    if pid is None:
        raise LabError(f"{host.name}: the host is not running (see {host.dir / 'console.log'})")
    return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", *HOST_ENV]


def cgroup(lab: Lab, host: LabHost) -> str:
    """The host's cgroup path below each hierarchy's root, unique per lab dir and host."""
    lab_key = hashlib.sha256(str(lab.dir).encode()).hexdigest()[:12]
    return f"{CGROUP_PARENT}/{lab_key}-{host.name}"


def _deepest_first(top: Path) -> list[Path]:
    """``top`` and every directory below it, children before their parents (rmdir order)."""
    dirs = [p for p in top.rglob("*") if p.is_dir()]
    return [*sorted(dirs, key=lambda p: -len(p.parts)), top]


def remove_cgroups(lab: Lab, host: LabHost) -> None:
    """Remove the host's cgroups (deepest first) once its processes are gone; LabError if a
    cgroup stays busy."""
    for root in (Path(r) for r in CGROUP_ROOTS if Path(r, "cgroup.procs").is_file()):
        top = root / cgroup(lab, host)
        deadline = time.monotonic() + CGROUP_REMOVE_TIMEOUT
        while top.is_dir():
            for path in _deepest_first(top):
                with contextlib.suppress(OSError):
                    path.rmdir()
            if top.is_dir() and time.monotonic() > deadline:
                raise LabError(f"{host.name}: cgroup {top} is still busy")
            if top.is_dir():
                time.sleep(0.05)
        with contextlib.suppress(OSError):
            (root / CGROUP_PARENT).rmdir()  # only when no other lab host has a cgroup there


def _procs(top: Path) -> int:
    """Processes in the cgroup tree ``top`` (0 if it vanished meanwhile)."""
    count = 0
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            count += len(procs.read_text().split())
    return count


def prune_stale_cgroups(min_age: float = 60.0) -> None:
    """Remove host cgroups a crashed lab left behind (scripts/in-netns killed its processes):
    trees with no process in them, not touched for ``min_age`` seconds."""
    for root in (Path(r) for r in CGROUP_ROOTS if Path(r, "cgroup.procs").is_file()):
        parent = root / CGROUP_PARENT
        if not parent.is_dir():
            continue
        for top in (p for p in parent.iterdir() if p.is_dir()):
            with contextlib.suppress(OSError):
                if time.time() - top.stat().st_mtime < min_age or _procs(top):
                    continue
                for path in _deepest_first(top):
                    path.rmdir()


def start(lab: Lab, host: LabHost) -> int:
    """Start the host's supervisor, which boots it; returns the supervisor's pid."""
    script = render(
        "lab_distro_supervisor.sh.j2",
        dir=str(host.dir),
        netns=host.netns,
        cnetns=host.container_netns,
        switch_netns=lab.switch_netns,
        nic=host.nic,
        mac=host.mac,
        port=host.switch_port,
        rootfs=lab.lower(host),
        tun=bool(host.guests),
        name=host.name,
        machine_id=host.machine_id,
        cgroup=cgroup(lab, host),
    )
    argv = ["nsenter", f"--net=/run/netns/{host.netns}", "sh", "-c", script]
    host.supervisor_pid = spawn(argv, host.dir / "supervisor.log").pid
    return host.supervisor_pid


def stop(lab: Lab, host: LabHost) -> None:
    """Power the host off hard: SIGKILL its supervisor, nspawn and every process of the host."""
    pids = [pid for ns in host.namespaces() for pid in netns_pids(ns)]
    init = init_pid(host)
    kill([*pids, *([init] if init else [])])
    run(["ip", "netns", "del", host.container_netns], check=False)
    remove_cgroups(lab, host)


def wait_up(host: LabHost, deadline: float, after: int | None = None) -> int:
    """Wait until the host runs a new init (not ``after``) and accepts SSH; returns the init pid."""
    while time.monotonic() < deadline:
        pid = init_pid(host)
        if pid is not None and pid != after and port_open(host.ip4, timeout=0.3):
            return pid
        if host.supervisor_pid is not None and not alive(host.supervisor_pid):
            break
        time.sleep(0.1)
    raise LabError(f"{host.name}: did not come up (console: {_tail(host.dir / 'console.log')})")


def _tail(path: Path, lines: int = 4) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"


def reboot(lab: Lab, host: LabHost, *, hard: bool = False, wait: bool = True) -> None:
    """Reboot ``host`` from outside and (``wait``) until it accepts SSH again.

    Soft: SIGINT to its systemd (what `machinectl reboot` does: a clean reboot); if the host has
    not gone down after SOFT_REBOOT_TIMEOUT it is cut hard. Hard: SIGKILL to its init and nspawn,
    a power cut: nothing in the host runs another instruction. A host that is off is powered on.
    """
    old = init_pid(host)
    if not running(host):
        stop(lab, host)
        start(lab, host)
    elif hard or old is None:
        _power_cut(host, old)
    else:
        os.kill(old, signal.SIGINT)
        deadline = time.monotonic() + SOFT_REBOOT_TIMEOUT
        while alive(old) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(old):
            _power_cut(host, old)
    if wait:
        wait_up(host, time.monotonic() + BOOT_TIMEOUT, after=old)


def _power_cut(host: LabHost, init: int | None) -> None:
    (host.dir / "reboot-hard").touch()
    nspawn = _read_pid(host.dir / "nspawn.pid")
    for pid in (init, nspawn):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
