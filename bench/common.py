"""Shared by the benchmarks: a lab in a temp dir, timing child processes, and the report."""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleetbr import lab
from fleetbr.inventory import load_inventory

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WARM_IMPORTS = (
    "import fleetbr.cli, fleetbr.adhoc.main, bench.bare_facts, bench.bare_cutover, bench.bare_run"
)


@dataclass(frozen=True)
class Run:
    """One timed child process: wall seconds, controller CPU seconds (user+sys), its stdout."""

    wall: float
    cpu: float
    stdout: str


def parser(description: str, rounds: int = 5) -> argparse.ArgumentParser:
    """Options every benchmark takes."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--hosts", type=int, default=50, help="lab hosts (default 50)")
    args.add_argument("--rounds", type=int, default=rounds, help=f"rounds (default {rounds})")
    args.add_argument("--prefix", default="fbrb", help="lab namespace prefix (default fbrb)")
    args.add_argument("--profile", action="store_true", help="also cProfile one fleetbr run")
    return args


@contextmanager
def lab_up(hosts: int, prefix: str) -> Iterator[lab.Lab]:
    """A lab of ``hosts`` hosts in a temp dir, and warm bytecode for the children; always torn
    down."""
    with tempfile.TemporaryDirectory(prefix="fleetbr-bench-") as tmp, _bytecode(Path(tmp)):
        lab_dir = Path(tmp) / "lab"
        started = time.monotonic()
        built = lab.up(lab_dir, hosts=hosts, prefix=prefix)
        try:
            print(f"lab: {hosts} hosts up in {time.monotonic() - started:.2f}s", file=sys.stderr)
            timed([PYTHON, "-c", WARM_IMPORTS])
            yield built
        finally:
            lab.down(lab_dir)


@contextmanager
def _bytecode(tmp: Path) -> Iterator[None]:
    """Let the children cache bytecode in ``tmp`` (never in the checkout).

    With PYTHONDONTWRITEBYTECODE set (as in this project's sessions), every run would compile
    fleetbr from source, which an installed fleetbr never does, and the bare side imports fewer
    modules, so it would skew the CPU ratio.
    """
    saved = {
        name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_targets(built: lab.Lab, path: Path) -> Path:
    """Resolve the lab inventory with fleetbr's loader and write what the bare scripts need."""
    targets = [
        {
            "name": spec.name,
            "hostname": spec.hostname,
            "port": spec.port,
            "username": spec.username,
            "client_keys": list(spec.ssh.client_keys),
            "known_hosts": spec.ssh.known_hosts,
            "connect_timeout": spec.ssh.connect_timeout,
            "keepalive_interval": spec.ssh.keepalive_interval,
            "keepalive_count_max": spec.ssh.keepalive_count_max,
            "context": spec.context(),
        }
        for spec in load_inventory(built.inventory_dir).values()
    ]
    path.write_text(json.dumps(targets), encoding="utf-8")
    return path


def timed(argv: Sequence[str]) -> Run:
    """Run ``argv`` from the repo root; wall time and the child's CPU (RUSAGE_CHILDREN delta)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        list(argv), cwd=REPO, capture_output=True, text=True, check=False, env=_env()
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, done.stdout)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


Check = Callable[[Run, int], None]


def alternate(
    sides: Mapping[str, tuple[list[str], Check]],
    rounds: int,
    hosts: int,
    after_each: Callable[[], None] | None = None,
) -> dict[str, list[Run]]:
    """Run each side once per round, alternating which goes first; check every run.

    ``after_each`` runs (untimed) after every run, e.g. to reset the hosts.
    """
    results: dict[str, list[Run]] = {name: [] for name in sides}
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
        for name in order:
            argv, check = sides[name]
            run = timed(argv)
            check(run, hosts)
            results[name].append(run)
            if after_each is not None:
                after_each()
    return results


def median_run(runs: Sequence[Run]) -> tuple[float, float]:
    """(median wall, median CPU) of ``runs``."""
    return statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs)


def report(
    title: str, hosts: int, results: dict[str, list[Run]], target: float
) -> tuple[float, float]:
    """Print per-round figures, medians and the fleetbr/bare ratios; return (wall, CPU) ratios."""
    print(f"\n{title}: {hosts} hosts, {len(results['fleetbr'])} rounds")
    for name, runs in results.items():
        rounds = "  ".join(f"{r.wall:5.2f}s/{r.cpu:5.2f}s" for r in runs)
        print(f"  {name:8} wall/CPU per round: {rounds}")
    print(f"  {'':8} {'wall s':>8} {'CPU s':>8} {'CPU/host ms':>12}   (medians)")
    medians = {name: median_run(runs) for name, runs in results.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  {name:8} {wall:8.2f} {cpu:8.3f} {cpu / hosts * 1000:12.1f}")
    wall_ratio = medians["fleetbr"][0] / medians["bare"][0]
    cpu_ratio = medians["fleetbr"][1] / medians["bare"][1]
    verdict = "OK" if max(wall_ratio, cpu_ratio) <= target else "OVER TARGET"
    print(
        f"  ratio fleetbr/bare: wall {wall_ratio:.2f}, CPU {cpu_ratio:.2f} "
        f"(target <= {target:g}): {verdict}"
    )
    return wall_ratio, cpu_ratio


STARTUP_RUNS = 3


def startup(fleetbr_argv: Sequence[str], bare_argv: Sequence[str]) -> dict[str, list[Run]]:
    """Start-up cost without connecting (``fleetbr --json inventory`` against the bare script's
    ``--no-connect``), STARTUP_RUNS times each, for :func:`overhead`."""
    return {
        "fleetbr": [timed(fleetbr_argv) for _ in range(STARTUP_RUNS)],
        "bare": [timed(bare_argv) for _ in range(STARTUP_RUNS)],
    }


def overhead(hosts: int, results: dict[str, list[Run]], startup: dict[str, list[Run]]) -> None:
    """Split fleetbr's extra CPU into a fixed start-up part and a per-host part."""
    cpu = {name: median_run(runs)[1] for name, runs in results.items()}
    start = {name: median_run(runs)[1] for name, runs in startup.items()}
    fixed = start["fleetbr"] - start["bare"]
    per_host = (cpu["fleetbr"] - start["fleetbr"] - (cpu["bare"] - start["bare"])) / hosts
    print(
        f"  start-up CPU (imports, inventory/targets, rendering; no connection): "
        f"fleetbr {start['fleetbr'] * 1000:.0f} ms, bare {start['bare'] * 1000:.0f} ms "
        f"-> fixed overhead {fixed * 1000:.0f} ms"
    )
    print(
        f"  per-host CPU beyond start-up: fleetbr "
        f"{(cpu['fleetbr'] - start['fleetbr']) / hosts * 1000:.1f} ms, bare "
        f"{(cpu['bare'] - start['bare']) / hosts * 1000:.1f} ms -> per-host overhead "
        f"{per_host * 1000:.1f} ms"
    )


def profile_top(argv: Sequence[str], limit: int = 25) -> None:
    """Run a ``-m module`` command once under cProfile and print the top functions by own time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prof"
        timed([PYTHON, "-m", "cProfile", "-o", str(out), *argv])
        print(f"\ncProfile of {' '.join(argv[:2])} (top {limit} by own time):")
        stats = pstats.Stats(str(out), stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(limit)


def task_copy(directory: Path, timeout: int) -> Path:
    """tasks/bridge.yaml with the dead-man timeout set to ``timeout`` seconds, in ``directory``."""
    doc = yaml.safe_load((REPO / "tasks" / "bridge.yaml").read_text(encoding="utf-8"))
    doc["deadman"]["timeout"] = timeout
    path = directory / "bridge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
