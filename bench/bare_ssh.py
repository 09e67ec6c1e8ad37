"""The bare side's only helpers: read the targets file and connect exactly like fleetbr does.

Kept free of fleetbr imports so the bare scripts pay only for asyncssh (and, where they need
them, fleetbr's rendering functions).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import asyncssh


class Target(TypedDict):
    """One host as the bench parent resolved it from fleetbr's own inventory loader."""

    name: str
    hostname: str
    port: int
    username: str | None
    client_keys: list[str]
    known_hosts: str
    connect_timeout: float
    keepalive_interval: float
    keepalive_count_max: int
    context: dict[str, Any]


def load_targets(path: Path) -> list[Target]:
    """The targets written by :func:`bench.common.write_targets`."""
    targets: list[Target] = json.loads(path.read_text(encoding="utf-8"))
    return targets


T = TypeVar("T")


@functools.cache
def _known_hosts(path: str) -> asyncssh.SSHKnownHosts:
    """The known_hosts file parsed once per process, as fleetbr's transport does: given a path,
    asyncssh would parse the whole file for every connection (O(fleet) per host)."""
    return asyncssh.read_known_hosts(path)


def forks_arg(argv: list[str]) -> int | None:
    """The value of ``--forks N`` in ``argv`` (None: every host at once)."""
    if "--forks" not in argv:
        return None
    return int(argv[argv.index("--forks") + 1])


async def bounded(jobs: Iterable[Awaitable[T]], forks: int | None) -> list[T]:
    """Await ``jobs`` with at most ``forks`` of them running at once (all at once for None)."""
    if forks is None:
        return list(await asyncio.gather(*jobs))
    gate = asyncio.Semaphore(forks)

    async def gated(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(gated(job) for job in jobs)))


async def connect(target: Target) -> asyncssh.SSHClientConnection:
    """Open a connection with fleetbr's options (keys, known_hosts, timeouts, keepalive)."""
    return await asyncssh.connect(
        target["hostname"],
        port=target["port"],
        username=target["username"],
        known_hosts=_known_hosts(target["known_hosts"]),
        client_keys=target["client_keys"],
        passphrase=None,
        connect_timeout=target["connect_timeout"],
        login_timeout=target["connect_timeout"] * 2,
        keepalive_interval=target["keepalive_interval"],
        keepalive_count_max=target["keepalive_count_max"],
    )


@asynccontextmanager
async def session(target: Target) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """``async with session(target) as conn:`` - connect, and always close and wait."""
    conn = await connect(target)
    try:
        yield conn
    finally:
        conn.close()
        await conn.wait_closed()


async def run_sh(conn: asyncssh.SSHClientConnection, script: str) -> str:
    """Send ``script`` to ``sh -s`` on stdin and return its stdout (as fleetbr does)."""
    done = await conn.run("sh -s", input=script, check=False)
    out = done.stdout
    return out if isinstance(out, str) else ""
