"""The netplan backend: :class:`NetplanBackend` (backend.py) and its shell
(templates/shell.sh.j2)."""

from fleetbr.backends.netplan.backend import NetplanBackend

__all__ = ["NetplanBackend"]
