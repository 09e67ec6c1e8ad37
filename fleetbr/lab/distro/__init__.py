"""The distro tier of the lab: real Debian hosts with systemd booted by systemd-nspawn.

See docs/lab.md ("Distro tier"). ``up`` boots hosts whose NIC a network backend configures
(ifupdown, networkd, netplan, networkmanager or none); ``reboot`` restarts one from outside
(``hard``: a power cut); ``reset_host`` gives one a fresh layer. ``fleetbr.lab.down``,
``status``, ``host_exec`` and ``host_state`` work on distro labs too.
"""

from fleetbr.lab.distro.build import backends_for, reboot, reset_host, up
from fleetbr.lab.distro.provision import BACKENDS, MIXED
from fleetbr.lab.distro.rootfs import DISTROS

__all__ = ["BACKENDS", "DISTROS", "MIXED", "backends_for", "reboot", "reset_host", "up"]
