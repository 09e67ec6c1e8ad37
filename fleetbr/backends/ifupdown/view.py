"""ifupdown's view of the host, from the facts' ``daemons`` section: ``ifstate NAME=LOGICAL``
(``ifquery --state``) and the ``iface`` stanzas of /etc/network/interfaces and the files it
sources. Pure."""

from __future__ import annotations

import fnmatch
import posixpath
import re

from fleetbr.facts.model import DaemonView
from fleetbr.facts.views import ViewContext
from fleetbr.validate import split_lines

INTERFACES = "/etc/network/interfaces"
_RUN_PARTS_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _logical_lines(text: str) -> list[list[str]]:
    lines, pending = [], ""
    for line in split_lines(text):
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split()
        pending = ""
        if words:
            lines.append(words)
    return lines


def _sourced(words: list[str], contents: dict[str, str]) -> list[str]:
    target = posixpath.join("/etc/network", words[1])
    if words[0] == "source":
        return sorted(p for p in contents if fnmatch.fnmatchcase(p, target))
    return sorted(
        p
        for p in contents
        if posixpath.dirname(p) == target.rstrip("/") and _RUN_PARTS_RE.match(posixpath.basename(p))
    )


def ifupdown_stanzas(contents: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """File read by ifupdown -> the interfaces it has ``iface`` stanzas for (``source`` and
    ``source-directory`` followed among the files the script sent)."""
    result: dict[str, tuple[str, ...]] = {}
    queue = [INTERFACES] if INTERFACES in contents else []
    while queue:
        path = queue.pop(0)
        if path in result:
            continue
        names: list[str] = []
        for words in _logical_lines(contents[path]):
            if words[0] == "iface" and len(words) > 1 and words[1] not in names:
                names.append(words[1])
            elif words[0] in ("source", "source-directory") and len(words) > 1:
                queue.extend(_sourced(words, contents))
        result[path] = tuple(names)
    return result


def add_views(ctx: ViewContext, stanzas_of: dict[str, tuple[str, ...]]) -> None:
    """One view of each interface that is up (``ifquery --state``) or has a stanza."""
    up = [rest.partition("=")[0] for _, rest in ctx.words("ifstate")]
    stanzas: dict[str, list[str]] = {}
    for path, names in stanzas_of.items():
        for name in names:
            stanzas.setdefault(name, []).append(path)
    for name in dict.fromkeys([*up, *stanzas]):
        files = ctx.config(stanzas.get(name, []))
        ctx.add(name, DaemonView("ifupdown", "up" if name in up else "down", files, name in up))
