"""Data model of the network-namespace lab: addressing plan, ``Lab``/``LabHost`` and lab.json."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleetbr.errors import LabError, LabUsageError

STATE_FILE = "lab.json"
MAX_HOSTS = 200
GATEWAY4 = "198.51.100.1"
GATEWAY6 = "2001:db8:100::1"
CONTROLLER4 = "198.51.100.2/24"
CONTROLLER6 = "2001:db8:100::2/64"
_V4_BASE = ipaddress.IPv4Address("198.51.100.10")
_V6_BASE = ipaddress.IPv6Address("2001:db8:100::a")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
# Where each host sees the lab dir (bind mount inside its private /run); see lab_holder.sh.j2.
HOST_MOUNT = "/run/fleetbr-lab"


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it keeps every lab link name within 15 characters."""
    if not _PREFIX_RE.match(prefix):
        raise LabUsageError(
            f"lab prefix {prefix!r} must be 1-10 lower-case letters/digits starting with a letter"
        )
    return prefix


def host_name(index: int) -> str:
    """Name of host ``index`` (1-based): hv01, hv02, ..."""
    return f"hv{index:02d}"


def host_addr4(index: int) -> str:
    """IPv4 CIDR of host ``index`` (1-based): 198.51.100.10/24, .11, ..."""
    return f"{_V4_BASE + index - 1}/24"


def host_addr6(index: int) -> str:
    """IPv6 CIDR of host ``index`` (1-based): 2001:db8:100::a/64, ::b, ..."""
    return f"{_V6_BASE + index - 1}/64"


@dataclass
class LabHost:
    """One lab hypervisor: a network namespace with its NIC, private files and its own sshd."""

    name: str
    netns: str
    nic: str
    addr4: str
    addr6: str
    switch_port: str
    dir: Path
    sshd_pid: int | None = None
    holder_pid: int | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    # Distro tier (fleetbr.lab.distro): the network backend; "" for a network-namespace host.
    backend: str = ""
    mac: str = ""
    machine_id: str = ""
    supervisor_pid: int | None = None
    guests: int = 0  # distro tier: libvirt guests running on this host (fleetbr.lab.distro.guests)

    @property
    def ip4(self) -> str:
        """The IPv4 address without prefix length."""
        return self.addr4.split("/", 1)[0]

    @property
    def ip6(self) -> str:
        """The IPv6 address without prefix length."""
        return self.addr6.split("/", 1)[0]

    @property
    def container_netns(self) -> str:
        """The named network namespace of a distro host's container ("" for netns hosts)."""
        return f"{self.netns}c" if self.backend else ""

    def namespaces(self) -> list[str]:
        """Every network namespace of this host (a distro host's container has its own)."""
        return [self.netns, self.container_netns] if self.backend else [self.netns]

    def inside(self, name: str) -> str:
        """Path of ``name`` in this host's dir, as the host itself sees it."""
        return f"{HOST_MOUNT}/hosts/{self.name}/{name}"


@dataclass
class Lab:
    """A lab as built by :func:`fleetbr.lab.up` and recorded in ``lab.json``."""

    dir: Path
    prefix: str
    switch_netns: str
    controller4: str
    controller6: str
    hosts: list[LabHost]
    key_path: Path
    known_hosts_path: Path
    inventory_dir: Path
    gateway4: str = GATEWAY4
    gateway6: str = GATEWAY6
    controller_link: str = ""
    distro: str = ""  # the distro tier's distro (debian12); "" for a network-namespace lab
    rootfs: str = ""  # the distro tier's shared base rootfs
    guests: int = 0  # distro tier: the most libvirt guests of any host (each: LabHost.guests)
    guest_layer: str = ""  # their libvirt layer, between a host's own layer and the rootfs
    ifupdown2_layer: str = ""  # the layer of hosts with backend ifupdown2 (it replaces ifupdown)

    def lower(self, host: LabHost) -> str:
        """A distro host's overlay lowerdir: the libvirt layer (a host with guests) over the
        ifupdown2 layer (a host with that backend) over the base rootfs."""
        ifupdown2 = self.ifupdown2_layer if host.backend == "ifupdown2" else ""
        layers = (self.guest_layer if host.guests else "", ifupdown2, self.rootfs)
        return ":".join(p for p in layers if p)

    def host(self, name: str) -> LabHost:
        """The host called ``name``; LabError if there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabUsageError(f"no host {name!r} in the lab at {self.dir}")


def plan(lab_dir: Path, hosts: int, nic: str, prefix: str) -> Lab:
    """The complete addressing and naming plan of a lab, before anything is built."""
    lab_dir = lab_dir.resolve()
    members = [
        LabHost(
            name=host_name(i),
            netns=f"{prefix}-h{i:02d}",
            nic=nic,
            addr4=host_addr4(i),
            addr6=host_addr6(i),
            switch_port=f"{prefix}-p{i:02d}",
            dir=lab_dir / "hosts" / host_name(i),
        )
        for i in range(1, hosts + 1)
    ]
    return Lab(
        dir=lab_dir,
        prefix=prefix,
        switch_netns=f"{prefix}-sw",
        controller4=CONTROLLER4,
        controller6=CONTROLLER6,
        hosts=members,
        key_path=lab_dir / "id_ed25519",
        known_hosts_path=lab_dir / "known_hosts",
        inventory_dir=lab_dir / "inventory",
        controller_link=f"{prefix}-ctl",
    )


def _to_json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


_SAVING = threading.Lock()


def save(lab: Lab) -> None:
    """Write ``lab.json`` atomically. Threads may save one lab at once (hosts reset or rebooted
    in parallel): each writes its own temporary file, and the lock orders the renames, so the
    last save wins whole."""
    path = lab.dir / STATE_FILE
    with _SAVING:
        text = json.dumps(_to_json(asdict(lab)), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".lab.", suffix=".tmp", dir=lab.dir)
        os.fchmod(fd, 0o644)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load(lab_dir: Path) -> Lab:
    """Read the lab recorded in ``lab_dir/lab.json``; LabError if there is none."""
    path = Path(lab_dir).resolve() / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabUsageError(
            f"no lab in {path.parent} (no {STATE_FILE}); run fleetbr lab up"
        ) from None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from None
    try:
        every = raw.get("guests", 0)  # a lab.json from before per-host counts: every host
        hosts = [LabHost(**{"guests": every, **h, "dir": Path(h["dir"])}) for h in raw.pop("hosts")]
        for key in ("dir", "key_path", "known_hosts_path", "inventory_dir"):
            raw[key] = Path(raw[key])
        return Lab(hosts=hosts, **raw)
    except (KeyError, TypeError) as exc:
        raise LabError(f"{path} is not a lab state file: {exc}") from None
