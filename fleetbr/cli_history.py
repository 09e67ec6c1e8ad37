"""The command line's run history: the hint to resume an apply, and the ``history`` and ``show``
commands (docs/history.md). Recording a run is the engine's (fleetbr.core.record)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fleetbr.errors import UsageError
from fleetbr.output import Human, plain, print_json, warning
from fleetbr.report import EXIT_OK, Status

if TYPE_CHECKING:
    from fleetbr.core.assemble import RunOutcome
    from fleetbr.history.location import HistoryLocation
    from fleetbr.history.store import HistoryStore

# The command names runs are recorded under (a watch period is a `check` or `apply` run).
RECORDED_COMMANDS = frozenset({"plan", "apply", "status", "rollback", "run", "check"})


def history_location(args: argparse.Namespace) -> HistoryLocation | None:
    from fleetbr.history.record import history_location

    return history_location(args.history, args.no_history)


def resume_hint(outcome: RunOutcome) -> None:
    """After an apply that left hosts unfinished, say how to continue it (stderr)."""
    if outcome.request.recorded_name != "apply" or outcome.history_failed or not outcome.run_id:
        return
    if any(result.status is Status.SKIPPED for result in outcome.result.values()):
        warning(f"run {outcome.run_id} left hosts not attempted; continue it with "
                f"`fleetbr apply --resume {outcome.run_id}` (docs/history.md)")  # fmt: skip


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
            Human().line(f"no runs recorded yet in {history_location(args)}")
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
    """``fleetbr show RUN [--html FILE]``."""
    from fleetbr.history.present import run_number, show_run

    if args.html is not None:
        check_report_path(args.html, "show --html")
    with open_history(args) as store:
        if store is None:
            raise UsageError("no run history yet")
        run_id = run_number(args.run, store)
        if args.html is None:
            show_run(store, run_id, as_json=args.json)
        else:
            _write_html(args, store, run_id, args.html)
    return EXIT_OK


def check_report_path(path: Path, option: str) -> None:
    """A report can be written to ``path``: its folder exists and it is not a folder
    (UsageError, before anything runs)."""
    if path.is_dir():
        raise UsageError(f"{option} {plain(path)}: is a directory; give a file name")
    if not path.absolute().parent.is_dir():
        raise UsageError(f"{option} {plain(path)}: no such directory {plain(path.parent)}")


def check_apply_report(args: argparse.Namespace) -> None:
    """``apply --report FILE``: checked before the run (the report is read from its history)."""
    if getattr(args, "report", None) is None:
        return
    if history_location(args) is None:
        raise UsageError("apply --report: the report is made from the run history; "
                         "drop --no-history")  # fmt: skip
    check_report_path(args.report, "apply --report")


def report_after_apply(args: argparse.Namespace, outcome: RunOutcome) -> None:
    """``apply --report FILE``: the run's HTML report, once the run is recorded. A report that
    cannot be written is one warning line; the run's outcome and exit code stay as they are."""
    import sqlite3

    from fleetbr.history.store import HistoryError

    path = getattr(args, "report", None)
    if path is None:
        return
    if outcome.history_failed or not outcome.run_id:
        warning(f"report not written ({plain(path)}): the run was not recorded in the history")
        return
    try:
        with open_history(args) as store:
            if store is not None:
                _write_html(args, store, outcome.run_id, path)
    except (OSError, HistoryError, sqlite3.Error, UsageError) as exc:
        warning(f"report not written ({plain(path)}: {exc})")


def _write_html(args: argparse.Namespace, store: HistoryStore, run_id: int, path: Path) -> None:
    from fleetbr.history.store import HistoryError
    from fleetbr.htmlreport.render import run_report, write_report

    try:
        html = run_report(store, run_id, sites=inventory_sites(args))
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    write_report(path, html)


def inventory_sites(args: argparse.Namespace) -> dict[str, str]:
    """Host -> site for the report's summary: the inventory's ``data.site`` of a host, else its
    first group ({} without an inventory)."""
    from fleetbr.inventory import HOSTS_FILE, load_inventory

    if not (args.inventory / HOSTS_FILE).exists():
        return {}
    sites = {}
    for name, spec in load_inventory(args.inventory).items():
        site = spec.data.get("site")
        sites[name] = str(site) if site else (spec.groups[0] if spec.groups else "-")
    return sites


@contextmanager
def open_history(args: argparse.Namespace) -> Iterator[HistoryStore | None]:
    """The history for reading (None: none recorded yet); unreadable: HistoryError (exit 1)."""
    import sqlite3

    from fleetbr.history.location import open_store
    from fleetbr.history.store import HistoryError, NoHistoryYet

    path = history_location(args)
    if path is None:
        raise UsageError("--no-history: there is no history to read")
    try:
        store = open_store(path, create=False)
    except NoHistoryYet:
        yield None
        return
    try:
        yield store
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: {exc}") from None
    finally:
        store.close()
