"""netplan's view of the host, from the facts' ``daemons`` section: the interfaces its YAML files
define, and the networkd and NetworkManager files it generated (a view of an interface such a
file configures is netplan's, with the renderer's state). Pure. The YAML is the host's own: bad
YAML is a warning, never an error, and its size is bounded."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Sequence

import yaml

from fleetbr.errors import ValidationError
from fleetbr.facts.model import DaemonView, Link
from fleetbr.facts.views import ViewContext, by_precedence
from fleetbr.validate import bounded_yaml

YAML_VALUES = 10_000
NETPLAN_GENERATED = (
    "/run/systemd/network/10-netplan-",
    "/run/NetworkManager/system-connections/netplan-",
)
# Highest priority first: netplan lets /run shadow /etc
NETPLAN_DIRS = ("/run/netplan", "/etc/netplan", "/lib/netplan", "/usr/lib/netplan")
NETPLAN_TYPES = (
    "ethernets",
    "bridges",
    "bonds",
    "vlans",
    "wifis",
    "tunnels",
    "vrfs",
    "modems",
    "dummy-devices",
    "virtual-ethernets",
    "nm-devices",
)


def _netplan_names(ident: str, definition: object, links: Sequence[Link]) -> set[str]:
    if not isinstance(definition, dict):
        return {ident}
    if isinstance(definition.get("set-name"), str):
        return {definition["set-name"]}
    match = definition.get("match")
    if not isinstance(match, dict):
        return {ident}
    names = {link.name for link in links if link.kind != "loopback"}
    if isinstance(match.get("name"), str):
        names = {n for n in names if fnmatch.fnmatchcase(n, match["name"])}
    if isinstance(match.get("macaddress"), str):
        mac = match["macaddress"].lower()
        names = {link.name for link in links if link.name in names and link.mac == mac}
    return names


def _yaml_problem(exc: Exception) -> str:
    """What is wrong and where, never the snippet of the file PyYAML quotes (it may be a secret)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return f"{exc.problem or 'not YAML'} (line {exc.problem_mark.line + 1})"[:100]
    return str(exc)[:100]  # fleetbr's own ValidationError: no content


def netplan_interfaces(
    contents: dict[str, str], links: Sequence[Link], warnings: list[str]
) -> dict[str, tuple[str, ...]]:
    """Netplan YAML file -> the interfaces it defines (set-name, match, or the id itself)."""
    yamls = [p for p in contents if p.endswith(".yaml") and posixpath.dirname(p) in NETPLAN_DIRS]
    result: dict[str, tuple[str, ...]] = {}
    for path in by_precedence(yamls, NETPLAN_DIRS):
        try:
            doc = bounded_yaml(contents[path], YAML_VALUES, path)
        except (yaml.YAMLError, ValidationError) as exc:
            warnings.append(f"section daemons: {path} is not usable YAML: {_yaml_problem(exc)}")
            continue
        network = doc.get("network") if isinstance(doc, dict) else None
        names: set[str] = set()
        for kind in NETPLAN_TYPES:
            devices = network.get(kind) if isinstance(network, dict) else None
            for ident, definition in devices.items() if isinstance(devices, dict) else ():
                names |= _netplan_names(str(ident), definition, links)
        result[path] = tuple(sorted(names))
    return result


def files_of(defined: dict[str, tuple[str, ...]], name: str) -> list[str]:
    """The YAML files that define interface ``name``."""
    return [path for path, names in defined.items() if name in names]


def add_defined(ctx: ViewContext, defined: dict[str, tuple[str, ...]]) -> None:
    """A ``defined`` view of each interface in a YAML file whose renderer said nothing of it."""
    for name in sorted({n for names in defined.values() for n in names}):
        if not any(v.backend == "netplan" for v in ctx.views.get(name, [])):
            ctx.add(name, DaemonView("netplan", "defined", ctx.config(files_of(defined, name))))
