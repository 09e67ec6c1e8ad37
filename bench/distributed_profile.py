"""``bench/distributed_bench.py --profile``: one site's chunk run under cProfile in this process
(a Celery pool child exits without writing a profile), the way a site worker runs it
(:func:`fleetbr.distributed.worker.run_chunk`), and the coordinator under cProfile."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from bench.common import timed
from fleetbr.distributed.config import load_settings
from fleetbr.distributed.message import ChangeSpec, Chunk
from fleetbr.distributed.worker import WorkerContext, run_chunk
from fleetbr.history.location import DatabaseUrl, open_store
from fleetbr.history.store import RunRecord
from fleetbr.inventory import load_inventory

LIMIT = 30


def profile_chunk(site: str, inventory: Path, history: str, task: Path, forks: int) -> None:
    """Create a running apply of the site's hosts in the history (as a coordinator does), run
    its chunk as a worker would, print the top functions by own and by cumulative time."""
    hosts = {h.name: h for h in load_inventory(inventory).values()}
    change = ChangeSpec.of("bridge", task.read_text(encoding="utf-8"), task.name)
    location = DatabaseUrl(history)
    store = open_store(location)
    try:
        record = RunRecord("apply", sorted(hosts), {}, time.time(), {"pid": os.getpid()},
                           task_sha256=change.sha256)  # fmt: skip
        run_id = store.create_run(record)
    finally:
        store.close()
    context = WorkerContext(site, hosts, location, load_settings())
    chunk = Chunk(run_id, "apply", site, tuple(sorted(hosts)), change, 0, time.time() + 300, forks)
    profiler = cProfile.Profile()
    results = profiler.runcall(asyncio.run, run_chunk(context, chunk))
    statuses = sorted({r.status.value for r in results})
    print(f"\ncProfile of one {site} chunk ({len(results)} hosts: {', '.join(statuses)}), "
          f"in-process:")  # fmt: skip
    _print(pstats.Stats(profiler, stream=sys.stdout))


def profile_coordinator(argv: list[str]) -> None:
    """The coordinator's command (``python -m fleetbr ...``) under cProfile: the top functions
    by own and by cumulative time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prof"
        timed([argv[0], "-m", "cProfile", "-o", str(out), *argv[1:]])
        print(f"\ncProfile of the coordinator ({' '.join(argv[1:3])} ... --executor celery):")
        _print(pstats.Stats(str(out), stream=sys.stdout))


def _print(stats: pstats.Stats) -> None:
    stats.sort_stats("tottime").print_stats(LIMIT)
    stats.sort_stats("cumulative").print_stats(LIMIT)
