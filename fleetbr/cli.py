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
from fleetbr.cli_history import cmd_history, cmd_show, resume_hint
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
from fleetbr.report import hosts_text
from fleetbr.validate import clip

if TYPE_CHECKING:
    from fleetbr.lab import Lab
    from fleetbr.lab.build import HostStatus
    from fleetbr.report import AggregatedResult

# Each command imports what only it needs inside its handler: every run pays the CLI's start-up,
# and `fleetbr facts` must stay close to a bare asyncssh script (docs/benchmarks.md).

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # 3: drift found (fleetbr.report.EXIT_DRIFT)
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE (128 + 13)

Handler = Callable[[argparse.Namespace], int]


def selected_hosts(args: argparse.Namespace, *, connecting: bool = True) -> list[HostSpec]:
    """Load the inventory, apply -l and the CLI overrides; check the keys of hosts to contact."""
    selection = Selection(args.inventory, args.limit, args.key, args.known_hosts)
    return selection.resolve(connecting=connecting)


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
    render_results(aggregated, as_json=args.json)
    return aggregated.exit_code


def cmd_lab(args: argparse.Namespace) -> int:
    """``fleetbr lab up|status|down|reboot``."""
    from fleetbr import lab

    out = Human()
    if args.lab_command == "reboot":
        from fleetbr.lab import distro

        distro.reboot(lab.load(args.dir.resolve()), args.host, hard=args.hard)
        out.line(f"lab reboot: {args.host} is back")
        return EXIT_OK
    if args.lab_command == "up":
        built = _lab_up(args)
        if args.json:
            print_json(
                {
                    h.name: {"address": h.addr4, "address6": h.addr6}
                    | ({"backend": h.backend} if h.backend else {})
                    for h in built.hosts
                }
            )
        else:
            out.line(f"lab up: {hosts_text(len(built.hosts))} in {built.dir}")
            out.line(f"  fleetbr -i {built.inventory_dir} facts")
        return EXIT_OK
    if args.lab_command == "down":
        lab.down(args.dir.resolve())
        out.line(f"lab down: {args.dir}")
        return EXIT_OK
    rows = lab.status(args.dir.resolve())
    if args.json:
        print_json({row.name: vars(row) for row in rows})
    else:
        _print_lab_status(rows)
    return EXIT_OK if all(_lab_host_up(row) for row in rows) else EXIT_FAILED


def _lab_host_up(row: HostStatus) -> bool:
    return row.sshd_alive and row.ssh_port_open


def _print_lab_status(rows: Sequence[HostStatus]) -> None:
    """``lab status`` for people: one row per host, then ``6 hosts: 6 up``."""
    from fleetbr.history.present import print_table

    yes_no = {True: "yes", False: "no"}
    print_table("lab", ("host", "address", "netns", "sshd", "port 22", "state"), [
        (row.name, row.address, yes_no[row.netns_exists], "alive" if row.sshd_alive else "dead",
         "open" if row.ssh_port_open else "closed", "up" if _lab_host_up(row) else "down")
        for row in rows
    ])  # fmt: skip
    up = sum(_lab_host_up(row) for row in rows)
    counts = ", ".join(f"{n} {what}" for n, what in ((up, "up"), (len(rows) - up, "down")) if n)
    Human().line(f"{hosts_text(len(rows))}: {counts or 'none'}")


def _lab_up(args: argparse.Namespace) -> Lab:
    from fleetbr import lab

    if args.distro is None:
        if args.backend is not None:
            raise UsageError("lab up: --backend needs --distro (network-namespace hosts have none)")
        if args.guests:
            raise UsageError("lab up: --guests needs --distro (libvirt runs on distro hosts)")
        return lab.up(args.dir.resolve(), hosts=args.hosts, nic=args.nic)
    from fleetbr.lab import distro

    backend = args.backend or "networkd"
    return distro.up(
        args.dir.resolve(),
        hosts=args.hosts,
        backend=backend,
        distro=args.distro,
        nic=args.nic,
        guests=args.guests,
    )


def cmd_change(args: argparse.Namespace) -> int:
    """``fleetbr plan|apply|status|rollback|check``: one request, run by the engine."""
    from fleetbr.cli_request import request_from_args
    from fleetbr.core.assemble import execute

    if args.command == "apply" and args.resume is None and args.task is None:
        raise UsageError("apply: TASK is required (or --resume [RUN])")
    outcome = execute(request_from_args(args), report=_report(args))
    resume_hint(outcome)
    return outcome.exit_code


def _report(args: argparse.Namespace) -> Callable[[AggregatedResult], None]:
    def report(aggregated: AggregatedResult) -> None:
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
    """``fleetbr run``; with ``--deadman``, an apply of the ``command`` change kind."""
    from fleetbr.adhoc.main import run_adhoc, spec_from_args
    from fleetbr.cli_request import run_request

    spec = spec_from_args(args)
    request = run_request(args, spec)  # a usage error here: nothing recorded, nothing contacted
    if request.change is not None and request.change.kind == "command":
        from fleetbr.core.assemble import execute

        return execute(request, report=_report(args)).exit_code
    from fleetbr.core.record import run_context

    hosts = request.selection.resolve()  # not via core.assemble: it imports the apply stack
    with run_context(request, hosts) as context:
        code = run_adhoc(spec, hosts, forks=args.forks, as_json=args.json, stream=args.stream,
                         observer=context.observer)  # fmt: skip
        context.done(code)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    """``fleetbr demo``."""
    if args.distro:
        from fleetbr.demo_distro import run_distro_demo

        return run_distro_demo(args.dir.resolve(), task=args.task, timeout=args.timeout or 60,
                               keep=args.keep, as_json=args.json)  # fmt: skip
    from fleetbr.demo import run_demo

    return run_demo(
        args.dir.resolve(), hosts=args.hosts, task=args.task, cut_task=args.cut_task,
        timeout=args.timeout or 20, keep=args.keep,
    )  # fmt: skip


EXIT_INTERRUPTED = 130  # a first Ctrl-C: every host reported, some never started


HANDLERS: dict[str, Handler] = {
    "demo": cmd_demo,
    "inventory": cmd_inventory,
    "facts": cmd_facts,
    "lab": cmd_lab,
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
