"""``fleetbr facts`` against a bare asyncssh script, alternated round by round on one lab.

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.facts_bench [--hosts N]
[--rounds R] [--profile]``. Prints medians of wall time and controller CPU, and the ratios.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.common import (
    PYTHON,
    Run,
    alternate,
    lab_up,
    overhead,
    parser,
    profile_top,
    report,
    startup,
    write_targets,
)

TARGET = 1.3


def fleetbr_cmd(inventory: Path, command: str = "facts") -> list[str]:
    """The real CLI, as a user runs it."""
    return [PYTHON, "-m", "fleetbr", "-i", str(inventory), "--json", command]


def bare_cmd(targets: Path, *extra: str) -> list[str]:
    """The bare asyncssh baseline."""
    return [PYTHON, "-m", "bench.bare_facts", str(targets), *extra]


def check_fleetbr(run: Run, hosts: int) -> None:
    """Every host answered with parsed facts."""
    doc = json.loads(run.stdout)
    ok = [name for name, r in doc.items() if r["status"] == "ok" and r.get("facts")]
    if len(ok) != hosts:
        raise RuntimeError(f"fleetbr facts: only {len(ok)}/{hosts} hosts ok")


def check_bare(run: Run, hosts: int) -> None:
    """Every host printed a complete facts output."""
    doc = json.loads(run.stdout)
    ok = [name for name, out in doc.items() if out.rstrip().endswith("@@fleetbr-end")]
    if len(ok) != hosts:
        raise RuntimeError(f"bare facts: only {len(ok)}/{hosts} complete outputs")


def main() -> int:
    """Bring up a lab, alternate the two sides, print the figures."""
    args = parser("fleetbr facts vs bare asyncssh").parse_args()
    with lab_up(args.hosts, args.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        targets = write_targets(built, Path(tmp) / "targets.json")
        sides = {
            "fleetbr": (fleetbr_cmd(built.inventory_dir), check_fleetbr),
            "bare": (bare_cmd(targets), check_bare),
        }
        results = alternate(sides, args.rounds, args.hosts)
        costs = startup(fleetbr_cmd(built.inventory_dir, "inventory"),
                        bare_cmd(targets, "--no-connect"))  # fmt: skip
        report("facts", args.hosts, results, TARGET)
        overhead(args.hosts, results, costs)
        if args.profile:
            profile_top(fleetbr_cmd(built.inventory_dir)[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
