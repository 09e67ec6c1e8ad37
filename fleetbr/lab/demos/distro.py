"""``fleetbr demo --distro``: one real systemd host per network backend, each cut over to br0 with
``persist: auto`` under the dead-man timer, one of them with a libvirt guest moved onto br0 in the
same transaction, plus a networkd host whose NIC holds DHCP leases that br0 keeps (``addresses:
dhcp``), then the NetworkManager host rebooted: the facts show the bridge back, owned by the same
daemon, from the same files. It reports what it saw (``--json``: one document);
tests/integration/distro/test_demo_distro.py judges it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetbr.backends import registry
from fleetbr.changes.bridge.drift import check_facts
from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, load_task, render_task
from fleetbr.errors import FleetbrError
from fleetbr.facts.gather import gather
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec, load_inventory, select_hosts
from fleetbr.lab import Lab, dhcp, down, host_exec
from fleetbr.lab.demos import distro_dhcp as dhcp_demo
from fleetbr.lab.demos import distro_guests as guest_demo
from fleetbr.lab.demos.distro_dhcp import LeaseView
from fleetbr.lab.demos.distro_guests import GuestIface, guest_lines
from fleetbr.lab.demos.engine import apply_tasks
from fleetbr.lab.dhcp import ServerLease
from fleetbr.lab.distro import reboot, up
from fleetbr.output import Human, print_json, render_results
from fleetbr.report import Status
from fleetbr.transaction.verdict import daemons_settling
from fleetbr.transport.ssh import open_connection

BACKENDS = ("ifupdown", "networkd", "netplan", "networkmanager")
HOSTS = dhcp_demo.hosts_with_dhcp(BACKENDS)  # one host per backend, then the DHCP host
REBOOT_BACKEND = "networkmanager"  # the host rebooted after confirm
SETTLE_SECONDS = 60.0  # after a reboot, how long the daemon may take to bring the bridge up


@dataclass(frozen=True)
class BridgeView:
    """The bridge as one host's facts show it: kernel state and the daemon's own view."""

    ports: tuple[str, ...]
    stp: bool
    mac: str | None
    addresses: tuple[str, ...]
    routes: tuple[str, ...]  # "v4 default via 198.51.100.1 metric 100 table main"
    manager: str | None  # the backend that manages the bridge, in its own words
    state: str
    nic_manager: str | None
    files: tuple[tuple[str, str | None], ...]  # the manager's files of the bridge and sha256

    def owned_by(self, backend: str, nic: str) -> bool:
        """The NIC is the bridge's port and ``backend`` calls the bridge its own, settled."""
        return (
            nic in self.ports
            and self.manager == backend
            and registry.is_settled(backend, self.state)
        )


def bridge_view(facts: HostFacts, bridge: str, nic: str) -> BridgeView | None:
    """What the facts say about ``bridge`` (None: there is no such bridge)."""
    found = facts.bridge(bridge)
    link = facts.link(bridge)
    if found is None or link is None:
        return None
    manager = facts.manager(bridge)
    routes = sorted(
        f"v{r.family} {r.dst}" + (f" via {r.gateway}" if r.gateway else "")
        + f" metric {r.metric} table {r.table}"
        for r in facts.routes_of(bridge) if not r.kernel_made
    )  # fmt: skip
    return BridgeView(
        ports=found.ports,
        stp=found.stp,
        mac=link.mac,
        addresses=tuple(sorted(a.cidr for a in facts.addresses_of(bridge))),
        routes=tuple(routes),
        manager=manager.manager,
        state=manager.state,
        nic_manager=facts.manager(nic).manager,
        files=tuple(sorted((f.path, f.sha256) for f in manager.files)),
    )


@dataclass
class HostOutcome:
    """One host of the demo, as data (``fleetbr --json demo --distro``)."""

    backend: str
    nic: str
    nic_manager_before: str | None = None
    status: str = "not run"
    message: str = ""
    after_confirm: BridgeView | None = None
    check_after_confirm: str = ""  # what `fleetbr check` says of the task: in_sync
    rebooted: bool = False
    boot_ids: tuple[str, str] | None = None
    after_reboot: BridgeView | None = None
    check_after_reboot: str = ""
    # The host with a libvirt guest (None elsewhere): its interfaces before and after confirm.
    guests_before: tuple[GuestIface, ...] | None = None
    guests_after_confirm: tuple[GuestIface, ...] | None = None
    # The DHCP host (None elsewhere): its leases before (on the NIC) and after confirm (on the
    # bridge), as the host holds them and as the lab's DHCP server recorded them.
    leases_before: tuple[LeaseView, ...] | None = None
    leases_after_confirm: tuple[LeaseView, ...] | None = None
    server_leases_before: tuple[ServerLease, ...] | None = None
    server_leases_after_confirm: tuple[ServerLease, ...] | None = None


@dataclass
class DistroDemo:
    """Everything the demo saw."""

    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    rebooted: str | None = None
    guest_host: str | None = None  # the host whose guest moved onto the bridge
    dhcp_host: str | None = None  # the host whose bridge kept the NIC's DHCP leases

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"rebooted": self.rebooted, "guest_host": self.guest_host,
                "dhcp_host": self.dhcp_host,
                "hosts": {n: dataclasses.asdict(h) for n, h in self.hosts.items()}}  # fmt: skip

    def summary(self) -> str:
        """One line of what happened: statuses, and what ``check`` said after confirm."""
        statuses = _counted(h.status for h in self.hosts.values())
        checks = _counted(h.check_after_confirm for h in self.hosts.values())
        line = f"demo: {len(self.hosts)} hosts: {statuses}; check after confirm: {checks}"
        if self.rebooted is not None:
            after = self.hosts[self.rebooted].check_after_reboot
            line += f"; after the reboot of {self.rebooted}: {after}"
        if self.dhcp_host is not None:
            line += f"; {self.dhcp_host}'s DHCP leases on br0: {self.leases_compared()}"
        return line

    def leases_compared(self) -> str:
        """The DHCP host's leases on its bridge against its NIC's, in words."""
        host = self.hosts[self.dhcp_host or ""]
        return dhcp_demo.compared(
            (host.leases_before, host.leases_after_confirm),
            (host.server_leases_before, host.server_leases_after_confirm),
        )


def _counted(values: Iterable[str]) -> str:
    """``3 confirmed, 1 failed``: each value with how often it occurs, in order of first sight."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{n} {value or 'none'}" for value, n in counts.items()) or "none"


def run_distro_demo(lab_dir: Path, *, task: Path, timeout: int, keep: bool, as_json: bool) -> int:
    """Run the demo and report what every host did; 0 once it ran to its end, whatever the hosts
    did (the report says it; tests/integration/distro/test_demo_distro.py judges it)."""
    say = narrator(as_json)
    say(f"1/5 booting {len(HOSTS)} Debian 12 hosts (systemd-nspawn), one per network backend: "
        f"{', '.join(BACKENDS)}; the {guest_demo.GUEST_BACKEND} host with libvirtd and a tiny "
        f"TCG guest on the libvirt network lab; and a {dhcp_demo.DHCP_BACKEND} host whose NIC "
        "takes fixed IPv4 and IPv6 leases from the switch's DHCP server (dnsmasq)")  # fmt: skip
    counts = guest_demo.guest_counts(HOSTS)
    lab = up(lab_dir, hosts=len(HOSTS), backend=list(HOSTS), guests=counts,
             dhcp_hosts=dhcp_demo.dhcp_flags(HOSTS))  # fmt: skip
    demo = DistroDemo()
    run = functools.partial(_run, lab, demo, load_task(task), timeout=timeout, say=say,
                            as_json=as_json)  # fmt: skip
    return report(lab, lab_dir, demo, run, keep=keep, as_json=as_json, say=say)


Say = Callable[[str], None]


class Reported(Protocol):
    """What a demo reports at its end: one JSON document, or one summary line."""

    def to_dict(self) -> dict[str, Any]:
        """The whole report, JSON types only."""

    def summary(self) -> str:
        """One line for people."""


def report(
    lab: Lab, lab_dir: Path, demo: Reported, run: Callable[[], None], *, keep: bool,
    as_json: bool, say: Say,
) -> int:  # fmt: skip
    """Run the demo's steps on ``lab``, take the lab down (unless ``keep``) whatever happened,
    then report ``demo``; 0 (the report says what the hosts did)."""
    try:
        run()
    finally:
        if keep:
            say(f"lab kept: fleetbr -i {lab.inventory_dir} facts; fleetbr lab down --dir {lab_dir}")
        else:
            down(lab_dir)
    if as_json:
        print_json(demo.to_dict())
    say(demo.summary())
    return 0


def narrator(as_json: bool) -> Say:
    """Say each step of a demo to people (numbered steps in bold); nothing with ``--json``."""
    if as_json:  # stdout carries one JSON document: the story goes nowhere
        return lambda text: None
    out = Human()
    return lambda text: out.line(text, style="bold" if text[:2].rstrip("/").isdigit() else "")


def _run(
    lab: Lab, demo: DistroDemo, template: TaskTemplate, *, timeout: int, say: Say, as_json: bool
) -> None:
    specs = select_hosts(load_inventory(lab.inventory_dir), None)
    tasks = {
        s.name: dataclasses.replace(
            render_task(template, s.context()), persist="auto", deadman_timeout=timeout
        )
        for s in specs
    }
    for host, spec in zip(lab.hosts, specs, strict=True):
        demo.hosts[spec.name] = HostOutcome(backend=host.backend or "", nic=host.nic)
        if host.guests:
            demo.guest_host = spec.name
            tasks[spec.name] = guest_demo.with_guests(tasks[spec.name])
        if host.dhcp:
            demo.dhcp_host = spec.name
            tasks[spec.name] = dhcp_demo.with_dhcp(tasks[spec.name])
    say("2/5 facts: which daemon manages each NIC (the daemon's own view, once settled)")
    for name, facts in _settled_facts(specs).items():
        outcome = demo.hosts[name]
        manager = facts.manager(outcome.nic)
        outcome.nic_manager_before = manager.manager
        files = ", ".join(f.path for f in manager.files) or "no file"
        say(f"  {name}  {outcome.nic} managed by {manager.manager} ({manager.state}) from {files}")
        if name == demo.guest_host:
            outcome.guests_before = guest_demo.guest_view(facts)
            _say_guests(name, facts, say)
        if name == demo.dhcp_host:
            outcome.leases_before = dhcp_demo.lease_view(facts, outcome.nic)
            outcome.server_leases_before = dhcp.server_leases(lab, lab.host(name))
            _say_leases(name, outcome.leases_before, outcome.server_leases_before, say)
    say("3/5 cutting every host over to br0 with persist: auto: the bridge written in the "
        "daemon's own files, applied with its own tool inside the dead-man window (on "
        f"{demo.guest_host}, its guests moved onto br0 in the same window; on {demo.dhcp_host}, "
        "addresses: dhcp: br0 runs the NIC's DHCP client with its identity)")  # fmt: skip
    result = asyncio.run(
        apply_tasks(
            specs,
            tasks,
            template,
            label="demo-distro",
            forks=len(specs),
            history=lab.dir / "history.sqlite3",
        )
    )
    if not as_json:
        render_results(result, as_json=False)
    for name, host_result in result.items():
        demo.hosts[name].status = host_result.status.value
        demo.hosts[name].message = host_result.message
    say("4/5 facts after confirm (fresh connections): the bridge and who owns it")
    after = _facts(specs)
    _after_confirm(demo, tasks, after, say)
    if demo.dhcp_host is not None:
        _leases_after_confirm(lab, demo, tasks[demo.dhcp_host], after[demo.dhcp_host], say)
    _reboot_one(lab, demo, specs, tasks, say)


def _facts(specs: Sequence[HostSpec]) -> dict[str, HostFacts]:
    async def one(spec: HostSpec) -> HostFacts:
        async with open_connection(spec) as conn:
            return await gather(conn)

    async def every() -> list[HostFacts]:
        return await asyncio.gather(*(one(s) for s in specs))

    return dict(zip((s.name for s in specs), asyncio.run(every()), strict=True))


def _settled_facts(specs: Sequence[HostSpec]) -> dict[str, HostFacts]:
    """Every host's facts once no daemon still configures an interface (a DHCP host's networkd
    may say configuring for a while after its leases came), or the last ones after
    SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        found = _facts(specs)
        if not any(map(daemons_settling, found.values())) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _say_guests(name: str, facts: HostFacts, say: Say) -> None:
    for line in guest_lines(facts):
        say(f"  {name}  guest {line}")


def _say_leases(
    name: str, held: tuple[LeaseView, ...], recorded: tuple[ServerLease, ...], say: Say
) -> None:
    for line in dhcp_demo.lease_lines(held, recorded):
        say(f"  {name}  lease {line}")


def _leases_after_confirm(
    lab: Lab, demo: DistroDemo, task: BridgeTask, facts: HostFacts, say: Say
) -> None:
    """The DHCP host's leases on its bridge after confirm: held (``facts``) and recorded."""
    name = task.host
    outcome = demo.hosts[name]
    outcome.leases_after_confirm = dhcp_demo.lease_view(facts, task.bridge.name)
    outcome.server_leases_after_confirm = dhcp.server_leases(lab, lab.host(name))
    _say_leases(name, outcome.leases_after_confirm, outcome.server_leases_after_confirm, say)
    say(f"  {name}  leases: {demo.leases_compared()}")


def _describe(view: BridgeView | None) -> str:
    if view is None:
        return "no bridge"
    return (f"br0[{' '.join(view.ports)}] {' '.join(view.addresses)}; {view.manager} says "
            f"{view.state}; files {', '.join(p for p, _ in view.files) or 'none'}")  # fmt: skip


def _after_confirm(
    demo: DistroDemo, tasks: dict[str, BridgeTask], facts: dict[str, HostFacts], say: Say
) -> None:
    for name, outcome in demo.hosts.items():
        bridge = tasks[name].bridge.name
        view = outcome.after_confirm = bridge_view(facts[name], bridge, outcome.nic)
        outcome.check_after_confirm = _check(tasks[name], facts[name])
        owner = (
            "owned by"
            if view is not None and view.owned_by(outcome.backend, outcome.nic)
            else "not settled under"
        )
        say(f"  {name}  {outcome.status}; {_describe(view)} ({owner} {outcome.backend}); "
            f"check: {outcome.check_after_confirm}")  # fmt: skip
        if outcome.guests_before is not None:
            outcome.guests_after_confirm = guest_demo.guest_view(facts[name])
            _say_guests(name, facts[name], say)


def _reboot_one(
    lab: Lab, demo: DistroDemo, specs: Sequence[HostSpec], tasks: dict[str, BridgeTask], say: Say
) -> None:
    host = next(h for h in lab.hosts if h.backend == REBOOT_BACKEND)
    spec = next(s for s in specs if s.name == host.name)
    outcome = demo.hosts[host.name]
    bridge = tasks[host.name].bridge.name
    say(f"5/5 rebooting {host.name} ({outcome.backend}) after confirm: the bridge must come back "
        "exactly as confirmed, from the daemon's own files")  # fmt: skip
    before = _boot_id(lab, host.name)
    reboot(lab, host)
    demo.rebooted = host.name
    outcome.rebooted = True
    outcome.boot_ids = (before, _boot_id(lab, host.name))
    view, facts = _settled_view(spec, bridge, outcome)
    outcome.after_reboot = view
    outcome.check_after_reboot = _check(tasks[host.name], facts) if facts else "no facts"
    same = "as confirmed" if view == outcome.after_confirm else "NOT as confirmed"
    say(f"  {host.name}  boot id {before[:8]} -> {outcome.boot_ids[1][:8]}; {_describe(view)} "
        f"({same}); check: {outcome.check_after_reboot}")  # fmt: skip


def _settled_view(
    spec: HostSpec, bridge: str, outcome: HostOutcome
) -> tuple[BridgeView | None, HostFacts | None]:
    """The bridge's view (and the facts) once it matches the confirmed one (the daemon may still
    be bringing it up when SSH answers), or the last one seen after SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            facts: HostFacts | None = _facts([spec])[spec.name]
        except FleetbrError:
            facts = None
        view = bridge_view(facts, bridge, outcome.nic) if facts else None
        if view == outcome.after_confirm or time.monotonic() > deadline:
            return view, facts
        time.sleep(1)


def _check(task: BridgeTask, facts: HostFacts) -> str:
    """What ``fleetbr check`` says of the host against the task: its status, with the reason
    unless in sync."""
    found = check_facts(task, facts)
    status = found.status
    if status is Status.IN_SYNC or not found.message:
        return status.value
    return f"{status.value}: {found.message}"


def _boot_id(lab: Lab, host: str) -> str:
    done = host_exec(lab, lab.host(host), ["cat", "/proc/sys/kernel/random/boot_id"])
    return done.stdout.strip()
