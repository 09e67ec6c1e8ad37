"""Fixtures for the VM tier: one lab of two QEMU VMs (two NICs each) per test module.

TCG boots are slow (one vCPU each, tens of seconds on a quiet machine, minutes on a loaded one),
so a module boots its VMs once and its tests run in order on them. Like the distro tier, the lab
lives in a network namespace of its own while the module runs (the netns and distro labs share
the address plan). Skipped unless running as root in an isolated namespace (tests/conftest.py);
it also needs QEMU and the VM image that scripts/setup builds (not buildable inside the isolated
namespace: no mirror there). Without them these tests fail under scripts/in-netns, naming what
to run.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetbr.lab import Lab, down
from fleetbr.lab.distro import layer, rootfs
from fleetbr.lab.vm import image, up
from fleetbr.lab.vm.build import TOOLS
from tests.integration.distro.conftest import own_network_namespace
from tests.isolation import unavailable

PREFIX = "fbrvm"
# hv01: networkd manages eth0 (facts); hv02: no daemon, so a runtime-only apply is not refused
BACKENDS = ["networkd", "none"]


def require_vm_cache(distro: str = "debian12") -> None:
    """QEMU, and the base rootfs and VM image in the cache (built by scripts/setup)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        unavailable(f"the VM lab needs {', '.join(missing)}: run scripts/setup")
    spec = rootfs.distro(distro)
    if not rootfs.is_built(rootfs.path(spec)) or not image.is_built(image.path(spec)):
        unavailable(
            "the VM lab's image is not built: run scripts/setup (or scripts/distro-rootfs --vm) as "
            "root, outside scripts/in-netns: it needs the Debian mirror"
        )


def require_ifenslave_layer(distro: str = "debian12") -> None:
    """The VM image's ifenslave layer (classic ifupdown's bonds), built by scripts/setup."""
    spec = rootfs.distro(distro)
    if not layer.is_built(layer.path(spec, layer.IFENSLAVE), layer.IFENSLAVE):
        unavailable(
            "the VM lab's ifenslave layer is not built: run scripts/setup (or scripts/distro-rootfs"
            " --ifenslave) as root, outside scripts/in-netns: it needs the Debian mirror"
        )


@contextmanager
def booted_lab(
    tmp_path_factory: pytest.TempPathFactory, backends: list[str], prefix: str = PREFIX
) -> Iterator[Lab]:
    """VMs with ``backends`` on eth0 (eth1 unconfigured), two NICs each, in a network namespace
    of their own, every one fully booted; taken down afterwards."""
    require_vm_cache()
    with own_network_namespace():
        lab = up(tmp_path_factory.mktemp("vm") / "lab", len(backends), backends, nics=2,
                 prefix=prefix)  # fmt: skip
        try:
            for host in lab.hosts:  # a guest still booting stalls SSH sessions on a busy machine
                ssh(lab, host.ip4, "systemctl is-system-running --wait")
            yield lab
        finally:
            close_shared(lab)
            down(lab.dir)


@pytest.fixture(scope="module")
def vm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two VMs (hv01, hv02: BACKENDS on eth0, eth1 unconfigured), up for the whole module."""
    with booted_lab(tmp_path_factory, BACKENDS) as lab:
        yield lab


# The test side's own commands (vm_sh, the polls of vmhelpers) share one SSH connection per VM
# (OpenSSH's ControlMaster): a TCG guest spends ~1 s of emulated CPU on each login (sshd's
# re-exec, the key exchange, the PAM session), and three VM jobs share the machine's 2 cores with
# the rest of the suite. fleetbr's own connections never go through it, nor does a check that needs
# a new connection (``ssh(..., shared=False)``, the default). The keepalives end a connection a
# reboot or a power cut left dead; a command that fails on it (255) runs again on a connection of
# its own.
_SHARED = ("-o", "ControlMaster=auto", "-o", "ControlPersist=120", "-o", "ServerAliveInterval=5",
           "-o", "ServerAliveCountMax=3")  # fmt: skip
_SOCKET_MAX = 100  # sun_path holds 108 bytes


def control_path(lab: Lab, address: str) -> str | None:
    """The shared connection's socket for ``address`` (in the lab dir: gone with the lab); None
    when the path would be too long for a socket."""
    path = str(lab.dir / f"mux-{address}")
    return path if len(path.encode()) <= _SOCKET_MAX else None


def ssh(
    lab: Lab, address: str, command: str, known_hosts: str | None = None, shared: bool = False
) -> subprocess.CompletedProcess[str]:
    """OpenSSH as root to ``address``, trusting only the lab's known_hosts (or ``known_hosts``);
    ``shared``: over the VM's shared connection (above), never with another ``known_hosts``."""
    argv = ["ssh", "-F", "/dev/null", "-i", str(lab.key_path), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts or lab.known_hosts_path}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"]  # fmt: skip
    path = control_path(lab, address) if shared and known_hosts is None else None
    if path is not None:
        done = _ssh([*argv, *_SHARED, "-o", f"ControlPath={path}"], address, command)
        if done.returncode != 255 or ("mux_client" not in done.stderr
                                      and _master_alive(path, address)):  # fmt: skip
            return done  # 255 with the connection alive: the command's own exit status
    return _ssh([*argv, "-o", "ControlPath=none"], address, command)


def _master_alive(path: str, address: str) -> bool:
    return subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "check", address],
                          capture_output=True, timeout=30, check=False).returncode == 0  # fmt: skip


def _ssh(argv: list[str], address: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, f"root@{address}", command], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def close_shared(lab: Lab) -> None:
    """End the shared connections of ``lab``'s VMs (before the lab goes down)."""
    for host in lab.hosts:
        path = control_path(lab, host.ip4)
        if path is not None and Path(path).exists():  # no master there: `-O exit` just fails
            subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "exit", host.ip4],
                           capture_output=True, timeout=30, check=False)  # fmt: skip


def vm_sh(lab: Lab, host: str, command: str) -> str:
    """Run ``command`` on VM ``host`` over SSH; its stdout (AssertionError if it fails)."""
    done = ssh(lab, lab.host(host).ip4, command, shared=True)
    assert done.returncode == 0, (host, command, done.stderr)
    return done.stdout
