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

from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab, LabHost, host_state
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
    settled_facts,
    settled_state,
    snapshot_facts,
    state_diff,
)
from tests.integration.txhelpers import armed, events, sh

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


def test_cutting_task_is_rolled_back_files_daemon_and_kernel_as_before(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    _fresh(fresh_distro_host)
    before = on_each(HOSTS.values(), lambda h: settled_state(distro_lab, h))
    task = persist_task(tmp_path, timeout=20, addresses=[CUT])
    result = apply_all(distro_lab, HOSTS.values(), task)
    problems = {
        b: rollback_problems(distro_lab, b, result[h], *before[h]) for b, h in HOSTS.items()
    }
    assert not any(problems.values()), problems


def rollback_problems(
    lab: Lab, backend: str, got: HostResult, state: dict[str, Any], facts: HostFacts
) -> list[str]:
    """Why the host is not exactly as before the change (empty: it is)."""
    host = HOSTS[backend]
    if got.status != Status.ROLLED_BACK:
        return [f"{got.status.value}: {got.message} {got.data.get('events')}"]
    out = []
    last = sh(lab, host, "tail -n 1 /var/lib/fleetbr/journal")
    # the host rolled itself back: its timer (cut off), or its apply, whose backend tool could
    # not bring the bridge up with an unreachable gateway (NetworkManager)
    if "reason=timer " not in last and "reason=apply-failed-step-" not in last:
        out.append(f"not rolled back by the host: {last}")
    snap = snapshot_facts(lab, host, got.data["txid"])
    now = settled_facts(lab, host)
    # every backend file byte for byte (and those the change created are gone again)
    if not now.daemons.files == snap.daemons.files == facts.daemons.files:
        out.append(f"files {facts.daemons.files} -> {now.daemons.files}")
    for path, digest in snap.daemons.files.items():
        if file_sha256(lab, host, path) != digest:
            out.append(f"{path} differs from the snapshot")
    out += [
        f"{path} was created and is still there"
        for path in FILES[backend]
        if path not in snap.daemons.files and file_sha256(lab, host, path) is not None
    ]
    # the daemon's own view of the NIC, and no bridge left
    if daemon_view(now, "eth0") != daemon_view(facts, "eth0"):
        out.append(f"eth0: {daemon_view(facts, 'eth0')} -> {daemon_view(now, 'eth0')}")
    if "br0" in now.daemons.interfaces:
        out.append(f"br0 still known: {now.daemons.interfaces['br0']}")
    out += state_diff(state, host_state(lab, host))
    if armed(lab, host):
        out.append("still armed")
    return out
