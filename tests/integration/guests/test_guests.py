"""Libvirt guests moved onto the bridge in the dead-man transaction, on real Debian 12 hosts
running libvirtd 9.0 and diskless TCG guests, through real sshd (docs/guests.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.facts.model import HostFacts
from fleetbr.lab import Lab, LabHost, host_exec
from fleetbr.lab.distro.guests import domain_xml
from tests.integration.barrier import Gate
from tests.integration.guests.guesthelpers import domains, host_facts, master, task
from tests.integration.helpers import REPO, enslaved, events, fleetbr, sh, wait_for

pytestmark = pytest.mark.lab


def interfaces(facts: HostFacts) -> dict[str, list[str]]:
    """name -> every interface of both definitions, as compared after a rollback."""
    return {
        name: [
            f"{scope} {i.canonical}" for scope in ("live", "config") for i in d.interfaces(scope)
        ]
        for name, d in domains(facts).items()
    }


def qemu_pids(lab: Lab, host: str) -> set[str]:
    return set(
        sh(lab, host, "pgrep -x qemu-system-x86 || pgrep -f qemu-system-x86_64 || :").split()
    )


def apply(lab: Lab, host: str, path: Path) -> dict[str, object]:
    code, doc, err = fleetbr("-i", str(lab.inventory_dir), "-l", host, "apply", str(path))
    assert isinstance(doc, dict), (code, doc, err)
    return dict(doc[host])


def test_two_running_and_one_defined_only_guest_move_and_confirm(
    guest_lab: Lab, fresh_guest_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_guest_host("hv01")
    before = host_facts(guest_lab, "hv01")
    pids = qemu_pids(guest_lab, "hv01")
    assert len(pids) == 2
    path = task(tmp_path, {"move": "all", "from": "lab", "link_flap": True})
    result = apply(guest_lab, "hv01", path)
    assert result["status"] == "confirmed", result
    after = host_facts(guest_lab, "hv01")
    for name in ("g1", "g2", "off1"):
        old, new = domains(before)[name], domains(after)[name]
        assert new.active == old.active
        config = new.interfaces("config")
        assert [(i.type, i.source, i.mac) for i in config] == [
            ("bridge", "br0", i.mac) for i in old.interfaces("config")
        ]
        if new.active:
            (live,) = new.live
            (was,) = old.live
            assert (live.type, live.source, live.tap, live.mac) == (
                "bridge",
                "br0",
                was.tap,
                was.mac,
            )
            assert "<link" not in live.xml  # the flap left it up
            assert master(after, live.tap) == "br0"
    assert qemu_pids(guest_lab, "hv01") == pids  # no guest was restarted
    assert enslaved(guest_lab, "hv01")
    # unbridging now is refused: the guests use br0
    code, doc, _ = fleetbr("-i", str(guest_lab.inventory_dir), "-l", "hv01", "plan",
                           str(REPO / "tasks" / "unbridge.yaml"))  # fmt: skip
    assert code == 1 and doc["hv01"]["status"] == "refused"
    assert "libvirt guests use bridge br0" in doc["hv01"]["message"], doc


def test_a_cut_off_host_with_guests_rolls_every_guest_back(
    guest_lab: Lab, fresh_guest_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_guest_host("hv02")
    before = host_facts(guest_lab, "hv02")
    path = task(tmp_path, {"move": "all", "from": "lab"}, "cut-off.yaml")
    controller = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "--json", "-i", str(guest_lab.inventory_dir),
         "-l", "hv02", "apply", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # during the window every guest is on br0 (the host is cut off, not the lab's view)
        def all_moved() -> bool:
            now = host_facts(guest_lab, "hv02")
            return all(
                i.source == "br0" for s in ("live", "config") for d in domains(now).values()
                for i in d.interfaces(s)
            )  # fmt: skip

        wait_for(all_moved, 30, "every guest on br0", every=0.2)
        out, err = controller.communicate(timeout=180)
    finally:
        controller.kill()
    result = json.loads(out)["hv02"]
    assert result["status"] == "rolled_back", (result, err)
    after = host_facts(guest_lab, "hv02")
    assert interfaces(after) == interfaces(before)
    for name in ("g1", "g2"):
        (live,) = domains(after)[name].live
        assert (live.type, live.source) == ("network", "lab")
        assert master(after, live.tap) == "virbr-lab"
    assert not enslaved(guest_lab, "hv02")


def test_named_guests_move_others_and_another_network_are_left_alone(
    guest_lab: Lab, fresh_guest_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_guest_host("hv03")
    marker = "/root/pwned"  # libvirt refuses a '/' in a name: the commands cd home first
    hostile = "vm 'x\" $(cd; touch pwned) `cd; touch pwned` ; é\u202e"
    other = (
        domain_xml("other", "52:54:00:ee:00:01", network="unused")
        .replace("<interface type='network'>", "<interface type='bridge'>")
        .replace("<source network='unused'/>", "<source bridge='virbr-other'/>")
    )
    sh(guest_lab, "hv03", "ip link add virbr-other type bridge && ip link set virbr-other up")
    for xml in (other, domain_xml(hostile, "52:54:00:ee:00:02")):
        define = "f=$(mktemp) && cat > $f && virsh -q define $f >/dev/null"
        host_exec(guest_lab, "hv03", ["sh", "-c", define], input=xml)
    sh(guest_lab, "hv03", "virsh -q start other >/dev/null")
    before = host_facts(guest_lab, "hv03")
    assert hostile in domains(before)
    try:
        path = task(tmp_path, {"move": [hostile, "g2"], "from": "lab"})
        result = apply(guest_lab, "hv03", path)
        assert result["status"] == "confirmed", result
        after = host_facts(guest_lab, "hv03")
        for name in ("other", "g1", "off1"):
            assert interfaces(after)[name] == interfaces(before)[name], name
        (live,) = domains(after)["other"].live
        assert master(after, live.tap) == "virbr-other"
        (live,) = domains(after)["g1"].live
        assert master(after, live.tap) == "virbr-lab"
        (moved,) = domains(after)[hostile].interfaces("config")
        assert (moved.type, moved.source) == ("bridge", "br0")
        (live,) = domains(after)["g2"].live
        assert master(after, live.tap) == "br0"
        # a name that is not there is refused, shown as text
        absent = task(tmp_path, {"move": [f"$(touch {marker})"], "from": "lab"})
        code, doc, err = fleetbr(
            "-i", str(guest_lab.inventory_dir), "-l", "hv03", "plan", str(absent)
        )
        assert code == 1, err
        assert doc["hv03"]["status"] == "refused"
        assert f"no domain named '$(touch {marker})'" in doc["hv03"]["message"]
    finally:
        sh(guest_lab, "hv03", "virsh -q destroy other >/dev/null || :")
    assert sh(guest_lab, "hv03", f"test -e {marker} && echo yes || :").strip() == ""


def test_confirm_fails_when_a_guest_left_the_bridge_and_the_rollback_restores_all(
    guest_lab: Lab, fresh_guest_host: Callable[[str], LabHost], tmp_path: Path
) -> None:
    fresh_guest_host("hv01")
    before = host_facts(guest_lab, "hv01")
    path = task(tmp_path, {"move": "all", "from": "lab"})
    gate = Gate(tmp_path / "barrier")  # held before confirm while g1 is moved back
    controller = subprocess.Popen(
        gate.argv("confirm", "--json", "-i", str(guest_lab.inventory_dir), "-l", "hv01", "apply",
                  str(path)),
        env=gate.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        gate.reached("confirm", timeout=60)
        try:
            wait_for(lambda: "applied" in events(guest_lab, "hv01"), 30, "the apply")
            (g1,) = domains(before)["g1"].live
            back = g1.xml.replace(f' portid="{_portid(g1.xml)}"', "")
            undo = "f=$(mktemp) && cat > $f && virsh -q update-device g1 $f --live >/dev/null"
            host_exec(guest_lab, "hv01", ["sh", "-c", undo], input=back)
        finally:
            gate.release("confirm")
        out, err = controller.communicate(timeout=120)
    finally:
        controller.kill()
    result = json.loads(out)["hv01"]
    assert result["status"] == "rolled_back", (result, err)
    assert "of guest g1 " in result["message"] and "not on br0" in result["message"], result
    after = host_facts(guest_lab, "hv01")
    assert interfaces(after) == interfaces(before)
    for name in ("g1", "g2"):
        (live,) = domains(after)[name].live
        assert master(after, live.tap) == "virbr-lab"


def _portid(xml: str) -> str:
    start = xml.index('portid="') + len('portid="')
    return xml[start : xml.index('"', start)]
