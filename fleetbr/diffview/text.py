"""The text form of a :class:`HostDiff`: what ``--diff`` prints for people (pure).

Every value is escaped (:func:`fleetbr.output.plain`: a control character in an interface
name, an address or a file shows as ``\\x1b``, ``\\r``...), then coloured when asked: ``+``
green, ``-`` red, ``@@`` cyan, headers bold. Whether to colour is the caller's
(:func:`colour_wanted`: a terminal and no ``NO_COLOR``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TextIO

from fleetbr.diffview.model import HostDiff
from fleetbr.output import is_terminal, plain

COLOURS = {"add": "32", "del": "31", "hunk": "36", "head": "1"}


def colour_wanted(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    return is_terminal(stream) and "NO_COLOR" not in os.environ


def styled_lines(diff: HostDiff) -> Iterator[tuple[str, str]]:
    """(escaped line, style) for every printed line; style "" or one of :data:`COLOURS`."""
    changed = [s for s in diff.sections if s.changed]
    files = [f for f in diff.files if f.status != "unchanged"]
    state = "changes" if changed or files else "no change"
    yield f"--- {plain(diff.host)}: {diff.mode}, {state}", "head"
    if diff.note:
        yield plain(diff.note), ""
    for section in changed:
        yield from _diff(section.diff())
    for file in files:
        if file.note:
            yield f"# {plain(file.path)}: {file.status}; {plain(file.note)}", ""
        yield from _diff(file.diff())


def _diff(lines: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for i, line in enumerate(lines):
        shown = plain(line)
        if i < 2 and line.startswith(("---", "+++")):
            yield shown, "head"
        elif line.startswith("@@"):
            yield shown, "hunk"
        elif line.startswith("+"):
            yield shown, "add"
        elif line.startswith("-"):
            yield shown, "del"
        else:
            yield shown, ""


def render_text(diff: HostDiff, *, colour: bool = False) -> str:
    """The view as text, one line per entry, ending with a newline."""
    out = []
    for line, style in styled_lines(diff):
        code = COLOURS.get(style) if colour else None
        out.append(f"\x1b[{code}m{line}\x1b[0m" if code else line)
    return "".join(line + "\n" for line in out)
