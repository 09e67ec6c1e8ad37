"""Integration fixtures: one shared network-namespace lab per test session.

Everything here builds real namespaces, links and sshds, so the whole directory is skipped unless
it runs as root inside an isolated network namespace (``scripts/in-netns``): no interface but lo
and lab links may be visible, and never the machine's uplink (192.0.2.0/24).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost, down, host_state, reset_host, up

LAB_HOSTS = 20  # the 20-host rollout test uses them all; the others share hv01..hv06
LAB_PREFIX = "fbrit"
UPLINK = ipaddress.ip_network("192.0.2.0/24")
HERE = Path(__file__).parent


def _isolation_problem() -> str | None:
    """Why this process must not build a lab here, or None if it may."""
    if os.geteuid() != 0:
        return "integration tests need root"
    if not Path("/usr/sbin/sshd").exists():
        return "integration tests need openssh-server (run scripts/setup)"
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    for link in json.loads(out):
        name = link["ifname"]
        if name != "lo" and not name.endswith("-ctl"):  # a lab's controller link
            return f"not in an isolated network namespace (found {name}); use scripts/in-netns"
        for addr in link.get("addr_info", []):
            if ipaddress.ip_address(addr["local"]) in UPLINK:
                return "the machine's uplink 192.0.2.0/24 is visible; use scripts/in-netns"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test in this directory unless we are root in an isolated network namespace."""
    problem = _isolation_problem()
    if problem is None:
        return
    marker = pytest.mark.skip(
        reason=f"{problem}: scripts/in-netns .venv/bin/pytest tests/integration"
    )
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(marker)


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


@pytest.fixture
def fresh_host(lab: Lab) -> Callable[..., LabHost]:
    """Factory: ``fresh_host("hv02")`` resets that host to its post-``up`` state and returns it."""

    def make(name: str = "hv01") -> LabHost:
        return reset_host(lab, name)

    return make
