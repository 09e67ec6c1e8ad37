"""``fleetbr run --diff``: how the outputs of the host groups differ (clubak's idea).

Hosts are grouped as in the default report (same outcome, same output); the largest group (the
first of them on a tie) is the reference, and every other group is shown as a unified diff of its
output against the reference's. Hosts that could not run the command are listed, not compared.
Pure: the report text and the JSON data (docs/run.md, "How the outputs differ: --diff").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from fleetbr.adhoc.present import (
    Group,
    group,
    indent_line,
    json_document,
    kind,
    output_lines,
    summary,
)
from fleetbr.adhoc.text import fold_hosts, one_line
from fleetbr.report import AggregatedResult

NOT_RUN = ("unreachable", "failed to run")  # kinds whose output says nothing about the command
SAME = "(the same output as the reference)"


@dataclass(frozen=True)
class Compared:
    """One group and its output's unified diff against the reference (empty: the same
    output, another outcome; the reference itself has none)."""

    group: Group
    diff: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputDiff:
    """The reference group, the other groups compared with it, the hosts not compared."""

    reference: Group | None
    others: tuple[Compared, ...]
    not_compared: tuple[Group, ...]


def compare(aggregated: AggregatedResult) -> OutputDiff:
    """Group the hosts, pick the reference and diff every other group against it."""
    ran = group(r for r in aggregated.values() if kind(r) not in NOT_RUN)
    not_compared = group((r for r in aggregated.values() if kind(r) in NOT_RUN), by_output=False)
    if not ran:
        return OutputDiff(None, (), tuple(not_compared))
    reference = max(ran, key=lambda found: len(found.hosts))  # the first of the largest
    before = compared_lines(reference)
    others = tuple(
        Compared(found, unified(before, compared_lines(found), reference, found))
        for found in ran
        if found is not reference
    )
    return OutputDiff(reference, others, tuple(not_compared))


def compared_lines(found: Group) -> list[str]:
    """What is compared of a group: its output as the grouped report shows it (the host's lines
    indented, fleetbr's own at the margin), so a host's ``---- stderr`` line cannot pass for the
    mark in a diff either."""
    return output_lines(found.sample.data, indent_line)


def unified(before: list[str], after: list[str], old: Group, new: Group) -> tuple[str, ...]:
    """The unified diff of two groups' output lines, labelled with their folded host names."""
    return tuple(
        difflib.unified_diff(before, after, _label(old), _label(new), lineterm="")
    )  # fmt: skip


def _label(found: Group) -> str:
    return one_line(fold_hosts(found.hosts))


def render_diff(aggregated: AggregatedResult) -> str:
    """The human report: the reference group with its output, each other group with its diff,
    the hosts not compared, then the summary line. Every line from a host is indented."""
    found = compare(aggregated)
    lines: list[str] = []
    if found.reference is not None:
        lines.append(found.reference.header("reference"))
        lines.extend(compared_lines(found.reference))
    for other in found.others:
        lines.append(other.group.header("diff"))
        lines.extend(indent_line(line) for line in other.diff or (SAME,))
    lines.extend(missing.header("not compared") for missing in found.not_compared)
    lines.append(summary(aggregated))
    return "\n".join(lines) + "\n"


def diff_document(aggregated: AggregatedResult) -> dict[str, Any]:
    """``--json --diff``: every host's fields (as plain ``--json``) under ``hosts``; the groups,
    the reference first, each with its hosts, outcome and diff lines; the hosts not compared."""
    found = compare(aggregated)
    groups = [_fields(found.reference, reference=True)] if found.reference else []
    groups += [_fields(other.group, reference=False, diff=list(other.diff))
               for other in found.others]  # fmt: skip
    return {
        "hosts": json_document(aggregated),
        "groups": groups,
        "not_compared": [_fields(missing) for missing in found.not_compared],
    }


def _fields(found: Group, **extra: Any) -> dict[str, Any]:
    status = found.sample.status.value
    return {"hosts": list(found.hosts), "status": status, "message": found.sample.message, **extra}
