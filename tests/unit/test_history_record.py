"""Recording runs through the real CLI: what is recorded, and that a history that cannot be
written (a directory, a newer schema, locked, read-only, full) never changes a run's report or
exit code: one warning line on stderr, nothing else."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetbr.history.sqlite import SqliteStore
from tests.sshfiles import write_key, write_unparsable_known_hosts

HOSTS = (
    "h1: {hostname: 127.0.0.1, port: 1, groups: [rack-a]}\n"
    '"we[ird]\\nname": {hostname: 127.0.0.1, port: 2}\n'
)


def inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inv"
    inv.mkdir(exist_ok=True)
    (inv / "hosts.yaml").write_text(HOSTS)
    (inv / "groups.yaml").write_text("rack-a: {}\n")
    write_key(tmp_path / "key")
    write_unparsable_known_hosts(tmp_path / "known_hosts")
    return inv


def fleetbr(tmp_path: Path, *args: str, history: str | None = None, prefix: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``fleetbr -i INV --key K --known-hosts (unparsable) ARGS``: every host fails at once, on the
    controller (a known_hosts that cannot be parsed), so the run is real but needs no network."""
    inv = inventory(tmp_path)
    where = ["--no-history"] if history is None else ["--history", history]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "fleetbr", "-i", str(inv), "--key", str(tmp_path / "key"),
         "--known-hosts", str(tmp_path / "known_hosts"), *where, *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_a_run_is_recorded_with_its_hosts_and_options(tmp_path: Path) -> None:
    db = str(tmp_path / "h.sqlite3")
    done = fleetbr(tmp_path, "-f", "3", "status", history=db)
    assert done.returncode == 1 and done.stderr == ""
    store = SqliteStore(Path(db))
    [run] = store.runs()
    assert (run.command, run.exit_code, run.state) == ("status", 1, "finished")
    assert run.hosts == ["h1", "we[ird]\nname"] and run.options["forks"] == 3
    rows = store.hosts_of(run.id)
    assert {r.host: r.status for r in rows} == {"h1": "failed", "we[ird]\nname": "failed"}
    assert all("known_hosts" in r.message for r in rows)


def test_history_and_show_escape_values_and_speak_json(tmp_path: Path) -> None:
    db = str(tmp_path / "h.sqlite3")
    fleetbr(tmp_path, "status", history=db)
    fleetbr(tmp_path, "-l", "h1", "status", history=db)
    listing = fleetbr(tmp_path, "history", history=db)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["run", "started", "command", "task", "hosts", "state", "exit",
                                "result"]  # fmt: skip
    assert lines[1].split()[0] == "2" and "h1" in lines[1] and "1 failed" in lines[1]
    assert "2 failed" in lines[2]
    by_host = fleetbr(tmp_path, "history", "-l", "we*", history=db)
    assert "we[ird]\\nname" in by_host.stdout and "\x1b" not in by_host.stdout
    assert len(by_host.stdout.splitlines()) == 2, by_host.stdout  # header + one row
    doc = json.loads(fleetbr(tmp_path, "history", "--json", "--command", "status",
                             history=db).stdout)  # fmt: skip
    assert [run["run"] for run in doc["runs"]] == [2, 1]
    assert doc["runs"][1]["counts"] == {"failed": 2}
    assert json.loads(fleetbr(tmp_path, "history", "--json", "--command", "apply",
                              history=db).stdout) == {"runs": []}  # fmt: skip
    shown = json.loads(fleetbr(tmp_path, "--json", "show", "1", history=db).stdout)
    assert list(shown["hosts"]) == ["h1", "we[ird]\nname"]
    assert shown["hosts"]["h1"]["status"] == "failed" and shown["command"] == "status"
    text = fleetbr(tmp_path, "show", "last", history=db).stdout
    assert "run: 2" in text and "h1" in text and "1 host: 1 failed" in text
    # readable text, not Python dict reprs (issue 15, defect 11)
    lines = text.splitlines()
    assert "options:" in lines and "  forks: 50" in lines and "controller:" in lines, text
    assert f"  user: {pwd.getpwuid(os.geteuid()).pw_name}" in lines, text  # who ran it
    assert not any("{" in line for line in lines), text


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A history of two recorded runs (every host, then ``-l h1``), built once for the tests that
    only read it: each run is a CLI start (about 0.4 s of CPU)."""
    where = tmp_path_factory.mktemp("two-runs")
    db = where / "h.sqlite3"
    for limit in ([], ["-l", "h1"]):
        assert fleetbr(where, *limit, "status", history=str(db)).returncode == 1
    return db


@pytest.mark.parametrize(
    ("limit", "rows"),
    [
        ("rack-a", ["h1", "h1"]),
        ("rack-*", ["h1", "h1"]),
        ("all,!rack-a", ["we[ird]\\nname"]),
        ("we*,h1,&rack-a", ["h1", "h1"]),
        ("rack-a,!h1", []),
    ],
)
def test_history_selects_hosts_as_l_does_with_the_inventorys_groups(
    tmp_path: Path, two_runs: Path, limit: str, rows: list[str]
) -> None:
    """Before: `history -l GROUP` matched only host names and so showed nothing."""
    db = str(tmp_path / "h.sqlite3")
    shutil.copyfile(two_runs, db)
    for where in (["-l", limit, "history"], ["history", "--host", limit]):
        done = fleetbr(tmp_path, *where, history=db)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert [line.split()[4] for line in done.stdout.splitlines()[1:]] == rows, where


def test_show_prints_an_argv_as_typed_and_nested_values_as_lines(tmp_path: Path) -> None:
    db = str(tmp_path / "h.sqlite3")
    fleetbr(tmp_path, "-f", "3", "run", "--", "printf", "%s", "a b", history=db)
    lines = fleetbr(tmp_path, "show", "last", history=db).stdout.splitlines()
    assert "  argv: printf %s 'a b'" in lines and "  forks: 3" in lines, lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "7"), "no run 7"),
        (("show", "x;y"), "a run number"),
        (("history", "--since", "yesterday-ish"), "--since"),
        (("history", "-l", ","), "empty term"),
        (("history", "--command", "bogus"), "--command 'bogus': not a command fleetbr records"),
        (("history", "--command", "watch"), "(one of apply, check, plan, rollback, run, status)"),
    ],
)
def test_history_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = str(tmp_path / "h.sqlite3")
    fleetbr(tmp_path, "status", history=db)
    done = fleetbr(tmp_path, *args, history=db)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1


def _directory(path: Path) -> tuple[str, ...]:
    path.mkdir(parents=True)
    return ()


def _newer_schema(path: Path) -> tuple[str, ...]:
    SqliteStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE schema_version SET version = 99")
    db.close()
    return ()


def _needs_mounts() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private mount namespace for a small tmpfs)")


CREATE = (
    "from pathlib import Path; from fleetbr.history.sqlite import SqliteStore; "
    "SqliteStore(Path(sys.argv[1])).close()"
)


def _in_tmpfs(path: Path, size: str, then: str) -> tuple[str, ...]:
    """A prefix that runs fleetbr in a private mount namespace with a small tmpfs holding a new
    history at ``path``, after the shell commands ``then``."""
    _needs_mounts()
    path.parent.mkdir(exist_ok=True)
    script = (
        f'mount -t tmpfs -o size={size},mode=0700 fbr-test "$1" && shift && '
        f'{sys.executable} -c "import sys; {CREATE}" "$1" && shift && {then} && exec "$@"'
    )
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
            str(path.parent), str(path))  # fmt: skip


def _read_only(path: Path) -> tuple[str, ...]:
    return _in_tmpfs(path, "1m", f"mount -o remount,ro '{path.parent}'")


def _full(path: Path) -> tuple[str, ...]:
    return _in_tmpfs(path, "256k", f"(dd if=/dev/zero of='{path.parent}/filler' bs=4k "
                                   "2>/dev/null || :)")  # fmt: skip


BROKEN: dict[str, Callable[[Path], tuple[str, ...]]] = {
    "a directory": _directory,
    "a newer schema": _newer_schema,
    "read-only": _read_only,
    "full": _full,
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_an_unwritable_history_changes_nothing_but_one_warning(tmp_path: Path, kind: str) -> None:
    baseline = fleetbr(tmp_path, "status")
    path = tmp_path / "db" / "h.sqlite3"
    prefix = BROKEN[kind](path)
    done = fleetbr(tmp_path, "status", history=str(path), prefix=prefix)
    assert done.returncode == baseline.returncode == 1
    assert times_out(done.stdout) == times_out(baseline.stdout)
    [line] = done.stderr.splitlines()
    assert line.startswith("warning: run history not recorded ("), line
    assert line.endswith("); the run goes on")


def times_out(text: str) -> str:
    return re.sub(r"\b[0-9]+\.[0-9]s\b", "T", text)


def without_elapsed(text: str) -> dict[str, dict[str, object]]:
    return {host: {k: v for k, v in row.items() if k != "elapsed"}
            for host, row in json.loads(text).items()}  # fmt: skip


def test_a_history_locked_too_long_changes_nothing_but_one_warning(tmp_path: Path) -> None:
    baseline = fleetbr(tmp_path, "--json", "status")
    path = tmp_path / "h.sqlite3"
    SqliteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process that holds the database for long
    try:
        done = fleetbr(tmp_path, "--json", "status", history=str(path),
                       env={"FLEETBR_HISTORY_TIMEOUT": "0.5"})  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == baseline.returncode == 1
    assert without_elapsed(done.stdout) == without_elapsed(baseline.stdout)
    [line] = done.stderr.splitlines()
    assert "run history not recorded" in line and "locked" in line


def test_a_flush_returns_as_soon_as_the_writer_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from fleetbr.history.record import Recorder
    from fleetbr.history.store import RunRecord

    run = RunRecord("apply", ["hv01"], {}, time.time(), {"pid": os.getpid()})
    # a directory is no database: the first write fails (the writer thread may warn at once)
    recorder = Recorder(tmp_path, run, consequence="no new host starts")
    began = time.monotonic()
    assert recorder.flush(60), "failed: nothing more will be written"
    # the failed writer skips the flush's own op: waiting for it would take the full 60 s
    assert time.monotonic() - began < 30
    recorder.finish(0, run.state)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: run history not recorded (") and line.endswith(
        "; no new host starts"), line  # fmt: skip
