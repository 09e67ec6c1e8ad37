"""What a configuration file *is*, beyond its content: owner, group, mode, and whether its path is
a symlink and to what (the facts script's ``file_meta`` section). Pure, no I/O.

fleetbr keeps all of it when it rewrites a file and puts all of it back when it restores one
(templates/steps.sh.j2); the confirm and the rollback checks compare it (docs/safety.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fleetbr.errors import FactsError

_META_RE = re.compile(r"^meta ([0-7]{1,4}) ([0-9]+) ([0-9]+) (/.*)$")
_LINK_RE = re.compile(r"^symlink ([A-Za-z0-9+/=]*) (/.*)$")


@dataclass(frozen=True)
class FileMeta:
    """One path: the mode, owner and group of the file it leads to, and its symlink target
    (None: not a symlink). ``uid``/``gid`` None in an expectation: any owner."""

    mode: int | None
    uid: int | None = None
    gid: int | None = None
    link: str | None = None

    def describe(self) -> str:
        """``symlink to X, mode 0600 owner 0:0`` style text (for checks and messages)."""
        parts = [f"symlink to {self.link}"] if self.link is not None else []
        parts.append("no file" if self.mode is None else f"mode {self.mode:04o}")
        if self.uid is not None:
            parts[-1] += f" owner {self.uid}:{self.gid}"
        return ", ".join(parts)

    def satisfies(self, want: FileMeta) -> bool:
        """Whether this path is what ``want`` asks (its unset owner: any owner)."""
        owner = want.uid is None or (self.uid, self.gid) == (want.uid, want.gid)
        return owner and (self.mode, self.link) == (want.mode, want.link)

    def with_mode(self, mode: int) -> FileMeta:
        """The same path with ``mode``."""
        return replace(self, mode=mode)


def parse_file_meta(lines: Sequence[str]) -> dict[str, FileMeta]:
    """``meta MODE UID GID PATH`` and ``symlink BASE64 PATH`` lines -> path -> FileMeta."""
    found: dict[str, FileMeta] = {}
    for line in lines:
        if meta := _META_RE.match(line):
            mode, uid, gid, path = meta.groups()
            link = found[path].link if path in found else None
            found[path] = FileMeta(int(mode, 8), int(uid), int(gid), link)
        elif symlink := _LINK_RE.match(line):
            path = symlink.group(2)
            found[path] = replace(found.get(path, FileMeta(None)), link=_target(symlink.group(1)))
        else:
            raise FactsError(f"section file_meta: unexpected line {line!r}")
    return found


def _target(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError) as exc:
        raise FactsError(f"section file_meta: bad symlink target {encoded!r}") from exc


def parse_kept(lines: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``kept TXID NAME`` lines -> txid -> the paths whose edits its rollback kept (NAME is the
    path with ``/`` written ``%``, as the backups are named)."""
    kept: dict[str, list[str]] = {}
    for line in lines:
        words = line.split(" ")
        if len(words) != 3 or words[0] != "kept" or not words[2].startswith("%"):
            raise FactsError(f"section kept: unexpected line {line!r}")
        kept.setdefault(words[1], []).append(words[2].replace("%", "/"))
    return {txid: tuple(paths) for txid, paths in kept.items()}


def kept_note(kept: dict[str, tuple[str, ...]], txid: str, state_dir: str) -> str:
    """``; kept ...`` for a report line when ``txid``'s rollback kept edits, else ``""``."""
    paths = kept.get(txid)
    if not paths:
        return ""
    return (
        f"; kept what someone else wrote to {', '.join(paths)} during the window "
        f"(in {state_dir}/kept/{txid}/) before restoring"
    )
