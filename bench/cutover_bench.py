"""A confirmed cutover with ``fleetbr apply`` against a bare asyncssh script sending the same
commands, alternated round by round on one lab; every host is reset between runs (not timed).

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.cutover_bench [--hosts N]
[--rounds R] [--profile]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    PYTHON,
    Check,
    Run,
    alternate,
    lab_up,
    parser,
    profile_top,
    report,
    task_copy,
    write_targets,
)
from fleetbr import lab

TARGET = 1.5
DEADMAN = 30


def check_fleetbr(run: Run, hosts: int) -> None:
    """fleetbr confirmed every host."""
    doc = json.loads(run.stdout)
    bad = {name: r["status"] for name, r in doc.items() if r["status"] != "confirmed"}
    if bad or len(doc) != hosts:
        raise RuntimeError(f"fleetbr apply: {len(doc)} hosts, not confirmed: {bad}")


def check_bare(run: Run, hosts: int) -> None:
    """Every bare disarm reported "confirmed"."""
    doc = json.loads(run.stdout)
    bad = {name: d for name, d in doc.items() if d != "confirmed"}
    if bad or len(doc) != hosts:
        raise RuntimeError(f"bare cutover: {len(doc)} hosts, not confirmed: {bad}")


def check_bridged(built: lab.Lab) -> None:
    """Independently of either side: the NIC of every host is a port of br0 (no SSH)."""
    for host in built.hosts:
        out = lab.host_exec(built, host, ["ip", "-j", "link", "show", "dev", host.nic]).stdout
        if json.loads(out)[0].get("master") != "br0":
            raise RuntimeError(f"{host.name}: {host.nic} is not in br0 after the run")


def reset_all(built: lab.Lab) -> None:
    """Every host back to its post-``up`` state, in parallel."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda h: lab.reset_host(built, h), built.hosts))


def main() -> int:
    """Bring up a lab, alternate the two sides with a reset in between, print the figures."""
    args = parser("fleetbr apply vs bare asyncssh cutover").parse_args()
    with lab_up(args.hosts, args.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        targets = write_targets(built, Path(tmp) / "targets.json")
        task = task_copy(Path(tmp), DEADMAN)
        fleetbr = [PYTHON, "-m", "fleetbr", "-i", str(built.inventory_dir), "--json", "apply",
                   str(task)]  # fmt: skip
        sides: dict[str, tuple[list[str], Check]] = {
            "fleetbr": (fleetbr, check_fleetbr),
            "bare": ([PYTHON, "-m", "bench.bare_cutover", str(targets), str(task)], check_bare),
        }

        def verify_and_reset() -> None:
            check_bridged(built)
            reset_all(built)

        results = alternate(sides, args.rounds, args.hosts, verify_and_reset)
        report("cutover", args.hosts, results, TARGET)
        if args.profile:
            profile_top(fleetbr[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
