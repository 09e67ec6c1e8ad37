"""Bring the lab up and down, and report its status."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleetbr.errors import LabError, LabUsageError
from fleetbr.lab import dhcp, faults, files
from fleetbr.lab.distro import supervisor
from fleetbr.lab.model import (
    MAX_NETNS_HOSTS,
    STATE_FILE,
    Lab,
    LabHost,
    check_prefix,
    load,
    plan,
    save,
)
from fleetbr.lab.state import nic_commands, read_sysctls
from fleetbr.lab.system import (
    ip_batch,
    is_sshd,
    kill,
    link_exists,
    netns_exists,
    pids_in_netns,
    port_open,
    require_tools,
    run,
)
from fleetbr.lab.vm import machine
from fleetbr.validate import integer, interface_name

WORKERS = 16
KILL_ROUNDS = 5  # scans of the lab namespaces for processes left to kill, after the first
_FORBIDDEN_PARENTS = ("/etc", "/var", "/run", "/proc", "/sys", "/dev")
_CREATED = (
    "lab.json",
    "id_ed25519",
    "id_ed25519.pub",
    "authorized_keys",
    "known_hosts",
    *dhcp.FILES,
)


@dataclass(frozen=True)
class HostStatus:
    """Liveness of one lab host as seen from the controller's namespace."""

    name: str
    address: str
    netns_exists: bool
    sshd_alive: bool
    ssh_port_open: bool


def up(lab_dir: Path, hosts: int = 3, nic: str = "eth0", prefix: str = "fbr") -> Lab:
    """Build a lab of ``hosts`` SSH-reachable hosts in ``lab_dir`` and return it.

    Cleans up after itself if anything fails. Raises LabError if a lab is already up there.
    """
    require_tools()
    nic = interface_name(nic, "nic")
    hosts = integer(hosts, "hosts", 1, MAX_NETNS_HOSTS)
    lab = plan(Path(lab_dir), hosts, nic, check_prefix(prefix, hosts))
    check_free(lab)
    return built(lab, _build)


def built(lab: Lab, build: Callable[[Lab], None]) -> Lab:
    """Save ``lab``, then ``build`` it; a lab that fails half-built is taken down again (the
    saved file first, so that ``down`` knows what to clean up). Every tier's ``up`` ends here."""
    lab.dir.mkdir(parents=True, exist_ok=True)
    save(lab)
    try:
        build(lab)
    except BaseException:
        with contextlib.suppress(Exception):
            down(lab.dir)
        raise
    return lab


def check_free(lab: Lab) -> None:
    """Raise LabError if ``lab``'s dir, namespaces, links or address plan are already in use."""
    if (lab.dir / STATE_FILE).exists():
        raise LabUsageError(f"a lab is already up in {lab.dir}; run fleetbr lab down first")
    for parent in _FORBIDDEN_PARENTS:
        if lab.dir.is_relative_to(parent):
            raise LabUsageError(
                f"the lab dir {lab.dir} must not be under {parent} (hosts remount it)"
            )
    assigned = run(["ip", "-o", "addr", "show", "to", lab.controller4]).stdout
    if assigned.strip():
        subnet = ipaddress.ip_interface(lab.controller4).network
        raise LabUsageError(
            f"another lab is already up in this network namespace ({assigned.split()[1]} has an "
            f"address in {subnet}); labs share one address plan: take it down or run this "
            "under scripts/in-netns"
        )
    taken = [ns for h in lab.hosts for ns in h.namespaces() if netns_exists(ns)]
    if netns_exists(lab.switch_netns):
        taken.append(lab.switch_netns)
    if taken or link_exists(lab.controller_link):
        raise LabUsageError(
            f"namespaces or links with prefix {lab.prefix!r} already exist ({', '.join(taken)}): "
            "another lab uses it; pick another prefix or take that lab down"
        )


def _build(lab: Lab) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        client = pool.submit(files.keygen, lab.key_path, f"fleetbr-lab@{lab.prefix}")
        host_keys = dict(
            zip(
                (h.name for h in lab.hosts),
                pool.map(files.prepare_host_dir, lab.hosts),
                strict=True,
            )
        )
        (lab.dir / "authorized_keys").write_text(client.result() + "\n")
        files.write_known_hosts(lab, host_keys)
        files.write_inventory(lab)
        build_switch(lab)
        list(pool.map(lambda h: _start_host(lab, h), lab.hosts))
    deadline = time.monotonic() + 20 + 0.2 * len(lab.hosts)
    for host in lab.hosts:
        faults.wait_sshd(host, deadline)
    save(lab)


def build_switch(lab: Lab) -> None:
    """Namespaces, veth pairs, the switch bridge with the gateway, and the controller link."""
    sw, ctl, ctl_peer = lab.switch_netns, lab.controller_link, f"{lab.prefix}-pc"
    ip_batch(
        [
            f"netns add {sw}",
            *(f"netns add {h.netns}" for h in lab.hosts),
            f"link add {ctl} type veth peer name {ctl_peer} netns {sw}",
            *(
                f"link add {h.nic} netns {h.netns}{_address(h)} type veth"
                f" peer name {h.switch_port} netns {sw}"
                for h in lab.hosts
                if not h.vm  # a VM's NICs are taps (fleetbr.lab.vm)
            ),
        ]
    )
    for key in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"):
        run(["ip", "netns", "exec", sw, "tee", f"/proc/sys/{key}"], stdin="0\n")
    ip_batch(
        [
            "link set lo up",
            "link add sw0 type bridge",
            f"addr add {lab.gateway4_cidr} dev sw0",
            f"addr add {lab.gateway6_cidr} dev sw0 nodad",
            "link set sw0 up",
            *(
                f"link set {port} master sw0 up"
                for port in (ctl_peer, *(h.switch_port for h in lab.hosts if not h.vm))
            ),
        ],
        netns=sw,
    )
    ip_batch(
        [
            f"addr add {lab.controller4} dev {ctl}",
            f"addr add {lab.controller6} dev {ctl} nodad",
            f"link set {ctl} up",
            *_pinned_neighbours(lab),
        ]
    )


def _pinned_neighbours(lab: Lab) -> list[str]:
    """Permanent neighbour entries for the hosts with a fixed MAC (a large lab's), on the
    controller's link. The kernel's neighbour tables are shared by every network namespace and
    hold ``gc_thresh3`` (1024) learnt entries in all: a 1000-host lab's controller alone would
    fill the ARP table ("neighbor table overflow", dropped packets, SSH timeouts); permanent
    entries do not count against it."""
    ctl = lab.controller_link
    return [
        f"neigh replace {address} lladdr {host.mac} nud permanent dev {ctl}"
        for host in lab.hosts
        if host.mac and not host.mgmt_vlan  # that one is routed: the router's entry serves it
        for address in (host.ip4, host.ip6)
    ]


def _address(host: LabHost) -> str:
    """`` address MAC`` for hosts with a fixed NIC MAC (distro hosts keep it across reboots)."""
    return f" address {host.mac}" if host.mac else ""


def _start_host(lab: Lab, host: LabHost) -> None:
    ip_batch(nic_commands(lab, host), netns=host.netns)
    faults.start_holder(lab, host)
    host.sysctls = read_sysctls(lab, host)
    faults.spawn_sshd(host)


def status(lab_dir: Path) -> list[HostStatus]:
    """Per-host status: namespace present, sshd alive, port 22 open from the caller."""
    lab = load(lab_dir)
    return [
        HostStatus(
            name=h.name,
            address=h.ip4,
            netns_exists=netns_exists(h.netns),
            sshd_alive=_sshd_alive(h),
            ssh_port_open=port_open(h.ip4, timeout=0.3),
        )
        for h in lab.hosts
    ]


def _sshd_alive(host: LabHost) -> bool:
    """The host's sshd runs (a VM's is not visible from here: its QEMU runs)."""
    if host.vm:
        return machine.qemu_pid(host) is not None
    return supervisor.sshd_alive(host) if host.backend else is_sshd(host.sshd_pid)


def down(lab_dir: Path) -> None:
    """Kill every lab process, delete all lab namespaces and links, remove the files `up` wrote."""
    require_tools()
    lab = load(lab_dir)
    namespaces = [ns for h in lab.hosts for ns in h.namespaces()] + [lab.switch_netns]
    inits = [pid for h in lab.hosts if h.backend for pid in [supervisor.init_pid(h)] if pid]
    kill(pids_in_netns(namespaces) + inits)
    # a process forked while the namespaces were scanned (sshd's child for a TCP probe) is
    # not in that scan: look again until the namespaces hold nothing
    for _ in range(KILL_ROUNDS):
        stragglers = pids_in_netns(namespaces)
        if not stragglers:
            break
        kill(stragglers)
    for host in (h for h in lab.hosts if h.backend):
        supervisor.remove_cgroups(lab, host)
    if link_exists(lab.controller_link):
        run(["ip", "link", "del", "dev", lab.controller_link])
    existing = [ns for ns in namespaces if netns_exists(ns)]
    if existing:
        ip_batch((f"netns del {ns}" for ns in existing), check=False)
    left = [ns for ns in namespaces if netns_exists(ns)]
    if left:
        raise LabError(f"could not delete namespaces {', '.join(left)}")
    _remove_files(lab)


def _remove_files(lab: Lab) -> None:
    shutil.rmtree(lab.dir / "hosts", ignore_errors=True)
    for name in ("hosts.yaml", "groups.yaml", "defaults.yaml"):
        (lab.inventory_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        lab.inventory_dir.rmdir()
    for name in _CREATED:
        (lab.dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        lab.dir.rmdir()
