"""A distro lab host's own layer: identity, SSH keys and its network backend's configuration.

Everything is written into the host's overlay upper directory before it boots (an overlay's
upper layer may be changed while it is not mounted); the shared rootfs is never touched. The
backend's daemon is then enabled by the host's own ``systemctl`` (lab_distro_provision.sh.j2).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from fleetbr.lab.distro import guests
from fleetbr.lab.files import HOST_KEY
from fleetbr.lab.model import MGMT_PLAN, MGMT_VLAN, Lab, LabHost
from fleetbr.lab.render import render
from fleetbr.lab.system import run

# The backends a host can have; "mixed" hosts take the first four in turn. ifupdown2 hosts mount
# the ifupdown2 layer (fleetbr.lab.distro.layer.IFUPDOWN2), where it replaces ifupdown.
BACKENDS = ("ifupdown", "networkd", "netplan", "networkmanager", "none", "ifupdown2")
MIXED = BACKENDS[:4]
# The unit that configures the NIC of a "none" host. Deliberately not named fleetbr-*: fleetbr's
# own transient units are checked to be gone after every transaction.
STATIC_UNIT = "lab-static-net.service"
NETPLAN_FILE = "/etc/netplan/01-netcfg.yaml"
_NM_NAMESPACE = uuid.UUID("6f1b9a43-5c1e-4d59-9a52-2f1c0e7d4b10")
LAYERS = ("upper", "work", "root")
FORWARDING = "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"


@dataclass(frozen=True)
class HostFile:
    """A file of the host's layer: absolute path as the host sees it, content, mode."""

    path: str
    content: str
    mode: int = 0o644


def config_files(lab: Lab, host: LabHost) -> list[HostFile]:
    """The files that configure ``host``'s NIC with its backend (none: a oneshot unit; the VM
    lab's router: that unit routes too)."""
    gateway4, gateway6 = lab.gateways(host)
    values = {
        "host": host.name,
        "nic": host.nic,
        "addr4": host.addr4,
        "addr6": host.addr6,
        "gateway4": gateway4,
        "gateway6": gateway6,
        "dhcp": host.dhcp,
        "vlan": host.mgmt_vlan,
        # a host managed on a VLAN is laid out like Proxmox's installer: every NIC has a stanza
        "spares": [f"eth{i}" for i in range(1, host.nics)] if host.mgmt_vlan else [],
    }
    if host.router:
        return router_files(values)
    backend = host.backend
    if backend == "networkd":
        path = f"/etc/systemd/network/10-{host.nic}.network"
        return [HostFile(path, render("lab_distro_networkd.network.j2", **values))]
    if backend == "netplan":
        return [HostFile(NETPLAN_FILE, render("lab_distro_netplan.yaml.j2", **values), 0o600)]
    if backend == "networkmanager":
        path = f"/etc/NetworkManager/system-connections/{host.nic}.nmconnection"
        conn_uuid = str(uuid.uuid5(_NM_NAMESPACE, f"{host.name}/{host.nic}"))
        text = render("lab_distro_nm.nmconnection.j2", uuid=conn_uuid, **values)
        return [HostFile(path, text, 0o600)]
    if backend in ("ifupdown", "ifupdown2"):
        text = render("lab_distro_interfaces.j2", backend=backend, **values)
        return [HostFile("/etc/network/interfaces", text)]
    path = f"/etc/systemd/system/{STATIC_UNIT}"
    return [HostFile(path, render("lab_distro_static_net.service.j2", **values))]


def router_files(values: dict[str, object]) -> list[HostFile]:
    """The VM lab's router (fleetbr.lab.vm.router): its NIC untagged on the lab switch, a VLAN
    interface on the management VLAN, forwarding between them; the static unit's name, so
    backend ``none`` enables it."""
    v4, v6 = MGMT_PLAN.gateway()
    net4, net6 = MGMT_PLAN.net4.prefixlen, MGMT_PLAN.net6.prefixlen
    own = {"vlan": MGMT_VLAN, "vlan4": f"{v4}/{net4}", "vlan6": f"{v6}/{net6}"}
    unit = render("lab_vm_router.service.j2", **{**values, **own})
    return [
        HostFile(f"/etc/systemd/system/{STATIC_UNIT}", unit),
        HostFile("/etc/modules-load.d/lab-router.conf", "8021q\n"),
        HostFile("/etc/sysctl.d/60-lab-router.conf", FORWARDING),
    ]


def units(backend: str) -> list[str]:
    """The units ``systemctl enable`` turns on for ``backend``."""
    return {
        "networkd": ["systemd-networkd.service"],
        "netplan": ["systemd-networkd.service"],
        "networkmanager": ["NetworkManager.service"],
        "ifupdown": ["networking.service"],
        "ifupdown2": ["networking.service"],
    }.get(backend, [STATIC_UNIT])


def identity_files(lab: Lab, host: LabHost, rootfs: Path) -> list[HostFile]:
    """Hostname, machine-id, /etc/hosts, the host key and root's authorized_keys."""
    base_hosts = (rootfs / "etc/hosts").read_text()
    key = (host.dir / HOST_KEY).read_text()
    pub = (host.dir / f"{HOST_KEY}.pub").read_text()
    return [
        HostFile("/etc/hostname", f"{host.name}\n"),
        HostFile("/etc/machine-id", f"{host.machine_id}\n", 0o444),
        HostFile("/etc/hosts", f"{base_hosts}127.0.1.1\t{host.name}\n"),
        HostFile(f"/etc/ssh/{HOST_KEY}", key, 0o600),
        HostFile(f"/etc/ssh/{HOST_KEY}.pub", pub),
        HostFile("/root/.ssh/authorized_keys", (lab.dir / "authorized_keys").read_text(), 0o600),
    ]


def _mkdirs(upper: Path, rootfs: Path, rel: Path) -> None:
    """Create ``rel``'s parents in ``upper`` with the owner and mode they have in the rootfs (an
    upper directory's attributes win in the merged view)."""
    current = Path()
    for part in rel.parent.parts:
        current /= part
        target = upper / current
        if target.is_dir():
            continue
        target.mkdir()
        lower = rootfs / current
        if lower.is_dir() and not lower.is_symlink():
            st = lower.stat()
            os.chown(target, st.st_uid, st.st_gid)
            target.chmod(st.st_mode & 0o7777)
        else:
            target.chmod(0o700 if part in {".ssh", "system-connections"} else 0o755)


def write_layer(upper: Path, rootfs: Path, files: list[HostFile]) -> None:
    """Write ``files`` into the overlay layer ``upper``."""
    for item in files:
        rel = Path(item.path.lstrip("/"))
        _mkdirs(upper, rootfs, rel)
        target = upper / rel
        target.unlink(missing_ok=True)
        target.write_text(item.content)
        target.chmod(item.mode)


def guest_files(lab: Lab, host: LabHost) -> list[HostFile]:
    """The lab's libvirt network and guests of ``host`` (none unless the host has guests)."""
    if not host.guests:
        return []
    index = lab.hosts.index(host) + 1
    return [HostFile(*item) for item in guests.files(index, host.guests)]


def provision(lab: Lab, host: LabHost) -> None:
    """Give ``host`` a fresh layer: identity, keys, backend files, its daemon enabled (and its
    guests' unit, on a host with guests)."""
    rootfs = Path(lab.rootfs)
    for layer in LAYERS:
        path = host.dir / layer
        if layer != "root":
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    files = identity_files(lab, host, rootfs) + config_files(lab, host) + guest_files(lab, host)
    write_layer(host.dir / "upper", rootfs, files)
    script = render(
        "lab_distro_provision.sh.j2",
        rootfs=lab.lower(host),
        dir=str(host.dir),
        units=units(host.backend) + ([guests.UNIT] if host.guests else []),
    )
    run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
