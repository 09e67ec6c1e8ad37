"""``fleetbr run --deadman N --undo UNDO [--confirm-check CMD2] -- CMD``: the ad-hoc command under
the same dead-man transaction as the bridge (stage, arm, apply detached, confirm over a fresh
connection with probes, disarm), in canary and batches like ``apply``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Sequence

from fleetbr.adhoc.spec import RunSpec
from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.observe import RunObserver
from fleetbr.output import render_results
from fleetbr.report import EXIT_INTERRUPTED
from fleetbr.rollout import Interruption, rollout_changes
from fleetbr.transaction.change import Change
from fleetbr.transaction.command import CommandChange

NOT_WITH_DEADMAN = (("stream", "--stream"), ("timeout", "--timeout"))


def command_change(args: argparse.Namespace, run: RunSpec) -> CommandChange:
    """The change for ``run``'s command line and the --deadman options; UsageError if unusable."""
    if args.deadman is None or not args.undo or not args.undo.strip():
        raise UsageError("run: --deadman N and --undo UNDO go together (and UNDO may not be empty)")
    for name, flag in NOT_WITH_DEADMAN:
        if getattr(args, name):
            raise UsageError(f"run: {flag} does not apply with --deadman (the timer bounds it)")
    try:
        command = run.payload.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("run: with --deadman the command must be UTF-8 text") from None
    for text, what in ((command, "CMD"), (args.undo, "--undo"), (args.confirm_check, "CMD2")):
        if text is not None and "\0" in text:
            raise UsageError(f"run: {what} contains a NUL byte")
    if args.confirm_check is not None and not args.confirm_check.strip():
        raise UsageError("run: --confirm-check is empty")
    return CommandChange(command, args.undo, args.deadman, args.confirm_check, label="run")


def run_deadman(
    args: argparse.Namespace,
    run: RunSpec,
    hosts: Sequence[HostSpec],
    observer: RunObserver | None = None,
) -> int:
    """Roll the command out under the timer; print the per-host results; the exit code (130
    after a Ctrl-C, which stops new hosts and lets armed ones finish)."""
    change = command_change(args, run)
    if run.sudo:
        hosts = [dataclasses.replace(h, ssh=dataclasses.replace(h.ssh, sudo=True)) for h in hosts]
    changes: dict[str, Change] = {host.name: change for host in hosts}
    interrupt = Interruption()
    aggregated = asyncio.run(
        rollout_changes(
            hosts, changes, forks=args.forks, canary=args.canary,
            batch_size=args.batch_size, max_failures=args.max_failures, observer=observer,
            interrupt=interrupt,
        )
    )  # fmt: skip
    render_results(aggregated, as_json=args.json)
    return EXIT_INTERRUPTED if interrupt.requested else aggregated.exit_code
