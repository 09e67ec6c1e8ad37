"""The NetworkManager backend: :class:`NetworkManagerBackend` (backend.py) and its shell
(templates/shell.sh.j2)."""

from fleetbr.backends.networkmanager.backend import NetworkManagerBackend

__all__ = ["NetworkManagerBackend"]
