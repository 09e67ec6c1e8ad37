"""The network-namespace lab: real OpenSSH "hypervisors" in network namespaces on this machine.

See docs/lab.md. ``up``/``down``/``status``/``load`` manage a lab; the other helpers reach into a
host without SSH, for fault injection and for resetting hosts between tests.
"""

from fleetbr.lab.build import HostStatus, down, status, up
from fleetbr.lab.faults import host_exec, kill_sshd, set_switch_port, start_sshd, switch_exec
from fleetbr.lab.model import Lab, LabHost, load
from fleetbr.lab.state import host_state, reset_host

__all__ = [
    "HostStatus",
    "Lab",
    "LabHost",
    "down",
    "host_exec",
    "host_state",
    "kill_sshd",
    "load",
    "reset_host",
    "set_switch_port",
    "start_sshd",
    "status",
    "switch_exec",
    "up",
]
