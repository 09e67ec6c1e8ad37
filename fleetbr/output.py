"""Everything fleetbr prints: results, human lines, errors.

- ``--json``: one JSON document on stdout.
- Human output on stdout: a rich table when stdout is a terminal; otherwise (a pipe, a file, a CI
  log) plain lines, one per host, that are never wrapped or cut, whatever ``COLUMNS`` says, and
  carry no colour, whatever ``FORCE_COLOR`` says.
- Errors and warnings: one plain line each on stderr (``error: ...``), never wrapped.

No value is ever read as rich markup: cells are :class:`rich.text.Text`, and control characters in
values (a newline, an escape sequence from a host) are shown escaped (``\\n``, ``\\x1b``). If rich
fails to render, the same results are printed as plain lines: a report is never lost.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from fleetbr.report import AggregatedResult, HostResult, Status, hosts_text
from fleetbr.validate import clip

if TYPE_CHECKING:  # rich is imported only when something is printed on a terminal (start-up time)
    from rich.console import Console
    from rich.table import Table

log = logging.getLogger(__name__)

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
    Status.IN_SYNC: "green",
    Status.DRIFTED: "bold yellow",
}
COLUMNS = ("host", "status", "time", "detail")


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal (not a pipe, a file or a captured stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def plain(value: object) -> str:
    """``value`` as text on one line: non-printable characters escaped, nothing interpreted."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def error(message: object) -> None:
    """``error: MESSAGE`` on stderr, one line."""
    _diagnostic("error", message)


def warning(message: object) -> None:
    """``warning: MESSAGE`` on stderr, one line."""
    _diagnostic("warning", message)


def _diagnostic(kind: str, message: object) -> None:
    prefix = f"{kind}:"
    if is_terminal(sys.stderr) and "NO_COLOR" not in os.environ:
        prefix = f"\x1b[1;{31 if kind == 'error' else 33}m{prefix}\x1b[0m"
    sys.stderr.write(f"{prefix} {plain(message)}\n")
    sys.stderr.flush()


def whole_stdout_writes() -> None:
    """Make every write to stdout all or an error, so a reader that goes away always shows.

    With PYTHONUNBUFFERED (or ``-u``) sys.stdout writes straight to the raw file; a write that a
    closing reader cuts short returns a short count, which the text layer ignores: the rest was
    dropped without an error (exit 0 after ``| head``). A BufferedWriter writes on to the end or
    an error (EPIPE: exit 141); line buffering keeps what unbuffered was for, lines go out at once.
    """
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and isinstance(stdout.buffer, io.RawIOBase):
        # A raw file of our own that never closes the descriptor: the original stays usable.
        raw = io.FileIO(stdout.fileno(), "w", closefd=False)
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(raw), encoding=stdout.encoding, errors=stdout.errors,
            line_buffering=True,
        )  # fmt: skip


def console(*, soft_wrap: bool = False) -> Console:
    """A rich console on stdout, markup off (only used when stdout is a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=soft_wrap, markup=False, emoji=False)


class Human:
    """Lines for people on stdout: rich styles on a terminal, plain text otherwise."""

    def __init__(self) -> None:
        self._console = console(soft_wrap=True) if is_terminal(sys.stdout) else None

    def line(self, text: object, style: str = "") -> None:
        """Print ``text`` (never markup) on one line; ``style`` only shows on a terminal."""
        shown = plain(text)
        if self._console is not None:
            from rich.text import Text

            try:
                self._console.print(Text(shown, style=style))
                return
            except Exception:  # a rendering bug must not lose the line
                log.debug("rich failed to print a line", exc_info=True)
        sys.stdout.write(shown + "\n")
        sys.stdout.flush()


def print_json(document: Mapping[str, Any]) -> None:
    """Print one JSON document on stdout."""
    text = json.dumps(document, indent=2, sort_keys=False, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def results_table(aggregated: AggregatedResult, title: str | None = None) -> Table:
    """A host / status / time / detail table; every cell is plain text, never markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(plain(title or aggregated.command)), title_justify="left")
    table.add_column("host", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for result in aggregated.values():
        table.add_row(
            Text(plain(result.host)),
            Text(result.status.value, style=STATUS_STYLE[result.status]),
            Text(_elapsed(result)),
            Text("\n".join(plain(line) for line in result.detail_lines)),
        )
    return table


def plain_lines(aggregated: AggregatedResult) -> list[str]:
    """The results as plain lines: a header, then ``host  status  time  detail`` per host (a
    detail of several lines, plan's steps, goes on under the first, in the detail column).

    Columns are padded to the longest value, not to a terminal width, so nothing is ever folded.
    """
    rows = [COLUMNS]
    for r in aggregated.values():
        first, *more = (plain(line) for line in r.detail_lines)
        rows.append((plain(r.host), r.status.value, _elapsed(r), first))
        rows += [("", "", "", line) for line in more]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]),
                   row[3]]).rstrip()
        for row in rows
    ]  # fmt: skip


def _elapsed(result: HostResult) -> str:
    return f"{result.elapsed:.1f}s"


def summary_line(aggregated: AggregatedResult) -> str:
    """``6 hosts: 5 confirmed, 1 rolled_back``."""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(aggregated.counts().items()))
    return f"{hosts_text(len(aggregated))}: {counts}" if aggregated else "no hosts"


def render_results(aggregated: AggregatedResult, *, as_json: bool) -> None:
    """Print ``aggregated`` in the chosen format; whatever the host data, the report gets out."""
    if as_json:
        try:
            print_json(aggregated.to_dict())
            return
        except (TypeError, ValueError) as exc:  # e.g. a circular value: never lose the report
            error(f"cannot encode the results as JSON ({clip(str(exc))}); plain lines follow")
    elif is_terminal(sys.stdout) and _rich_results(aggregated):
        return
    for line in plain_lines(aggregated):
        sys.stdout.write(line + "\n")
    sys.stdout.write(summary_line(aggregated) + "\n")
    sys.stdout.flush()


def _rich_results(aggregated: AggregatedResult) -> bool:
    """Print the rich table; False (nothing lost, plain lines follow) if rendering fails."""
    try:
        from rich.text import Text

        out = console()
        table = results_table(aggregated)
        with out.capture() as captured:  # render fully first, so a failure prints nothing
            out.print(table)
        out.file.write(captured.get())
        out.print(Text(summary_line(aggregated)))
    except Exception as exc:  # a rendering bug must not lose the report
        log.debug("rich failed to render the results", exc_info=True)
        warning(f"could not draw the results table ({type(exc).__name__}); plain lines follow")
        return False
    return True
