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
MAX_HOSTS = 200  # the /24 plan (and the distro tier's limit)
# A Linux bridge holds at most 1024 ports: the switch has one per host plus the controller's.
MAX_NETNS_HOSTS = 1020
GATEWAY4 = "198.51.100.1"
GATEWAY6 = "2001:db8:100::1"
CONTROLLER4 = "198.51.100.2/24"
CONTROLLER6 = "2001:db8:100::2/64"
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_LINK_NAME_MAX = 15  # IFNAMSIZ - 1
# Where each host sees the lab dir (bind mount inside its private /run); see lab_holder.sh.j2.
HOST_MOUNT = "/run/fleetbr-lab"


@dataclass(frozen=True)
class AddressPlan:
    """One lab's subnets: the switch's gateway, the controller, and hosts from ``first`` on."""

    net4: ipaddress.IPv4Network
    net6: ipaddress.IPv6Network
    max_hosts: int

    def _at(self, offset: int) -> tuple[str, str]:
        return str(self.net4[offset]), str(self.net6[offset])

    def gateway(self) -> tuple[str, str]:
        """The gateway's IPv4 and IPv6 address (no prefix length)."""
        return self._at(1)

    def controller(self) -> tuple[str, str]:
        """The controller's IPv4 and IPv6 CIDR."""
        v4, v6 = self._at(2)
        return f"{v4}/{self.net4.prefixlen}", f"{v6}/{self.net6.prefixlen}"

    def host(self, index: int) -> tuple[str, str]:
        """IPv4 and IPv6 CIDR of host ``index`` (1-based), from the 10th address on."""
        if not 1 <= index <= self.max_hosts:
            raise LabUsageError(f"host index {index} is outside this plan (1-{self.max_hosts})")
        v4, v6 = self._at(9 + index)
        return f"{v4}/{self.net4.prefixlen}", f"{v6}/{self.net6.prefixlen}"


# Up to MAX_HOSTS hosts: one /24 and one /64 from the documentation ranges (every test's plan).
SMALL_PLAN = AddressPlan(
    ipaddress.IPv4Network("198.51.100.0/24"), ipaddress.IPv6Network("2001:db8:100::/64"), MAX_HOSTS
)
# More: the benchmarking range 198.18.0.0/15 and a /48 of the documentation prefix, one link each.
LARGE_PLAN = AddressPlan(
    ipaddress.IPv4Network("198.18.0.0/15"),
    ipaddress.IPv6Network("2001:db8:1000::/48"),
    MAX_NETNS_HOSTS,
)
# VM tier: the management VLAN behind the lab's router VM (fleetbr.lab.vm.router); the router has
# its gateway addresses, a host with ``mgmt_vlan`` its host addresses (on NIC.VLAN).
MGMT_VLAN = 10
MGMT_PLAN = AddressPlan(
    ipaddress.IPv4Network("203.0.113.0/24"), ipaddress.IPv6Network("2001:db8:10::/64"), 100
)


def address_plan(hosts: int) -> AddressPlan:
    """The smallest plan that holds ``hosts`` hosts (today's /24 plan up to MAX_HOSTS)."""
    return SMALL_PLAN if hosts <= SMALL_PLAN.max_hosts else LARGE_PLAN


def check_prefix(prefix: str, hosts: int = MAX_HOSTS) -> str:
    """Return ``prefix`` if it keeps every lab link name of ``hosts`` hosts within 15
    characters."""
    if not _PREFIX_RE.match(prefix):
        raise LabUsageError(
            f"lab prefix {prefix!r} must be 1-10 lower-case letters/digits starting with a letter"
        )
    longest = switch_port_name(prefix, hosts)
    if len(longest) > _LINK_NAME_MAX:
        raise LabUsageError(
            f"lab prefix {prefix!r} is too long for {hosts} hosts (link {longest} exceeds "
            f"{_LINK_NAME_MAX} characters): use at most "
            f"{len(prefix) - len(longest) + _LINK_NAME_MAX} characters"
        )
    return prefix


def switch_port_name(prefix: str, index: int) -> str:
    """The switch-side link name of host ``index``."""
    return f"{prefix}-p{index:02d}"


def large_lab_mac(index: int) -> str:
    """The fixed NIC MAC of host ``index`` in a large lab (locally administered)."""
    return f"02:fb:01:00:{index // 256:02x}:{index % 256:02x}"


def host_name(index: int) -> str:
    """Name of host ``index`` (1-based): hv01, hv02, ..."""
    return f"hv{index:02d}"


def host_addr4(index: int, plan: AddressPlan = SMALL_PLAN) -> str:
    """IPv4 CIDR of host ``index`` (1-based): 198.51.100.10/24, .11, ..."""
    return plan.host(index)[0]


def host_addr6(index: int, plan: AddressPlan = SMALL_PLAN) -> str:
    """IPv6 CIDR of host ``index`` (1-based): 2001:db8:100::a/64, ::b, ..."""
    return plan.host(index)[1]


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
    vm: bool = False  # VM tier (fleetbr.lab.vm): a QEMU guest, its NICs taps on the lab switch
    nics: int = 1  # VM tier: NICs into the lab switch (eth0 = nic, then eth1, ...)
    dhcp: bool = False  # distro tier: the NIC takes its addresses from the lab's DHCP server
    # VM tier: the lab's router (not in the inventory); a host whose management addresses live
    # on NIC.VLAN of this VLAN (MGMT_PLAN), reached through the router
    router: bool = False
    mgmt_vlan: int = 0

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
        return f"{self.netns}c" if self.backend and not self.vm else ""

    def namespaces(self) -> list[str]:
        """Every network namespace of this host (a distro host's container has its own)."""
        return [self.netns, self.container_netns] if self.container_netns else [self.netns]

    def ports(self) -> list[str]:
        """The host's switch ports: one per NIC (a VM's taps: the port, then port1, port2...)."""
        return [self.switch_port, *(f"{self.switch_port}{i}" for i in range(1, self.nics))]

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
    ifenslave_layer: str = ""  # VM tier: the layer of hosts with backend ifupdown (bond hooks)
    vm_image: str = ""  # VM tier: the cached image dir (base.img, kernel, initrd, VM layer)

    @property
    def gateway4_cidr(self) -> str:
        """The switch's IPv4 gateway with the lab's prefix length (the controller's)."""
        return f"{self.gateway4}/{self.controller4.split('/', 1)[1]}"

    @property
    def gateway6_cidr(self) -> str:
        """The switch's IPv6 gateway with the lab's prefix length (the controller's)."""
        return f"{self.gateway6}/{self.controller6.split('/', 1)[1]}"

    def gateways(self, host: LabHost) -> tuple[str, str]:
        """The IPv4 and IPv6 default gateway of ``host``: the switch's, or the router's on the
        management VLAN."""
        return MGMT_PLAN.gateway() if host.mgmt_vlan else (self.gateway4, self.gateway6)

    def members(self) -> list[LabHost]:
        """The hosts fleetbr manages (the inventory's): every host but the router."""
        return [h for h in self.hosts if not h.router]

    def lower(self, host: LabHost) -> str:
        """A distro host's overlay lowerdir: the libvirt layer (a host with guests) or the VM
        layer (a VM's seed is provisioned on it) over the ifupdown2 layer (a host with that
        backend; the ifenslave layer for an ifupdown VM) over the base rootfs."""
        vm_layer = f"{self.vm_image}/upper" if host.vm else ""
        ifupdown2 = self.ifupdown2_layer if host.backend == "ifupdown2" else ""
        ifenslave = self.ifenslave_layer if host.backend == "ifupdown" and host.vm else ""
        layers = (self.guest_layer if host.guests else "", vm_layer, ifupdown2, ifenslave,
                  self.rootfs)  # fmt: skip
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
    addresses = address_plan(hosts)
    members = [
        LabHost(
            name=host_name(i),
            netns=f"{prefix}-h{i:02d}",
            nic=nic,
            addr4=host_addr4(i, addresses),
            addr6=host_addr6(i, addresses),
            switch_port=switch_port_name(prefix, i),
            dir=lab_dir / "hosts" / host_name(i),
            # a large lab pins every host's MAC in the controller's neighbour table (build.py)
            mac=large_lab_mac(i) if addresses is LARGE_PLAN else "",
        )
        for i in range(1, hosts + 1)
    ]
    gateway4, gateway6 = addresses.gateway()
    controller4, controller6 = addresses.controller()
    return Lab(
        dir=lab_dir,
        prefix=prefix,
        switch_netns=f"{prefix}-sw",
        controller4=controller4,
        controller6=controller6,
        hosts=members,
        key_path=lab_dir / "id_ed25519",
        known_hosts_path=lab_dir / "known_hosts",
        inventory_dir=lab_dir / "inventory",
        gateway4=gateway4,
        gateway6=gateway6,
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
