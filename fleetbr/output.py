"""Render results for people (rich) or programs (one JSON document on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fleetbr.report import AggregatedResult, HostResult, Status

if TYPE_CHECKING:  # rich is imported only when something is printed for people (start-up time)
    from rich.console import Console
    from rich.table import Table

STATUS_STYLE = {
    Status.OK: "green",
    Status.PLANNED: "cyan",
    Status.UNCHANGED: "green",
    Status.CONFIRMED: "bold green",
    Status.ROLLED_BACK: "bold yellow",
    Status.REFUSED: "magenta",
    Status.FAILED: "bold red",
    Status.UNREACHABLE: "bold red reverse",
    Status.TIMED_OUT: "bold red",
    Status.SKIPPED: "dim",
}


def console(stderr: bool = False) -> Console:
    """A rich console (stderr for progress, so stdout stays clean for --json)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(document: Mapping[str, Any]) -> None:
    """Print one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def results_table(aggregated: AggregatedResult, title: str | None = None) -> Table:
    """A host / status / message table."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title or aggregated.command, title_justify="left", expand=False)
    table.add_column("host", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in aggregated.values():
        detail = escape(result.message)  # host output must never be read as rich markup
        table.add_row(result.host, styled_status(result), f"{result.elapsed:.1f}s", detail)
    return table


def styled_status(result: HostResult) -> str:
    """The status word with its colour."""
    style = STATUS_STYLE[result.status]
    return f"[{style}]{result.status.value}[/{style}]"


def summary_line(aggregated: AggregatedResult) -> str:
    """``6 hosts: 5 confirmed, 1 rolled_back``."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(aggregated.counts().items()))
    return f"{len(aggregated)} hosts: {counts}" if aggregated else "no hosts"


def render_results(aggregated: AggregatedResult, *, as_json: bool) -> None:
    """Print ``aggregated`` in the chosen format."""
    if as_json:
        print_json(aggregated.to_dict())
        return
    out = console()
    out.print(results_table(aggregated))
    out.print(summary_line(aggregated))
