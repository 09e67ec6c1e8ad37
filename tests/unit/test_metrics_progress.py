"""The --metrics-file text format (parsed back strictly and by prometheus_client), its atomic
write, and the live progress display (terminal only, never with --json)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from fleetbr.history.record import RunContext
from fleetbr.metrics import RunSummary, render, write_atomically
from fleetbr.progress import LiveProgress, wanted
from fleetbr.report import HostResult, Status
from tests.sshfiles import write_key, write_unparsable_known_hosts

SUMMARY = RunSummary("apply", {"confirmed": 5, "rolled_back": 1, "drifted": 2}, 1000.0, 1012.5, 1)
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"({NAME})\{{{LABEL}(?:,{LABEL})*\}} (-?[0-9]+(?:\.[0-9]+)?)")
COMMENT = re.compile(rf"# (HELP|TYPE) ({NAME}) (.+)")


def test_every_line_is_strict_text_format_and_families_are_complete() -> None:
    text = render(SUMMARY)
    assert text.endswith("\n")
    declared: dict[str, set[str]] = {}
    for line in text.splitlines():
        comment = COMMENT.fullmatch(line)
        if comment:
            declared.setdefault(comment[2], set()).add(comment[1])
            if comment[1] == "TYPE":
                assert comment[3] == "gauge"
            continue
        sample = SAMPLE.fullmatch(line)
        assert sample, f"not a valid sample line: {line!r}"
        assert declared.get(sample[1]) == {"HELP", "TYPE"}, "HELP and TYPE precede samples"
        assert sample[1].startswith("fleetbr_")


def test_prometheus_client_reads_the_values_back() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render(SUMMARY))}
    assert set(families) == {
        "fleetbr_hosts", "fleetbr_drifted_hosts", "fleetbr_last_run_timestamp_seconds",
        "fleetbr_last_run_duration_seconds", "fleetbr_last_run_exit_code",
    }  # fmt: skip
    hosts = {s.labels["status"]: s.value for s in families["fleetbr_hosts"].samples}
    assert hosts["confirmed"] == 5 and hosts["rolled_back"] == 1 and hosts["failed"] == 0
    assert set(hosts) >= {s.value for s in Status}, "every status, zeros included"
    assert families["fleetbr_drifted_hosts"].samples[0].value == 2
    assert families["fleetbr_last_run_timestamp_seconds"].samples[0].value == 1012.5
    assert families["fleetbr_last_run_duration_seconds"].samples[0].value == 12.5
    assert all(s.labels["command"] == "apply" for f in families.values() for s in f.samples)


def test_selection_and_schedule_labels_keep_two_jobs_apart() -> None:
    rack_a = RunSummary("check", {"drifted": 1}, 0.0, 1.0, 3, {"selection": "rack-a",
                                                             "schedule": "a"})  # fmt: skip
    rack_b = RunSummary("check", {"in_sync": 4}, 0.0, 1.0, 0, {"selection": "rack-b",
                                                             "schedule": "b"})  # fmt: skip
    series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for text in (render(rack_a), render(rack_b)):  # two files, one collector
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in series, f"colliding series {key}"
                series[key] = sample.value
    drifted = {k[1]: v for k, v in series.items() if k[0] == "fleetbr_drifted_hosts"}
    assert drifted == {
        (("command", "check"), ("schedule", "a"), ("selection", "rack-a")): 1,
        (("command", "check"), ("schedule", "b"), ("selection", "rack-b")): 0,
    }


def test_check_writes_the_metrics_file_with_its_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check`` honours --metrics-file (it ignored it); the host cannot be reached here, so
    the run exits 1, and the file says so, labelled with the selection and the schedule."""
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text("h1: {hostname: 127.0.0.1, port: 1, data: {nic: eth0}}\n")
    write_key(tmp_path / "key")
    write_unparsable_known_hosts(tmp_path / "none")
    prom = tmp_path / "fleetbr.prom"
    task = Path(__file__).resolve().parents[2] / "tasks" / "bridge.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(inv), "-l", "h1", "--key",
         str(tmp_path / "key"), "--known-hosts", str(tmp_path / "none"), "--no-history",
         "--metrics-file", str(prom), "check", str(task)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "FLEETBR_SCHEDULE": "nightly"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    [code] = families["fleetbr_last_run_exit_code"].samples
    assert code.value == 1
    assert code.labels == {"command": "check", "selection": "h1", "schedule": "nightly"}


def test_label_values_are_escaped() -> None:
    text = render(RunSummary('a"b\\c\nd', {}, 0.0, 0.0, 0))
    assert 'command="a\\"b\\\\c\\nd"' in text
    [family, *_] = text_string_to_metric_families(text)
    assert family.samples[0].labels["command"] == 'a"b\\c\nd'


def test_written_atomically_and_nothing_left_behind(tmp_path: Path) -> None:
    target = tmp_path / "fleetbr.prom"
    target.write_text("old\n")
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["fleetbr.prom"]
    with pytest.raises(OSError):
        write_atomically(tmp_path / "missing" / "x.prom", "x\n")
    assert [p.name for p in tmp_path.iterdir()] == ["fleetbr.prom"]


def test_a_metrics_file_that_cannot_be_written_is_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunContext("status", ["h1"], recorder=None, as_json=True,
                    metrics_file=tmp_path / "no" / "m.prom") as context:  # fmt: skip
        context.observer.finished(HostResult("h1", Status.OK))
        context.done(0)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: metrics not written (")


def test_cli_writes_the_metrics_file(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text("h1: {hostname: 127.0.0.1, port: 1}\n")
    write_key(tmp_path / "key")
    write_unparsable_known_hosts(tmp_path / "none")
    prom = tmp_path / "fleetbr.prom"
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(inv), "--key", str(tmp_path / "key"),
         "--known-hosts", str(tmp_path / "none"), "--no-history", "--metrics-file", str(prom),
         "status"], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr == ""
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    hosts = {s.labels["status"]: s.value for s in families["fleetbr_hosts"].samples}
    assert hosts["failed"] == 1 and sum(hosts.values()) == 1
    assert families["fleetbr_last_run_exit_code"].samples[0].value == 1


def test_progress_only_on_a_terminal_and_never_with_json() -> None:
    tty = type("Tty", (io.StringIO,), {"isatty": lambda self: True})()
    assert wanted(as_json=False, stream=tty)
    assert not wanted(as_json=True, stream=tty)
    assert not wanted(as_json=False, stream=io.StringIO())


def test_progress_shows_done_total_counts_and_batch() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    live = LiveProgress("apply", 5, console=console)
    live.batch(1, 3, ["a", "b"])
    live.started("a")
    live.started("b")
    live.finished(HostResult("a", Status.CONFIRMED))
    live.finished(HostResult("x[/]", Status.ROLLED_BACK))
    assert live.detail() == "batch 2/3 · 1 in flight · 1 confirmed, 1 rolled_back"
    live.start()
    live.progress.refresh()
    live.stop()
    shown = out.getvalue()
    assert "2/5" in shown and "batch 2/3" in shown


def test_progress_goes_away_once_every_host_is_in() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    live = LiveProgress("run", 2, console=console)
    live.start()
    live.finished(HostResult("a", Status.OK))
    assert live.progress.live.is_started
    live.finished(HostResult("b", Status.FAILED))
    assert not live.progress.live.is_started, "stopped before the report is printed"


def test_nothing_extra_on_stderr_off_a_terminal(tmp_path: Path) -> None:
    """stderr is a pipe here: the run prints its report and nothing else."""
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text("h1: {hostname: 127.0.0.1, port: 1}\n")
    write_key(tmp_path / "key")
    write_unparsable_known_hosts(tmp_path / "none")
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(inv), "--key", str(tmp_path / "key"),
         "--known-hosts", str(tmp_path / "none"), "status"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color"},
    )  # fmt: skip
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1] == "1 host: 1 failed"
