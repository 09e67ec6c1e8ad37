"""Fact fixtures for the planner tests: a small builder for HostFacts."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, render_task
from fleetbr.facts.model import PIN_DIR, Address, Bridge, HostFacts, Link, Route
from fleetbr.plan import BridgePlan
from fleetbr.plan.desired import make_pin, pin_path, pin_text
from fleetbr.plan.netfilter import desired_files, sha256

NIC_MAC = "52:54:00:12:34:56"
V4 = "198.51.100.10/24"
V6 = "2001:db8:100::10/64"
GW4 = "198.51.100.1"
GW6 = "2001:db8:100::1"
NF_ON: dict[str, int | None] = {"call-iptables": 1, "call-ip6tables": 1, "call-arptables": 1}


def facts(
    *,
    v4: tuple[str, ...] = (V4,),
    v6: tuple[str, ...] = (V6,),
    nic: str = "eth0",
    **overrides: Any,
) -> HostFacts:
    """A host with ``nic`` carrying v4/v6 addresses and a default route per family."""
    addresses = [Address(nic, 4, a, "global") for a in v4]
    addresses += [Address(nic, 6, a, "global") for a in v6]
    addresses.append(Address(nic, 6, "fe80::5054:ff:fe12:3456/64", "link"))
    routes: list[Route] = []
    if v4:
        routes += [
            Route(4, "198.51.100.0/24", nic, None, None, "kernel"),
            Route(4, "default", nic, GW4, None, "boot"),
        ]
    if v6:
        routes += [
            Route(6, "2001:db8:100::/64", nic, None, 256, "kernel"),
            Route(6, "default", nic, GW6, 1024, "boot"),
        ]
    base = HostFacts(
        hostname="hv01",
        kernel="6.1.0-18-amd64",
        pid1_systemd=True,
        links=(
            Link("lo", "loopback", "00:00:00:00:00:00", 65536, "UNKNOWN", True, None),
            Link(nic, "ether", NIC_MAC, 1500, "UP", True, None),
        ),
        addresses=tuple(addresses),
        routes=tuple(routes),
        bridges=(),
        bridge_nf=dict(NF_ON),
        docker=(),
        backends=(),
        libvirt=True,
        has_modules=True,
        has_sysctl=True,
        managed_files={},
    )
    return dataclasses.replace(base, **overrides)


def bridged(before: HostFacts, *, bridge: str = "br0", nic: str = "eth0") -> HostFacts:
    """What ``before`` looks like once correctly bridged (netfilter off, files written)."""
    links = (
        *(dataclasses.replace(x, master=bridge) if x.name == nic else x for x in before.links),
        Link(bridge, "bridge", NIC_MAC, 1500, "UP", True, None),
    )
    addresses = tuple(
        dataclasses.replace(a, dev=bridge) if a.dev == nic and a.scope == "global" else a
        for a in before.addresses
    )
    routes = tuple(dataclasses.replace(r, dev=bridge) if r.dev == nic else r for r in before.routes)
    files: dict[str, str | None] = {
        p: sha256(t) for p, t in desired_files(0, before.kernel).items()
    }
    after = dataclasses.replace(
        before,
        links=links,
        addresses=addresses,
        routes=routes,
        bridges=(Bridge(bridge, False, 4, (nic,)),),
        bridge_nf=dict.fromkeys(NF_ON, cast(int | None, 0)),
        managed_files=files,
    )
    return with_record(after, bridge, nic)


def recorded_by(after: HostFacts, plan: BridgePlan) -> HostFacts:
    """``after`` with the bridge's record exactly as ``plan`` writes it."""
    for step in plan.steps:
        path = str(step.args.get("path", ""))
        if step.kind == "file_write" and path.startswith(PIN_DIR):
            text = str(step.args["content"])
            return dataclasses.replace(
                after,
                managed_files={**after.managed_files, path: sha256(text)},
                pins={**after.pins, path: text},
            )
    return after


def with_record(after: HostFacts, bridge: str = "br0", nic: str = "eth0") -> HostFacts:
    """``after`` with the bridge's record (fleetbr.plan.desired) of what it carries now, as the
    apply that made it would have written it."""
    cidrs = [a.cidr for a in after.addresses_of(bridge)]
    labels = {a.cidr: a.label for a in after.addresses_of(bridge) if a.label}
    routes = [r for r in after.routes_of(bridge) if r.protocol != "kernel"]
    text = pin_text(make_pin(bridge, nic, after, cidrs=cidrs, labels=labels, routes=routes))
    path = pin_path(bridge)
    return dataclasses.replace(
        after,
        managed_files={**after.managed_files, path: sha256(text)},
        pins={**after.pins, path: text},
    )


BASE_TASK = """
bridge:
  name: br0
  nic: "{{ host.data.nic }}"
"""


def task(text: str = BASE_TASK, **data: Any) -> BridgeTask:
    """Render ``text`` for host hv01 with host data nic=eth0 plus ``data``."""
    host = {
        "name": "hv01",
        "hostname": "198.51.100.10",
        "port": 22,
        "groups": [],
        "data": {"nic": "eth0", **data},
    }
    return render_task(TaskTemplate("tasks/test.yaml", text), host)
