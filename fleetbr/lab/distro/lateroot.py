"""A distro lab host whose root file system turns writable late, as with ``ro`` on a real
kernel command line and a slow root fsck.

``late_writable_root(lab, host)`` arms it for every following boot of ``host``: the supervisor
boots the container with ``systemd-nspawn --read-only`` (the root is read-only before the host's
init starts, as the kernel's ``ro`` makes it), and a drop-in in the host's own layer makes
``systemd-remount-fs.service`` (the unit that remounts ``/`` read-write on a real host) wait for a
barrier, ``/run/lab-root-rw``, before it remounts ``/`` read-write. Until the barrier exists the
boot stops short of ``local-fs.target``: everything ordered after ``systemd-remount-fs`` waits,
everything else has run.

The barrier is the test's, never a sleep: ``release_root_after(lab, host, unit)`` creates it only
once ``unit`` has run to its end, or waits for ``systemd-remount-fs.service`` (a unit not ordered
after the remount always loses the race; one ordered after it always wins). ``reset_host`` gives
the host a fresh layer and a normal root again.
"""

from __future__ import annotations

import time

from fleetbr.errors import LabError
from fleetbr.lab.distro.supervisor import ROOT_RO_FLAG, init_pid
from fleetbr.lab.faults import host_exec
from fleetbr.lab.model import Lab, LabHost

BARRIER = "/run/lab-root-rw"
DROPIN_DIR = "/etc/systemd/system/systemd-remount-fs.service.d"
DROPIN = f"{DROPIN_DIR}/lab-late-rw.conf"
REMOUNT_UNIT = "systemd-remount-fs.service"
WAIT_LIMIT = 300  # seconds: the host boots on (read-write) even if no test ever releases it
_DROPIN_TEXT = f"""\
# fleetbr lab: the root stays read-only until {BARRIER} exists (a slow root fsck).
# A boot with a writable root (normal_root) does not wait. ($$: systemd expands $NAME itself.)
[Service]
ExecStartPre=/bin/sh -c '[ -w / ] && exit 0; n=0; \
until [ -e {BARRIER} ] || [ "$$n" -ge {WAIT_LIMIT * 10} ]; do sleep 0.1; n=$$((n + 1)); done; \
mount -o remount,rw /'
TimeoutStartSec={WAIT_LIMIT + 60}
"""


def late_writable_root(lab: Lab, host: LabHost) -> None:
    """From the next boot on, ``host`` boots with a read-only root that turns writable only once
    the barrier is released (the host must be running: the drop-in is written by the host)."""
    host_exec(lab, host, ["sh", "-c", f'mkdir -p {DROPIN_DIR} && cat > {DROPIN} && sync'],
              input=_DROPIN_TEXT)  # fmt: skip
    (host.dir / ROOT_RO_FLAG).touch()


def normal_root(host: LabHost) -> None:
    """Boot ``host`` with a writable root again, from its next boot (the drop-in in its layer,
    kept until a reset, then does not wait)."""
    (host.dir / ROOT_RO_FLAG).unlink(missing_ok=True)


def _new_init(host: LabHost, old: int | None, deadline: float) -> None:
    while time.monotonic() < deadline:
        pid = init_pid(host)
        if pid is not None and pid != old:
            return
        time.sleep(0.1)
    raise LabError(f"{host.name}: no new init started")


def _unit_done_or_waiting(lab: Lab, host: LabHost, unit: str) -> bool:
    """``unit`` was started this boot and is no longer starting (it ran, failed or was skipped by
    a condition), or its start job is one the remount's job blocks."""
    show = host_exec(
        lab, host,
        ["systemctl", "show", "-p", "ActiveState", "-p", "ConditionTimestampMonotonic", unit],
        check=False,
    ).stdout  # fmt: skip
    # key=value lines, in systemd's order (not the order asked for)
    got = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    started = got.get("ConditionTimestampMonotonic", "0") not in ("", "0")
    if started and got.get("ActiveState") != "activating":
        return True
    blocked = host_exec(
        lab, host,
        ["systemctl", "list-jobs", "--after", "--no-legend", "--no-pager", REMOUNT_UNIT],
        check=False,
    ).stdout  # fmt: skip
    return f"({unit}/start)" in blocked


def release_root_after(
    lab: Lab, host: LabHost, unit: str, *, old_init: int | None, timeout: float = 90.0
) -> None:
    """Once the boot that follows ``old_init`` reached the point where ``unit`` has run or waits
    for the remount, let ``/`` turn writable."""
    deadline = time.monotonic() + timeout
    _new_init(host, old_init, deadline)
    while not _unit_done_or_waiting(lab, host, unit):
        if time.monotonic() > deadline:
            raise LabError(f"{host.name}: {unit} neither ran nor waits for {REMOUNT_UNIT}")
        time.sleep(0.1)
    host_exec(lab, host, ["touch", BARRIER])


ETC_RO_UNIT = "lab-etc-ro.service"
_ETC_RO_TEXT = """\
# fleetbr lab: /etc stays read-only for the whole boot, from before the boot guard on (a fault:
# a guard that cannot put files back).
[Unit]
DefaultDependencies=no
After=systemd-remount-fs.service
Before=fleetbr-boot-guard.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind -o ro /etc /etc

[Install]
WantedBy=sysinit.target
"""


def read_only_etc(lab: Lab, host: LabHost, on: bool = True) -> None:
    """From the next boot on, ``/etc`` of the running ``host`` is a read-only bind mount from
    before the boot guard runs until the host goes down (``on=False``: no longer; this boot's
    read-only ``/etc`` is unmounted first)."""
    unit = f"/etc/systemd/system/{ETC_RO_UNIT}"
    wants = f"/etc/systemd/system/sysinit.target.wants/{ETC_RO_UNIT}"
    if on:
        script = f"cat > {unit} && mkdir -p {wants.rsplit('/', 1)[0]} && ln -sf {unit} {wants}"
        host_exec(lab, host, ["sh", "-c", script + " && sync"], input=_ETC_RO_TEXT)
    else:
        # -R: the read-only /etc and what was mounted on it since (the guard's bind mounts)
        script = f"{{ ! findmnt -n /etc >/dev/null || umount -R /etc; }} && rm -f {unit} {wants}"
        host_exec(lab, host, ["sh", "-c", script + " && sync"])
