"""The command line's run history: recording a run (history, progress, metrics), resuming one,
and the ``history`` and ``show`` commands (docs/history.md)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbr.errors import UsageError
from fleetbr.inventory import HostSpec
from fleetbr.output import Human, plain, print_json, warning
from fleetbr.report import EXIT_OK, Status

if TYPE_CHECKING:
    from fleetbr.history.record import RunContext
    from fleetbr.history.store import Store
    from fleetbr.resume import Prior

# The command names runs are recorded under (a watch period is a `check` or `apply` run).
RECORDED_COMMANDS = frozenset({"plan", "apply", "status", "rollback", "run", "check"})


def history_path(args: argparse.Namespace) -> Path | None:
    from fleetbr.history.record import history_path

    return history_path(args.history, args.no_history)


def run_context(args: argparse.Namespace, hosts: Sequence[HostSpec], *,
                resumed_from: int | None = None, command: str | None = None,
                options: Mapping[str, Any] | None = None) -> RunContext:  # fmt: skip
    """History, live progress and metrics around one run (see fleetbr.history.record);
    ``command`` and ``options`` for a run of ``watch`` (``check`` or ``apply``, its period)."""
    from fleetbr.history.record import RunContext, run_options, start_recording

    task = getattr(args, "task", None) or getattr(args, "script", None)
    recorder = start_recording(
        history_path(args), command=command or args.command, hosts=[h.name for h in hosts],
        options=run_options(args, len(hosts)) | dict(options or {}), selection=args.limit,
        task=task, resumed_from=resumed_from,
    )  # fmt: skip
    quiet = args.json or getattr(args, "stream", False)  # --stream prints lines as they come
    return RunContext(command or args.command, [h.name for h in hosts], recorder=recorder,
                      as_json=quiet, metrics_file=args.metrics_file,
                      labels=metric_labels(args))  # fmt: skip


SCHEDULE_ENV = "FLEETBR_SCHEDULE"  # set by a schedule's service: its name, for the metrics


def metric_labels(args: argparse.Namespace) -> dict[str, str]:
    """The labels that tell one job's metrics from another's: the selection and the schedule."""
    return {"selection": args.limit or "all", "schedule": os.environ.get(SCHEDULE_ENV, "")}


def prepare_resume(
    args: argparse.Namespace, select: Callable[[], list[HostSpec]]
) -> tuple[Prior, list[HostSpec]]:
    """The run to resume and its hosts (``select``: the hosts the command line selects)."""
    from fleetbr.resume import prepare_resume as prepare

    return prepare(args, history_path(args), select)


def resume_hint(
    args: argparse.Namespace, context: RunContext, aggregated: Mapping[str, Any]
) -> None:
    """After an apply that left hosts unfinished, say how to continue it (stderr)."""
    recorder = context.recorder
    if args.command != "apply" or recorder is None or recorder.failed or not recorder.run_id:
        return
    if any(result.status is Status.SKIPPED for result in aggregated.values()):
        warning(f"run {recorder.run_id} left hosts not attempted; continue it with "
                f"`fleetbr apply --resume {recorder.run_id}` (docs/history.md)")  # fmt: skip


def cmd_history(args: argparse.Namespace) -> int:
    """``fleetbr history``."""
    from fleetbr.history.present import show_history

    if args.history_command is not None and args.history_command not in RECORDED_COMMANDS:
        raise UsageError(
            f"history --command {plain(args.history_command)!r}: not a command fleetbr records "
            f"(one of {', '.join(sorted(RECORDED_COMMANDS))})"
        )
    limit = args.history_hosts or args.limit
    with open_history(args) as store:
        if store is not None:
            show_history(
                store, hosts=None if limit is None else recorded_selection(args, limit),
                since=args.since, command=args.history_command, last=args.last,
                as_json=args.json,
            )  # fmt: skip
        elif args.json:
            print_json({"runs": []})
        else:
            Human().line(f"no runs recorded yet in {history_path(args)}")
    return EXIT_OK


def recorded_selection(
    args: argparse.Namespace, limit: str
) -> Callable[[Sequence[str]], list[str]]:
    """Which recorded host names ``limit`` selects: names and globs as ``-l`` takes them, groups
    from the inventory (``-i``) when there is one. A host gone from the inventory is still
    selected by name or glob; a term that matches no recorded host selects none (no error)."""
    from fleetbr.inventory import HOSTS_FILE, load_inventory
    from fleetbr.selection import select_names

    inventory = load_inventory(args.inventory) if (args.inventory / HOSTS_FILE).exists() else {}

    def select(names: Sequence[str]) -> list[str]:
        groups = {name: inventory[name].groups if name in inventory else () for name in names}
        return select_names(groups, limit)

    return select


def cmd_show(args: argparse.Namespace) -> int:
    """``fleetbr show RUN``."""
    from fleetbr.history.present import run_number, show_run

    with open_history(args) as store:
        if store is None:
            raise UsageError("no run history yet")
        show_run(store, run_number(args.run, store), as_json=args.json)
    return EXIT_OK


@contextmanager
def open_history(args: argparse.Namespace) -> Iterator[Store | None]:
    """The history for reading (None: none recorded yet); unreadable: HistoryError (exit 1)."""
    import sqlite3

    from fleetbr.history.store import HistoryError, Store

    path = history_path(args)
    if path is None:
        raise UsageError("--no-history: there is no history to read")
    if not path.exists():
        yield None
        return
    store = Store(path, create=False)
    try:
        yield store
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: {exc}") from None
    finally:
        store.close()
