"""A throw-away redis-server for the tests of site workers on Celery: Debian's redis-server
(scripts/setup), append-only file on, in a temporary folder, on 127.0.0.1 of the test's network
namespace only (started per test: a restart is part of a fault test). Where it cannot run,
:func:`tests.isolation.unavailable` decides (under scripts/in-netns: fail, never skip)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbr.lab.demos.services import Redis, free_port
from tests.isolation import isolation_problem, unavailable


class RedisServer(Redis):
    """The demo's redis-server (fleetbr.lab.demos.services), plus the fault tests' kill and
    restart: :meth:`restart` keeps the port and the folder (and the AOF)."""

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


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    problem = isolation_problem()
    if problem is None and shutil.which("redis-server") is None:
        problem = "redis-server is not installed (run scripts/setup)"
    if problem is not None:
        unavailable(f"the site worker tests: {problem}")
    server = RedisServer(Path(tempfile.mkdtemp(prefix="fleetbr-redis-")), free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.folder, ignore_errors=True)
