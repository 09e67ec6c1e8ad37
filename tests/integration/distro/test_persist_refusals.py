"""Refusals of ``persist:`` on real hosts (issue 7, part 7): each names its reason in one line
and changes nothing (nothing staged, the host's state as before)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetbr.lab import Lab, host_state
from tests.integration.distro.persisthelpers import HOSTS, persist_task, plan
from tests.integration.helpers import events, sh

pytestmark = pytest.mark.lab


def test_persist_none_on_a_daemon_managed_nic_is_refused_unless_accepted(
    distro_lab: Lab, tmp_path: Path
) -> None:
    host = HOSTS["networkd"]
    before, journal = host_state(distro_lab, host), events(distro_lab, host)
    code, status, message = plan(distro_lab, host, persist_task(tmp_path, persist="none"), "apply")
    assert (code, status) == (1, "refused"), message
    assert "eth0 is managed by networkd" in message and "daemon_conflict: accept" in message
    assert "\n" not in message
    accepted = persist_task(tmp_path, persist="none", top={"daemon_conflict": "accept"})
    assert plan(distro_lab, host, accepted)[1] == "planned"
    assert host_state(distro_lab, host) == before
    assert events(distro_lab, host) == journal  # nothing staged


def test_a_backend_that_does_not_run_is_refused(distro_lab: Lab, tmp_path: Path) -> None:
    host = HOSTS["networkd"]
    code, status, message = plan(distro_lab, host, persist_task(tmp_path, persist="networkmanager"))
    assert (code, status) == (1, "refused"), message
    assert message.endswith("persist: networkmanager needs networkmanager, which is not running")


@contextmanager
def hidden(lab: Lab, host: str, path: str) -> Iterator[None]:
    """``path`` is not executable on the host while active (the tool looks not installed)."""
    sh(lab, host, f"chmod a-x {path}")
    try:
        yield
    finally:
        sh(lab, host, f"chmod a+x {path}")


def test_a_backend_that_is_not_installed_is_refused(distro_lab: Lab, tmp_path: Path) -> None:
    host = "hv01"  # no network daemon
    with hidden(distro_lab, host, "/usr/sbin/netplan"):
        code, status, message = plan(distro_lab, host, persist_task(tmp_path, persist="netplan"))
    assert (code, status) == (1, "refused"), message
    assert message.endswith("persist: netplan is not installed on the host")


def test_a_netplan_nic_defined_in_two_files_is_refused(distro_lab: Lab, tmp_path: Path) -> None:
    host = HOSTS["netplan"]
    extra = "/etc/netplan/02-extra.yaml"
    sh(
        distro_lab,
        host,
        f"umask 077; printf 'network:\\n  ethernets:\\n    eth0:\\n      mtu: 1500\\n' > {extra}",
    )
    try:
        before, journal = host_state(distro_lab, host), events(distro_lab, host)
        code, status, message = plan(distro_lab, host, persist_task(tmp_path), "apply")
    finally:
        sh(distro_lab, host, f"rm -f {extra}")
    assert (code, status) == (1, "refused"), message
    assert "eth0 is defined in /etc/netplan/01-netcfg.yaml, /etc/netplan/02-extra.yaml" in message
    assert host_state(distro_lab, host) == before
    assert events(distro_lab, host) == journal  # nothing staged
