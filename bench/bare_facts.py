"""Bare baseline for ``fleetbr facts``: connect to every target at once, send the same facts
script to ``sh -s``, print the raw outputs. No parsing, no retries, no report.

Usage: ``python -m bench.bare_facts TARGETS.json [--no-connect] [--forks N]`` (``--no-connect``
stops after imports and rendering, to measure start-up cost; ``--forks N``: at most N hosts at
once, as ``fleetbr -f N``; default all at once).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.bare_ssh import Target, bounded, forks_arg, load_targets, run_sh, session
from fleetbr.facts.script import facts_script


async def one(target: Target, script: str) -> str:
    """Facts output of one host."""
    async with session(target) as conn:
        return await run_sh(conn, script)


async def main(targets: list[Target], forks: int | None = None) -> dict[str, str]:
    """Raw facts output of every host, by name."""
    script = facts_script()
    outputs = await bounded((one(t, script) for t in targets), forks)
    return {t["name"]: out for t, out in zip(targets, outputs, strict=True)}


if __name__ == "__main__":
    hosts = load_targets(Path(sys.argv[1]))
    if "--no-connect" in sys.argv[2:]:
        facts_script()
        sys.exit(0)
    json.dump(asyncio.run(main(hosts, forks_arg(sys.argv))), sys.stdout)
