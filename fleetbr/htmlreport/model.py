"""The report's model: a recorded run (``history.store`` rows) turned into what the page shows.

Pure data, no HTML: the run's header, the summaries (by status, batch and site), the shared time
axis and, per host, its timeline bars, events, steps with their inverses, decision and reason,
and the differences. Hosts that did not end well come first (see :data:`ORDER`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbr.diffview.model import HostDiff
from fleetbr.diffview.text import styled_lines
from fleetbr.history.store import HostRow, RunRecord
from fleetbr.report import Status

# Sort order of the hosts: what needs a look first, then the rest as the rollout left it.
ORDER = {
    Status.FAILED: 0, Status.UNREACHABLE: 0, Status.TIMED_OUT: 0,
    Status.ROLLED_BACK: 1, Status.REFUSED: 2, Status.DRIFTED: 2, "started": 3,
    Status.SKIPPED: 4,
}  # fmt: skip
OK_ORDER = 5
LABEL_GAP = 60.0  # per mille of the axis between two batch labels
PHASES = ("prepare", "arm", "apply", "confirm", "rollback", "verify")


@dataclass(frozen=True)
class Bar:
    """One phase of a host on the shared axis, in per mille of the run's duration."""

    phase: str
    start: float  # seconds after the run started
    seconds: float
    x: float  # 0..1000
    width: float  # 0..1000


@dataclass(frozen=True)
class Step:
    """A planned step and its inverse (None: the step has none)."""

    text: str
    inverse: str | None


@dataclass
class HostView:
    """One host's part of the report."""

    name: str
    status: str
    message: str
    batch: int | None  # 1-based
    canary: bool
    site: str
    txid: str
    elapsed: float | None
    bars: list[Bar] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    decision: str = ""
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    # the host's before/after view (fleetbr.diffview) as (escaped line, style) pairs
    diff_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def diff_text(self) -> str:
        """The view's lines as one text (the page styles them when the host is opened)."""
        return "".join(line + "\n" for line, _ in self.diff_lines)

    @property
    def diff_styles(self) -> str:
        """One letter per line of :attr:`diff_text`: h header, u hunk, + added, - removed,
        ``.`` context (the page's script turns them into elements)."""
        return "".join(STYLE_CODES.get(style, ".") for _, style in self.diff_lines)


@dataclass(frozen=True)
class Tick:
    """A mark on the time axis."""

    x: float  # 0..1000
    label: str


@dataclass(frozen=True)
class Mark:
    """Where a batch started on the time axis."""

    x: float
    label: str


@dataclass
class Report:
    """Everything the page shows."""

    run: RunRecord
    started_at: str
    ended_at: str
    duration: float
    hosts: list[HostView]
    by_status: list[tuple[str, int]]
    by_batch: list[tuple[str, list[tuple[str, int]]]]
    by_site: list[tuple[str, list[tuple[str, int]]]]
    ticks: list[Tick]
    batch_marks: list[Mark]
    statuses: list[str]
    options: list[tuple[str, str]]
    controller: list[tuple[str, str]]


def utc_text(epoch: float | None) -> str:
    """``2026-12-06 08:01:02 UTC`` ("-" for none)."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def build(
    run: RunRecord,
    rows: Sequence[HostRow],
    *,
    sites: Mapping[str, str] | None = None,
) -> Report:
    """The report of ``run`` from its host ``rows``. ``sites``: host -> site (from the
    inventory; "-" for a host it does not name). A host's before/after view is the one its row
    recorded (an apply's transaction, ``plan --diff``)."""
    start = run.started
    end = max([run.ended or start, *(row.ended or row.started or start for row in rows)])
    duration = max(end - start, 0.001)
    canary = _canary_hosts(run)
    context = _Context(start, duration, canary, sites or {})
    views = [_host_view(row, context) for row in rows]
    position = {name: i for i, name in enumerate(run.hosts)}
    views.sort(key=lambda v: (ORDER.get(v.status, OK_ORDER), position.get(v.name, len(position))))
    return Report(
        run=run, started_at=utc_text(run.started), ended_at=utc_text(run.ended),
        duration=round(end - start, 3), hosts=views,
        by_status=sorted(Counter(v.status for v in views).items()),
        by_batch=_grouped(views, _batch_label),
        by_site=_grouped(views, lambda v: v.site),
        ticks=_ticks(duration), batch_marks=_batch_marks(rows, start, duration, canary),
        statuses=sorted({v.status for v in views}, key=lambda s: ORDER.get(s, OK_ORDER)),
        options=[(str(k), _text(v)) for k, v in sorted(run.options.items())],
        controller=[(str(k), _text(v)) for k, v in sorted(run.controller.items())],
    )  # fmt: skip


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return "-" if value is None else str(value)


def _canary_hosts(run: RunRecord) -> int:
    value = run.options.get("canary")
    return value if isinstance(value, int) and value > 0 else 0


def _batch_label(view: HostView) -> str:
    if view.batch is None:
        return "-"
    return f"{view.batch} (canary)" if view.canary else str(view.batch)


def _grouped(views: Sequence[HostView], key: Any) -> list[tuple[str, list[tuple[str, int]]]]:
    groups: dict[str, Counter[str]] = {}
    for view in views:
        groups.setdefault(key(view), Counter())[view.status] += 1
    return [(name, sorted(tally.items())) for name, tally in sorted(groups.items(), key=_natural)]


def _natural(item: tuple[str, object]) -> tuple[int, str]:
    head = item[0].split(" ")[0]
    return (int(head), item[0]) if head.isdigit() else (1 << 30, item[0])


@dataclass(frozen=True)
class _Context:
    start: float
    duration: float
    canary: int
    sites: Mapping[str, str]


def _host_view(row: HostRow, context: _Context) -> HostView:
    data = row.data if isinstance(row.data, dict) else {}
    verdict = data.get("verdict") if isinstance(data.get("verdict"), dict) else {}
    assert isinstance(verdict, dict)
    return HostView(
        name=row.host, status=str(row.status), message=row.message,
        batch=None if row.batch is None else row.batch + 1,
        canary=context.canary > 0 and row.batch == 0, site=context.sites.get(row.host, "-"),
        txid=row.txid or "", elapsed=row.elapsed,
        bars=_bars(row, data, context.start, context.duration),
        events=_strings(data.get("events")), steps=_steps(data),
        decision=str(data.get("decision") or ""), reason=str(data.get("reason") or ""),
        problems=_strings(verdict.get("problems")),
        differences=_differences(row, data), diff_lines=_diff_lines(row.diff),
    )  # fmt: skip


STYLE_CODES = {"head": "h", "hunk": "u", "add": "+", "del": "-"}


def _diff_lines(recorded: object) -> list[tuple[str, str]]:
    """The recorded before/after view as styled lines ([] for a check's drift list, a note
    of a view over the size limit, or a row from before views were recorded)."""
    if not isinstance(recorded, dict) or "runtime" not in recorded:
        return []
    try:
        return list(styled_lines(HostDiff.from_json(recorded)))
    except ValueError:  # a damaged row: the rest of the report still shows
        return []


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _steps(data: Mapping[str, Any]) -> list[Step]:
    steps = _strings(data.get("steps"))
    inverses = data.get("inverses")
    if not isinstance(inverses, list) or len(inverses) != len(steps):
        inverses = [None] * len(steps)
    pairs = zip(steps, inverses, strict=True)
    return [Step(text, None if inverse is None else str(inverse)) for text, inverse in pairs]


def _differences(row: HostRow, data: Mapping[str, Any]) -> list[str]:
    """The recorded differences: a check's drift (``diff``) and a rollback's notes."""
    out: list[str] = []
    if isinstance(row.diff, list):
        for item in row.diff:
            out.append(str(item.get("text") or item) if isinstance(item, dict) else str(item))
    out += _strings(data.get("differences"))
    return out


def _bars(row: HostRow, data: Mapping[str, Any], start: float, duration: float) -> list[Bar]:
    """The host's phases: the transaction's recorded timeline, else the rollout's ``prepare``
    and ``window`` durations, else one bar from its start to its end."""
    began = row.started if row.started is not None else start
    finished = row.ended if row.ended is not None else began + (row.elapsed or 0.0)
    marks = _timeline(data.get("timeline"))
    if not marks:
        marks = [("prepare", began)]
        phases = row.phases or {}
        prepare = phases.get("prepare")
        if isinstance(prepare, int | float) and "window" in phases:
            marks.append(("window", began + float(prepare)))
        elif "prepare" not in phases:
            marks = [("total", began)]
    marks.append(("", max(finished, marks[-1][1])))
    return [
        _bar(phase, at - start, max(until - at, 0.0), duration)
        for (phase, at), (_, until) in itertools.pairwise(marks)
    ]


def _timeline(value: object) -> list[tuple[str, float]]:
    if not isinstance(value, list):
        return []
    marks = []
    for item in value:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], int | float):
            marks.append((str(item[0]), float(item[1])))
    return marks


def _bar(phase: str, offset: float, seconds: float, duration: float) -> Bar:
    x = min(max(offset / duration * 1000, 0.0), 1000.0)
    width = max(min(seconds / duration * 1000, 1000.0 - x), 1.0)
    return Bar(phase, round(offset, 3), round(seconds, 3), round(x, 1), round(width, 1))


def _ticks(duration: float) -> list[Tick]:
    step = _nice_step(duration / 6)
    ticks, at = [], 0.0
    while at <= duration + 1e-9:
        ticks.append(Tick(round(at / duration * 1000, 1), _seconds(at)))
        at += step
    return ticks


def _nice_step(raw: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if step >= raw:
            return float(step)
    return float(3600 * (int(raw // 3600) + 1))


def _seconds(value: float) -> str:
    if value >= 60:
        return f"{int(value // 60)}m{int(value % 60):02d}s"
    return f"{value:g}s"


def _batch_marks(rows: Sequence[HostRow], start: float, duration: float, canary: int) -> list[Mark]:
    first: dict[int, float] = {}
    for row in rows:
        if row.batch is not None and row.started is not None and row.from_run is None:
            first[row.batch] = min(first.get(row.batch, row.started), row.started)
    marks: list[Mark] = []
    labelled = -LABEL_GAP
    for index, at in sorted(first.items()):
        x = round(min(max((at - start) / duration * 1000, 0.0), 1000.0), 1)
        label = "canary" if canary and index == 0 else f"batch {index + 1}"
        if x - labelled < LABEL_GAP:
            label = ""  # a line without a label: labels never overlap
        else:
            labelled = x
        marks.append(Mark(x, label))
    return marks
