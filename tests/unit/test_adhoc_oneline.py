"""``fleetbr run -o``: every output line prefixed with its host (pdsh style). No SSH."""

from __future__ import annotations

from fleetbr.adhoc.job import host_result
from fleetbr.adhoc.oneline import render_one_line
from fleetbr.report import HostResult, Status
from fleetbr.transport import CommandOutput
from tests.unit.adhoc_results import aggregate, captured, ran


def test_every_line_carries_its_host_and_stream() -> None:
    results = aggregate(
        ran("hv01", b"6.1.0-18\n"),
        ran("hv02", b"one\n\ntwo", b"warn\n", status=3),
        ran("hv03"),
        HostResult("hv04", Status.UNREACHABLE, "connect to 198.51.100.14:22 failed"),
    )
    assert render_one_line(results) == (
        "hv01: 6.1.0-18\n"
        "hv02: one\n"
        "hv02: \n"
        "hv02: two\n"
        "hv02:stderr: warn\n"
        "hv02:fleetbr: failed: exit 3\n"
        "hv04:fleetbr: unreachable: connect to 198.51.100.14:22 failed\n"
    )


def test_nothing_printed_and_all_ok_is_no_line() -> None:
    assert render_one_line(aggregate(ran("hv01"), ran("hv02"))) == ""


def test_truncation_is_said_on_the_hosts_line() -> None:
    cut = CommandOutput(captured(b"x" * 100, limit=10), captured(b""), 0, None)
    text = render_one_line(aggregate(host_result("hv01", cut, 5.0)))
    assert text == (
        "hv01: xxxxxxxxxx\nhv01:fleetbr: [stdout truncated: 10 of 100 bytes kept (--max-output)]\n"
    )


def test_a_host_cannot_print_lines_of_another_host() -> None:
    forged = b"hv02: fine\r\nhv02:fleetbr: ok\x1b[2K\n\x1b]0;title\x07\n"
    text = render_one_line(aggregate(ran("hv01", forged, b"\n\xff\n"), ran("hv02", b"real\n")))
    lines = text.split("\n")[:-1]
    assert lines == [
        "hv01: hv02: fine\\r",
        "hv01: hv02:fleetbr: ok\\x1b[2K",
        "hv01: \\x1b]0;title\\x07",
        "hv01:stderr: ",
        "hv01:stderr: \\xff",
        "hv02: real",
    ]
    assert not any(ch in text for ch in "\r\x1b\x07")


def test_host_names_and_messages_stay_on_one_line() -> None:
    odd = HostResult("hv\n01", Status.FAILED, "host key\nnot trusted\x1b")
    assert (
        render_one_line(aggregate(odd)) == "hv\\n01:fleetbr: failed: host key\\nnot trusted\\x1b\n"
    )
