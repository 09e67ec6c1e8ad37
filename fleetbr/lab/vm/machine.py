"""Power and console of VM lab hosts: the supervisor that runs QEMU, boots, reboots, power cuts.

A VM's files live in its lab dir: ``disk.qcow2`` (a copy-on-write overlay of the cached base
image), ``seed.img`` (its own files, applied at the first boot), ``console.log`` (the serial
console; each finished boot writes a ``fleetbr-lab-vm: up BOOT_ID`` line there), the monitor
FIFOs and ``qemu.pid``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab.model import Lab, LabHost
from fleetbr.lab.render import render
from fleetbr.lab.system import alive, kill, netns_pids, port_open, spawn
from fleetbr.lab.vm.image import INIT, VmImage

MEMORY_MB = 640
# TCG on a loaded 2-core machine: one boot took 27 s alone and 155 s with the cores busy.
BOOT_TIMEOUT = 600.0
SOFT_REBOOT_TIMEOUT = 600.0
CMDLINE = f"console=ttyS0 root=/dev/vda rw quiet net.ifnames=0 init={INIT}"
# Not anchored: the marker may land behind getty's login prompt on the same console line.
_UP_RE = re.compile(r"fleetbr-lab-vm: up ([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})\b")


def nic_mac(index: int, nic: int) -> str:
    """The fixed MAC of NIC ``nic`` (0-based) of host ``index``; NIC 0 has the distro tier's."""
    return f"02:fb:00:{nic:02x}:{index // 256:02x}:{index % 256:02x}"


def nic_name(nic: int) -> str:
    """The guest's name of NIC ``nic`` (the kernel's own names: net.ifnames=0)."""
    return f"eth{nic}"


def start(lab: Lab, host: LabHost) -> int:
    """Start the host's supervisor, which powers the VM on; returns the supervisor's pid."""
    image = VmImage(Path(lab.vm_image))
    index = lab.hosts.index(host) + 1
    script = render(
        "lab_vm_supervisor.sh.j2",
        dir=str(host.dir),
        switch_netns=lab.switch_netns,
        name=host.name,
        memory=MEMORY_MB,
        kernel=str(image.kernel),
        initrd=str(image.initrd),
        cmdline=CMDLINE,
        nics=[(port, nic_mac(index, i)) for i, port in enumerate(host.ports())],
    )
    argv = ["nsenter", f"--net=/run/netns/{host.netns}", "sh", "-c", script]
    host.supervisor_pid = spawn(argv, host.dir / "supervisor.log").pid
    return host.supervisor_pid


def qemu_pid(host: LabHost) -> int | None:
    """The pid of the host's running QEMU, or None while it is off."""
    try:
        text = (host.dir / "qemu.pid").read_text().strip()
    except OSError:
        return None
    pid = int(text) if text.isdigit() else None
    return pid if alive(pid) else None


def running(host: LabHost) -> bool:
    """True while the host's supervisor runs (the VM is powered, or being powered on again)."""
    pid = host.supervisor_pid
    return pid is not None and alive(pid) and pid in netns_pids(host.netns)


def boot_ids(host: LabHost) -> list[str]:
    """The boot ids of every finished boot of the VM so far, oldest first (from its console)."""
    try:
        text = (host.dir / "console.log").read_text(errors="replace")
    except OSError:
        return []
    return _UP_RE.findall(text)


def wait_up(host: LabHost, deadline: float, after: int = 0) -> str:
    """Wait until the VM finished boot number ``after`` + 1 or later and accepts SSH; returns
    that boot's id."""
    while time.monotonic() < deadline:
        ids = boot_ids(host)
        if len(ids) > after and port_open(host.ip4, timeout=0.5):
            return ids[-1]
        if host.supervisor_pid is not None and not alive(host.supervisor_pid):
            break
        time.sleep(0.5)
    raise LabError(f"{host.name}: did not come up (console: {_tail(host.dir / 'console.log')})")


def _tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "")
    except OSError:
        return "no log"
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def press_power_button(host: LabHost) -> bool:
    """Press the VM's ACPI power button (its logind reboots it); False if QEMU is not there."""
    try:
        fd = os.open(host.dir / "monitor.in", os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return False
        raise
    try:
        os.write(fd, b"system_powerdown\n")
    finally:
        os.close(fd)
    _drain(host)
    return True


def _drain(host: LabHost) -> None:
    """Read what the monitor answered, so its FIFO never fills up."""
    with contextlib.suppress(OSError):
        fd = os.open(host.dir / "monitor.out", os.O_RDONLY | os.O_NONBLOCK)
        try:
            while os.read(fd, 65536):
                pass
        except BlockingIOError:
            pass
        finally:
            os.close(fd)


def power_cut(host: LabHost) -> None:
    """SIGKILL QEMU (nothing in the guest runs another instruction); the supervisor powers the
    VM on again from the same disk."""
    (host.dir / "reboot-hard").touch()
    pid = qemu_pid(host)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop(host: LabHost) -> None:
    """Power the VM off hard and end its supervisor."""
    pids = [p for p in (host.supervisor_pid, qemu_pid(host)) if p is not None]
    kill(pids)


def reboot(lab: Lab, host: LabHost, *, hard: bool = False, wait: bool = True) -> str | None:
    """Reboot the VM from outside and (``wait``) until it accepts SSH again; returns the new boot
    id (None without ``wait``). Soft: the ACPI power button (a clean ``systemctl reboot`` in the
    guest), cut hard if the guest has not come back after SOFT_REBOOT_TIMEOUT. Hard: a power
    cut. A VM that is off is powered on."""
    before = len(boot_ids(host))
    if not running(host):
        stop(host)
        start(lab, host)
    elif hard or not press_power_button(host):
        power_cut(host)
    elif wait:
        with contextlib.suppress(LabError):
            return wait_up(host, time.monotonic() + SOFT_REBOOT_TIMEOUT, after=before)
        power_cut(host)
    if not wait:
        return None
    return wait_up(host, time.monotonic() + BOOT_TIMEOUT, after=before)
