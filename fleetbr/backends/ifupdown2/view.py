"""ifupdown2's view of the host, from the facts' ``daemons`` section: ``ifsaved NAME`` for each
interface in ifupdown2's saved state (``ifquery --print-savedstate -a``: the interfaces it
brought up and has not brought down since) and the ``iface`` stanzas of /etc/network/interfaces
and the files it sources (the format is ifupdown's: fleetbr.backends.ifupdown.view). Pure."""

from __future__ import annotations

from fleetbr.facts.model import DaemonView
from fleetbr.facts.views import ViewContext

WORD = "ifsaved"


def add_views(ctx: ViewContext, backend: str, stanzas_of: dict[str, tuple[str, ...]]) -> None:
    """One view of each interface that is up in the saved state or has a stanza (``up`` claims
    it; a stanza alone does not)."""
    up = [rest.strip() for _, rest in ctx.words(WORD) if rest.strip()]
    stanzas: dict[str, list[str]] = {}
    for path, names in stanzas_of.items():
        for name in names:
            stanzas.setdefault(name, []).append(path)
    for name in dict.fromkeys([*up, *stanzas]):
        files = ctx.config(stanzas.get(name, []))
        ctx.add(name, DaemonView(backend, "up" if name in up else "down", files, name in up))
