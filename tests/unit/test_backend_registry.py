"""A new persistence backend is its folder plus one registration line: the toy backend
(tests/unit/toybackend/: a class, its shell and its facts templates) is gathered by the facts
script, parsed into the daemons' view, accepted by task validation, chosen, planned, rendered
into the host's shell and the boot guard, without a change anywhere else. Also the registry's
own rules (entry points, names taken)."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import jinja2
import pytest

from fleetbr.backends import choose, registry, unplan_backend
from fleetbr.backends.model import BridgeConfig
from fleetbr.errors import FactsError, TaskError, ValidationError
from fleetbr.facts.model import Backend as Tool
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.plan import plan_host
from fleetbr.plan.shell import step_command
from fleetbr.plan.steps import backend_apply
from fleetbr.render import backend_facts, backend_shell
from fleetbr.transaction.scripts import staged_scripts
from tests.unit.test_facts_parse import raw
from tests.unit.test_plan_support import task
from tests.unit.toybackend import ToyBackend

TOY_TASK = """
bridge:
  name: br0
  nic: "{{ host.data.nic }}"
  mac: nic
persist: toy
"""


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(ToyBackend)  # the one line a new backend needs
    yield
    registry.unregister("toy")


def toy_host() -> HostFacts:
    """A host no daemon manages, with toyd installed."""
    facts = parse_facts(raw("distro_none"))
    return dataclasses.replace(facts, backends=(*facts.backends, Tool("toyd", True, True)))


CONF = "bridge eth0\naddress 198.51.100.12/24\n"
TOY_FACTS = {  # what the toy's facts shell prints on a host where toyd manages eth0
    "backends": ["backend toyd yes yes"],
    "daemons": [
        "toy-state eth0 up",
        f"file {hashlib.sha256(CONF.encode()).hexdigest()} /etc/toy/eth0.conf",
    ],
}


def toy_output() -> str:
    """The facts of a host no daemon but toyd manages (distro_none plus the toy's lines)."""
    text = raw("distro_none")
    for section, lines in TOY_FACTS.items():
        marker = f"@@fleetbr-section {section}\n"
        assert marker in text
        text = text.replace(marker, marker + "".join(f"{line}\n" for line in lines))
    return text


def test_the_facts_script_gathers_the_toys_view(toy: None) -> None:
    script = facts_script()
    assert 'toyctl status 2>/dev/null | while read -r name state; do echo "toy-state' in script
    assert '"backend toyd $(yesno command -v toyctl)' in script
    assert " /etc/toy/*.conf" in script.split("fbr_sent=")[0].rsplit("for f in", 1)[1]
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_without_the_registration_line_the_facts_know_no_toy() -> None:
    assert "toy" not in facts_script()
    with pytest.raises(FactsError, match="section daemons: unexpected line 'toy-state eth0 up'"):
        parse_facts(toy_output())


def test_the_toys_facts_shell_reports_its_daemons_view(toy: None, tmp_path: Path) -> None:
    toyctl = tmp_path / "toyctl"
    toyctl.write_text("#!/bin/sh\n[ \"$1\" = status ] && printf 'eth0 up\\nbr0 down\\n'\n")
    toyctl.chmod(0o755)
    shell = backend_facts("toy").daemons(ToyBackend().facts_args())
    out = subprocess.run(
        ["sh", "-c", f'PATH="{tmp_path}:$PATH"\n{shell}'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout == "toy-state eth0 up\ntoy-state br0 down\n"


def test_the_toys_view_is_parsed_and_persist_auto_chooses_it(toy: None) -> None:
    facts = parse_facts(toy_output())
    manager = facts.manager("eth0")
    assert (manager.manager, manager.state) == ("toy", "up")
    assert [(f.path, f.sha256) for f in manager.files] == [
        ("/etc/toy/eth0.conf", hashlib.sha256(CONF.encode()).hexdigest())
    ]
    assert registry.get("toy").detect(facts, "eth0") and registry.get("toy").installed(facts)
    auto = task(TOY_TASK.replace("persist: toy", "persist: auto"))
    plan = plan_host(auto, facts, min_timeout=10)
    assert plan.refusal is None
    assert "/etc/toy/br0.conf" in plan.files


def test_a_daemon_on_the_toys_nic_is_refused(toy: None) -> None:
    facts = parse_facts(toy_output())
    refused = plan_host(
        task(TOY_TASK.replace("persist: toy", "persist: none")), facts, min_timeout=10
    )
    assert refused.refusal is not None
    assert refused.refusal.startswith("eth0 is managed by toy (up)")


def test_task_validation_lists_the_registered_backends(toy: None) -> None:
    assert task(TOY_TASK).persist == "toy"
    with pytest.raises(TaskError, match="'systemd' is not one of auto, none, ifupdown, .*, toy"):
        task(TOY_TASK.replace("persist: toy", "persist: systemd"))


def test_without_the_registration_line_toy_is_no_backend() -> None:
    with pytest.raises(TaskError, match="persist: 'toy' is not one of"):
        task(TOY_TASK)


def test_the_toy_backend_plans_and_renders_the_host_shell(toy: None) -> None:
    plan = plan_host(task(TOY_TASK), toy_host(), min_timeout=10)
    assert plan.refusal is None
    assert "/etc/toy/br0.conf" in plan.files
    commands = {s.kind: step_command(s) for s in plan.steps}
    assert commands["backend_apply"] == "toyctl apply br0 --port eth0"
    assert "printf '%s\\n' 'bridge br0' 'port eth0'" in commands["file_write"]
    rollback = [step_command(s) for s in plan.rollback if s.kind.startswith("backend_")]
    assert rollback == ["toyctl reload", "toyctl apply eth0"]
    boot = staged_scripts("20260101T000000-abcdef", plan).files["boot.sh"]
    assert "\ntoyctl reload --boot || failed=$((failed + 1))\n" in boot


def test_the_toy_backend_is_refused_where_its_tool_is_missing(toy: None) -> None:
    plan = plan_host(task(TOY_TASK), parse_facts(raw("distro_none")), min_timeout=10)
    assert plan.refusal == "persist: toy is not installed on the host"


def test_the_toy_backend_unbridges(toy: None) -> None:
    config = BridgeConfig("br0", "eth0", None, False, 4, ("198.51.100.12/24",), ())
    assert choose("toy", "refuse", toy_host(), "eth0", "br0") == "toy"
    files = {f.path: f.content for f in unplan_backend("toy", config, toy_host()).files}
    assert files == {
        "/etc/toy/br0.conf": None,
        "/etc/toy/eth0.conf": "bridge eth0\naddress 198.51.100.12/24\n",
    }


def test_a_backend_from_an_entry_point_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("toy", "tests.unit.toybackend:ToyBackend", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_entry_points_read", [])
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group else [])
    assert registry.names() == (
        "ifupdown",
        "networkd",
        "netplan",
        "networkmanager",
        "ifupdown2",
        "toy",
    )
    assert isinstance(registry.get("toy"), ToyBackend)


def test_an_entry_point_that_takes_a_builtin_name_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Impostor(ToyBackend):
        name = "networkd"

    point = EntryPoint("networkd", "x:y", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(EntryPoint, "load", lambda self: Impostor)
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_entry_points_read", [])
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    with pytest.raises(ValueError, match="names backend networkd, taken"):
        registry.names()


@pytest.mark.parametrize("name", ["networkd", "auto", "none"])
def test_a_name_taken_cannot_be_registered(name: str) -> None:
    class Taken(ToyBackend):
        pass

    Taken.name = name
    with pytest.raises(ValueError, match=f"the backend name {name} is taken"):
        registry.register(Taken)


def test_every_builtin_backend_has_its_shell() -> None:
    for backend in registry.backends():
        assert backend.shell_template().is_file(), backend.name
    assert registry.names() == ("ifupdown", "networkd", "netplan", "networkmanager", "ifupdown2")


# --- the backend steps' arguments: every registered backend's own, checked ------------------

U1, U2 = "0d9f4a52-3c1b-4e8e-9a57-6a2f1b0c7d31", "1d9f4a52-3c1b-4e8e-9a57-6a2f1b0c7d31"


def test_step_arguments_hold_every_backends_own_keys_in_registry_order() -> None:
    step = backend_apply({"backend": "netplan", "bridge": "br0", "nic": "eth0",
                          "renderer": "NetworkManager"})  # fmt: skip
    assert list(step.args) == ["direction", "renderer", "bridge_uuid", "port_uuid", "old_uuid",
                               "nic_uuid", "backend", "bridge", "nic"]  # fmt: skip
    assert step.args["renderer"] == "NetworkManager" and step.args["old_uuid"] is None


def test_a_profile_uuid_left_out_is_none() -> None:
    """NetworkManager persisted before has no old profile to retire: old_uuid None."""
    args = {"backend": "networkmanager", "bridge": "br0", "nic": "eth0",
            "bridge_uuid": U1, "port_uuid": U2, "old_uuid": None}  # fmt: skip
    assert backend_apply(args).args["old_uuid"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"backend": "systemd"}, "backend backend: 'systemd' is not known"),
        ({"backend": "netplan", "renderer": "sd"}, "backend renderer: 'sd' is not known"),
        ({"backend": "networkmanager", "old_uuid": "x"}, "backend old_uuid: 'x' is not a UUID"),
        ({"backend": "networkd", "colour": "red"}, "backend: unknown argument colour"),
    ],
)
def test_bad_step_arguments_are_refused(args: dict[str, str | None], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        backend_apply({"bridge": "br0", "nic": "eth0", **args})


@pytest.mark.parametrize("name", ["ifupdown", "networkd", "netplan", "networkmanager"])
def test_each_builtin_detects_the_nic_it_manages_and_reads_its_view(name: str) -> None:
    facts = parse_facts(raw(f"distro_{name}"))
    for backend in registry.backends():
        assert backend.detect(facts, "eth0") == (backend.name == name), backend.name
    view = registry.get(name).view(facts, "eth0")
    assert view is not None and view.claims
    assert registry.get(name).is_settled(view.state), view.state
    assert registry.get(name).installed(facts)


def test_a_backend_that_is_not_registered_has_no_shell() -> None:
    with pytest.raises(jinja2.TemplateNotFound, match="backend/toy/shell.sh.j2"):
        backend_shell("toy")
