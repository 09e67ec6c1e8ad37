"""What the CLI prints: plain single-line errors, width- and colour-independent tables off a
terminal, values never read as markup, no traceback when the reader of stdout goes away."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbr import output
from fleetbr.cli import OneLineFormatter
from fleetbr.output import render_results
from fleetbr.report import AggregatedResult, HostResult, Status

HOSTILE_NAMES = ["rack[/]4", "[fe80::1]", "x[bold red]y", "[link=http://x]h[/link]"]
NARROW = {"COLUMNS": "20", "FORCE_COLOR": "1", "TERM": "xterm-256color"}


def fleetbr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetbr", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip


def long_inventory(tmp_path: Path, hosts: str) -> Path:
    inventory = tmp_path / "a-rather-long-directory-name-for-the-inventory" / "site-one"
    inventory.mkdir(parents=True)
    (inventory / "hosts.yaml").write_text(hosts)
    return inventory


def test_an_error_is_one_plain_line_at_any_width_and_colour(tmp_path: Path) -> None:
    """Before: rich wrapped it at COLUMNS (mid-token, inside the path) and added colour codes."""
    inventory = long_inventory(tmp_path, "hypervisor-0001: {groups: []}\n")
    done = fleetbr("-i", str(inventory), "facts", env=NARROW)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"error: {inventory}/hosts.yaml: host hypervisor-0001: no hostname\n"


def test_task_errors_quote_values_verbatim(tmp_path: Path) -> None:
    """Before: `x[/]` raised a MarkupError traceback (exit 1), `x[bold red]y` was shown as `xy`."""
    inventory = long_inventory(tmp_path, "hv01: {hostname: 198.51.100.10}\n")
    for nic in ("x[/]", "x[bold red]y"):
        task = tmp_path / "task.yaml"
        task.write_text(f'bridge: {{nic: "{nic}"}}\n')
        done = fleetbr("-i", str(inventory), "plan", str(task), env=NARROW)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"error: {task}: host hv01: bridge.nic: interface name '{nic}' may only contain "
            "letters, digits, '_', '-' and '.'\n"
        )


def test_inventory_listing_shows_hostile_names_verbatim(tmp_path: Path) -> None:
    """Before: `rack[/]4` crashed `fleetbr inventory`; `[fe80::1]` was shown blank."""
    hosts = "".join(
        f'"{name}": {{hostname: 198.51.100.{i + 10}}}\n' for i, name in enumerate(HOSTILE_NAMES)
    )
    done = fleetbr("-i", str(long_inventory(tmp_path, hosts)), "inventory", env=NARROW)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [*HOSTILE_NAMES, "4 hosts"]
    assert "\x1b" not in done.stdout


def results(messages: dict[str, str]) -> AggregatedResult:
    aggregated = AggregatedResult("apply")
    for i, (host, message) in enumerate(messages.items()):
        aggregated.add(HostResult(host, Status.CONFIRMED if i else Status.ROLLED_BACK, message,
                                  elapsed=12.25))  # fmt: skip
    return aggregated


LONG = "bridge br0 up on enp129s0f1np1, 198.51.100.10/24 and 2001:db8::10/64 moved [bold]x[/]"


def test_results_off_a_terminal_are_one_line_per_host_at_any_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: rich folded host names and details at COLUMNS, and read them as markup."""
    for name, value in NARROW.items():
        monkeypatch.setenv(name, value)
    names = ["hypervisor-with-a-long-name-0001.rack-17.example.org", *HOSTILE_NAMES]
    render_results(results(dict.fromkeys(names, LONG)), as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["host", "status", "time", "detail"]
    assert lines[-1] == "5 hosts: 4 confirmed, 1 rolled_back"
    assert len(lines) == 2 + len(names)
    for line, name in zip(lines[1:-1], names, strict=True):
        assert line.startswith(name + " ") and line.endswith(f"  12.2s  {LONG}")
    assert lines[1].split()[1] == "rolled_back"


def test_control_characters_in_values_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    render_results(results({"hv\n01": "one\ntwo \x1b[31mred"}), as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["hv\\n01", "rolled_back", "12.2s", "one\\ntwo", "\\x1b[31mred"]


def test_on_a_terminal_the_table_shows_hostile_names_verbatim(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "is_terminal", lambda stream: stream is sys.stdout)
    monkeypatch.setenv("COLUMNS", "200")
    render_results(results(dict.fromkeys(HOSTILE_NAMES, "[/]detail")), as_json=False)
    out = capsys.readouterr().out
    for name in HOSTILE_NAMES:
        assert f" {name} " in out
    assert out.count("[/]detail") == len(HOSTILE_NAMES)


def test_a_failing_table_falls_back_to_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("rendering bug")

    monkeypatch.setattr(output, "is_terminal", lambda stream: stream is sys.stdout)
    monkeypatch.setattr(output, "results_table", broken)
    render_results(results({"hv01": "rolled back", "hv02": "ok"}), as_json=False)
    captured = capsys.readouterr()
    assert [line.split()[:2] for line in captured.out.splitlines()[1:3]] == [
        ["hv01", "rolled_back"], ["hv02", "confirmed"]
    ]  # fmt: skip
    assert captured.err.startswith("warning: could not draw the results table (RuntimeError)")
    assert captured.err.count("\n") == 1


STEPS = ("create bridge br0", "make eth0 a port of br0", "move 198.51.100.10/24 to br0")


def planned() -> AggregatedResult:
    aggregated = AggregatedResult("plan")
    aggregated.add(HostResult("hv01", Status.PLANNED, "\n".join(STEPS), lines=STEPS))
    aggregated.add(HostResult("hv02-long", Status.UNCHANGED, "already matches the task"))
    return aggregated


def test_plan_steps_are_one_per_line_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `create bridge br0\\nmake eth0 ...` on one line (issue 15, defect 6)."""
    render_results(planned(), as_json=False)
    header, first, second, third, other, _ = capsys.readouterr().out.splitlines()
    column = header.index("detail")
    assert first.startswith("hv01 ") and first[column:] == STEPS[0]
    assert [second, third] == [" " * column + step for step in STEPS[1:]]
    assert other.startswith("hv02-long ") and other[column:] == "already matches the task"


def test_plan_steps_are_one_per_line_in_the_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(output, "is_terminal", lambda stream: stream is sys.stdout)
    monkeypatch.setenv("COLUMNS", "200")
    render_results(planned(), as_json=False)
    # a terminal may get colour (FORCE_COLOR, as in CI's run): only the lines and cells matter
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    assert "\\n" not in out
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.splitlines()
        if any(step in line for step in STEPS)
    ]
    assert cells == [["hv01", "planned", "0.0s", STEPS[0]], *(["", "", "", s] for s in STEPS[1:])]


def test_json_keeps_hostile_names(capsys: pytest.CaptureFixture[str]) -> None:
    render_results(results(dict.fromkeys(HOSTILE_NAMES, "[/]")), as_json=True)
    assert list(json.loads(capsys.readouterr().out)) == HOSTILE_NAMES


def test_closed_stdout_exits_quietly(tmp_path: Path) -> None:
    """`fleetbr --json inventory | head`: before, a BrokenPipeError traceback on stderr."""
    hosts = "".join(f"hv{i:04d}: {{hostname: 198.51.{i // 250}.{i % 250}}}\n" for i in range(500))
    inventory = long_inventory(tmp_path, hosts)
    child = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "-i", str(inventory), "--json", "inventory"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # no reader left: the child's first write fails with EPIPE
    err = child.stderr.read()
    assert child.wait(timeout=60) == 141
    assert err == b""


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
@pytest.mark.parametrize("command", [["--json", "inventory"], ["inventory"]])
def test_a_reader_that_stops_early_gives_141_whatever_the_last_write(
    tmp_path: Path, unbuffered: str, command: list[str]
) -> None:
    """`fleetbr -i BIG --json inventory | head` (issue 15, defect 12): the document (~1 MB) is
    far more than a pipe holds, so the write is under way when the reader closes its end. Before:
    with PYTHONUNBUFFERED the write returned short, the rest was dropped and the exit was 0."""
    hosts = "".join(
        f"hv{i:04d}: {{hostname: 198.18.{i // 250}.{i % 250 + 1}}}\n" for i in range(3000)
    )
    inventory = long_inventory(tmp_path, hosts)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    child = subprocess.Popen(
        [sys.executable, "-m", "fleetbr", "-i", str(inventory), *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env | ({"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}),
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.read(100)  # blocks until the child writes: its output is under way
    child.stdout.close()  # the reader goes away, like `head`
    err = child.stderr.read()
    assert len(first) == 100
    assert child.wait(timeout=60) == 141, err
    assert err == b""


def test_a_logged_exception_is_one_line_without_v() -> None:
    """The runner logs a bug in a host job; without -v that is one line, not a traceback."""
    record = logging.LogRecord("fleetbr.runner", logging.ERROR, __file__, 1,
                               "unexpected error on %s", ("h\nx",), None)  # fmt: skip
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        record.exc_info = sys.exc_info()
    line = OneLineFormatter(tracebacks=False).format(record)
    assert "\n" not in line
    assert line.endswith(
        "fleetbr.runner ERROR unexpected error on h\\nx: ZeroDivisionError: division by zero "
        "(-v shows the traceback)"
    )
    assert "Traceback" in OneLineFormatter(tracebacks=True).format(record)
