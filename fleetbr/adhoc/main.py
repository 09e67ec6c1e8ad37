"""``fleetbr run``: the CLI's options to a :class:`RunSpec`, the fan-out, and the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from fleetbr.adhoc.job import run_job
from fleetbr.adhoc.present import StreamPrinter, json_document, render_grouped
from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.observe import RunObserver, observed
from fleetbr.report import AggregatedResult, HostResult
from fleetbr.runner import run_hosts


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The RunSpec of ``run [--timeout S] [--sudo] [--max-output B] (-- CMD [ARG...] |
    --script FILE)``; UsageError for a bad combination."""
    if args.stream and args.json:
        raise UsageError("run: --stream and --json exclude each other")
    options = RunOptions(sudo=args.sudo, timeout=args.timeout, max_output=args.max_output)
    if args.script is not None:
        if args.argv:
            raise UsageError("run: give either --script FILE or -- CMD [ARG...], not both")
        return RunSpec.from_script(args.script, options)
    return RunSpec.from_argv(args.argv, options)


def run_adhoc(
    run: RunSpec,
    hosts: Sequence[HostSpec],
    *,
    forks: int,
    as_json: bool,
    stream: bool,
    observer: RunObserver | None = None,
) -> int:
    """Run ``run`` on ``hosts`` (at most ``forks`` at once), print the report; the exit code.
    ``observer`` (the run history, progress) hears of every host."""
    printer = StreamPrinter(write) if stream else None

    async def job(host: HostSpec) -> HostResult:
        try:
            return await run_job(host, run, printer.sink(host.name) if printer else None)
        finally:
            if printer is not None:
                printer.finish(host.name)

    aggregated = asyncio.run(run_hosts("run", hosts, observed(job, observer), forks=forks))
    report(aggregated, as_json=as_json, with_output=not stream)
    return aggregated.exit_code


def report(aggregated: AggregatedResult, *, as_json: bool, with_output: bool) -> None:
    """Print the JSON document, or the grouped report (outputs left out after --stream)."""
    if as_json:  # ensure_ascii: every control character and non-ASCII byte arrives escaped
        write(json.dumps(json_document(aggregated), indent=2) + "\n", "stdout")
    else:
        write(render_grouped(aggregated, with_output=with_output), "stdout")


def write(text: str, stream: str) -> None:
    """Write ``text`` now, whatever the terminal's encoding (unencodable characters escaped)."""
    out = sys.stdout if stream == "stdout" else sys.stderr
    try:
        out.flush()
        out.buffer.write(text.encode(out.encoding or "utf-8", "backslashreplace"))
        out.buffer.flush()
    except BrokenPipeError:  # `fleetbr run ... | head`: the reader left; the run goes on quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
