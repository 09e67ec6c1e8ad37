"""``fleetbr demo --vm``: Proxmox VE's layout on a real Debian kernel (issue 17 point 9).

Boots the VM lab's router and one ifupdown2 VM whose management addresses live on ``eth0.10``,
reached through the router (fleetbr.lab.vm.router). Applies a cutting variant first (the
management address on a VLAN the router does not serve: the host rolls back by itself), then
the layout: a VLAN-aware br0 over bond0 of eth0 and eth1, the management address on br0.10,
confirmed over a fresh connection through the router. It reports what it saw (``--json``: one
document); tests/integration/vm/test_demo_vm.py judges it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbr.changes.bridge.drift import check_facts
from fleetbr.changes.bridge.task import BridgeTask, load_task, render_task
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.facts.topology import PortVlan
from fleetbr.inventory import HostSpec, load_inventory, select_hosts
from fleetbr.lab import Lab
from fleetbr.lab.demos.distro import Say, narrator, report
from fleetbr.lab.demos.engine import apply_tasks
from fleetbr.lab.vm import router, up
from fleetbr.output import render_results
from fleetbr.report import Status
from fleetbr.transport.ssh import open_connection

BACKEND = "ifupdown2"
BOND = "bond0"


@dataclass(frozen=True)
class MgmtView:
    """Where a host's management address lives and the layout around it, from its facts."""

    device: str | None  # the interface that holds the management IPv4 address
    manager: str | None  # who manages that interface, in its own words
    vlans: tuple[str, ...]  # VLAN devices: "br0.10 vid 10 on br0"
    bond: str | None  # "bond0 active-backup eth0 eth1"
    vlan_filtering: tuple[str, ...]
    vlan_table: tuple[str, ...]  # "bond0 10", "bond0 1 pvid untagged", ...


def mgmt_view(facts: HostFacts, address: str) -> MgmtView:
    """The management view of ``facts`` for the host whose address is ``address`` (CIDR)."""
    device = next((a.dev for a in facts.addresses if a.cidr == address), None)
    bond = facts.topology.bond(BOND)
    table = sorted(
        f"{dev} {vid}" + (f"-{end}" if end != vid else "") + " pvid" * pvid + " untagged" * untagged
        for dev, vid, end, pvid, untagged in _ranges(facts.topology.vlan_table or ())
    )
    return MgmtView(
        device=device,
        manager=facts.manager(device).manager if device else None,
        vlans=tuple(sorted(f"{v.name} vid {v.vid} on {v.parent}" for v in facts.topology.vlans)),
        bond=f"{bond.name} {bond.mode} {' '.join(sorted(bond.slave_names))}" if bond else None,
        vlan_filtering=facts.topology.vlan_filtering,
        vlan_table=tuple(table),
    )


def _ranges(entries: Iterable[PortVlan]) -> list[tuple[str, int, int, bool, bool]]:
    """The VLAN table with runs of neighbouring VLANs of a port merged (the kernel may list each
    VLAN of ``100-199`` alone)."""
    out: list[tuple[str, int, int, bool, bool]] = []
    for e in sorted(entries, key=lambda e: (e.dev, e.vid)):
        last = out[-1] if out else None
        if (
            last
            and (last[0], last[3], last[4]) == (e.dev, e.pvid, e.untagged)
            and (e.vid == last[2] + 1)
        ):
            out[-1] = (e.dev, last[1], e.vid_end, e.pvid, e.untagged)
        else:
            out.append((e.dev, e.vid, e.vid_end, e.pvid, e.untagged))
    return out


@dataclass
class ProxmoxDemo:
    """Everything the demo saw (``fleetbr --json demo --vm``)."""

    host: str = ""
    address: str = ""
    router: str = ""
    before: MgmtView | None = None
    cut_status: str = "not run"
    cut_message: str = ""
    after_cut: MgmtView | None = None
    status: str = "not run"
    message: str = ""
    after_confirm: MgmtView | None = None
    check_after_confirm: str = ""

    @property
    def restored(self) -> bool:
        """After the cutting variant the host is laid out as before it."""
        return self.after_cut is not None and self.after_cut == self.before

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**dataclasses.asdict(self), "restored": self.restored}

    def summary(self) -> str:
        """One line: what the cutting variant and the layout did."""
        back = "restored" if self.restored else "NOT as before"
        where = self.after_confirm.device if self.after_confirm else None
        return (
            f"demo: {self.host}: cutting variant {self.cut_status} ({back}); Proxmox layout "
            f"{self.status}, management on {where}; check: {self.check_after_confirm}"
        )


def run_vm_demo(
    lab_dir: Path, *, task: Path, cut_task: Path, timeout: int | None, keep: bool, as_json: bool
) -> int:
    """Run the demo and report what the host did; 0 once it ran to its end, whatever the host
    did (the report says it; tests/integration/vm/test_demo_vm.py judges it). ``timeout``
    overrides the layout task's dead-man timeout (the cutting variant keeps its own)."""
    say = narrator(as_json)
    say(f"1/4 booting two QEMU VMs (TCG, Debian's kernel): the lab's router, which tags for the "
        f"controller, and one {BACKEND} host managed on eth0.10 behind it (minutes on a busy "
        "machine)")  # fmt: skip
    lab = up(lab_dir, 1, BACKEND, nics=2, router=True)
    demo = ProxmoxDemo()
    run = functools.partial(_run, lab, demo, (cut_task, task), timeout=timeout, say=say,
                            as_json=as_json)  # fmt: skip
    return report(lab, lab_dir, demo, run, keep=keep, as_json=as_json, say=say)


def _run(
    lab: Lab, demo: ProxmoxDemo, paths: tuple[Path, Path], *, timeout: int | None, say: Say,
    as_json: bool,
) -> None:  # fmt: skip
    (spec,) = select_hosts(load_inventory(lab.inventory_dir), None)
    host, gateway = lab.host(spec.name), router.find(lab)
    demo.host, demo.address = host.name, host.addr4
    demo.router = f"{gateway.name} {gateway.ip4}" if gateway else ""
    cut, layout = (render_task(load_task(p), spec.context()) for p in paths)
    if timeout is not None:
        layout = dataclasses.replace(layout, deadman_timeout=timeout)
    demo.before = _view(spec, host.addr4)
    before = demo.before
    say(f"2/4 facts: {host.name} is reached at {host.addr4} through the router {demo.router}; "
        f"the address lives on {before.device} ({before.manager})")  # fmt: skip
    say(f"3/4 applying {paths[0]} (VLAN 10 not carried, the address on br0.20: cut off); the "
        f"host must roll back by itself within {cut.deadman_timeout}s")  # fmt: skip
    result = _apply(lab, spec, cut, paths[0], as_json)
    demo.cut_status, demo.cut_message = result
    demo.after_cut = _view(spec, host.addr4)
    say(f"  {host.name}  {demo.cut_status}; now on {demo.after_cut.device}: "
        f"{'as before' if demo.restored else 'NOT as before'}")  # fmt: skip
    say(
        f"4/4 applying {paths[1]}: bond0 of eth0 and eth1 under a VLAN-aware br0, the management "
        "address moved from eth0.10 to br0.10, confirmed over a fresh connection via the router"
    )
    demo.status, demo.message = _apply(lab, spec, layout, paths[1], as_json)
    facts = _facts(spec)
    demo.after_confirm = mgmt_view(facts, host.addr4)
    demo.check_after_confirm = _check(layout, facts)
    after = demo.after_confirm
    say(f"  {host.name}  {demo.status}; management on {after.device} ({after.manager}); "
        f"{after.bond}; VLANs {', '.join(after.vlans)}")  # fmt: skip
    say(f"  {host.name}  check: {demo.check_after_confirm}")


def _apply(
    lab: Lab, spec: HostSpec, task: BridgeTask, path: Path, as_json: bool
) -> tuple[str, str]:
    result = asyncio.run(apply_tasks([spec], {spec.name: task}, path, label=f"demo-vm-{path.stem}",
                                     forks=1, history=lab.dir / "history.sqlite3"))  # fmt: skip
    if not as_json:
        render_results(result, as_json=False)
    got = result[spec.name]
    return got.status.value, got.message


def _facts(spec: HostSpec) -> HostFacts:
    async def one() -> HostFacts:
        async with open_connection(spec) as conn:
            return await gather(conn)

    return asyncio.run(one())


def _view(spec: HostSpec, address: str) -> MgmtView:
    return mgmt_view(_facts(spec), address)


def _check(task: BridgeTask, facts: HostFacts) -> str:
    """What ``fleetbr check`` says of the host against the task (with the reason unless in
    sync)."""
    found = check_facts(task, facts)
    if found.status is Status.IN_SYNC or not found.message:
        return found.status.value
    return f"{found.status.value}: {found.message}"
