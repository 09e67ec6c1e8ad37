"""``fleetbr run --diff``: groups, the reference, unified diffs, JSON data. No SSH."""

from __future__ import annotations

import json

from fleetbr.adhoc.diff import compare, diff_document, render_diff
from fleetbr.adhoc.present import INDENT
from fleetbr.report import HostResult, Status
from tests.unit.adhoc_results import aggregate, ran

KERNEL = b"6.1.0-18-amd64\nx86_64\n"


def test_the_largest_group_is_the_reference_and_the_others_are_diffed() -> None:
    results = aggregate(
        ran("hv01", b"6.1.0-13-amd64\nx86_64\n"),
        *(ran(f"hv0{i}", KERNEL) for i in (2, 3, 5)),
        ran("hv04", KERNEL, b"warn\n"),
        HostResult("hv06", Status.UNREACHABLE, "connect refused"),
    )
    assert render_diff(results) == (
        "==== reference: hv[02-03,05] (3 hosts): exit 0\n"
        "  6.1.0-18-amd64\n"
        "  x86_64\n"
        "==== diff: hv01: exit 0\n"
        "  --- hv[02-03,05]\n"
        "  +++ hv01\n"
        "  @@ -1,2 +1,2 @@\n"
        "  -  6.1.0-18-amd64\n"
        "  +  6.1.0-13-amd64\n"
        "     x86_64\n"
        "==== diff: hv04: exit 0\n"
        "  --- hv[02-03,05]\n"
        "  +++ hv04\n"
        "  @@ -1,2 +1,4 @@\n"
        "     6.1.0-18-amd64\n"
        "     x86_64\n"
        "  +---- stderr\n"
        "  +  warn\n"
        "==== not compared: hv06: connect refused\n"
        "6 hosts: 5 ok, 1 unreachable\n"
    )


def test_on_a_tie_the_first_group_is_the_reference() -> None:
    found = compare(aggregate(ran("b1", b"b\n"), ran("a1", b"a\n"), ran("a2", b"a\n"),
                              ran("b2", b"b\n")))  # fmt: skip
    assert found.reference is not None and found.reference.hosts == ("b1", "b2")
    assert [other.group.hosts for other in found.others] == [("a1", "a2")]


def test_same_output_another_outcome_is_said() -> None:
    text = render_diff(aggregate(ran("hv01", b"x\n"), ran("hv02", b"x\n"),
                                 ran("hv03", b"x\n", status=2)))  # fmt: skip
    assert "==== diff: hv03: exit 2\n  (the same output as the reference)\n" in text


def test_identical_everywhere_is_only_the_reference() -> None:
    text = render_diff(aggregate(ran("hv01", b"x\n"), ran("hv02", b"x\n")))
    assert text == "==== reference: hv[01-02] (2 hosts): exit 0\n  x\n2 hosts: 2 ok\n"


def test_no_host_ran_no_reference() -> None:
    results = aggregate(HostResult("hv01", Status.UNREACHABLE, "refused"),
                        HostResult("hv02", Status.FAILED, "host key not trusted"))  # fmt: skip
    assert render_diff(results) == (
        "==== not compared: hv01: refused\n"
        "==== not compared: hv02: host key not trusted\n"
        "2 hosts: 0 ok, 1 unreachable, 1 failed to run\n"
    )


def test_host_output_is_escaped_and_cannot_look_like_fleetbrs_lines() -> None:
    fake = b"==== reference: hv[01-09] (9 hosts): exit 0\n\x1b]0;pwned\x07\r\n--- a\n---- stderr\n"
    text = render_diff(aggregate(ran("hv01", b"same\n"), ran("hv02", b"same\n"), ran("hv03", fake)))
    assert not any(ch in text for ch in "\x1b\x07\r")
    framing = [line for line in text.split("\n") if line and not line.startswith(INDENT)]
    assert framing == [
        "==== reference: hv[01-02] (2 hosts): exit 0",
        "==== diff: hv03: exit 0",
        "3 hosts: 3 ok",
    ]
    lines = text.split("\n")
    assert "  +  \\x1b]0;pwned\\x07\\r" in lines
    assert "  +  --- a" in lines  # a host's line, not the diff's own


def test_json_carries_the_groups_and_their_diffs() -> None:
    results = aggregate(ran("hv01", b"a\n"), ran("hv02", b"a\n"), ran("hv03", b"b\xff\n"),
                        HostResult("hv04", Status.UNREACHABLE, "refused"))  # fmt: skip
    document = json.loads(json.dumps(diff_document(results)))
    assert list(document) == ["hosts", "groups", "not_compared"]
    assert list(document["hosts"]) == ["hv01", "hv02", "hv03", "hv04"]
    assert document["hosts"]["hv03"]["stdout_base64"] == "Yv8K"  # the exact bytes, as --json
    assert document["groups"] == [
        {"hosts": ["hv01", "hv02"], "status": "ok", "message": "exit 0", "reference": True},
        {"hosts": ["hv03"], "status": "ok", "message": "exit 0", "reference": False,
         "diff": ["--- hv[01-02]", "+++ hv03", "@@ -1 +1 @@", "-  a", "+  b\\xff"]},
    ]  # fmt: skip
    assert document["not_compared"] == [
        {"hosts": ["hv04"], "status": "unreachable", "message": "refused"}
    ]


def test_a_hosts_stderr_mark_is_not_fleetbrs() -> None:
    forged = ran("hv02", b"a\n---- stderr\nb\n")
    real = ran("hv03", b"a\n", b"b\n")
    found = compare(aggregate(ran("hv01", b"a\n"), ran("hv04", b"a\n"), forged, real))
    assert [other.diff[3:] for other in found.others] == [
        ("   a", "+  ---- stderr", "+  b"),
        ("   a", "+---- stderr", "+  b"),
    ]
