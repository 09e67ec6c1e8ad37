"""Routes of every table, their attributes, address labels and typed routes on real lab hosts
(issue 6 items 7 and 12): moved by a confirmed cut-over, restored exactly by a rollback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleetbr.changes.bridge.change import apply_host
from fleetbr.lab import Lab, host_state
from fleetbr.report import HostResult, Status
from tests.integration.helpers import armed, rendered, sh, specs, task_file

NETWORK = ("links", "addresses", "routes4", "routes6", "rules4", "rules6")


def apply(lab: Lab, host: str, task: Path) -> HostResult:
    """Run the transaction for one host in-process."""
    spec = specs(lab.inventory_dir)[host]
    return asyncio.run(apply_host(spec, rendered(lab, task, host), task.name))


def service_address(lab: Lab, host: str) -> str:
    """A second address in the lab subnet, for a labelled secondary (.220 + the host's index)."""
    index = [h.name for h in lab.hosts].index(host) + 1
    return f"198.51.100.{220 + index}"


def add_routing(lab: Lab, host: str) -> str:
    """Give ``host`` a labelled secondary address, a route using it as source, routes through
    the NIC in table 100 (both families), a typed route there and a rule; returns the address."""
    nic, svc = lab.host(host).nic, service_address(lab, host)
    sh(lab, host, "\n".join([
        "set -e",
        f"ip addr add {svc}/24 dev {nic} label {nic}:svc",
        f"ip route add 203.0.113.0/24 via {lab.gateway4} dev {nic} src {svc} metric 20 "
        "proto static",
        f"ip route add default via {lab.gateway4} dev {nic} table 100",
        f"ip -6 route add 2001:db8:300::/48 via {lab.gateway6} dev {nic} table 100 metric 50",
        "ip route add blackhole 203.0.113.77/32 table 100",
        f"ip rule add from {svc} lookup 100 priority 100",
    ]))  # fmt: skip
    return svc


def network(state: dict[str, Any]) -> dict[str, Any]:
    """The network part of a host_state (unbridge leaves netfilter files and sysctls alone)."""
    return {key: state[key] for key in NETWORK}


def test_other_tables_sources_and_labels_move_with_the_bridge_and_back(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv07")
    svc = add_routing(lab, "hv07")
    before = host_state(lab, "hv07")

    result = apply(lab, "hv07", task_file(tmp_path))
    assert result.status == Status.CONFIRMED, result.message
    table100 = sh(lab, "hv07", "ip route show table 100; ip -6 route show table 100")
    assert [line.strip() for line in table100.splitlines()] == [
        f"default via {lab.gateway4} dev br0",
        "blackhole 203.0.113.77",
        f"2001:db8:300::/48 via {lab.gateway6} dev br0 metric 50 pref medium",
    ]
    out = sh(lab, "hv07", "ip route; ip addr show dev br0")
    assert f"203.0.113.0/24 via {lab.gateway4} dev br0 proto static src {svc} metric 20" in out
    assert f"inet {svc}/24 scope global secondary br0:svc" in out

    back = apply(lab, "hv07", task_file(tmp_path, state="absent"))
    assert back.status == Status.CONFIRMED, back.message
    assert network(host_state(lab, "hv07")) == network(before)


def test_cut_off_host_gets_other_tables_sources_and_labels_back_exactly(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host("hv08")
    svc = add_routing(lab, "hv08")
    before = host_state(lab, "hv08")
    # keeps the service address (a route uses it) but loses the one the controller reaches
    cutting = task_file(tmp_path, addresses=["203.0.113.250/32", f"{svc}/24"])

    result = apply(lab, "hv08", cutting)
    assert result.status == Status.ROLLED_BACK, result.message
    assert host_state(lab, "hv08") == before
    assert not armed(lab, "hv08")


TYPED: list[dict[str, Any]] = [
    {"to": "203.0.113.91/32", "type": "blackhole"},
    {"to": "203.0.113.92/32", "type": "unreachable", "metric": 7},
    {"to": "203.0.113.93/32", "type": "prohibit"},
    {"to": "2001:db8:391::/48", "type": "blackhole"},
    {"to": "2001:db8:392::/48", "type": "unreachable"},
    {"to": "2001:db8:393::/48", "type": "prohibit", "metric": 2048},
]


def test_typed_routes_are_added_by_a_confirmed_change_and_removed_by_a_rollback(
    lab: Lab, fresh_host: Any, pristine: dict[str, Any], tmp_path: Path
) -> None:
    fresh_host("hv09")
    # ones the host already has stay; the task's come and go with the transaction
    sh(
        lab,
        "hv09",
        "ip route add blackhole 203.0.113.90/32; ip -6 route add prohibit 2001:db8:390::/48",
    )
    before = host_state(lab, "hv09")
    cutting = task_file(tmp_path, routes=TYPED, addresses=["203.0.113.250/32"])
    result = apply(lab, "hv09", cutting)
    assert result.status == Status.ROLLED_BACK, result.message
    assert host_state(lab, "hv09") == before

    result = apply(lab, "hv09", task_file(tmp_path, routes=TYPED))
    assert result.status == Status.CONFIRMED, result.message
    out = sh(lab, "hv09", "ip route; ip -6 route")
    for route in TYPED:
        assert f"{route['type']} {str(route['to']).removesuffix('/32')}" in out, route
    assert "blackhole 203.0.113.90" in out and "prohibit 2001:db8:390::/48" in out
    assert apply(lab, "hv09", task_file(tmp_path, routes=TYPED)).status == Status.UNCHANGED
    fresh_host("hv09")
    assert host_state(lab, "hv09") == pristine["hv09"]
