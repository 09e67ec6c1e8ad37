"""Layers of distro lab hosts, each built once on the base rootfs and cached (a :class:`Recipe`):

- ``GUESTS``: libvirtd, its QEMU driver and qemu-system-x86 from Debian's packages
  (``lab_distro_guests_layer.sh.j2``), for hosts with guests;
- ``IFUPDOWN2``: Debian's ifupdown2, which replaces ifupdown (the two packages conflict), for
  hosts with ``--backend ifupdown2`` (``lab_distro_package_layer.sh.j2``);
- ``IFENSLAVE``: Debian's ifenslave, ifupdown's bond hooks (``bond-slaves``, ``bond-master``:
  /etc/network/if-pre-up.d/ifenslave), for VM hosts with ``--backend ifupdown`` (the VM seed
  carries it: fleetbr.lab.vm.seed). It depends on ifupdown, so it can be neither in the base
  (ifupdown2's layer removes ifupdown) nor on ifupdown2 hosts, whose ifupdown2 would run its hooks
  beside its own bond addon (``addon_scripts_support=1``).

A host mounts its layers between its own layer and the base rootfs. Like the base rootfs a layer
is named after a hash of everything that decides its content (the base's own key, the package
list and the recipe), built under the cache's lock in a ``.build-*`` directory and renamed when
complete. Building one needs the Debian mirror, so scripts/setup builds them ahead of time
(``scripts/distro-rootfs --guests --ifupdown2 --ifenslave``).
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
    check: str = ""  # an executable the packages install (the package template tests it)


GUESTS = Recipe(
    "guests",
    "lab_distro_guests_layer.sh.j2",
    ("libvirt-daemon-system", "libvirt-daemon-driver-qemu", "qemu-system-x86"),
    "usr/sbin/libvirtd",
    "the lab's libvirt layer",
)
_PACKAGES = "lab_distro_package_layer.sh.j2"
IFUPDOWN2 = Recipe(
    "ifupdown2",
    _PACKAGES,
    ("ifupdown2",),
    "usr/share/ifupdown2/ifupdown2",  # usr/sbin/ifreload is an absolute symlink to it
    "the lab's ifupdown2 layer",
    "/usr/sbin/ifreload",
)
IFENSLAVE = Recipe(
    "ifenslave",
    _PACKAGES,
    ("ifenslave",),
    "etc/network/if-pre-up.d/ifenslave",
    "the lab's ifenslave layer",
    "/etc/network/if-pre-up.d/ifenslave",
)


def _render(recipe: Recipe, base: str, upper: str, work: str, root: str) -> str:
    return render(
        recipe.template,
        name=recipe.name,
        base=base,
        upper=upper,
        work=work,
        root=root,
        packages=recipe.packages,
        check=recipe.check,
    )


def _recipe(recipe: Recipe) -> str:
    return _render(recipe, "@BASE@", "@UPPER@", "@WORK@", "@ROOT@")


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
    script = _render(recipe, str(base), str(tmp / "upper"), str(tmp / "work"), str(tmp / "root"))
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
