"""Task files: loading, per-host rendering, defaults and refusal of hostile or mistyped values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetbr.changes.bridge.task import BridgeTask, TaskTemplate, load_task, render_task
from fleetbr.errors import TaskError

REPO = Path(__file__).resolve().parents[2]


def host(**data: Any) -> dict[str, Any]:
    return {
        "name": "hv01",
        "hostname": "198.51.100.10",
        "port": 22,
        "groups": ["rack1"],
        "data": {"nic": "eth0", **data},
    }


def render(text: str, **data: Any) -> BridgeTask:
    return render_task(TaskTemplate("tasks/x.yaml", text), host(**data))


def refused(text: str, **data: Any) -> str:
    with pytest.raises(TaskError) as info:
        render(text, **data)
    message = str(info.value)
    assert message.startswith("tasks/x.yaml: host hv01: "), message
    return message


def test_bridge_yaml_renders_with_documented_defaults() -> None:
    task = render_task(load_task(REPO / "tasks/bridge.yaml"), host(nic="enp0s25"))
    b = task.bridge
    assert (b.name, b.state, b.nic, b.addresses, b.mac) == ("br0", "present", "enp0s25", None, None)
    assert (b.gateway4, b.gateway6, b.stp, b.forward_delay) == (None, None, False, 4)
    assert (task.netfilter, task.docker_conflict, task.persist) == ("off", "refuse", "auto")
    assert task.deadman_timeout == 60
    assert (task.host, task.source) == ("hv01", str(REPO / "tasks/bridge.yaml"))


def test_bridge_defaults_take_nic_from_host_data() -> None:
    task = render("bridge: {}", nic="eno1")
    assert task.bridge.nic == "eno1"
    assert task.bridge.name == "br0"


@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n", "{}", "---\n...\n"])
def test_an_empty_task_is_refused_not_all_defaults(text: str) -> None:
    assert "the task is empty" in refused(text)


@pytest.mark.parametrize("text", ["", " \n\t\n"])
def test_an_empty_task_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(TaskError, match=r"empty.yaml: task file is empty"):
        load_task(path)


def test_unbridge_and_cut_off_files_render() -> None:
    un = render_task(load_task(REPO / "tasks/unbridge.yaml"), host())
    assert (un.bridge.state, un.netfilter) == ("absent", "keep")
    cut = render_task(load_task(REPO / "tasks/cut-off.yaml"), host())
    assert cut.bridge.addresses == ("203.0.113.250/32",)
    cut2 = render_task(
        load_task(REPO / "tasks/cut-off.yaml"), host(cutoff_address="2001:db8::9/128")
    )
    assert cut2.bridge.addresses == ("2001:db8::9/128",)


def test_groups_and_host_fields_are_in_scope() -> None:
    text = 'bridge:\n  name: "br{{ host.port }}"\n  nic: "{{ host.groups[0] }}"\n'
    task = render(text)
    assert (task.bridge.name, task.bridge.nic) == ("br22", "rack1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("off", "off"), ("on", "on"), ("keep", "keep"), ('"off"', "off"), ('"on"', "on")],
)
def test_netfilter_accepts_yaml_booleans_and_strings(value: str, expected: str) -> None:
    assert render(f"netfilter: {value}\n").netfilter == expected


def test_explicit_values_are_canonical() -> None:
    text = """
bridge:
  addresses: ["2001:DB8:0::10/64", "198.51.100.10/24", "198.51.100.10/24"]
  gateway4: 198.51.100.1
  gateway6: "2001:DB8::1"
  mac: "52:54:00:AB:CD:EF"
  stp: true
  forward_delay: 2
docker_conflict: accept
deadman: {timeout: 120}
"""
    task = render(text)
    assert task.bridge.addresses == ("2001:db8::10/64", "198.51.100.10/24")
    assert (task.bridge.gateway4, task.bridge.gateway6) == ("198.51.100.1", "2001:db8::1")
    assert task.bridge.mac == "52:54:00:ab:cd:ef"
    assert (task.bridge.stp, task.bridge.forward_delay) == (True, 2)
    assert (task.docker_conflict, task.deadman_timeout) == ("accept", 120)


@pytest.mark.parametrize(
    ("text", "data", "needle"),
    [
        (
            "bridge: {}",
            {"nic": "eth0;reboot"},
            "bridge.nic: interface name 'eth0;reboot' may only contain",
        ),
        ('bridge: {nic: "$(reboot)"}', {}, "bridge.nic: interface name '$(reboot)'"),
        (
            "bridge: {name: br0123456789abcd}",
            {},
            "bridge.name: interface name 'br0123456789abcd' is 16",
        ),
        ("bridge: {addresses: [198.51.100.300/24]}", {}, "bridge.addresses[0]:"),
        ("bridge: {addresses: [198.51.100.10]}", {}, "bridge.addresses[0]: '198.51.100.10' is not"),
        ("bridge: {addresses: []}", {}, "bridge.addresses: expected move or a list"),
        ("bridge: {mac: '01:00:5e:00:00:01'}", {}, "bridge.mac: 01:00:5e:00:00:01 is multicast"),
        ("bridge: {mac: 'nope'}", {}, "bridge.mac: 'nope' is not a MAC"),
        ("bridge: {stp: true, forward_delay: 1}", {}, "bridge.forward_delay (with stp on): 1"),
        ("bridge: {forward_delay: 31}", {}, "bridge.forward_delay: 31 is outside 0..30"),
        ("bridge: {stp: 'yes'}", {}, "bridge.stp: expected true or false"),
        ("bridge: {state: gone}", {}, "bridge.state: 'gone' is not one of present, absent"),
        ("bridge: {gateway4: '2001:db8::1'}", {}, "bridge.gateway4: 2001:db8::1 is not an IPv4"),
        ("bridge: {gateway6: 198.51.100.1}", {}, "bridge.gateway6: 198.51.100.1 is not an IPv6"),
        ("bridge: {nicc: eth1}", {}, "bridge: unknown key(s) nicc"),
        ("netfilters: off", {}, "task: unknown key(s) netfilters"),
        ("deadman: {timeout: 0}", {}, "deadman.timeout: 0 is outside 1..3600"),
        ("deadman: {timeout: '60'}", {}, "deadman.timeout: expected a whole number"),
        ("deadman: {timout: 60}", {}, "deadman: unknown key(s) timout"),
        ("netfilter: maybe", {}, "netfilter: 'maybe' is not one of off, on, keep"),
        ("docker_conflict: ignore", {}, "docker_conflict: 'ignore' is not one of refuse, accept"),
        ("persist: systemd", {}, "persist: 'systemd' is not one of auto, none, ifupdown"),
        ("daemon_conflict: ignore", {}, "daemon_conflict: 'ignore' is not one of refuse"),
        ("bridge: [1, 2]", {}, "bridge: expected a mapping"),
        ("- just a list", {}, "task: expected a mapping"),
    ],
)
def test_bad_values_are_refused_naming_file_host_and_field(
    text: str, data: dict[str, Any], needle: str
) -> None:
    assert needle in refused(text, **data)


def test_undefined_variable_is_an_error() -> None:
    message = refused('bridge: {nic: "{{ host.data.uplink }}"}')
    assert "template error" in message
    assert "uplink" in message


def test_broken_yaml_after_rendering_is_an_error() -> None:
    message = refused('bridge: {nic: "{{ host.data.nic }}"', nic="eth0")
    assert "not valid YAML" in message


def test_yaml_injection_through_host_data_is_caught() -> None:
    message = refused('bridge:\n  nic: "{{ host.data.nic }}"\n', nic='eth0"\n  stp: "x')
    assert "bridge" in message


def test_sandbox_blocks_attribute_escapes() -> None:
    assert "template error" in refused("bridge: {nic: \"{{ ''.__class__.__mro__ }}\"}")


def test_missing_nic_everywhere_is_an_error() -> None:
    with pytest.raises(TaskError, match=r"bridge.nic: required"):
        render_task(TaskTemplate("t.yaml", "bridge: {}"), {"name": "hv01", "data": {}})


def test_load_task_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TaskError, match=r"nope.yaml: cannot read task file"):
        load_task(missing)


@pytest.mark.parametrize(
    "value", ["fe80::1%;reboot", "fe80::1%$(reboot)", "fe80::1%eth0 x", "fe80::1%a'b"]
)
def test_ipv6_scope_id_must_be_an_interface_name(value: str) -> None:
    message = refused(f'bridge: {{gateway6: "{value}"}}')
    assert "bridge.gateway6" in message and "scope id" in message


def test_ipv6_scope_id_in_an_address_must_be_an_interface_name() -> None:
    message = refused('bridge: {addresses: ["fe80::1%;reboot/64"]}')
    assert "bridge.addresses[0]" in message and "scope id" in message


@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%br-lan.10", "fe80::1%3"])
def test_ipv6_scope_id_that_names_an_interface_is_accepted(value: str) -> None:
    assert render(f'bridge: {{gateway6: "{value}"}}').bridge.gateway6 == value


def _alias_bomb(levels: int = 9) -> str:
    """A "billion laughs" list: 10 lines that stand for 9**levels strings once expanded."""
    lines = ['[&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f", &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n    ".join(lines) + "]"


BOMB_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from fleetbr.errors import TaskError
from fleetbr.changes.bridge.task import TaskTemplate, render_task
try:
    render_task(TaskTemplate("bomb.yaml", sys.stdin.read()), {"name": "hv01", "data": {}})
except TaskError as exc:
    print(exc)
"""


@pytest.mark.parametrize("field", ["nic", "addresses", "routes", "mac"])
def test_yaml_alias_bomb_is_refused_within_bounded_memory(field: str) -> None:
    """Before: the repr of the expanded value in the error took gigabytes (killed at 60 s)."""
    text = f"bridge:\n  {field}: {_alias_bomb()}\n"
    assert len(text.splitlines()) <= 12
    done = subprocess.run(
        [sys.executable, "-c", BOMB_SCRIPT], input=text, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bomb.yaml: host hv01: task: more than 100000 values" in done.stdout
    assert len(done.stdout) < 500, "no value may be shown whole"


def test_values_in_errors_are_truncated() -> None:
    long_nic = "x" * 5000
    message = refused(f"bridge: {{nic: {long_nic}}}")
    assert "bridge.nic" in message and len(message) < 300


def test_an_oversized_task_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("bridge: {}\n" + "#" * (2 << 20))
    with pytest.raises(TaskError, match=r"big.yaml: task file is larger than"):
        load_task(path)


def test_a_task_rendering_to_an_oversized_document_is_refused() -> None:
    message = refused("bridge: {}\n{% for i in range(100000) %}# {{ 'x' * 50 }}\n{% endfor %}")
    assert "rendered task is larger than" in message


@pytest.mark.parametrize("text", ["bridge: {forward_delay: " + "9" * 5000 + "}", "[" * 5000])
def test_yaml_that_python_cannot_build_is_a_task_error(text: str) -> None:
    assert "not valid YAML" in refused(text)
