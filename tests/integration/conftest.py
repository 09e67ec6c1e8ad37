"""Integration fixtures: one shared network-namespace lab per test session.

Everything here builds real namespaces, links and sshds, so the whole directory runs only as root
inside an isolated network namespace (``scripts/in-netns``): no interface but lo and lab links may
be visible, and never the machine's uplink. Elsewhere it is skipped, and under scripts/in-netns
it fails instead (tests/conftest.py, tests/isolation.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost, down, host_state, reset_host, up
from tests.integration.helpers import SUDO_HOST, lab_fingerprints, pristine_hosts, sudo_users

LAB_HOSTS = 20  # the 20-host rollout test uses them all; the others share hv01..hv06
LAB_PREFIX = "fbrit"


@pytest.fixture(scope="session")
def _lab_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Lab, dict[str, dict[str, Any]]]]:
    built = up(tmp_path_factory.mktemp("lab") / "lab", hosts=LAB_HOSTS, prefix=LAB_PREFIX)
    try:
        with ThreadPoolExecutor(LAB_HOSTS) as pool:
            states = list(pool.map(lambda h: host_state(built, h), built.hosts))
        yield built, {h.name: state for h, state in zip(built.hosts, states, strict=True)}
    finally:
        down(built.dir)


@pytest.fixture(scope="session")
def lab(_lab_session: tuple[Lab, dict[str, dict[str, Any]]]) -> Lab:
    """A lab of LAB_HOSTS hosts shared by the whole session; ``fresh_host`` resets hosts."""
    return _lab_session[0]


@pytest.fixture(scope="session")
def pristine(_lab_session: tuple[Lab, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``host_state`` of every lab host taken right after ``up``, keyed by host name."""
    return _lab_session[1]


@pytest.fixture(scope="session")
def _pristine_prints(lab: Lab) -> dict[str, str]:
    """``lab_fingerprints`` taken before the first test that uses the lab runs."""
    return lab_fingerprints(lab)


@pytest.fixture(autouse=True)
def _pristine_lab(request: pytest.FixtureRequest) -> None:
    """Every test that uses the netns lab starts on pristine hosts, whatever ran before it (in
    whatever order): a cheap fingerprint of every host, and ``reset_host`` for those that differ
    from right after ``up``."""
    if "lab" in request.fixturenames:
        pristine_hosts(request.getfixturevalue("lab"), request.getfixturevalue("_pristine_prints"))


@pytest.fixture
def fresh_host(lab: Lab) -> Callable[..., LabHost]:
    """Factory: ``fresh_host("hv02")`` resets that host to its post-``up`` state and returns it."""

    def make(name: str = "hv01") -> LabHost:
        return reset_host(lab, name)

    return make


@pytest.fixture
def users(lab: Lab, fresh_host: Callable[..., LabHost]) -> Iterator[None]:
    """SUDO_HOST (hv06), reset, with user ``ops`` (passwordless sudo) and ``nosudo`` (no sudoers
    entry); reset again afterwards."""
    fresh_host(SUDO_HOST)
    with sudo_users(lab):
        yield
