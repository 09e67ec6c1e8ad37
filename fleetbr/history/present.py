"""``fleetbr history`` and ``fleetbr show RUN``: the run history as a table (a terminal), plain
lines (anywhere else) or JSON. Every value is escaped as ``fleetbr.output`` does."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fleetbr.errors import UsageError
from fleetbr.history.store import HistoryError, HistoryStore, HostRow, RunRecord
from fleetbr.output import Human, console, is_terminal, plain, print_json
from fleetbr.report import hosts_text

_RELATIVE = re.compile(r"([0-9]+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: a duration back from now (``90s``, ``30m``, ``2h``, ``7d``, ``1w``) or a local
    date/time (``2024-05-01``, ``2024-05-01T12:00``, ``2024-05-01 12:00:00``, with an optional
    UTC offset); epoch seconds. UsageError otherwise."""
    value = text.strip()
    found = _RELATIVE.fullmatch(value)
    if found:
        return (time.time() if now is None else now) - int(found[1]) * _UNITS[found[2]]
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {plain(text)!r}: give a duration (30m, 2h, 7d) or a date/time "
            "(2024-05-01, 2024-05-01T12:00)"
        ) from None
    return when.timestamp()  # naive: local time


def local_time(epoch: float | None) -> str:
    """``2024-05-01 12:00:03`` in local time ("" for none)."""
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def iso_utc(epoch: float | None) -> str | None:
    """ISO 8601 in UTC, for JSON."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def counts_text(rows: Sequence[HostRow]) -> str:
    """``5 confirmed, 1 rolled_back``."""
    tally: dict[str, int] = {}
    for row in rows:
        tally[row.status] = tally.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))


def run_dict(run: RunRecord, rows: Sequence[HostRow] | None = None) -> dict[str, Any]:
    """A run as JSON."""
    doc: dict[str, Any] = {
        "run": run.id, "command": run.command, "state": run.state, "exit_code": run.exit_code,
        "started": run.started, "started_at": iso_utc(run.started), "ended": run.ended,
        "ended_at": iso_utc(run.ended),
        "duration": None if run.ended is None else round(run.ended - run.started, 3),
        "task": run.task_path, "task_sha256": run.task_sha256, "selection": run.selection,
        "options": run.options, "resumed_from": run.resumed_from, "host_count": len(run.hosts),
        "controller": run.controller,
    }  # fmt: skip
    if rows is not None:
        tally: dict[str, int] = {}
        for row in rows:
            tally[row.status] = tally.get(row.status, 0) + 1
        doc["counts"] = tally
    return doc


def row_dict(row: HostRow) -> dict[str, Any]:
    """A host row as JSON."""
    return {
        "status": row.status, "message": row.message, "txid": row.txid, "batch": row.batch,
        "started": row.started, "ended": row.ended, "elapsed": row.elapsed,
        "phases": row.phases, "diff": row.diff, "from_run": row.from_run, "worker": row.worker,
        "data": row.data,
    }  # fmt: skip


def phases_text(phases: object) -> str:
    """``prepare=1.2s window=4.0s`` (anything unexpected shown as it is)."""
    if not isinstance(phases, dict):
        return str(phases or "")
    return " ".join(
        f"{key}={value:.1f}s" if isinstance(value, int | float) else f"{key}={value}"
        for key, value in sorted(phases.items(), key=lambda item: str(item[0]))
    )


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A rich table on a terminal; plain lines padded to the longest value anywhere else (the
    last column never padded)."""
    cells = [[plain(value) for value in row] for row in rows]
    if is_terminal(sys.stdout):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(plain(title)), title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in cells:
            table.add_row(*(Text(value) for value in row))
        console().print(table)
        return
    lines = [list(header), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        padded = [value.ljust(widths[i]) for i, value in enumerate(line[:-1])] + [line[-1]]
        sys.stdout.write("  ".join(padded).rstrip() + "\n")
    sys.stdout.flush()


def show_history(
    store: HistoryStore,
    *,
    hosts: Callable[[Sequence[str]], list[str]] | None,
    since: str | None,
    command: str | None,
    last: int,
    as_json: bool,
) -> None:
    """``fleetbr history``: runs, newest first, or with ``hosts`` (which of the recorded host
    names to show) those hosts' rows."""
    since_at = None if since is None else parse_since(since)
    if hosts is not None:
        names = hosts(store.host_names())
        found = store.host_history(names, since=since_at, command=command)[:last]
        if as_json:
            print_json({"hosts": [{"run": run.id, "command": run.command, "host": row.host,
                                   **row_dict(row)} for run, row in found]})  # fmt: skip
            return
        print_table("history", ("run", "started", "command", "host", "status", "txid", "message"),
                    [(run.id, local_time(row.started or run.started), run.command, row.host,
                      row.status, row.txid or "", row.message) for run, row in found])  # fmt: skip
        return
    runs = store.runs(since=since_at, command=command, limit=last)
    if as_json:
        print_json({"runs": [run_dict(run, store.hosts_of(run.id)) for run in runs]})
        return
    print_table(
        "history", ("run", "started", "command", "task", "hosts", "state", "exit", "result"),
        [(run.id, local_time(run.started), run.command, run.task_path or "",
          run.selection or "all", _state(store, run), "" if run.exit_code is None else
          run.exit_code, counts_text(store.hosts_of(run.id))) for run in runs],
    )  # fmt: skip


def _state(store: HistoryStore, run: RunRecord) -> str:
    state = str(run.state)
    if run.resumed_from is not None:
        state += f" (resumes {run.resumed_from})"
    later = store.resumed_by(run.id)
    if later is not None:
        state += f" (resumed by {later})"
    return state


def run_number(text: str, store: HistoryStore) -> int:
    """``show RUN``: a run number, or ``last``."""
    if text == "last":
        latest = store.latest_run_id()
        if latest is None:
            raise UsageError(f"no runs in {store.location}")
        return latest
    if not text.isdigit():
        raise UsageError(f"show {plain(text)!r}: a run number (see `fleetbr history`) or 'last'")
    return int(text)


def readable_lines(key: str, value: object, indent: str = "") -> list[str]:
    """``key: value`` for people: a mapping as indented ``key: value`` lines, a list as its
    items shell-quoted (an argv reads as typed), never a Python repr."""
    if isinstance(value, Mapping):
        lines = [f"{indent}{key}:"]
        for name, item in value.items():
            lines += readable_lines(str(name), item, indent + "  ")
        return lines
    if isinstance(value, list | tuple):
        return [f"{indent}{key}: {shlex.join(str(item) for item in value)}"]
    if isinstance(value, bool):
        return [f"{indent}{key}: {'yes' if value else 'no'}"]
    return [f"{indent}{key}: {'-' if value is None else value}"]


def show_run(store: HistoryStore, run_id: int, *, as_json: bool) -> None:
    """``fleetbr show RUN``."""
    try:
        run = store.run(run_id)
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    rows = store.hosts_of(run.id)
    order = {host: i for i, host in enumerate(run.hosts)}
    rows.sort(key=lambda row: order.get(row.host, len(order)))
    if as_json:
        print_json(run_dict(run, rows) | {"hosts": {row.host: row_dict(row) for row in rows}})
        return
    out = Human()
    doc = run_dict(run, rows)
    for key in ("run", "command", "state", "exit_code", "task", "task_sha256", "selection",
                "options", "resumed_from", "controller"):  # fmt: skip
        if doc[key] not in (None, "", {}):
            for line in readable_lines(key, doc[key]):
                out.line(line)
    out.line(f"started: {local_time(run.started)}  ended: {local_time(run.ended)}  "
             f"duration: {doc['duration'] if doc['duration'] is not None else '-'}s")  # fmt: skip
    print_table(
        f"run {run.id}", ("host", "batch", "status", "time", "txid", "phases", "message"),
        [(row.host, "" if row.batch is None else row.batch + 1, row.status,
          "" if row.elapsed is None else f"{row.elapsed:.1f}s", row.txid or "",
          phases_text(row.phases), row.message)
         for row in rows],
    )  # fmt: skip
    out.line(f"{hosts_text(len(run.hosts))}: {counts_text(rows) or 'no results'}")
