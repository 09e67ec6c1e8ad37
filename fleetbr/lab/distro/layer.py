"""Layers of distro lab hosts, each built once on the base rootfs and cached (a :class:`Recipe`):

- ``GUESTS``: libvirtd, its QEMU driver and qemu-system-x86 from Debian's packages
  (``lab_distro_guests_layer.sh.j2``), for hosts with guests;
- ``IFUPDOWN2``: Debian's ifupdown2, which replaces ifupdown (the two packages conflict), for
  hosts with ``--backend ifupdown2`` (``lab_distro_ifupdown2_layer.sh.j2``).

A host mounts its layers between its own layer and the base rootfs. Like the base rootfs a layer
is named after a hash of everything that decides its content (the base's own key, the package
list and the recipe), built under the cache's lock in a ``.build-*`` directory and renamed when
complete. Building one needs the Debian mirror, so scripts/setup builds them ahead of time
(``scripts/distro-rootfs --guests --ifupdown2``).
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

STAMP = ".fleetbr-layer.json"
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Recipe:
    """One layer: its name, its build script (a template), its packages and a file of its
    upper directory that only a complete build has."""

    name: str
    template: str
    packages: tuple[str, ...]
    marker: str
    what: str  # for messages: "the lab's libvirt layer"


GUESTS = Recipe(
    "guests",
    "lab_distro_guests_layer.sh.j2",
    ("libvirt-daemon-system", "libvirt-daemon-driver-qemu", "qemu-system-x86"),
    "usr/sbin/libvirtd",
    "the lab's libvirt layer",
)
IFUPDOWN2 = Recipe(
    "ifupdown2",
    "lab_distro_ifupdown2_layer.sh.j2",
    ("ifupdown2",),
    "usr/share/ifupdown2/ifupdown2",  # usr/sbin/ifreload is an absolute symlink to it
    "the lab's ifupdown2 layer",
)


def _recipe(recipe: Recipe) -> str:
    return render(
        recipe.template,
        base="@BASE@",
        upper="@UPPER@",
        work="@WORK@",
        root="@ROOT@",
        packages=recipe.packages,
    )


def key(spec: rootfs.Distro, recipe: Recipe = GUESTS) -> str:
    """A short hash of the base rootfs's key, the packages and the recipe."""
    doc = {"base": rootfs.key(spec), "packages": sorted(recipe.packages), "recipe": _recipe(recipe)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def path(spec: rootfs.Distro, recipe: Recipe = GUESTS) -> Path:
    """The cache directory of the layer (its ``upper`` is the overlay layer itself)."""
    return rootfs.cache_dir() / f"layer-{recipe.name}-{spec.name}-{key(spec, recipe)}"


def is_built(layer: Path, recipe: Recipe = GUESTS) -> bool:
    """True if ``layer`` is complete (its stamp is written last, before the rename)."""
    return (layer / STAMP).is_file() and (layer / "upper" / recipe.marker).exists()


def _build(base: Path, final: Path, recipe: Recipe) -> None:
    for stale in final.parent.glob(f".build-{final.name}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".build-{final.name}"
    for sub in ("upper", "work", "root"):
        (tmp / sub).mkdir(parents=True)
    log = final.parent / f"{final.name}.log"
    script = render(
        recipe.template,
        base=str(base),
        upper=str(tmp / "upper"),
        work=str(tmp / "work"),
        root=str(tmp / "root"),
        packages=recipe.packages,
    )
    started = time.monotonic()
    run_build(script, log, timeout=BUILD_TIMEOUT, what=recipe.what)
    shutil.rmtree(tmp / "work", ignore_errors=True)
    (tmp / "root").rmdir()
    seconds = round(time.monotonic() - started, 1)
    stamp = {"base": base.name, "packages": list(recipe.packages), "seconds": seconds}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.rename(final)
    log.unlink(missing_ok=True)


def ensure(name: str = "debian12", recipe: Recipe = GUESTS) -> Path:
    """The layer's overlay directory for distro ``name``, built (with its base) if needed."""
    spec = rootfs.distro(name)
    base = rootfs.ensure(name)
    final = path(spec, recipe)
    if not is_built(final, recipe):
        if os.geteuid() != 0:
            raise LabError(f"building {recipe.what} needs root (overlayfs, chroot)")
        with rootfs.locked(final.parent):
            if not is_built(final, recipe):
                _build(base, final, recipe)
    return final / "upper"
