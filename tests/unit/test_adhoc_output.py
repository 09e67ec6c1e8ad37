"""How ``fleetbr run`` shows its output: the flags (one at a time), their checks before anything
is contacted, and the report each one prints. No SSH."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest

from fleetbr.adhoc.main import RunOutput, Shown, output_from_args, report
from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.cli import main
from fleetbr.cli_args import parse_command_line
from fleetbr.cli_request import command_change
from fleetbr.errors import UsageError
from tests.unit.adhoc_results import aggregate, ran

MODES = (["--stream"], ["-o"], ["--one-line"], ["--tree", "out"], ["--diff"])
# every two of them, but -o with --one-line (the same flag twice)
PAIRS = [
    (a, b) for a, b in itertools.permutations(MODES, 2) if {a[0], b[0]} != {"-o", "--one-line"}
]


def run_args(*words: str) -> argparse.Namespace:
    return parse_command_line(["run", *words, "--", "true"])


def test_each_flag_chooses_its_way(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    assert output_from_args(run_args()) == RunOutput(Shown.GROUPED, False)
    assert output_from_args(run_args("--stream")).shown is Shown.STREAM
    assert output_from_args(run_args("-o")).shown is Shown.ONE_LINE
    assert output_from_args(run_args("--diff", "--json")) == RunOutput(Shown.DIFF, True)
    assert output_from_args(run_args("--tree", str(tree), "--json")) == RunOutput(
        Shown.TREE, True, tree
    )
    assert not tree.exists(), "the tree is made after the run, not before"


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_two_ways_at_once_are_refused_by_the_parser(
    first: list[str], second: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_args(*first, *second)
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_one_line_and_json_exclude_each_other() -> None:
    with pytest.raises(UsageError, match="-o/--one-line and --json exclude each other"):
        output_from_args(run_args("-o", "--json"))


@pytest.mark.parametrize("mode", MODES[1:])
def test_no_output_mode_with_deadman(mode: list[str]) -> None:
    args = parse_command_line(["run", "--deadman", "30", "--undo", "true", *mode, "--", "true"])
    with pytest.raises(UsageError, match="does not apply with --deadman"):
        command_change(args, RunSpec.from_argv(["true"], RunOptions()))


def test_a_non_empty_tree_is_a_usage_error_before_any_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hosts.yaml").write_text("hv01: {hostname: 198.51.100.10}\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "old").write_text("x")
    argv = ["-i", str(tmp_path), "--no-history", "run", "--tree", str(tree), "--", "true"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: run: --tree ") and "is not empty" in err
    assert sorted(p.name for p in tree.iterdir()) == ["old"]


RESULTS = aggregate(ran("hv01", b"a\n"), ran("hv02", b"b\n", status=1))


def test_one_line_keeps_stdout_for_host_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert report(RESULTS, RunOutput(Shown.ONE_LINE)) is True
    out, err = capsys.readouterr()
    assert out == "hv01: a\nhv02: b\nhv02:fleetbr: failed: exit 1\n"
    assert err == "2 hosts: 1 ok, 1 exited non-zero\n"


def test_tree_writes_files_and_prints_statuses_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(RESULTS, RunOutput(Shown.TREE, tree=tmp_path / "t")) is True
    assert capsys.readouterr().out == (
        "==== hv01: exit 0\n==== hv02: exit 1\n2 hosts: 1 ok, 1 exited non-zero\n"
    )
    assert (tmp_path / "t" / "hv02" / "stdout").read_bytes() == b"b\n"
    assert report(RESULTS, RunOutput(Shown.TREE, as_json=True, tree=tmp_path / "j")) is True
    assert json.loads(capsys.readouterr().out)["hv01"]["stdout"] == "a\n"


def test_a_tree_that_cannot_be_written_is_said_and_the_report_follows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    assert report(RESULTS, RunOutput(Shown.TREE, tree=tmp_path / "file" / "t")) is False
    out, err = capsys.readouterr()
    assert err.startswith("error: run: --tree: cannot write ")
    assert out.endswith("2 hosts: 1 ok, 1 exited non-zero\n")


def test_diff_json_is_the_diff_document(capsys: pytest.CaptureFixture[str]) -> None:
    report(RESULTS, RunOutput(Shown.DIFF, as_json=True))
    document = json.loads(capsys.readouterr().out)
    assert [group["hosts"] for group in document["groups"]] == [["hv01"], ["hv02"]]
    assert document["groups"][1]["diff"][-2:] == ["-  a", "+  b"]
