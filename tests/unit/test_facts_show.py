"""``fleetbr facts --show``: section names, the plain tables made of recorded facts
(tests/data/facts), escaping, and ``--json`` cut to the sections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbr.cli import main
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.show import (
    SECTIONS,
    host_lines,
    only_sections,
    parse_sections,
    render,
    report_lines,
)
from fleetbr.report import AggregatedResult, HostResult, Status

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "facts"


def facts(case: str) -> dict[str, Any]:
    """The facts document (as --json has it) of a recorded facts output."""
    return parse_facts((FIXTURES / f"{case}.txt").read_text()).to_dict()


def test_section_names_singulars_all_and_order() -> None:
    assert parse_sections("bridges,routes,daemon") == ("bridges", "routes", "daemons")
    assert parse_sections(" Route , route,guest") == ("routes", "guests")
    assert parse_sections("all") == tuple(SECTIONS)
    assert parse_sections("sysctl,all")[0] == "sysctls" and len(parse_sections("sysctl,all")) == 10


@pytest.mark.parametrize("text", ["bogus", "routes,", "", "links,brdges"])
def test_an_unknown_section_lists_the_valid_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown facts section .* \(valid: links, bridges, "):
        parse_sections(text)


def test_cli_refuses_an_unknown_section_before_contacting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hosts.yaml").write_text("hv01:\n  hostname: 198.51.100.10\n")
    with pytest.raises(SystemExit) as caught:  # argparse's own exit, as for any bad argument
        main(["-i", str(tmp_path), "facts", "--show", "bridges,bogus"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unknown facts section 'bogus' (valid: links, bridges, addresses, routes" in err


def test_bridged_host_tables() -> None:
    lines = host_lines(facts("distro_ifupdown_bridged"), parse_sections("bridges,daemon,sysctls"))
    assert lines == [
        "  bridges",
        "    name  stp  forward_delay  ports",
        "    br0   no   4              eth0",
        "  daemons",
        "    interface          manager   state  files",
        "    br0                ifupdown  up     /etc/network/interfaces",
        "    lo                 ifupdown  up     /etc/network/interfaces",
        "    eth0               -         down   -",
        "    (running daemons)  none",
        "  sysctls",
        "    setting                              value",
        "    net.bridge.bridge-nf-call-iptables   1",
        "    net.bridge.bridge-nf-call-ip6tables  1",
        "    net.bridge.bridge-nf-call-arptables  1",
        "    br_netfilter module                  -",
    ]


def test_routes_and_guests_tables() -> None:
    lines = host_lines(facts("libvirt_guests"), ("routes", "guests"))
    assert lines[:4] == [
        "  routes",
        "    table  family  dst                gateway          dev    metric  proto   type     "
        "src",
        "    main   v4      default            198.51.100.1     eth0   -       boot    unicast  -",
        "    main   v4      198.51.100.0/24    -                eth0   -       kernel  unicast  "
        "198.51.100.10",
    ]
    assert lines[-5:] == [
        "  guests",
        "    guest  state     mac                type     source  bridge     tap",
        "    g1     running   52:54:00:01:00:01  network  lab     virbr-lab  vnet0",
        "    g2     running   52:54:00:01:00:02  network  lab     virbr-lab  vnet1",
        "    off1   shut off  52:54:00:01:00:03  network  lab     -          -",
    ]


def test_every_section_renders_every_fixture() -> None:
    for path in sorted(FIXTURES.glob("*.txt")):
        if path.stem.startswith("malformed"):
            continue
        lines = host_lines(facts(path.stem), tuple(SECTIONS))
        assert [line.strip() for line in lines if not line.startswith("    ")] == list(SECTIONS)


def test_tables_do_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    document = facts("libvirt_guests")
    wide = host_lines(document, tuple(SECTIONS))
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert host_lines(document, tuple(SECTIONS)) == wide
    assert not any("\x1b" in line for line in wide)


def test_hostile_values_are_escaped_and_stay_on_their_line() -> None:
    document = facts("distro_ifupdown_bridged")
    bridge = dict(document["bridges"][0], name="br0\x1b[2J\n==== hv99 ok", ports=["e\tth0\u202e"])
    document["bridges"] = [bridge]
    lines = host_lines(document, ("bridges",))
    assert lines[2] == "    br0\\x1b[2J\\n==== hv99 ok  no   4              e\\tth0\\u202e"
    assert len(lines) == 3


def aggregated() -> AggregatedResult:
    result = AggregatedResult("facts")
    result.add(HostResult("hv01", Status.OK, "x", data={"facts": facts("bridged")}))
    result.add(HostResult("hv02", Status.UNREACHABLE, "connect to 198.51.100.11:22 timed out"))
    return result


def test_report_lines_per_host_and_a_failed_host_with_its_reason() -> None:
    lines = report_lines(aggregated(), ("bridges",))
    assert lines == [
        "==== hv01 ok",
        "  bridges",
        "    name  stp  forward_delay  ports",
        "    br0   yes  15             eth0 vnet0",
        "==== hv02 unreachable: connect to 198.51.100.11:22 timed out",
    ]


def test_render_plain_ends_with_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    render(aggregated(), ("bridges",), as_json=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "==== hv01 ok" and out[-1].startswith("2 hosts: ")


def test_json_keeps_only_the_chosen_sections(capsys: pytest.CaptureFixture[str]) -> None:
    render(aggregated(), ("routes", "sysctls"), as_json=True)
    document = json.loads(capsys.readouterr().out)
    assert set(document["hv01"]["facts"]) == {"routes", "route_tables", "bridge_nf", "br_netfilter"}
    assert document["hv01"]["status"] == "ok" and "facts" not in document["hv02"]
    assert only_sections(facts("bridged"), ("bridges",)) == {"bridges": facts("bridged")["bridges"]}
