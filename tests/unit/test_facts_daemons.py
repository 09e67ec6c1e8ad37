"""The ``daemons`` facts section: which backend manages the NIC and the bridge, from the daemons'
own view. Recorded on real distro lab hosts (tests/data/facts/record_distro.py) and hand-made."""

from __future__ import annotations

import base64
import hashlib

import pytest

from fleetbr.backends.networkmanager.view import split_terse
from fleetbr.errors import FactsError
from fleetbr.facts.model import CONTENT_MAX_BYTES, ConfigFile, Daemons, HostFacts, Link
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.parse_daemons import parse_daemons
from tests.unit.test_facts_parse import DATA, raw, replace_section, section_lines

ETH0 = Link("eth0", "ether", "02:fb:00:00:00:01", 1500, "UP", True, None)
SHA = "a" * 64


def facts(name: str) -> HostFacts:
    return parse_facts(raw(f"distro_{name}"))


def content(path: str, text: str) -> list[str]:
    """The script's two lines for a config file: its sha256 and its content."""
    data = text.encode()
    return [
        f"file {hashlib.sha256(data).hexdigest()} {path}",
        f"content {base64.b64encode(data).decode()} {path}",
    ]


def sha(name: str, path: str) -> str:
    """sha256 of ``path`` as the recording's own ``file`` line says."""
    for line in section_lines(raw(f"distro_{name}"), "daemons"):
        if line.startswith("file ") and line.endswith(f" {path}"):
            return line.split()[1]
    raise AssertionError(f"{path} not in distro_{name}")


# --- recorded on real hosts ------------------------------------------------------------------


def test_a_yaml_warning_never_quotes_the_file() -> None:
    """PyYAML's message quotes the lines around the problem (issue 20: they may hold a secret)."""
    broken = "network:\n  wifis:\n    w:\n      password: s3cr3t-pw\n  - oops: [\n"
    _, warnings = daemons(["running networkd yes", *content("/etc/netplan/w.yaml", broken)])
    assert len(warnings) == 1 and "w.yaml is not usable YAML" in warnings[0], warnings
    assert "s3cr3t" not in warnings[0] and "(line " in warnings[0]


@pytest.mark.parametrize(
    ("name", "manager", "state", "files"),
    [
        ("ifupdown", "ifupdown", "up", ["/etc/network/interfaces"]),
        ("networkd", "networkd", "configured", ["/etc/systemd/network/10-eth0.network"]),
        (
            "netplan",
            "netplan",
            "configured",
            ["/etc/netplan/01-netcfg.yaml", "/run/systemd/network/10-netplan-eth0.network"],
        ),
        (
            "networkmanager",
            "networkmanager",
            "connected",
            ["/etc/NetworkManager/system-connections/eth0.nmconnection"],
        ),
    ],
)
def test_the_daemon_that_configures_the_nic_manages_it(
    name: str, manager: str, state: str, files: list[str]
) -> None:
    f = facts(name)
    eth0 = f.manager("eth0")
    assert (eth0.manager, eth0.state) == (manager, state)
    assert eth0.files == tuple(ConfigFile(path, sha(name, path)) for path in files)
    assert eth0.claimed_by == (manager,)
    assert f.manager("br0").manager is None


def test_no_daemon_manages_the_nic_of_a_none_host() -> None:
    f = facts("none")
    assert f.daemons.running == ()
    eth0 = f.manager("eth0")
    assert (eth0.manager, eth0.state, eth0.files, eth0.views) == (None, "unmanaged", (), ())


@pytest.mark.parametrize(
    ("name", "manager", "state", "bridge_files", "nic_files"),
    [
        (
            "networkd_bridged",
            "networkd",
            "configured",
            ["/etc/systemd/network/10-br0.network", "/etc/systemd/network/10-br0.netdev"],
            ["/etc/systemd/network/10-eth0.network"],
        ),
        (
            "netplan_bridged",
            "netplan",
            "configured",
            [
                "/etc/netplan/01-netcfg.yaml",
                "/run/systemd/network/10-netplan-br0.network",
                "/run/systemd/network/10-netplan-br0.netdev",
            ],
            ["/etc/netplan/01-netcfg.yaml", "/run/systemd/network/10-netplan-eth0.network"],
        ),
        (
            "networkmanager_bridged",
            "networkmanager",
            "connected",
            ["/etc/NetworkManager/system-connections/br0.nmconnection"],
            ["/etc/NetworkManager/system-connections/br0-port-eth0.nmconnection"],
        ),
    ],
)
def test_a_bridge_made_by_the_daemon_is_its_own(
    name: str, manager: str, state: str, bridge_files: list[str], nic_files: list[str]
) -> None:
    f = facts(name)
    bridge = f.bridge("br0")
    assert bridge is not None and bridge.ports == ("eth0",)
    br0, eth0 = f.manager("br0"), f.manager("eth0")
    assert (br0.manager, br0.state) == (manager, state)
    assert [c.path for c in br0.files] == bridge_files
    assert (eth0.manager, eth0.state) == (manager, state)
    assert [c.path for c in eth0.files] == nic_files
    assert all(c.sha256 == sha(name, c.path) for c in (*br0.files, *eth0.files))


def test_an_ifupdown_bridge_is_up_and_its_port_only_defined() -> None:
    f = facts("ifupdown_bridged")
    br0 = f.manager("br0")
    assert (br0.manager, br0.state) == ("ifupdown", "up")
    assert [c.path for c in br0.files] == ["/etc/network/interfaces"]
    eth0 = f.manager("eth0")  # "iface eth0 inet manual": a stanza, brought up as br0's port
    assert (eth0.manager, eth0.state) == (None, "down")
    assert f.daemons.ifupdown == {"/etc/network/interfaces": ("lo", "eth0", "br0")}


def test_a_runtime_bridge_on_a_networkmanager_host_is_connected_externally() -> None:
    """What fleetbr's persist: none leaves on a NetworkManager host: NM does not own br0, and
    still counts eth0 as connected with its old profile."""
    f = facts("networkmanager_external")
    br0 = f.manager("br0")
    assert (br0.manager, br0.state, br0.files) == (None, "connected (externally)", ())
    assert [(v.backend, v.state, v.claims) for v in br0.views] == [
        ("networkmanager", "connected (externally)", False)
    ]
    assert f.manager("eth0").manager == "networkmanager"


def test_daemons_and_config_files_listed() -> None:
    f = facts("netplan_bridged")
    assert f.daemons.running == ("networkd",)
    assert f.daemons.netplan == {"/etc/netplan/01-netcfg.yaml": ("br0", "eth0")}
    assert f.daemons.files["/etc/netplan/01-netcfg.yaml"] == sha(
        "netplan_bridged", "/etc/netplan/01-netcfg.yaml"
    )
    assert "/usr/lib/systemd/network/99-default.link" in f.daemons.files
    assert f.to_dict()["daemons"]["interfaces"]["br0"]["manager"] == "netplan"


def test_old_outputs_without_the_section_parse() -> None:
    f = parse_facts((DATA / "plain.txt").read_text())
    assert f.daemons.interfaces == {} and f.manager("eth0").manager is None


# --- hand-made ------------------------------------------------------------------------------


def daemons(lines: list[str], links: tuple[Link, ...] = (ETH0,)) -> tuple[Daemons, list[str]]:
    warnings: list[str] = []
    return parse_daemons(lines, links, warnings), warnings


def test_nmcli_terse_escapes() -> None:
    assert split_terse(r"a\:b:c\\d:") == ["a:b", "c\\d", ""]
    lines = [
        "running networkmanager yes",
        r"nm-device eth0:ethernet:connected:my\:conn:u1",
        r"nm-connection u1:802-3-ethernet:"
        r"/etc/NetworkManager/system-connections/my\:conn.nmconnection:my\:conn",
        f"file {SHA} /etc/NetworkManager/system-connections/my:conn.nmconnection",
    ]
    result, _ = daemons(lines)
    assert result.manager("eth0").files == (
        ConfigFile("/etc/NetworkManager/system-connections/my:conn.nmconnection", SHA),
    )


def test_netplan_renderer_networkmanager_and_match_by_mac() -> None:
    yaml_text = (
        "network:\n  renderer: NetworkManager\n  ethernets:\n    uplink:\n"
        '      match: {macaddress: "02:FB:00:00:00:01"}\n'
    )
    lines = [
        "running networkmanager yes",
        "nm-device eth0:ethernet:connected:netplan-uplink:u1",
        "nm-connection u1:802-3-ethernet:"
        "/run/NetworkManager/system-connections/netplan-uplink.nmconnection:netplan-uplink",
        *content("/etc/netplan/50-cloud-init.yaml", yaml_text),
    ]
    result, warnings = daemons(lines)
    eth0 = result.manager("eth0")
    assert (eth0.manager, eth0.state) == ("netplan", "connected")
    assert [c.path for c in eth0.files] == [
        "/etc/netplan/50-cloud-init.yaml",
        "/run/NetworkManager/system-connections/netplan-uplink.nmconnection",
    ]
    assert eth0.files[1].sha256 is None  # no file line: not readable by the script
    assert warnings == []


def test_netplan_run_shadows_etc_and_defined_only() -> None:
    lines = [
        *content("/etc/netplan/01.yaml", "network: {bridges: {br0: {}}}\n"),
        *content("/run/netplan/01.yaml", "network: {bridges: {br1: {}}}\n"),
    ]
    result, _ = daemons(lines)
    assert result.netplan == {"/run/netplan/01.yaml": ("br1",)}
    br1 = result.manager("br1")
    assert (br1.manager, br1.state) == (None, "defined")


def test_ifupdown_follows_source_and_source_directory() -> None:
    lines = [
        "ifstate eth0=eth0",
        *content("/etc/network/interfaces", "source interfaces.d/*\nsource-directory extra\n"),
        *content("/etc/network/interfaces.d/eth0", "auto eth0\niface eth0 inet \\\n static\n"),
        *content("/etc/network/extra/br0", "iface br0 inet manual\n"),
        *content("/etc/network/extra/skip.conf", "iface skipped inet manual\n"),
    ]
    result, _ = daemons(lines)
    assert result.ifupdown == {
        "/etc/network/interfaces": (),
        "/etc/network/interfaces.d/eth0": ("eth0",),
        "/etc/network/extra/br0": ("br0",),
    }
    eth0 = result.manager("eth0")
    assert (eth0.manager, eth0.state) == ("ifupdown", "up")
    assert [c.path for c in eth0.files] == ["/etc/network/interfaces.d/eth0"]


def test_two_daemons_claiming_one_nic_are_both_reported() -> None:
    lines = [
        "running networkd yes",
        "networkctl-list eth0 ether routable configured",
        "ifstate eth0=eth0",
        *content("/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n"),
    ]
    result, _ = daemons(lines)
    eth0 = result.manager("eth0")
    assert eth0.claimed_by == ("networkd", "ifupdown")
    assert (eth0.manager, eth0.state, eth0.files) == ("networkd", "configured", ())


def test_odd_host_content_becomes_warnings() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    lines = [
        "running networkd yes",
        "networkctl {not json",
        "content !!!notbase64 /etc/netplan/bad.yaml",
        *content("/etc/netplan/bomb.yaml", bomb),
        *content("/etc/netplan/broken.yaml", "network: [unclosed\n"),
    ]
    result, warnings = daemons(lines)
    assert result.interfaces == {}
    assert len(warnings) == 4
    assert any("networkctl printed no valid JSON" in w for w in warnings)
    assert any("bomb.yaml is not usable YAML" in w for w in warnings)


@pytest.mark.parametrize("levels", [70, 5000])
def test_netplan_yaml_nested_too_deep_is_a_warning_not_a_crash(levels: int) -> None:
    """Before: RecursionError out of the facts parser, for a file a few hundred levels deep."""
    deep = "network: {ethernets: {eth0: " + "[" * levels + "1" + "]" * levels + "}}\n"
    lines = ["running networkd yes", *content("/etc/netplan/deep.yaml", deep)]
    result, warnings = daemons(lines)
    assert result.interfaces == {}
    assert len(warnings) == 1 and "deep.yaml is not usable YAML" in warnings[0], warnings


@pytest.mark.parametrize(
    "line", ["bogus line", "file notasha /etc/x", f"file {SHA}", "file  /etc/x"]
)
def test_malformed_lines_are_errors(line: str) -> None:
    output = replace_section(raw("distro_none"), "daemons", [line])
    with pytest.raises(FactsError, match="section daemons"):
        parse_facts(output)


def test_content_is_kept_whole_and_byte_for_byte_up_to_the_bound() -> None:
    """82 KiB with bytes that are not UTF-8 (issue 14, item 3): before, the parser kept 64 KiB
    and turned the Latin-1 byte into U+FFFD."""
    data = b"# caf\xe9 \xff\xfe\n" + b"#" * 82_000 + b"\niface vz1 inet manual\n"
    encoded = base64.b64encode(data).decode()
    found, warnings = daemons([f"content {encoded} /etc/network/interfaces"])
    assert warnings == []
    text = found.contents["/etc/network/interfaces"]
    assert text.encode("utf-8", "surrogateescape") == data
    assert text.endswith("iface vz1 inet manual\n") and not found.oversized


def test_content_beyond_the_bound_is_oversized() -> None:
    data = base64.b64encode(b"#" * (CONTENT_MAX_BYTES + 1)).decode()
    found, warnings = daemons([f"content {data} /etc/systemd/network/big.network"])
    assert found.oversized == ("/etc/systemd/network/big.network",)
    assert warnings == [
        "section daemons: /etc/systemd/network/big.network is longer than 1024 KiB; "
        "only its start was read (fleetbr will not rewrite it)"
    ]
