"""Parse the facts script's ``daemons`` section: which backend manages which interface. Pure.

Lines (each starts with a fixed word; see docs/facts.md):
``running networkd|networkmanager yes|no``, ``networkctl JSON`` (``networkctl --json=short
list``) or ``networkctl-list NAME TYPE OPERATIONAL SETUP``, ``nm-device`` and ``nm-connection``
(``nmcli -t`` fields), ``ifstate NAME=LOGICAL`` (``ifquery --state``), ``file SHA256 PATH`` and
``content BASE64 PATH``. File contents are the host's own configuration: anything odd in them
(bad YAML, bad base64) becomes a warning, never an error, and YAML is bounded in size.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from fleetbr.errors import FactsError, ValidationError
from fleetbr.facts.model import (
    CONTENT_MAX_BYTES,
    ConfigFile,
    Daemons,
    DaemonView,
    InterfaceManager,
    Link,
)
from fleetbr.validate import bounded, split_lines

CONTENT_LIMIT = CONTENT_MAX_BYTES  # the script sends at most one byte more of a file
YAML_VALUES = 10_000
NETPLAN_GENERATED = (
    "/run/systemd/network/10-netplan-",
    "/run/NetworkManager/system-connections/netplan-",
)
# Highest priority first: netplan lets /run shadow /etc; systemd lets /etc shadow /run.
NETPLAN_DIRS = ("/run/netplan", "/etc/netplan", "/lib/netplan", "/usr/lib/netplan")
NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network")
INTERFACES = "/etc/network/interfaces"
# Which claimant is named the manager when several configure one interface (they then fight).
PRECEDENCE = ("networkmanager", "netplan", "networkd", "ifupdown")
NM_DNS_KEYS = ("ipv4.dns", "ipv4.dns-search", "ipv6.dns", "ipv6.dns-search")
# the other settings of an active profile persist carries to the bridge (backends.networkmanager)
NM_CARRIED_KEYS = ("802-3-ethernet.mtu", "ipv4.routing-rules", "ipv6.routing-rules")
NETWORKD_CLAIMS = frozenset({"configuring", "configured", "failed"})
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RUN_PARTS_RE = re.compile(r"^[A-Za-z0-9_-]+$")
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


@dataclass
class _Raw:
    """The section's lines sorted by kind."""

    running: list[str] = field(default_factory=list)
    networkctl: list[dict[str, Any]] = field(default_factory=list)
    nm_devices: list[list[str]] = field(default_factory=list)
    nm_files: dict[str, str] = field(default_factory=dict)  # connection uuid -> file
    ifstate: list[str] = field(default_factory=list)
    nm_dns: dict[str, dict[str, str]] = field(default_factory=dict)  # uuid -> setting -> value
    files: dict[str, str | None] = field(default_factory=dict)
    contents: dict[str, str] = field(default_factory=dict)
    oversized: set[str] = field(default_factory=set)


def split_terse(line: str) -> list[str]:
    """Fields of an ``nmcli -t`` line: ``:`` separates, ``\\`` escapes ``:`` and itself."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def _networkctl(raw: _Raw, rest: str, warnings: list[str]) -> None:
    try:
        doc = json.loads(rest)
    except ValueError:
        warnings.append("section daemons: networkctl printed no valid JSON; networkd view skipped")
        return
    items = doc.get("Interfaces") if isinstance(doc, dict) else None
    if isinstance(items, list):
        raw.networkctl.extend(item for item in items if isinstance(item, dict))


def _content(raw: _Raw, rest: str, warnings: list[str]) -> None:
    encoded, _, path = rest.partition(" ")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        warnings.append(f"section daemons: the content of {path} is not base64; skipped")
        return
    if len(data) > CONTENT_LIMIT:
        raw.oversized.add(path)
        warnings.append(
            f"section daemons: {path} is longer than {CONTENT_LIMIT // 1024} KiB; only its start "
            "was read (fleetbr will not rewrite it)"
        )
    # bytes that are not UTF-8 become surrogates, and come back exactly when encoded the same way
    raw.contents[path] = data.decode("utf-8", errors="surrogateescape")


def _file(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    digest, _, path = rest.partition(" ")
    if not path or not (_SHA256_RE.match(digest) or digest == "unreadable"):
        raise FactsError(f"section daemons: unexpected file line {rest!r}")
    raw.files[path] = None if digest == "unreadable" else digest


def _running(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    name, _, value = rest.partition(" ")
    if value == "yes":
        raw.running.append(name)


def _networkctl_list(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    words = rest.split()
    if words:  # IDX LINK TYPE OPERATIONAL SETUP, without IDX
        raw.networkctl.append({"Name": words[0], "AdministrativeState": words[-1]})


def _nm_device(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    raw.nm_devices.append([*split_terse(rest), "", "", "", "", ""][:5])


def _nm_connection(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    uuid, _, filename = [*split_terse(rest), "", "", ""][:3]
    if uuid and filename:
        raw.nm_files[uuid] = filename


def _nm_dns(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    uuid, _, setting = rest.partition(" ")
    key, _, value = setting.partition(":")
    if key in NM_DNS_KEYS + NM_CARRIED_KEYS and value:
        raw.nm_dns.setdefault(uuid, {})[key] = value


def _ifstate(raw: _Raw, rest: str, _warnings: list[str]) -> None:
    raw.ifstate.append(rest.partition("=")[0])


_HANDLERS = {
    "running": _running,
    "networkctl": _networkctl,
    "networkctl-list": _networkctl_list,
    "nm-device": _nm_device,
    "nm-connection": _nm_connection,
    "ifstate": _ifstate,
    "nm-dns": _nm_dns,
    "file": _file,
    "content": _content,
}


def _collect(lines: Sequence[str], warnings: list[str]) -> _Raw:
    raw = _Raw()
    for line in lines:
        word, _, rest = line.partition(" ")
        handler = _HANDLERS.get(word)
        if handler is None:
            raise FactsError(f"section daemons: unexpected line {line!r}")
        handler(raw, rest, warnings)
    return raw


def _rank(path: str, dirs: Sequence[str]) -> int:
    parent = posixpath.dirname(path)
    return dirs.index(parent) if parent in dirs else len(dirs)


def _by_precedence(paths: Iterable[str], dirs: Sequence[str]) -> list[str]:
    """Config files as the daemon reads them: sorted by name; a name in an earlier dir of
    ``dirs`` hides the same name in a later one."""
    chosen: dict[str, str] = {}
    for path in sorted(paths, key=lambda p: _rank(p, dirs)):
        chosen.setdefault(posixpath.basename(path), path)
    return [chosen[name] for name in sorted(chosen)]


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
    netdevs = [p for p in contents if p.endswith(".netdev") and _rank(p, NETWORKD_DIRS) < 2]
    found: dict[str, str] = {}
    for path in _by_precedence(netdevs, NETWORKD_DIRS):
        for name in _ini_values(contents[path], "NetDev", "Name"):
            found.setdefault(name, path)
    return found


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
    for path in _by_precedence(yamls, NETPLAN_DIRS):
        try:
            doc = yaml.safe_load(contents[path])
            bounded(doc, YAML_VALUES, path)
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


def _logical_lines(text: str) -> list[list[str]]:
    lines, pending = [], ""
    for line in split_lines(text):
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split()
        pending = ""
        if words:
            lines.append(words)
    return lines


def _sourced(words: list[str], contents: dict[str, str]) -> list[str]:
    target = posixpath.join("/etc/network", words[1])
    if words[0] == "source":
        return sorted(p for p in contents if fnmatch.fnmatchcase(p, target))
    return sorted(
        p
        for p in contents
        if posixpath.dirname(p) == target.rstrip("/") and _RUN_PARTS_RE.match(posixpath.basename(p))
    )


def ifupdown_stanzas(contents: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """File read by ifupdown -> the interfaces it has ``iface`` stanzas for (``source`` and
    ``source-directory`` followed among the files the script sent)."""
    result: dict[str, tuple[str, ...]] = {}
    queue = [INTERFACES] if INTERFACES in contents else []
    while queue:
        path = queue.pop(0)
        if path in result:
            continue
        names: list[str] = []
        for words in _logical_lines(contents[path]):
            if words[0] == "iface" and len(words) > 1 and words[1] not in names:
                names.append(words[1])
            elif words[0] in ("source", "source-directory") and len(words) > 1:
                queue.extend(_sourced(words, contents))
        result[path] = tuple(names)
    return result


@dataclass
class _Context:
    raw: _Raw
    netplan: dict[str, tuple[str, ...]]
    ifupdown: dict[str, tuple[str, ...]]
    netdevs: dict[str, str]

    def config(self, paths: Iterable[str]) -> tuple[ConfigFile, ...]:
        unique = dict.fromkeys(p for p in paths if p)
        return tuple(ConfigFile(p, self.raw.files.get(p)) for p in unique)

    def netplan_files(self, name: str) -> list[str]:
        return [path for path, names in self.netplan.items() if name in names]


def _networkd_view(ctx: _Context, item: dict[str, Any]) -> DaemonView:
    name = str(item.get("Name", ""))
    state = str(item.get("AdministrativeState", "")).lower()
    network = item.get("NetworkFile") if isinstance(item.get("NetworkFile"), str) else ""
    dropins = item.get("NetworkFileDropins")
    paths = [str(network), *(dropins if isinstance(dropins, list) else [])]
    paths.append(ctx.netdevs.get(name, ""))
    claims = state in NETWORKD_CLAIMS or (bool(network) and state not in ("unmanaged", "linger"))
    if str(network).startswith(NETPLAN_GENERATED):
        return DaemonView(
            "netplan", state, ctx.config([*ctx.netplan_files(name), *paths]), claims=claims
        )
    return DaemonView("networkd", state, ctx.config(paths), claims=claims)


def _nm_view(ctx: _Context, fields: list[str]) -> DaemonView:
    state, uuid = fields[2], fields[4]
    filename = ctx.raw.nm_files.get(uuid, "") if uuid else ""
    claims = state != "unmanaged" and "externally" not in state
    if filename.startswith(NETPLAN_GENERATED):
        files = ctx.config([*ctx.netplan_files(fields[0]), filename])
        return DaemonView("netplan", state, files, claims=claims)
    return DaemonView("networkmanager", state, ctx.config([filename]), claims=claims)


def _views(ctx: _Context) -> dict[str, list[DaemonView]]:
    views: dict[str, list[DaemonView]] = {}
    for item in ctx.raw.networkctl:
        if item.get("Name"):
            views.setdefault(str(item["Name"]), []).append(_networkd_view(ctx, item))
    for fields in ctx.raw.nm_devices:
        if fields[0]:
            views.setdefault(fields[0], []).append(_nm_view(ctx, fields))
    stanzas: dict[str, list[str]] = {}
    for path, names in ctx.ifupdown.items():
        for name in names:
            stanzas.setdefault(name, []).append(path)
    for name in dict.fromkeys([*ctx.raw.ifstate, *stanzas]):
        up = name in ctx.raw.ifstate
        files = ctx.config(stanzas.get(name, []))
        views.setdefault(name, []).append(DaemonView("ifupdown", "up" if up else "down", files, up))
    for name in sorted({n for names in ctx.netplan.values() for n in names}):
        if not any(v.backend == "netplan" for v in views.get(name, [])):
            files = ctx.config(ctx.netplan_files(name))
            views.setdefault(name, []).append(DaemonView("netplan", "defined", files))
    return views


def _manager(name: str, views: list[DaemonView]) -> InterfaceManager:
    ordered = sorted(views, key=lambda v: PRECEDENCE.index(v.backend))
    claimants = [v for v in ordered if v.claims]
    if not claimants:  # the word of the daemon that sees it (connected (externally)...)
        state = ordered[0].state if ordered else "unmanaged"
        return InterfaceManager(name, None, state, (), tuple(views))
    top = claimants[0]
    return InterfaceManager(name, top.backend, top.state, top.files, tuple(views))


def parse_daemons(lines: Sequence[str], links: Sequence[Link], warnings: list[str]) -> Daemons:
    """The ``daemons`` section as :class:`Daemons` (empty when the section is absent)."""
    raw = _collect(lines, warnings)
    ctx = _Context(
        raw=raw,
        netplan=netplan_interfaces(raw.contents, links, warnings),
        ifupdown=ifupdown_stanzas(raw.contents),
        netdevs=netdev_files(raw.contents),
    )
    interfaces = {name: _manager(name, views) for name, views in _views(ctx).items()}
    return Daemons(
        running=tuple(raw.running),
        interfaces=interfaces,
        files=dict(raw.files),
        netplan=ctx.netplan,
        ifupdown=ctx.ifupdown,
        contents=dict(raw.contents),
        oversized=tuple(sorted(raw.oversized)),
        nm_active={f[0]: (f[4], f[3]) for f in raw.nm_devices if f[0] and f[4]},
        nm_dns=raw.nm_dns,
    )
