"""Bare baseline for ``fleetbr run -- true``: connect to every target at once, run ``true`` as the
exec request, print the exit statuses. No wrapper, no timeout, no retries, no report.

Usage: ``python -m bench.bare_run TARGETS.json [--no-connect]`` (``--no-connect`` stops after
reading the targets, before importing asyncssh: the start-up that ``fleetbr inventory`` is
compared with, which does not import it either).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.bare_ssh import Target

COMMAND = "true"


async def one(target: Target) -> int | None:
    """Exit status of ``true`` on one host."""
    from bench.bare_ssh import session  # noqa: PLC0415 - after --no-connect's measure point

    async with session(target) as conn:
        done = await conn.run(COMMAND, check=False)
        return done.exit_status


async def main(targets: list[Target]) -> dict[str, int | None]:
    """Exit status of every host, by name."""
    statuses = await asyncio.gather(*(one(t) for t in targets))
    return {t["name"]: status for t, status in zip(targets, statuses, strict=True)}


if __name__ == "__main__":
    hosts: list[Target] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if "--no-connect" in sys.argv[2:]:
        sys.exit(0)
    json.dump(asyncio.run(main(hosts)), sys.stdout)
