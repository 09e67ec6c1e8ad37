"""Global options before or after the command (issue 15, defect 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbr.cli import main
from fleetbr.cli_args import DEFAULT_FORKS, parse_command_line
from fleetbr.errors import UsageError

# (words of the command, where its own arguments start: global options go there)
COMMANDS = [
    (["inventory"], 1), (["facts"], 1), (["plan", "t.yaml"], 1), (["apply", "t.yaml"], 1),
    (["apply", "--resume"], 1), (["status"], 1), (["rollback"], 1), (["check", "t.yaml"], 1),
    (["watch", "t.yaml", "--every", "7m"], 1), (["run", "--", "true"], 1),
    (["run", "--deadman", "9", "--undo", "u", "--", "c"], 1), (["history"], 1),
    (["show", "last"], 1), (["demo"], 1), (["lab", "up"], 2), (["lab", "status"], 2),
    (["lab", "down"], 2), (["lab", "reboot", "hv01"], 2),
    (["schedule", "install", "t.yaml", "--every", "7m"], 2), (["schedule", "list"], 2),
    (["schedule", "remove", "n"], 2),
]  # fmt: skip
# every global option, short and long forms apart: (its words, its dest, the value it gives)
SHORT = [
    (["-i", "inv2"], "inventory", Path("inv2")), (["-l", "rack-a"], "limit", "rack-a"),
    (["-f", "3"], "forks", 3), (["--key", "k"], "key", "k"),
    (["--known-hosts", "kh"], "known_hosts", "kh"), (["--json"], "json", True),
    (["-v"], "verbose", True), (["--history", "h.db"], "history", "h.db"),
    (["--metrics-file", "m.prom"], "metrics_file", Path("m.prom")),
]  # fmt: skip
LONG = [
    (["--inventory", "inv2"], "inventory", Path("inv2")),
    (["--limit", "rack-a"], "limit", "rack-a"), (["--forks", "3"], "forks", 3),
    (["--verbose"], "verbose", True), (["--no-history"], "no_history", True),
]  # fmt: skip


@pytest.mark.parametrize("options", [SHORT, LONG], ids=["short", "long"])
@pytest.mark.parametrize(("command", "at"), COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_every_global_option_works_before_and_after_every_command(
    command: list[str], at: int, options: list[tuple[list[str], str, object]]
) -> None:
    """Before: `fleetbr apply T -l rack-a`, `fleetbr facts --json`: unrecognized arguments."""
    words = [word for option, _, _ in options for word in option]
    plain = vars(parse_command_line(command))
    before = vars(parse_command_line([*words, *command]))
    after = vars(parse_command_line([*command[:at], *words, *command[at:]]))
    assert before == after
    for option, dest, value in options:
        assert after[dest] == value != plain[dest], option


def test_defaults_apply_when_an_option_is_given_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETBR_INVENTORY", "/srv/inv")
    args = vars(parse_command_line(["history"]))
    assert args["inventory"] == Path("/srv/inv") and args["forks"] == DEFAULT_FORKS
    assert args["json"] is False and args["limit"] is None and args["metrics_file"] is None
    assert not any(key.startswith("after_") for key in args)


@pytest.mark.parametrize(
    "argv",
    [
        ["-l", "canary", "apply", "t.yaml", "-l", "all"],
        ["-l", "", "inventory", "-l", "rack-a"],
        ["-f", "2", "schedule", "list", "-f", "3"],
        ["-i", "a", "lab", "status", "--inventory", "b"],
    ],
)
def test_different_values_before_and_after_are_refused(argv: list[str]) -> None:
    """A command line like `-l canary apply T -l all` must not quietly pick one of the two."""
    with pytest.raises(UsageError, match="given before and after the command with different"):
        parse_command_line(argv)


def test_the_same_value_in_both_places_is_accepted() -> None:
    args = parse_command_line(["-l", "rack-a", "--json", "facts", "--json", "-l", "rack-a"])
    assert args.limit == "rack-a" and args.json is True


def test_a_conflict_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-l", "canary", "inventory", "-l", "all"]) == 2
    assert capsys.readouterr().err == (
        "error: -l/--limit is given before and after the command with different values "
        "('canary', 'all'): give it once\n"
    )


def test_options_after_the_command_reach_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hosts.yaml").write_text(
        "hv01: {hostname: 198.51.100.10}\nhv02: {hostname: 198.51.100.11}\n"
    )
    assert main(["inventory", "--json", "-i", str(tmp_path), "-l", "hv02"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["hv02"]


def test_after_double_dash_the_words_are_the_commands_not_fleetbrs() -> None:
    """`run -- ls -l --json`: the global options after the command stop at `--`."""
    args = parse_command_line(["-l", "x", "run", "-f", "2", "--", "ls", "-l", "--json"])
    assert args.argv == ["ls", "-l", "--json"]
    assert (args.limit, args.forks, args.json) == ("x", 2, False)
