"""``fleetbr check`` against ``fleetbr facts``, alternated round by round on one lab.

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.check_bench [--hosts N]
[--rounds R] [--profile]``. Every host is first converted with tasks/bridge.yaml (untimed), so
check finds them all in sync; both sides then make one connection and one facts round trip per
host. What check adds is rendering the task per host, planning and comparing. Prints medians of
wall time and controller CPU, and the ratios check/facts (target: within 1.2x).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import (
    PYTHON,
    REPO,
    Check,
    Run,
    alternate,
    lab_up,
    parser,
    profile_top,
    timed,
)

TARGET = 1.2


def fleetbr_cmd(inventory: Path, *command: str) -> list[str]:
    """The real CLI, as a user runs it."""
    return [PYTHON, "-m", "fleetbr", "-i", str(inventory), "--json", *command]


def _expect(status: str) -> Check:
    def check(run: Run, hosts: int) -> None:
        doc = json.loads(run.stdout)
        ok = [name for name, r in doc.items() if r["status"] == status]
        if len(ok) != hosts:
            raise RuntimeError(f"only {len(ok)}/{hosts} hosts {status}")

    return check


def task_file(directory: Path) -> Path:
    """tasks/bridge.yaml with a 30 s dead-man timeout (the lab's hosts answer fast)."""
    doc = yaml.safe_load((REPO / "tasks" / "bridge.yaml").read_text())
    doc["deadman"]["timeout"] = 30
    path = directory / "bridge.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def report(hosts: int, results: dict[str, list[Run]]) -> None:
    """Every round, the medians and the check/facts ratios."""
    print(f"\ncheck vs facts: {hosts} hosts, {len(results['check'])} rounds")
    medians = {}
    for name, runs in results.items():
        rounds = "  ".join(f"{r.wall:5.2f}s/{r.cpu:5.2f}s" for r in runs)
        print(f"  {name:6} wall/CPU per round: {rounds}")
        medians[name] = (statistics.median(r.wall for r in runs),
                         statistics.median(r.cpu for r in runs))  # fmt: skip
    print(f"  {'':6} {'wall s':>8} {'CPU s':>8} {'CPU/host ms':>12}   (medians)")
    for name, (wall, cpu) in medians.items():
        print(f"  {name:6} {wall:8.2f} {cpu:8.3f} {cpu / hosts * 1000:12.1f}")
    wall_ratio = medians["check"][0] / medians["facts"][0]
    cpu_ratio = medians["check"][1] / medians["facts"][1]
    verdict = "OK" if max(wall_ratio, cpu_ratio) <= TARGET else "OVER TARGET"
    print(f"  ratio check/facts: wall {wall_ratio:.2f}, CPU {cpu_ratio:.2f} "
          f"(target <= {TARGET:g}): {verdict}")  # fmt: skip


def main() -> int:
    """Bring up a lab, bridge every host, alternate check and facts, print the figures."""
    args = parser("fleetbr check vs fleetbr facts").parse_args()
    with lab_up(args.hosts, args.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        task = task_file(Path(tmp))
        timed(fleetbr_cmd(built.inventory_dir, "apply", str(task)))  # untimed set-up
        check = fleetbr_cmd(built.inventory_dir, "check", str(task))
        timed(check)  # untimed: its modules' bytecode is cached like the others'
        sides = {
            "check": (check, _expect("in_sync")),
            "facts": (fleetbr_cmd(built.inventory_dir, "facts"), _expect("ok")),
        }
        results = alternate(sides, args.rounds, args.hosts)
        report(args.hosts, results)
        if args.profile:
            profile_top(check[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
