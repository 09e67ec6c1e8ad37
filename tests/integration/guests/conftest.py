"""Fixtures for libvirt guests: one distro lab whose hosts run libvirtd and tiny TCG guests.

Separate from tests/integration/distro so that package's lab stays fast: only these tests pay
for the libvirt layer and the guests. Each host has guests ``g1``, ``g2`` (running) and ``off1``
(defined only) on the isolated libvirt network ``lab`` (fleetbr.lab.distro.guests). The lab lives
in a network namespace of its own, like the distro package's (the address plans are the same).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fleetbr.lab import Lab, LabHost, down
from fleetbr.lab.distro import reset_host, up
from tests.integration.distro.conftest import own_network_namespace
from tests.isolation import require_distro_cache

HOSTS = 3
GUESTS = 2
PREFIX = "fbrgt"


@pytest.fixture(scope="package")
def guest_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three hosts (no network daemon) with two running guests and one defined only each."""
    require_distro_cache(guests=True)
    with own_network_namespace():
        lab = up(
            tmp_path_factory.mktemp("guests") / "lab",
            HOSTS,
            "none",
            prefix=PREFIX,
            guests=GUESTS,
        )
        try:
            yield lab
        finally:
            down(lab.dir)


@pytest.fixture
def fresh_guest_host(guest_lab: Lab) -> Callable[[str], LabHost]:
    """Factory: ``fresh_guest_host("hv01")``: a fresh layer, booted, its guests running."""

    def make(name: str) -> LabHost:
        return reset_host(guest_lab, name)

    return make
