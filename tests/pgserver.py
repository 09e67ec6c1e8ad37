"""A throw-away PostgreSQL server for the tests of the run history in PostgreSQL.

PostgreSQL refuses to run as root, so the server runs as the ``postgres`` user (the Debian
package creates it; scripts/setup installs ``postgresql-15``) from a fresh data directory in a
temporary folder, listening on a Unix socket in that folder and on 127.0.0.1 (password
authentication over TCP, so a URL carries a real password). It is started once per test session
inside the test's network namespace, only there (a port on this machine's own loopback could
meet another run's), and stopped, its folder removed, at the end.

Where it cannot run, :func:`tests.isolation.unavailable` decides: under scripts/in-netns the
tests that need it fail, never skip.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

from fleetbr.lab.demos.services import free_port
from tests.isolation import isolation_problem, unavailable

USER = "postgres"
_numbers = count(1)


def _binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)  # fmt: skip
    return found[-1].parent if found else None


def _as_postgres(*argv: str) -> None:
    done = subprocess.run(["runuser", "-u", USER, "--", *argv], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")


@dataclass
class PgServer:
    """A running server: its socket folder, TCP port and the ``postgres`` role's password."""

    folder: Path
    port: int
    password: str
    binaries: Path = Path("/usr/lib/postgresql/15/bin")

    def halt(self) -> None:
        """Stop the server (fast: its connections are cut); the data stays for :meth:`resume`."""
        _as_postgres(str(self.binaries / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                     "-w", "stop")  # fmt: skip

    def running(self) -> bool:
        """The server runs (``pg_ctl status``)."""
        done = subprocess.run(["runuser", "-u", USER, "--", str(self.binaries / "pg_ctl"), "-D",
                               str(self.folder / "data"), "status"], capture_output=True,
                              check=False, timeout=60)  # fmt: skip
        return done.returncode == 0

    def resume(self) -> None:
        """Start the stopped server again, on the same port and data."""
        _pg_start(self.binaries, self.folder, self.port)

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A ``postgresql://`` URL over TCP with the password in it."""
        secret = self.password if password is None else password
        return f"postgresql://{USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg  # here: the tests that need no server need no psycopg

        name = f"fleetbr_t{next(_numbers)}"
        with psycopg.connect(host=str(self.folder), port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as db:  # fmt: skip
            db.execute(f"CREATE DATABASE {name}")  # a constant-shaped name of our own
        return self.url(name)


def start(binaries: Path) -> PgServer:
    """initdb and start a server as the postgres user (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="fleetbr-pg-"))
    shutil.chown(folder, USER)
    password = secrets.token_hex(12)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    shutil.chown(pwfile, USER)
    port = free_port()
    _as_postgres(str(binaries / "initdb"), "-D", str(folder / "data"), "-U", USER,
                 "--auth-local=trust", "--auth-host=scram-sha-256",
                 f"--pwfile={pwfile}")  # fmt: skip
    pwfile.unlink()
    _pg_start(binaries, folder, port)
    return PgServer(folder, port, password, binaries)


def _pg_start(binaries: Path, folder: Path, port: int) -> None:
    options = f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off"
    _as_postgres(str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-o", options,
                 "-l", str(folder / "log"), "-w", "-t", "60", "start")  # fmt: skip


def stop(binaries: Path, server: PgServer) -> None:
    """Stop the server and remove its folder."""
    try:
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast",
                     "-w", "stop")  # fmt: skip
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (started on first use)."""
    yield from _served()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A server of one test's own (it may stop it: :meth:`PgServer.halt`)."""
    yield from _served()


def _served() -> Iterator[PgServer]:
    binaries = _binaries()
    problem = isolation_problem()
    if problem is None and binaries is None:
        problem = "PostgreSQL is not installed (run scripts/setup: postgresql-15)"
    if problem is None and shutil.which("runuser") is None:
        problem = "runuser (util-linux) is needed to start PostgreSQL as the postgres user"
    if problem is not None or binaries is None:
        unavailable(f"the PostgreSQL history tests: {problem}")
    server = start(binaries)
    try:
        yield server
    finally:
        stop(binaries, server)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database()
