"""May this test process build network labs here? One answer for every test that needs root in
an isolated network namespace (tests/unit/test_steps_netns.py and tests/integration), and one
decision when it may not: skip, or fail when isolation was promised.

``scripts/in-netns`` (and so ``scripts/test``) sets ``FLEETBR_EXPECT_ISOLATION=1``: under it a
lab test that cannot run is an error of the run, never a silent skip. Without it (a plain
``pytest`` on a workstation) those tests are skipped with the reason.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

EXPECT_ENV = "FLEETBR_EXPECT_ISOLATION"
# The machine's uplink: never visible inside an isolated namespace.
UPLINKS = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("fd00::/64"))


def isolation_problem(*, sshd: bool = False) -> str | None:
    """Why this process must not build a lab here (None: it may). ``sshd``: the lab's hosts
    run OpenSSH servers (the integration tier)."""
    if os.geteuid() != 0:
        return "lab tests need root"
    if shutil.which("ip") is None:
        return "lab tests need iproute2 (ip)"
    if sshd and not Path("/usr/sbin/sshd").exists():
        return "integration tests need openssh-server (run scripts/setup)"
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return f"`ip -j addr` failed: {out.stderr.strip()}"
    for link in json.loads(out.stdout):
        name = link["ifname"]
        if name != "lo" and not name.endswith("-ctl"):  # a lab's controller link
            return f"not in an isolated network namespace (found {name}); use scripts/in-netns"
        for addr in link.get("addr_info", []):
            if any(ipaddress.ip_address(addr["local"]) in net for net in UPLINKS):
                return "the machine's uplink is visible; use scripts/in-netns"
    return None


def isolation_expected() -> bool:
    """The run was started through scripts/in-netns: lab tests must run, not skip."""
    return os.environ.get(EXPECT_ENV) == "1"


def unavailable(reason: str) -> NoReturn:
    """A lab a test needs cannot be built here: fail under scripts/in-netns, else skip."""
    if isolation_expected():
        pytest.fail(f"{reason} ({EXPECT_ENV}=1: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_distro_cache(
    *, guests: bool = False, ifupdown2: bool = False, distro: str = "debian12"
) -> None:
    """The distro tier's rootfs (and, for ``guests``, its libvirt layer; for ``ifupdown2``, its
    ifupdown2 layer) must be in the cache:
    the tests run in an isolated namespace, where debootstrap and apt cannot reach a mirror, so
    building them there only fails, with apt's errors. Check first and say what to run."""
    # imported here: tests/conftest.py imports this module, and importing fleetbr (which filters
    # asyncssh's import-time warnings) during conftest loading loses that filter for the tests
    from fleetbr.lab.distro import layer, rootfs

    if shutil.which("systemd-nspawn") is None:
        unavailable("the distro lab needs systemd-nspawn: run scripts/setup")
    spec = rootfs.distro(distro)
    missing = [] if rootfs.is_built(rootfs.path(spec)) else [str(rootfs.path(spec))]
    if guests and not layer.is_built(layer.path(spec)):
        missing.append(str(layer.path(spec)))
    if ifupdown2 and not layer.is_built(layer.path(spec, layer.IFUPDOWN2), layer.IFUPDOWN2):
        missing.append(str(layer.path(spec, layer.IFUPDOWN2)))
    if missing:
        build = "scripts/distro-rootfs" + " --guests" * guests + " --ifupdown2" * ifupdown2
        unavailable(
            f"the distro lab's cache is not built ({', '.join(missing)}): run scripts/setup (or "
            f"{build}) as root, outside scripts/in-netns: it needs the Debian mirror"
        )
