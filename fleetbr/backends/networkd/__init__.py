"""The systemd-networkd backend: :class:`NetworkdBackend` (backend.py) and its shell
(templates/shell.sh.j2)."""

from fleetbr.backends.networkd.backend import NetworkdBackend

__all__ = ["NetworkdBackend"]
