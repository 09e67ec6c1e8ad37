"""Bring up a lab of QEMU VM hosts: the distro tier's hosts with a real Debian kernel.

The plan, switch, keys, known_hosts and inventory are the other tiers' (fleetbr.lab.build,
model, files; fleetbr.lab.distro for the per-host backend, MAC and machine id). Each VM gets a
qcow2 overlay of the cached base image and a seed disk with its own files (identity, SSH host
key, network backend), provisioned exactly like a distro host's overlay layer, on the VM layer
(an ifupdown2 host's seed also carries the ifupdown2 layer, an ifupdown host's the ifenslave
layer: fleetbr.lab.vm.seed);
its NICs are taps on the lab switch bridge. `lab down` and `lab status` are the netns tier's.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetbr.errors import LabError, LabUsageError
from fleetbr.lab import build, files
from fleetbr.lab.distro import layer, provision, rootfs
from fleetbr.lab.distro.build import distro_plan
from fleetbr.lab.model import Lab, LabHost, check_prefix, save
from fleetbr.lab.system import ip_batch, require_tools, run
from fleetbr.lab.vm import image, machine, seed
from fleetbr.lab.vm import router as vm_router
from fleetbr.validate import integer

MAX_VMS = 8
MAX_NICS = 4
SEED_SIZE = "16M"
TOOLS = ("qemu-system-x86_64", "qemu-img", "mkfs.ext4")


def _require_qemu() -> None:
    require_tools()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"the VM lab needs {', '.join(missing)}: {image.INSTALL_HINT} qemu-utils")


def up(
    lab_dir: Path,
    hosts: int = 2,
    backend: str | Sequence[str] = "networkd",
    *,
    distro: str = "debian12",
    nics: int = 2,
    prefix: str = "fbr",
    router: bool = False,
) -> Lab:
    """Boot ``hosts`` VMs with ``nics`` NICs each (eth0, eth1, ...: all ports of the lab switch;
    ``backend`` configures eth0 with the host's lab addresses); return the lab when every VM
    accepts SSH. ``router``: one more VM routes between the controller and a management VLAN,
    where every host has its addresses instead (on eth0.10: fleetbr.lab.vm.router). Builds the
    base rootfs and VM image first if they are not cached. Cleans up if anything fails."""
    _require_qemu()
    hosts = integer(hosts, "hosts", 1, MAX_VMS)
    nics = integer(nics, "nics", 1, MAX_NICS)
    lab = distro_plan(
        Path(lab_dir), hosts, backend, distro=distro, nic="eth0", prefix=check_prefix(prefix)
    )
    for host in lab.hosts:
        host.vm = True
        host.nics = nics
    if router:
        vm_router.add(lab).vm = True  # one NIC: its VLAN rides on it through the plain switch
    lab.rootfs = str(rootfs.ensure(lab.distro))
    lab.vm_image = str(image.ensure(lab.distro).dir)
    if any(h.backend == "ifupdown2" for h in lab.hosts):  # on its seed (fleetbr.lab.vm.seed)
        lab.ifupdown2_layer = str(layer.ensure(lab.distro, layer.IFUPDOWN2))
    if any(h.backend == "ifupdown" for h in lab.hosts):  # its bond hooks, on its seed too
        lab.ifenslave_layer = str(layer.ensure(lab.distro, layer.IFENSLAVE))
    build.check_free(lab)
    return build.built(lab, _build)


def _prepare(lab: Lab, host: LabHost) -> str:
    """The VM's disk and seed; returns its SSH host key (baked into the seed)."""
    host.dir.mkdir(parents=True, exist_ok=True)
    pub = files.keygen(host.dir / files.HOST_KEY, f"root@{host.name}")
    provision.provision(lab, host)
    disk = image.VmImage(Path(lab.vm_image)).disk
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "raw",
         str(host.dir / "disk.qcow2")])  # fmt: skip
    disk_img = host.dir / "seed.img"
    run(["mkfs.ext4", "-q", "-L", "fleetbr-seed", "-d", str(seed.tree(lab, host)), str(disk_img),
         SEED_SIZE])  # fmt: skip
    return pub


def _add_taps(lab: Lab) -> None:
    ports = [port for host in lab.hosts for port in host.ports()]
    ip_batch(
        [
            *(f"tuntap add dev {port} mode tap" for port in ports),
            *(f"link set {port} master sw0 up" for port in ports),
        ],
        netns=lab.switch_netns,
    )


def _build(lab: Lab) -> None:
    pub = files.keygen(lab.key_path, f"fleetbr-lab@{lab.prefix}")
    (lab.dir / "authorized_keys").write_text(pub + "\n")
    with ThreadPoolExecutor(len(lab.hosts)) as pool:
        keys = list(pool.map(lambda h: _prepare(lab, h), lab.hosts))
        files.write_known_hosts(lab, {h.name: k for h, k in zip(lab.hosts, keys, strict=True)})
        files.write_inventory(lab)
        build.build_switch(lab)
        vm_router.add_routes(lab)
        _add_taps(lab)
        for host in lab.hosts:
            machine.start(lab, host)
        save(lab)
        deadline = time.monotonic() + machine.BOOT_TIMEOUT
        list(pool.map(lambda h: machine.wait_up(h, deadline), lab.hosts))
    save(lab)


def member(lab: Lab, host: LabHost | str) -> LabHost:
    """The VM ``host`` of ``lab``; LabUsageError if it is not a VM."""
    found = lab.host(host) if isinstance(host, str) else host
    if not found.vm:
        raise LabUsageError(f"{found.name} is not a VM lab host")
    return found


def reboot(lab: Lab, host: LabHost | str, *, hard: bool = False, wait: bool = True) -> LabHost:
    """Reboot VM ``host`` from outside (``hard``: a power cut) and wait until it accepts SSH."""
    found = member(lab, host)
    machine.reboot(lab, found, hard=hard, wait=wait)
    save(lab)
    return found
