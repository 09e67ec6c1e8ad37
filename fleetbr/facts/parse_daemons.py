"""Parse the facts script's ``daemons`` section: which backend manages which interface. Pure.

Lines (each starts with a fixed word; see docs/facts.md): ``running DAEMON yes|no``,
``file SHA256 PATH`` and ``content BASE64 PATH``, read here; every other line starts with a word
of one registered backend (``Backend.view_words``), whose parser reads it
(:mod:`fleetbr.backends.base`: ``parse_config`` then ``parse_view``, the backends in
``view_rank`` order). File contents are the host's own configuration: anything odd in them (bad
base64, a backend's bad YAML) becomes a warning, never an error.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from fleetbr.backends import registry
from fleetbr.backends.base import Backend
from fleetbr.errors import FactsError
from fleetbr.facts.model import CONTENT_MAX_BYTES, Daemons, DaemonView, InterfaceManager, Link
from fleetbr.facts.views import ViewContext

CONTENT_LIMIT = CONTENT_MAX_BYTES  # the script sends at most one byte more of a file
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class _Collected:
    """The section's shared lines read; the backends' lines kept for them in ``ctx``."""

    ctx: ViewContext
    running: list[str] = field(default_factory=list)
    oversized: set[str] = field(default_factory=set)


def _content(found: _Collected, rest: str) -> None:
    ctx = found.ctx
    encoded, _, path = rest.partition(" ")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        ctx.warnings.append(f"section daemons: the content of {path} is not base64; skipped")
        return
    if len(data) > CONTENT_LIMIT:
        found.oversized.add(path)
        ctx.warnings.append(
            f"section daemons: {path} is longer than {CONTENT_LIMIT // 1024} KiB; only its start "
            "was read (fleetbr will not rewrite it)"
        )
    # bytes that are not UTF-8 become surrogates, and come back exactly when encoded the same way
    ctx.contents[path] = data.decode("utf-8", errors="surrogateescape")


def _file(found: _Collected, rest: str) -> None:
    digest, _, path = rest.partition(" ")
    if not path or not (_SHA256_RE.match(digest) or digest == "unreadable"):
        raise FactsError(f"section daemons: unexpected file line {rest!r}")
    found.ctx.files[path] = None if digest == "unreadable" else digest


def _running(found: _Collected, rest: str) -> None:
    name, _, value = rest.partition(" ")
    if value == "yes":
        found.running.append(name)


_HANDLERS = {"running": _running, "file": _file, "content": _content}


def _collect(
    lines: Sequence[str],
    links: Sequence[Link],
    warnings: list[str],
    backends: Sequence[Backend],
    present: Collection[str],
) -> _Collected:
    words = {word for backend in registry.backends() for word in backend.view_words}
    ctx = ViewContext([], {}, {}, links, warnings, generators=backends, present=frozenset(present))
    found = _Collected(ctx)
    for line in lines:
        word, _, rest = line.partition(" ")
        handler = _HANDLERS.get(word)
        if handler is not None:
            handler(found, rest)
        elif word in words:
            ctx.lines.append((word, rest))
        else:
            raise FactsError(f"section daemons: unexpected line {line!r}")
    return found


def _manager(name: str, views: list[DaemonView], precedence: dict[str, int]) -> InterfaceManager:
    ordered = sorted(views, key=lambda v: precedence.get(v.backend, len(precedence)))
    claimants = [v for v in ordered if v.claims]
    if not claimants:  # the word of the daemon that sees it (connected (externally)...)
        state = ordered[0].state if ordered else "unmanaged"
        return InterfaceManager(name, None, state, (), tuple(views))
    top = claimants[0]
    return InterfaceManager(name, top.backend, top.state, top.files, tuple(views))


def parse_daemons(
    lines: Sequence[str],
    links: Sequence[Link],
    warnings: list[str],
    present: Collection[str] = (),
) -> Daemons:
    """The ``daemons`` section as :class:`Daemons` (empty when the section is absent).
    ``present``: the tools the section ``backends`` found; a backend that one of them replaces
    (``Backend.replaces``) reads no view (its lines are still known, and skipped)."""
    gone = registry.replaced(present)
    backends = [b for b in registry.backends() if b.name not in gone]
    found = _collect(lines, links, warnings, backends, present)
    ctx = found.ctx
    for backend in backends:
        backend.parse_config(ctx)
    for backend in sorted(backends, key=lambda b: b.view_rank):
        backend.parse_view(ctx)
    ranks = sorted(backends, key=lambda b: b.precedence)
    precedence = {b.name: i for i, b in enumerate(ranks)}
    interfaces = {name: _manager(name, v, precedence) for name, v in ctx.views.items()}
    return Daemons(
        running=tuple(found.running),
        interfaces=interfaces,
        files=dict(ctx.files),
        contents=dict(ctx.contents),
        oversized=tuple(sorted(found.oversized)),
        **ctx.found,
    )
