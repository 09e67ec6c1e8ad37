"""Inventory loading, inheritance (as nornir resolves it), selection and error reporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbr.cli import main
from fleetbr.errors import InventoryError
from fleetbr.inventory import apply_overrides, load_inventory, select_hosts

HOSTS = """
hv01:
  hostname: 198.51.100.10
  groups: [rack1]
  data: {nic: eth0}
hv02:
  hostname: 198.51.100.11
  port: 2222
  groups: [rack1, canary]
hv03:
  hostname: 198.51.100.12
  groups: [rack2]
  username: admin
  connection_options:
    fleetbr:
      extras: {sudo: true, known_hosts: /tmp/kh-hv03}
"""
GROUPS = """
hypervisors:
  data: {nic: enp1s0, site: lab}
  connection_options:
    fleetbr:
      extras: {client_keys: [/keys/rack], connect_timeout: 3}
rack1:
  groups: [hypervisors]
  username: ops
  password: s3cret
rack2:
  groups: [hypervisors]
canary: {}
"""
DEFAULTS = """
username: root
port: 22
data: {nic: eth9, dns: 203.0.113.53}
"""


def write_inventory(
    tmp_path: Path, hosts: str = HOSTS, groups: str | None = GROUPS, defaults: str | None = DEFAULTS
) -> Path:
    (tmp_path / "hosts.yaml").write_text(hosts)
    if groups is not None:
        (tmp_path / "groups.yaml").write_text(groups)
    if defaults is not None:
        (tmp_path / "defaults.yaml").write_text(defaults)
    return tmp_path


def test_inheritance_follows_nornir(tmp_path: Path) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    hv01, hv02, hv03 = hosts["hv01"], hosts["hv02"], hosts["hv03"]
    assert hv01.data["nic"] == "eth0"  # host data wins
    assert hv02.data["nic"] == "enp1s0"  # from group hypervisors via rack1
    assert hv02.data["dns"] == "203.0.113.53"  # from defaults
    assert hv01.username == "ops" and hv01.password == "s3cret"  # group rack1
    assert hv03.username == "admin"
    assert hv02.port == 2222 and hv01.port == 22
    assert hv01.groups == ("rack1", "hypervisors")
    assert hv01.ssh.client_keys == ("/keys/rack",) and hv01.ssh.connect_timeout == 3.0
    # nornir takes the extras mapping of the most specific level as a whole
    assert hv03.ssh.sudo is True and hv03.ssh.known_hosts == "/tmp/kh-hv03"
    assert hv03.ssh.client_keys == ()


def test_public_view_masks_secrets(tmp_path: Path) -> None:
    view = load_inventory(write_inventory(tmp_path))["hv01"].public_view()
    assert view["password"] == "********"
    assert "s3cret" not in repr(view)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, ["hv01", "hv02", "hv03"]),
        ("all", ["hv01", "hv02", "hv03"]),
        ("hv02", ["hv02"]),
        ("rack1", ["hv01", "hv02"]),
        ("hypervisors", ["hv01", "hv02", "hv03"]),
        ("hv0[13]", ["hv01", "hv03"]),
        ("canary,hv03", ["hv02", "hv03"]),
    ],
)
def test_select(tmp_path: Path, limit: str | None, expected: list[str]) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    assert [h.name for h in select_hosts(hosts, limit)] == expected


def test_select_unknown_is_error(tmp_path: Path) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    with pytest.raises(InventoryError, match="'nosuch' matches no host"):
        select_hosts(hosts, "hv01,nosuch")


def test_cli_overrides(tmp_path: Path) -> None:
    hosts = list(load_inventory(write_inventory(tmp_path)).values())
    over = apply_overrides(hosts, key="/k/id", known_hosts="/k/kh")
    assert all(h.ssh.client_keys == ("/k/id",) and h.ssh.known_hosts == "/k/kh" for h in over)


@pytest.mark.parametrize(
    ("hosts", "groups", "message"),
    [
        ("hv01: {hostname: [unclosed\n", GROUPS, r"hosts.yaml: invalid YAML at line \d"),
        ("hv01: {groups: [rack1]}\n", GROUPS, "hosts.yaml: host hv01: no hostname"),
        ("hv01: {hostname: a, groups: [nope]}\n", GROUPS, "host hv01: unknown group 'nope'"),
        (
            "hv01: {hostname: a}\nhv02: {hostname: a}\n",
            None,
            "host hv02: a:22 is already used by host hv01",
        ),
        ("hv01: {hostname: a, colour: red}\n", None, "host hv01: unknown key"),
        (
            "hv01: {hostname: a, connection_options: {fleetbr: {extras: {stricthostkey: no}}}}\n",
            None,
            "unknown fleetbr option",
        ),
        ("hv01: {hostname: a, port: 99999}\n", None, "host hv01: port: 99999 is outside"),
        ("hv01: {hostname: '-oProxyCommand=x'}\n", None, "is not a host name"),
        ("- just\n- a list\n", None, "expected a mapping"),
    ],
)
def test_bad_inventory_is_one_clear_error(
    tmp_path: Path, hosts: str, groups: str | None, message: str
) -> None:
    with pytest.raises(InventoryError, match=message):
        load_inventory(write_inventory(tmp_path, hosts, groups, None))


def test_missing_hosts_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="hosts.yaml: file not found"):
        load_inventory(tmp_path)


def test_cli_exit_2_on_bad_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_inventory(tmp_path, "hv01: {groups: [rack1]}\n")
    assert main(["-i", str(tmp_path), "facts"]) == 2
    err = capsys.readouterr().err
    assert "hv01" in err and "no hostname" in err


def test_cli_inventory_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write_inventory(tmp_path)
    assert main(["-i", str(tmp_path), "--json", "-l", "rack1", "inventory"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["hv01", "hv02"]
    assert doc["hv01"]["password"] == "********"
