"""The ifupdown2 backend (Debian's ifupdown2, Proxmox VE's network stack):
:class:`Ifupdown2Backend` (backend.py), its view (view.py) and its shell (templates/)."""

from fleetbr.backends.ifupdown2.backend import Ifupdown2Backend

__all__ = ["Ifupdown2Backend"]
