"""The planner: a pure function from (task, facts) to a :class:`BridgePlan`.

Apply order matters because the rollback is the mechanical reverse of the steps: routes can only be
added once their addresses exist, and the kernel drops a NIC's IPv4 routes when its last IPv4
address goes, so routes come off before addresses move and go back on after.
"""

from __future__ import annotations

import dataclasses

from fleetbr import validate
from fleetbr.changes.bridge.task import BridgeTask
from fleetbr.errors import ValidationError
from fleetbr.facts.model import HostFacts
from fleetbr.plan import steps
from fleetbr.plan.desired import make_pin, read_pin, record_steps
from fleetbr.plan.diff import compare, route_matches
from fleetbr.plan.guests import GuestRefusal, plan_guests
from fleetbr.plan.model import BridgePlan, ExpectedState, Step
from fleetbr.plan.moves import (
    address_steps,
    finish,
    global_addresses,
    lost_source,
    refused,
    route_steps,
    task_route_steps,
    wanted_addresses,
)
from fleetbr.plan.netfilter import netfilter_steps
from fleetbr.plan.persist import BackendRefusal, choose_backend, persist_steps, unbridge_steps
from fleetbr.plan.topology.capability import bond_port_refusal, dhcp_nic_refusal
from fleetbr.plan.topology.runtime import plan_runtime
from fleetbr.plan.unbridge import plan_absent


def plan_host(
    task: BridgeTask, facts: HostFacts, *, min_timeout: int, backup_dir: str | None = None
) -> BridgePlan:
    """BridgePlan ``task`` for the host described by ``facts``.

    ``min_timeout`` is the shortest dead-man timeout that leaves time to reconnect and probe.
    ``backup_dir`` is where the transaction stages file backups; None lets the step script use
    ``$FLEETBR_BACKUP_DIR`` (set by the transaction scripts to ``$TX/backups``).
    """
    reason = _host_refusal(task, facts, min_timeout)
    if reason is None and task.topology is None:
        reason = (
            _nic_refusal(task, facts)
            or bond_port_refusal(task, facts)
            or dhcp_nic_refusal(task, facts)
        )
    if reason is not None:
        return refused(task, reason)
    try:
        if task.topology is not None:  # bonds, VLANs, several bridges (docs/topologies.md)
            plan = plan_runtime(task, task.topology, facts, backup_dir)
        elif task.bridge.state == "present":
            plan = _present(task, facts, backup_dir)
        else:
            plan = _unbridge_persisted(task, facts, plan_absent(task, facts), backup_dir)
    except ValidationError as exc:
        return refused(task, f"the host's facts hold a value fleetbr will not use: {exc}")
    rule = _rule_refusal(task, facts) if plan.steps else None
    return _with_differences(plan, task, facts) if rule is None else refused(task, rule)


def _unbridge_persisted(
    task: BridgeTask, facts: HostFacts, plan: BridgePlan, backup_dir: str | None
) -> BridgePlan:
    """Wrap the runtime unbridge with the backend's own (see fleetbr.plan.persist)."""
    if plan.refusal is not None:
        return plan
    try:
        persist = unbridge_steps(task, facts, plan.expected, backup_dir)
    except BackendRefusal as exc:
        return refused(task, str(exc))
    expected = dataclasses.replace(
        plan.expected,
        config_files=persist.files,
        managers=persist.managers,
        file_meta=persist.meta,
    )
    return finish(task, persist.head, list(plan.steps) + persist.tail, expected)


def _with_differences(plan: BridgePlan, task: BridgeTask, facts: HostFacts) -> BridgePlan:
    """Record how the host differs from the plan's expected state now (its drift).

    A difference the steps would not repair is refused rather than planned as "unchanged", so
    a plan is unchanged exactly when the host matches (``fleetbr check``: in sync).
    """
    if plan.refusal is not None:
        return plan
    differences = tuple(compare(plan.expected, facts))
    if differences and not plan.steps:
        # the refused plan keeps them: ``check`` reports them as drift nothing repairs
        reason = "fleetbr cannot repair what differs from the task: " + "; ".join(
            d.text for d in differences
        )
        return dataclasses.replace(refused(task, reason), differences=differences)
    return dataclasses.replace(plan, differences=differences)


def _host_refusal(task: BridgeTask, facts: HostFacts, min_timeout: int) -> str | None:
    """An armed transaction or a dead-man timeout too short: whatever the task."""
    if facts.armed is not None and facts.armed.problem:
        return facts.armed.describe()
    if facts.armed is not None:
        kind = "a stale" if facts.armed.stale else "a live"
        return (
            f"{kind} fleetbr transaction {facts.armed.txid} is armed on the host; "
            "resolve it (confirm or roll back) first"
        )
    if task.deadman_timeout < min_timeout:
        return (
            f"dead-man timeout {task.deadman_timeout}s is shorter than the {min_timeout}s "
            "needed to reconnect and probe"
        )
    return None


def _nic_refusal(task: BridgeTask, facts: HostFacts) -> str | None:
    """The NIC and the bridge name of a one-NIC task (a topology checks its own devices)."""
    spec = task.bridge
    nic = facts.link(spec.nic)
    if nic is None:
        names = ", ".join(link.name for link in facts.links) or "none"
        return f"NIC {spec.nic} does not exist (links: {names})"
    if nic.wireless:
        return f"NIC {spec.nic} is wireless; a Wi-Fi client interface cannot be bridged"
    if nic.master is not None and nic.master != spec.name:
        return f"NIC {spec.nic} is already a port of {nic.master}"
    taken = facts.link(spec.name)
    if taken is not None and (taken.kind != "bridge" or facts.bridge(spec.name) is None):
        return f"the bridge name {spec.name} is taken by a {taken.kind} link"
    return None


def _rule_refusal(task: BridgeTask, facts: HostFacts) -> str | None:
    """Policy rules that name the device the traffic leaves (``iif``/``oif``) would silently stop
    matching: fleetbr does not rewrite rules, so it refuses."""
    spec = task.bridge
    leaving = spec.nic if spec.state == "present" else spec.name
    for rule in facts.rules or ():
        if leaving in (rule.iif, rule.oif):
            return (
                f"policy rule {rule.priority} (ipv{rule.family}: {rule.text}) names {leaving}, "
                "whose traffic the task moves; fleetbr does not rewrite rules: change it first"
            )
    return None


def _present(task: BridgeTask, facts: HostFacts, backup_dir: str | None) -> BridgePlan:
    spec = task.bridge
    if facts.docker and task.netfilter == "off" and task.docker_conflict == "refuse":
        return refused(
            task,
            f"Docker found ({', '.join(facts.docker)}) but netfilter off would break its "
            "bridge-nf-call-iptables=1; set docker_conflict: accept or netfilter: on",
        )
    try:
        backend = choose_backend(task, facts)
    except BackendRefusal as exc:
        return refused(task, str(exc))
    nic = facts.link(spec.nic)
    assert nic is not None
    nic_addrs = global_addresses(facts, spec.nic)
    br_addrs = global_addresses(facts, spec.name)
    pin = read_pin(facts, spec.name, spec.nic)
    wanted = wanted_addresses(task, br_addrs, nic_addrs, pin.cidrs if pin else None)
    if not wanted:
        return refused(
            task,
            f"NIC {spec.nic} has no global address to move and the task lists none: "
            "nothing would keep the host reachable",
        )
    mac = spec.mac or (validate.mac_address(nic.mac, "NIC mac") if nic.mac else None)
    before = _bridge_steps(task, facts, mac)
    files: dict[str, str] = {}
    expected_nf: dict[str, int] = {}
    if task.netfilter != "keep":
        nf, expected_nf, files = netfilter_steps(facts, int(task.netfilter == "on"), backup_dir)
        before += nf
    cutting: list[Step] = []
    if nic.master != spec.name:
        cutting.append(steps.link_master(spec.nic, spec.name))
    br_link = facts.link(spec.name)
    if br_link is None or not br_link.admin_up:
        cutting.append(steps.link_up(spec.name, undo=True))
    lost = lost_source(facts, spec.nic, wanted)
    if lost is not None:
        return refused(task, lost)
    dels, adds, routes = route_steps(
        task, facts, spec.nic, spec.name, wanted, recorded=pin.routes if pin else None
    )
    extra, extra_routes = task_route_steps(task, facts)
    moves, labels = address_steps(
        facts, spec.nic, spec.name, br_addrs, wanted, recorded=pin.addresses if pin else ()
    )
    cutting += dels + moves + adds + extra
    try:
        guest_steps, guest_expect = plan_guests(task, facts)
    except GuestRefusal as exc:
        return refused(task, str(exc))
    record = pin or make_pin(spec.name, spec.nic, facts, cidrs=wanted, labels=labels, routes=routes)
    if backend == "none":  # persisted, the backend's files are the record (and survive a reboot)
        before += record_steps(facts, record, files, backup_dir)
    routes += [r for r in extra_routes if not any(route_matches(r, k) for k in routes)]
    expected = ExpectedState(
        bridge=spec.name,
        nic=spec.nic,
        bridge_present=True,
        address_dev=spec.name,
        addresses=tuple(wanted),
        labels=labels,
        routes=tuple(routes),
        stp=spec.stp,
        forward_delay=spec.forward_delay,
        mac=mac,
        ports=(spec.nic,),
        bridge_nf=expected_nf,
        files=files,
        guests=tuple(guest_expect),
    )
    try:
        persist = persist_steps(task, facts, expected, backup_dir)
    except BackendRefusal as exc:
        return refused(task, str(exc))
    expected = dataclasses.replace(
        expected,
        config_files=persist.files,
        managers=persist.managers,
        mtu=persist.carried.mtu,
        rules=persist.carried.rules,
        dns=persist.carried.dns,
        file_meta=persist.meta,
    )
    # guests last: onto the bridge as its daemon left it, and back first in a rollback
    return finish(task, persist.head + before, cutting + persist.tail + guest_steps, expected)


def _bridge_steps(task: BridgeTask, facts: HostFacts, mac: str | None) -> list[Step]:
    spec = task.bridge
    current = facts.bridge(spec.name)
    new = (mac, spec.stp, spec.forward_delay)
    if current is None:
        return [steps.bridge_add(spec.name, *new, ra_from=spec.nic)]
    link = facts.link(spec.name)
    old_mac = link.mac if link else None
    old = (old_mac, current.stp, current.forward_delay)
    # With no MAC to enforce (the NIC reports none), only STP and forward delay matter; the
    # forward delay only while STP is wanted on (the kernel ignores it otherwise: docs/drift.md).
    delay = spec.forward_delay if spec.stp else None
    have = (old_mac if mac else None, current.stp, current.forward_delay if spec.stp else None)
    if have == (mac, spec.stp, delay):
        return []
    return [steps.bridge_set(spec.name, new, old)]
