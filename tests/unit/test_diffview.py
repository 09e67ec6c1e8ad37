"""``--diff`` (fleetbr.diffview): the before/after view of plan and check, each runtime section,
files created, changed, removed and not known, hostile bytes, colour, the JSON form."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from fleetbr.changes.bridge.drift import check_plan
from fleetbr.cli_args import parse_command_line
from fleetbr.cli_diff import apply_with_diff
from fleetbr.cli_request import request_from_args
from fleetbr.core import kinds
from fleetbr.core.assemble import execute_async
from fleetbr.core.request import ChangeRef, RunRequest, Selection
from fleetbr.diffview.build import host_diff
from fleetbr.diffview.model import SECTIONS, FileDiff, HostDiff
from fleetbr.diffview.project import project
from fleetbr.diffview.runtime import lines, state_of
from fleetbr.diffview.show import print_diffs
from fleetbr.diffview.text import colour_wanted, render_text, styled_lines
from fleetbr.errors import UsageError
from fleetbr.facts.model import Address, Daemons, HostFacts, Link
from fleetbr.history.record import bounded
from fleetbr.history.store import DATA_LIMIT
from fleetbr.inventory import HostSpec, SSHOptions
from fleetbr.plan import plan_host
from fleetbr.plan.model import ExpectedState, GuestExpect
from fleetbr.report import AggregatedResult, HostResult, Status
from fleetbr.transport import Session
from tests.unit.test_backends_plan import facts as distro
from tests.unit.test_guests import MOVE_ALL, lab_facts
from tests.unit.test_plan_support import GW4, V4, V6, bridged, facts, task
from tests.unit.toykind.kind import ToyKind

NETWORKD = "bridge: {name: br0, nic: eth0, mac: nic}\npersist: auto\n"
UNBRIDGE = "bridge: {name: br0, nic: eth0, state: absent}\npersist: auto\n"
NETWORKD_ETH0 = "/etc/systemd/network/10-eth0.network"
TASK = Path(__file__).resolve().parents[2] / "tasks" / "bridge.yaml"


def plan_diff(text: str, host: HostFacts) -> HostDiff:
    return host_diff("hv01", host, plan_host(task(text), host, min_timeout=0), "plan")


def section(diff: HostDiff, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found = next(s for s in diff.sections if s.name == name)
    return found.before, found.after


def file_of(diff: HostDiff, path: str) -> FileDiff:
    return next(f for f in diff.files if f.path == path)


# --- runtime sections ------------------------------------------------------------------------


def test_plan_shows_every_runtime_section_before_and_after() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth0, mac: nic}\n", facts())
    assert [s.name for s in diff.sections] == list(SECTIONS)
    links_before, links_after = section(diff, "links")
    assert "br0 bridge mtu 1500 up mac 52:54:00:12:34:56" in links_after
    assert not any(line.startswith("br0 ") for line in links_before)
    assert section(diff, "bridges") == ((), ("br0 stp off forward_delay 4",))
    assert section(diff, "ports") == ((), ("br0 port eth0",))
    assert section(diff, "addresses") == ((f"eth0 {V4}", f"eth0 {V6}"), (f"br0 {V4}", f"br0 {V6}"))
    routes_before, routes_after = section(diff, "routes")
    assert f"ipv4 default via {GW4} dev eth0 proto boot" in routes_before
    assert f"ipv4 default via {GW4} dev br0 proto boot" in routes_after
    assert "ipv4 198.51.100.0/24 dev br0 proto kernel" in routes_after  # follows its address
    assert not any("dev eth0" in line for line in routes_after)
    assert section(diff, "sysctls")[1] == (
        "net.bridge.bridge-nf-call-arptables = 0",
        "net.bridge.bridge-nf-call-ip6tables = 0",
        "net.bridge.bridge-nf-call-iptables = 0",
    )
    assert diff.changed and diff.mode == "plan" and diff.note == ""


def test_a_section_diff_is_unified_with_section_labels() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", facts())
    ports = next(s for s in diff.sections if s.name == "ports")
    assert ports.diff() == ("--- a/ports", "+++ b/ports", "@@ -0,0 +1 @@", "+br0 port eth0")


def test_guests_moved_onto_the_bridge_and_their_taps_become_its_ports() -> None:
    diff = plan_diff(MOVE_ALL, lab_facts())
    before, after = section(diff, "guests")
    assert "guest g1 live 52:54:00:01:00:01 on network lab (tap vnet0)" in before
    assert "guest g1 live 52:54:00:01:00:01 on bridge br0 (tap vnet0)" in after
    assert "guest off1 config 52:54:00:01:00:03 on bridge br0" in after
    assert {"br0 port vnet0", "br0 port vnet1", "br0 port eth0"} <= set(section(diff, "ports")[1])


def test_a_guest_not_moved_keeps_its_line() -> None:
    state = state_of(lab_facts())
    moved = GuestExpect(state.guests[0].uuid, "g1", state.guests[0].mac, "live", "br0")
    exp = ExpectedState("br0", "eth0", True, "br0", (V4,), guests=(moved,))
    after = project(state, exp)
    changed = [old for old, new in zip(state.guests, after.guests, strict=True) if old != new]
    assert [(g.uuid, g.mac, g.scope) for g in changed] == [(moved.uuid, moved.mac, "live")]


def test_mtu_carried_by_the_backend_shows_on_the_bridge_and_its_port() -> None:
    state = state_of(facts())
    exp = ExpectedState("br0", "eth0", True, "br0", (V4,), mtu=9000)
    shown = lines(project(state, exp))["links"]
    assert "br0 bridge mtu 9000 up" in shown
    assert "eth0 ether mtu 9000 up mac 52:54:00:12:34:56" in shown


def test_unbridge_removes_the_bridge_and_gives_the_nic_its_addresses_back() -> None:
    host = distro("networkd_bridged")
    diff = plan_diff(UNBRIDGE, host)
    assert section(diff, "bridges") == (("br0 stp off forward_delay 4",), ())
    assert section(diff, "ports") == (("br0 port eth0",), ())
    before, after = section(diff, "addresses")
    assert all(line.startswith("br0 ") for line in before)
    assert all(line.startswith("eth0 ") for line in after) and len(after) == len(before)
    assert not any("dev br0" in line for line in section(diff, "routes")[1])


def test_an_unchanged_host_shows_no_change() -> None:
    host = bridged(facts())
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", host)
    assert not diff.changed
    assert all(not s.changed and s.diff() == () for s in diff.sections)
    assert render_text(diff) == "--- hv01: plan, no change\n"


def test_a_refused_plan_changes_nothing_and_says_why() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth9}\n", facts())
    assert not diff.changed
    assert diff.note.startswith("refused: NIC eth9 does not exist")
    assert "refused: NIC eth9" in render_text(diff)


# --- check: drift as the same view ------------------------------------------------------------


def test_check_shows_the_drift_as_current_against_desired() -> None:
    host = bridged(facts())
    drifted = dataclasses.replace(
        host,
        addresses=tuple(a for a in host.addresses if a.cidr != V4),
        bridge_nf={**host.bridge_nf, "call-iptables": 1},
    )
    plan = check_plan(task("bridge: {name: br0, nic: eth0}\n"), drifted, 0)
    diff = host_diff("hv01", drifted, plan, "check")
    assert diff.mode == "check" and diff.changed
    adds = [s.diff() for s in diff.sections if s.changed]
    flat = [line for lines_ in adds for line in lines_]
    assert f"+br0 {V4}" in flat
    assert "-net.bridge.bridge-nf-call-iptables = 1" in flat
    assert "+net.bridge.bridge-nf-call-iptables = 0" in flat
    assert not next(s for s in diff.sections if s.name == "bridges").changed


# --- files --------------------------------------------------------------------------------------


def test_a_created_file_has_a_dev_null_side() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", facts())
    conf = file_of(diff, "/etc/sysctl.d/bridge.conf")
    assert conf.status == "created" and conf.before is None and conf.known
    assert conf.diff()[:2] == ("--- /dev/null", "+++ b/etc/sysctl.d/bridge.conf")
    assert "+net.bridge.bridge-nf-call-iptables = 0" in conf.diff()


def test_a_changed_backend_file_is_a_unified_diff_of_its_content() -> None:
    host = distro("networkd")
    diff = plan_diff(NETWORKD, host)
    eth0 = file_of(diff, NETWORKD_ETH0)
    assert eth0.status == "changed"
    assert eth0.before == host.daemons.contents[NETWORKD_ETH0]
    assert eth0.after is not None and "Bridge=br0" in eth0.after
    text = eth0.diff()
    assert text[:2] == (f"--- a{NETWORKD_ETH0}", f"+++ b{NETWORKD_ETH0}")
    assert "+Bridge=br0" in text and "-Address=198.51.100.11/24" in text
    netdev = file_of(diff, "/etc/systemd/network/10-br0.netdev")
    assert netdev.status == "created" and "+Kind=bridge" in netdev.diff()


def test_a_removed_file_has_a_dev_null_new_side() -> None:
    diff = plan_diff(UNBRIDGE, distro("networkd_bridged"))
    netdev = file_of(diff, "/etc/systemd/network/10-br0.netdev")
    assert netdev.status == "removed" and netdev.after is None
    assert netdev.diff()[:2] == ("--- a/etc/systemd/network/10-br0.netdev", "+++ /dev/null")
    assert "-Kind=bridge" in netdev.diff()


def test_an_old_content_the_facts_do_not_hold_is_unknown_never_empty() -> None:
    digest = "ab" * 32
    host = facts(managed_files={"/etc/sysctl.d/bridge.conf": digest})
    conf = file_of(plan_diff("bridge: {name: br0, nic: eth0}\n", host), "/etc/sysctl.d/bridge.conf")
    assert not conf.known and conf.before is None and conf.status == "changed"
    assert digest in conf.note
    assert conf.diff()[:2] == ("--- a/etc/sysctl.d/bridge.conf", "+++ b/etc/sysctl.d/bridge.conf")
    assert "not known" not in conf.note and "only its digest" in conf.note


def test_a_managed_file_the_facts_hold_is_diffed_against_its_old_text() -> None:
    old = "# Managed by fleetbr\nnet.bridge.bridge-nf-call-iptables = 1\n"
    host = facts(
        managed_files={"/etc/sysctl.d/bridge.conf": "ab" * 32},
        managed_contents={"/etc/sysctl.d/bridge.conf": old},
    )
    conf = file_of(plan_diff("bridge: {name: br0, nic: eth0}\n", host), "/etc/sysctl.d/bridge.conf")
    assert conf.known and conf.before == old and conf.status == "changed"
    assert "-net.bridge.bridge-nf-call-iptables = 1" in conf.diff()
    assert "+net.bridge.bridge-nf-call-iptables = 0" in conf.diff()


def test_secret_values_of_network_files_are_redacted_on_both_sides() -> None:
    host = distro("networkd")
    secret = host.daemons.contents[NETWORKD_ETH0] + "# PreSharedKey=hunter2\n"
    contents = {**host.daemons.contents, NETWORKD_ETH0: secret}
    daemons = dataclasses.replace(host.daemons, contents=contents)
    diff = plan_diff(NETWORKD, dataclasses.replace(host, daemons=daemons))
    eth0 = file_of(diff, NETWORKD_ETH0)
    assert "hunter2" not in json.dumps(diff.to_json())
    assert eth0.before is not None and "PreSharedKey=<redacted>" in eth0.before
    assert eth0.before.endswith("\n")


# --- hostile bytes and colour ---------------------------------------------------------------------


def hostile_host() -> HostFacts:
    """A host with an unrelated link named with an escape sequence and a networkd file that
    holds control characters and bytes that are not UTF-8."""
    host = distro("networkd")
    evil = "x\x1b]0;pwn\x07"
    links = (*host.links, Link(evil, "dummy", None, 1500, "DOWN", False, None))
    addresses = (*host.addresses, Address(evil, 4, "203.0.113.9/24", "global"))
    text = host.daemons.contents[NETWORKD_ETH0] + "# \x1b[2J\r\x00 \udcff\n"
    contents = {**host.daemons.contents, NETWORKD_ETH0: text}
    daemons: Daemons = dataclasses.replace(host.daemons, contents=contents)
    return dataclasses.replace(host, links=links, addresses=addresses, daemons=daemons)


def test_hostile_names_and_contents_are_escaped_in_text_and_kept_in_json() -> None:
    diff = plan_diff(NETWORKD, hostile_host())
    text = render_text(diff)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\x00" not in text
    assert "-x\\x1b]0;pwn\\x07 203.0.113.9/24" not in text  # not changed: not shown
    assert "x\x1b]0;pwn\x07 dummy mtu 1500 down" in diff.sections[0].after  # data: raw
    assert " x\\x1b]0;pwn\\x07 dummy mtu 1500 down\n" in text  # a context line, escaped
    assert "-# \\x1b[2J\\r\\x00 \\udcff" in text
    assert all("\n" not in line for line, _ in styled_lines(diff))
    document = json.dumps(diff.to_json())  # lone surrogates are JSON-escaped
    assert HostDiff.from_json(json.loads(document)) == diff


def test_colour_marks_additions_removals_and_hunks_and_nothing_else() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", facts())
    coloured = render_text(diff, colour=True)
    assert "\x1b[32m+br0 port eth0\x1b[0m" in coloured
    assert f"\x1b[31m-eth0 {V4}\x1b[0m" in coloured
    assert "\x1b[36m@@ -0,0 +1 @@\x1b[0m" in coloured
    plain = render_text(diff, colour=False)
    assert "\x1b" not in plain
    assert re.sub(r"\x1b\[[0-9]+m", "", coloured) == plain


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted(Tty())
    assert not colour_wanted(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Tty())


def test_print_diffs_prints_each_hosts_view_plain_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", facts())
    aggregated = AggregatedResult("plan")
    aggregated.add(HostResult("hv01", Status.PLANNED, data={"diff": diff.to_json()}))
    aggregated.add(HostResult("hv02", Status.REFUSED, "no"))  # no view: nothing printed
    out, tty = io.StringIO(), Tty()
    print_diffs(aggregated, out)
    print_diffs(aggregated, tty)
    assert out.getvalue() == render_text(diff)
    assert tty.getvalue() == render_text(diff, colour=True)


# --- the JSON form --------------------------------------------------------------------------------


def test_json_shape_of_a_host_diff() -> None:
    diff = plan_diff("bridge: {name: br0, nic: eth0}\n", facts())
    data = json.loads(json.dumps(diff.to_json()))
    assert set(data) == {"host", "mode", "changed", "note", "runtime", "files"}
    assert list(data["runtime"]) == list(SECTIONS)
    ports = data["runtime"]["ports"]
    assert ports == {
        "before": [],
        "after": ["br0 port eth0"],
        "changed": True,
        "diff": "--- a/ports\n+++ b/ports\n@@ -0,0 +1 @@\n+br0 port eth0\n",
    }
    conf = next(f for f in data["files"] if f["path"] == "/etc/sysctl.d/bridge.conf")
    assert set(conf) == {"path", "status", "before", "after", "known", "note", "diff"}
    assert conf["status"] == "created" and conf["before"] is None
    assert conf["diff"].startswith("--- /dev/null\n+++ b/etc/sysctl.d/bridge.conf\n")
    assert HostDiff.from_json(data) == diff


@pytest.mark.parametrize(
    "broken",
    [{}, {"mode": "plan"}, {"host": "h", "mode": "later", "note": "", "runtime": {}, "files": []},
     {"host": "h", "mode": "plan", "note": "", "runtime": {"links": {"before": 3, "after": []}},
      "files": []}],
)  # fmt: skip
def test_from_json_refuses_what_is_not_a_host_diff(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="diff: "):
        HostDiff.from_json(broken)


def test_file_statuses() -> None:
    assert FileDiff("/f", None, "a\n").status == "created"
    assert FileDiff("/f", "a\n", "b\n").status == "changed"
    assert FileDiff("/f", "a\n", None).status == "removed"
    assert FileDiff("/f", "a\n", "a\n").status == "unchanged"
    assert FileDiff("/f", None, "a\n", known=False).status == "changed"
    assert FileDiff("/f", None, None, known=False).status == "removed"
    assert FileDiff("/f", "a\n", "a\n").diff() == ()


# --- through the engine and the command line ----------------------------------------------------


@asynccontextmanager
async def no_connection(spec: HostSpec) -> AsyncIterator[Any]:
    yield None


@pytest.fixture
def networkd_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every host's facts are the networkd distro host's (nothing is contacted); the toy kind
    (which has no view) registered."""
    found = distro("networkd")

    async def gather(conn: Session) -> HostFacts:
        return found

    monkeypatch.setattr("fleetbr.core.assemble.gather", gather)
    kinds.register("toy", ToyKind)
    yield
    kinds._registry.pop("toy", None)


def engine_run(command: str, change: ChangeRef, *, diff: bool) -> AggregatedResult:
    request = RunRequest(command, Selection(hosts=tuple(engine_hosts())), change, diff=diff)
    return asyncio.run(execute_async(request, connect=no_connection)).result


def engine_hosts() -> list[HostSpec]:
    return [HostSpec("hv01", "203.0.113.10", 22, "root", None, (), {"nic": "eth0"},
                     SSHOptions())]  # fmt: skip


@pytest.mark.usefixtures("networkd_host")
@pytest.mark.parametrize("command", ["plan", "check"])
def test_the_engine_adds_the_kinds_view_only_with_diff(command: str) -> None:
    bridge = ChangeRef("bridge", TASK)
    shown = engine_run(command, bridge, diff=True)["hv01"]
    view = HostDiff.from_json(shown.data["diff"])
    assert view.mode == command and view.host == "hv01" and view.changed
    assert any(f.path == NETWORKD_ETH0 and f.status == "changed" for f in view.files)
    plain = engine_run(command, bridge, diff=False)["hv01"]
    assert "diff" not in plain.data and plain.status == shown.status
    toy = engine_run(command, ChangeRef("toy", "flag"), diff=True)["hv01"]
    assert "diff" not in toy.data  # a kind without a view: the result as without --diff


def test_the_command_line_asks_for_the_view_of_plan_check_and_apply() -> None:
    for words in (["plan", "--diff", "t.yaml"], ["check", "--diff", "t.yaml"],
                  ["apply", "t.yaml", "--diff"]):  # fmt: skip
        assert request_from_args(parse_command_line(words)).diff, words
    assert not request_from_args(parse_command_line(["plan", "t.yaml"])).diff
    with pytest.raises(SystemExit):
        parse_command_line(["status", "--diff"])


def test_apply_diff_refuses_resume() -> None:
    request = request_from_args(parse_command_line(["apply", "--resume", "--diff"]))
    with pytest.raises(UsageError, match="--resume"):
        apply_with_diff(request, lambda aggregated: None, as_json=True)


def test_the_history_keeps_a_view_up_to_its_limit_else_a_note() -> None:
    small = plan_diff("bridge: {name: br0, nic: eth0}\n", facts()).to_json()
    assert bounded(small) == small and bounded(None) is None
    huge = FileDiff("/etc/big", None, "x" * DATA_LIMIT + "\n")
    large = HostDiff("hv01", "plan", (), (huge,)).to_json()
    note = bounded(large)
    assert set(note) == {"omitted"} and note["omitted"].endswith("bytes of diff (over the limit)")


def test_addresses_a_device_keeps_stay_in_its_order() -> None:
    host = bridged(facts())
    listed = f"bridge: {{name: br0, nic: eth0, addresses: ['{V6}', '{V4}']}}\n"
    diff = plan_diff(listed, host)
    assert diff.note == "" and not diff.changed  # planned (not refused), nothing to show
    added = plan_diff(f"bridge: {{name: br0, nic: eth0, addresses: ['{V6}', '203.0.113.7/24']}}\n",
                      host)  # fmt: skip
    assert section(added, "addresses")[1] == (f"br0 {V6}", "br0 203.0.113.7/24")
