"""One rollback verdict (``fleetbr.transaction.verdict``) whichever path finds the rolled-back host.

The transaction's resolver (``apply``), ``fleetbr rollback`` and ``apply --resume`` are each given
the same host (a :class:`~tests.unit.fakehost.FakeHost` answering the same state, snapshot and
facts, on a virtual clock) and must reach the same :class:`RollbackVerdict`: rolled back and at
the snapshot, or failed with the same problems (failed rollback steps, a daemon that never
settles, a guest that does not come back), with a tap device that came meanwhile as a note.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from fleetbr.changes.bridge.change import BridgeChange
from fleetbr.facts.model import HostFacts, Route
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.topology import DhcpLease
from fleetbr.plan import Plan, restore_check
from fleetbr.plan.scope import Touched, touched_by, touched_lines
from fleetbr.report import Status
from fleetbr.resume import resolve_on
from fleetbr.transaction.hoststate import parse_state
from fleetbr.transaction.protocol import Transaction, resolve
from fleetbr.transaction.recover import rollback_on
from fleetbr.transaction.verdict import (
    SETTLE_SECONDS,
    Judged,
    RollbackVerdict,
    ScriptOutcome,
    adverts_settling,
    compare,
    guests_settling,
    judge_rollback,
    leases_settling,
    settling,
)
from tests.unit.fakehost import (
    FACTS_DIR,
    ROLLED_BACK,
    FakeClock,
    FakeConnection,
    FakeHost,
    Reply,
    parsed,
    spec,
    state,
)
from tests.unit.test_guests import MOVE_ALL
from tests.unit.test_plan_support import task

TXID = "20261206T014500-abcdef"
FOREVER = 1e9  # a reply given again and again
GUESTS = (FACTS_DIR / "libvirt_guests.txt").read_text()  # g1 on vnet0, g2 on vnet1, off1
NETWORKD = (FACTS_DIR / "distro_networkd.txt").read_text()  # eth0 managed by networkd
_CONFIGURED = '"AdministrativeState":"configured","OperationalState":"routable"'
NETWORKD_SETTLING = NETWORKD.replace(_CONFIGURED, _CONFIGURED.replace("configured", "configuring"))
ARMED = f"""@@fleetbr-section armed
txid={TXID}
txid_valid=yes
deadline=1795917150
boot_id=40dfde51-f781-4e22-b2cb-a4ea79d8c510
timer=pid 27838
timer_alive=yes
"""


def sections(text: str) -> list[tuple[str, str]]:
    """The facts output as (section name, body) pairs, the end marker dropped."""
    body = text.split("@@fleetbr-end")[0]
    found = []
    for part in body.split("@@fleetbr-section ")[1:]:
        name, _, rest = part.partition("\n")
        found.append((name, rest))
    return found


def joined(parts: list[tuple[str, str]]) -> str:
    return "".join(f"@@fleetbr-section {name}\n{rest}" for name, rest in parts) + "@@fleetbr-end\n"


def edit_json(text: str, section: str, edit: Callable[[list[Any]], list[Any]]) -> str:
    """``text`` with the JSON of ``section`` (ip's one-line output) edited."""
    return joined([
        (name, json.dumps(edit(json.loads(rest))) + "\n" if name == section else rest)
        for name, rest in sections(text)
    ])  # fmt: skip


def with_section(text: str, section: str, body: str) -> str:
    """``text`` with ``section`` replaced by (or extended with) ``body``."""
    parts = [(name, rest) for name, rest in sections(text) if name != section]
    return joined([*parts, (section, body)])


def snapshot(before: str, plan: Plan) -> str:
    """What the staged facts script printed: the facts and the plan's ``touched`` section."""
    return with_section(
        before, "touched", "".join(f"{x}\n" for x in touched_lines(touched_by(plan)))
    )


def armed(before: str) -> str:
    """The host's facts while the transaction is armed (what ``fleetbr rollback`` sees first)."""
    return with_section(before, "armed", ARMED.partition("\n")[2])


@dataclasses.dataclass(frozen=True)
class Case:
    """One host state: the facts before, the plan, what the host says afterwards."""

    before: str
    plan: Plan
    after: tuple[str, ...]  # the facts after, look after look (the last one again and again)
    rollback: str = "done failed=0"


PERSISTED = "bridge: {name: br0, nic: eth0, mac: nic}\npersist: networkd\n"


def plan_of(before: str, text: str) -> Plan:
    found = BridgeChange(task(text), "t.yaml").plan(parse_facts(before), 20)
    assert found.refusal is None, found.refusal
    return found


def host_for(case: Case, *, first: tuple[str, ...] = ()) -> FakeHost:
    """A host that answers like ``case`` (``first``: facts it answers before those)."""
    host = FakeHost()
    host.on("state", Reply(state(**{**ROLLED_BACK, "rollback": case.rollback}), until=FOREVER))
    host.on("rollback", "")
    host.on("snapshot", snapshot(case.before, case.plan))
    host.on("results", Reply("", until=FOREVER))
    *once, last = case.after
    host.on("facts", *first, *once, Reply(last, until=FOREVER))
    return host


def by_transaction(case: Case) -> dict[str, Any]:
    host = host_for(case)
    tx = Transaction(
        spec(), BridgeChange(task(), "t.yaml"), before=parse_facts(case.before), plan=case.plan,
        txid=TXID, deadline=host.clock.now() + 40, clock=host.clock,
    )  # fmt: skip
    result = asyncio.run(resolve(tx, transport=host))
    verdict: dict[str, Any] = result.data["verdict"]
    assert result.status is (Status.ROLLED_BACK if verdict["at_snapshot"] else Status.FAILED)
    return verdict


def by_rollback_command(case: Case) -> dict[str, Any]:
    host = host_for(case, first=(armed(case.before),))
    result = asyncio.run(rollback_on(FakeConnection(spec(), host), "hv01", clock=host.clock))
    verdict: dict[str, Any] = result.data["verdict"]
    assert result.status is (Status.ROLLED_BACK if verdict["at_snapshot"] else Status.FAILED)
    return verdict


def by_resume(case: Case) -> dict[str, Any]:
    host = host_for(case)
    conn = FakeConnection(spec(), host)
    found = asyncio.run(resolve_on(conn, "hv01", TXID, 7, clock=host.clock))
    assert found.verdict is not None
    verdict = found.verdict.to_dict()
    if verdict["at_snapshot"]:
        assert found.final is None  # free again: applied in its batch
    else:
        assert found.final is not None and found.final.status is Status.FAILED
        assert found.final.data["verdict"] == verdict
    return verdict


PATHS = (by_transaction, by_rollback_command, by_resume)


def one_verdict(case: Case) -> dict[str, Any]:
    """The verdict every path reaches (the test fails when two paths differ)."""
    found = [path(case) for path in PATHS]
    assert found[0] == found[1] == found[2], found
    return found[0]


def without_link(text: str, name: str) -> str:
    return edit_json(text, "links", lambda links: [x for x in links if x["ifname"] != name])


def with_tap(text: str, name: str) -> str:
    """A guest's tap device that came meanwhile (nothing the transaction touched)."""
    tap = {"ifindex": 99, "ifname": name, "flags": ["BROADCAST", "UP"], "mtu": 1500,
           "operstate": "UNKNOWN", "link_type": "ether", "address": "fe:54:00:09:00:09",
           "linkinfo": {"info_kind": "tun"}}  # fmt: skip
    return edit_json(text, "links", lambda links: [*links, tap])


def test_a_host_back_at_its_snapshot_is_rolled_back_on_every_path() -> None:
    case = Case(GUESTS, plan_of(GUESTS, MOVE_ALL), (GUESTS,))
    verdict = one_verdict(case)
    assert verdict == {"at_snapshot": True, "decision": "rolled_back timer", "problems": [],
                       "notes": [], "failed_steps": 0, "kept": []}  # fmt: skip


def test_a_tap_that_appeared_meanwhile_is_a_note_not_a_problem() -> None:
    case = Case(GUESTS, plan_of(GUESTS, MOVE_ALL), (with_tap(GUESTS, "vnet9"),))
    verdict = one_verdict(case)
    assert verdict["at_snapshot"] is True and verdict["problems"] == []
    assert verdict["notes"] == ["link vnet9: tun master None up mac fe:54:00:09:00:09 is new"]


def test_failed_rollback_steps_fail_the_rollback_on_every_path() -> None:
    case = Case(GUESTS, plan_of(GUESTS, MOVE_ALL), (GUESTS,), rollback="done failed=2")
    verdict = one_verdict(case)
    assert verdict["at_snapshot"] is False and verdict["failed_steps"] == 2
    assert verdict["problems"] == []


def test_a_guest_that_does_not_come_back_fails_after_the_settle_time_on_every_path() -> None:
    gone = without_link(GUESTS, "vnet0")  # g1 runs, its tap never comes back
    verdict = one_verdict(Case(GUESTS, plan_of(GUESTS, MOVE_ALL), (gone,)))
    assert verdict["at_snapshot"] is False
    assert any(p.startswith("link vnet0: ") and p.endswith("was there before, missing now")
               for p in verdict["problems"]), verdict  # fmt: skip


def test_a_guest_that_comes_back_while_settling_is_rolled_back_on_every_path() -> None:
    gone = without_link(GUESTS, "vnet0")
    verdict = one_verdict(Case(GUESTS, plan_of(GUESTS, MOVE_ALL), (gone, gone, GUESTS)))
    assert verdict["at_snapshot"] is True and verdict["problems"] == []


def test_a_daemon_that_never_settles_fails_on_every_path() -> None:
    plan = plan_of(NETWORKD, PERSISTED)  # persisted: its daemon's view is judged
    verdict = one_verdict(Case(NETWORKD, plan, (NETWORKD_SETTLING,)))
    assert verdict["at_snapshot"] is False
    assert verdict["problems"] == [
        "eth0: networkd configured before, networkd configuring after the rollback"
    ]


def test_a_daemon_that_settles_in_time_is_rolled_back_on_every_path() -> None:
    plan = plan_of(NETWORKD, PERSISTED)
    verdict = one_verdict(Case(NETWORKD, plan, (NETWORKD_SETTLING, NETWORKD)))
    assert verdict["at_snapshot"] is True


# --- the verdict itself ---------------------------------------------------------------------


def judge(before: HostFacts, plan: Plan, looks: list[HostFacts], clock: FakeClock,
          rollback: str = "done failed=0") -> RollbackVerdict:  # fmt: skip
    marks = parsed(state(**{**ROLLED_BACK, "rollback": rollback}))
    seen = iter(looks)
    last: list[HostFacts] = []

    async def look() -> HostFacts:
        last.append(next(seen, last[-1] if last else before))
        return last[-1]

    return asyncio.run(judge_rollback(Judged(TXID, before, touched_by(plan)), parse_state(marks),
                                      look, clock))  # fmt: skip


def test_the_settle_loop_looks_every_second_and_gives_up_after_its_time() -> None:
    before = parse_facts(NETWORKD)
    clock = FakeClock()
    start = clock.now()
    verdict = judge(before, plan_of(NETWORKD, PERSISTED), [parse_facts(NETWORKD_SETTLING)],
                    clock)  # fmt: skip
    assert set(clock.slept) == {1}
    assert SETTLE_SECONDS < clock.now() - start <= SETTLE_SECONDS + 1
    assert not verdict.at_snapshot


def test_a_settled_host_with_problems_is_judged_at_once() -> None:
    before = parse_facts(GUESTS)
    after = parse_facts(without_link(GUESTS, "vnet9"))  # nothing removed: same as before
    clock = FakeClock()
    lost = dataclasses.replace(after, addresses=())  # the NIC's addresses gone, nothing settling
    verdict = judge(before, plan_of(GUESTS, MOVE_ALL), [lost], clock)
    assert clock.slept == [] and not verdict.at_snapshot and verdict.problems


def test_nothing_to_settle_without_a_scope_unless_something_settles() -> None:
    before = parse_facts(NETWORKD)
    assert not settling(before, before, None)
    assert settling(before, parse_facts(NETWORKD_SETTLING), None)  # any interface counts


@pytest.mark.parametrize(
    ("rollback", "count"),
    [("done failed=0", 0), ("done failed=3", 3), ("none", 0), ("done failed=x", 0)],
)
def test_failed_steps_are_read_from_the_hosts_rollback_status(rollback: str, count: int) -> None:
    assert parse_state(parsed(state(rollback=rollback))).failed_steps == count


def test_failures_name_the_failed_steps_first_then_the_problems() -> None:
    verdict = RollbackVerdict("rolled_back timer", ("link x missing",), (), 2, ("/etc/a",))
    assert verdict.failures(TXID) == [
        f"2 rollback step(s) failed on the host (see /var/lib/fleetbr/tx/{TXID}/apply.log)",
        "link x missing",
    ]
    assert "kept what someone else wrote to /etc/a" in verdict.kept_note(TXID)
    assert RollbackVerdict("rolled_back timer", (), (), 0, ()).kept_note(TXID) == ""
    assert RollbackVerdict("rolled_back timer", (), (), 0, ()).outcome == ScriptOutcome()


@pytest.mark.parametrize(
    "word",
    ["pending", "initialized", "configuring", "connecting (getting IP configuration)",
     "deactivating", "prepare"],
)  # fmt: skip
def test_every_word_of_a_daemon_still_at_work_is_settling(word: str) -> None:
    before = parse_facts(NETWORKD)
    eth0 = dataclasses.replace(before.manager("eth0"), state=word)
    daemons = dataclasses.replace(before.daemons, interfaces={"eth0": eth0})
    busy = dataclasses.replace(before, daemons=daemons)
    assert settling(before, busy, Touched(frozenset({"eth0"})))
    assert not settling(before, busy, Touched(frozenset({"br0"})))  # not an interface it touched
    assert not settling(before, before, Touched(frozenset({"eth0"})))


def test_guests_settle_only_when_one_it_moved_ran_before_and_is_not_back() -> None:
    before = parse_facts(GUESTS)
    assert before.guests is not None
    g1 = before.guests.domains[0].uuid
    no_virsh = dataclasses.replace(before, guests=None)
    assert not guests_settling([g1], no_virsh, no_virsh)  # no libvirt before: nothing to wait for
    assert guests_settling([g1], before, no_virsh)  # libvirt not answering yet
    assert guests_settling(None, before, no_virsh)  # no scope: any guest that ran
    assert not guests_settling([], before, no_virsh)  # it moved no guest
    assert not guests_settling([g1], before, before)
    gone = parse_facts(without_link(GUESTS, "vnet0"))  # g1's tap
    assert guests_settling([g1], before, gone) and guests_settling(None, before, gone)
    stopped = dataclasses.replace(before.guests.domains[0], active=False)
    down = dataclasses.replace(before, guests=dataclasses.replace(
        before.guests, domains=(stopped, *before.guests.domains[1:])))  # fmt: skip
    assert guests_settling([g1], before, down)
    assert not guests_settling([g1], down, down)  # it did not run before either


def test_the_verdict_names_what_the_rollback_kept() -> None:
    before = parse_facts(GUESTS)
    paths = ("/etc/network/interfaces", "/etc/hosts")
    kept = dataclasses.replace(before, kept={TXID: paths, "other": ("/x",)})
    verdict = judge(before, plan_of(GUESTS, MOVE_ALL), [kept], FakeClock())
    assert verdict.kept == paths and verdict.at_snapshot
    assert verdict.kept_note(TXID) == (
        "; kept what someone else wrote to /etc/network/interfaces, /etc/hosts during the window "
        f"(in /var/lib/fleetbr/kept/{TXID}/) before restoring"
    )


def test_the_verdict_carries_what_the_changes_own_scripts_left() -> None:
    before = parse_facts(GUESTS)
    said = ScriptOutcome({"undo": {"exit_status": 0}}, "the undo exited 0")

    async def outcome() -> ScriptOutcome:
        return said

    async def look() -> HostFacts:
        return before

    marks = parsed(state(**ROLLED_BACK))
    judged = Judged(TXID, before, Touched(frozenset()))
    verdict = asyncio.run(
        judge_rollback(judged, parse_state(marks), look, FakeClock(), outcome=outcome)
    )
    assert verdict.outcome == said


def test_without_a_scope_everything_is_compared_and_no_daemon_is_judged() -> None:
    before = parse_facts(NETWORKD)
    after = parse_facts(with_tap(NETWORKD_SETTLING, "vnet9"))
    found = compare(before, after, None)
    assert found.problems == restore_check(before, after, None).problems != []
    assert found.notes == []


def test_only_a_guest_it_moved_is_waited_for() -> None:
    before = parse_facts(GUESTS)
    assert before.guests is not None
    gone = parse_facts(without_link(GUESTS, "vnet0"))  # g1's tap
    g1 = before.guests.domains[0].uuid
    assert settling(before, gone, Touched(frozenset(), domains=frozenset({g1})))
    assert not settling(before, gone, Touched(frozenset()))  # it moved no guest
    assert settling(before, gone, None)


def test_the_settle_time_is_30_seconds() -> None:
    """docs/safety.md promises up to 30 s."""
    before = parse_facts(NETWORKD)
    clock = FakeClock()
    judge(before, plan_of(NETWORKD, PERSISTED), [parse_facts(NETWORKD_SETTLING)], clock)
    assert clock.slept == [1] * 31


def with_leases(facts: HostFacts, *leases: DhcpLease) -> HostFacts:
    return dataclasses.replace(facts, topology=dataclasses.replace(facts.topology, dhcp=leases))


V4 = DhcpLease("eth0", 4, "198.51.100.11/24", "networkmanager")
V6 = DhcpLease("eth0", 6, "2001:db8:100::b/128", "networkmanager")


def test_a_lease_the_snapshot_held_on_a_touched_interface_is_waited_for() -> None:
    """After a power cut in the window NetworkManager calls the NIC connected with its IPv4
    lease, and SSH answers, while DHCPv6 is still at work: the IPv6 lease is waited for."""
    base = parse_facts(NETWORKD)
    held, v4_only = with_leases(base, V4, V6), with_leases(base, V4)
    eth0 = Touched(frozenset({"eth0"}))
    assert settling(held, v4_only, eth0) and settling(held, v4_only, None)
    assert leases_settling(held, v4_only) and not leases_settling(held, v4_only, ("br0",))
    assert not settling(held, v4_only, Touched(frozenset({"br0"})))  # not an interface it touched
    assert not settling(held, held, eth0)
    assert not settling(v4_only, held, eth0)  # a lease more is nothing to wait for


def test_the_verdict_waits_for_a_lease_to_come_back_and_gives_up_after_its_time() -> None:
    base = parse_facts(NETWORKD)
    held, v4_only = with_leases(base, V4, V6), with_leases(base, V4)
    plan = plan_of(NETWORKD, PERSISTED)
    clock = FakeClock()
    assert judge(held, plan, [v4_only, v4_only, held], clock).at_snapshot
    assert clock.slept == [1, 1]
    clock = FakeClock()
    start = clock.now()
    never = judge(held, plan, [v4_only], clock)
    assert not never.at_snapshot and SETTLE_SECONDS < clock.now() - start <= SETTLE_SECONDS + 1
    assert any("2001:db8:100::b/128 on eth0 was there before, missing now" in p
               for p in never.problems), never.problems  # fmt: skip


ADVERTISED = Route(6, "default", "eth0", "fe80::1", 1024, "ra", pref="medium", metrics="mtu 1500")


def with_routes(facts: HostFacts, *routes: Route) -> HostFacts:
    return dataclasses.replace(facts, routes=(*facts.routes, *routes))


def test_a_route_from_a_router_advertisement_not_back_yet_is_waited_for() -> None:
    """The rolled-back NIC solicits an advertisement when it comes up; until the router answers,
    its default route is missing: waited for (on a touched device), and the verdict is rolled
    back once it came, with or without the advertisement's mtu. A route only the snapshot's
    router gave with another gateway or metric is a different route: still waited for."""
    base = parse_facts(NETWORKD)
    held = with_routes(base, ADVERTISED)
    eth0 = Touched(frozenset({"eth0"}))
    assert adverts_settling(held, base) and settling(held, base, eth0)
    assert not settling(held, base, Touched(frozenset({"br0"})))  # not a device it touched
    no_mtu = with_routes(base, dataclasses.replace(ADVERTISED, metrics=""))
    assert not adverts_settling(held, no_mtu)
    assert adverts_settling(held, with_routes(base, dataclasses.replace(ADVERTISED, metric=100)))
    assert not adverts_settling(base, held), "a route more is nothing to wait for"
    static = dataclasses.replace(ADVERTISED, protocol="static")  # not a router's: judged at once
    assert not adverts_settling(with_routes(base, static), base)
    plan = plan_of(NETWORKD, PERSISTED)
    clock = FakeClock()
    assert judge(held, plan, [base, base, with_routes(base, ADVERTISED)], clock).at_snapshot
    assert clock.slept == [1, 1]
    clock = FakeClock()
    never = judge(held, plan, [base], clock)
    assert not never.at_snapshot and len(clock.slept) == 31
