"""The pure planner: step order, unchanged hosts, variants, unbridge and the rollback shape."""

from __future__ import annotations

import dataclasses

from fleetbr.facts.model import Address, Bridge, Link, Route
from fleetbr.plan import BridgePlan, plan_host
from fleetbr.plan.desired import pin_path
from fleetbr.plan.netfilter import SYSCTL_FILE, UDEV_FILE
from tests.unit.test_plan_support import GW4, GW6, NIC_MAC, V4, V6, bridged, facts, task

PIN = pin_path("br0")
CLASSIC = [
    "bridge_add",
    "sysctl_set",
    "sysctl_set",
    "sysctl_set",
    "file_write",
    "file_write",
    "modprobe",
    "sysctl_load",
    "file_write",  # the bridge's record (fleetbr.plan.desired)
    "link_master",
    "link_up",
    "route_del",
    "route_del",
    "addr_add",
    "addr_add",
    "addr_del",
    "addr_del",
    "route_add",
    "route_add",
]


def plan(text: str | None = None, **kw: object) -> BridgePlan:
    t = task() if text is None else task(text)
    return plan_host(t, facts(**kw), min_timeout=20)  # type: ignore[arg-type]


def kinds(p: BridgePlan) -> list[str]:
    return [s.kind for s in p.steps]


def test_classic_v4_v6_order_and_arguments() -> None:
    p = plan()
    assert p.refusal is None
    assert kinds(p) == CLASSIC
    first = p.steps[0]
    assert dict(first.args) == {"name": "br0", "mac": NIC_MAC, "stp": False, "forward_delay": 4,
                                "ra_from": "eth0"}  # fmt: skip
    moves = [(s.kind, s.args["dev"], s.args["cidr"]) for s in p.steps if s.kind.startswith("addr")]
    # all added first; the NIC's deleted in reverse, so the rollback restores them in order
    assert moves == [
        ("addr_add", "br0", V4),
        ("addr_add", "br0", V6),
        ("addr_del", "eth0", V6),
        ("addr_del", "eth0", V4),
    ]
    adds = [(s.args["dev"], s.args["gateway"], s.args["metric"]) for s in p.steps[-2:]]
    assert adds == [("br0", GW4, None), ("br0", GW6, 1024)]
    assert p.probes == (GW4, GW6)
    assert p.files == (SYSCTL_FILE, UDEV_FILE, PIN)
    assert not p.unchanged


def test_touches_nic_starts_at_link_master() -> None:
    p = plan()
    flags = [s.touches_nic for s in p.steps]
    first = kinds(p).index("link_master")
    assert flags == [False] * first + [True] * (len(flags) - first)


def test_rollback_is_the_reversed_inverses() -> None:
    p = plan()
    expected = tuple(s.inverse for s in reversed(p.steps) if s.inverse is not None)
    assert p.rollback == expected
    rb = [s.kind for s in p.rollback]
    assert rb[:2] == ["route_del", "route_del"]
    assert rb[-1] == "bridge_del"
    assert rb.index("addr_add") < rb.index("route_add") < rb.index("link_nomaster")
    assert "modprobe" not in rb and "sysctl_load" not in rb
    assert rb[rb.index("module_unload") + 1 :][:2] == ["file_restore", "file_restore"]
    assert rb[rb.index("module_unload") - 1] == "file_restore"  # the record, written last
    restores = [s for s in p.rollback if s.kind == "file_restore"]
    assert [s.args["existed"] for s in restores] == [False, False, False]


def test_descriptions_are_human_lines() -> None:
    text = [s.description for s in plan().steps]
    assert f"add {V4} to br0 (from eth0)" in text
    assert f"remove {V4} from eth0" in text
    assert "make eth0 a port of br0" in text
    assert f"add route default via {GW4} dev br0" in text


def test_v4_only() -> None:
    p = plan(v6=())
    assert [s.args.get("family") for s in p.steps if s.kind.startswith(("addr", "route"))] == [
        4
    ] * 4
    assert p.probes == (GW4,)


def test_v6_only() -> None:
    p = plan(v4=())
    assert [s.args.get("family") for s in p.steps if s.kind.startswith(("addr", "route"))] == [
        6
    ] * 4
    assert p.expected.addresses == (V6,)
    assert p.probes == (GW6,)


def test_several_addresses_move_in_kernel_order() -> None:
    p = plan(v4=(V4, "198.51.100.11/24"), v6=(V6, "2001:db8:100::11/64"))
    assert p.expected.addresses == (V4, "198.51.100.11/24", V6, "2001:db8:100::11/64")
    # the kernel lists IPv6 addresses newest first: add them in reverse to keep their order
    moved = [s.args["cidr"] for s in p.steps if s.kind == "addr_add"]
    assert moved == [V4, "198.51.100.11/24", "2001:db8:100::11/64", V6]
    back = [s.args["cidr"] for s in p.rollback if s.kind == "addr_add"]
    assert back == moved


def test_already_bridged_is_unchanged() -> None:
    p = plan_host(task(), bridged(facts()), min_timeout=20)
    assert p.refusal is None
    assert p.unchanged
    assert p.rollback == () and p.files == ()


def test_partially_bridged_only_does_the_rest() -> None:
    done = bridged(facts())
    half = dataclasses.replace(
        done,
        addresses=tuple(dataclasses.replace(a, dev="eth0") for a in done.addresses),
        routes=tuple(dataclasses.replace(r, dev="eth0") for r in done.routes),
    )
    assert kinds(plan_host(task(), half, min_timeout=20)) == CLASSIC[11:]


def test_explicit_mac_and_stp_on() -> None:
    p = plan("bridge: {mac: '02:00:00:00:00:42', stp: true, forward_delay: 15}")
    assert dict(p.steps[0].args) == {
        "name": "br0",
        "mac": "02:00:00:00:00:42",
        "stp": True,
        "forward_delay": 15,
        "ra_from": "eth0",
    }
    assert (p.expected.mac, p.expected.stp, p.expected.forward_delay) == (
        "02:00:00:00:00:42",
        True,
        15,
    )


def test_existing_bridge_with_other_settings_gets_bridge_set_with_old_inverse() -> None:
    p = plan_host(task("bridge: {stp: true}"), bridged(facts()), min_timeout=20)
    assert kinds(p) == ["bridge_set"]
    assert p.steps[0].args["stp"] is True
    inverse = p.steps[0].inverse
    assert inverse is not None and inverse.kind == "bridge_set"
    assert (inverse.args["stp"], inverse.args["forward_delay"]) == (False, 4)


def test_task_gateway_replaces_the_default_route() -> None:
    p = plan("bridge: {gateway4: 198.51.100.254}")
    v4_adds = [s.args for s in p.steps if s.kind == "route_add" and s.args["family"] == 4]
    assert [(a["dst"], a["gateway"], a["dev"]) for a in v4_adds] == [
        ("default", "198.51.100.254", "br0")
    ]
    assert p.probes == ("198.51.100.254", GW6)


def test_wrong_address_gets_onlink_routes_so_apply_succeeds_and_cuts() -> None:
    p = plan("bridge: {addresses: ['203.0.113.250/32']}", v6=())
    adds = [s for s in p.steps if s.kind == "route_add"]
    assert [s.args["onlink"] for s in adds] == [True]
    assert [s.args["cidr"] for s in p.steps if s.kind == "addr_del"] == [V4]


def test_netfilter_keep_touches_no_files() -> None:
    p = plan("netfilter: keep")
    assert kinds(p) == CLASSIC[:1] + CLASSIC[8:]
    assert p.files == (PIN,) and dict(p.expected.bridge_nf) == {}


def test_netfilter_on_with_values_already_on_only_writes_files() -> None:
    p = plan("netfilter: on")
    assert "sysctl_set" not in kinds(p)
    assert dict(p.expected.bridge_nf) == dict.fromkeys(
        ("call-iptables", "call-ip6tables", "call-arptables"), 1
    )


def test_absent_sysctl_keys_modules_and_sysctl_are_skipped() -> None:
    p = plan(
        bridge_nf=dict.fromkeys(("call-iptables", "call-ip6tables", "call-arptables")),
        has_modules=False,
        has_sysctl=False,
    )
    assert kinds(p)[:3] == ["bridge_add", "file_write", "file_write"]
    assert "modprobe" not in kinds(p) and "sysctl_load" not in kinds(p)


def test_old_kernel_udev_rule_matches_the_bridge_module() -> None:
    new = next(s for s in plan().steps if s.args.get("path") == UDEV_FILE)
    old = next(s for s in plan(kernel="3.10.0-1160.el7").steps if s.args.get("path") == UDEV_FILE)
    assert 'KERNEL=="br_netfilter"' in str(new.args["content"])
    assert 'KERNEL=="bridge"' in str(old.args["content"])


def test_backup_dir_reaches_file_restore() -> None:
    p = plan_host(task(), facts(), min_timeout=20, backup_dir="/var/lib/fleetbr/tx/x/backups")
    restore = next(s for s in p.rollback if s.kind == "file_restore")
    assert restore.args["backup_dir"] == "/var/lib/fleetbr/tx/x/backups"


def test_unbridge_mirrors_the_cutover() -> None:
    un = task("bridge: {state: absent}\nnetfilter: keep\n")
    p = plan_host(un, bridged(facts()), min_timeout=20)
    assert p.refusal is None
    assert kinds(p) == [
        "route_del",
        "route_del",
        "addr_add",
        "addr_add",
        "addr_del",
        "addr_del",
        "route_add",
        "route_add",
        "link_nomaster",
        "link_down",
        "bridge_del",
    ]
    assert all(s.touches_nic for s in p.steps)
    recreate = p.steps[-1].inverse
    assert recreate is not None and dict(recreate.args) == {
        "name": "br0",
        "mac": NIC_MAC,
        "stp": False,
        "forward_delay": 4,
    }
    assert [s.kind for s in p.rollback][:3] == ["bridge_add", "link_up", "link_master"]
    assert (p.expected.bridge_present, p.expected.address_dev) == (False, "eth0")
    assert p.expected.addresses == (V4, V6)


def test_unbridge_leaves_netfilter_alone_even_when_asked() -> None:
    p = plan_host(
        task("bridge: {state: absent}\nnetfilter: on\n"), bridged(facts()), min_timeout=20
    )
    assert not {"sysctl_set", "file_write"} & set(kinds(p))


def test_unbridge_without_bridge_is_unchanged_when_nic_has_addresses() -> None:
    p = plan_host(task("bridge: {state: absent}"), facts(), min_timeout=20)
    assert p.unchanged


def test_bridge_routes_stay_when_planning_unbridge_of_extra_routes() -> None:
    f = bridged(facts())
    extra = Route(4, "203.0.113.0/24", "br0", GW4, 50, "static")
    with_extra = dataclasses.replace(f, routes=(*f.routes, extra))
    p = plan_host(task("bridge: {state: absent}"), with_extra, min_timeout=20)
    dsts = [s.args["dst"] for s in p.steps if s.kind == "route_add"]
    assert "203.0.113.0/24" in dsts


def test_route_and_link_facts_are_validated_before_use() -> None:
    f = facts()
    hostile = Route(4, "203.0.113.0/24", "eth0", GW4, None, "boot;reboot")
    p = plan_host(task(), dataclasses.replace(f, routes=(*f.routes, hostile)), min_timeout=20)
    assert p.refusal is not None and "protocol" in p.refusal
    assert p.steps == ()


def test_extra_links_do_not_disturb_the_plan() -> None:
    f = facts()
    vm = Link("vnet0", "tun", "fe:54:00:00:00:01", 1500, "UP", True, None)
    other = Bridge("virbr0", False, 0, ())
    f2 = dataclasses.replace(
        f,
        links=(*f.links, vm, Link("virbr0", "bridge", "52:54:00:aa:bb:cc", 1500, "UP", True, None)),
        bridges=(other,),
        addresses=(*f.addresses, Address("virbr0", 4, "203.0.113.1/24", "global")),
    )
    assert kinds(plan_host(task(), f2, min_timeout=20)) == CLASSIC
