"""The ifupdown backend (with bridge-utils): :class:`IfupdownBackend` (backend.py) and its shell
(templates/shell.sh.j2)."""

from fleetbr.backends.ifupdown.backend import IfupdownBackend

__all__ = ["IfupdownBackend"]
