"""Inventory loading, inheritance (as nornir resolves it), selection and error reporting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

import fleetbr.inventory
import fleetbr.keyfiles
from fleetbr.cli import main
from fleetbr.errors import InventoryError, UsageError
from fleetbr.inventory import apply_overrides, check_client_keys, load_inventory, select_hosts
from tests.sshfiles import write_key

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
    assert hv01.username == "ops" and hv01.password is not None  # group rack1
    assert hv01.password.reveal() == "s3cret"
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
        # issue 15, defect 9: globs match group names; Ansible's ! and &
        ("rack*", ["hv01", "hv02", "hv03"]),
        ("canar?", ["hv02"]),
        ("hv0[12],rack[2]", ["hv01", "hv02", "hv03"]),
        ("all,!rack1", ["hv03"]),
        ("!rack2", ["hv01", "hv02"]),
        ("rack1,&canary", ["hv02"]),
        ("rack*, !canary, &hypervisors", ["hv01", "hv03"]),
        ("hypervisors,!hv0[12]", ["hv03"]),
        ("&rack1", ["hv01", "hv02"]),
    ],
)
def test_select(tmp_path: Path, limit: str | None, expected: list[str]) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    assert [h.name for h in select_hosts(hosts, limit)] == expected


def test_select_unknown_is_error(tmp_path: Path) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    with pytest.raises(InventoryError, match="'nosuch' matches no host"):
        select_hosts(hosts, "hv01,nosuch")


@pytest.mark.parametrize(
    ("limit", "error", "message"),
    [
        ("all,!nosuch", InventoryError, "'!nosuch' matches no host or group"),
        ("rack1,&rack?x", InventoryError, r"'&rack\?x' matches no host or group"),
        ("rack1,&rack2", InventoryError, "'rack1,&rack2' leaves no host"),
        ("all,!all", InventoryError, "leaves no host"),
        ("rack1,!", UsageError, "empty"),
        ("& ,rack1", UsageError, "empty"),
    ],
)
def test_select_exclusion_and_intersection_errors(
    tmp_path: Path, limit: str, error: type[Exception], message: str
) -> None:
    """A typo in an exclusion must not exclude nothing; an empty result is never "no -l"."""
    hosts = load_inventory(write_inventory(tmp_path))
    with pytest.raises(error, match=message):
        select_hosts(hosts, limit)


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


@pytest.mark.parametrize("limit", ["", " ", "\t", ",", " , ", "hv01,", ",hv01", "hv01,,hv02"])
def test_empty_or_blank_limit_is_a_usage_error_not_every_host(tmp_path: Path, limit: str) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    with pytest.raises(UsageError, match="--limit: .* empty"):
        select_hosts(hosts, limit)


@pytest.mark.parametrize("limit", ["", " ", ","])
def test_cli_empty_limit_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    assert main(["-i", str(write_inventory(tmp_path)), "-l", limit, "inventory"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--limit" in captured.err


@pytest.mark.parametrize(
    ("username", "shown"),
    [("root\nx", r"'root\nx'"), ("ro ot", "'ro ot'"), ("-oProxyCommand", "'-oProxyCommand'"),
     ("", "''"), (0, "0")],
)  # fmt: skip
def test_bad_username_is_a_load_error(tmp_path: Path, username: object, shown: str) -> None:
    hosts = yaml.safe_dump({"hv01": {"hostname": "198.51.100.10", "username": username}})
    with pytest.raises(InventoryError, match="host hv01: username: ") as info:
        load_inventory(write_inventory(tmp_path, hosts, None, None))
    assert shown in str(info.value)


def test_cli_username_with_newline_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `internal error: SASLPrepError` and a traceback, from every host at connect time."""
    hosts = yaml.safe_dump({"hv01": {"hostname": "198.51.100.10", "username": "root\nadmin"}})
    assert main(["-i", str(write_inventory(tmp_path, hosts, None, None)), "facts"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "host hv01: username" in err


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        ({"jump_host": "root@bastion:22x"}, "jump_host port"),
        ({"jump_host": "ro ot@bastion"}, "jump_host user"),
        ({"jump_host": "-oProxyCommand=x"}, "jump_host: '-oProxyCommand=x' is not a host"),
        ({"client_keys": [7]}, "client_keys: expected a file path"),
        ({"known_hosts": ["a"]}, "known_hosts: expected a file path"),
    ],
)
def test_bad_connection_options_are_load_errors(
    tmp_path: Path, extras: dict[str, object], message: str
) -> None:
    element = {"hostname": "a", "connection_options": {"fleetbr": {"extras": extras}}}
    with pytest.raises(InventoryError, match=f"host hv01: {message}"):
        load_inventory(write_inventory(tmp_path, yaml.safe_dump({"hv01": element}), None, None))


def test_password_problems_never_show_the_password(tmp_path: Path) -> None:
    # a secret with a "-": no temporary folder's random name (in the message's path) holds one
    hosts = yaml.safe_dump({"hv01": {"hostname": "a", "password": "s3cret-not-shown\nx"}})
    with pytest.raises(InventoryError, match="host hv01: password: contains control") as info:
        load_inventory(write_inventory(tmp_path, hosts, None, None))
    assert "s3cret-not-shown" not in str(info.value)


def test_missing_client_key_is_named_before_contact(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    hosts = list(load_inventory(inventory).values())
    with pytest.raises(InventoryError, match="hosts.yaml: host hv01: client_keys: /keys/rack: No"):
        check_client_keys(inventory, hosts, None)
    key = tmp_path / "id_test"
    write_key(key)
    check_client_keys(inventory, apply_overrides(hosts, key=str(key), known_hosts=None), str(key))
    with pytest.raises(UsageError, match=f"--key {tmp_path}/absent: No such file"):
        check_client_keys(inventory, hosts, str(tmp_path / "absent"))


def test_a_key_file_shared_by_every_host_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the per-path memo used dict.setdefault(path, key_file_problem(path)), which checks the
    # key for every host anyway, and unlock_keys parsed it again for every host to see whether
    # it is encrypted: 51 parses for 50 hosts
    key = tmp_path / "id_test"
    write_key(key)
    extras = {"client_keys": [str(key)]}
    hosts_doc = {
        f"hv{i:02d}": {
            "hostname": f"198.51.100.{i}",
            "connection_options": {"fleetbr": {"extras": extras}},
        }
        for i in range(1, 51)
    }
    inventory = write_inventory(tmp_path, yaml.safe_dump(hosts_doc), None, None)
    parsed: list[str] = []
    real = fleetbr.keyfiles.key_file_problem

    def counting(path: str) -> str:
        parsed.append(path)
        return real(path)

    imports: list[bytes] = []
    real_import = asyncssh.import_private_key

    def counting_import(data: bytes, *args: Any) -> Any:
        imports.append(data)
        return real_import(data, *args)

    monkeypatch.setattr(fleetbr.inventory, "key_file_problem", counting)
    monkeypatch.setattr(asyncssh, "import_private_key", counting_import)
    fleetbr.keyfiles._import_problem.cache_clear()
    check_client_keys(inventory, list(load_inventory(inventory).values()), None)
    assert parsed == [str(key)]
    assert imports == [key.read_bytes()]


def test_cli_missing_key_exits_2_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: each host retried and ended `unreachable ... FileNotFoundError` (exit 1)."""
    inventory = write_inventory(tmp_path)
    missing = tmp_path / "no-such-key"
    assert main(["-i", str(inventory), "--key", str(missing), "facts"]) == 2
    assert capsys.readouterr().err == f"error: --key {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("flag", "content", "shown"),
    [
        ("--key", b"not a key\n", "not an SSH private key (Invalid private key)"),
        ("--key", b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 pub\n", "not an SSH private key ("),
        ("--key", b"\0" * (2 << 20), "not an SSH private key (larger than"),
        ("--known-hosts", None, "No such file or directory"),
        ("--known-hosts", "dir", "Is a directory"),
    ],
)
def test_cli_bad_key_or_known_hosts_file_exits_2_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, content: bytes | str | None,
    shown: str,
) -> None:  # fmt: skip
    """Before: a file that is no key printed `internal error: KeyImportError` (and a log line)
    once a host was contacted; a missing --known-hosts failed every host (exit 1)."""
    (tmp_path / "inv").mkdir()
    inventory = write_inventory(tmp_path / "inv")
    path = tmp_path / "file"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    assert main(["-i", str(inventory), "-l", "hv01", flag, str(path), "facts"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} {path}: {shown}") and err.count("\n") == 1, err


def test_an_encrypted_key_is_decrypted_by_the_up_front_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the inventory's passphrase (shared by the hosts) for --key; without one and without
    a terminal, one line before any host is contacted (tests/unit/test_secrets.py has more)."""
    import asyncssh

    from fleetbr import keyfiles

    key = tmp_path / "id_enc"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(
        str(key), format_name="pkcs8-pem", passphrase="pw"
    )
    monkeypatch.setattr(keyfiles, "_has_terminal", lambda: False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(keyfiles, "_UNLOCKED", {})
    inventory = write_inventory(tmp_path)
    with pytest.raises(UsageError, match="is encrypted and there is no terminal"):
        check_client_keys(inventory, list(load_inventory(inventory).values()), str(key))
    hosts = "hv01:\n  hostname: 198.51.100.10\n"
    extras = "connection_options: {fleetbr: {extras: {passphrase: {env: FBR_TEST_PP}}}}\n"
    (tmp_path / "inv").mkdir()
    inventory = write_inventory(tmp_path / "inv", hosts, None, extras)
    monkeypatch.setenv("FBR_TEST_PP", "pw")
    check_client_keys(inventory, list(load_inventory(inventory).values()), str(key))
    assert isinstance(keyfiles.unlocked(str(key)), asyncssh.SSHKey)


def _bomb_inventory(directory: Path, levels: int = 9) -> Path:
    """hosts.yaml whose data is a "billion laughs": 10 lines, 9**levels strings expanded."""
    lines = ['[&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f", &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    data = "\n      ".join(lines) + "]"
    hosts = f"hv01:\n  hostname: 198.51.100.10\n  data:\n    x: {data}\n"
    return write_inventory(directory, hosts, None, None)


BOMB_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from fleetbr.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", [["--json", "inventory"], ["inventory"], ["facts"]])
def test_inventory_alias_bomb_is_refused_within_bounded_memory(
    tmp_path: Path, command: list[str]
) -> None:
    """Before: `--json inventory` expanded the aliases until memory ran out."""
    inventory = _bomb_inventory(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT, "-i", str(inventory), *command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert done.stderr == (
        f"error: {inventory}/hosts.yaml: more than 1000000 values once YAML aliases (*name) are "
        "expanded\n"
    )


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    hosts = "hv01:\n  hostname: a\n  data: {loop: &l [*l]}\n"
    with pytest.raises(InventoryError, match="hosts.yaml: nested deeper than 64 levels"):
        load_inventory(write_inventory(tmp_path, hosts, None, None))


@pytest.mark.parametrize("levels", [62, 400, 5000])
def test_data_nested_too_deep_is_refused_whatever_the_parser(tmp_path: Path, levels: int) -> None:
    """libyaml builds any depth (the pure parser hit Python's recursion limit at a few hundred);
    a document deeper than 64 levels is refused before anything walks it."""
    data = "[" * levels + "1" + "]" * levels
    hosts = f"hv01:\n  hostname: a\n  data: {{x: {data}}}\n"
    with pytest.raises(InventoryError) as caught:
        load_inventory(write_inventory(tmp_path, hosts, None, None))
    assert str(caught.value) == f"{tmp_path}/hosts.yaml: nested deeper than 64 levels"


def test_data_64_levels_deep_is_loaded(tmp_path: Path) -> None:
    data = "[" * 61 + "1" + "]" * 61  # the file, the host and its data are 3 levels: 64 in all
    hosts = f"hv01:\n  hostname: a\n  data: {{x: {data}}}\n"
    assert load_inventory(write_inventory(tmp_path, hosts, None, None))["hv01"].data["x"]


def test_the_inventory_is_parsed_by_libyaml() -> None:
    """ruamel.yaml 0.19 no longer installs its C extension: without ruamel.yaml.clib (in the
    lock) the inventory is parsed in pure Python, ~4x the CPU (docs/benchmarks.md)."""
    import ruamel.yaml
    from ruamel.yaml.main import CParser  # type: ignore[attr-defined]

    assert CParser is not None
    assert ruamel.yaml.YAML(typ="safe").Parser is CParser


@pytest.mark.parametrize("hosts", ["hv01: {hostname: a, port: " + "9" * 5000 + "}\n", "[" * 5000])
def test_yaml_that_python_cannot_build_is_an_inventory_error(tmp_path: Path, hosts: str) -> None:
    with pytest.raises(InventoryError, match="hosts.yaml: invalid YAML"):
        load_inventory(write_inventory(tmp_path, hosts, None, None))


def test_agent_forwarding_is_off_unless_the_inventory_says_true(tmp_path: Path) -> None:
    hosts = load_inventory(write_inventory(tmp_path))
    assert not any(spec.ssh.agent_forwarding for spec in hosts.values())
    assert hosts["hv01"].public_view()["agent_forwarding"] is False
    on = HOSTS.replace("extras: {sudo: true,", "extras: {agent_forwarding: true, sudo: true,")
    assert load_inventory(write_inventory(tmp_path, hosts=on))["hv03"].ssh.agent_forwarding
    odd = HOSTS.replace("extras: {sudo: true,", 'extras: {agent_forwarding: "yes", sudo: true,')
    with pytest.raises(InventoryError, match="agent_forwarding: expected true or false"):
        load_inventory(write_inventory(tmp_path, hosts=odd))
