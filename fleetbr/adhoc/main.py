"""``fleetbr run``: the CLI's options to a :class:`RunSpec` and a :class:`RunOutput`, and the
report. The engine runs it: the kind-less ``run`` command of :mod:`fleetbr.core.assemble`
(:func:`~fleetbr.adhoc.job.adhoc_job`)."""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbr.adhoc.diff import diff_document, render_diff
from fleetbr.adhoc.oneline import render_one_line
from fleetbr.adhoc.present import json_document, render_grouped, summary
from fleetbr.adhoc.spec import RunOptions, RunSpec
from fleetbr.adhoc.tree import TreeError, check_tree, write_tree
from fleetbr.errors import UsageError
from fleetbr.output import error
from fleetbr.report import AggregatedResult


class Shown(enum.Enum):
    """How ``fleetbr run`` shows the output (one of ``--stream``, ``-o``, ``--tree``, ``--diff``,
    or none of them: grouped)."""

    GROUPED = "grouped"
    STREAM = "stream"  # lines printed as they came: the report leaves the output out
    ONE_LINE = "one-line"
    TREE = "tree"  # written to files: the report leaves the output out
    DIFF = "diff"


@dataclass(frozen=True)
class RunOutput:
    """What the report of ``fleetbr run`` looks like: the way, JSON or not, the tree's root."""

    shown: Shown = Shown.GROUPED
    as_json: bool = False
    tree: Path | None = None


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


def output_from_args(args: argparse.Namespace) -> RunOutput:
    """The RunOutput of ``run [--stream | -o | --tree DIR | --diff]`` (argparse lets only one
    through) and ``--json``; UsageError for ``-o`` with ``--json`` or an unusable ``--tree`` DIR.
    Nothing is created yet."""
    tree = getattr(args, "tree", None)
    if getattr(args, "one_line", False) and args.json:
        raise UsageError("run: -o/--one-line and --json exclude each other")
    if tree is not None:
        return RunOutput(Shown.TREE, args.json, check_tree(tree))
    flags = {Shown.STREAM: "stream", Shown.ONE_LINE: "one_line", Shown.DIFF: "diff"}
    shown = next((way for way, name in flags.items() if getattr(args, name, False)), None)
    return RunOutput(shown or Shown.GROUPED, args.json)


def report(aggregated: AggregatedResult, output: RunOutput) -> bool:
    """Write the tree (``--tree``), then print the report as ``output`` says; False when the tree
    could not be written (the error printed, the report still follows)."""
    written = True
    if output.tree is not None:
        written = _write_tree(output.tree, aggregated)
    if output.as_json:
        write(_json_text(aggregated, output), "stdout")
    elif output.shown is Shown.ONE_LINE:
        _report_one_line(aggregated)
    elif output.shown is Shown.DIFF:
        write(render_diff(aggregated), "stdout")
    else:
        with_output = output.shown is Shown.GROUPED
        write(render_grouped(aggregated, with_output=with_output), "stdout")
    return written


def _json_text(aggregated: AggregatedResult, output: RunOutput) -> str:
    document: dict[str, Any] = json_document(aggregated)
    if output.shown is Shown.DIFF:
        document = diff_document(aggregated)
    # ensure_ascii: every control character and non-ASCII byte arrives escaped
    return json.dumps(document, indent=2) + "\n"


def _report_one_line(aggregated: AggregatedResult) -> None:
    write(render_one_line(aggregated), "stdout")
    write(summary(aggregated) + "\n", "stderr")  # stdout stays host lines only, for sort/grep


def _write_tree(root: Path, aggregated: AggregatedResult) -> bool:
    try:
        write_tree(root, aggregated)
    except TreeError as exc:
        error(exc)
        return False
    return True


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
