"""The VM tier of the lab: QEMU (TCG) guests running Debian's kernel, systemd and a network daemon.

See docs/lab.md ("VM tier"). It exists for what this machine's kernel cannot do in a namespace
or container: bonds, 802.1Q VLANs, real reboots of a real kernel. ``up`` boots a few VMs with
several NICs each on the lab switch; ``reboot`` restarts one from outside (``hard``: a power
cut, SIGKILL of QEMU). ``fleetbr.lab.down`` and ``status`` work on VM labs too.
"""

from fleetbr.lab.vm.build import reboot, up
from fleetbr.lab.vm.machine import boot_ids

__all__ = ["boot_ids", "reboot", "up"]
