"""A throw-away redis-server for the tests of site workers on Celery: Debian's redis-server
(scripts/setup), append-only file on, in a temporary folder, on 127.0.0.1 of the test's network
namespace only (started per test: a restart is part of a fault test). Where it cannot run,
:func:`tests.isolation.unavailable` decides (under scripts/in-netns: fail, never skip)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.isolation import isolation_problem, unavailable

READY_WAIT = 20.0  # seconds a starting server may take to answer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    """One redis-server: its folder and port; :meth:`restart` keeps both (and the AOF)."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.folder), "--appendonly", "yes", "--save", "", "--logfile",
                str(self.folder / "log")]  # fmt: skip
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_WAIT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self._log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (the AOF keeps what it had written)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Kill, then start again on the same port and folder."""
        self.kill()
        self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log(self) -> str:
        try:
            return (self.folder / "log").read_text()[-2000:]
        except OSError:
            return "(no log)"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    problem = isolation_problem()
    if problem is None and shutil.which("redis-server") is None:
        problem = "redis-server is not installed (run scripts/setup)"
    if problem is not None:
        unavailable(f"the site worker tests: {problem}")
    server = RedisServer(Path(tempfile.mkdtemp(prefix="fleetbr-redis-")), _free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.folder, ignore_errors=True)
