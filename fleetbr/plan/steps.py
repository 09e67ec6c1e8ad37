"""Constructors for steps and their inverses. Every value is validated here, before any template."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping

from fleetbr import validate
from fleetbr.backends import registry
from fleetbr.errors import ValidationError
from fleetbr.facts.model import Route
from fleetbr.plan.model import Step

_SYSCTL_KEY_RE = re.compile(r"^net\.bridge\.bridge-nf-call-(iptables|ip6tables|arptables)$")
_PROTO_RE = re.compile(r"^[a-z0-9_]{1,16}$")
_MODULE_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_MODE_RE = re.compile(r"^0[0-7]{3}$")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_METRICS_RE = re.compile(r"^[a-z_]+ [A-Za-z0-9_]+( [a-z_]+ [A-Za-z0-9_]+)*$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$")
ROUTE_SCOPES = ("global", "site", "link", "host")
ROUTE_PREFS = ("low", "medium", "high")
_PATH_RE = re.compile(r"^/[A-Za-z0-9_./%-]+$")


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _bridge_args(name: str, mac: str | None, stp: bool, forward_delay: int) -> dict[str, object]:
    return {
        "name": validate.interface_name(name, "bridge"),
        "mac": None if mac is None else validate.mac_address(mac, "bridge mac"),
        "stp": validate.boolean(stp, "stp"),
        "forward_delay": validate.integer(forward_delay, "forward_delay", 0, 30),
    }


def _bridge_desc(verb: str, name: str, mac: str | None, stp: bool, forward_delay: int) -> str:
    settings = f"stp {_onoff(stp)}, forward delay {forward_delay}s"
    return f"{verb} bridge {name} (mac {mac or 'kernel-chosen'}, {settings})"


def bridge_add(
    name: str, mac: str | None, stp: bool, forward_delay: int, ra_from: str | None = None
) -> Step:
    """Create a bridge (down); the inverse deletes it. ``ra_from``: the device whose addresses it
    takes; a new bridge gets that device's IPv6 ``accept_ra`` and ``autoconf`` before it comes
    up (a new link gets the kernel's defaults: a static NIC with ``accept_ra 0`` became a bridge
    that took a router advertisement's default route, and the confirm rolled it back)."""
    args = _bridge_args(name, mac, stp, forward_delay)
    args["ra_from"] = None if ra_from is None else validate.interface_name(ra_from, "ra_from")
    return Step(
        "bridge_add",
        args,
        _bridge_desc("create", name, mac, stp, forward_delay),
        inverse=Step("bridge_del", {"name": args["name"]}, f"delete bridge {name}"),
    )


def bridge_del(name: str, mac: str | None, stp: bool, forward_delay: int) -> Step:
    """Delete a bridge; the inverse recreates it with its old settings (not its ports)."""
    return Step(
        "bridge_del",
        {"name": validate.interface_name(name, "bridge")},
        f"delete bridge {name}",
        inverse=Step(
            "bridge_add",
            _bridge_args(name, mac, stp, forward_delay),
            _bridge_desc("recreate", name, mac, stp, forward_delay),
        ),
    )


def bridge_set(
    name: str, new: tuple[str | None, bool, int], old: tuple[str | None, bool, int]
) -> Step:
    """Change an existing bridge's MAC/STP/forward delay; the inverse sets the old values."""
    return Step(
        "bridge_set",
        _bridge_args(name, *new),
        _bridge_desc("change", name, *new),
        inverse=Step("bridge_set", _bridge_args(name, *old), _bridge_desc("restore", name, *old)),
    )


def _master_pair(dev: str, master: str) -> tuple[dict[str, object], str, str]:
    args: dict[str, object] = {
        "dev": validate.interface_name(dev, "nic"),
        "master": validate.interface_name(master, "bridge"),
    }
    return args, f"make {dev} a port of {master}", f"take {dev} out of {master}"


def link_master(dev: str, master: str) -> Step:
    """Enslave ``dev`` to bridge ``master``; the inverse releases it."""
    args, on, off = _master_pair(dev, master)
    return Step("link_master", args, on, inverse=Step("link_nomaster", args, off))


def link_nomaster(dev: str, master: str) -> Step:
    """Release ``dev`` from bridge ``master``; the inverse enslaves it again."""
    args, on, off = _master_pair(dev, master)
    return Step("link_nomaster", args, off, inverse=Step("link_master", args, on))


def link_up(dev: str, *, undo: bool) -> Step:
    """Set ``dev`` up; the inverse sets it down only when ``undo`` (it was down before)."""
    args = {"dev": validate.interface_name(dev, "dev")}
    inverse = Step("link_down", args, f"set {dev} down") if undo else None
    return Step("link_up", args, f"set {dev} up", inverse=inverse)


def link_down(dev: str) -> Step:
    """Set ``dev`` down; the inverse sets it up."""
    args = {"dev": validate.interface_name(dev, "dev")}
    return Step(
        "link_down", args, f"set {dev} down", inverse=Step("link_up", args, f"set {dev} up")
    )


def address_label(label: str | None, dev: str) -> str | None:
    """``label`` checked for ``dev``: iproute2 wants it to start with the device name."""
    if label is None or label == dev:
        return None
    if len(label) > validate.IFNAME_MAX or not label.startswith(dev) or not _LABEL_RE.match(label):
        raise ValidationError(
            f"address label: {label!r} is not a label of {dev} (the device name, then at most "
            f"{validate.IFNAME_MAX} characters in all)"
        )
    return label


def _addr_args(
    dev: str,
    cidr: str,
    broadcast: str | None = None,
    label: str | None = None,
    nodad: bool = True,
    *,
    noprefixroute: bool = False,
) -> dict[str, object]:
    value = validate.cidr(cidr, "address")
    family = 6 if ":" in value else 4
    return {
        "dev": validate.interface_name(dev, "dev"),
        "cidr": value,
        "family": family,
        "broadcast": validate.ip_address(broadcast, "broadcast") if broadcast else None,
        "label": address_label(label, dev) if family == 4 else None,
        # IPv6: a moved address is usable at once (nodad); one put back gets the flag it had
        "nodad": bool(nodad) if family == 6 else None,
        # A daemon's address carries no kernel prefix route (the daemon adds its own, with its
        # metric): one put back keeps the flag, or the kernel adds a second route (metric 256
        # for IPv6), and an IPv6 ``replace`` of the daemon's own address would clear it.
        "noprefixroute": bool(noprefixroute),
    }


def _labelled(args: dict[str, object]) -> str:
    return f" (label {args['label']})" if args["label"] else ""


def addr_add(
    dev: str, cidr: str, note: str = "", broadcast: str | None = None, label: str | None = None
) -> Step:
    """Add (replace) an address on ``dev`` (with its IPv4 broadcast and label); the inverse
    deletes it."""
    args = _addr_args(dev, cidr, broadcast, label)
    return Step(
        "addr_add",
        args,
        f"add {args['cidr']}{_labelled(args)} to {dev}{note}",
        inverse=Step("addr_del", args, f"remove {args['cidr']} from {dev}"),
    )


def addr_del(
    dev: str,
    cidr: str,
    broadcast: str | None = None,
    label: str | None = None,
    nodad: bool = True,
    *,
    noprefixroute: bool = False,
) -> Step:
    """Delete an address from ``dev``; the inverse adds it back, with its broadcast, label,
    whether it had a kernel prefix route and (IPv6) duplicate address detection."""
    args = _addr_args(dev, cidr, broadcast, label, nodad, noprefixroute=noprefixroute)
    return Step(
        "addr_del",
        args,
        f"remove {args['cidr']} from {dev}",
        inverse=Step("addr_add", args, f"put {args['cidr']}{_labelled(args)} back on {dev}"),
    )


ROUTE_TYPES = ("unicast", "blackhole", "unreachable", "prohibit")


def _pattern(value: str, pattern: re.Pattern[str], field: str) -> str:
    if not pattern.match(value):
        raise ValidationError(f"{field}: {value!r} is not something fleetbr will pass to ip")
    return value


def _route_attrs(route: Route) -> dict[str, object]:
    """The attributes a moved route keeps (validated); None/"" where the kernel's default."""
    if route.unsupported:
        raise ValidationError(
            f"route {describe_route(route)} has what fleetbr cannot recreate "
            f"({', '.join(route.unsupported)}); move it by hand or remove it first"
        )
    return {
        "table": None if route.table == "main" else _pattern(route.table, _TABLE_RE, "table"),
        "src": None if route.src is None else validate.ip_address(route.src, "route src"),
        "scope": None
        if route.scope is None
        else validate.choice(route.scope, "scope", ROUTE_SCOPES),
        "pref": None if route.pref is None else validate.choice(route.pref, "pref", ROUTE_PREFS),
        "metrics": _pattern(route.metrics, _METRICS_RE, "route metrics") if route.metrics else None,
    }


def route_args(route: Route) -> dict[str, object]:
    """Validated step arguments for a route of any table, with its attributes."""
    dst = route.dst if route.dst == "default" else validate.cidr(route.dst, "route destination")
    if route.family not in (4, 6):
        raise ValidationError(f"route family: {route.family!r} is not 4 or 6")
    if route.protocol and not _PROTO_RE.match(route.protocol):
        raise ValidationError(f"route protocol: {route.protocol!r} is not a protocol name")
    kind = validate.choice(route.type, "route type", ROUTE_TYPES)
    typed = kind != "unicast"
    return {
        "family": route.family,
        "type": kind,
        "dst": dst,
        "dev": None if typed and not route.dev else validate.interface_name(route.dev, "route dev"),
        "gateway": None if route.gateway is None else validate.ip_address(route.gateway),
        "metric": None
        if route.metric is None
        else validate.integer(route.metric, "route metric", 0, 2**32 - 1),
        "protocol": route.protocol or None,
        "onlink": route.onlink,
        **_route_attrs(route),
    }


def describe_route(route: Route) -> str:
    """``default via 198.51.100.1 dev br0 table 100 src 198.51.100.10 metric 100`` style text."""
    text = route.dst if route.type == "unicast" else f"{route.type} {route.dst}"
    if route.gateway:
        text += f" via {route.gateway}"
    if route.dev:
        text += f" dev {route.dev}"
    if route.table != "main":
        text += f" table {route.table}"
    if route.src:
        text += f" src {route.src}"
    if route.metric is not None:
        text += f" metric {route.metric}"
    if route.onlink:
        text += " onlink"
    return text


def route_add(route: Route, *, onlink: bool = False) -> Step:
    """Add (replace) a route; the inverse deletes it.

    ``onlink`` makes the kernel accept a gateway outside the device's subnets (a task that puts a
    wrong address on the bridge then cuts the host off, and the dead-man timer rolls it back).
    """
    args = route_args(route) | {"onlink": onlink or route.onlink}
    added = onlink and not route.onlink
    text = describe_route(route) + (" onlink (gateway outside the new subnets)" if added else "")
    return Step(
        "route_add",
        args,
        f"add route {text}",
        inverse=Step("route_del", args, f"remove route {text}"),
    )


def route_del(route: Route) -> Step:
    """Delete a route; the inverse adds it back."""
    args = route_args(route)
    text = describe_route(route)
    return Step(
        "route_del",
        args,
        f"remove route {text}",
        inverse=Step("route_add", args, f"put route {text} back"),
    )


def sysctl_set(key: str, value: int, old: int) -> Step:
    """Write a bridge-nf sysctl at runtime; the inverse writes the old value."""
    if not _SYSCTL_KEY_RE.match(key):
        raise ValidationError(f"sysctl key: {key!r} is not a bridge-nf-call key")
    new_v = validate.integer(value, key, 0, 1)
    old_v = validate.integer(old, key, 0, 1)
    return Step(
        "sysctl_set",
        {"key": key, "value": new_v},
        f"set {key} = {new_v} (was {old_v})",
        inverse=Step("sysctl_set", {"key": key, "value": old_v}, f"set {key} back to {old_v}"),
    )


def _path(path: str) -> str:
    if not _PATH_RE.match(path) or "/../" in path or path.endswith("/.."):
        raise ValidationError(f"path: {path!r} is not an absolute plain path")
    return path


def sysctl_load(path: str) -> Step:
    """Apply a sysctl.d file with ``sysctl -p`` (no inverse: the sysctl_set inverses cover it)."""
    return Step("sysctl_load", {"path": _path(path)}, f"load {path} with sysctl -p")


def modprobe(module: str, backup_dir: str | None) -> Step:
    """Load a kernel module; the inverse unloads it only if this step loaded it (it leaves a
    mark in the backup dir) and nothing uses it by then."""
    if not _MODULE_RE.match(module):
        raise ValidationError(f"module: {module!r} is not a module name")
    args = {"module": module, "backup_dir": None if backup_dir is None else _path(backup_dir)}
    return Step(
        "modprobe",
        args,
        f"load kernel module {module}",
        inverse=Step(
            "module_unload",
            args,
            f"unload kernel module {module} if fleetbr loaded it and it is unused",
        ),
    )


def file_write(
    path: str,
    content: str,
    *,
    existed: bool,
    backup_dir: str | None,
    mode: str = "0644",
    force_mode: bool = False,
) -> Step:
    """Write a managed file atomically; the inverse restores the backup or removes the file.

    A file that exists keeps its owner, group, mode, ACL and SELinux label; ``mode`` is a new
    file's (``force_mode``: every file's, for a daemon that demands it). A symlink is written
    through (templates/steps.sh.j2)."""
    if not _MODE_RE.match(mode):
        raise ValidationError(f"{path}: file mode {mode!r} is not an octal mode like 0644")
    restore_args = {
        "path": _path(path),
        "existed": existed,
        "backup_dir": None if backup_dir is None else _path(backup_dir),
        # what the rollback finds unless someone else wrote the file meanwhile (then it keeps it)
        "expect": hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest(),
    }
    if not content.endswith("\n"):
        raise ValidationError(f"{path}: managed file content must end with a newline")
    undo = "restore the previous" if existed else "remove the new"
    return Step(
        "file_write",
        {"path": restore_args["path"], "mode": mode, "force": force_mode, **_content_args(content)},
        f"write {path}",
        inverse=Step("file_restore", restore_args, f"{undo} {path}"),
    )


def _content_args(content: str) -> dict[str, str]:
    """``content`` for the file_write macro: its lines, or (bytes that are not UTF-8, kept as
    surrogates from the facts) its exact bytes in base64, with a readable ``content`` beside."""
    try:
        content.encode()
    except UnicodeEncodeError:
        data = content.encode("utf-8", "surrogateescape")
        readable = data.decode("utf-8", "replace")
        return {"content": readable, "content_b64": base64.b64encode(data).decode()}
    return {"content": content}


def file_remove(path: str, backup_dir: str | None) -> Step:
    """Remove a configuration file; the inverse restores it from the stage's backup."""
    args = {
        "path": _path(path),
        "existed": True,
        "backup_dir": _backup(backup_dir),
        "expect": "absent",
    }
    return Step(
        "file_remove",
        {"path": args["path"]},
        f"remove {path}",
        inverse=Step("file_restore", args, f"restore {path}"),
    )


def file_guard(path: str, backup_dir: str | None) -> Step:
    """Nothing now; a file a backend's own tool rewrites later in the apply is restored from
    the stage's backup by the inverse."""
    args = {"path": _path(path), "existed": True, "backup_dir": _backup(backup_dir)}
    return Step(
        "file_guard",
        {"path": args["path"]},
        f"keep a backup of {path}",
        inverse=Step("file_restore", args, f"restore {path}"),
    )


def _backup(backup_dir: str | None) -> str | None:
    return None if backup_dir is None else _path(backup_dir)


def _lease_word(word: str) -> str:
    dev, _, address = word.partition("=")
    ip = validate.cidr(f"{address}/{32 if '.' in address else 128}", "backend lease")
    return f"{validate.interface_name(dev, 'backend lease')}={ip.split('/')[0]}"


def _backend_args(args: Mapping[str, str | None]) -> dict[str, str | None]:
    """The arguments of a backend step: backend, bridge, nic, direction, each registered
    backend's own (``Backend.step_args``; None when another backend's), and a topology's
    interface lists (keys ending in ``links``) and profile lists (``uuids``), only when given."""
    out: dict[str, str | None] = {"direction": "bridge"}
    out |= dict.fromkeys(registry.step_arg_keys())
    for key, value in args.items():
        if key in ("bridge", "nic"):
            out[key] = validate.interface_name(value, f"backend {key}")
        elif key == "direction":
            out[key] = validate.choice(value, "backend direction", ("bridge", "unbridge"))
        elif (
            key not in ("backend", "leases")
            and key not in out
            and not key.endswith(("links", "uuids"))
        ):
            raise ValidationError(f"backend: unknown argument {key}")
        elif value is None and key != "backend":
            continue
        elif key == "leases":  # DEV=ADDRESS, space-separated: DHCP leases to wait for
            out[key] = " ".join(_lease_word(w) for w in str(value).split())
        elif key.endswith("uuid"):
            out[key] = validate.uuid(value, f"backend {key}")
        elif key.endswith("uuids"):  # UUIDs, space-separated (a topology's profiles)
            words = str(value).split()
            out[key] = " ".join(validate.uuid(u, f"backend {key}") for u in words)
        elif key.endswith("links"):  # interface names, space-separated (a topology's)
            names = str(value).split()
            out[key] = " ".join(validate.interface_name(n, f"backend {key}") for n in names)
        elif value not in registry.words():
            raise ValidationError(f"backend {key}: {value!r} is not known")
        else:
            out[key] = value
    return out


def backend_apply(args: Mapping[str, str | None]) -> Step:
    """Let the backend's own tool take over the bridge from the written files."""
    checked = _backend_args(args)
    return Step("backend_apply", checked, f"apply the {checked['backend']} configuration")


def backend_hold(args: Mapping[str, str | None]) -> Step:
    """The daemon leaves ``hold_links`` alone until its apply (they are about to be enslaved,
    which bounces them, and the daemon would configure them again from their old files); the
    inverse only drops the hold: the rollback's reapply reloads the daemon."""
    checked = _backend_args(args)
    name, links = checked["backend"], checked.get("hold_links") or ""
    return Step(
        "backend_hold",
        checked,
        f"{name} leaves {', '.join(links.split())} alone until the apply",
        inverse=Step("backend_unhold", checked, f"{name} may configure {links} again"),
    )


def backend_marks(args: Mapping[str, str | None]) -> tuple[Step, Step]:
    """Two steps that do nothing forward. The rollback runs their inverses: the first one's
    (``backend_reapply``) last, so the daemon takes the NIC back with its restored files once
    the runtime state is back; the second one's (``backend_release``) right after the files
    are restored, so the daemon forgets the bridge before the runtime inverse removes it."""
    checked = _backend_args(args)
    name = checked["backend"]
    return (
        Step(
            "backend_mark",
            checked,
            f"(rollback: {name} takes the NIC back)",
            inverse=Step("backend_reapply", checked, f"re-apply the previous {name} configuration"),
        ),
        Step(
            "backend_mark",
            checked,
            f"(rollback: {name} forgets the bridge)",
            inverse=Step("backend_release", checked, f"reload the restored {name} files"),
        ),
    )
