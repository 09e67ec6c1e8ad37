"""``addresses: dhcp`` persisted by the backends other than networkd on real hosts whose NIC takes
its addresses from the lab switch's DHCP server (dnsmasq, fixed IPv4 and IPv6 leases by MAC:
fleetbr.lab.dhcp): netplan (networkd renderer: the identity pinned by a networkd drop-in beside
netplan's generated file) and NetworkManager (the identity its client presented on the NIC pinned
in the bridge's profile: ipv4.dhcp-client-id, ipv6.dhcp-duid, ipv6.dhcp-iaid). The bridge gets
the very same leases, its daemon owns it, it is confirmed, then planned again unchanged; with a
bridge MAC the server does not know, the bridge gets a pool address, the host is unreachable on
its own and its dead-man timer rolls it back, at its snapshot: the NIC holds its leases again and
the file that pinned the identity is gone. A confirmed bridge comes back after a clean reboot with
the same leases, handed out anew, still its daemon's and in sync with its task; a power cut in the
dead-man window brings the host back as before (the boot guard put the files back before the
daemon started), the NIC holding its leases again, and the resuming controller says rolled_back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fleetbr.lab import Lab, down
from fleetbr.lab.dhcp import log_tail
from fleetbr.lab.distro import reset_host, up
from tests.integration.distro import persisthelpers
from tests.integration.distro.boothelpers import WINDOW
from tests.integration.distro.conftest import own_network_namespace
from tests.integration.distro.dhcphelpers import (
    bridge_holds_the_leases,
    comes_back_confirmed,
    nic_got_its_leases_back,
    power_cut_in_the_window,
    settled_leases,
)
from tests.integration.distro.persisthelpers import settled_facts
from tests.integration.helpers import fleetbr, sh
from tests.isolation import require_distro_cache

pytestmark = pytest.mark.lab
BACKENDS = ("netplan", "networkmanager")
# the host of each backend in the lab (up() numbers them in the order given)
HOSTS = {backend: f"hv{i:02d}" for i, backend in enumerate(BACKENDS, start=1)}
# what each backend writes to pin the NIC's client identity on the bridge, and what it says
IDENTITY = {
    "netplan": "/etc/systemd/network/10-netplan-br0.network.d/50-fleetbr-dhcp-identity.conf",
    "networkmanager": "/etc/NetworkManager/system-connections/br0.nmconnection",
}
PINNED = {
    "netplan": ("ClientIdentifier=duid", "[DHCPv6]\nIAID="),
    "networkmanager": ("dhcp-client-id=01:", "dhcp-duid=00:04:", "dhcp-iaid="),
}


@pytest.fixture(scope="module")
def dhcp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One DHCP client host per backend, in its own namespace."""
    require_distro_cache()
    with own_network_namespace():
        lab = up(tmp_path_factory.mktemp("dhcpb") / "lab", len(HOSTS), list(HOSTS),
                 prefix="fbrdb", dhcp_hosts=True)  # fmt: skip
        try:
            yield lab
        finally:
            down(lab.dir)


def task(tmp_path: Path, backend: str, timeout: int = 30, **bridge: object) -> Path:
    """br0 over eth0 keeping its leases, persisted by ``backend``, a ``timeout`` s dead-man
    window."""
    doc = {
        "bridge": {"name": "br0", "nic": "eth0", "addresses": "dhcp", **bridge},
        "netfilter": "keep",
        "persist": backend,
        "deadman": {"timeout": timeout},
    }
    path = tmp_path / f"dhcp-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(lab: Lab, host: str, verb: str, path: Path) -> tuple[int, str, str]:
    code, result = run_doc(lab, host, verb, path)
    return code, str(result["status"]), str(result["message"])


def run_doc(lab: Lab, host: str, verb: str, path: Path) -> tuple[int, dict[str, object]]:
    """The exit code and the host's result document."""
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, verb, str(path))
    assert isinstance(doc, dict), (doc, err)
    result = doc[host]
    assert isinstance(result, dict), doc
    return code, result


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_bridge_gets_the_nics_v4_and_v6_leases_is_confirmed_and_comes_back_after_a_reboot(
    dhcp_lab: Lab, tmp_path: Path, backend: str
) -> None:
    host = reset_host(dhcp_lab, HOSTS[backend])
    before = settled_leases(dhcp_lab, host)
    path = task(tmp_path, backend)
    code, status, message = run(dhcp_lab, host.name, "apply", path)
    assert (code, status) == (0, "confirmed"), f"{message}\n{log_tail(dhcp_lab)}"
    bridge_holds_the_leases(host, before)
    pinned = sh(dhcp_lab, host.name, f"cat {IDENTITY[backend]}")
    assert all(line in pinned for line in PINNED[backend]), pinned
    owner = settled_facts(dhcp_lab, host.name, timeout=60).manager("br0")
    assert (owner.manager, owner.state) in ((backend, "configured"), (backend, "connected"))
    again = run(dhcp_lab, host.name, "plan", path)
    assert again[1] == "unchanged", again
    comes_back_confirmed(dhcp_lab, host, backend, before, path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_address_on_the_bridge_is_rolled_back_and_the_nic_gets_its_leases_back(
    dhcp_lab: Lab, tmp_path: Path, backend: str
) -> None:
    host = reset_host(dhcp_lab, HOSTS[backend])
    before = settled_leases(dhcp_lab, host)
    path = task(tmp_path, backend, mac="02:aa:00:00:00:01")
    code, result = run_doc(dhcp_lab, host.name, "apply", path)
    status, message = result["status"], str(result["message"])
    assert status == "rolled_back", f"{code} {status} {message}\n{log_tail(dhcp_lab)}"
    assert "differences" not in result, result  # the rollback check found the host exact
    nic_got_its_leases_back(dhcp_lab, host, before, message, "02:aa:00:00:00:01")
    assert sh(dhcp_lab, host.name, f"ls {IDENTITY[backend]} 2>/dev/null || :") == ""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_power_cut_in_the_window_brings_the_host_back_as_before_with_its_leases(
    dhcp_lab: Lab, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(persisthelpers.HOSTS, backend, HOSTS[backend])  # boothelpers' checks
    host = reset_host(dhcp_lab, HOSTS[backend])
    before = settled_leases(dhcp_lab, host)
    path = task(tmp_path, backend, timeout=WINDOW)
    problems = power_cut_in_the_window(dhcp_lab, host, backend, before, path)
    if sh(dhcp_lab, host.name, f"ls {IDENTITY[backend]} 2>/dev/null || :") != "":
        problems.append(f"{IDENTITY[backend]} is still there")
    assert not problems, "\n".join([*problems, log_tail(dhcp_lab)])
