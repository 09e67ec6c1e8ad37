"""Task files: YAML rendered per host with jinja2, validated into a frozen :class:`BridgeTask`.

A task file is a jinja2 template (sandboxed, undefined variables are errors) with ``host`` in scope,
rendered once per host and then parsed as YAML. Every error is a :class:`~fleetbr.errors.TaskError`
whose message names the file, the host and the field.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from fleetbr import validate
from fleetbr.backends import registry
from fleetbr.changes.bridge.topology import Topology
from fleetbr.changes.bridge.topology_parse import (
    TOPOLOGY_KEYS,
    check_topology,
    is_topology,
    topo_bridge,
)
from fleetbr.errors import TaskError, ValidationError
from fleetbr.facts.model import Family, Route
from fleetbr.validate import clip, label, show

State = Literal["present", "absent"]
Netfilter = Literal["off", "on", "keep"]
DockerConflict = Literal["refuse", "accept"]
# ``persist:``: "auto", "none" or the name of a registered backend (checked at load time
# against fleetbr.backends.registry, so a new backend needs no change here).
Persist = str
PERSIST_WORDS = ("auto", "none")


def persist_choices() -> tuple[str, ...]:
    """The values ``persist:`` accepts: auto, none, then every registered backend."""
    return (*PERSIST_WORDS, *registry.names())


DEADMAN_MAX = 3600
MAX_TASK_BYTES = 1 << 20  # a task file, and a task rendered for one host
MAX_TASK_VALUES = 100_000  # values in a rendered task, YAML aliases expanded
FORWARD_DELAY_MAX = 30
STP_FORWARD_DELAY_MIN = 2  # the kernel refuses a smaller forward delay while STP runs

_TOP_KEYS = frozenset(
    {
        "bridge",
        "bridges",
        "netfilter",
        "docker_conflict",
        "daemon_conflict",
        "persist",
        "deadman",
        "guests",
    }
)
_PLAIN_KEYS = frozenset(
    {
        "name",
        "state",
        "nic",
        "addresses",
        "gateway4",
        "gateway6",
        "mac",
        "stp",
        "forward_delay",
        "routes",
    }
)
_BRIDGE_KEYS = _PLAIN_KEYS | TOPOLOGY_KEYS
_DEADMAN_KEYS = frozenset({"timeout"})


@dataclass(frozen=True)
class TaskTemplate:
    """The unrendered text of a task file; ``source`` is the path as the operator gave it."""

    source: str
    text: str


@dataclass(frozen=True)
class BridgeSpec:
    """The ``bridge:`` section. ``addresses`` None means "move"; ``mac`` None means "nic"."""

    name: str
    state: State
    nic: str
    addresses: tuple[str, ...] | None
    gateway4: str | None
    gateway6: str | None
    mac: str | None
    stp: bool
    forward_delay: int
    routes: tuple[
        Route, ...
    ] = ()  # extra static routes; unicast ones go through the bridge (dev "")


@dataclass(frozen=True)
class GuestsSpec:
    """The ``guests:`` section: which libvirt domains' interfaces on ``source`` (a libvirt network
    or bridge name) move onto the task's bridge; ``move`` None means all. Names are any text:
    they are only compared with the host's facts, never put into a command."""

    move: tuple[str, ...] | None
    source: str
    link_flap: bool = False


@dataclass(frozen=True)
class BridgeTask:
    """A task rendered and validated for one host."""

    source: str
    host: str
    bridge: BridgeSpec
    netfilter: Netfilter
    docker_conflict: DockerConflict
    persist: Persist
    deadman_timeout: int
    # persist: none on a NIC a network daemon manages (the daemon may undo the runtime change
    # at its next reload or at boot): refused unless "accept"
    daemon_conflict: DockerConflict = "refuse"
    guests: GuestsSpec | None = None
    # the task's uplink topology (bonds, VLANs, several bridges...: docs/topologies.md); None
    # for a task that uses none of its keys: one NIC into one bridge, ``bridge`` says it all
    topology: Topology | None = None


def load_task(path: Path) -> TaskTemplate:
    """Read a task file; a missing, unreadable, oversized or empty file is a TaskError naming it."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_TASK_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task file: {clip(str(exc))}") from None
    if len(raw) > MAX_TASK_BYTES:
        raise TaskError(f"{path}: task file is larger than {MAX_TASK_BYTES} bytes")
    if not text.strip():
        raise TaskError(f"{path}: task file is empty (write at least bridge: {{}} to use defaults)")
    return TaskTemplate(source=str(path), text=text)


def render_task(template: TaskTemplate, host: Mapping[str, Any]) -> BridgeTask:
    """Render ``template`` for ``host`` and validate it into a :class:`BridgeTask`."""
    host_name = str(host.get("name", "?"))
    prefix = f"{template.source}: host {host_name}"
    text = _render(template, host, prefix)
    try:
        doc = copy.deepcopy(_parsed(text))
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        detail = clip(" ".join(str(exc).split()), 300)
        raise TaskError(f"{prefix}: rendered task is not valid YAML: {detail}") from None
    if doc is None or doc == {}:
        raise TaskError(
            f"{prefix}: the task is empty (write at least bridge: {{}} to use defaults)"
        )
    try:
        validate.bounded(doc, MAX_TASK_VALUES, "task")
        return _build(doc, template.source, host_name, host)
    except ValidationError as exc:
        raise TaskError(f"{prefix}: {exc}") from None


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Any:
    """The YAML of a rendered task, parsed once per distinct text: most hosts of a run render the
    same text (a copy is handed out, so no host's task shares the cached document)."""
    return yaml.safe_load(text)


@functools.lru_cache(maxsize=16)
def _compiled(text: str) -> jinja2.Template:
    """The sandboxed template for ``text``, compiled once per run (not once per host)."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(text)


def _render(template: TaskTemplate, host: Mapping[str, Any], prefix: str) -> str:
    """The jinja2 rendering of ``template`` for ``host``, at most MAX_TASK_BYTES characters."""
    parts: list[str] = []
    size = 0
    try:
        for part in _compiled(template.text).generate(host=host):
            size += len(part)
            if size > MAX_TASK_BYTES:
                raise TaskError(
                    f"{prefix}: the rendered task is larger than {MAX_TASK_BYTES} bytes"
                )
            parts.append(part)
    except jinja2.TemplateError as exc:
        raise TaskError(f"{prefix}: template error: {clip(str(exc), 300)}") from None
    return "".join(parts)


def _section(value: object, field: str, allowed: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected a mapping, got {show(value)}")
    unknown = sorted(label(k) for k in value if k not in allowed)
    if unknown:
        where = f"{field}: " if field else ""
        raise ValidationError(
            f"{where}unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    return value


def _build(doc: object, source: str, host_name: str, host: Mapping[str, Any]) -> BridgeTask:
    top = _section(doc, "task", _TOP_KEYS)
    deadman = _section(top.get("deadman"), "deadman", _DEADMAN_KEYS)
    timeout = validate.integer(deadman.get("timeout", 60), "deadman.timeout", 1, DEADMAN_MAX)
    persist = _persist(top.get("persist", "none"))
    bridge, topology = _bridges(top, host)
    guests = guests_spec(top.get("guests"))
    if guests is not None and topology is not None:
        raise ValidationError(
            "guests: not yet with a topology (bond, vlan, bridges...): move guests in a task of "
            "its own"
        )
    if guests is not None and bridge.state != "present":
        raise ValidationError(
            "guests: only with bridge.state present (an unbridge is refused while guests use "
            "the bridge; move them off first)"
        )
    return BridgeTask(
        source=source,
        host=host_name,
        bridge=bridge,
        netfilter=_netfilter(top.get("netfilter", "off")),
        docker_conflict=_docker(top.get("docker_conflict", "refuse")),
        persist=persist,
        deadman_timeout=timeout,
        daemon_conflict=_conflict(top.get("daemon_conflict", "refuse"), "daemon_conflict"),
        guests=guests,
        topology=topology,
    )


def _bridges(top: dict[str, Any], host: Mapping[str, Any]) -> tuple[BridgeSpec, Topology | None]:
    """The ``bridge:`` section, or the ``bridges:`` list (a topology): the first bridge's spec
    (what single-bridge code reads) and the topology, if the task has one."""
    if "bridges" not in top:
        raw = _section(top.get("bridge"), "bridge", _BRIDGE_KEYS)
        if not is_topology(raw):
            return _bridge(raw, host), None
        return _topology([raw], "bridge", host)
    if "bridge" in top:
        raise ValidationError("bridge, bridges: use one of them (bridges: a list of bridge: maps)")
    items = top["bridges"]
    if not isinstance(items, list) or not items:
        raise ValidationError(f"bridges: expected a list of bridge mappings, got {show(items)}")
    raws = [_section(item, f"bridges[{i}]", _BRIDGE_KEYS) for i, item in enumerate(items)]
    return _topology(raws, "bridges", host)


def _topology(
    raws: list[dict[str, Any]], field: str, host: Mapping[str, Any]
) -> tuple[BridgeSpec, Topology]:
    bridges = []
    for i, raw in enumerate(raws):
        where = field if field == "bridge" else f"{field}[{i}]"
        if raw.get("state", "present") != "present":
            raise ValidationError(f"{where}.state: only present with topology keys (bond, vlan...)")
        if raw.get("routes"):
            raise ValidationError(f"{where}.routes: not yet with topology keys (bond, vlan...)")
        base = _common(raw, where, _nic_default(host) if i == 0 else None, optional_nic=True)
        base["addresses_parser"] = _addresses
        bridges.append(topo_bridge(raw, where, base))
    topology = check_topology(tuple(bridges), field)
    first = topology.bridges[0]
    spec = BridgeSpec(
        name=first.name,
        state="present",
        nic=first.port or "",
        addresses=None,
        gateway4=first.gateway4,
        gateway6=first.gateway6,
        mac=first.mac,
        stp=first.stp,
        forward_delay=first.forward_delay,
    )
    return spec, topology


def _nic_default(host: Mapping[str, Any]) -> object:
    data = host.get("data") or {}
    return data.get("nic") if isinstance(data, Mapping) else None


def _common(
    raw: dict[str, Any], field: str, nic_default: object, *, optional_nic: bool = False
) -> dict[str, Any]:
    """The keys every bridge section has, validated (``nic`` None: neither given nor a default,
    allowed only when ``optional_nic``)."""
    if "nic" not in raw and nic_default is None and not optional_nic:
        raise ValidationError(f"{field}.nic: required (or set the host data key nic)")
    nic = raw.get("nic", nic_default)
    stp = validate.boolean(raw.get("stp", False), f"{field}.stp")
    low = STP_FORWARD_DELAY_MIN if stp else 0
    delay_field = f"{field}.forward_delay" + (" (with stp on)" if stp else "")
    mac = raw.get("mac", "nic")
    return {
        "name": validate.interface_name(raw.get("name", "br0"), f"{field}.name"),
        "nic": None if nic is None else validate.interface_name(nic, f"{field}.nic"),
        "gateway4": _gateway(raw.get("gateway4"), f"{field}.gateway4", 4),
        "gateway6": _gateway(raw.get("gateway6"), f"{field}.gateway6", 6),
        "mac": None if mac == "nic" else validate.mac_address(mac, f"{field}.mac"),
        "stp": stp,
        "forward_delay": validate.integer(
            raw.get("forward_delay", 4), delay_field, low, FORWARD_DELAY_MAX
        ),
    }


def _bridge(raw: dict[str, Any], host: Mapping[str, Any]) -> BridgeSpec:
    base = _common(raw, "bridge", _nic_default(host))
    state = validate.choice(raw.get("state", "present"), "bridge.state", ("present", "absent"))
    return BridgeSpec(
        name=base["name"],
        state="present" if state == "present" else "absent",
        nic=base["nic"],
        addresses=_addresses(raw.get("addresses", "move")),
        gateway4=base["gateway4"],
        gateway6=base["gateway6"],
        mac=base["mac"],
        stp=base["stp"],
        forward_delay=base["forward_delay"],
        routes=_routes(raw.get("routes", [])),
    )


_ROUTE_KEYS = frozenset({"to", "via", "type", "metric"})
_ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")


def _routes(value: object) -> tuple[Route, ...]:
    """``routes: [{to: CIDR|default, via: IP, metric: N} | {to: CIDR, type: blackhole}]``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError(f"bridge.routes: expected a list, got {show(value)}")
    return tuple(_route(item, f"bridge.routes[{i}]") for i, item in enumerate(value))


def _route(item: object, field: str) -> Route:
    if not isinstance(item, dict) or "to" not in item:
        raise ValidationError(f"{field}: expected a mapping with at least 'to', got {show(item)}")
    unknown = set(item) - _ROUTE_KEYS
    if unknown:
        raise ValidationError(f"{field}: unknown key(s) {', '.join(sorted(map(label, unknown)))}")
    kind = validate.choice(item.get("type", "unicast"), f"{field}.type", _ROUTE_TYPES)
    to = item["to"]
    dst = "default" if to == "default" else validate.cidr(to, f"{field}.to")
    if dst != "default":
        dst = str(ipaddress.ip_interface(dst).network)
    via = item.get("via")
    gateway = None if via is None else validate.ip_address(via, f"{field}.via")
    family: Family = 6 if ":" in (gateway or dst) else 4
    if gateway is not None and kind != "unicast":
        raise ValidationError(f"{field}: a {kind} route has no gateway (via)")
    if gateway is not None and dst != "default" and (":" in gateway) != (":" in dst):
        raise ValidationError(f"{field}: {dst} and via {gateway} are not of the same family")
    metric = item.get("metric")
    if metric is not None:
        metric = validate.integer(metric, f"{field}.metric", 0, 2**32 - 1)
    return Route(family, dst, "", gateway, metric, "static", kind)


def _addresses(value: object, field: str = "bridge.addresses") -> tuple[str, ...] | None:
    if value == "move":
        return None
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{field}: expected move or a list of CIDRs, got {show(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        addr = validate.cidr(item, f"{field}[{i}]")
        if addr not in out:
            out.append(addr)
    return tuple(out)


def _gateway(value: object, field: str, family: int) -> str | None:
    if value is None:
        return None
    addr = validate.ip_address(value, field)
    if (":" in addr) != (family == 6):
        raise ValidationError(f"{field}: {addr} is not an IPv{family} address")
    return addr


def _netfilter(value: object) -> Netfilter:
    # PyYAML reads bare off/on as booleans.
    if value is False or value == "off":
        return "off"
    if value is True or value == "on":
        return "on"
    if value == "keep":
        return "keep"
    raise ValidationError(f"netfilter: {show(value)} is not one of off, on, keep")


def _docker(value: object) -> DockerConflict:
    return _conflict(value, "docker_conflict")


def _conflict(value: object, field: str) -> DockerConflict:
    choice = validate.choice(value, field, ("refuse", "accept"))
    return "refuse" if choice == "refuse" else "accept"


_GUESTS_KEYS = frozenset({"move", "from", "link_flap"})
GUEST_NAME_MAX = 1024  # libvirt has no limit; a longer "name" is a mistake


def _guest_name(value: object, field: str) -> str:
    """A domain, network or bridge name: any text without control characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field}: expected a non-empty name, got {show(value)}")
    if len(value) > GUEST_NAME_MAX or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(f"{field}: {show(value)} is too long or has control characters")
    return value


def guests_spec(value: object) -> GuestsSpec | None:
    """``guests: {move: all | [NAME, ...], from: NETWORK_OR_BRIDGE, link_flap: BOOL}``."""
    if value is None:
        return None
    raw = _section(value, "guests", _GUESTS_KEYS)
    if "from" not in raw or "move" not in raw:
        raise ValidationError("guests: move and from are required (move: all, from: default)")
    move = raw["move"]
    names: tuple[str, ...] | None = None
    if move != "all":
        if not isinstance(move, list) or not move:
            raise ValidationError(
                f"guests.move: expected all or a list of domain names, got {show(move)}"
            )
        names = tuple(
            dict.fromkeys(_guest_name(n, f"guests.move[{i}]") for i, n in enumerate(move))
        )
    return GuestsSpec(
        move=names,
        source=_guest_name(raw["from"], "guests.from"),
        link_flap=validate.boolean(raw.get("link_flap", False), "guests.link_flap"),
    )


def _persist(value: object) -> Persist:
    if value is None:  # "persist:" with no value: the default
        return "none"
    return validate.choice(value, "persist", persist_choices())
