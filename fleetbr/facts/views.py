"""What a backend's parser gets of the facts' ``daemons`` section (fleetbr.backends.base:
``parse_config`` and ``parse_view``), and where it puts what it found. Pure."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetbr.facts.model import ConfigFile, DaemonView, Link


class Generator(Protocol):
    """A backend that generates files another daemon reads (netplan: networkd and
    NetworkManager files); the view of an interface configured by such a file is its own."""

    def generates(self, path: str) -> bool:
        """``path`` is a file this backend generated."""

    def generated_view(
        self, ctx: ViewContext, name: str, state: str, paths: Sequence[str], claims: bool
    ) -> DaemonView:
        """The view of interface ``name`` configured by its generated file ``paths[0]``."""


@dataclass
class ViewContext:
    """The daemons section, sorted for the backends' parsers."""

    lines: list[tuple[str, str]]  # the backends' lines: (first word, the rest), in order
    files: dict[str, str | None]  # every config file -> sha256 (None: unreadable)
    contents: dict[str, str]  # the text of each file the script sent
    links: Sequence[Link]
    warnings: list[str]
    generators: Sequence[Generator] = ()
    present: frozenset[str] = frozenset()  # the tools the facts' section backends found
    # Daemons fields the backends found, by field name (``netplan``, ``nm_active``...)
    found: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # a backend's own, between its phases
    views: dict[str, list[DaemonView]] = field(default_factory=dict)  # interface -> views

    def words(self, *words: str) -> list[tuple[str, str]]:
        """Every line that starts with one of ``words``, as (word, rest), in order."""
        return [(word, rest) for word, rest in self.lines if word in words]

    def config(self, paths: Iterable[str]) -> tuple[ConfigFile, ...]:
        """``paths`` (each once, empty ones left out) with their sha256."""
        unique = dict.fromkeys(p for p in paths if p)
        return tuple(ConfigFile(p, self.files.get(p)) for p in unique)

    def add(self, name: str, view: DaemonView) -> None:
        """Add what a daemon says of interface ``name``."""
        self.views.setdefault(name, []).append(view)

    def daemon_view(
        self, backend: str, name: str, state: str, paths: Sequence[str], claims: bool
    ) -> DaemonView:
        """The view of ``name`` by a daemon configured by ``paths`` (its main file first):
        the generating backend's when another backend generated that file, else ``backend``'s."""
        first = paths[0] if paths else ""
        for generator in self.generators:
            if first and generator.generates(first):
                return generator.generated_view(self, name, state, paths, claims)
        return DaemonView(backend, state, self.config(paths), claims=claims)


def dir_rank(path: str, dirs: Sequence[str]) -> int:
    """The index of ``path``'s folder in ``dirs`` (``len(dirs)``: in none of them)."""
    parent = posixpath.dirname(path)
    return dirs.index(parent) if parent in dirs else len(dirs)


def by_precedence(paths: Iterable[str], dirs: Sequence[str]) -> list[str]:
    """Config files as a daemon reads them: sorted by name; a name in an earlier dir of
    ``dirs`` hides the same name in a later one."""
    chosen: dict[str, str] = {}
    for path in sorted(paths, key=lambda p: dir_rank(p, dirs)):
        chosen.setdefault(posixpath.basename(path), path)
    return [chosen[name] for name in sorted(chosen)]
