"""Where fleetbr finds its persistence backends: the five built in, then any a package declares
with an entry point in group ``fleetbr.backends`` (``NAME = "package.module:BackendClass"``), or
one a program (a test) registers with :func:`register`. Every list of backend names in fleetbr
(task validation, step arguments, the daemons' words, the shell) asks this module."""

from __future__ import annotations

from collections.abc import Collection
from importlib.metadata import entry_points
from typing import Any

from fleetbr.backends.base import Backend
from fleetbr.backends.ifupdown import IfupdownBackend
from fleetbr.backends.ifupdown2 import Ifupdown2Backend
from fleetbr.backends.netplan import NetplanBackend
from fleetbr.backends.networkd import NetworkdBackend
from fleetbr.backends.networkmanager import NetworkManagerBackend

ENTRY_POINT_GROUP = "fleetbr.backends"
BUILTIN: tuple[type[Backend], ...] = (
    IfupdownBackend,
    NetworkdBackend,
    NetplanBackend,
    NetworkManagerBackend,
    Ifupdown2Backend,
)
# name -> backend; the entry points are read at the first look-up
_registered: dict[str, Backend] = {}
_entry_points_read: list[bool] = []


def _as_backend(found: Any, origin: str) -> Backend:
    backend = found() if isinstance(found, type) else found
    if not isinstance(backend, Backend):
        raise TypeError(f"{origin} is not a fleetbr Backend")
    return backend


def _load() -> None:
    if _entry_points_read:
        return
    _entry_points_read.append(True)
    for cls in BUILTIN:
        _registered.setdefault(cls.name, cls())
    for point in entry_points(group=ENTRY_POINT_GROUP):
        backend = _as_backend(point.load(), f"entry point {point.name} ({point.value})")
        known = _registered.get(backend.name)
        if known is not None and type(known) is not type(backend):
            raise ValueError(f"entry point {point.value} names backend {backend.name}, taken")
        if backend.name not in _registered:
            _check_replaces(backend)
            _registered[backend.name] = backend


def _check_replaces(backend: Backend) -> None:
    """A backend replaces others, never itself nor one that replaces it."""
    for name in backend.replaces:
        other = _registered.get(name)
        if name == backend.name or (other is not None and backend.name in other.replaces):
            raise ValueError(f"backend {backend.name} cannot replace {name}: a cycle")


def register(backend: Backend | type[Backend]) -> Backend:
    """Add a backend (the one line a new backend needs); its name must be new."""
    _load()
    found = _as_backend(backend, repr(backend))
    if found.name in _registered or found.name in ("auto", "none"):
        raise ValueError(
            f"the backend name {found.name} is taken (auto, none, {', '.join(names())})"
        )
    _check_replaces(found)
    _registered[found.name] = found
    return found


def unregister(name: str) -> None:
    """Remove a registered backend (for tests)."""
    _load()
    _registered.pop(name, None)


def backends() -> tuple[Backend, ...]:
    """Every backend, in registration order (built-ins first)."""
    _load()
    return tuple(_registered.values())


def names() -> tuple[str, ...]:
    """The backends' names, in registration order."""
    return tuple(b.name for b in backends())


def find(name: str) -> Backend | None:
    """The backend named ``name`` (None: no such backend)."""
    _load()
    return _registered.get(name)


def get(name: str) -> Backend:
    """The backend named ``name`` (KeyError naming the known ones otherwise)."""
    backend = find(name)
    if backend is None:
        raise KeyError(f"{name!r} is not a backend ({', '.join(names())})")
    return backend


def words() -> tuple[str, ...]:
    """Every name and alias a step argument may use for a backend or its renderer."""
    return tuple(w for b in backends() for w in (b.name, *b.aliases))


def step_arg_keys() -> tuple[str, ...]:
    """Every backend's own step arguments, each once, in registration order."""
    return tuple(dict.fromkeys(k for b in backends() for k in b.step_args))


def settling_words() -> tuple[str, ...]:
    """Every daemon's words for an interface it is still bringing up or down."""
    return tuple(dict.fromkeys(w for b in backends() for w in b.settling))


def is_settled(name: str, state: str) -> bool:
    """Backend ``name``'s daemon has taken an interface over (its DaemonView ``state``)."""
    backend = find(name)
    return backend is not None and backend.is_settled(state)


def replaced(present: Collection[str]) -> frozenset[str]:
    """The names of the backends that a backend whose tool is in ``present`` (the facts'
    installed tools) replaces: the host runs the replacing one, never these."""
    return frozenset(n for b in backends() if b.tool in present for n in b.replaces)
