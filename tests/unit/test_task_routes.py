"""Extra static routes in a task (``bridge.routes``): validation, planning, unchanged detection."""

from __future__ import annotations

import dataclasses

import pytest

from fleetbr.errors import TaskError
from fleetbr.facts.model import Route
from fleetbr.plan import plan_host, step_command, verify_applied
from tests.unit.test_plan_support import BASE_TASK, bridged, facts, task

ROUTES = """
  routes:
    - {to: 203.0.113.0/24, via: 198.51.100.254}
    - {to: 198.51.100.2/32, type: blackhole}
    - {to: "2001:db8:200::/48", via: "2001:db8:100::fe", metric: 512}
"""


def with_routes(text: str = ROUTES) -> str:
    return BASE_TASK.replace("bridge:\n", "bridge:\n" + text.lstrip("\n"), 1)


def test_routes_are_parsed() -> None:
    routes = task(with_routes()).bridge.routes
    assert [(r.family, r.type, r.dst, r.gateway, r.metric) for r in routes] == [
        (4, "unicast", "203.0.113.0/24", "198.51.100.254", None),
        (4, "blackhole", "198.51.100.2/32", None, None),
        (6, "unicast", "2001:db8:200::/48", "2001:db8:100::fe", 512),
    ]


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ("  routes: [{to: 203.0.113.0/24, via: '1.2.3.4; reboot'}]\n", r"routes\[0\]\.via"),
        ("  routes: [{to: 'default; reboot'}]\n", r"routes\[0\]\.to"),
        ("  routes: [{to: 203.0.113.0/24, type: nat}]\n", r"routes\[0\]\.type"),
        ("  routes: [{to: 203.0.113.0/24, type: blackhole, via: 198.51.100.1}]\n", "no gateway"),
        ("  routes: [{to: 203.0.113.0/24, via: '2001:db8::1'}]\n", "same family"),
        ("  routes: [{to: 203.0.113.0/24, dev: eth9}]\n", "unknown key"),
        ("  routes: {to: 203.0.113.0/24}\n", "expected a list"),
    ],
)
def test_bad_routes_are_refused(routes: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        task(with_routes(routes))


def test_plan_adds_routes_after_the_move_and_expects_them() -> None:
    plan = plan_host(task(with_routes()), facts(), min_timeout=20)
    kinds = [s.kind for s in plan.steps]
    last_addr = max(i for i, k in enumerate(kinds) if k.startswith("addr_"))
    extra = [s for s in plan.steps[last_addr + 1 :] if s.args.get("dst") != "default"]
    commands = [step_command(s) for s in extra]
    assert commands == [
        "ip -4 route replace 203.0.113.0/24 via 198.51.100.254 dev br0 proto static",
        "ip -4 route replace blackhole 198.51.100.2/32 proto static",
        "ip -6 route replace 2001:db8:200::/48 via 2001:db8:100::fe dev br0 metric 512"
        " proto static",
    ]
    assert all(s.inverse is not None and s.inverse.kind == "route_del" for s in extra)
    assert "route del blackhole 198.51.100.2/32" in step_command(plan.rollback[1])
    assert sum(1 for r in plan.expected.routes if r.type == "blackhole") == 1


def test_routes_already_present_leave_the_host_unchanged() -> None:
    before = bridged(facts())
    have = (
        Route(4, "203.0.113.0/24", "br0", "198.51.100.254", None, "static"),
        Route(4, "198.51.100.2/32", "", None, None, "static", "blackhole"),
        Route(6, "2001:db8:200::/48", "br0", "2001:db8:100::fe", 512, "static"),
    )
    done = dataclasses.replace(before, routes=before.routes + have)
    plan = plan_host(task(with_routes()), done, min_timeout=20)
    assert plan.unchanged, [s.description for s in plan.steps]
    missing = dataclasses.replace(done, routes=done.routes[:-1])
    assert verify_applied(plan, missing) == [
        "route 2001:db8:200::/48 via 2001:db8:100::fe dev br0 metric 512 missing"
    ]
