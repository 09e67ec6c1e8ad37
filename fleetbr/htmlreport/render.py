"""Render a :class:`~fleetbr.htmlreport.model.Report` as one self-contained HTML page."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import jinja2

from fleetbr.history.store import HistoryStore
from fleetbr.htmlreport.model import PHASES, Report, build


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fleetbr.htmlreport", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # every value from the history is text, never markup
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    """The page (a string)."""
    return _environment().get_template("report.html.j2").render(report=report, phases=PHASES)


def run_report(
    store: HistoryStore,
    run_id: int,
    *,
    sites: Mapping[str, str] | None = None,
) -> str:
    """The page of run ``run_id`` of ``store`` (see :func:`fleetbr.htmlreport.model.build`)."""
    run = store.run(run_id)
    order = {host: i for i, host in enumerate(run.hosts)}
    rows = sorted(store.hosts_of(run_id), key=lambda row: order.get(row.host, len(order)))
    return render_html(build(run, rows, sites=sites))


def write_report(path: Path, html: str) -> None:
    """Write ``html`` to ``path`` whole: a new file beside it, renamed over it (a reader never
    sees half a report), mode 0600 (the report names hosts and errors, as the history does)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
