"""``fleetbr schedule``: units written under a temporary root (never this machine's /etc),
enabled offline, accepted by ``systemd-analyze verify``, and quoted so that hostile paths come
back exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.cli import main
from fleetbr.errors import UsageError
from fleetbr.schedule import calendar, default_name, exec_line, systemd_word

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "we ird %n %% $HOME ${X} 'q' \"dq\" back\\slash ; tab\t"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEMCTL = shutil.which("systemctl")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "s": " "}  # fmt: skip


def unquote(line: str) -> list[str]:
    """Split an ExecStart value as systemd.syntax(7) says (written here, apart from fleetbr):
    whitespace-separated words, double- or single-quoted, C escapes, then ``%%`` -> ``%``."""
    words: list[str] = []
    i = 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        word, quote = [], None
        while i < len(line) and (quote or not line[i].isspace()):
            char = line[i]
            if char in "\"'" and quote in (None, char):
                quote = None if quote else char
            elif char == "\\":
                nxt = line[i + 1]
                if nxt == "x":
                    word.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 2
                else:
                    word.append(_ESCAPES[nxt])
                i += 1
            else:
                word.append(char)
            i += 1
        assert quote is None, f"unbalanced quotes in {line!r}"
        words.append("".join(word).replace("%%", "\0").replace("\0", "%"))
    return words


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A one-host inventory and the bridge task, both in a directory with a hostile name."""
    directory = tmp_path / HOSTILE / "inv\nline"
    directory.mkdir(parents=True)
    (directory / "hosts.yaml").write_text("hv01:\n  hostname: 198.51.100.10\n  data: {nic: eth0}\n")
    shutil.copy(REPO / "tasks" / "bridge.yaml", directory.parent / "bridge %i $t.yaml")
    return directory


@pytest.fixture(autouse=True)
def _no_live_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test may reach a systemd manager or the real ~/.config."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    yield


def task_of(inventory: Path) -> Path:
    return inventory.parent / "bridge %i $t.yaml"


def units(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"fleetbr-{name}.service", directory / f"fleetbr-{name}.timer"


def exec_start(service: Path) -> str:
    line = next(x for x in service.read_text().splitlines() if x.startswith("ExecStart="))
    return line.removeprefix("ExecStart=")


def install(inventory: Path, root: Path, *extra: str) -> int:
    task = str(task_of(inventory))
    argv = ["-i", str(inventory), "-l", "hv01", "schedule", "install", task, "--every", "15m"]
    return main([*argv, "--root", str(root), *extra])


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        ("3s", "*-*-* *:*:00/3"),
        ("30s", "*-*-* *:*:00/30"),
        ("60s", "*-*-* *:00/1:00"),
        ("15m", "*-*-* *:00/15:00"),
        ("1h", "*-*-* 00/1:00:00"),
        ("120m", "*-*-* 00/2:00:00"),
        ("1d", "*-*-* 00:00:00"),
    ],
)
def test_periods_become_calendar_expressions(every: str, expected: str) -> None:
    from fleetbr.watch import parse_every

    assert calendar(parse_every(every)) == expected
    if SYSTEMD_ANALYZE:
        done = subprocess.run([SYSTEMD_ANALYZE, "calendar", expected], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("every", ["7m", "90s", "5h", "2d", "0s", "15", "1.5m", "-1m", "15 m"])
def test_periods_a_calendar_cannot_repeat_evenly_are_refused(every: str) -> None:
    from fleetbr.watch import parse_every

    with pytest.raises(UsageError):
        calendar(parse_every(every))


@pytest.mark.parametrize("word", [HOSTILE, "", "%", "$$", "\\", '"', "a\nb", "\x1b[31m", ";"])
def test_every_word_comes_back_exactly(word: str) -> None:
    assert unquote(systemd_word(word)) == [word]


def test_the_unit_files_are_valid_enabled_and_name_every_path_exactly(
    inventory: Path, root: Path
) -> None:
    assert install(inventory, root) == 0
    directory = root / "etc/systemd/system"
    service, timer = units(directory, "bridge-i-t-hv01-check")
    link = directory / "timers.target.wants" / timer.name
    assert link.is_symlink() and os.readlink(link) == f"../{timer.name}"
    argv = unquote(exec_start(service))
    assert argv[0] == ":" + os.path.abspath(sys.executable)
    assert argv[1:] == ["-m", "fleetbr", "-i", str(inventory), "-l", "hv01", "check",
                        str(task_of(inventory))]  # fmt: skip
    timer_text = timer.read_text()
    for line in ("Persistent=true", "OnCalendar=*-*-* *:00/15:00", "RandomizedDelaySec=180",
                 "WantedBy=timers.target", f"Unit={service.name}"):  # fmt: skip
        assert line in timer_text.splitlines()
    assert all(c.isprintable() for c in timer_text.replace("\n", ""))
    if SYSTEMD_ANALYZE:
        done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(service), str(timer)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    if SYSTEMCTL:
        done = subprocess.run([SYSTEMCTL, f"--root={root}", "is-enabled", timer.name],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.stdout.strip() == "enabled", done.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_itself_finds_an_executable_with_spaces_percent_and_dollar(
    inventory: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "py th %n %% $HOME ${X}" / "python"
    odd.parent.mkdir()
    odd.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(odd))
    assert install(inventory, root, "--name", "odd") == 0
    service, timer = units(root / "etc/systemd/system", "odd")
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(service), str(timer)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr  # systemd checks that this very path is executable


def test_an_executable_systemd_cannot_run_is_refused(
    inventory: Path, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "executable", str(tmp_path / "it's" / "python"))
    assert install(inventory, root) == 2
    assert "not a path systemd can run" in capsys.readouterr().err
    assert not root.exists()
    with pytest.raises(UsageError):
        exec_line(["relative/python"])


def test_list_and_remove(inventory: Path, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(inventory, root, "--name", "a") == 0
    assert install(inventory, root, "--name", "b", "--repair") == 0
    capsys.readouterr()
    assert main(["--json", "schedule", "list", "--root", str(root)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {name: s["mode"] for name, s in listed.items()} == {"a": "check", "b": "repair"}
    assert listed["b"]["command"][-2] == "apply" and listed["a"]["enabled"]
    assert main(["schedule", "remove", "a", "--root", str(root)]) == 0
    directory = root / "etc/systemd/system"
    assert sorted(p.name for p in directory.rglob("*")) == [
        "fleetbr-b.service", "fleetbr-b.timer", "fleetbr-b.timer", "timers.target.wants",
    ]  # fmt: skip
    assert main(["schedule", "remove", "a", "--root", str(root)]) == 2
    assert main(["schedule", "remove", "../x", "--root", str(root)]) == 2


def test_bad_input_writes_nothing(inventory: Path, root: Path) -> None:
    assert install(inventory, root, "--every", "7m") == 2
    assert install(inventory, root, "--name", "a/b") == 2
    assert main(["-i", str(inventory), "-l", "nohost", "schedule", "install",
                 str(task_of(inventory)), "--every", "15m", "--root", str(root)]) == 2  # fmt: skip
    assert main(["-i", str(inventory), "schedule", "install", str(inventory / "missing.yaml"),
                 "--every", "15m", "--root", str(root)]) == 2  # fmt: skip
    assert not root.exists()


def test_periods_are_echoed_as_given(
    inventory: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `--every 7m` was echoed as `420s` (issue 15, defect 11)."""
    assert install(inventory, root, "--every", "7m") == 2
    assert capsys.readouterr().err.startswith("error: --every 7m cannot be a systemd calendar")
    assert install(inventory, root, "--every", "2h", "--name", "two") == 0
    assert "two: check every 2h (OnCalendar=" in capsys.readouterr().out
    assert main(["schedule", "list", "--root", str(root)]) == 0
    assert "  every 2h  " in capsys.readouterr().out


def test_a_unit_fleetbr_did_not_write_is_never_replaced(inventory: Path, root: Path) -> None:
    directory = root / "etc/systemd/system"
    directory.mkdir(parents=True)
    (directory / "fleetbr-mine.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert install(inventory, root, "--name", "mine") == 2
    assert (directory / "fleetbr-mine.service").read_text() == "[Service]\nExecStart=/bin/true\n"


@pytest.mark.parametrize("where", ["after", "before"])
def test_metrics_file_is_passed_on_and_the_schedule_names_its_metrics(
    inventory: Path, root: Path, tmp_path: Path, where: str
) -> None:
    """``schedule install ... --metrics-file F`` and ``fleetbr --metrics-file F schedule
    install ...`` both reach the scheduled command, as a global option it takes."""
    prom = str(tmp_path / "m.prom")
    task = str(task_of(inventory))
    argv = ["-i", str(inventory), "-l", "hv01", "schedule", "install", task, "--every", "15m",
            "--root", str(root), "--name", "rack-a"]  # fmt: skip
    argv = [*argv, "--metrics-file", prom] if where == "after" else ["--metrics-file", prom, *argv]
    assert main(argv) == 0
    service = units(root / "etc/systemd/system", "rack-a")[0]
    words = unquote(exec_start(service))
    assert words[words.index("--metrics-file") + 1] == prom
    assert words.index("--metrics-file") < words.index("check")
    assert "Environment=FLEETBR_SCHEDULE=rack-a\n" in service.read_text()
    # the scheduled command parses with this fleetbr, the metrics file as the run's option
    from fleetbr.cli_args import build_parser

    args = build_parser().parse_args([words[0].removeprefix(":"), *words[1:]][3:])
    assert (args.command, str(args.metrics_file)) == ("check", prom)


def test_user_units_go_to_the_users_config(inventory: Path, tmp_path: Path) -> None:
    code = main(["-i", str(inventory), "schedule", "install", str(task_of(inventory)),
                 "--every", "1h", "--user"])  # fmt: skip
    assert code == 0
    directory = tmp_path / "config" / "systemd" / "user"
    service, timer = units(directory, "bridge-i-t-all-check")
    assert "network-online" not in service.read_text()  # no system units for a user manager
    assert (directory / "timers.target.wants" / timer.name).is_symlink()
    assert main(["schedule", "install", "x", "--every", "1h", "--user", "--root", "/x"]) == 2


def test_one_schedule_per_selection_and_another_one_is_replaced_only_with_force(
    tmp_path: Path, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inv"
    inventory.mkdir()
    (inventory / "hosts.yaml").write_text(
        "a1: {hostname: 198.51.100.10, groups: [rack-a], data: {nic: eth0}}\n"
        "b1: {hostname: 198.51.100.11, groups: [rack-b], data: {nic: eth0}}\n"
    )
    (inventory / "groups.yaml").write_text("rack-a: {}\nrack-b: {}\n")
    task = str(REPO / "tasks" / "bridge.yaml")
    directory = root / "etc/systemd/system"

    def schedule(limit: str, *extra: str) -> int:
        return main(["-i", str(inventory), "-l", limit, "schedule", "install", task, "--every",
                     "15m", "--root", str(root), *extra])  # fmt: skip

    assert schedule("rack-a") == 0 and schedule("rack-b") == 0
    found = sorted(p.name for p in directory.glob("fleetbr-*.timer"))
    assert found == ["fleetbr-bridge-rack-a-check.timer", "fleetbr-bridge-rack-b-check.timer"]
    assert schedule("rack-a") == 0, "the same schedule again is fine"
    capsys.readouterr()
    rack_a = units(directory, "bridge-rack-a-check")[0].read_text()
    assert schedule("rack-b", "--name", "bridge-rack-a-check") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: schedule bridge-rack-a-check exists and is another one (check")
    assert line.endswith("(-l rack-a)); --force replaces it, --name installs this one beside it")
    assert units(directory, "bridge-rack-a-check")[0].read_text() == rack_a, "left as it was"
    assert schedule("rack-b", "--name", "bridge-rack-a-check", "--force") == 0
    assert '"-l" "rack-b"' in units(directory, "bridge-rack-a-check")[0].read_text()


def test_default_names_of_selections_a_unit_cannot_spell_stay_apart() -> None:
    task = Path("tasks/bridge.yaml")
    names = {default_name(task, limit, False) for limit in ("rack-*", "rack-", "a,b", "a b")}
    assert len(names) == 4 and all(len(n) <= 64 for n in names)
    assert default_name(task, None, True) == "bridge-all-repair"
    assert len(default_name(task, "x" * 500, False)) <= 64
