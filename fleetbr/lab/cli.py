"""The lab side's commands: ``fleetbr lab up|status|down|reboot`` and ``fleetbr demo``.

The product's CLI reaches them through one door, ``fleetbr.cli._lab_command``, which imports this
module only when one of these commands runs (docs/lab.md, "Product, lab and demos"). Their
arguments are parsed with the rest in ``fleetbr.cli_args``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from fleetbr import lab
from fleetbr.errors import UsageError
from fleetbr.lab import topology
from fleetbr.lab.build import HostStatus
from fleetbr.lab.model import Lab
from fleetbr.output import Human, print_json
from fleetbr.report import EXIT_FAILED, EXIT_OK, hosts_text


def cmd_lab(args: argparse.Namespace) -> int:
    """``fleetbr lab up|status|down|reboot``."""
    out = Human()
    if args.lab_command == "reboot":
        _lab_reboot(args)
        out.line(f"lab reboot: {args.host} is back")
        return EXIT_OK
    if args.lab_command == "up":
        request = _topology_request(args)
        built = _lab_up(args)
        task = topology.write(built, request.topology) if request else None
        topologies = topology.host_topologies(request.topology, len(built.hosts)) if request else []
        if args.json:
            print_json(
                {
                    h.name: {"address": h.addr4, "address6": h.addr6}
                    | ({"backend": h.backend} if h.backend else {})
                    | ({"topology": topologies[i], "task": str(task)} if task else {})
                    for i, h in enumerate(built.hosts)
                }
            )
        else:
            out.line(f"lab up: {hosts_text(len(built.hosts))} in {built.dir}")
            out.line(f"  fleetbr -i {built.inventory_dir} facts")
            if task is not None:
                out.line(f"  fleetbr -i {built.inventory_dir} apply {task}")
        return EXIT_OK
    if args.lab_command == "down":
        lab.down(args.dir.resolve())
        out.line(f"lab down: {args.dir}")
        return EXIT_OK
    rows = lab.status(args.dir.resolve())
    if args.json:
        print_json({row.name: vars(row) for row in rows})
    else:
        _print_lab_status(rows)
    return EXIT_OK if all(_lab_host_up(row) for row in rows) else EXIT_FAILED


def _lab_reboot(args: argparse.Namespace) -> None:
    built = lab.load(args.dir.resolve())
    if built.host(args.host).vm:
        from fleetbr.lab import vm

        vm.reboot(built, args.host, hard=args.hard)
        return
    from fleetbr.lab import distro

    distro.reboot(built, args.host, hard=args.hard)


def _lab_host_up(row: HostStatus) -> bool:
    return row.sshd_alive and row.ssh_port_open


def _print_lab_status(rows: Sequence[HostStatus]) -> None:
    """``lab status`` for people: one row per host, then ``6 hosts: 6 up``."""
    from fleetbr.history.present import print_table

    yes_no = {True: "yes", False: "no"}
    print_table("lab", ("host", "address", "netns", "sshd", "port 22", "state"), [
        (row.name, row.address, yes_no[row.netns_exists], "alive" if row.sshd_alive else "dead",
         "open" if row.ssh_port_open else "closed", "up" if _lab_host_up(row) else "down")
        for row in rows
    ])  # fmt: skip
    up = sum(_lab_host_up(row) for row in rows)
    counts = ", ".join(f"{n} {what}" for n, what in ((up, "up"), (len(rows) - up, "down")) if n)
    Human().line(f"{hosts_text(len(rows))}: {counts or 'none'}")


def _topology_request(args: argparse.Namespace) -> topology.Request | None:
    """``--topology``'s request, checked before anything is built (None without it)."""
    if args.topology is None:
        return None
    from fleetbr.lab.distro import backends_for

    hosts = args.hosts or (2 if args.vm else 6)
    tiered = args.vm or args.distro is not None
    request = topology.Request(
        topology=args.topology,
        hosts=hosts,
        vm=args.vm,
        distro=args.distro,
        backends=tuple(backends_for(args.backend or "networkd", hosts)) if tiered else (),
        nics=(args.nics or 2) if args.vm else 1,
        dhcp=args.dhcp,
    )
    topology.check(request)
    if args.topology == "dhcp":
        args.dhcp = True  # the before state: the NIC holds its addresses as DHCP leases
    return request


def _lab_up(args: argparse.Namespace) -> Lab:
    if args.vm:
        return _lab_up_vm(args)
    hosts = args.hosts or 6
    if args.nics is not None:
        raise UsageError("lab up: --nics needs --vm (other hosts have one NIC)")
    if args.router:
        raise UsageError("lab up: --router needs --vm (its VLAN needs Debian's kernel)")
    if args.distro is None:
        if args.backend is not None:
            raise UsageError("lab up: --backend needs --distro (network-namespace hosts have none)")
        if args.guests:
            raise UsageError("lab up: --guests needs --distro (libvirt runs on distro hosts)")
        if args.dhcp:
            raise UsageError("lab up: --dhcp needs --distro (its clients are distro hosts)")
        return lab.up(args.dir.resolve(), hosts=hosts, nic=args.nic)
    from fleetbr.lab import distro

    backend = args.backend or "networkd"
    return distro.up(
        args.dir.resolve(),
        hosts=hosts,
        backend=backend,
        distro=args.distro,
        nic=args.nic,
        guests=args.guests,
        dhcp_hosts=args.dhcp,
    )


def _lab_up_vm(args: argparse.Namespace) -> Lab:
    if args.guests:
        raise UsageError("lab up: --guests needs --distro without --vm")
    if args.dhcp:
        raise UsageError("lab up: --dhcp needs --distro without --vm")
    if args.nic != "eth0":
        raise UsageError("lab up: --vm hosts name their NICs eth0, eth1, ... (no --nic)")
    from fleetbr.lab import vm

    return vm.up(
        args.dir.resolve(),
        hosts=args.hosts or 2,
        backend=args.backend or "networkd",
        distro=args.distro or "debian12",
        nics=args.nics or 2,
        router=args.router,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """``fleetbr demo``."""
    if args.distro and args.sites:
        raise UsageError("demo: --sites runs on the netns lab; leave out --distro")
    if args.vm and (args.distro or args.sites):
        raise UsageError("demo: --vm runs on its own lab; leave out --distro and --sites")
    task = args.task or Path("tasks/proxmox.yaml" if args.vm else "tasks/bridge.yaml")
    cut_task = args.cut_task or Path("tasks/proxmox-cut.yaml" if args.vm else "tasks/cut-off.yaml")
    if args.vm:
        from fleetbr.lab.demos.proxmox import run_vm_demo

        return run_vm_demo(args.dir.resolve(), task=task, cut_task=cut_task, timeout=args.timeout,
                           keep=args.keep, as_json=args.json)  # fmt: skip
    if args.distro:
        from fleetbr.lab.demos.distro import run_distro_demo

        return run_distro_demo(args.dir.resolve(), task=task, timeout=args.timeout or 60,
                               keep=args.keep, as_json=args.json)  # fmt: skip
    if args.sites:
        from fleetbr.lab.demos.sites import run_sites_demo

        return run_sites_demo(args.dir.resolve(), hosts=args.hosts, sites=args.sites,
                              task=task, timeout=args.timeout or 20,
                              keep=args.keep)  # fmt: skip
    from fleetbr.lab.demos.netns import run_demo

    return run_demo(
        args.dir.resolve(), hosts=args.hosts, task=task, cut_task=cut_task,
        timeout=args.timeout or 20, keep=args.keep,
    )  # fmt: skip


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"lab": cmd_lab, "demo": cmd_demo}
