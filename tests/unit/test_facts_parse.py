"""Tests for the facts script and its parsers, on outputs recorded from real iproute2 (see
tests/data/facts/record.sh) and on hand-made broken ones."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import FactsError, ValidationError
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts, split_sections
from fleetbr.facts.script import facts_script

DATA = Path(__file__).resolve().parents[1] / "data" / "facts"
FIXTURES = sorted(p.stem for p in DATA.glob("*.txt") if not p.stem.startswith("malformed"))


def raw(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def facts(name: str) -> HostFacts:
    return parse_facts(raw(name))


def replace_section(output: str, name: str, content: list[str]) -> str:
    """``output`` with the content of section ``name`` replaced."""
    lines = output.splitlines()
    start = lines.index(f"@@fleetbr-section {name}") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("@@fleetbr-"))
    return "\n".join([*lines[:start], *content, *lines[end:]]) + "\n"


def section_lines(output: str, name: str) -> list[str]:
    return split_sections(output)[name]


# --- recorded fixtures ---------------------------------------------------------------------


def test_plain_host() -> None:
    f = facts("plain")
    assert f.hostname == "plain"
    assert f.pid1_systemd is False
    eth0 = f.link("eth0")
    assert eth0 is not None
    assert eth0.kind == "veth"
    assert eth0.admin_up and eth0.state == "UP" and eth0.master is None
    assert eth0.mac is not None and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", eth0.mac)
    lo = f.link("lo")
    assert lo is not None and lo.kind == "loopback" and lo.mac is None
    assert [a.cidr for a in f.addresses_of("eth0")] == ["198.51.100.10/24", "2001:db8:1::10/64"]
    assert [a.family for a in f.addresses_of("eth0")] == [4, 6]
    assert len(f.addresses_of("eth0", scope="link")) == 1
    (v4,) = f.default_routes(4)
    (v6,) = f.default_routes(6)
    assert (v4.gateway, v4.dev, v4.metric, v4.protocol) == ("198.51.100.1", "eth0", None, "boot")
    assert (v6.gateway, v6.dev, v6.metric) == ("2001:db8:1::1", "eth0", 1024)
    connected = [r for r in f.routes_of("eth0") if r.dst == "198.51.100.0/24"]
    assert connected[0].protocol == "kernel" and connected[0].gateway is None
    assert f.probes == {"198.51.100.1": True, "2001:db8:1::1": True, "198.51.100.254": False}
    assert f.bridges == () and f.docker == () and f.armed is None
    assert f.managed_files == {
        "/etc/sysctl.d/bridge.conf": None,
        "/etc/udev/rules.d/99-bridge.rules": None,
    }


def test_bridged_host() -> None:
    f = facts("bridged")
    br0 = f.bridge("br0")
    assert br0 is not None
    assert br0.stp is True
    assert br0.forward_delay == 15
    assert br0.ports == ("eth0", "vnet0")
    eth0 = f.link("eth0")
    assert eth0 is not None and eth0.master == "br0" and eth0.kind == "veth"
    link = f.link("br0")
    assert link is not None and link.kind == "bridge"
    assert f.addresses_of("eth0") == ()
    assert [a.cidr for a in f.addresses_of("br0")] == ["198.51.100.20/24", "2001:db8:1::20/64"]
    assert {r.dev for r in f.default_routes()} == {"br0"}
    assert f.bridge_nf == {"call-iptables": 0, "call-ip6tables": 1, "call-arptables": 1}


@pytest.mark.parametrize("name", FIXTURES)
def test_sysfs_and_netlink_bridge_settings_agree(name: str) -> None:
    f = facts(name)
    sysfs = {}
    for line in section_lines(raw(name), "bridges"):
        _, br, stp, delay = line.split()
        sysfs[br] = (stp != "0", (int(delay) + 50) // 100)
    assert {b.name: (b.stp, b.forward_delay) for b in f.bridges} == sysfs


def test_sysfs_is_the_fallback_when_netlink_lacks_bridge_data() -> None:
    output = raw("bridged")
    links = json.loads("".join(section_lines(output, "links")))
    for link in links:
        link.get("linkinfo", {}).pop("info_data", None)
    output = replace_section(output, "links", [json.dumps(links)])
    fallback = replace_section(output, "bridges", ["bridge br0 0 2049"])
    br0 = parse_facts(fallback).bridge("br0")
    assert br0 is not None and (br0.stp, br0.forward_delay) == (False, 20)
    with pytest.raises(FactsError, match=r"bridges.*br0"):
        parse_facts(replace_section(output, "bridges", []))


def test_ipv4_only_host() -> None:
    f = facts("v4only")
    assert all(a.family == 4 for a in f.addresses)
    (addr,) = f.addresses_of("eth0")
    assert addr.cidr == "198.51.100.30/24" and addr.dynamic is True
    eth0, eth1 = f.link("eth0"), f.link("eth1")
    assert eth0 is not None and eth0.mtu == 9000
    assert eth1 is not None and not eth1.admin_up and eth1.state == "DOWN"
    (default,) = f.default_routes()
    assert (default.family, default.metric, default.gateway) == (4, 100, "198.51.100.1")
    assert f.default_routes(6) == ()


def test_several_addresses_and_routes() -> None:
    f = facts("multi")
    v4 = [a.cidr for a in f.addresses_of("eth0") if a.family == 4]
    assert sorted(v4) == ["198.51.100.40/24", "198.51.100.41/24", "203.0.113.40/24"]
    v6 = [a.cidr for a in f.addresses_of("eth0") if a.family == 6]
    assert sorted(v6) == ["2001:db8:1::40/64", "2001:db8:1::41/64"]
    assert all(not a.dynamic for a in f.addresses)
    (default,) = f.default_routes(4)
    assert default.protocol == "static"
    static = [r for r in f.routes if r.dst == "203.0.113.128/25"]
    assert [(r.gateway, r.metric) for r in static] == [("203.0.113.1", 100)]
    multipath = [(r.dev, r.gateway) for r in f.routes if r.dst == "198.51.100.250/32"]
    assert multipath == [("eth0", "198.51.100.1"), ("eth1", "198.51.100.130")]
    blackhole = [r for r in f.routes if r.dst == "198.51.100.200/32"]
    assert [(r.type, r.dev, r.gateway) for r in blackhole] == [("blackhole", "", None)]
    assert not any(r.is_default for r in blackhole)
    assert "blackhole" in "".join(section_lines(raw("multi"), "routes4"))


def test_routes_of_every_table_with_their_attributes() -> None:
    f = facts("routed")
    assert f.route_tables == "all"
    by_table = {(r.family, r.table, r.dst, r.type) for r in f.routes}
    assert (4, "100", "default", "unicast") in by_table
    assert (4, "100", "203.0.113.128/25", "unreachable") in by_table
    assert (6, "100", "2001:db8:300::/48", "unicast") in by_table
    assert not any(r.table == "local" for r in f.routes)  # the kernel's local/broadcast routes
    (v4,) = f.default_routes(4)  # the main table's only
    assert v4.table == "main"
    (src,) = [r for r in f.routes if r.dst == "203.0.113.0/24"]
    assert (src.src, src.metric, src.protocol, src.scope, src.metrics) == (
        "198.51.100.81",
        20,
        "static",
        "global",
        "mtu 1400",
    )
    (connected,) = [r for r in f.routes if r.dst == "198.51.100.0/24"]
    assert (connected.scope, connected.src, connected.protocol) == (
        "link",
        "198.51.100.80",
        "kernel",
    )
    (pref,) = [r for r in f.routes if r.dst == "2001:db8:300::/48"]
    assert (pref.pref, pref.scope, pref.metric) == ("high", None, 1024)
    assert all(r.unsupported == () for r in f.routes)


def test_address_labels_rules_and_module() -> None:
    f = facts("routed")
    labels = [(a.cidr, a.label, a.secondary) for a in f.addresses_of("eth0") if a.family == 4]
    assert labels == [("198.51.100.80/24", None, False), ("198.51.100.81/24", "eth0:svc", True)]
    rules = {(r.family, r.priority): r for r in f.rules or ()}
    assert rules[(4, 100)].text == "src 198.51.100.81 table 100"
    assert (rules[(4, 200)].iif, rules[(4, 200)].oif) == ("eth0", None)
    assert rules[(6, 100)].text == "src 2001:db8:1:: srclen 64 table 100"
    assert {r.priority for r in f.rules or () if r.family == 4} == {0, 100, 200, 32766, 32767}
    assert f.br_netfilter == "builtin"  # this lab kernel has bridge netfilter built in


def test_route_attributes_fleetbr_cannot_recreate_are_named() -> None:
    output = replace_section(
        raw("plain"),
        "routes4",
        [
            '[{"dst": "10.4.0.0/16", "nhid": 5, "gateway": "198.51.100.1", "dev": "eth0",'
            ' "flags": ["onlink", "pervasive"], "metrics": [{"mtu": 1400, "weird": 1}]}]'
        ],
    )
    (route,) = [r for r in parse_facts(output).routes if r.family == 4]
    assert route.onlink and route.metrics == "mtu 1400"
    assert route.unsupported == ("nhid", "metric weird", "flag pervasive")


def test_facts_of_an_older_script_still_parse() -> None:
    """A transaction staged by an older fleetbr has such a snapshot: main table, no rules."""
    f = facts("legacy_plain")
    assert f.route_tables == "main" and f.rules is None and f.br_netfilter is None
    assert {(r.family, r.gateway) for r in f.default_routes()} == {
        (4, "198.51.100.1"),
        (6, "2001:db8:1::1"),
    }


def test_a_staged_scripts_touched_section_is_not_a_fact() -> None:
    output = raw("plain").replace(
        "@@fleetbr-end", "@@fleetbr-section touched\ndev eth0\n@@fleetbr-end"
    )
    assert parse_facts(output) == facts("plain")


def test_docker_evidence_from_bridge_names() -> None:
    f = facts("docker")
    assert f.docker == ("link:docker0", "link:br-0123456789ab")
    assert {b.name for b in f.bridges} == {"docker0", "br-0123456789ab"}
    assert all(not b.stp and b.forward_delay == 15 for b in f.bridges)


def test_backends_wireless_libvirt_docker() -> None:
    f = facts("backends")
    assert {b.name: (b.present, b.active) for b in f.backends} == {
        "networkmanager": (True, True),
        "netplan": (True, True),
        "systemd-networkd": (True, True),
        "ifupdown": (True, True),
        "ifupdown2": (False, False),
        "brctl": (True, False),
    }
    wlan0, eth0 = f.link("wlan0"), f.link("eth0")
    assert wlan0 is not None and wlan0.wireless
    assert eth0 is not None and not eth0.wireless
    assert f.libvirt is True
    assert "socket:/run/docker.sock" in f.docker
    assert "dockerd:/tmp/fleetbr-rec/bin/dockerd" in f.docker


def test_armed_transaction_live() -> None:
    f = facts("armed")
    assert f.armed is not None
    assert f.armed.txid == "20240501T120000-ab12"
    assert f.armed.timer_alive and f.armed.same_boot
    assert 290 <= f.armed.deadline - f.armed.now <= 300
    assert not f.armed.stale
    digest = hashlib.sha256(b"net.bridge.bridge-nf-call-iptables = 0\n").hexdigest()
    assert f.managed_files == {
        "/tmp/fleetbr-rec/etc/bridge.conf": digest,
        "/tmp/fleetbr-rec/etc/missing.rules": None,
    }


def test_armed_transaction_stale_after_reboot() -> None:
    f = facts("armed_stale")
    assert f.armed is not None
    assert f.armed.txid == "20240501T110000-cd34"
    assert f.armed.deadline == 1714561200
    assert not f.armed.timer_alive and not f.armed.same_boot
    assert f.armed.stale


def test_armed_without_deadline_or_boot_id_is_stale() -> None:
    output = replace_section(
        raw("plain"), "armed", ["txid=t1", "txid_valid=yes", "timer=none", "timer_alive=no"]
    )
    armed = parse_facts(output).armed
    assert armed is not None and armed.deadline == 0 and not armed.same_boot and armed.stale


def test_extra_and_to_dict() -> None:
    f = facts("plain")
    assert re.fullmatch(r"[0-9a-f-]{36}", str(f.extra["boot_id"]))
    data = json.loads(json.dumps(f.to_dict()))
    assert data["routes"][0]["gateway"] == "198.51.100.1"


# --- malformed output ----------------------------------------------------------------------


def test_truncated_output() -> None:
    with pytest.raises(FactsError, match="truncated"):
        parse_facts(raw("malformed_truncated"))


def test_invalid_json_names_the_section() -> None:
    with pytest.raises(FactsError, match="section links: invalid JSON"):
        parse_facts(raw("malformed_links_json"))


def test_failed_command_names_the_section() -> None:
    with pytest.raises(FactsError, match="section route4: the command failed"):
        parse_facts(raw("malformed_route4_failed"))


def test_failed_route6_is_a_warning() -> None:
    output = replace_section(raw("plain"), "routes6", ["", "@@fleetbr-failed 2"])
    f = parse_facts(output)
    assert f.default_routes(6) == () and len(f.default_routes(4)) == 1
    assert f.extra["warnings"] == [
        "section routes6: the command failed on the host (@@fleetbr-failed 2)"
    ]


def test_noise_before_first_section_and_unknown_sections_are_ignored() -> None:
    output = "Welcome to hv01\n" + raw("plain").replace(
        "@@fleetbr-end", "@@fleetbr-section future\nwhatever 1\n@@fleetbr-end"
    )
    assert parse_facts(output).hostname == "plain"


@pytest.mark.parametrize(
    ("section", "content", "message"),
    [
        ("meta", ["hostname=x"], "section meta: kernel is missing"),
        ("meta", ["garbage"], "section meta: expected key=value"),
        ("links", ['{"ifname": "eth0"}'], "section links: expected a JSON list"),
        ("links", ['[{"ifname": "eth0"}]'], "section links: 'mtu' missing"),
        ("addr", ['[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "x"}]}]'], "addr"),
        ("routes4", ['[{"dst": "nowhere", "dev": "eth0"}]'], "section routes4: bad route dest"),
        (
            "routes4",
            ['[{"dst": "default", "gateway": "198.51.100.1"}]'],
            "routes4: route to default without a device",
        ),
        (
            "routes4",
            ['[{"dst": "default", "dev": "eth0", "prefsrc": "x;y"}]'],
            "routes4: bad prefsrc",
        ),
        ("rules4", ['[{"priority": "high"}]'], "section rules4: rule without a numeric priority"),
        ("modules", ["module br_netfilter maybe"], "section modules: unexpected state"),
        ("backends", ["backend netplan maybe no"], "section backends: expected yes or no"),
        (
            "backends",
            ["backend netplan no no"],
            "section backends: no line for ifupdown, systemd-networkd, networkmanager, "
            "ifupdown2, brctl",
        ),
        ("bridge_nf", ["call-iptables on"], "section bridge_nf: unexpected line"),
        ("managed_files", ["file 1234 /etc/x"], "section managed_files: bad checksum"),
        ("probes", ["probe 198.51.100.1 maybe"], "section probes: unexpected result"),
        ("wireless", ["wlan0"], "section wireless: unexpected line"),
        ("docker", ["container abc"], "section docker: unexpected line"),
        ("bridges", ["br0 1 1500"], "section bridges: unexpected line"),
        ("armed", ["txid=t", "txid_valid=yes", "deadline=soon"], "armed: deadline is not a number"),
    ],
)
def test_malformed_section(section: str, content: list[str], message: str) -> None:
    with pytest.raises(FactsError, match=message):
        parse_facts(replace_section(raw("plain"), section, content))


def test_missing_and_duplicate_sections() -> None:
    without = raw("plain").replace("@@fleetbr-section probes\n", "")
    with pytest.raises(FactsError, match="section probes: missing"):
        parse_facts(without)
    twice = raw("plain").replace("@@fleetbr-end", "@@fleetbr-section meta\n@@fleetbr-end")
    with pytest.raises(FactsError, match="section meta: appears twice"):
        parse_facts(twice)


def test_noping_hosts_are_not_probes() -> None:
    output = replace_section(raw("plain"), "probes", ["probe 198.51.100.1 noping"])
    f = parse_facts(output)
    assert f.probes == {} and f.extra["unprobed"] == ["198.51.100.1"]


# --- the script ----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_script_syntax(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    script = facts_script(["198.51.100.1", "2001:db8::1"])
    subprocess.run([shell, "-n"], input=script, text=True, check=True)


def test_script_quotes_values_and_pings_v6_with_dash_6() -> None:
    script = facts_script(["2001:db8::1"], state_dir="/tmp/state dir", managed_files=["/a b"])
    assert "state_dir='/tmp/state dir'" in script
    assert "f='/a b'" in script
    assert "ping -6 -n -c 1 -w 3" in script
    assert "ping -n" not in script


@pytest.mark.parametrize("bad", ["198.51.100.1; reboot", "$(reboot)", "host.example"])
def test_script_rejects_bad_probe_targets(bad: str) -> None:
    with pytest.raises(ValidationError):
        facts_script([bad])


def test_script_rejects_relative_paths() -> None:
    with pytest.raises(ValidationError):
        facts_script(state_dir="var/lib/fleetbr")


def test_script_exits_3_without_ip_json(tmp_path: Path) -> None:
    stub = tmp_path / "ip"
    stub.write_text("#!/bin/sh\necho 'Option \"-j\" is unknown' >&2\nexit 255\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["sh", "-s"], input=facts_script(), text=True, capture_output=True, env=env, check=False
    )
    assert done.returncode == 3
    assert "does not support -j" in done.stderr
    assert done.stdout == ""


@pytest.mark.lab
def test_script_runs_in_a_fresh_namespace() -> None:
    """The real script, run in a new network namespace, parses; probes stay on loopback."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    script = facts_script(["127.0.0.1", "::1", "198.51.100.1"])
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && exec sh -s"],
        input=script,
        text=True,
        capture_output=True,
        timeout=30,
        check=True,
    )
    f = parse_facts(done.stdout)
    assert [link.name for link in f.links] == ["lo"]
    assert [a.cidr for a in f.addresses_of("lo", scope="host")] == ["127.0.0.1/8", "::1/128"]
    if shutil.which("ping"):
        assert f.probes == {"127.0.0.1": True, "::1": True, "198.51.100.1": False}
    assert f.routes == ()


LINE_BREAKERS = ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", LINE_BREAKERS, ids=repr)
def test_a_value_cannot_end_the_output_or_open_a_section(brk: str) -> None:
    """Lines end at "\\n" only: a value holding another line break stays one line."""
    output = raw("plain").replace("kernel=", f"kernel={brk}@@fleetbr-section armed{brk}", 1)
    output = output.replace("has_sysctl=yes", f"has_sysctl=yes{brk}@@fleetbr-end", 1)
    sections = split_sections(output)
    assert sections["meta"][1].startswith(f"kernel={brk}@@fleetbr-section armed{brk}")
    assert sections["armed"] == split_sections(raw("plain"))["armed"]


@pytest.mark.parametrize("name", FIXTURES)
def test_to_dict_is_what_dataclasses_asdict_makes(name: str) -> None:
    f = facts(name)
    document = dataclasses.asdict(f)
    document["daemons"]["contents"] = f.to_dict()["daemons"]["contents"]
    assert f.to_dict() == document
    assert repr(f.to_dict()) == repr(document)  # the same types and order (tuples stay tuples)
