"""VLAN topologies (issue 17) against the real systemd-networkd (systemd 252) and Debian's 6.1
kernel (8021q, bridge VLAN filtering): a power cut inside the dead-man window comes back as
before, and a confirmed change survives a clean reboot, for both:

- hv01, the **VLAN-aware bridge with a VLAN interface** (the Proxmox shape without the bond):
  br0 over eth0 with ``vlan_filtering``, PVID 1 (the lab address moves to br0 and stays
  untagged, so the controller still reaches it), VLAN 20 allowed, and br0.20 with an address of
  VLAN 20;
- hv02, a **bridge over a VLAN of the NIC**: br0 over eth0.20 with an address of VLAN 20; the
  lab address stays untagged on eth0.

Both hosts sit on the same lab switch (a plain Linux bridge forwards tagged frames unchanged),
so once both are confirmed a ping across VLAN 20 (hv01's br0.20 to hv02's br0) proves the tags on
the wire are what each side expects.

One module, two VMs (networkd on eth0, eth1 idle) booted once; the tests run in file order and
both VMs work at once (TCG boots are slow): the power cut from the state the lab booted in, then
the confirm, the cross-VLAN ping and the reboot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab
from fleetbr.lab.vm import reboot
from fleetbr.plan.topology.check import expand
from fleetbr.report import HostResult, Status
from tests.integration.distro.persisthelpers import owns, settled_facts
from tests.integration.vm.conftest import booted_lab, vm_sh
from tests.integration.vm.vmhelpers import (
    before,
    cli,
    last_journal_line,
    networkctl,
    power_cut_in_window,
    restored_problems_vm,
    topology_task,
)

pytestmark = pytest.mark.lab
T = TypeVar("T")
# The dead-man window: a TCG guest takes tens of seconds to apply (networkctl reload,
# reconfigure, settle every link) on a quiet machine, and measured 6 minutes on a loaded one.
WINDOW = 600
VID = 20
HOSTS = ("hv01", "hv02")
# what each host's change creates (a rollback deletes them)
NEW = {"hv01": ("br0", "br0.20"), "hv02": ("br0", "eth0.20")}


def vlan_address(lab: Lab, host: str) -> str:
    """The host's address in VLAN 20: 203.0.113.N/24, N its lab address's last octet."""
    return f"203.0.113.{lab.host(host).ip4.rsplit('.', 1)[1]}/24"


def bridge_doc(lab: Lab, host: str) -> dict[str, Any]:
    """hv01: the VLAN-aware br0 with br0.20; hv02: br0 over eth0.20 (module docstring)."""
    address = [vlan_address(lab, host)]
    if host == "hv01":
        return {"name": "br0", "nic": "eth0", "vlan_filtering": True, "pvid": 1, "vids": [VID],
                "vlan_interfaces": [{"vid": VID, "addresses": address}]}  # fmt: skip
    return {"name": "br0", "nic": "eth0", "vlan": VID, "addresses": address}


def task(lab: Lab, host: str, tmp_path: Path) -> Path:
    """The host's task, persisted by networkd."""
    return topology_task(tmp_path, "networkd", WINDOW, bridge=bridge_doc(lab, host))


@pytest.fixture(scope="module")
def vl_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """hv01 and hv02: networkd configures eth0; eth1 is idle (no daemon)."""
    with booted_lab(tmp_path_factory, ["networkd", "networkd"], prefix="fbrvv") as lab:
        yield lab


def on_both(work: Callable[[str], T]) -> dict[str, T]:
    """``work`` on hv01 and hv02 at once."""
    with ThreadPoolExecutor(len(HOSTS)) as pool:
        return dict(zip(HOSTS, pool.map(work, HOSTS), strict=True))


def _power_cut(lab: Lab, host: str, path: Path) -> tuple[str, HostResult]:
    """Apply inside the window, kill QEMU once the new devices are there, boot, resolve."""

    def in_place() -> bool:
        return all(vm_sh(lab, host, f"ip -o link show {dev}") for dev in NEW[host])

    return power_cut_in_window(lab, host, path, WINDOW, in_place)


def test_a_power_cut_inside_the_window_comes_back_as_before(vl_lab: Lab, tmp_path: Path) -> None:
    def cut(host: str) -> list[str]:
        was = before(vl_lab, host)
        txid, resolved = _power_cut(vl_lab, host, task(vl_lab, host, tmp_path / host))
        if resolved.status != Status.ROLLED_BACK:
            return [f"{host}: {resolved.status}: {resolved.message}"]
        # the boot guard put networkd's files back before networkd started: files byte for
        # byte, networkd's view of eth0 and eth1, the kernel state as the lab booted it
        problems = restored_problems_vm(vl_lab, host, txid, was, gone=NEW[host],
                                        reasons=("reason=reboot failed_steps=0",))  # fmt: skip
        return [f"{host}: {problem}" for problem in problems]

    for host in HOSTS:
        (tmp_path / host).mkdir()
    found = on_both(cut)
    assert found == {"hv01": [], "hv02": []}, "\n".join(found["hv01"] + found["hv02"])


def vlan_aware_problems(lab: Lab, facts: HostFacts) -> list[str]:
    """What is not as hv01's confirmed task leaves it (empty: all is)."""
    out = []
    # PVID 1 is the port's (the table below): networkd sets the bridge's default PVID to none
    if "br0" not in facts.topology.vlan_filtering:
        out.append(f"br0 not VLAN-aware: {facts.topology}")
    vlan = facts.topology.vlan("br0.20")
    if vlan is None or (vlan.vid, vlan.parent) != (VID, "br0"):
        out.append(f"br0.20: {vlan}")
    have = expand(list(facts.topology.vlan_table or ()))
    want = {("eth0", 1): "pvid untagged", ("eth0", VID): "", ("br0", VID): ""}
    if {key: have.get(key) for key in want} != want:
        out.append(f"VLAN table: {have}")
    return out + _addresses(lab, facts, "hv01", {"br0": "lab", "br0.20": "vlan"})


def vlan_uplink_problems(lab: Lab, facts: HostFacts) -> list[str]:
    """What is not as hv02's confirmed task leaves it (empty: all is)."""
    out = []
    vlan = facts.topology.vlan("eth0.20")
    if vlan is None or (vlan.vid, vlan.parent) != (VID, "eth0"):
        out.append(f"eth0.20: {vlan}")
    bridge = facts.bridge("br0")
    if bridge is None or bridge.ports != ("eth0.20",):
        out.append(f"br0: {bridge}")
    return out + _addresses(lab, facts, "hv02", {"eth0": "lab", "br0": "vlan"})


def _addresses(lab: Lab, facts: HostFacts, host: str, where: dict[str, str]) -> list[str]:
    """Each of ``where``'s devices has the lab address or the VLAN 20 address, and networkd
    owns it, configured."""
    wanted = {"lab": lab.host(host).addr4, "vlan": vlan_address(lab, host)}
    out = []
    for dev, which in where.items():
        cidrs = [a.cidr for a in facts.addresses_of(dev)]
        if wanted[which] not in cidrs:
            out.append(f"{dev}: no {wanted[which]} in {cidrs}")
        if not owns(facts, dev, "networkd"):
            out.append(f"{dev} not networkd's: {facts.manager(dev)}")
    return out


CHECKS = {"hv01": vlan_aware_problems, "hv02": vlan_uplink_problems}


def ping_across_vlan_20(lab: Lab) -> None:
    """hv01's br0.20 reaches hv02's br0 through VLAN 20 (tagged on both wires)."""
    target = vlan_address(lab, "hv02").split("/")[0]
    vm_sh(lab, "hv01", f"ping -c 1 -w 20 -I br0.20 {target}")


def test_both_are_confirmed_networkd_owns_them_and_vlan_20_carries(
    vl_lab: Lab, tmp_path: Path
) -> None:
    def apply(host: str) -> tuple[int, str, str]:
        return cli(vl_lab, host, task(vl_lab, host, tmp_path / host), "apply", WINDOW + 120)

    for host in HOSTS:
        (tmp_path / host).mkdir()
    done = on_both(apply)
    assert {h: done[h][:2] for h in HOSTS} == {h: (0, "confirmed") for h in HOSTS}, done
    for host in HOSTS:
        facts = settled_facts(vl_lab, host, timeout=120)
        assert CHECKS[host](vl_lab, facts) == [], host
        view = networkctl(vl_lab, host)
        assert all(view[d][1] == "configured" for d in NEW[host]), view
    ping_across_vlan_20(vl_lab)


def test_a_reboot_after_the_confirm_keeps_both(vl_lab: Lab, tmp_path: Path) -> None:
    on_both(lambda host: reboot(vl_lab, host))
    for host in HOSTS:
        facts = settled_facts(vl_lab, host, timeout=120)
        assert CHECKS[host](vl_lab, facts) == [], host
        path = task(vl_lab, host, tmp_path)
        assert cli(vl_lab, host, path, "check", 300)[:2] == (0, "in_sync"), host
        assert cli(vl_lab, host, path, "plan", 300)[1] == "unchanged", host
        # the boot guard found the change confirmed: nothing after the confirm in the journal
        last = last_journal_line(vl_lab, host).split()
        assert last[2:3] == ["confirmed"], last
    ping_across_vlan_20(vl_lab)
