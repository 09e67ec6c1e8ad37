"""Command line: ``fleetbr [-i INV] [-l LIMIT] [-f N] [--key K] [--known-hosts F] [--json] CMD``.

Exit codes: 0 every host succeeded; 1 some host failed; 2 usage, inventory or task error (nothing
was contacted); 3 ``check``: drift found (every host checked, none failed); 141 stdout was closed
early (``fleetbr --json facts | head``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from fleetbr._quiet import show_dependency_warnings
from fleetbr.cli_args import DEFAULT_FORKS, build_parser, parse_command_line
from fleetbr.cli_history import (
    check_apply_report,
    cmd_history,
    cmd_show,
    report_after_apply,
    resume_hint,
)
from fleetbr.core.request import Selection
from fleetbr.errors import FleetbrError, UsageError
from fleetbr.inventory import HostSpec
from fleetbr.output import (
    Human,
    error,
    plain,
    print_json,
    render_results,
    whole_stdout_writes,
)
from fleetbr.report import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    hosts_text,
)
from fleetbr.selection import NAMED_MARK
from fleetbr.validate import clip

if TYPE_CHECKING:
    from fleetbr.report import AggregatedResult

# Each command imports what only it needs inside its handler: every run pays the CLI's start-up,
# and `fleetbr facts` must stay close to a bare asyncssh script (docs/benchmarks.md).


Handler = Callable[[argparse.Namespace], int]


def selected_hosts(args: argparse.Namespace, *, connecting: bool = True) -> list[HostSpec]:
    """Load the inventory, apply -l and the CLI overrides; check the keys of hosts to contact."""
    selection = Selection(args.inventory, args.limit, args.key, args.known_hosts)
    history = None
    if args.limit is not None and NAMED_MARK in args.limit:  # -l @failed:RUN reads the history
        from fleetbr.cli_history import history_location

        history = history_location(args)
    return selection.resolve(connecting=connecting, history=history)


def cmd_inventory(args: argparse.Namespace) -> int:
    """``fleetbr inventory``."""
    hosts = selected_hosts(args, connecting=False)
    if args.json:
        print_json({spec.name: spec.public_view() for spec in hosts})
        return EXIT_OK
    out = Human()
    for spec in hosts:
        out.line(spec.name, style="bold")
        for key, value in spec.public_view().items():
            out.line(f"  {key}: {value}")
    out.line(hosts_text(len(hosts)))
    return EXIT_OK


def cmd_facts(args: argparse.Namespace) -> int:
    """``fleetbr facts``."""
    from fleetbr.facts.gather import facts_job
    from fleetbr.runner import run_hosts

    hosts = selected_hosts(args)
    aggregated = asyncio.run(run_hosts("facts", hosts, facts_job, forks=args.forks))
    if args.show:
        from fleetbr.facts.show import render

        render(aggregated, args.show, as_json=args.json)
    else:
        render_results(aggregated, as_json=args.json)
    return aggregated.exit_code


def cmd_change(args: argparse.Namespace) -> int:
    """``fleetbr plan|apply|status|rollback|check``: one request, run by the engine."""
    from fleetbr.cli_request import request_from_args
    from fleetbr.core.assemble import execute

    if args.command == "apply" and args.resume is None and args.task is None:
        raise UsageError("apply: TASK is required (or --resume [RUN])")
    request = request_from_args(args)
    if getattr(args, "list_hosts", False):
        from fleetbr.listhosts import list_hosts

        return list_hosts(request, as_json=args.json)
    if args.command == "apply":
        check_apply_report(args)
    if args.command == "apply" and request.diff:
        from fleetbr.cli_diff import apply_with_diff

        outcome = apply_with_diff(request, _report(args, diff=False), as_json=args.json)
    else:
        outcome = execute(request, report=_report(args, diff=request.diff))
    resume_hint(outcome)
    if args.command == "apply":
        report_after_apply(args, outcome)
    return outcome.exit_code


def _report(args: argparse.Namespace, *, diff: bool) -> Callable[[AggregatedResult], None]:
    """The results as --json or for people (``diff``: each host's view first)."""

    def report(aggregated: AggregatedResult) -> None:
        if diff and not args.json:
            from fleetbr.diffview.show import print_diffs

            print_diffs(aggregated)
        render_results(aggregated, as_json=args.json)

    return report


def cmd_watch(args: argparse.Namespace) -> int:
    """``fleetbr watch``."""
    from fleetbr.cli_request import request_from_args
    from fleetbr.watch import watch

    return watch(request_from_args(args), every=args.every, repair=args.repair,
                 as_json=args.json)  # fmt: skip


def cmd_schedule(args: argparse.Namespace) -> int:
    """``fleetbr schedule install|list|remove``."""
    from fleetbr.schedule import Cli, schedule_command

    return schedule_command(args, Cli(selected_hosts, build_parser, DEFAULT_FORKS))


def cmd_run(args: argparse.Namespace) -> int:
    """``fleetbr run``: the engine's kind-less ``run`` command; with ``--deadman``, an apply of
    the ``command`` change kind."""
    from fleetbr.adhoc.main import output_from_args, report, spec_from_args
    from fleetbr.cli_request import run_request
    from fleetbr.core.assemble import execute

    spec = spec_from_args(args)
    request = run_request(args, spec)  # a usage error here: nothing recorded, nothing contacted
    if args.list_hosts:
        from fleetbr.listhosts import list_hosts

        return list_hosts(request, as_json=args.json)
    if request.change is not None and request.change.kind == "command":
        return execute(request, report=_report(args, diff=False)).exit_code
    output = output_from_args(args)
    written = True

    def shown(aggregated: AggregatedResult) -> None:
        nonlocal written
        written = report(aggregated, output)

    code = execute(request, report=shown).exit_code
    return code if written else max(code, EXIT_FAILED)


def _lab_command(args: argparse.Namespace) -> int:
    """``fleetbr lab ...`` and ``fleetbr demo ...``: the product's one door to the lab side
    (fleetbr/lab/cli.py; docs/lab.md, "Product, lab and demos"), imported only when one of them
    runs. No other product module imports the lab (tests/unit/test_layout.py)."""
    from fleetbr.lab.cli import HANDLERS as LAB_HANDLERS

    return LAB_HANDLERS[args.command](args)


def cmd_worker(args: argparse.Namespace) -> int:
    """``fleetbr worker --site SITE``: a Celery site worker (docs/scale.md)."""
    from fleetbr.distributed.cli import run_worker

    return run_worker(args)


HANDLERS: dict[str, Handler] = {
    "demo": _lab_command,
    "inventory": cmd_inventory,
    "facts": cmd_facts,
    "lab": _lab_command,
    "plan": cmd_change,
    "apply": cmd_change,
    "status": cmd_change,
    "rollback": cmd_change,
    "run": cmd_run,
    "history": cmd_history,
    "show": cmd_show,
    "check": cmd_change,
    "watch": cmd_watch,
    "schedule": cmd_schedule,
    "worker": cmd_worker,
}


class OneLineFormatter(logging.Formatter):
    """Log records as single plain lines; tracebacks only with ``-v`` (the report has the error)."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """One line, control characters escaped; with ``-v``, the traceback follows as is."""
        line = plain(record.getMessage())
        head = f"{self.formatTime(record)} {record.name} {record.levelname} {line}"
        if record.exc_info and record.exc_info[1] is not None:
            if self.tracebacks:
                return head + "\n" + self.formatException(record.exc_info)
            exc = record.exc_info[1]
            head += plain(f": {type(exc).__name__}: {clip(str(exc))} (-v shows the traceback)")
        return head


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    whole_stdout_writes()
    try:
        args = parse_command_line(argv)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    if args.verbose:
        show_dependency_warnings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(tracebacks=args.verbose))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        handlers=[handler])  # fmt: skip
    try:
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as the Python docs recommend; point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        with suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return HANDLERS[args.command](args)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except FleetbrError as exc:
        error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        error(
            "interrupted: hosts already armed roll back by themselves when their timers fire; "
            "`fleetbr status` shows where each host stands; `fleetbr apply --resume` continues "
            "an interrupted apply"
        )
        return EXIT_INTERRUPTED
