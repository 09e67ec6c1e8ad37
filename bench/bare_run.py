"""Bare baseline for ``fleetbr run -- true``: connect to every target at once, run ``true`` as the
exec request, print the exit statuses. No wrapper, no timeout, no retries, no report.

Usage: ``python -m bench.bare_run TARGETS.json [--no-connect | --exec LINE]``. ``--no-connect``
stops after reading the targets, before importing asyncssh: the start-up that ``fleetbr
inventory`` is compared with, which does not import it either. ``--exec LINE`` sends LINE as the
exec request with ``true`` on its stdin (fleetbr's wrapper, rendered by the bench parent): the
host-side cost of the wrapper, without fleetbr on the controller.
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


async def one(target: Target, command: str, stdin: str | None) -> int | None:
    """Exit status of ``command`` on one host."""
    from bench.bare_ssh import session  # noqa: PLC0415 - after --no-connect's measure point

    async with session(target) as conn:
        done = await conn.run(command, input=stdin, check=False)
        return done.exit_status


async def main(targets: list[Target], command: str, stdin: str | None) -> dict[str, int | None]:
    """Exit status of every host, by name."""
    statuses = await asyncio.gather(*(one(t, command, stdin) for t in targets))
    return {t["name"]: status for t, status in zip(targets, statuses, strict=True)}


if __name__ == "__main__":
    hosts: list[Target] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    extra = sys.argv[2:]
    if "--no-connect" in extra:
        sys.exit(0)
    wrapped = extra[:1] == ["--exec"]
    command, stdin = (extra[1], COMMAND + "\n") if wrapped else (COMMAND, None)
    json.dump(asyncio.run(main(hosts, command, stdin)), sys.stdout)
