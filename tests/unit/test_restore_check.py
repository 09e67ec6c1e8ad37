"""The rollback verdict (fleetbr.plan.restore.restore_check): every fact the transaction touched
must be back; what it did not touch is only listed; facts an older script did not report are not
compared. Each case is one a wrong verdict would get wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetbr.facts.model import Address, Daemons, HostFacts, Link, Route, Rule
from fleetbr.facts.parse import parse_facts
from fleetbr.plan.restore import diff_facts, restore_check, route_text
from fleetbr.plan.scope import Touched
from tests.unit.test_plan_support import V4, facts

BEFORE = facts()
ETH0 = Touched(frozenset({"eth0", "br0"}))
GUESTS = parse_facts((Path(__file__).parent.parent / "data/facts/libvirt_guests.txt").read_text())


def change(base: HostFacts = BEFORE, **fields: object) -> HostFacts:
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def check(
    after: HostFacts, before: HostFacts = BEFORE, touched: Touched | None = ETH0
) -> tuple[list[str], list[str]]:
    found = restore_check(before, after, touched)
    return found.problems, found.unrelated


def test_the_same_address_written_differently_is_the_same() -> None:
    v6 = Address("eth0", 6, "2001:db8:100:0:0::10/64", "global")
    before = change(addresses=(*BEFORE.addresses, v6))
    after = change(
        addresses=(*BEFORE.addresses, dataclasses.replace(v6, cidr="2001:db8:100::10/64"))
    )
    assert check(after, before) == ([], [])


def test_a_route_through_another_device_with_a_touched_source_is_in_scope() -> None:
    """A route via eth1 whose source is the NIC's address was moved by the change (its src
    went to the bridge): when it is not back, the rollback failed."""
    eth1 = Link("eth1", "ether", "52:54:00:00:00:02", 1500, "UP", True, None)
    src = Route(4, "203.0.113.0/24", "eth1", None, None, "static", src=V4.split("/")[0])
    before = change(links=(*BEFORE.links, eth1), routes=(*BEFORE.routes, src))
    after = change(links=(*BEFORE.links, eth1))
    problems, unrelated = check(after, before)
    assert problems == [f"route {route_text(src)} was there before, missing now"]
    assert unrelated == []
    other = dataclasses.replace(src, src="203.0.113.1")  # not the NIC's address: unrelated
    problems, unrelated = check(after, change(before, routes=(*BEFORE.routes, other)))
    assert problems == [] and unrelated == [
        f"route {route_text(other)} was there before, missing now"
    ]


def test_lo_is_never_compared() -> None:
    lo_down = tuple(dataclasses.replace(x, admin_up=False) if x.name == "lo" else x
                    for x in BEFORE.links)  # fmt: skip
    assert diff_facts(BEFORE, change(links=lo_down)) == []
    assert check(change(links=lo_down), touched=None) == ([], [])  # not even listed


def test_with_no_scope_every_difference_counts() -> None:
    """diff_facts (fleetbr run --deadman's report, snapshots from older fleetbr): a file only
    one side reports, a blackhole route, a bridge-nf key: all of them."""
    pin = "/run/fleetbr/pins/br0.json"
    hole = Route(4, "203.0.113.0/24", "", None, None, "static", type="blackhole")
    after = change(
        managed_files={**BEFORE.managed_files, pin: "ab" * 32},
        routes=(*BEFORE.routes, hole),
        bridge_nf={**BEFORE.bridge_nf, "call-iptables": 0},
    )
    assert diff_facts(BEFORE, after) == [
        "bridge-nf call-iptables=1 was there before, missing now",
        "bridge-nf call-iptables=0 is new",
        f"file {pin} sha256 {'ab' * 32} is new",
        f"route {route_text(hole)} is new",
    ]


def test_a_route_whose_protocol_was_not_reported_is_boot() -> None:
    route = Route(4, "203.0.113.0/24", "eth0", "198.51.100.1", None, "boot")
    before = change(routes=(*BEFORE.routes, route))
    after = change(routes=(*BEFORE.routes, dataclasses.replace(route, protocol="")))
    assert check(after, before) == ([], [])
    assert "proto" not in route_text(route) and "proto" not in route_text(after.routes[-1])
    assert "proto static" in route_text(dataclasses.replace(route, protocol="static"))


def test_every_attribute_of_a_route_is_compared() -> None:
    a = Route(6, "2001:db8:300::/48", "eth0", "2001:db8:100::1", 1024, "static", pref="high",
              scope="global", metrics="mtu 1400")  # fmt: skip
    text = route_text(a)
    for part in ("2001:db8:300::/48", "via 2001:db8:100::1", "dev eth0", "pref high",
                 "scope global", "mtu 1400", "proto static", "(ipv6)"):  # fmt: skip
        assert part in text, part
    b = dataclasses.replace(a, dst="2001:db8:400::/48")
    problems, _ = check(change(routes=(*BEFORE.routes, b)), change(routes=(*BEFORE.routes, a)))
    assert len(problems) == 2


def test_a_routers_advertised_mtu_is_not_compared_but_the_route_is() -> None:
    """A default route from a router advertisement: its mtu comes from the latest advertisement
    (CI: networkd's route had ``mtu 1500`` in the snapshot, not yet after the rollback), so it is
    not a difference; the route's gateway, device, metric and preference still are."""
    ra = Route(6, "default", "eth0", "fe80::1", 100, "ra", pref="medium", metrics="mtu 1500")
    before = change(routes=(*BEFORE.routes, ra))
    assert check(change(routes=(*BEFORE.routes, dataclasses.replace(ra, metrics=""))), before) == (
        [], [])  # fmt: skip
    for moved in ({"dev": "br0"}, {"gateway": "fe80::2"}, {"metric": 1024}, {"pref": "high"}):
        after = change(routes=(*BEFORE.routes, dataclasses.replace(ra, **moved)))
        assert len(check(after, before)[0]) == 2, moved
    static = dataclasses.replace(ra, protocol="static")  # anyone else's mtu is compared
    after = change(routes=(*BEFORE.routes, dataclasses.replace(static, metrics="")))
    assert len(check(after, change(routes=(*BEFORE.routes, static)))[0]) == 2


def test_a_secondary_address_that_came_back_primary_is_not_restored() -> None:
    one = Address("eth0", 4, "198.51.100.20/24", "global")
    two = Address("eth0", 4, "198.51.100.21/24", "global", secondary=True)
    rest = tuple(a for a in BEFORE.addresses if a.family == 6 or a.scope != "global")
    before = change(addresses=(*rest, dataclasses.replace(one), two))
    after = change(addresses=(*rest, dataclasses.replace(two, secondary=False),
                              dataclasses.replace(one, secondary=True)))  # fmt: skip
    problems, _ = check(after, before)
    assert "address 198.51.100.21/24 on eth0 secondary was there before, missing now" in problems


def test_an_older_facts_script_compares_the_main_table_only() -> None:
    t100 = Route(4, "default", "eth0", "198.51.100.1", None, "static", table="100")
    main = Route(4, "203.0.113.0/24", "eth0", "198.51.100.1", None, "static")
    before = change(route_tables="main", routes=(*BEFORE.routes, t100, main))
    after = change(route_tables="main", routes=BEFORE.routes)  # both gone
    problems, _ = check(after, before)
    assert problems == [f"route {route_text(main)} was there before, missing now"]
    before = change(route_tables="main", routes=(t100, *BEFORE.routes, main))  # table 100 first
    problems, _ = check(after, before)
    assert problems == [f"route {route_text(main)} was there before, missing now"]


def test_br_netfilter_is_compared_only_when_both_sides_report_it() -> None:
    assert check(change(br_netfilter="loaded")) == ([], [])
    problems, unrelated = check(change(br_netfilter="loaded"), change(br_netfilter="absent"))
    assert problems == []  # a module fleetbr loaded may have to stay loaded: tolerated
    assert unrelated == ["kernel module br_netfilter absent was there before, missing now",
                         "kernel module br_netfilter loaded is new"]  # fmt: skip


def test_a_backends_file_the_transaction_touched_must_be_restored() -> None:
    path = "/etc/systemd/network/10-eth0.network"
    touched = dataclasses.replace(ETH0, files=frozenset({path}))
    before = change(daemons=Daemons(files={path: "aa" * 32}))
    after = change(daemons=Daemons(files={path: "bb" * 32}))
    problems, unrelated = check(after, before, touched)
    assert problems == [f"file {path} sha256 {'aa' * 32} was there before, missing now",
                        f"file {path} sha256 {'bb' * 32} is new"]  # fmt: skip
    assert unrelated == []


def test_rules_are_compared_when_both_sides_report_them() -> None:
    mine = Rule(4, 100, "from all iif eth0 lookup 100", iif="eth0")
    other = Rule(4, 200, "from all oif eth9 lookup 200", oif="eth9")
    assert check(change(rules=(mine,)), change(rules=None)) == ([], [])
    assert check(change(rules=None), change(rules=(mine,))) == ([], [])
    problems, unrelated = check(change(rules=()), change(rules=(mine, other)))
    assert problems == [f"rule ipv4 100: {mine.text} was there before, missing now"]
    assert unrelated == [f"rule ipv4 200: {other.text} was there before, missing now"]


def test_guests_are_compared_only_when_both_sides_read_libvirt() -> None:
    assert GUESTS.guests is not None and GUESTS.guests.domains
    assert check(dataclasses.replace(GUESTS, guests=None), GUESTS) == ([], [])
    assert check(GUESTS, dataclasses.replace(GUESTS, guests=None)) == ([], [])
    moved = dataclasses.replace(GUESTS.guests, domains=GUESTS.guests.domains[1:])
    uuid = GUESTS.guests.domains[0].uuid
    touched = dataclasses.replace(ETH0, domains=frozenset({uuid}))
    problems, _ = check(dataclasses.replace(GUESTS, guests=moved), GUESTS, touched)
    assert problems
    problems, unrelated = check(dataclasses.replace(GUESTS, guests=moved), GUESTS, ETH0)
    assert problems == [] and unrelated
    assert diff_facts(GUESTS, dataclasses.replace(GUESTS, guests=moved))  # no scope: all domains
