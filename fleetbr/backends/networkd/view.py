"""systemd-networkd's view of the host, from the facts' ``daemons`` section: ``networkctl JSON``
(``networkctl --json=short list``) or ``networkctl-list NAME TYPE OPERATIONAL SETUP`` (older
networkctl), and the ``.netdev`` files that create interfaces. Pure."""

from __future__ import annotations

import json
from typing import Any

from fleetbr.facts.model import DaemonView
from fleetbr.facts.views import ViewContext, by_precedence, dir_rank
from fleetbr.validate import split_lines

NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network")
NETWORKD_CLAIMS = frozenset({"configuring", "configured", "failed"})
WORDS = ("networkctl", "networkctl-list")


def _ini_values(text: str, section: str, key: str) -> list[str]:
    values, current = [], ""
    for raw_line in split_lines(text):
        line = raw_line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and "=" in line and not line.startswith(("#", ";")):
            name, _, value = line.partition("=")
            if name.strip() == key:
                values.append(value.strip())
    return values


def netdev_files(contents: dict[str, str]) -> dict[str, str]:
    """Interface name -> the networkd .netdev file that creates it."""
    netdevs = [p for p in contents if p.endswith(".netdev") and dir_rank(p, NETWORKD_DIRS) < 2]
    found: dict[str, str] = {}
    for path in by_precedence(netdevs, NETWORKD_DIRS):
        for name in _ini_values(contents[path], "NetDev", "Name"):
            found.setdefault(name, path)
    return found


def _json_items(rest: str, warnings: list[str]) -> list[dict[str, Any]]:
    try:
        doc = json.loads(rest)
    except ValueError:
        warnings.append("section daemons: networkctl printed no valid JSON; networkd view skipped")
        return []
    items = doc.get("Interfaces") if isinstance(doc, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def interfaces(ctx: ViewContext) -> list[dict[str, Any]]:
    """networkctl's interfaces, each as its JSON object (``Name``, ``AdministrativeState``...)."""
    items: list[dict[str, Any]] = []
    for word, rest in ctx.words(*WORDS):
        if word == "networkctl":
            items.extend(_json_items(rest, ctx.warnings))
        elif words := rest.split():  # IDX LINK TYPE OPERATIONAL SETUP, without IDX
            items.append({"Name": words[0], "AdministrativeState": words[-1]})
    return items


def _view(ctx: ViewContext, item: dict[str, Any], netdevs: dict[str, str]) -> DaemonView:
    name = str(item.get("Name", ""))
    state = str(item.get("AdministrativeState", "")).lower()
    network = item.get("NetworkFile") if isinstance(item.get("NetworkFile"), str) else ""
    dropins = item.get("NetworkFileDropins")
    paths = [str(network), *(dropins if isinstance(dropins, list) else [])]
    paths.append(netdevs.get(name, ""))
    claims = state in NETWORKD_CLAIMS or (bool(network) and state not in ("unmanaged", "linger"))
    return ctx.daemon_view("networkd", name, state, paths, claims)


def add_views(ctx: ViewContext, items: list[dict[str, Any]]) -> None:
    """One view of each interface networkctl lists."""
    netdevs = netdev_files(ctx.contents)
    for item in items:
        if item.get("Name"):
            ctx.add(str(item["Name"]), _view(ctx, item, netdevs))
