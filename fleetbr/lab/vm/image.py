"""The root disk of VM lab hosts: the distro rootfs plus a VM layer, as one raw ext4 image, cached.

The VM layer (``lab_vm_layer.sh.j2``) is an overlay upper directory on the base rootfs with kmod,
Debian's kernel modules, the real udevadm, logind rebooting on the power button and the
first-boot init that applies a VM's seed disk. The merged tree becomes ``base.img`` (raw ext4);
the kernel it boots is copied next to it and a small initrd is built there for it (its modules:
:data:`INITRD_MODULES`), so an upgrade of this machine's kernel package cannot break a cached
image. Like the rootfs, the cache entry is named after a hash of
everything that decides its content (the base's key, the kernel release and its image, the
packages and the recipe) and built under the cache's lock. Building needs the Debian mirror and
Debian's ``linux-image-amd64``: scripts/setup builds it ahead of time
(``scripts/distro-rootfs --vm``). Each VM boots from a qcow2 overlay of ``base.img``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab.distro import rootfs
from fleetbr.lab.render import render
from fleetbr.lab.system import run_build

TEMPLATE = "lab_vm_layer.sh.j2"
PACKAGES = ("kmod",)
STAMP = ".fleetbr-vm.json"
IMAGE = "base.img"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
IMAGE_SIZE = "2G"
BUILD_TIMEOUT = 1800.0
MODULES = Path("/lib/modules")
BOOT = Path("/boot")
INIT = "/usr/local/sbin/fleetbr-lab-init"
# What the VM's initrd loads to mount its root (a virtio disk, ext4); the root's /lib/modules
# has the rest. Measured side by side (one VM to its "up" line, machine at load 8-10): Debian's
# initrd (every module, zstd) 59 s of QEMU CPU, kernel phase 52 s; this one 46 s and 25 s.
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
INITRD_COMPRESS = "lz4"
# Left out of every boot (TCG emulates each instruction on one vCPU; docs/lab.md, VM tier): the
# drivers of emulated PC devices no lab VM uses, whose probes udev would run at every boot, and
# KVM (loaded for the emulated CPU's svm flag).
UNUSED_MODULES = (
    "floppy", "pcspkr", "psmouse", "serio_raw", "ata_piix", "ata_generic", "i2c_piix4",
    "kvm_amd", "kvm_intel", "kvm", "ccp", "cfg80211", "drm", "powernow_k8",
)  # fmt: skip
# Units whose mounts and modules nothing in the lab needs.
UNUSED_UNITS = (
    "modprobe@drm.service", "modprobe@efi_pstore.service", "modprobe@fuse.service",
    "modprobe@dm_mod.service", "modprobe@loop.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "dev-hugepages.mount", "dev-mqueue.mount",
    "sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
)  # fmt: skip
INSTALL_HINT = (
    "apt-get install --no-install-recommends qemu-system-x86 linux-image-amd64 kmod "
    "initramfs-tools lz4"
)


@dataclass(frozen=True)
class VmImage:
    """A built VM image: the raw root disk and the kernel and initrd that boot it."""

    dir: Path

    @property
    def disk(self) -> Path:
        """The raw ext4 root disk (each VM's qcow2 overlay has it as backing file)."""
        return self.dir / IMAGE

    @property
    def kernel(self) -> Path:
        """The kernel image."""
        return self.dir / KERNEL

    @property
    def initrd(self) -> Path:
        """The initramfs."""
        return self.dir / INITRD


def kernel_release() -> str:
    """The newest Debian kernel release on this machine with both modules and a kernel image."""
    releases = sorted(
        (p.name for p in MODULES.glob("*") if (BOOT / f"vmlinuz-{p.name}").is_file()),
        key=_version_key,
    )
    if not releases:
        raise LabError(f"the VM tier needs Debian's kernel: {INSTALL_HINT}")
    return releases[-1]


def _version_key(release: str) -> list[int]:
    return [int(part) for part in release.replace("-", ".").split(".") if part.isdigit()]


def _recipe(kver: str) -> str:
    return render(TEMPLATE, **_template_values(kver, "@BASE@", Path("@DIR@")))


def _template_values(kver: str, base: str, build: Path) -> dict[str, object]:
    return {
        "base": base,
        "upper": str(build / "upper"),
        "work": str(build / "work"),
        "root": str(build / "root"),
        "kver": kver,
        "packages": PACKAGES,
        "image": str(build / IMAGE),
        "size": IMAGE_SIZE,
        "init": render("lab_vm_init.sh.j2").rstrip("\n"),
        "ready": render("lab_vm_ready.service.j2").rstrip("\n"),
        "initrd": str(build / INITRD),
        "initrd_conf": str(build / "initramfs-tools"),
        "initrd_modules": INITRD_MODULES,
        "compress": INITRD_COMPRESS,
        "unused_modules": UNUSED_MODULES,
        "unused_units": UNUSED_UNITS,
    }


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key(spec: rootfs.Distro, kver: str) -> str:
    """A short hash of the base rootfs's key, the kernel (release and image), packages, recipe."""
    doc = {
        "base": rootfs.key(spec),
        "kernel": kver,
        "vmlinuz": _file_hash(BOOT / f"vmlinuz-{kver}"),
        "packages": sorted(PACKAGES),
        "recipe": _recipe(kver),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def path(spec: rootfs.Distro, kver: str | None = None) -> Path:
    """The cache directory of the VM image of ``spec`` (it may not exist yet)."""
    kver = kver or kernel_release()
    return rootfs.cache_dir() / f"vm-{spec.name}-{key(spec, kver)}"


def is_built(entry: Path) -> bool:
    """True if ``entry`` is complete (its stamp is written last, before the rename)."""
    return (entry / STAMP).is_file() and (entry / IMAGE).is_file()


def _build(base: Path, kver: str, final: Path) -> None:
    for stale in final.parent.glob(f".build-{final.name}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".build-{final.name}"
    for sub in ("upper", "work", "root"):
        (tmp / sub).mkdir(parents=True)
    log = final.parent / f"{final.name}.log"
    script = render(TEMPLATE, **_template_values(kver, str(base), tmp))
    started = time.monotonic()
    run_build(script, log, timeout=BUILD_TIMEOUT, what="the lab's VM image")
    shutil.copyfile(BOOT / f"vmlinuz-{kver}", tmp / KERNEL)
    for sub in ("work", "root"):
        shutil.rmtree(tmp / sub, ignore_errors=True)
    seconds = round(time.monotonic() - started, 1)
    stamp = {"base": base.name, "kernel": kver, "packages": list(PACKAGES), "seconds": seconds}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.rename(final)
    log.unlink(missing_ok=True)


def ensure(name: str = "debian12") -> VmImage:
    """The VM image of distro ``name``, built (with its base rootfs) if it is not cached."""
    spec = rootfs.distro(name)
    base = rootfs.ensure(name)
    kver = kernel_release()
    final = path(spec, kver)
    if not is_built(final):
        if os.geteuid() != 0:
            raise LabError("building the lab's VM image needs root (overlayfs, chroot)")
        if shutil.which("mkinitramfs") is None or shutil.which(INITRD_COMPRESS) is None:
            raise LabError(f"building the VM's initrd needs mkinitramfs and {INITRD_COMPRESS}: "
                           f"{INSTALL_HINT}")  # fmt: skip
        with rootfs.locked(final.parent):
            if not is_built(final):
                _build(base, kver, final)
    return VmImage(final)


def layer(entry: VmImage) -> Path:
    """The VM layer (overlay upper directory) of ``entry``: a VM's seed is provisioned on it."""
    return entry.dir / "upper"
