"""`fleetbr facts` on real systemd hosts says which backend manages the NIC (and a bridge the
daemon made), in the daemon's own words, and which files hold that configuration, with the
sha256 each file has on the host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleetbr.lab import Lab, LabHost
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.helpers import fleetbr, sh

pytestmark = pytest.mark.lab

# backend -> (manager, state word, files holding eth0's configuration)
EXPECTED = {
    "none": (None, "unmanaged", []),
    "ifupdown": ("ifupdown", "up", ["/etc/network/interfaces"]),
    "networkd": ("networkd", "configured", ["/etc/systemd/network/10-eth0.network"]),
    "netplan": (
        "netplan",
        "configured",
        ["/etc/netplan/01-netcfg.yaml", "/run/systemd/network/10-netplan-eth0.network"],
    ),
    "networkmanager": (
        "networkmanager",
        "connected",
        ["/etc/NetworkManager/system-connections/eth0.nmconnection"],
    ),
}


def facts(lab: Lab, limit: str) -> dict[str, Any]:
    """``fleetbr --json facts`` of the hosts ``limit`` selects, keyed by host."""
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", limit, "facts")
    assert code == 0, (doc, err)
    return {name: result["facts"] for name, result in doc.items()}


def sha256(lab: Lab, host: str, path: str) -> str:
    return sh(lab, host, f"sha256sum {path}").split()[0]


def test_each_backend_is_named_as_the_manager_of_the_nic(distro_lab: Lab) -> None:
    # right after the boot networkd may still say configuring (seen on a quiet machine)
    for host in distro_lab.hosts:
        settled_facts(distro_lab, host.name, timeout=60)
    gathered = facts(distro_lab, "all")
    for host in distro_lab.hosts:
        eth0 = gathered[host.name]["daemons"]["interfaces"].get(host.nic)
        manager, state, paths = EXPECTED[host.backend]
        if manager is None:
            assert eth0 is None, host.name
            continue
        assert (eth0["manager"], eth0["state"]) == (manager, state), host.name
        files = [(f["path"], f["sha256"]) for f in eth0["files"]]
        assert files == [(p, sha256(distro_lab, host.name, p)) for p in paths], host.name


# The bridge takes the NIC's MAC: a new MAC for the host's address would leave the controller's
# neighbour entry stale, and SSH would fail until it expires (about 30 s).
BRIDGE = {
    "networkmanager": (
        "nmcli con add type bridge ifname br0 con-name br0 bridge.stp no ipv4.method manual "
        "ethernet.cloned-mac-address {mac} "
        "ipv4.addresses {a4} ipv4.gateway {g4} ipv6.method manual ipv6.addresses {a6} >/dev/null"
        " && nmcli con add type bridge-slave ifname {nic} master br0 con-name br0-port >/dev/null"
        " && nmcli con up br0 >/dev/null && nmcli con up br0-port >/dev/null",
        "connected",
        ["/etc/NetworkManager/system-connections/br0.nmconnection"],
    ),
    "networkd": (
        "printf '[NetDev]\\nName=br0\\nKind=bridge\\nMACAddress={mac}\\n'"
        " > /etc/systemd/network/10-br0.netdev"
        " && printf '[Match]\\nName=br0\\n[Network]\\nAddress={a4}\\nAddress={a6}\\n"
        "Gateway={g4}\\nConfigureWithoutCarrier=yes\\n' > /etc/systemd/network/10-br0.network"
        " && printf '[Match]\\nName={nic}\\n[Network]\\nBridge=br0\\n'"
        " > /etc/systemd/network/10-{nic}.network"
        " && networkctl reload && networkctl reconfigure {nic}",
        "configured",
        ["/etc/systemd/network/10-br0.network", "/etc/systemd/network/10-br0.netdev"],
    ),
}


@pytest.mark.parametrize("backend", sorted(BRIDGE))
def test_a_bridge_the_daemon_made_is_its_own(
    distro_lab: Lab, fresh_distro_host: Callable[[str], LabHost], backend: str
) -> None:
    host = next(h for h in distro_lab.hosts if h.backend == backend)
    fresh_distro_host(host.name)
    command, state, paths = BRIDGE[backend]
    values = {"a4": host.addr4, "a6": host.addr6, "g4": distro_lab.gateway4, "nic": host.nic}
    sh(distro_lab, host.name, command.format(mac=host.mac, **values))

    def bridged() -> dict[str, Any]:
        found = facts(distro_lab, host.name)[host.name]
        return dict(found["daemons"]["interfaces"].get("br0") or {})

    br0: dict[str, Any] = {}
    for _ in range(50):  # the daemon brings the bridge up in its own time
        br0 = bridged()
        if br0.get("state") == state:
            break
    assert (br0.get("manager"), br0.get("state")) == (backend, state), br0
    files = [(f["path"], f["sha256"]) for f in br0["files"]]
    assert files == [(p, sha256(distro_lab, host.name, p)) for p in paths]
    fresh_distro_host(host.name)  # leave it as the other tests expect it
