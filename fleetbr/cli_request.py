"""The command line's Namespace as a :class:`~fleetbr.core.request.RunRequest`: the one place
argparse meets the engine (nothing below the CLI reads ``args``)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Any

from fleetbr.adhoc.job import AdhocRun
from fleetbr.adhoc.main import write
from fleetbr.adhoc.present import StreamPrinter
from fleetbr.core.assemble import ADHOC
from fleetbr.core.request import (
    ChangeRef,
    HistoryOptions,
    MetricsOptions,
    RolloutOptions,
    RunRequest,
    Selection,
)
from fleetbr.errors import UsageError
from fleetbr.history.record import history_location

if TYPE_CHECKING:
    from fleetbr.adhoc.spec import RunSpec
    from fleetbr.changes.command.change import CommandChange
    from fleetbr.changes.command.kind import CommandSource

SCHEDULE_ENV = "FLEETBR_SCHEDULE"  # set by a schedule's service: its name, for the metrics
DIFF_COMMANDS = ("plan", "check", "apply")  # the commands of ``--diff`` (docs/diff.md)
# What ``fleetbr run`` records of its options (beside forks and the rollout's).
RUN_OPTIONS = ("argv", "timeout", "sudo", "deadman", "undo", "confirm_check")
# ``fleetbr run`` options that do not apply with --deadman (the timer bounds the command).
NOT_WITH_DEADMAN = (("stream", "--stream"), ("timeout", "--timeout"))
# ``fleetbr run``'s ways of showing the output, which --deadman's apply-style report replaces.
OUTPUT_MODES = (("one_line", "-o/--one-line"), ("tree", "--tree"), ("diff", "--diff"))


def request_from_args(args: argparse.Namespace, change: ChangeRef | None = None) -> RunRequest:
    """The request the command line describes (``change``: one the command built itself;
    default: the bridge task of ``plan``, ``apply``, ``check`` and ``watch``)."""
    task = getattr(args, "task", None)
    if change is None and task is not None:
        change = ChangeRef("bridge", task, recorded_file=task)
    resume = getattr(args, "resume", None) if args.command == "apply" else None
    rollout = RolloutOptions(
        forks=args.forks,
        canary=getattr(args, "canary", None),
        batch_size=getattr(args, "batch_size", None),
        max_failures=getattr(args, "max_failures", None),
    )
    quiet = args.json or getattr(args, "stream", False)  # --stream prints lines as they come
    return RunRequest(
        command=args.command,
        selection=Selection(args.inventory, args.limit, args.key, args.known_hosts),
        change=change,
        rollout=rollout,
        history=HistoryOptions(path=history_location(args.history, args.no_history), resume=resume),
        metrics=MetricsOptions(args.metrics_file, metric_labels(args), quiet=quiet),
        recorded=_recorded(args),
        diff=args.command in DIFF_COMMANDS and getattr(args, "diff", False),
        origin="schedule" if os.environ.get(SCHEDULE_ENV) else "cli",  # a schedule's service
        runner=_runner(args),
    )


def _runner(args: argparse.Namespace) -> str:
    """``--executor`` (apply, check), else ``$FLEETBR_EXECUTOR`` for them; else local."""
    if args.command not in ("apply", "check"):
        return "local"
    from fleetbr.distributed.config import executor

    return executor(getattr(args, "executor", None))


def run_request(args: argparse.Namespace, spec: RunSpec) -> RunRequest:
    """``fleetbr run``: with ``--deadman`` (or its options), an ``apply`` of the ``command``
    change kind recorded as ``run`` (its options checked here: UsageError); else the engine's
    kind-less ``run`` command (:data:`~fleetbr.core.assemble.ADHOC`: the spec, no change kind),
    whose history records only the script it sent."""
    if args.deadman is None and args.undo is None and args.confirm_check is None:
        printer = StreamPrinter(write) if args.stream else None
        adhoc = ChangeRef(ADHOC, AdhocRun(spec, printer), recorded_file=args.script)
        return request_from_args(args, adhoc)
    command_change(args, spec)
    change = ChangeRef("command", command_source(args, spec), recorded_file=args.script)
    request = request_from_args(args, change)
    selection = dataclasses.replace(request.selection, sudo=spec.sudo)
    return request.replace(command="apply", name="run", selection=selection)


def command_change(args: argparse.Namespace, run: RunSpec) -> CommandChange:
    """The change for ``run``'s command line and the --deadman options; UsageError if unusable
    (the command kind checks the rest: :meth:`CommandKind.load`)."""
    # The command kind's stack (transaction, planner) only with --deadman: a plain `fleetbr run`
    # pays the CLI's start-up on every call (docs/benchmarks.md).
    from fleetbr.changes.command.kind import CommandKind, check_paired

    check_paired(args.deadman, args.undo)  # first: the flags below only matter with both
    for name, flag in NOT_WITH_DEADMAN:
        if getattr(args, name):
            raise UsageError(f"run: {flag} does not apply with --deadman (the timer bounds it)")
    for name, flag in OUTPUT_MODES:
        if getattr(args, name, None):
            raise UsageError(f"run: {flag} does not apply with --deadman (its report is apply's)")
    return CommandKind().load(command_source(args, run))


def command_source(args: argparse.Namespace, run: RunSpec) -> CommandSource:
    """What the command kind reads: the command line and the --deadman options."""
    from fleetbr.changes.command.kind import CommandSource

    return CommandSource(run.payload, args.undo, args.deadman, args.confirm_check)


def metric_labels(args: argparse.Namespace) -> dict[str, str]:
    """The labels that tell one job's metrics from another's: the selection and the schedule."""
    return {"selection": args.limit or "all", "schedule": os.environ.get(SCHEDULE_ENV, "")}


def _recorded(args: argparse.Namespace) -> dict[str, Any]:
    found = {name: getattr(args, name, None) for name in RUN_OPTIONS}
    return {name: value for name, value in found.items() if value not in (None, False, [])}
