"""Where the history lives: a path or a ``postgresql://`` URL, the URL's password never shown
(messages, ``--json``, the request's repr), a database that cannot be reached refused before any
host is contacted, and the CLI's ``history``/``show`` on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fleetbr.api as fleetbr_api
from fleetbr.core.request import HistoryOptions
from fleetbr.errors import UsageError
from fleetbr.history.location import DatabaseUrl, masked, parse_location
from fleetbr.history.record import ENV, history_location
from tests.sshfiles import write_key
from tests.unit.test_history_record import fleetbr

SECRET = "s3cr3t-pw-9"
UNREACHABLE = f"postgresql://ops:{SECRET}@127.0.0.1:1/fleet"


@pytest.mark.parametrize(
    ("text", "want"),
    [("postgresql://ops:pw@db.example/fleet", "postgresql://ops:***@db.example/fleet"),
     ("postgres://ops:pw@db:5433/fleet?sslmode=require", "postgres://ops:***@db:5433/fleet?sslmode=require"),
     ("postgresql://db/fleet?user=ops&password=pw&sslmode=verify-full",
      "postgresql://db/fleet?user=ops&password=***&sslmode=verify-full"),
     ("postgresql://ops@db/fleet", "postgresql://ops@db/fleet"),
     ("postgresql:///fleet?host=/run/postgresql", "postgresql:///fleet?host=/run/postgresql")],
)  # fmt: skip
def test_a_url_is_shown_with_its_password_masked(text: str, want: str) -> None:
    location = parse_location(text)
    assert isinstance(location, DatabaseUrl) and location.url == text
    assert str(location) == masked(text) == want
    assert "pw" not in repr(location) and "pw@" not in repr(HistoryOptions(path=location))


def test_a_drivers_message_loses_the_password_wherever_it_stands() -> None:
    url = DatabaseUrl("postgresql://db/fleet?user=ops&password=s3cr%2Ft-long&sslmode=require")
    text = url.scrub("invalid dsn: host=db password='s3cr/t-long' (s3cr/t-long, s3cr%2Ft-long)")
    assert text == "invalid dsn: host=db password=*** (***, ***)"
    assert url.scrub(url.url) == str(url)


def test_a_short_password_is_masked_where_it_is_a_password_not_inside_words() -> None:
    # masking every "p" would mangle the message and show the password by the masks' places
    url = DatabaseUrl("postgresql://ops:p@db:5432/fleet")
    text = url.scrub("connection to port 5432 failed: postgresql://ops:p@db:5432/fleet password=p")
    assert text == "connection to port 5432 failed: postgresql://ops:***@db:5432/fleet password=***"


def test_a_path_stays_a_path() -> None:
    assert parse_location("runs/history.sqlite3") == Path("runs/history.sqlite3")
    assert parse_location("/var/lib/fleetbr/h:1.sqlite3") == Path("/var/lib/fleetbr/h:1.sqlite3")


def test_another_url_scheme_is_refused_without_its_password() -> None:
    with pytest.raises(UsageError) as caught:
        parse_location("mysql://ops:pw-77@db/fleet")
    assert "pw-77" not in str(caught.value) and "mysql://ops:***@db/fleet" in str(caught.value)


def test_the_environment_may_name_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, UNREACHABLE)
    assert history_location(None, False) == DatabaseUrl(UNREACHABLE)
    assert history_location(Path("x.sqlite3"), False) == Path("x.sqlite3")
    assert history_location(None, True) is None


def test_the_api_takes_a_url_as_text_and_a_path_as_either() -> None:
    assert fleetbr_api.request("status", [], None, history=UNREACHABLE).history.path == (
        DatabaseUrl(UNREACHABLE)
    )
    assert fleetbr_api.request("status", [], None, history="h.sqlite3").history.path == Path(
        "h.sqlite3"
    )
    assert fleetbr_api.request("status", [], None, history=Path("x")).history.path == Path("x")


def test_the_command_line_refuses_another_scheme_in_one_masked_line(tmp_path: Path) -> None:
    done = fleetbr(tmp_path, "history", history="mysql://ops:pw-77@db/fleet")
    assert done.returncode == 2 and "pw-77" not in done.stderr + done.stdout
    assert done.stderr.startswith("error: --history 'mysql://ops:***@db/fleet': not a PostgreSQL")
    assert len(done.stderr.splitlines()) == 1


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 that records whether anything connected."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def test_an_unreachable_database_stops_the_run_before_any_host_is_contacted(
    tmp_path: Path, listener: socket.socket
) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    port = listener.getsockname()[1]
    (inv / "hosts.yaml").write_text(f"h1: {{hostname: 127.0.0.1, port: {port}}}\n")
    write_key(tmp_path / "key")
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(inv), "--key", str(tmp_path / "key"),
         "--history", UNREACHABLE, "--json", "status"],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: run history: postgresql://ops:***@127.0.0.1:1/fleet: ")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert SECRET not in done.stderr
    with pytest.raises(BlockingIOError):  # nothing connected to the host's port
        listener.accept()


def test_history_and_show_read_a_postgresql_history(tmp_path: Path, pg_url: str) -> None:
    empty = fleetbr(tmp_path, "history", history=pg_url)
    assert empty.returncode == 0 and empty.stdout.startswith(
        "no runs recorded yet in postgresql://"
    )
    first = fleetbr(tmp_path, "-f", "3", "status", history=pg_url)
    second = fleetbr(tmp_path, "-l", "h1", "status", history=pg_url)
    assert (first.returncode, second.returncode) == (1, 1), first.stderr + second.stderr
    listing = json.loads(fleetbr(tmp_path, "history", "--json", history=pg_url).stdout)
    assert [(run["run"], run["command"], run["counts"]) for run in listing["runs"]] == [
        (2, "status", {"failed": 1}), (1, "status", {"failed": 2}),
    ]  # fmt: skip
    shown = fleetbr(tmp_path, "show", "1", "--json", history=pg_url)
    doc = json.loads(shown.stdout)
    assert (doc["run"], doc["options"]["forks"], sorted(doc["hosts"])) == (
        1, 3, ["h1", "we[ird]\nname"],
    )  # fmt: skip
    h1 = doc["hosts"]["h1"]
    assert h1["status"] == "failed" and "known_hosts" in h1["message"]
    assert h1["worker"] == f"{doc['controller']['host']}:{doc['controller']['pid']}"
    by_host = fleetbr(tmp_path, "history", "-l", "h1", history=pg_url)
    assert len(by_host.stdout.splitlines()) == 3, by_host.stdout  # header + a row of each run
    password = pg_url.split(":")[2].split("@")[0]
    for done in (empty, first, second, shown, by_host):
        assert password not in done.stdout + done.stderr


def test_show_on_an_unreachable_database_is_one_masked_line(tmp_path: Path) -> None:
    done = fleetbr(tmp_path, "show", "last", history=UNREACHABLE)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "postgresql://ops:***@127.0.0.1:1/fleet" in done.stderr and SECRET not in done.stderr
