"""One controller from 10 to 1000 hosts: ``fleetbr facts`` and ``fleetbr apply`` side by side with
the bare asyncssh floor, on a fresh lab per size.

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.scale_bench
[--sizes 10,50,200,500,1000] [--rounds 1] [--no-apply] [--profile SIZE]``. The default sizes
(10,50) finish in a few minutes. Per size and side: controller CPU (user+sys of the child
process, start-up included), CPU per host, wall time and peak RSS; the ratios against the floor;
at the end the flatness of CPU per host from 50 hosts up. ``--baseline DIR`` adds the fleetbr
sides run from another checkout (e.g. ``git worktree add DIR COMMIT``), alternated with the rest:
before/after figures on the same lab.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import PYTHON, REPO, _env, lab_up, profile_top, task_copy, write_targets
from bench.cutover_bench import check_bridged, reset_all
from bench.facts_bench import bare_cmd, fleetbr_cmd
from fleetbr import lab
from fleetbr.inventory import SSHOptions
from fleetbr.transaction.protocol import min_timeout

FORKS = 50  # fleetbr's default -f; the floor gets the same bound
DEADMAN = 30  # the apply's dead-man timeout, raised to what fleetbr needs for CONNECT_TIMEOUT
CONNECT_TIMEOUT = 30  # the lab's 3 s: the bare side (no retries) timed out on a loaded machine
FLAT_FROM = 50
FLAT_TARGET = 0.15
STARTUP_TARGET = 1.2


@dataclass(frozen=True)
class Sample:
    """One child process: wall s, CPU s (user+sys), peak RSS in MiB, and its stdout."""

    wall: float
    cpu: float
    rss: float
    stdout: str


def measure(argv: Sequence[str]) -> Sample:
    """Run ``argv`` from the repo root and account for that one child alone (``os.wait4``: unlike
    RUSAGE_CHILDREN, whose ru_maxrss is the largest of every child so far, this gives each run's
    own peak RSS)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=REPO, stdout=out, stderr=err, env=_env())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:5]} exited {proc.returncode}: {err.read()[-2000:]}")
        return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read())


def _count(sample: Sample, ok: Callable[[object], bool]) -> int:
    return sum(1 for value in json.loads(sample.stdout).values() if ok(value))


def _checked(name: str, sample: Sample, hosts: int, ok: Callable[[object], bool]) -> Sample:
    good = _count(sample, ok)
    if good != hosts:
        raise RuntimeError(f"{name}: only {good}/{hosts} hosts succeeded")
    return sample


def _facts_ok(r: object) -> bool:
    return isinstance(r, dict) and r.get("status") == "ok" and bool(r.get("facts"))


def _bare_facts_ok(out: object) -> bool:
    return isinstance(out, str) and out.rstrip().endswith("@@fleetbr-end")


def _confirmed(r: object) -> bool:
    return isinstance(r, dict) and r.get("status") == "confirmed"


def _bare_confirmed(decision: object) -> bool:
    return decision == "confirmed"


def deadman() -> int:
    """The apply's dead-man timeout: DEADMAN, or fleetbr's shortest for CONNECT_TIMEOUT if that
    is longer (both sides would refuse a shorter one: 30 s with a 30 s connect timeout did)."""
    return max(DEADMAN, min_timeout(SSHOptions(connect_timeout=CONNECT_TIMEOUT)))


def apply_task(directory: Path) -> Path:
    """tasks/bridge.yaml with ``persist: none`` and the bench's dead-man timeout."""
    path = task_copy(directory, deadman())
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["persist"] = "none"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Size:
    """Every side's samples at one lab size."""

    hosts: int
    samples: dict[str, list[Sample]]


Side = tuple[list[str], Callable[[object], bool]]


def _sides(built: lab.Lab, tmp: Path, with_apply: bool, baseline: Path | None) -> dict[str, Side]:
    # before the targets are written: the floor reads its timeout from them, fleetbr from the file
    _set_connect_timeout(built.inventory_dir / "defaults.yaml", CONNECT_TIMEOUT)
    targets = str(write_targets(built, tmp / "targets.json"))
    forks = ["--forks", str(FORKS)]
    inv = built.inventory_dir
    sides: dict[str, Side] = {
        "floor facts": (bare_cmd(Path(targets), *forks), _bare_facts_ok),
        "fleetbr facts": (fleetbr_cmd(inv), _facts_ok),
    }
    if with_apply:
        task = str(apply_task(tmp))
        bare = [PYTHON, "-m", "bench.bare_cutover", targets, task, *forks]
        apply = [PYTHON, "-m", "fleetbr", "-i", str(inv), "--json", "apply", task]
        sides |= {"floor apply": (bare, _bare_confirmed), "fleetbr apply": (apply, _confirmed)}
    if baseline is not None:  # the same fleetbr commands from another checkout
        sides |= {
            f"{name} (base)": (_from_tree(argv, baseline), ok)
            for name, (argv, ok) in list(sides.items())
            if name.startswith("fleetbr")
        }
    return sides


def _set_connect_timeout(defaults: Path, seconds: int) -> None:
    """The same connect timeout for every side (the bare side reads it through fleetbr's loader)."""
    doc = yaml.safe_load(defaults.read_text(encoding="utf-8"))
    doc["connection_options"]["fleetbr"]["extras"]["connect_timeout"] = seconds
    defaults.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def _from_tree(argv: list[str], tree: Path) -> list[str]:
    """``argv`` importing fleetbr from ``tree`` (its PYTHONPATH comes first)."""
    code = (
        f"import sys, runpy; sys.path.insert(0, {str(tree)!r}); "
        "runpy.run_module('fleetbr', run_name='__main__', alter_sys=True)"
    )
    return [argv[0], "-c", code, *argv[3:]]


def run_size(hosts: int, args: argparse.Namespace) -> Size:
    """Bring up a lab of ``hosts``, run every side ``args.rounds`` times (alternating the order
    round by round; hosts reset after every apply, untimed), take the lab down."""
    samples: dict[str, list[Sample]] = {}
    with lab_up(hosts, args.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        sides = _sides(built, Path(tmp), args.apply, args.baseline)
        for index in range(args.rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                _one(name, sides[name], hosts, samples)
                if "apply" in name:
                    check_bridged(built)
                    reset_all(built)
        if args.profile == hosts:
            profile_top(fleetbr_cmd(built.inventory_dir)[1:], limit=30)
    return Size(hosts, samples)


def _one(name: str, side: Side, hosts: int, samples: dict[str, list[Sample]]) -> None:
    """Measure one run of a side; a failed run (a host not done, a crash) is reported on stderr
    and left out of the figures, so one timeout on a loaded machine does not lose the others."""
    argv, ok = side
    try:
        sample = _checked(name, measure(argv), hosts, ok)
    except (RuntimeError, ValueError) as exc:
        print(f"  {hosts:5} {name:14} FAILED, not counted: {str(exc)[-300:]}", file=sys.stderr)
        return
    samples.setdefault(name, []).append(sample)
    print(f"  {hosts:5} {name:14} {sample.wall:7.2f}s {sample.cpu:7.2f}s CPU "
          f"{sample.rss:5.0f} MiB", file=sys.stderr)  # fmt: skip


def _median(samples: list[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


def print_table(sizes: list[Size]) -> None:
    """One row per size and side, with the ratios against that size's floor."""
    print(
        "\n| hosts | side | wall s | CPU s | CPU/host ms | peak RSS MiB | CPU/floor | wall/floor |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for name, samples in size.samples.items():
            floor = size.samples.get("floor " + name.split()[1])
            cpu, wall = _median(samples, "cpu"), _median(samples, "wall")
            ratios = (
                f"{cpu / _median(floor, 'cpu'):.2f} | {wall / _median(floor, 'wall'):.2f}"
                if floor
                else "n/a | n/a"
            )
            print(
                f"| {size.hosts} | {name} | {wall:.2f} | {cpu:.2f} | {cpu / size.hosts * 1000:.1f}"
                f" | {_median(samples, 'rss'):.0f} | {ratios} |"
            )


def print_flatness(sizes: list[Size]) -> None:
    """Per side from FLAT_FROM hosts up: CPU per host (start-up included, so it falls as the
    start-up spreads over more hosts) and the marginal CPU per host between consecutive sizes
    ((CPU(b) - CPU(a)) / (b - a): flat when nothing costs more per host in a larger fleet); the
    spread of each is (max - min) / min. Then the goal at FLAT_FROM hosts."""
    big = [s for s in sizes if s.hosts >= FLAT_FROM]
    names = [n for n in big[0].samples if all(n in s.samples for s in big)] if len(big) > 1 else []
    for name in names:
        cpu = [_median(s.samples[name], "cpu") for s in big]
        per_host = [c / s.hosts * 1000 for c, s in zip(cpu, big, strict=True)]
        steps = list(zip(big, big[1:], cpu, cpu[1:], strict=False))
        marginal = [(cb - ca) / (b.hosts - a.hosts) * 1000 for a, b, ca, cb in steps]
        print(f"{name}: CPU/host ms " + _row([s.hosts for s in big], per_host))
        print(f"{'':{len(name)}}  marginal ms " +
              _row([f"{a.hosts}-{b.hosts}" for a, b, *_ in steps], marginal))  # fmt: skip
    for size in (s for s in sizes if s.hosts == FLAT_FROM):
        for side in ("facts", "apply"):
            if f"fleetbr {side}" in size.samples and f"floor {side}" in size.samples:
                ratio = _median(size.samples[f"fleetbr {side}"], "cpu") / _median(
                    size.samples[f"floor {side}"], "cpu"
                )
                print(f"{side} at {FLAT_FROM} hosts: CPU {ratio:.2f}x the floor "
                      f"(goal <= {STARTUP_TARGET}x)")  # fmt: skip


def _row(labels: Sequence[object], values: list[float]) -> str:
    if not values or min(values) <= 0:
        return "n/a"
    spread = (max(values) - min(values)) / min(values)
    verdict = "flat" if spread <= FLAT_TARGET else "NOT flat"
    cells = ", ".join(f"{label}: {v:.1f}" for label, v in zip(labels, values, strict=True))
    return f"{cells}  spread {spread:.0%} (goal <= {FLAT_TARGET:.0%}: {verdict})"


def main() -> int:
    """Parse the options, run every size, print the table."""
    args = argparse.ArgumentParser(description="fleetbr facts/apply vs the floor, 10-1000 hosts")
    args.add_argument("--sizes", default="10,50", help="comma-separated lab sizes (default 10,50)")
    args.add_argument("--rounds", type=int, default=1, help="rounds per size (default 1)")
    args.add_argument("--prefix", default="fbrz", help="lab namespace prefix (default fbrz)")
    args.add_argument("--no-apply", dest="apply", action="store_false", help="facts only")
    args.add_argument("--profile", type=int, default=0, help="cProfile fleetbr facts at SIZE")
    args.add_argument("--baseline", type=Path, help="also run the fleetbr sides from this checkout")
    opts = args.parse_args()
    sizes = []
    for n in opts.sizes.split(","):
        sizes.append(run_size(int(n), opts))
        print_table(sizes[-1:])  # as it goes: a later size's failure loses nothing
    print(f"\none controller, -f {FORKS}, {opts.rounds} round(s), medians; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print_table(sizes)
    print()
    print_flatness(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
