"""The local services of ``fleetbr demo --sites``: a redis-server (the broker) and a PostgreSQL
server (the shared run history), each in a folder of the demo's lab directory, listening on
127.0.0.1 of the demo's own network namespace only, stopped with the demo.

PostgreSQL refuses to run as root: it runs as the ``postgres`` user (Debian's package creates
it; scripts/setup installs ``postgresql-15`` and ``redis-server``), trust authentication on the
namespace's loopback (nothing outside the namespace can reach it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fleetbr.errors import LabError, LabUsageError

READY_WAIT = 30.0  # seconds a starting server may take to answer
PG_USER = "postgres"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Redis:
    """A redis-server with its append-only file in ``folder``."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING (UsageError: not installed or no answer)."""
        if shutil.which("redis-server") is None:
            raise LabUsageError("demo --sites needs redis-server (apt-get install redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.folder), "--appendonly", "yes", "--save", "", "--logfile",
                str(self.folder / "log")]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_WAIT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"redis-server did not start (see {self.folder / 'log'})")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@dataclass
class Postgres:
    """A PostgreSQL server whose data and socket live in a folder of its own under the system's
    temporary directory (the postgres user must reach it: a lab directory may be private),
    removed when it stops."""

    port: int
    folder: Path | None = None
    started: bool = False

    @property
    def url(self) -> str:
        """The history's URL (no password: trust on the namespace's loopback)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb and start (UsageError: PostgreSQL or runuser missing, or it did not start)."""
        binaries = _binaries()
        self.folder = folder = Path(tempfile.mkdtemp(prefix="fleetbr-demo-pg-"))
        shutil.chown(folder, PG_USER)
        data = str(folder / "data")
        _as_postgres(str(binaries / "initdb"), "-D", data, "-U", PG_USER, "-A", "trust")
        options = f"-k {folder} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off"
        _as_postgres(str(binaries / "pg_ctl"), "-D", data, "-o", options, "-l",
                     str(folder / "log"), "-w", "-t", str(int(READY_WAIT)), "start")  # fmt: skip
        self.started = True

    def stop(self) -> None:
        """Stop it (fast: its connections are cut) and remove its folder."""
        if self.folder is None:
            return
        try:
            if self.started:
                _as_postgres(str(_binaries() / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                             "fast", "-w", "stop")  # fmt: skip
                self.started = False
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)  # fmt: skip
    if not found or shutil.which("runuser") is None:
        raise LabUsageError("demo --sites needs PostgreSQL and runuser "
                         "(apt-get install postgresql-15 util-linux)")  # fmt: skip
    return found[-1].parent


def _as_postgres(*argv: str) -> None:
    done = subprocess.run(["runuser", "-u", PG_USER, "--", *argv], capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise LabError(f"{Path(argv[0]).name} failed ({done.returncode}): {last}")
