"""``--metrics-file PATH``: the last run as Prometheus text-format metrics, for node_exporter's
textfile collector (write ``PATH.tmp.PID``, then rename it over PATH: a scrape never sees half a
file).

::

    # HELP fleetbr_hosts Hosts of the last fleetbr run, by the status they ended in.
    # TYPE fleetbr_hosts gauge
    fleetbr_hosts{command="apply",selection="rack-a",schedule="",status="confirmed"} 5
    ...

``selection`` (the ``-l`` text, ``all`` without one) and ``schedule`` (the schedule's name when
a ``fleetbr schedule`` timer runs the command, else empty) tell apart the series of runs that
write different files, so they do not collide once collected.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleetbr.report import Status

DRIFTED = "drifted"  # the status `fleetbr check` gives a host that differs from its task


@dataclass(frozen=True)
class RunSummary:
    """What the metrics say about one run."""

    command: str
    counts: Mapping[str, int]  # status -> hosts
    started: float  # epoch seconds
    ended: float
    exit_code: int
    labels: Mapping[str, str] = field(default_factory=dict)  # selection, schedule


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _family(name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        text = ",".join(f'{key}="{escape_label(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{text}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def render(summary: RunSummary) -> str:
    """The metrics of ``summary`` in the Prometheus text format (version 0.0.4)."""
    command = {"command": summary.command} | dict(summary.labels)
    statuses = [s.value for s in Status] + sorted(set(summary.counts) - {s.value for s in Status})
    drifted = summary.counts.get(DRIFTED, 0)
    return "".join(
        [
            _family(
                "fleetbr_hosts", "Hosts of the last fleetbr run, by the status they ended in.",
                ((command | {"status": s}, summary.counts.get(s, 0)) for s in statuses),
            ),
            _family("fleetbr_drifted_hosts", "Hosts the last fleetbr run found drifted from "
                    "their task.", [(command, drifted)]),
            _family("fleetbr_last_run_timestamp_seconds", "When the last fleetbr run ended "
                    "(Unix time).", [(command, summary.ended)]),
            _family("fleetbr_last_run_duration_seconds", "How long the last fleetbr run took.",
                    [(command, max(0.0, summary.ended - summary.started))]),
            _family("fleetbr_last_run_exit_code", "The exit code of the last fleetbr run.",
                    [(command, summary.exit_code)]),
        ]
    )  # fmt: skip


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to a new temporary file beside ``path``, then rename it to ``path``
    (OSError if impossible; the temporary file never stays behind).

    The directory may be writable by other users (a textfile collector's): the temporary name is
    random, the file is created new (``O_EXCL``, never through a link: ``O_NOFOLLOW``) and
    given ``mode`` through its descriptor, and the rename replaces a link at ``path`` rather
    than following it. ``mode`` 0644 by default: the collector runs as another user."""
    temporary = path.with_name(_temp_name(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), mode)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _temp_name(path: Path) -> str:
    """A name nobody can guess in advance, in the same directory (and not ``*.prom``)."""
    return f".{path.name}.{secrets.token_hex(8)}.tmp"
