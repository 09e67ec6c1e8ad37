"""Owner, group, mode and symlink of config files (fleetbr.facts.filemeta): parsed from the facts,
expected by a plan that writes a backend's files, compared by confirm and by the restore check
(issue 20, item 2; issue 14, item 8)."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from fleetbr.errors import FactsError
from fleetbr.facts.filemeta import FileMeta, kept_note, parse_file_meta, parse_kept
from fleetbr.facts.model import HostFacts
from fleetbr.facts.parse import parse_facts
from fleetbr.plan import plan_host, restore_check, touched_by, verify_applied
from fleetbr.plan.diff import compare
from fleetbr.transaction.scripts import staged_scripts
from tests.unit.test_backends_plan import facts as distro_facts
from tests.unit.test_backends_plan import persist
from tests.unit.test_facts_parse import raw
from tests.unit.test_plan_support import task

IFACES = "/etc/network/interfaces"
NM_DIR = "/etc/NetworkManager/system-connections"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_meta_and_symlink_lines_are_parsed() -> None:
    lines = [
        f"symlink {_b64('../../srv/net/interfaces')} {IFACES}",
        f"meta 640 0 110 {IFACES}",
        "meta 600 0 0 /etc/netplan/01 my net.yaml",
    ]
    assert parse_file_meta(lines) == {
        IFACES: FileMeta(0o640, 0, 110, "../../srv/net/interfaces"),
        "/etc/netplan/01 my net.yaml": FileMeta(0o600, 0, 0),
    }
    assert FileMeta(0o640, 0, 110, "x").describe() == "symlink to x, mode 0640 owner 0:110"


@pytest.mark.parametrize("line", ["meta 999 0 0 /etc/x", "meta 644 root 0 /etc/x", "junk"])
def test_a_malformed_line_is_an_error(line: str) -> None:
    with pytest.raises(FactsError, match="file_meta"):
        parse_file_meta([line])


def test_facts_of_an_older_script_report_no_metadata() -> None:
    assert parse_facts(raw("distro_ifupdown")).file_meta is None


def with_meta(facts: HostFacts, interfaces: FileMeta | None = None) -> HostFacts:
    """``facts`` reporting metadata, ``interfaces`` that of /etc/network/interfaces."""
    meta = {} if interfaces is None else {IFACES: interfaces}
    return dataclasses.replace(facts, file_meta={**(facts.file_meta or {}), **meta})


def _meta_problems(problems: list[str]) -> list[str]:
    return [p for p in problems if p.startswith(IFACES + ":")]


def test_confirm_expects_a_rewritten_file_to_keep_its_owner_and_mode() -> None:
    before = with_meta(distro_facts("ifupdown"), interfaces=FileMeta(0o600, 0, 4))
    plan = plan_host(task(persist("ifupdown")), before, min_timeout=10)
    assert plan.expected.file_meta[IFACES] == FileMeta(0o600, 0, 4)
    assert _meta_problems(verify_applied(plan, before)) == []
    leaked = with_meta(before, interfaces=FileMeta(0o644, 0, 0))
    assert _meta_problems(verify_applied(plan, leaked)) == [
        f"{IFACES}: mode 0644 owner 0:0, expected mode 0600 owner 0:4"
    ]


def test_a_file_meta_difference_holds_both_sides_for_reports() -> None:
    before = with_meta(distro_facts("ifupdown"), interfaces=FileMeta(0o600, 0, 4))
    plan = plan_host(task(persist("ifupdown")), before, min_timeout=10)
    leaked = with_meta(before, interfaces=FileMeta(0o644, 0, 0))
    [found] = [d for d in compare(plan.expected, leaked) if d.field.startswith("file_meta.")]
    assert (found.field, found.want, found.have) == (
        f"file_meta.{IFACES}",
        "mode 0600 owner 0:4",
        "mode 0644 owner 0:0",
    )


def test_confirm_expects_new_keyfiles_private() -> None:
    before = with_meta(distro_facts("networkmanager"))
    plan = plan_host(task(persist("networkmanager")), before, min_timeout=10)
    assert plan.expected.file_meta[f"{NM_DIR}/br0.nmconnection"] == FileMeta(0o600)


def test_restore_check_compares_owner_mode_and_symlink_of_touched_files() -> None:
    base = distro_facts("ifupdown")
    plan = plan_host(task(persist("ifupdown")), base, min_timeout=10)
    before = with_meta(base, interfaces=FileMeta(0o600, 0, 4, "/srv/if"))
    cases = {
        "mode": FileMeta(0o644, 0, 4, "/srv/if"),
        "group": FileMeta(0o600, 0, 0, "/srv/if"),
        "link": FileMeta(0o600, 0, 4, None),
    }
    for what, meta in cases.items():
        after = with_meta(base, interfaces=meta)
        check = restore_check(before, after, touched_by(plan))
        assert any(IFACES in p for p in check.problems), (what, check)
    same = restore_check(before, before, touched_by(plan))
    assert same.problems == [] and same.unrelated == []


def test_restore_check_skips_metadata_a_snapshot_does_not_have() -> None:
    base = distro_facts("ifupdown")
    plan = plan_host(task(persist("ifupdown")), base, min_timeout=10)
    after = with_meta(base, interfaces=FileMeta(0o644, 0, 0))
    assert restore_check(base, after, touched_by(plan)).problems == []


def test_kept_edits_are_parsed_and_named_in_a_note() -> None:
    kept = parse_kept(["kept 20260101T000000-ab %etc%network%interfaces", "kept T2 %etc%x.yaml"])
    assert kept == {"20260101T000000-ab": ("/etc/network/interfaces",), "T2": ("/etc/x.yaml",)}
    note = kept_note(kept, "T2", "/var/lib/fleetbr")
    assert note == (
        "; kept what someone else wrote to /etc/x.yaml during the window "
        "(in /var/lib/fleetbr/kept/T2/) before restoring"
    )
    assert kept_note(kept, "T3", "/var/lib/fleetbr") == ""
    with pytest.raises(FactsError, match="section kept"):
        parse_kept(["kept T2 etc-x"])


@pytest.mark.parametrize("backend", ["ifupdown", "networkd", "netplan", "networkmanager"])
def test_every_backends_staged_scripts_render(backend: str) -> None:
    """Every restore renders, a guarded file's (no ``expect``: its tool rewrites it) too."""
    plan = plan_host(task(persist(backend)), distro_facts(backend), min_timeout=10)
    files = staged_scripts("20260101T000000-abcdef", plan).files
    assert "FLEETBR_KEPT_DIR" in files["rollback.sh"] and "FLEETBR_KEPT_DIR" in files["boot.sh"]
