"""A command that ends before its input is sent (``sudo`` refusing at once, under load) is no
lost session: the input is dropped, the output and exit status are still read."""

from __future__ import annotations

from typing import Any, cast

import pytest

from fleetbr.transport import ssh


class ClosedStdin:
    """The writer of a channel the remote side already closed (asyncssh raises so)."""

    def __init__(self, error: type[OSError], text: str = "Channel not open for sending") -> None:
        self.error, self.text = error, text
        self.calls: list[str] = []

    def write(self, data: bytes) -> None:
        self.calls.append("write")
        raise self.error(self.text)

    def write_eof(self) -> None:
        self.calls.append("write_eof")
        raise self.error(self.text)


class OpenStdin:
    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def write_eof(self) -> None:
        self.sent.append(None)


class Process:
    def __init__(self, stdin: Any) -> None:
        self.stdin = stdin


@pytest.mark.parametrize("error", [BrokenPipeError, ConnectionResetError])
def test_input_to_a_command_that_already_ended_is_dropped_without_error(
    error: type[OSError],
) -> None:
    stdin = ClosedStdin(error)
    ssh._send_input(cast(Any, Process(stdin)), b"script\n")
    assert stdin.calls == ["write"]


def test_input_is_sent_then_ended_and_no_input_still_ends_it() -> None:
    stdin = OpenStdin()
    ssh._send_input(cast(Any, Process(stdin)), b"script\n")
    assert stdin.sent == [b"script\n", None]
    empty = OpenStdin()
    ssh._send_input(cast(Any, Process(empty)), b"")
    assert empty.sent == [None]


def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(OSError, match="Invalid"):
        ssh._send_input(cast(Any, Process(ClosedStdin(OSError, "Invalid datatype"))), b"x")
