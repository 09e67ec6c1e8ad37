"""The bridge's record (fleetbr.plan.desired): written by the apply that makes the bridge, read
back by the real facts script, and standing in for ``addresses: move`` and null gateways."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from fleetbr.errors import ValidationError
from fleetbr.facts.model import PIN_DIR, Address, Route
from fleetbr.facts.parse import parse_facts
from fleetbr.facts.script import facts_script
from fleetbr.plan import plan_host
from fleetbr.plan.desired import parse_pin, pin_path, pin_text, read_pin
from fleetbr.plan.netfilter import sha256
from tests.unit.test_plan_support import GW4, V4, V6, bridged, facts, task, with_record

RECORDED = bridged(facts())
PATH = pin_path("br0")


def pins_of(directory: Path) -> tuple[dict[str, str], dict[str, str | None]]:
    """Run the real facts script with ``directory`` as the record dir; (texts, file hashes)."""
    script = facts_script(
        managed_files=[], state_dir=str(directory / "state"), pin_dir=str(directory)
    )
    done = subprocess.run(
        ["sh", "-s"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    parsed = parse_facts(done.stdout)
    return parsed.pins, parsed.managed_files


def test_the_facts_script_reports_records_whole_whatever_they_hold(tmp_path: Path) -> None:
    good = RECORDED.pins[PATH]
    (tmp_path / "br0.json").write_text(good)
    hostile = "x\n@@fleetbr-end\n@@fleetbr-section meta\n\r\x1b[31m\n"
    (tmp_path / "evil.json").write_text(hostile)
    (tmp_path / "br 1.json").write_text("skipped: not a name fleetbr writes")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "not-a-record.txt").write_text("ignored")
    texts, hashes = pins_of(tmp_path)
    assert texts == {PATH: good, f"{PIN_DIR}/evil.json": hostile}
    assert hashes[PATH] == sha256(good)
    assert hashes[f"{PIN_DIR}/evil.json"] == sha256(hostile)
    assert hashes[f"{PIN_DIR}/empty.json"] == sha256("")  # no text, but its checksum
    assert set(hashes) == {PATH, f"{PIN_DIR}/evil.json", f"{PIN_DIR}/empty.json"}


def test_no_record_dir_is_no_records(tmp_path: Path) -> None:
    assert pins_of(tmp_path / "missing") == ({}, {})


def test_a_record_round_trips_and_is_canonical() -> None:
    pin = read_pin(RECORDED, "br0", "eth0")
    assert pin is not None
    assert pin.cidrs == [V4, V6]
    assert [r.gateway for r in pin.routes if r.is_default] == [GW4, "2001:db8:100::1"]
    assert pin_text(pin) == RECORDED.pins[PATH]
    assert pin_text(parse_pin(pin_text(pin))) == pin_text(pin)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: "not json",
        lambda d: json.dumps({**d, "version": 2}),
        lambda d: json.dumps({**d, "bridge": "br0;reboot"}),
        lambda d: json.dumps({**d, "addresses": [{"cidr": "$(reboot)/24"}]}),
        lambda d: json.dumps({**d, "routes": [{**d["routes"][0], "metric": "1"}]}),
        lambda d: json.dumps({**d, "routes": [{**d["routes"][0], "dev": "eth9"}]}),
        lambda d: json.dumps({**d, "routes": [{**d["routes"][0], "table": "1 2"}]}),
        lambda d: json.dumps({**d, "routes": [{**d["routes"][0], "extra": 1}]}),
        lambda d: json.dumps({**d, "routes": [{**d["routes"][0], "onlink": 1}]}),
    ],
)
def test_a_damaged_record_is_refused(mangle: object) -> None:
    doc = json.loads(RECORDED.pins[PATH])
    with pytest.raises(ValidationError):
        parse_pin(mangle(doc))  # type: ignore[operator]


def test_a_record_counts_only_for_its_bridge_and_nic_while_the_bridge_exists() -> None:
    assert read_pin(RECORDED, "br0", "eth1") is None
    assert read_pin(dataclasses.replace(RECORDED, bridges=()), "br0", "eth0") is None
    damaged = dataclasses.replace(
        RECORDED, pins={PATH: "{"}, managed_files={**RECORDED.managed_files, PATH: sha256("{")}
    )
    assert read_pin(damaged, "br0", "eth0") is None
    plan = plan_host(task(), damaged, min_timeout=20)
    assert [s.kind for s in plan.steps] == ["file_write"]  # rewritten, nothing else
    assert plan.steps[0].args["content"] == RECORDED.pins[PATH]


def test_a_host_bridged_without_a_record_gets_only_the_record() -> None:
    bare = dataclasses.replace(
        RECORDED, pins={}, managed_files={k: v for k, v in RECORDED.managed_files.items()
                                          if k != PATH},
    )  # fmt: skip
    plan = plan_host(task(), bare, min_timeout=20)
    assert [(s.kind, s.args["path"]) for s in plan.steps] == [("file_write", PATH)]
    assert [d.field for d in plan.differences] == [f"file.{PATH}"]
    assert plan.steps[0].args["content"] == RECORDED.pins[PATH]


def test_the_first_apply_records_what_move_resolved_to() -> None:
    plan = plan_host(task(), facts(), min_timeout=20)
    write = next(s for s in plan.steps if s.args.get("path") == PATH)
    pin = parse_pin(str(write.args["content"]))
    assert pin.cidrs == [V4, V6]
    assert {(r.family, r.gateway) for r in pin.routes} == {(4, GW4), (6, "2001:db8:100::1")}
    assert all(r.dev == "br0" for r in pin.routes)
    assert plan.expected.files[PATH] == sha256(str(write.args["content"]))


def test_a_lost_address_comes_back_with_its_recorded_label_and_broadcast() -> None:
    labelled = Address("br0", 4, "198.51.100.20/24", "global", broadcast="198.51.100.255",
                       label="br0:svc", secondary=True)  # fmt: skip
    with_svc = dataclasses.replace(RECORDED, addresses=(*RECORDED.addresses, labelled))
    recorded = with_record(with_svc)
    lost = dataclasses.replace(
        recorded, addresses=tuple(a for a in recorded.addresses if a != labelled)
    )
    plan = plan_host(task(), lost, min_timeout=20)
    assert [s.kind for s in plan.steps] == ["addr_add"]
    args = plan.steps[0].args
    assert (args["cidr"], args["label"], args["broadcast"]) == (
        "198.51.100.20/24",
        "br0:svc",
        "198.51.100.255",
    )


def test_an_explicit_gateway_still_wins_over_the_record() -> None:
    stray = Route(4, "default", "br0", "198.51.100.254", 50, "static")
    drifted = dataclasses.replace(RECORDED, routes=(*RECORDED.routes, stray))
    plan = plan_host(task("bridge: {nic: eth0, gateway4: 198.51.100.254}"), drifted,
                     min_timeout=20)  # fmt: skip
    kinds = [(s.kind, s.args.get("gateway"), s.args.get("metric")) for s in plan.steps]
    assert ("route_del", GW4, None) in kinds  # the recorded one goes: the task names another
    assert ("route_del", "198.51.100.254", 50) not in kinds
