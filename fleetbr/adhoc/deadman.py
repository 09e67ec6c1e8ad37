"""``fleetbr run --deadman N --undo UNDO [--confirm-check CMD2] -- CMD``: the ad-hoc command under
the same dead-man transaction as the bridge (stage, arm, apply detached, confirm over a fresh
connection with probes, disarm), in canary and batches like ``apply``: the ``command`` change
kind (fleetbr.changes.command) run by the engine; here, the command line's own checks."""

from __future__ import annotations

import argparse

from fleetbr.adhoc.spec import RunSpec
from fleetbr.changes.command.kind import CommandKind, CommandSource, check_paired
from fleetbr.errors import UsageError
from fleetbr.transaction.command import CommandChange

NOT_WITH_DEADMAN = (("stream", "--stream"), ("timeout", "--timeout"))


def command_change(args: argparse.Namespace, run: RunSpec) -> CommandChange:
    """The change for ``run``'s command line and the --deadman options; UsageError if unusable."""
    check_paired(args.deadman, args.undo)  # first: the flags below only matter with both
    for name, flag in NOT_WITH_DEADMAN:
        if getattr(args, name):
            raise UsageError(f"run: {flag} does not apply with --deadman (the timer bounds it)")
    return CommandKind().load(command_source(args, run))


def command_source(args: argparse.Namespace, run: RunSpec) -> CommandSource:
    """What the command kind reads: the command line and the --deadman options."""
    return CommandSource(run.payload, args.undo, args.deadman, args.confirm_check)
