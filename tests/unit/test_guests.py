"""Guests: the libvirt facts parser, the guests: task section, planning, confirm and restore
checks, and the guest_update step's shell, from recorded facts (no SSH)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import FactsError, TaskError
from fleetbr.facts.libvirt import Libvirt
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.parse_libvirt import parse_libvirt
from fleetbr.plan import plan_host, rollback_script, step_command, steps_script
from fleetbr.plan.guest_check import compare_guests
from fleetbr.plan.restore import restore_check
from fleetbr.plan.scope import parse_touched, touched_by, touched_lines
from tests.unit.test_plan_support import task

DATA = Path(__file__).parent.parent / "data" / "facts"
MOVE_ALL = BASE = """
bridge: {name: br0, nic: eth0}
guests: {move: all, from: lab}
"""
HOSTILE = "vm 'x\" $(reboot) `id` ; é\u202e"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def lab_facts() -> HostFacts:
    """A real lab host: g1, g2 running and off1 defined only, all on libvirt network lab."""
    return parse_facts((DATA / "libvirt_guests.txt").read_text())


def libvirt_of(facts: HostFacts) -> Libvirt:
    assert facts.guests is not None
    return facts.guests


def with_domain_xml(facts: HostFacts, uuid: str, live: str, config: str | None) -> HostFacts:
    """``facts`` plus one domain given by its XML, parsed like the facts script's output."""
    lines = ["status ok", "version 9.0.0"]
    for scope, xml in (("live", live), ("config", config)):
        if xml is not None:
            lines.append(f"domain {uuid} {scope} {base64.b64encode(xml.encode()).decode()}")
    extra = parse_libvirt(lines)
    assert extra is not None
    found = libvirt_of(facts)
    return dataclasses.replace(
        facts, guests=dataclasses.replace(found, domains=found.domains + extra.domains)
    )


def domain_xml(name: str, mac: str, source: str) -> str:
    return (
        f"<domain type='qemu'><name>{name}</name><devices>"
        f"<interface type='bridge'><mac address='{mac}'/><source bridge='{source}'/>"
        "<model type='virtio'/></interface></devices></domain>"
    )


def moving(name: str) -> str:
    """A task moving the domain ``name`` (JSON-quoted: JSON is YAML)."""
    return f"bridge: {{nic: eth0}}\nguests: {{move: [{json.dumps(name)}], from: lab}}\n"


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")


# --- facts ---------------------------------------------------------------------------------


def test_libvirt_facts_list_every_domain_with_its_interfaces() -> None:
    found = libvirt_of(lab_facts())
    assert found.version == "9.0.0"
    assert [(d.name, d.active, d.config is not None) for d in found.domains] == [
        ("g1", True, True),
        ("g2", True, True),
        ("off1", False, True),
    ]
    g1 = found.domains[0]
    (live,) = g1.live
    assert (live.type, live.source, live.bridge, live.model, live.tap) == (
        "network",
        "lab",
        "virbr-lab",
        "virtio",
        "vnet0",
    )
    assert live.mac == "52:54:00:01:00:01"
    assert "portid" in live.xml and "portid" not in live.canonical
    assert g1.config is not None and g1.config[0].tap == ""


def test_libvirt_facts_refuse_declarations_oversize_and_junk_per_domain() -> None:
    bomb = '<!DOCTYPE d [<!ENTITY a "aaaa">]><domain><name>&a;</name></domain>'
    big = "<domain>" + " " * (1 << 20) + "</domain>"
    lines = [
        "status ok",
        f"domain 11111111-1111-1111-1111-111111111111 live {b64(bomb)}",
        f"domain 22222222-2222-2222-2222-222222222222 live {b64(big)}",
        "domain 33333333-3333-3333-3333-333333333333 live not*base64",
        "domain 44444444-4444-4444-4444-444444444444 live -",
    ]
    found = parse_libvirt(lines)
    assert found is not None
    errors = [d.error for d in found.domains]
    assert "document type declaration" in errors[0]
    assert "larger than" in errors[1]
    assert "base64" in errors[2]
    assert "no definition" in errors[3]
    with pytest.raises(FactsError, match="unexpected line"):
        parse_libvirt(["domain not-a-uuid live -"])
    assert parse_libvirt([]) is None
    down = parse_libvirt([f"status error {base64.b64encode(b'failed to connect').decode()}"])
    assert down is not None and down.error == "failed to connect"


# --- task ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{move: all}", "move and from are required"),
        ("{move: [], from: lab}", "expected all or a list"),
        ('{move: ["a\\nb"], from: lab}', "control characters"),
        ("{move: all, from: lab, bogus: 1}", "unknown key"),
        ("{move: all, from: lab, link_flap: maybe}", "guests.link_flap"),
    ],
)
def test_guests_section_is_validated(section: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        task(f"bridge: {{nic: eth0}}\nguests: {section}\n")


def test_guests_section_refused_with_an_unbridge() -> None:
    with pytest.raises(TaskError, match="only with bridge.state present"):
        task("bridge: {nic: eth0, state: absent}\nguests: {move: all, from: lab}\n")


def test_guests_section_keeps_hostile_names_as_text() -> None:
    spec = task(moving(HOSTILE)).guests
    assert spec is not None and spec.move == (HOSTILE,)


# --- plan ----------------------------------------------------------------------------------


def test_move_all_plans_live_and_config_after_the_addresses_and_rolls_back_first() -> None:
    facts = lab_facts()
    plan = plan_host(task(MOVE_ALL), facts, min_timeout=20)
    assert plan.refusal is None
    kinds = [s.kind for s in plan.steps]
    first_guest = kinds.index("guest_update")
    assert set(kinds[first_guest:]) == {"guest_update"}
    assert kinds.index("route_add") < first_guest
    guest_steps = plan.steps[first_guest:]
    # g1 and g2: live + config; off1 (defined only): config only
    assert [(s.args["domain"][:8], s.args["scope"]) for s in guest_steps] == [
        (d.uuid[:8], scope)
        for d in libvirt_of(facts).domains
        for scope in (("live", "config") if d.active else ("config",))
    ]
    live = guest_steps[0]
    assert live.args["tap"] == "vnet0"
    xml = str(live.args["xml"])
    for kept in (
        'type="bridge"',
        '<source bridge="br0" />',
        '<mac address="52:54:00:01:00:01" />',
        '<model type="virtio" />',
        '<alias name="net0" />',
        '<target dev="vnet0" />',
        'slot="0x02"',
    ):
        assert kept in xml
    assert "network=" not in xml and "portid" not in xml
    assert live.inverse is not None
    back = str(live.inverse.args["xml"])
    assert '<source network="lab" bridge="virbr-lab" />' in back and "portid" not in back
    assert [s.kind for s in plan.rollback[: len(guest_steps)]] == ["guest_update"] * 5
    assert len(plan.expected.guests) == 5


def test_link_flap_moves_with_the_link_down_then_sets_it_up() -> None:
    text = "bridge: {nic: eth0}\nguests: {move: [g1], from: lab, link_flap: true}\n"
    plan = plan_host(task(text), lab_facts(), min_timeout=20)
    live = [s for s in plan.steps if s.kind == "guest_update" and s.args["scope"] == "live"]
    assert len(live) == 2
    assert '<link state="down" />' in str(live[0].args["xml"])
    assert "<link" not in str(live[1].args["xml"])
    assert live[1].inverse is not None and live[1].inverse.args["xml"] == live[0].args["xml"]


@pytest.mark.parametrize(
    ("section", "facts_change", "reason"),
    [
        ("{move: [nope], from: lab}", {}, "no domain named 'nope'"),
        ("{move: all, from: lab}", {"guests": None}, "libvirt is not on the host"),
        ("{move: all, from: lab}", {"guests": Libvirt(error="no libvirtd")}, "does not answer"),
        ("{move: [g1], from: elsewhere}", {}, "has no interface on 'elsewhere'"),
    ],
)
def test_guests_that_cannot_be_moved_refuse_the_host(
    section: str, facts_change: dict[str, object], reason: str
) -> None:
    facts = dataclasses.replace(lab_facts(), **facts_change)  # type: ignore[arg-type]
    plan = plan_host(task(f"bridge: {{nic: eth0}}\nguests: {section}\n"), facts, min_timeout=20)
    assert plan.refusal is not None and reason in plan.refusal
    assert not plan.steps


def test_a_guest_on_another_network_is_left_alone() -> None:
    uuid = "55555555-5555-5555-5555-555555555555"
    xml = domain_xml("other", "52:54:00:aa:bb:cc", "virbr-other")
    facts = with_domain_xml(lab_facts(), uuid, xml, xml)
    plan = plan_host(task(MOVE_ALL), facts, min_timeout=20)
    assert plan.refusal is None
    assert uuid not in {s.args.get("domain") for s in plan.steps}
    assert uuid not in touched_by(plan).domains


def test_a_hostile_domain_name_never_reaches_a_command(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"vm 'x\" $(touch {marker}) `touch {marker}` ; é\u202e"
    uuid = "66666666-6666-6666-6666-666666666666"
    xml = domain_xml(escape(hostile), "52:54:00:aa:bb:01", "lab")
    facts = with_domain_xml(lab_facts(), uuid, xml, xml)
    assert libvirt_of(facts).domains[-1].name == hostile
    plan = plan_host(task(moving(hostile)), facts, min_timeout=20)
    assert plan.refusal is None, plan.refusal
    assert [s.args["domain"] for s in plan.steps if s.kind == "guest_update"] == [uuid]
    commands = [step_command(s) for s in plan.steps + plan.rollback]
    assert not [c for c in commands if "touch" in c or "\u202e" in c]
    # the name is in the step's description, which a failing script prints (quoted)
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("virsh", "ip"):
        (fake / tool).write_text("#!/bin/sh\nexit 1\n")
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin"}
    guest = [s for s in plan.steps if s.kind == "guest_update"]
    back = [s for s in plan.rollback if s.kind == "guest_update"]
    for script in (steps_script(guest), rollback_script(back)):
        done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, check=False)
        assert done.returncode == 1
        assert b"touch" in done.stderr
    assert not marker.exists()
    refused = plan_host(task(moving("$(reboot)")), facts, min_timeout=20)
    assert refused.refusal == "guests: no domain named '$(reboot)' on the host"


def test_an_unbridge_is_refused_while_a_definition_names_the_bridge() -> None:
    from tests.unit.test_plan_support import bridged, facts

    uuid = "77777777-7777-7777-7777-777777777777"
    host = bridged(facts())
    host = dataclasses.replace(host, guests=Libvirt(version="9.0.0"))
    host = with_domain_xml(host, uuid, domain_xml("parked", "52:54:00:aa:bb:02", "br0"), None)
    plan = plan_host(task("bridge: {nic: eth0, state: absent}\n"), host, min_timeout=20)
    assert plan.refusal is not None
    assert "libvirt guests use bridge br0 (parked (7777" in plan.refusal


# --- confirm, restore, scope ----------------------------------------------------------------


def test_confirm_sees_guests_not_on_the_bridge() -> None:
    facts = lab_facts()
    plan = plan_host(task(MOVE_ALL), facts, min_timeout=20)
    texts = [d.text for d in compare_guests(plan.expected.guests, facts)]
    assert len([t for t in texts if "is on network lab, not on br0" in t]) == 5
    assert any("tap vnet0 is not a port of br0 (virbr-lab)" in t for t in texts)


def test_restore_check_compares_the_touched_guests_interfaces() -> None:
    before = lab_facts()
    plan = plan_host(task(MOVE_ALL), before, min_timeout=20)
    touched = touched_by(plan)
    assert {"vnet0", "vnet1"} <= touched.devs
    assert parse_touched(touched_lines(touched)) == touched
    g1 = libvirt_of(before).domains[0]
    moved_iface = dataclasses.replace(g1.config[0], canonical="<interface type='bridge'/>")  # type: ignore[index]
    after_domain = dataclasses.replace(g1, config=(moved_iface,))
    found = libvirt_of(before)
    after = dataclasses.replace(
        before,
        guests=dataclasses.replace(found, domains=(after_domain, *found.domains[1:])),
    )
    check = restore_check(before, after, touched)
    assert any(g1.uuid in p and "config" in p for p in check.problems)
    untouched = dataclasses.replace(touched, domains=frozenset())
    assert not restore_check(before, after, untouched).problems


# --- the step's shell ---------------------------------------------------------------------


def test_guest_update_passes_the_xml_through_a_file_and_only_the_uuid(tmp_path: Path) -> None:
    plan = plan_host(task(MOVE_ALL), lab_facts(), min_timeout=20)
    step = next(s for s in plan.steps if s.kind == "guest_update")
    hostile = dataclasses.replace(
        step,
        args={**step.args, "xml": "<interface type='bridge'><x a=\"$(id) ' `id`\"/></interface>"},
    )
    fake = tmp_path / "virsh"
    log = tmp_path / "log"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\ncat "$6" >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", step_command(hostile)], env=env, check=False)
    assert done.returncode == 0
    argv = log.read_text().splitlines()
    assert argv[:5] == ["-q", "-c", "qemu:///system", "update-device", step.args["domain"]]
    assert argv[6] == "--live"
    assert argv[7] == str(hostile.args["xml"])
    fake.write_text("#!/bin/sh\nexit 1\n")
    assert subprocess.run(["sh", "-c", step_command(step)], env=env, check=False).returncode == 1


def test_demo_lines_show_where_each_guest_is() -> None:
    from fleetbr.lab.distro.guest_demo import guest_lines

    assert guest_lines(lab_facts()) == [
        "g1 (live): network lab, tap vnet0 on virbr-lab",
        "g1 (config): network lab",
        "g2 (live): network lab, tap vnet1 on virbr-lab",
        "g2 (config): network lab",
        "off1 (config): network lab",
    ]


# --- a reboot inside the window (issue 14, item 5) -------------------------------------------

TXID = "20261127T181500-3fa9c2"
G1 = "1d1c5b8e-55d8-4bd6-9b4e-4b6fd7d1e0a1"
G1_XML = (
    f"<domain type='qemu'>\n  <name>g1</name>\n  <uuid>{G1}</uuid>\n  <source network='lab'/>\n"
)


def stage_then_boot(tmp_path: Path, *, lose_backup: bool = False) -> tuple[Path, str]:
    """Stage g1's persistent definition, let the change rewrite it, then run the boot guard's
    boot.sh (as after a power cut): g1's file and the journal afterwards."""
    from fleetbr.render import render

    qemu, state = tmp_path / "qemu", tmp_path / "state"
    tx = state / "tx" / TXID
    (tx / "backups").mkdir(parents=True)
    qemu.mkdir()
    (qemu / "g1.xml").write_text(G1_XML)
    (qemu / "other.xml").write_text("<domain><uuid>2d1c5b8e-55d8-4bd6-9b4e-4b6fd7d1e0a1</uuid>")
    stage = render("tx_stage_domains.sh.j2", domains=[G1], libvirt_dir=str(qemu))
    env = {"PATH": "/usr/bin:/bin", "FLEETBR_BACKUP_DIR": str(tx / "backups")}
    subprocess.run(["sh", "-c", stage], env=env, check=True)
    (qemu / "g1.xml").write_text(G1_XML.replace("network='lab'", "bridge='br0'"))
    if lose_backup:
        (tx / "backups" / f"domain-{G1}.xml").unlink()
    (state / "armed").symlink_to(TXID)
    boot = render("tx_boot.sh.j2", state_dir=str(state), txid=TXID, steps=[], domains=[G1],
                  boot_backends=[])  # fmt: skip
    done = subprocess.run(["sh", "-c", boot], env={"PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == (1 if lose_backup else 0)  # a failed step fails the unit
    return qemu / "g1.xml", (state / "journal").read_text()


def test_the_boot_guard_puts_a_guests_persistent_definition_back(tmp_path: Path) -> None:
    g1, journal = stage_then_boot(tmp_path)
    assert g1.read_text() == G1_XML
    assert journal.splitlines()[-1].endswith("rolled_back reason=reboot failed_steps=0")


def test_a_definition_the_boot_guard_cannot_put_back_is_a_failed_rollback(tmp_path: Path) -> None:
    g1, journal = stage_then_boot(tmp_path, lose_backup=True)
    assert "bridge='br0'" in g1.read_text()
    assert journal.splitlines()[-1].endswith("rollback_failed reason=reboot failed_steps=1")


def test_the_stage_fails_when_no_file_holds_a_moved_guests_definition(tmp_path: Path) -> None:
    from fleetbr.render import render

    (tmp_path / "backups").mkdir()
    stage = render("tx_stage_domains.sh.j2", domains=[G1], libvirt_dir=str(tmp_path))
    env = {"PATH": "/usr/bin:/bin", "FLEETBR_BACKUP_DIR": str(tmp_path / "backups")}
    done = subprocess.run(["sh", "-c", stage], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot back up the persistent definition of libvirt domain {G1}" in done.stderr


def test_staging_backs_up_every_persistent_definition_the_plan_changes() -> None:
    from fleetbr.transaction import scripts

    facts = lab_facts()
    plan = plan_host(task(MOVE_ALL), facts, min_timeout=20)
    uuids = sorted(d.uuid for d in libvirt_of(facts).domains)  # g1, g2 and off1: all persistent
    assert scripts.persistent_domains(plan) == uuids
    staged = scripts.staged_scripts(TXID, plan)
    stage = scripts.stage_script(TXID, plan, staged, "t.yaml", nonce=scripts.new_nonce())
    for uuid in uuids:
        assert f"stage_domain {uuid} || exit 1" in stage
        assert f"if ! restore_domain {uuid};" in staged.files["boot.sh"]


def test_the_verdict_waits_while_libvirt_brings_a_moved_guest_back() -> None:
    from fleetbr.changes.bridge.change import guests_settling

    before = lab_facts()
    plan = plan_host(task(MOVE_ALL), before, min_timeout=20)
    assert not guests_settling(plan, before, before)
    down = dataclasses.replace(before, guests=Libvirt(error="failed to connect"))
    assert guests_settling(plan, before, down)
    found = libvirt_of(before)
    stopped = tuple(dataclasses.replace(d, active=False) for d in found.domains)
    assert guests_settling(plan, before, dataclasses.replace(before, guests=Libvirt(
        found.version, stopped)))  # fmt: skip
    no_taps = dataclasses.replace(before, links=tuple(
        link for link in before.links if not link.name.startswith("vnet")))  # fmt: skip
    assert guests_settling(plan, before, no_taps)
