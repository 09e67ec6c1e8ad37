"""Printing the ``--diff`` views of a command's results (the ``diff`` of each host's data)."""

from __future__ import annotations

import sys
from typing import TextIO

from fleetbr.diffview.model import HostDiff
from fleetbr.diffview.text import colour_wanted, render_text
from fleetbr.output import warning
from fleetbr.report import AggregatedResult


def diffs_of(aggregated: AggregatedResult) -> list[HostDiff]:
    """The views the results carry, in host order (a host without one has none)."""
    out = []
    for result in aggregated.values():
        found = result.data.get("diff")
        if not isinstance(found, dict):
            continue
        try:
            out.append(HostDiff.from_json(found))
        except ValueError as exc:
            warning(f"{result.host}: cannot show its diff ({exc})")
    return out


def print_diffs(aggregated: AggregatedResult, stream: TextIO | None = None) -> None:
    """Every host's view, coloured only on a terminal without ``NO_COLOR``."""
    out = stream or sys.stdout
    colour = colour_wanted(out)
    for diff in diffs_of(aggregated):
        out.write(render_text(diff, colour=colour))
    out.flush()
