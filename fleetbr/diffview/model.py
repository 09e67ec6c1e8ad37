"""The ``--diff`` view of one host as data: runtime sections and files, before and after.

Plain frozen dataclasses; :meth:`HostDiff.to_json` is the ``diff`` object of ``--json`` (and
of the history's host rows), :meth:`HostDiff.from_json` reads it back, so a renderer (the text
one here, an HTML report) needs only the JSON form.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# plan: what the plan would do; check: the task's state against the host's (drift);
# apply: the planned view shown before an apply
Mode = Literal["plan", "check", "apply"]
MODES: tuple[Mode, ...] = ("plan", "check", "apply")
# The runtime sections, in the order they are shown.
SECTIONS: tuple[str, ...] = (
    "links", "bridges", "ports", "addresses", "routes", "sysctls", "guests",
)  # fmt: skip
CONTEXT = 3  # lines of context around a change, as diff -u
FileStatus = Literal["created", "changed", "removed", "unchanged"]


def unified(before: Sequence[str], after: Sequence[str], old: str, new: str) -> tuple[str, ...]:
    """``difflib.unified_diff`` of two line lists, labelled ``old`` and ``new``, without line
    ends (() when they are the same)."""
    return tuple(difflib.unified_diff(list(before), list(after), old, new, n=CONTEXT, lineterm=""))


@dataclass(frozen=True)
class Section:
    """One runtime section (``links``, ``routes``...) as lines before and after."""

    name: str
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when the lines differ."""
        return self.before != self.after

    def diff(self) -> tuple[str, ...]:
        """The unified diff of the lines (``a/NAME`` -> ``b/NAME``)."""
        return unified(self.before, self.after, f"a/{self.name}", f"b/{self.name}")

    def to_json(self) -> dict[str, Any]:
        """``{"before": [...], "after": [...], "changed": bool, "diff": "..."}``."""
        return {
            "before": list(self.before),
            "after": list(self.after),
            "changed": self.changed,
            "diff": _joined(self.diff()),
        }


@dataclass(frozen=True)
class FileDiff:
    """A file the change writes or removes: its content before and after (None: absent).

    ``known`` is False when the facts do not hold the old content (only its digest): the old
    side is then shown as unknown, never as empty. ``note`` says why, or what else to know.
    """

    path: str
    before: str | None
    after: str | None
    known: bool = True
    note: str = ""

    @property
    def status(self) -> FileStatus:
        """created, changed, removed or unchanged."""
        if self.after is None:
            return "removed" if self.before is not None or not self.known else "unchanged"
        if self.before is None and self.known:
            return "created"
        return "changed" if self.before != self.after or not self.known else "unchanged"

    def diff(self) -> tuple[str, ...]:
        """The unified diff of the file (``a/PATH`` -> ``b/PATH``, ``/dev/null`` for a side
        that does not exist)."""
        old = f"a{self.path}" if self.before is not None or not self.known else "/dev/null"
        new = f"b{self.path}" if self.after is not None else "/dev/null"
        return unified(_lines(self.before), _lines(self.after), old, new)

    def to_json(self) -> dict[str, Any]:
        """``{"path", "status", "before", "after", "known", "note", "diff"}``."""
        return {
            "path": self.path,
            "status": self.status,
            "before": self.before,
            "after": self.after,
            "known": self.known,
            "note": self.note,
            "diff": _joined(self.diff()),
        }


@dataclass(frozen=True)
class HostDiff:
    """One host's change: ``sections`` (every one of :data:`SECTIONS`), ``files``, and a
    ``note`` when there is no change to show (a refusal says why)."""

    host: str
    mode: Mode
    sections: tuple[Section, ...]
    files: tuple[FileDiff, ...] = ()
    note: str = ""

    @property
    def changed(self) -> bool:
        """True when a section or a file changes."""
        return any(s.changed for s in self.sections) or any(
            f.status != "unchanged" for f in self.files
        )

    def to_json(self) -> dict[str, Any]:
        """The ``diff`` object of ``--json``."""
        return {
            "host": self.host,
            "mode": self.mode,
            "changed": self.changed,
            "note": self.note,
            "runtime": {s.name: s.to_json() for s in self.sections},
            "files": [f.to_json() for f in self.files],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostDiff:
        """The view back from :meth:`to_json`'s form (ValueError when it is not that form)."""
        try:
            mode = data["mode"]
            if mode not in MODES:
                raise ValueError(f"diff: unknown mode {mode!r}")
            sections = tuple(
                Section(str(name), _strs(s["before"]), _strs(s["after"]))
                for name, s in dict(data["runtime"]).items()
            )
            files = tuple(
                FileDiff(str(f["path"]), _opt(f["before"]), _opt(f["after"]), bool(f["known"]),
                         str(f["note"]))
                for f in data["files"]
            )  # fmt: skip
            return cls(str(data["host"]), mode, sections, files, str(data["note"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"diff: not a host diff ({type(exc).__name__}: {exc})") from exc


def _lines(text: str | None) -> list[str]:
    """Lines split at newlines only: other control characters stay in their line (escaped
    when shown), so a hostile file cannot make up lines of its own."""
    if text is None:
        return []
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _joined(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError("expected a list of lines")
    return tuple(str(v) for v in value)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
