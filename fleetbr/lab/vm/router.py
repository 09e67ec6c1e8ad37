"""The VM lab's router: a small VM that tags, for a controller that cannot (issue 17).

This machine's kernel has no 8021q, so the controller's namespace cannot reach a host whose
management address lives on a tagged VLAN. With ``router``, ``fleetbr.lab.vm.up`` boots one more
VM from the same image: its one NIC is untagged on the lab switch (a lab address, like a host's)
and carries ``eth0.10`` (VLAN ``MGMT_VLAN``) with the management VLAN's gateway addresses
(``MGMT_PLAN``: 203.0.113.1/24, 2001:db8:10::1/64); it forwards between the two. The lab switch
is a plain bridge, which forwards tagged frames unchanged, so the hosts' tagged frames reach it.
Every other host gets its management addresses on ``eth0.10`` (MGMT_PLAN's host addresses, the
router as gateway), and the controller a route to the VLAN's subnets through the router. The
router is no inventory host (``Lab.members``); ``lab down`` takes it down with the others.
"""

from __future__ import annotations

from fleetbr.errors import LabUsageError
from fleetbr.lab.distro.build import host_mac
from fleetbr.lab.model import MGMT_PLAN, MGMT_VLAN, SMALL_PLAN, Lab, LabHost
from fleetbr.lab.system import ip_batch, run

NAME = "router"
# the backends whose lab configuration can put the management addresses on NIC.VLAN
VLAN_BACKENDS = ("ifupdown2",)


def add(lab: Lab) -> LabHost:
    """Move every host's management addresses to the management VLAN and add the router VM to
    ``lab`` (last, after the hosts); returns it."""
    wrong = sorted({h.backend for h in lab.hosts if h.backend not in VLAN_BACKENDS})
    if wrong:
        raise LabUsageError(
            f"lab up --router: management on a VLAN is written for "
            f"{', '.join(VLAN_BACKENDS)} hosts only, not {', '.join(wrong)}"
        )
    for index, host in enumerate(lab.hosts, start=1):
        host.mgmt_vlan = MGMT_VLAN
        host.addr4, host.addr6 = MGMT_PLAN.host(index)
    index = len(lab.hosts) + 1
    addr4, addr6 = SMALL_PLAN.host(index)
    router = LabHost(
        name=NAME,
        netns=f"{lab.prefix}-rt",
        nic="eth0",
        addr4=addr4,
        addr6=addr6,
        switch_port=f"{lab.prefix}-prt",
        dir=lab.dir / "hosts" / NAME,
        backend="none",
        mac=host_mac(index),
        machine_id=run(["systemd-id128", "new"]).stdout.strip(),
        router=True,
    )
    lab.hosts.append(router)
    return router


def find(lab: Lab) -> LabHost | None:
    """The lab's router, if it has one."""
    return next((h for h in lab.hosts if h.router), None)


def route_commands(lab: Lab) -> list[str]:
    """``ip`` commands that route the controller's traffic to the management VLAN through the
    router (none without one). They go with the controller's link at ``lab down``."""
    router = find(lab)
    if router is None:
        return []
    return [
        f"route replace {MGMT_PLAN.net4} via {router.ip4} dev {lab.controller_link}",
        f"route replace {MGMT_PLAN.net6} via {router.ip6} dev {lab.controller_link}",
    ]


def add_routes(lab: Lab) -> None:
    """Route the controller's namespace to the management VLAN through the router."""
    commands = route_commands(lab)
    if commands:
        ip_batch(commands)
