"""``fleetbr worker --site SITE [--concurrency N]``: a Celery worker on the site's queue, with
this machine's inventory (its hosts of that site), keys and run history."""

from __future__ import annotations

import argparse
import logging
import os

from fleetbr.distributed.app import make_app, queue_of
from fleetbr.distributed.config import load_settings
from fleetbr.distributed.message import BadMessage, site_name
from fleetbr.distributed.worker import WorkerContext, install
from fleetbr.errors import UsageError
from fleetbr.history.location import DatabaseUrl, check_reachable
from fleetbr.history.record import history_location
from fleetbr.inventory import apply_overrides, check_client_keys, load_inventory


def worker_context(args: argparse.Namespace) -> WorkerContext:
    """The worker's site, hosts, history and settings; UsageError (exit 2) before it starts."""
    try:
        site = site_name(args.site)
    except BadMessage as exc:
        raise UsageError(f"--site: {exc}") from None
    history = history_location(args.history, args.no_history)
    if not isinstance(history, DatabaseUrl):
        raise UsageError("a site worker needs the run history in PostgreSQL "
                         "(--history postgresql://... or $FLEETBR_HISTORY), shared with the "
                         "coordinator")  # fmt: skip
    check_reachable(history)
    settings = load_settings()
    mine = [h for h in load_inventory(args.inventory).values() if h.data.get("site") == site]
    if not mine:
        raise UsageError(f"no host of site {site} in {args.inventory} (data.site)")
    check_client_keys(args.inventory, mine, args.key, args.known_hosts)
    hosts = apply_overrides(mine, key=args.key, known_hosts=args.known_hosts)
    return WorkerContext(site, {h.name: h for h in hosts}, history, settings)


def run_worker(args: argparse.Namespace) -> int:
    """Start the worker; returns when Celery's worker stops (SIGTERM: warm shutdown)."""
    context = worker_context(args)
    install(context)
    app = make_app(context.settings)
    if not args.verbose:
        # Celery's INFO root level would let asyncssh log every connection and channel (~45
        # lines a host): a few ms of the worker's CPU per host (docs/benchmarks.md)
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
    name = f"fleetbr-{context.site}-{os.getpid()}@%h"
    app.worker_main(["worker", "--queues", queue_of(context.site), "--concurrency",
                     str(args.concurrency), "--hostname", name, "--loglevel",
                     "DEBUG" if args.verbose else "INFO"])  # fmt: skip
    return 0
