"""``persist: auto`` on a real Debian 12 host whose NIC ifupdown2 configures (issue 17, point 5):
a lab of its own (one host booted with the ifupdown2 layer, where ifupdown2 replaced ifupdown),
through the same checks as the other backends (tests/integration/distro/test_persist.py and
test_persist_reboot.py):

- confirmed: ifupdown2 owns the bridge and its port (its saved state), its file holds the bridge
  in ifupdown2's keywords; after a reboot the bridge comes back exactly; the unbridge task gives
  the NIC its stanza back, for good;
- a cutting task is rolled back exactly: the file byte for byte, ifupdown2's view, the kernel;
- a reboot after confirm comes back confirmed; a power cut in the window comes back as before;
- two bridges in one task, br0 over the NIC and host-only br9 (topohelpers.py): confirmed, both
  ifupdown2's, back after a reboot; a power cut in the window comes back as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.lab import Lab, down
from fleetbr.lab.distro import reboot, reset_host, up
from fleetbr.report import HostResult, Status
from fleetbr.transaction.protocol import Transaction
from tests.integration.distro import persisthelpers
from tests.integration.distro.boothelpers import WINDOW, check_phase, resume, to_phase
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.distro.persisthelpers import (
    apply_all,
    bridge_view,
    daemon_view,
    owns,
    persist_task,
    restored_problems,
    settled_facts,
    settled_state,
)
from tests.integration.distro.topohelpers import confirmed_then_rebooted, power_cut_in_the_window
from tests.integration.helpers import REPO, armed, events, sh
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab

HOST = "hv01"
BACKEND = "ifupdown2"
INTERFACES = "/etc/network/interfaces"
CUT = "203.0.113.9/24"  # a wrong address on the bridge: the host is cut off


@pytest.fixture(scope="module")
def ifupdown2_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One ifupdown2 host, in its own network namespace for as long as this module runs."""
    require_distro_cache(ifupdown2=True)
    with own_network_namespace():
        built = up(tmp_path_factory.mktemp("ifupdown2") / "lab", 1, BACKEND, prefix="fbri2")
        try:
            yield built
        finally:
            down(built.dir)


@pytest.fixture
def fresh(ifupdown2_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The host with a fresh layer, and the shared helpers told which host is ifupdown2's."""
    monkeypatch.setitem(persisthelpers.HOSTS, BACKEND, HOST)
    reset_host(ifupdown2_lab, HOST)
    return ifupdown2_lab


def test_the_host_runs_ifupdown2_alone(fresh: Lab) -> None:
    facts = settled_facts(fresh, HOST)
    tools = {b.name: b.present for b in facts.backends}
    assert (tools["ifupdown2"], tools["ifupdown"]) == (True, False), tools
    assert owns(facts, "eth0", BACKEND), daemon_view(facts, "eth0")


def _persisted(lab: Lab) -> str:
    facts = settled_facts(lab, HOST)
    assert owns(facts, "br0", BACKEND), daemon_view(facts, "br0")
    assert owns(facts, "eth0", BACKEND), daemon_view(facts, "eth0")
    text = sh(lab, HOST, f"cat {INTERFACES}")
    for needle in ("auto br0", "bridge-ports eth0", "bridge-stp off", "bridge-fd 4",
                   "iface eth0 inet manual", "iface br0 inet6 static"):  # fmt: skip
        assert needle in text, f"{needle!r} not in:\n{text}"
    assert "iface eth0 inet static" not in text, text
    return text


def test_confirmed_ifupdown2_owns_the_bridge_after_a_reboot_and_unbridges(
    fresh: Lab, tmp_path: Path
) -> None:
    got = apply_all(fresh, [HOST], persist_task(tmp_path))[HOST]
    assert got.status == Status.CONFIRMED, (got.message, got.data.get("events"))
    assert events(fresh, HOST) == ["staged", "armed", "applied", "confirmed"]
    assert not armed(fresh, HOST)
    text = _persisted(fresh)
    confirmed = bridge_view(settled_facts(fresh, HOST))
    assert confirmed["links"]["br0"][0] == confirmed["links"]["eth0"][0] == fresh.host(HOST).mac
    assert (confirmed["bridge"].stp, confirmed["bridge"].forward_delay) == (False, 4)

    reboot(fresh, HOST)
    assert bridge_view(settled_facts(fresh, HOST)) == confirmed
    assert _persisted(fresh) == text

    undone = apply_all(fresh, [HOST], REPO / "tasks" / "unbridge.yaml")[HOST]
    assert undone.status == Status.CONFIRMED, undone.message
    reboot(fresh, HOST)
    facts = settled_facts(fresh, HOST)
    assert facts.bridge("br0") is None and facts.link("br0") is None
    assert owns(facts, "eth0", BACKEND), daemon_view(facts, "eth0")
    have = sorted(a.cidr for a in facts.addresses_of("eth0"))
    assert have == sorted(address[1] for address in confirmed["addresses"])
    lines = sh(fresh, HOST, f"cat {INTERFACES}").splitlines()
    assert not [line for line in lines if "br0" in line and not line.startswith("#")], lines


def test_cutting_task_is_rolled_back_exactly(fresh: Lab, tmp_path: Path) -> None:
    state, facts = settled_state(fresh, HOST)
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    got = apply_all(fresh, [HOST], task)[HOST]
    assert got.status == Status.ROLLED_BACK, (got.status, got.message, got.data.get("events"))
    problems = restored_problems(
        fresh, BACKEND, got.data["txid"], state, facts, created=(INTERFACES,)
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("phase", ["window", "confirm"])
def test_a_power_cut_in_the_window_or_after_confirm(fresh: Lab, tmp_path: Path, phase: str) -> None:
    before = settled_state(fresh, HOST)
    task = persist_task(tmp_path, timeout=WINDOW)

    async def run() -> tuple[Transaction | HostResult, HostResult | None]:
        got = await to_phase(fresh, HOST, task, phase)
        await asyncio.to_thread(reboot, fresh, HOST, hard=True)
        return got, await resume(got)

    got, resumed = asyncio.run(run())
    problems = check_phase(fresh, BACKEND, phase, got, resumed, before)
    assert not problems, "\n".join(problems)


def test_two_bridges_one_host_only_confirmed_and_back_after_a_reboot(
    fresh: Lab, tmp_path: Path
) -> None:
    settled_facts(fresh, HOST)
    problems = confirmed_then_rebooted(fresh, {BACKEND: HOST}, tmp_path)
    assert not problems, "\n".join(problems)


def test_two_bridges_one_host_only_power_cut_in_the_window_back_as_before(
    fresh: Lab, tmp_path: Path
) -> None:
    before = {HOST: settled_state(fresh, HOST)}
    problems = power_cut_in_the_window(fresh, {BACKEND: HOST}, tmp_path, before)
    assert not problems, "\n".join(problems)
