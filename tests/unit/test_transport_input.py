"""A command that ends before its input is sent (``sudo`` refusing at once, under load) is no
lost session: the input is dropped, the output and exit status are still read."""

from __future__ import annotations

import asyncio
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
    asyncio.run(ssh._send_input(cast(Any, Process(stdin)), b"script\n"))
    assert stdin.calls == ["write"]


def test_input_is_sent_then_ended_and_no_input_still_ends_it() -> None:
    stdin = OpenStdin()
    asyncio.run(ssh._send_input(cast(Any, Process(stdin)), b"script\n"))
    assert stdin.sent == [b"script\n", None]
    empty = OpenStdin()
    asyncio.run(ssh._send_input(cast(Any, Process(empty)), b""))
    assert empty.sent == [None]


def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(OSError, match="Invalid"):
        asyncio.run(
            ssh._send_input(cast(Any, Process(ClosedStdin(OSError, "Invalid datatype"))), b"x")
        )


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_a_script_cut_while_it_arrives_runs_none_of_it(shell: str, tmp_path: Any) -> None:
    """``sh -s`` runs its script as it reads it: a session cut mid-script (the controller gave up
    on a slow stage bigger than the pipe) ran its first part and could run a cut last line.
    Sent whole, it runs all of it or, cut anywhere, none of it."""
    import shutil
    import subprocess

    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    marks = tmp_path / "marks"
    script = (
        f"echo first >> {marks}\n"
        + "".join(f": padding line {n}\n" for n in range(5000))  # beyond a 64 KiB pipe
        + f"cat >> {marks} <<'EOF'\nheredoc\nEOF\necho last >> {marks}\nexit 3\n"
    )
    text = ssh.whole(script)
    done = subprocess.run([shell, "-s"], input=text, capture_output=True, text=True)
    assert done.returncode == 3 and marks.read_text() == "first\nheredoc\nlast\n"
    marks.unlink()
    for cut in (len(text) // 3, len(text) - 30, len(text) - 2):  # mid-padding, mid-line, no }
        done = subprocess.run([shell, "-s"], input=text[:cut], capture_output=True, text=True)
        assert done.returncode != 0 and not marks.exists(), (cut, done.stderr)
