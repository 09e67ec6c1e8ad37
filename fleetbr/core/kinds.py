"""Change kinds behind one protocol, found by name in a registry.

A kind reads and validates its source once, renders a transaction :class:`Change` per host
before any host is contacted (a bad source is exit 2, nothing contacted), and judges one host's
facts for the read-only commands (``plan``, ``check``: pure, the engine gathers the facts over
whichever connection the front door uses). ``apply`` (and ``--resume``) is the same dead-man
transaction for every kind, driven by the change the kind rendered (its plan, its confirm
checks, its rollback check); ``status`` and ``rollback`` read the host's own transaction state
and need nothing from the kind. A kind may also have ``diff(spec, change, facts, mode) ->
fleetbr.diffview.model.HostDiff``, the ``--diff`` view of ``plan``, ``check`` and ``apply``
(a kind without one shows none). Kinds come from the ``fleetbr.kinds``
entry point group (pyproject.toml) and from :data:`BUILTIN`, so a checkout that is not
installed still finds its own; :func:`register` adds one at run time (tests, plugins).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from fleetbr.errors import UsageError
from fleetbr.facts.model import HostFacts
from fleetbr.inventory import HostSpec
from fleetbr.output import plain
from fleetbr.report import HostResult

if TYPE_CHECKING:
    from fleetbr.transaction.change import Change

GROUP = "fleetbr.kinds"
BUILTIN = {
    "bridge": "fleetbr.changes.bridge.kind:BridgeKind",
    "command": "fleetbr.changes.command.kind:CommandKind",
}


class ChangeKind(Protocol):
    """One kind of change: the bridge task, an operator's command, ..."""

    name: str
    commands: frozenset[str]  # the commands it supports (plan, apply, check)

    def load(self, source: Any) -> Any:
        """Read and validate the source once (UsageError/TaskError: exit 2, nothing contacted)."""

    def label(self, source: Any) -> str:
        """The change's name in host journals and reports."""

    def render(self, loaded: Any, spec: HostSpec, label: str) -> Change:
        """The change for one host (UsageError/TaskError before any host is contacted)."""

    def plan(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """Dry run on one host's facts: ``planned``, ``unchanged`` or ``refused``."""

    def check(self, spec: HostSpec, change: Change, facts: HostFacts) -> HostResult:
        """Drift on one host's facts: ``in_sync``, ``drifted`` or ``refused``."""


Factory = Callable[[], ChangeKind]
_registry: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make kind ``name`` available (replacing one of that name)."""
    _registry[name] = factory


class _Lazy:
    """A kind imported only when it is used: ``module:attribute`` (a built-in), or an entry
    point's target."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self.load = load

    def __call__(self) -> ChangeKind:
        kind: ChangeKind = self.load()()
        return kind


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _discover() -> None:
    for name, target in BUILTIN.items():
        _registry.setdefault(name, _Lazy(functools.partial(_import, target)))
    for entry in entry_points(group=GROUP):
        _registry.setdefault(entry.name, _Lazy(entry.load))


def names() -> list[str]:
    """Every kind's name, sorted."""
    _discover()
    return sorted(_registry)


def get(name: str) -> ChangeKind:
    """The kind called ``name`` (UsageError when there is none)."""
    _discover()
    factory = _registry.get(name)
    if factory is None:
        raise UsageError(f"no change kind {plain(name)!r} (known: {', '.join(names())})")
    return factory()
