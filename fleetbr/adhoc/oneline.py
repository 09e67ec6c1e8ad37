"""``fleetbr run -o``: pdsh-style lines, each prefixed with its host, for ``sort`` and ``grep``.

Pure: the text for stdout, built from the collected results (docs/run.md, "One line per output
line: -o").
"""

from __future__ import annotations

from fleetbr.adhoc.job import STREAMS, captured_bytes
from fleetbr.adhoc.present import stream_lines, truncation_note
from fleetbr.adhoc.text import one_line
from fleetbr.report import AggregatedResult, HostResult, Status

# What follows ``HOST:`` on a line: the host's stdout, its stderr, or fleetbr's own word on it.
TAGS = {"stdout": "", "stderr": "stderr", "fleetbr": "fleetbr"}


def render_one_line(aggregated: AggregatedResult) -> str:
    """Every host's lines in inventory order: ``HOST: LINE`` for its stdout,
    ``HOST:stderr: LINE`` for its stderr, ``HOST:fleetbr: ...`` for a truncation note and,
    unless it ended ``ok``, how it ended (``hv02:fleetbr: failed: exit 3``). Escaped as the
    grouped report is; empty when no host printed anything and every host ended ``ok``."""
    return "".join(f"{line}\n" for result in aggregated.values() for line in host_lines(result))


def host_lines(result: HostResult) -> list[str]:
    """The lines of one host (see :func:`render_one_line`)."""
    name = one_line(result.host)
    lines: list[str] = []
    for stream in STREAMS:
        prefix = _prefix(name, stream)
        raw = captured_bytes(result.data, stream)
        lines.extend(f"{prefix}{line}" for line in stream_lines(raw))
        if result.data.get(f"{stream}_truncated"):
            lines.append(_prefix(name, "fleetbr") + truncation_note(result.data, stream))
    if result.status is not Status.OK:
        verdict = f"{result.status.value}: {result.message}"
        lines.append(_prefix(name, "fleetbr") + one_line(verdict))
    return lines


def _prefix(name: str, tag: str) -> str:
    return f"{name}:{TAGS[tag]}: " if TAGS[tag] else f"{name}: "
