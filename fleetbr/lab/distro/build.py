"""Bring up a lab of real systemd hosts (systemd-nspawn), reset and reboot them.

The topology, address plan, switch, keys, known_hosts and inventory are the network-namespace
tier's (fleetbr.lab.build, model, files); each host is a booted Debian container on its own
overlay of the shared rootfs, with its NIC configured by the chosen network backend. `lab down`
and `lab status` are the netns tier's functions, which know about distro hosts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetbr.errors import LabError, LabUsageError
from fleetbr.lab import build, dhcp, files
from fleetbr.lab.distro import guests as guest_lab
from fleetbr.lab.distro import layer, provision, rootfs, supervisor
from fleetbr.lab.model import MAX_HOSTS, Lab, LabHost, check_prefix, plan, save
from fleetbr.lab.system import require_tools, run
from fleetbr.validate import integer, interface_name

WORKERS = 8
# the backends whose lab hosts can be DHCP clients (fleetbr.lab.dhcp; docs/lab.md, "DHCP")
DHCP_BACKENDS = ("networkd", "netplan", "networkmanager")
# Booting is CPU-bound (2 cores boot ~3 hosts a second); allow for a loaded machine.
BOOT_TIMEOUT_BASE = 60.0
BOOT_TIMEOUT_PER_HOST = 4.0


def host_mac(index: int) -> str:
    """The fixed MAC of host ``index``'s NIC (locally administered), stable across reboots."""
    return f"02:fb:00:00:{index // 256:02x}:{index % 256:02x}"


def backends_for(backend: str | Sequence[str], hosts: int) -> list[str]:
    """Per-host backends: one name for all, ``mixed`` (round robin), or one name per host."""
    if isinstance(backend, str):
        names = [provision.MIXED[i % 4] for i in range(hosts)] if backend == "mixed" else []
        names = names or [backend] * hosts
    else:
        names = list(backend)
        if len(names) != hosts:
            raise LabUsageError(f"{len(names)} backends given for {hosts} hosts")
    for name in names:
        if name not in provision.BACKENDS:
            known = ", ".join((*provision.BACKENDS, "mixed"))
            raise LabUsageError(f"unknown backend {name!r}; known: {known}")
    return names


def guests_for(guests: int | Sequence[int], hosts: int) -> list[int]:
    """Per-host guest counts: one count for all, or one count per host."""
    counts = [guests] * hosts if isinstance(guests, int) else list(guests)
    if len(counts) != hosts:
        raise LabUsageError(f"{len(counts)} guest counts given for {hosts} hosts")
    return [integer(n, "guests", 0, guest_lab.MAX_GUESTS) for n in counts]


def dhcp_for(dhcp_hosts: bool | Sequence[bool], hosts: int) -> list[bool]:
    """Per-host DHCP flags: one flag for all, or one flag per host."""
    flags = [dhcp_hosts] * hosts if isinstance(dhcp_hosts, bool) else list(dhcp_hosts)
    if len(flags) != hosts:
        raise LabUsageError(f"{len(flags)} DHCP flags given for {hosts} hosts")
    return flags


def _require_nspawn() -> None:
    require_tools()
    if shutil.which("systemd-nspawn") is None:
        raise LabError("the distro lab needs systemd-nspawn: apt-get install systemd-container")


def distro_plan(
    lab_dir: Path, hosts: int, backend: str | Sequence[str], *, distro: str, nic: str, prefix: str
) -> Lab:
    """The netns tier's plan plus, per host, its backend, MAC and machine id."""
    lab = plan(lab_dir, hosts, nic, prefix)
    lab.distro = rootfs.distro(distro).name
    for index, (host, name) in enumerate(
        zip(lab.hosts, backends_for(backend, hosts), strict=True), start=1
    ):
        host.backend = name
        host.mac = host_mac(index)
        host.machine_id = run(["systemd-id128", "new"]).stdout.strip()
    return lab


def up(
    lab_dir: Path,
    hosts: int = 3,
    backend: str | Sequence[str] = "networkd",
    *,
    distro: str = "debian12",
    nic: str = "eth0",
    prefix: str = "fbr",
    guests: int | Sequence[int] = 0,
    dhcp_hosts: bool | Sequence[bool] = False,
) -> Lab:
    """Boot ``hosts`` Debian hosts whose NIC ``backend`` configures; return the lab when every
    host accepts SSH (and, with ``guests``, one count for all or one per host, each host with
    guests runs that many libvirt guests plus one defined only: fleetbr.lab.distro.guests).
    ``dhcp_hosts`` (one flag for all, or one per host): the switch runs a DHCP server
    (fleetbr.lab.dhcp) and each flagged host's NIC takes its usual addresses from it as fixed
    leases (networkd, netplan and NetworkManager hosts only), waited for.
    Builds the rootfs (and the libvirt layer) first if they are not cached. Cleans up if anything
    fails."""
    _require_nspawn()
    nic = interface_name(nic, "nic")
    hosts = integer(hosts, "hosts", 1, MAX_HOSTS)
    lab = distro_plan(
        Path(lab_dir), hosts, backend, distro=distro, nic=nic, prefix=check_prefix(prefix)
    )
    lab.rootfs = str(rootfs.ensure(lab.distro))
    counts = guests_for(guests, hosts)
    flags = dhcp_for(dhcp_hosts, hosts)
    for host, count, flag in zip(lab.hosts, counts, flags, strict=True):
        host.guests = count
        host.dhcp = flag
    if any(h.dhcp and h.backend not in DHCP_BACKENDS for h in lab.hosts):
        raise LabUsageError(
            f"lab up: --dhcp hosts are {' or '.join(DHCP_BACKENDS)} hosts for now "
            f"(--backend {' or '.join(DHCP_BACKENDS)}; the image has no dhclient for ifupdown)"
        )
    lab.guests = max(counts)
    if lab.guests:
        lab.guest_layer = str(layer.ensure(lab.distro))
    if any(h.backend == "ifupdown2" for h in lab.hosts):
        lab.ifupdown2_layer = str(layer.ensure(lab.distro, layer.IFUPDOWN2))
    build.check_free(lab)
    supervisor.prune_stale_cgroups()
    return build.built(lab, _build)


def _prepare(lab: Lab, host: LabHost) -> str:
    host.dir.mkdir(parents=True, exist_ok=True)
    pub = files.keygen(host.dir / files.HOST_KEY, f"root@{host.name}")
    provision.provision(lab, host)
    return pub


def _build(lab: Lab) -> None:
    pub = files.keygen(lab.key_path, f"fleetbr-lab@{lab.prefix}")
    (lab.dir / "authorized_keys").write_text(pub + "\n")
    with ThreadPoolExecutor(WORKERS) as pool:
        keys = list(pool.map(lambda h: _prepare(lab, h), lab.hosts))
        files.write_known_hosts(lab, {h.name: k for h, k in zip(lab.hosts, keys, strict=True)})
        files.write_inventory(lab)
        build.build_switch(lab)
        if any(h.dhcp for h in lab.hosts):
            dhcp.start(lab)
        for host in lab.hosts:
            supervisor.start(lab, host)
        save(lab)
        deadline = time.monotonic() + BOOT_TIMEOUT_BASE + BOOT_TIMEOUT_PER_HOST * len(lab.hosts)
        list(pool.map(lambda h: supervisor.wait_up(h, deadline), lab.hosts))
        list(pool.map(guest_lab.wait_ready, [h for h in lab.hosts if h.guests]))
        list(pool.map(dhcp.wait_leases, [h for h in lab.hosts if h.dhcp]))
    save(lab)


def _member(lab: Lab, host: LabHost | str) -> LabHost:
    member = lab.host(host) if isinstance(host, str) else host
    if not member.backend or member.vm:
        raise LabUsageError(f"{member.name} is not a distro lab host")
    return member


def reset_host(lab: Lab, host: LabHost | str) -> LabHost:
    """Power ``host`` off, give it a fresh layer (as right after `up`) and boot it again (with a
    writable root)."""
    member = _member(lab, host)
    supervisor.stop(lab, member)
    (member.dir / supervisor.ROOT_RO_FLAG).unlink(missing_ok=True)
    provision.provision(lab, member)
    supervisor.start(lab, member)
    save(lab)
    supervisor.wait_up(member, time.monotonic() + supervisor.BOOT_TIMEOUT)
    if member.dhcp:
        dhcp.wait_leases(member)
    if member.guests:
        guest_lab.wait_ready(member)
    return member


def reboot(lab: Lab, host: LabHost | str, *, hard: bool = False, wait: bool = True) -> LabHost:
    """Reboot ``host`` from outside (``hard``: a power cut) and wait until it accepts SSH."""
    member = _member(lab, host)
    supervisor.reboot(lab, member, hard=hard, wait=wait)
    save(lab)
    return member
