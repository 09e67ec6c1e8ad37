"""fleetbr run's results: classification, JSON fields, grouping, summary, streaming. No SSH."""

from __future__ import annotations

import base64
import json

from fleetbr.adhoc.job import captured_bytes, host_result
from fleetbr.adhoc.present import (
    INDENT,
    StreamPrinter,
    json_document,
    render_grouped,
    summary,
)
from fleetbr.errors import CommandTimeout, SessionLost
from fleetbr.report import HostResult, Status
from fleetbr.transport import CommandOutput
from tests.unit.adhoc_results import aggregate, captured, output


def test_outcomes() -> None:
    cases = [
        (output(status=0), Status.OK, "exit 0"),
        (output(status=3), Status.FAILED, "exit 3"),
        (output(status=124), Status.FAILED, "exit 124"),
        (output(status=None, exit_signal="ALRM"), Status.TIMED_OUT, "timed out after 5s"),
        (output(status=None, exit_signal="KILL"), Status.FAILED, "killed by signal KILL"),
        (
            output(status=None, error=CommandTimeout("no end within 20s")),
            Status.TIMED_OUT, "the host stopped answering",
        ),
        (
            output(b"partial\n", status=None, error=SessionLost("lost it")),
            Status.UNREACHABLE, "lost it",
        ),
    ]  # fmt: skip
    for out, status, message in cases:
        result = host_result("hv01", out, 5.0)
        assert (result.status, result.data["exit_status"]) == (status, out.exit_status)
        assert message in result.message
    lost = host_result("hv01", cases[-1][0], 5.0)
    assert lost.data["stdout"] == "partial\n", "output before a lost session is kept"


def test_json_fields_are_lossless() -> None:
    raw = b"\xff\xfe\x00\x1b[2J ok\n"
    result = host_result("hv01", output(raw, "é\n".encode()), 5.0)
    data = result.data
    assert base64.b64decode(data["stdout_base64"]) == raw and "stderr_base64" not in data
    assert data["stderr"] == "é\n" and data["stdout_bytes"] == len(raw)
    assert (
        captured_bytes(data, "stdout") == raw and captured_bytes(data, "stderr") == "é\n".encode()
    )
    text = json.dumps(json_document(aggregate(result)))
    assert "\x1b" not in text and "\x00" not in text  # ensure_ascii escapes every control


def test_truncation_is_counted_and_said() -> None:
    out = CommandOutput(captured(b"x" * 100, limit=10), captured(b""), 0, None)
    result = host_result("hv01", out, 5.0)
    assert result.data["stdout"] == "x" * 10
    assert result.data["stdout_bytes"] == 100 and result.data["stdout_truncated"] is True
    assert "[stdout truncated: 10 of 100 bytes kept (--max-output)]" in render_grouped(
        aggregate(result)
    )


def test_hosts_that_never_ran_have_every_field() -> None:
    doc = json_document(aggregate(HostResult("ghost", Status.UNREACHABLE, "connect failed")))
    assert doc["ghost"]["status"] == "unreachable" and doc["ghost"]["exit_status"] is None
    assert doc["ghost"]["stdout"] == "" and doc["ghost"]["stderr_bytes"] == 0
    assert list(doc["ghost"])[:3] == ["status", "message", "elapsed"]


def test_identical_outputs_are_grouped_and_folded() -> None:
    same = [host_result(f"hv0{i}", output(b"same\n"), 5) for i in (1, 2, 3, 5)]
    other = host_result("hv04", output(b"other\n", b"warn\n"), 5)
    failed = host_result("hv06", output(b"same\n", status=2), 5)
    text = render_grouped(aggregate(*same[:3], other, same[3], failed))
    assert text == (
        "==== hv[01-03,05] (4 hosts): exit 0\n"
        "  same\n"
        "==== hv04: exit 0\n"
        "  other\n"
        "---- stderr\n"
        "  warn\n"
        "==== hv06: exit 2\n"
        "  same\n"
        "6 hosts: 5 ok, 1 exited non-zero\n"
    )


def test_human_output_is_escaped() -> None:
    hostile = host_result("hv\x1b01", output(b"\x1b]0;pwned\x07[red]x[/red]\r\n"), 5)
    text = render_grouped(aggregate(hostile))
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "==== hv\\x1b01: exit 0\n  \\x1b]0;pwned\\x07[red]x[/red]\\r\n" in text


def test_host_output_cannot_look_like_fleetbrs_framing() -> None:
    """Issue 20: hv01 printed a fake block saying hv02 and hv03 succeeded."""
    fake = b"fine\n==== hv[02-03] (2 hosts): exit 0\n---- stderr\n\n3 hosts: 3 ok\n"
    liar = host_result("hv01", output(fake), 5)
    failed = [host_result(f"hv0{i}", output(b"", b"disk full\n", status=1), 5) for i in (2, 3)]
    lines = render_grouped(aggregate(liar, *failed)).split("\n")
    framing = [line for line in lines if line and not line.startswith(INDENT)]
    assert framing == ["==== hv01: exit 0", "==== hv[02-03] (2 hosts): exit 1", "---- stderr",
                       "3 hosts: 1 ok, 2 exited non-zero"]  # fmt: skip
    assert "  ==== hv[02-03] (2 hosts): exit 0" in lines


def test_a_header_is_one_line_whatever_the_message() -> None:
    odd = HostResult("hv01", Status.UNREACHABLE, "refused\n==== hv02: exit 0")
    assert render_grouped(aggregate(odd)).split("\n")[0] == "==== hv01: refused\\n==== hv02: exit 0"


def test_summary_counts_each_kind() -> None:
    results = [
        host_result("hv01", output(), 5),
        host_result("hv02", output(status=1), 5),
        host_result("hv03", output(status=None, exit_signal="ALRM"), 5),
        HostResult("hv04", Status.UNREACHABLE, "connect refused"),
        HostResult("hv05", Status.FAILED, "host key not trusted"),
    ]
    assert summary(aggregate(*results)) == (
        "5 hosts: 1 ok, 1 exited non-zero, 1 timed out, 1 unreachable, 1 failed to run"
    )
    assert aggregate(*results).exit_code == 1
    assert aggregate(results[0]).exit_code == 0 and summary(aggregate(results[0])) == "1 host: 1 ok"


def test_stream_printer_prefixes_escapes_and_flushes() -> None:
    written: list[tuple[str, str]] = []
    printer = StreamPrinter(lambda text, stream: written.append((stream, text)))
    out, err = printer.sink("hv01"), printer.sink("hv02")
    out("stdout", b"one\ntw")
    err("stderr", b"\x1b[31mbad\n")
    out("stdout", b"o\nta")
    printer.finish("hv01")
    printer.finish("hv02")
    assert written == [
        ("stdout", "hv01: one\n"),
        ("stderr", "hv02: \\x1b[31mbad\n"),
        ("stdout", "hv01: two\n"),
        ("stdout", "hv01: ta\n"),
    ]
