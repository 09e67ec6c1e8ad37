"""``run --deadman`` option checks (no SSH): bad combinations are usage errors."""

from __future__ import annotations

import argparse

import pytest

from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.cli_request import command_change
from fleetbr.errors import UsageError


def args(**changes: object) -> argparse.Namespace:
    base = {"deadman": 30, "undo": "ip link set eth0 mtu 1500", "confirm_check": None,
            "stream": False, "timeout": None}  # fmt: skip
    return argparse.Namespace(**{**base, **changes})


RUN = RunSpec.from_argv(["ip", "link", "set", "eth0", "mtu", "9000"], RunOptions())


def test_a_valid_change() -> None:
    change = command_change(args(confirm_check="ping -c1 203.0.113.1"), RUN)
    assert change.command == "ip link set eth0 mtu 9000\n" and change.timeout == 30
    assert set(change.staged_files()) == {"command.sh", "undo.sh", "check.sh"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"undo": None}, "--undo"),
        ({"undo": "  "}, "--undo"),
        ({"deadman": None}, "--deadman"),
        ({"stream": True}, "--stream"),
        ({"timeout": 5.0}, "--timeout"),
        ({"confirm_check": " "}, "--confirm-check"),
        ({"undo": "a\0b"}, "NUL"),
    ],
)
def test_bad_combinations(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        command_change(args(**changes), RUN)


def test_command_must_be_text() -> None:
    binary = RunSpec(b"\xff\xfe\n", "x")
    with pytest.raises(UsageError, match="UTF-8"):
        command_change(args(), binary)
