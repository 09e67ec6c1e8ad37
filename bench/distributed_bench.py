"""Distributed overhead: the same ``fleetbr apply`` by one local controller and by a coordinator
with two site workers (Celery), side by side in one run.

Usage (repository root): ``scripts/in-netns .venv/bin/python -m bench.distributed_bench
[--hosts 200] [--rounds 2]``. One netns lab of N hosts split into two sites (``east``: the first
half, ``west``: the rest), each served by one ``fleetbr worker --site S --concurrency 1``; a
redis-server (broker) and a PostgreSQL (the run history, shared by both sides) started here,
in this namespace, with the test suite's own helpers (tests/redisserver.py, tests/pgserver.py).
Per round, in alternating order: **local** (``fleetbr --history PG apply``) and **distributed**
(``fleetbr --history PG apply --executor celery``), every host checked bridged and reset after
each, untimed. The workers start once, before the first round (their start-up is reported on
its own: a site worker is a long-running service). Figures per run: wall time; CPU of fleetbr's
processes (the controller, or the coordinator plus both workers' process trees, their pool
children included), from ``os.wait4`` and ``/proc/PID/stat``; CPU of redis-server and
PostgreSQL (reported, not in the ratio); broker commands (redis ``INFO commandstats``), the
history's row writes (``pg_stat_user_tables``), rows kept and database growth per host.
``--profile``: then the coordinator under cProfile, and one site's chunk run in this process
under cProfile (:mod:`bench.distributed_profile`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
import yaml

from bench.common import PYTHON, REPO, _env, lab_up
from bench.cutover_bench import check_bridged, reset_all
from bench.distributed_figures import (
    DISTRIBUTED,
    LOCAL,
    Sample,
    calls_delta,
    command_calls,
    not_confirmed,
    ratios,
    read_stats,
    table,
    trees_cpu,
    verdict,
)
from bench.distributed_profile import profile_chunk, profile_coordinator
from bench.scale_bench import apply_task
from fleetbr import lab
from fleetbr.distributed.config import BROKER_ENV, CONFIG_ENV
from fleetbr.lab.demos.services import free_port
from tests import pgserver
from tests.redisserver import RedisServer

SITES = ("east", "west")
READY_WAIT = 180.0  # seconds a worker may take to start on a loaded machine
SETTLE = 10.0  # seconds PostgreSQL's statistics may take to count an ended backend's writes


@dataclass
class Services:
    """The broker and the history this run uses."""

    redis: RedisServer
    history: str
    postmaster: int


@contextmanager
def services(tmp: Path) -> Iterator[Services]:
    """A redis-server and a PostgreSQL database in this namespace; always stopped."""
    binaries = pgserver._binaries()
    if binaries is None:
        raise SystemExit("PostgreSQL is not installed (run scripts/setup: postgresql-15)")
    broker = RedisServer(tmp / "redis", free_port())
    broker.folder.mkdir()
    broker.start()
    try:
        pg = pgserver.start(binaries)
        try:
            pid = int((pg.folder / "data" / "postmaster.pid").read_text().split()[0])
            yield Services(broker, pg.create_database(), pid)
        finally:
            pgserver.stop(binaries, pg)
    finally:
        broker.kill()


def inventories(built: lab.Lab, tmp: Path) -> dict[str, Path]:
    """``all`` (every host, with ``data.site``) and one inventory per site (its hosts only)."""
    hosts = yaml.safe_load((built.inventory_dir / "hosts.yaml").read_text())
    names = sorted(hosts)
    site_of = {name: SITES[0] if i < len(names) // 2 else SITES[1] for i, name in enumerate(names)}
    for name in names:
        hosts[name].setdefault("data", {})["site"] = site_of[name]
    made = {}
    for label in ("all", *SITES):
        dest = tmp / f"inventory-{label}"
        shutil.copytree(built.inventory_dir, dest, symlinks=True)
        mine = {n: h for n, h in hosts.items() if label in ("all", site_of[n])}
        (dest / "hosts.yaml").write_text(yaml.safe_dump(mine))
        made[label] = dest
    return made


def configure(tmp: Path, broker: str) -> None:
    """The distributed settings for every child (a 0600 config file, the broker in the env)."""
    config = tmp / "distributed.yaml"
    config.write_text(yaml.safe_dump({"start_wait": 300}))
    config.chmod(0o600)
    os.environ[CONFIG_ENV] = str(config)
    os.environ[BROKER_ENV] = broker


@dataclass
class Worker:
    """One ``fleetbr worker`` (its own session: SIGTERM to the group ends its pool too)."""

    site: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Warm shutdown, then SIGKILL after 20 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_worker(site: str, inventory: Path, history: str, tmp: Path) -> Worker:
    """Start a site worker and wait until Celery says it is ready; print its start-up cost."""
    log = tmp / f"worker-{site}.log"
    argv = [PYTHON, "-m", "fleetbr", "-i", str(inventory), "--history", history, "worker",
            "--site", site, "--concurrency", "1"]  # fmt: skip
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   env=_env(), start_new_session=True)  # fmt: skip
    worker = Worker(site, process, log)
    deadline = time.monotonic() + READY_WAIT
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker {site} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    cpu = trees_cpu({"w": [process.pid]}, read_stats())["w"]
    print(f"worker {site}: ready in {time.perf_counter() - started:.2f}s, start-up CPU "
          f"{cpu:.2f}s (process tree)", file=sys.stderr)  # fmt: skip
    return worker


class Meters:
    """Readings of the broker, the history and the process trees around one run."""

    def __init__(self, found: Services, workers: list[Worker]) -> None:
        self.found = found
        self.redis = redis.Redis.from_url(found.redis.url)
        self.roots = {"workers": [w.process.pid for w in workers],
                      "services": [found.redis.process.pid if found.redis.process else 0,
                                   found.postmaster]}  # fmt: skip

    def read(self) -> dict[str, Any]:
        """Everything counted so far."""
        calls = command_calls(self.redis.info("commandstats"))
        with psycopg.connect(self.found.history, autocommit=True) as db:
            writes = _scalar(db, "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                             "FROM pg_stat_user_tables")  # fmt: skip
            size = _scalar(db, "SELECT pg_database_size(current_database())")
            run = _scalar(db, "SELECT coalesce(max(id), 0) FROM runs")
            rows = _scalar(db, "SELECT count(*) FROM host_results WHERE run_id = %s", run)
            kept = _scalar(db, "SELECT coalesce(sum(pg_column_size(h.*)), 0) FROM host_results h"
                           " WHERE run_id = %s", run)  # fmt: skip
        return {"calls": calls, "writes": writes, "size": size, "rows": rows, "kept": kept,
                "cpu": trees_cpu(self.roots, read_stats())}  # fmt: skip

    def settled(self, before_writes: int) -> dict[str, Any]:
        """A reading once the statistics stop moving (ended backends report on their way out)."""
        last = self.read()
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.read()
            if now["writes"] == last["writes"] and now["writes"] > before_writes:
                return now
            last = now
        return last


@dataclass(frozen=True)
class Child:
    """One child process: wall s, CPU s (``os.wait4``: that child alone), exit code, output."""

    wall: float
    cpu: float
    code: int
    stdout: str
    stderr: str


def timed_child(argv: list[str]) -> Child:
    """Run ``argv`` from the repo root and account for it alone (a failure is returned)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=err, env=_env())
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Child(wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status),
                     out.read(), err.read())  # fmt: skip


def _scalar(db: psycopg.Connection[Any], sql: str, *args: object) -> int:
    row = db.execute(sql, args or None).fetchone()
    return int(row[0]) if row else 0


def run_side(name: str, argv: list[str], hosts: int, meters: Meters) -> Sample:
    """One timed run of a side with every reading around it; RuntimeError naming the hosts
    that were not confirmed."""
    before = meters.read()
    run = timed_child(argv)
    after = meters.settled(before["writes"])
    try:
        document = json.loads(run.stdout)
    except ValueError:
        raise RuntimeError(f"{name}: exit {run.code}, no JSON: {run.stderr[-400:]}") from None
    missed = not_confirmed(document, hosts)
    if missed:
        raise RuntimeError(f"{name}: exit {run.code}: " + "; ".join(missed))
    cpu = {g: after["cpu"][g] - before["cpu"][g] for g in before["cpu"]}
    own = "controller" if name == LOCAL else "coordinator"
    if name == LOCAL:
        cpu["idle workers"] = cpu.pop("workers")
    calls = calls_delta(before["calls"], after["calls"])
    calls.pop("info", None)  # the bench's own readings
    return Sample(run.wall, {own: run.cpu, **cpu}, sum(calls.values()),
                  after["writes"] - before["writes"], after["rows"],
                  after["kept"], after["size"] - before["size"], calls)  # fmt: skip


def show(name: str, sample: Sample) -> None:
    """One run's line on stderr."""
    cpu = ", ".join(f"{k} {v:.2f}s" for k, v in sample.cpu.items())
    top = ", ".join(f"{k} {v}" for k, v in sorted(sample.calls.items(), key=lambda i: -i[1])[:6])
    print(f"  {name:11} {sample.wall:7.2f}s wall; CPU {cpu}; broker {sample.broker_calls} "
          f"({top}); row writes {sample.row_writes}; rows {sample.rows}, "
          f"{sample.row_bytes / 1024:.0f} KB; DB +{sample.db_bytes / 1024:.0f} KB",
          file=sys.stderr)  # fmt: skip


def rounds(built: lab.Lab, args: argparse.Namespace, tmp: Path) -> dict[str, list[Sample]]:
    """Services, inventories and workers up; every side once per round, alternating."""
    invs = inventories(built, tmp)
    task = str(apply_task(tmp))
    samples: dict[str, list[Sample]] = {LOCAL: [], DISTRIBUTED: []}
    with services(tmp) as found:
        configure(tmp, found.redis.url)
        common = [PYTHON, "-m", "fleetbr", "-i", str(invs["all"]), "--history", found.history,
                  "--json", "apply", task, "--forks", str(args.forks)]  # fmt: skip
        sides = {LOCAL: common, DISTRIBUTED: [*common, "--executor", "celery"]}
        workers: list[Worker] = []
        try:
            workers = [start_worker(s, invs[s], found.history, tmp) for s in SITES]
            meters = Meters(found, workers)
            for index in range(args.rounds):
                order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
                for name in order:
                    _one(name, sides[name], built, meters, samples[name])
            if args.profile:
                _profile(sides[DISTRIBUTED], built, invs, found.history, task, args.forks)
        finally:
            for worker in workers:
                worker.stop()
                lines = len(worker.log.read_text(errors="replace").splitlines())
                print(f"worker {worker.site}: {lines} log lines", file=sys.stderr)
    return samples


def _profile(
    coordinator: list[str],
    built: lab.Lab,
    invs: dict[str, Path],
    history: str,
    task: str,
    forks: int,
) -> None:
    """The coordinator, then one site's chunk in this process, under cProfile."""
    profile_coordinator(coordinator)
    reset_all(built)
    profile_chunk(SITES[0], invs[SITES[0]], history, Path(task), forks)
    reset_all(built)


def _one(name: str, argv: list[str], built: lab.Lab, meters: Meters, into: list[Sample]) -> None:
    """A failed run is reported and left out (one timeout on a loaded machine loses nothing
    else); the hosts are checked and reset either way."""
    try:
        sample = run_side(name, argv, len(built.hosts), meters)
        check_bridged(built)
    except (RuntimeError, ValueError) as exc:
        print(f"  {name:11} FAILED, not counted: {str(exc)[-400:]}", file=sys.stderr)
    else:
        show(name, sample)
        into.append(sample)
    reset_all(built)


def main() -> int:
    """Parse the options, run, print the table and the ratios."""
    args = argparse.ArgumentParser(description="one controller vs coordinator + 2 site workers")
    args.add_argument("--hosts", type=int, default=200, help="lab hosts (default 200)")
    args.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    args.add_argument("--forks", type=int, default=50, help="apply -f (default 50)")
    args.add_argument("--profile", action="store_true", help="then cProfile both sides' parts")
    args.add_argument("--prefix", default="fbrd", help="lab namespace prefix (default fbrd)")
    opts = args.parse_args()
    if opts.hosts < 2 or opts.rounds < 1 or opts.forks < 1:
        print("distributed_bench: --hosts >= 2, --rounds >= 1, --forks >= 1", file=sys.stderr)
        return 2
    with lab_up(opts.hosts, opts.prefix) as built, tempfile.TemporaryDirectory() as tmp:
        samples = rounds(built, opts, Path(tmp))
    print(f"\n{opts.hosts} hosts, 2 sites x 1 worker (concurrency 1), -f {opts.forks}, "
          f"{opts.rounds} round(s), medians; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n".join(table(opts.hosts, samples)))
    _services(opts.hosts, samples)
    print(verdict(ratios(samples)))
    return 0


def _services(hosts: int, samples: Mapping[str, list[Sample]]) -> None:
    for name, runs in samples.items():
        for run in runs[:1]:
            extra = {k: v for k, v in run.cpu.items() if k in ("services", "idle workers")}
            shown = ", ".join(f"{k} {v / hosts * 1000:.1f} ms/host" for k, v in extra.items())
            print(f"{name} (first run): {shown}")


if __name__ == "__main__":
    sys.exit(main())
