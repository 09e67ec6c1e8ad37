"""``persist: auto`` on real systemd hosts, one per network backend (issue 7, parts 3 and 4).

Confirmed: the daemon that managed the NIC calls the bridge its own (configured, connected, up)
and holds it in its own files; after a reboot the bridge comes back exactly, still the daemon's.
Rolled back (a task that cuts the host off): every file the change touched is back byte for byte,
the files it created are gone, the daemon sees the NIC as before, and the kernel state is the
snapshot's. The four hosts run each case at once (2 cores: the windows overlap, not the work).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost
from fleetbr.lab.distro import reboot
from fleetbr.report import HostResult, Status
from tests.integration.distro.persisthelpers import (
    HOSTS,
    apply_all,
    bridge_view,
    daemon_view,
    file_sha256,
    on_each,
    owns,
    persist_task,
    restored_problems,
    settled_facts,
    settled_state,
)
from tests.integration.helpers import REPO, armed, events, sh

pytestmark = pytest.mark.lab

CUT = "203.0.113.9/24"  # a wrong address on the bridge: the host is cut off
ETC_NM = "/etc/NetworkManager/system-connections"
# backend -> the files the confirmed bridge lives in, and text each must hold
FILES: dict[str, dict[str, tuple[str, ...]]] = {
    "ifupdown": {
        "/etc/network/interfaces": (
            "auto br0", "iface br0 inet static", "bridge_ports eth0", "bridge_stp off",
            "bridge_fd 4", "iface br0 inet6 static",
        ),
    },
    "networkd": {
        "/etc/systemd/network/10-br0.netdev": ("Kind=bridge", "STP=no", "ForwardDelaySec=4"),
        "/etc/systemd/network/10-br0.network": ("Name=br0", "Address=198.51.100."),
        "/etc/systemd/network/10-eth0.network": ("Name=eth0", "Bridge=br0"),
    },
    "netplan": {"/etc/netplan/01-netcfg.yaml": ("bridges:", "br0:", "interfaces:", "stp: false")},
    "networkmanager": {
        f"{ETC_NM}/br0.nmconnection": ("type=bridge", "stp=false", "forward-delay=4"),
        f"{ETC_NM}/br0-port-eth0.nmconnection": ("interface-name=eth0", "slave-type=bridge"),
    },
}  # fmt: skip
# backend -> what must no longer be in a file (the NIC's own configuration)
GONE = {
    "ifupdown": ("/etc/network/interfaces", "iface eth0"),
    "networkd": ("/etc/systemd/network/10-eth0.network", "Address="),
    "netplan": ("/etc/netplan/01-netcfg.yaml", "198.51.100"),  # only under br0 now: checked below
    "networkmanager": (f"{ETC_NM}/eth0.nmconnection", "autoconnect=true"),
}


def _fresh(fresh: Callable[[str], LabHost]) -> None:
    on_each(HOSTS.values(), fresh)


def assert_persisted(lab: Lab, backend: str) -> None:
    """The daemon owns br0 (and the NIC as its port where it reports ports), from its own
    facts, and its files hold the bridge."""
    host = HOSTS[backend]
    facts = settled_facts(lab, host)
    assert owns(facts, "br0", backend), (backend, daemon_view(facts, "br0"))
    if backend != "ifupdown":  # ifupdown has no state for a port
        assert owns(facts, "eth0", backend), (backend, daemon_view(facts, "eth0"))
    bridge = facts.bridge("br0")
    assert bridge is not None and bridge.ports == ("eth0",), (backend, bridge)
    for path, needles in FILES[backend].items():
        text = sh(lab, host, f"cat {path}")
        missing = [n for n in needles if n not in text]
        assert not missing, f"{backend}: {path} lacks {missing}:\n{text}"
        assert facts.daemons.file_digest(path) == file_sha256(lab, host, path), path
    path, needle = GONE[backend]
    text = sh(lab, host, f"cat {path}")
    if backend == "netplan":
        nic_part = text.split("bridges:")[0]
        assert needle not in nic_part, text
    else:
        assert needle not in text, f"{backend}: {path} still has {needle!r}:\n{text}"
    modes = sh(lab, host, f"stat -c '%a %U' {' '.join(FILES[backend])}").split("\n")
    if backend in ("networkmanager", "netplan"):  # NM ignores keyfiles others can read
        assert all(m.startswith("600 root") for m in modes if m), modes


def test_confirmed_each_backend_owns_the_bridge_and_it_survives_a_reboot(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    _fresh(fresh_distro_host)
    result = apply_all(distro_lab, HOSTS.values(), persist_task(tmp_path))
    for backend, host in HOSTS.items():
        got = result[host]
        assert got.status == Status.CONFIRMED, (backend, got.message, got.data.get("events"))
        assert events(distro_lab, host) == ["staged", "armed", "applied", "confirmed"]
        assert not armed(distro_lab, host)
        assert_persisted(distro_lab, backend)
    confirmed = on_each(HOSTS.values(), lambda h: bridge_view(settled_facts(distro_lab, h)))
    for backend, host in HOSTS.items():
        view = confirmed[host]
        assert view["links"]["br0"][0] == view["links"]["eth0"][0] == distro_lab.host(host).mac
        assert (view["bridge"].stp, view["bridge"].forward_delay) == (False, 4), backend
        assert (view["links"]["eth0"][3], view["daemon"]["br0"]) == ("br0", backend)

    on_each(HOSTS.values(), lambda h: reboot(distro_lab, h))
    after = on_each(HOSTS.values(), lambda h: bridge_view(settled_facts(distro_lab, h)))
    for backend, host in HOSTS.items():
        assert after[host] == confirmed[host], f"{backend}: the bridge came back different"
        assert_persisted(distro_lab, backend)
        assert events(distro_lab, host) == ["staged", "armed", "applied", "confirmed"]

    # tasks/unbridge.yaml (persist: auto) reverses it in the daemon's files too, for good
    undone = apply_all(distro_lab, HOSTS.values(), REPO / "tasks" / "unbridge.yaml")
    for backend, host in HOSTS.items():
        assert undone[host].status == Status.CONFIRMED, (backend, undone[host].message)
    on_each(HOSTS.values(), lambda h: reboot(distro_lab, h))
    for backend, host in HOSTS.items():
        assert_unbridged(distro_lab, backend, confirmed[host])


def assert_unbridged(lab: Lab, backend: str, bridged: dict[str, Any]) -> None:
    """No bridge, in the kernel or the daemon's files; the NIC has the bridge's addresses and
    the daemon manages it."""
    host = HOSTS[backend]
    facts = settled_facts(lab, host)
    assert facts.bridge("br0") is None and facts.link("br0") is None, backend
    assert owns(facts, "eth0", backend), (backend, daemon_view(facts, "eth0"))
    have = sorted(a.cidr for a in facts.addresses_of("eth0"))
    assert have == sorted(address[1] for address in bridged["addresses"]), (backend, have)
    for path in FILES[backend]:
        if path.endswith((".netdev", ".nmconnection")) or "10-br0" in path:
            assert file_sha256(lab, host, path) is None, f"{backend}: {path} is still there"
        else:
            text = sh(lab, host, f"cat {path}")
            lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
            assert not [line for line in lines if "br0" in line], f"{backend}: {path}:\n{text}"


def test_cutting_task_is_rolled_back_files_daemon_and_kernel_as_before(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    _fresh(fresh_distro_host)
    before = on_each(HOSTS.values(), lambda h: settled_state(distro_lab, h))
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    result = apply_all(distro_lab, HOSTS.values(), task)
    problems = {
        b: result_problems(result[h]) or restored_problems(distro_lab, b, result[h].data["txid"],
                                                         *before[h], created=FILES[b])
        for b, h in HOSTS.items()
    }  # fmt: skip
    assert not any(problems.values()), "\n".join(
        f"{b}: {line}" for b, lines in problems.items() for line in lines
    )


def result_problems(got: HostResult) -> list[str]:
    """The controller did not report the host rolled back (empty: it did)."""
    if got.status == Status.ROLLED_BACK:
        return []
    return [f"{got.status.value}: {got.message} {got.data.get('events')}"]
