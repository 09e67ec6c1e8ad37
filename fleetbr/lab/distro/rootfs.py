"""The shared base root filesystem of distro lab hosts: built once with debootstrap, cached.

The cache entry is named after a hash of everything that decides its content (distro, variant,
package list and the customisation script), so a changed recipe gets a new directory and an old
one is never mixed with a new one. Builds take a lock, so concurrent callers build it only once.
Run ``python -m fleetbr.lab.distro.rootfs`` (scripts/distro-rootfs) to build it ahead of time.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetbr.errors import LabError, LabUsageError
from fleetbr.lab.render import render

CACHE_ENV = "FLEETBR_CACHE"
DEFAULT_CACHE = Path("/var/cache/fleetbr")
MIRROR_ENV = "FLEETBR_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
STAMP = ".fleetbr-rootfs.json"
TEMPLATE = "lab_distro_rootfs.sh.j2"
ATTEMPTS = 3
DEBOOTSTRAP_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Distro:
    """A distribution the lab can boot: its debootstrap suite and the packages of its rootfs."""

    name: str
    suite: str
    variant: str
    packages: tuple[str, ...]


# sudo is not a network tool: the tests log in as a non-root user who needs it (issue 7 part 6).
DISTROS = {
    "debian12": Distro(
        name="debian12",
        suite="bookworm",
        variant="minbase",
        packages=(
            "systemd",
            "systemd-sysv",
            "dbus",
            "libpam-systemd",
            "openssh-server",
            "iproute2",
            "netplan.io",
            "network-manager",
            "ifupdown",
            "bridge-utils",
            "iputils-ping",
            "sudo",
        ),
    ),
}


def distro(name: str) -> Distro:
    """The distro called ``name``; LabError naming the known ones otherwise."""
    try:
        return DISTROS[name]
    except KeyError:
        known = ", ".join(sorted(DISTROS))
        raise LabUsageError(f"unknown distro {name!r}; known: {known}") from None


def cache_dir() -> Path:
    """Where root filesystems are cached ($FLEETBR_CACHE, default /var/cache/fleetbr)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def recipe(spec: Distro) -> str:
    """The customisation script that follows debootstrap (rendered for a placeholder root)."""
    return render(TEMPLATE, root="@ROOT@")


def key(spec: Distro) -> str:
    """A short hash of everything that decides the rootfs content."""
    doc = {
        "distro": spec.name,
        "suite": spec.suite,
        "variant": spec.variant,
        "packages": sorted(spec.packages),
        "recipe": recipe(spec),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def path(spec: Distro) -> Path:
    """The cache directory of ``spec``'s rootfs (it may not exist yet)."""
    return cache_dir() / f"rootfs-{spec.name}-{key(spec)}"


def is_built(root: Path) -> bool:
    """True if ``root`` is a complete rootfs (the stamp is written last, before the rename)."""
    return (root / STAMP).is_file() and (root / "usr/lib/systemd/systemd").exists()


def mirror() -> str:
    """The Debian mirror: $FLEETBR_DEBIAN_MIRROR, else the first URIs of debian.sources."""
    override = os.environ.get(MIRROR_ENV)
    if override:
        return override
    with contextlib.suppress(OSError):
        for line in SOURCES.read_text().splitlines():
            field, _, value = line.partition(":")
            if field.strip() == "URIs" and value.split():
                uri = value.split()[0]
                if "security" not in uri:
                    return uri
    return DEFAULT_MIRROR


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache's build lock (builds of the rootfs and of its layers wait for each other)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".rootfs.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run_logged(argv: list[str], log: Path, stdin: str | None = None) -> bool:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=DEBOOTSTRAP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out.write(f"timed out after {DEBOOTSTRAP_TIMEOUT:.0f} s\n")
            return False
    return done.returncode == 0


def _fail(what: str, log: Path) -> LabError:
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-8:])
    return LabError(f"building the lab rootfs: {what} failed (log {log}): {tail}")


def _debootstrap(spec: Distro, tmp: Path, log: Path) -> None:
    argv = [
        "debootstrap",
        f"--variant={spec.variant}",
        f"--include={','.join(spec.packages)}",
        spec.suite,
        str(tmp),
        mirror(),
    ]
    for _ in range(ATTEMPTS):
        shutil.rmtree(tmp, ignore_errors=True)
        if _run_logged(argv, log):
            return
    raise _fail("debootstrap", log)


def _build(spec: Distro, final: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("building the lab rootfs needs debootstrap: apt-get install debootstrap")
    for stale in final.parent.glob(".build-*"):  # a build that died; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".build-{final.name}"
    log = final.parent / f"{final.name}.log"
    log.write_text("")
    started = time.monotonic()
    _debootstrap(spec, tmp, log)
    if not _run_logged(["sh", "-s"], log, stdin=render(TEMPLATE, root=str(tmp))):
        raise _fail("customising the rootfs", log)
    stamp = {
        "distro": spec.name,
        "key": key(spec),
        "packages": list(spec.packages),
        "mirror": mirror(),
        "seconds": round(time.monotonic() - started, 1),
    }
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.rename(final)
    log.unlink(missing_ok=True)


def ensure(name: str = "debian12") -> Path:
    """The rootfs of distro ``name``, built first if it is not in the cache yet."""
    spec = distro(name)
    final = path(spec)
    if is_built(final):
        return final
    if os.geteuid() != 0:
        raise LabError("building the lab rootfs needs root (debootstrap, chroot)")
    with locked(final.parent):
        if not is_built(final):
            _build(spec, final)
    return final


def main(argv: list[str] | None = None) -> int:
    """``python -m fleetbr.lab.distro.rootfs [--distro NAME] [--path]``: build (quietly) or show."""
    parser = argparse.ArgumentParser(prog="distro-rootfs", description=__doc__)
    parser.add_argument("--distro", default="debian12", choices=sorted(DISTROS))
    parser.add_argument("--path", action="store_true", help="print the cache path, build nothing")
    parser.add_argument(
        "--guests", action="store_true", help="also the libvirt layer of hosts with guests"
    )
    parser.add_argument(
        "--ifupdown2", action="store_true", help="also the layer of hosts with ifupdown2"
    )
    parser.add_argument(
        "--ifenslave", action="store_true", help="also the layer of VM hosts with ifupdown"
    )
    parser.add_argument("--vm", action="store_true", help="also the VM tier's image")
    args = parser.parse_args(argv)
    try:
        if args.path:
            print(path(distro(args.distro)))
        else:
            ensure(args.distro)
            from fleetbr.lab.distro import layer  # noqa: PLC0415 - layer imports rootfs

            if args.guests:
                layer.ensure(args.distro)
            if args.ifupdown2:
                layer.ensure(args.distro, layer.IFUPDOWN2)
            if args.ifenslave:
                layer.ensure(args.distro, layer.IFENSLAVE)
            if args.vm:
                from fleetbr.lab.vm import image  # noqa: PLC0415 - image imports rootfs

                image.ensure(args.distro)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
