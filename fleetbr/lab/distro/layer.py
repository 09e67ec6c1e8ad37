"""The libvirt layer of distro lab hosts with guests, built once on the base rootfs and cached.

An overlay upper directory holding libvirtd, its QEMU driver and qemu-system-x86 from Debian's
packages (``lab_distro_guests_layer.sh.j2``). Hosts with guests mount it between their own layer
and the base rootfs. Like the base rootfs it is named after a hash of everything that decides its
content (the base's own key, the package list and the recipe), built under the cache's lock in a
``.build-*`` directory and renamed when complete. Building it needs the Debian mirror, so
scripts/setup builds it ahead of time (``scripts/distro-rootfs --guests``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from fleetbr.errors import LabError
from fleetbr.lab.distro import rootfs
from fleetbr.lab.render import render

TEMPLATE = "lab_distro_guests_layer.sh.j2"
PACKAGES = ("libvirt-daemon-system", "libvirt-daemon-driver-qemu", "qemu-system-x86")
STAMP = ".fleetbr-layer.json"
BUILD_TIMEOUT = 1800.0


def _recipe() -> str:
    return render(
        TEMPLATE, base="@BASE@", upper="@UPPER@", work="@WORK@", root="@ROOT@", packages=PACKAGES
    )


def key(spec: rootfs.Distro) -> str:
    """A short hash of the base rootfs's key, the packages and the recipe."""
    doc = {"base": rootfs.key(spec), "packages": sorted(PACKAGES), "recipe": _recipe()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def path(spec: rootfs.Distro) -> Path:
    """The cache directory of the layer (its ``upper`` is the overlay layer itself)."""
    return rootfs.cache_dir() / f"layer-guests-{spec.name}-{key(spec)}"


def is_built(layer: Path) -> bool:
    """True if ``layer`` is complete (its stamp is written last, before the rename)."""
    return (layer / STAMP).is_file() and (layer / "upper/usr/sbin/libvirtd").exists()


def _build(base: Path, final: Path) -> None:
    for stale in final.parent.glob(f".build-{final.name}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".build-{final.name}"
    for sub in ("upper", "work", "root"):
        (tmp / sub).mkdir(parents=True)
    log = final.parent / f"{final.name}.log"
    script = render(
        TEMPLATE,
        base=str(base),
        upper=str(tmp / "upper"),
        work=str(tmp / "work"),
        root=str(tmp / "root"),
        packages=PACKAGES,
    )
    started = time.monotonic()
    with log.open("w") as out:
        try:
            done = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-s"],
                input=script,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
            failed = done.returncode != 0
        except subprocess.TimeoutExpired:
            failed = True
    if failed:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-8:])
        raise LabError(f"building the lab's libvirt layer failed (log {log}): {tail}")
    shutil.rmtree(tmp / "work", ignore_errors=True)
    (tmp / "root").rmdir()
    seconds = round(time.monotonic() - started, 1)
    stamp = {"base": base.name, "packages": list(PACKAGES), "seconds": seconds}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.rename(final)
    log.unlink(missing_ok=True)


def ensure(name: str = "debian12") -> Path:
    """The libvirt layer's overlay directory for ``name``, built (with its base) if needed."""
    spec = rootfs.distro(name)
    base = rootfs.ensure(name)
    final = path(spec)
    if not is_built(final):
        if os.geteuid() != 0:
            raise LabError("building the lab's libvirt layer needs root (overlayfs, chroot)")
        with rootfs.locked(final.parent):
            if not is_built(final):
                _build(base, final)
    return final / "upper"
