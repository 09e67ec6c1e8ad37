"""Fixtures for the distro tier: one lab of real systemd hosts (systemd-nspawn) per test session.

The netns tier's session lab and this one share an address plan, and a network namespace holds
one lab. So while this package's tests run, the test process's main thread (which makes every SSH
connection and starts every subprocess) lives in a network namespace of its own, made by the
``distro_lab`` fixture and left when the package is done. The hosts (see BACKENDS) are reset
between tests where a test needs them pristine (``fresh_distro_host``).

Like the whole integration directory this is skipped unless running as root in an isolated
namespace (tests/conftest.py); it also needs systemd-nspawn and the base rootfs that
scripts/setup builds (it cannot be built inside the isolated namespace: no mirror there). Without
them these tests fail under scripts/in-netns, naming what to run (tests/isolation.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

from fleetbr.lab import Lab, LabHost, down
from fleetbr.lab.distro import reset_host, up
from tests.isolation import require_distro_cache

# hv01, hv02: no daemon (the dead-man timer tests); then one host per daemon.
BACKENDS = ["none", "none", "ifupdown", "networkd", "netplan", "networkmanager"]
PREFIX = "fbrdt"
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def own_network_namespace() -> Iterator[None]:
    """Move this thread into a fresh network namespace (lo up) and back afterwards. Threads and
    processes it starts meanwhile inherit the new namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        if libc.setns(saved, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the test namespace failed")
        os.close(saved)


@pytest.fixture(scope="package")
def distro_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The distro lab (BACKENDS), in its own network namespace for as long as this package runs."""
    require_distro_cache()
    with own_network_namespace():
        lab = up(tmp_path_factory.mktemp("distro") / "lab", len(BACKENDS), BACKENDS, prefix=PREFIX)
        try:
            yield lab
        finally:
            down(lab.dir)


@pytest.fixture
def fresh_distro_host(distro_lab: Lab) -> Callable[[str], LabHost]:
    """Factory: ``fresh_distro_host("hv01")`` gives that host a fresh layer and reboots it."""

    def make(name: str) -> LabHost:
        return reset_host(distro_lab, name)

    return make
