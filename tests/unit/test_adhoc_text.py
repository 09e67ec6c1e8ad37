"""fleetbr run's pure text helpers: escaping host output, cutting lines, folding host names."""

from __future__ import annotations

import pytest

from fleetbr.adhoc.text import LineSplitter, escape, fold_hosts


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"plain text\n\ttabbed\n", "plain text\n\ttabbed\n"),
        (b"\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),  # clear screen, set title
        (b"over\rwrite", "over\\rwrite"),
        (b"\x00\x08\x7f", "\\x00\\x08\\x7f"),
        ("\u009b31m".encode(), "\\x9b31m"),  # C1 CSI, UTF-8 encoded
        ("abc\u202edcba\u2066".encode(), "abc\\u202edcba\\u2066"),  # bidi overrides
        (b"\xff\xfe bad \xc3", "\\xff\\xfe bad \\xc3"),  # not UTF-8
        ("café 日本 ✓".encode(), "café 日本 ✓"),  # valid UTF-8 stays
        (b"back\\slash [bold]x[/bold]", "back\\slash [bold]x[/bold]"),
    ],
)
def test_escape_leaves_no_terminal_control(raw: bytes, shown: str) -> None:
    assert escape(raw) == shown
    assert all(ch in "\n\t" or ch.isprintable() for ch in escape(raw))


def test_escape_takes_text_too() -> None:
    assert escape("hv\x1b01") == "hv\\x1b01"


def test_line_splitter_joins_chunks_and_keeps_empty_lines() -> None:
    split = LineSplitter()
    assert split.feed(b"one\ntw") == [b"one"]
    assert split.feed(b"o\n\n") == [b"two", b""]
    assert split.feed(b"tail") == []
    assert split.flush() == [b"tail"]
    assert split.flush() == []


def test_line_splitter_cuts_long_lines_without_holding_them() -> None:
    split = LineSplitter(max_line=4)
    assert split.feed(b"abcdefghij") == [b"abcd", b"efgh"]
    assert split.feed(b"k\nxy") == [b"ijk"]
    assert split.feed(b"abcdefghijkl\n") == [b"xyab", b"cdef", b"ghij", b"kl"]
    assert split.flush() == []


@pytest.mark.parametrize(
    ("names", "folded"),
    [
        (["hv01", "hv02", "hv03", "hv05"], "hv[01-03,05]"),
        (["hv05", "hv01", "hv02"], "hv[01-02,05]"),
        (["hv01"], "hv01"),
        (["hv9", "hv10", "hv11"], "hv[9-11]"),
        (["hv09", "hv10", "hv100"], "hv[09-10,100]"),
        (["hv1", "hv01"], "hv[1,01]"),
        (["rack1-hv03", "rack1-hv04", "rack2-hv03"], "rack1-hv[03-04],rack2-hv03"),
        (["db1.lan", "db2.lan", "web"], "db[1-2].lan,web"),
        (["gw", "hv01", "gw", "hv01"], "gw,hv01"),
        ([], ""),
    ],
)
def test_fold_hosts(names: list[str], folded: str) -> None:
    assert fold_hosts(names) == folded
