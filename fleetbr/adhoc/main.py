"""``fleetbr run``: the CLI's options to a :class:`RunSpec`, and the report. The engine runs it:
the kind-less ``run`` command of :mod:`fleetbr.core.assemble`
(:func:`~fleetbr.adhoc.job.adhoc_job`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from fleetbr.adhoc.present import json_document, render_grouped
from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.errors import UsageError
from fleetbr.report import AggregatedResult


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
