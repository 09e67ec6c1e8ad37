"""Load a Nornir SimpleInventory (hosts.yaml, groups.yaml, defaults.yaml) and select hosts.

Inheritance (host -> groups -> defaults) is resolved by nornir itself; this module adds up-front
checks with clear one-line errors, fleetbr's own SSH options (``connection_options.fleetbr.extras``)
and Ansible-style ``-l`` selection.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fleetbr import validate
from fleetbr.errors import InventoryError, UsageError, ValidationError
from fleetbr.keyfiles import key_file_problem, unlock_keys, unopenable
from fleetbr.secrets import MASK, Secret, parse_secret, resolve
from fleetbr.selection import no_match, require_some, select_names
from fleetbr.validate import clip, label, show

# nornir and ruamel.yaml are imported where an inventory is loaded, not with this module: the CLI
# imports it for every command, and the two cost about 0.09 s of CPU per start (docs/testing.md).
if TYPE_CHECKING:
    from nornir.core.inventory import ConnectionOptions, Defaults, Host, Inventory

HOSTS_FILE, GROUPS_FILE, DEFAULTS_FILE = "hosts.yaml", "groups.yaml", "defaults.yaml"
MAX_FILE_BYTES = 64 << 20  # per inventory file
MAX_FILE_VALUES = 1_000_000  # per inventory file, YAML aliases expanded (20 000 hosts x 50)
_ELEMENT_KEYS = {
    "hostname", "port", "username", "password", "platform", "groups", "data", "connection_options"
}  # fmt: skip
_EXTRAS_KEYS = {
    "client_keys", "known_hosts", "jump_host", "sudo", "connect_timeout", "keepalive_interval",
    "keepalive_count_max", "command_timeout", "passphrase", "agent_forwarding",
}  # fmt: skip


@dataclass(frozen=True)
class SSHOptions:
    """How fleetbr connects to one host (from ``connection_options.fleetbr.extras`` and the CLI)."""

    client_keys: tuple[str, ...] = ()  # empty: asyncssh defaults (~/.ssh/id_*, ssh-agent)
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts. Never disables checking.
    jump_host: str | None = None  # [user@]host[:port], checked against the same known_hosts
    sudo: bool = False  # run remote scripts through ``sudo -n`` (non-root users)
    # Hosts are untrusted: ForwardAgent in ~/.ssh/config never applies, only this option.
    agent_forwarding: bool = False
    connect_timeout: float = 10.0
    keepalive_interval: float = 2.0
    keepalive_count_max: int = 3
    command_timeout: float = 120.0
    passphrase: Secret | None = field(default=None, repr=False)  # for encrypted client_keys


@dataclass(frozen=True)
class HostSpec:
    """One resolved inventory host."""

    name: str
    hostname: str
    port: int
    username: str | None
    password: Secret | None = field(repr=False)
    groups: tuple[str, ...]
    data: Mapping[str, Any]
    ssh: SSHOptions

    def context(self) -> dict[str, Any]:
        """The ``host`` variable seen by task templates."""
        return {
            "name": self.name,
            "hostname": self.hostname,
            "port": self.port,
            "groups": list(self.groups),
            "data": dict(self.data),
        }

    def public_view(self) -> dict[str, Any]:
        """Connection settings for display, secrets masked."""
        ssh = self.ssh
        return {
            "hostname": self.hostname,
            "port": self.port,
            "username": self.username,
            "password": MASK if self.password else None,
            "groups": list(self.groups),
            "data": dict(self.data),
            "client_keys": list(ssh.client_keys),
            "known_hosts": ssh.known_hosts or "~/.ssh/known_hosts",
            "jump_host": ssh.jump_host,
            "sudo": ssh.sudo,
            "agent_forwarding": ssh.agent_forwarding,
            "connect_timeout": ssh.connect_timeout,
            "keepalive": f"{ssh.keepalive_interval:g}s x {ssh.keepalive_count_max}",
            "passphrase": MASK if ssh.passphrase else None,
        }


def load_inventory(directory: Path) -> dict[str, HostSpec]:
    """Load and check the inventory in ``directory``; returns hosts by name, in file order."""
    raw = _read_raw(directory)
    _check_structure(directory, raw)
    inventory = _nornir_inventory(raw)
    hosts = {name: _host_spec(directory, host) for name, host in inventory.hosts.items()}
    _check_unique_endpoints(directory, hosts)
    return hosts


def _read_raw(directory: Path) -> dict[str, dict[str, Any]]:
    """Parse the three files once, with the parser nornir's SimpleInventory uses (ruamel, safe)."""
    if not directory.is_dir():
        raise InventoryError(f"{directory}: inventory directory not found")
    raw: dict[str, dict[str, Any]] = {}
    for name in (HOSTS_FILE, GROUPS_FILE, DEFAULTS_FILE):
        path = directory / name
        if not path.exists():
            if name == HOSTS_FILE:
                raise InventoryError(f"{path}: file not found (an inventory needs {HOSTS_FILE})")
            raw[name] = {}
            continue
        loaded = _load_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InventoryError(f"{path}: expected a mapping at the top level")
        raw[name] = loaded
    return raw


def _load_yaml(path: Path) -> Any:
    """One inventory file, bounded in bytes and in values (aliases expanded)."""
    import ruamel.yaml  # noqa: PLC0415
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InventoryError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        loaded = ruamel.yaml.YAML(typ="safe").load(data.decode("utf-8"))
        validate.bounded(loaded, MAX_FILE_VALUES, str(path))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InventoryError(f"{path}: invalid YAML{where}: {clip(problem)}") from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, int digit limit, nesting
        raise InventoryError(
            f"{path}: invalid YAML: {clip(str(exc) or type(exc).__name__)}"
        ) from None
    except ValidationError as exc:
        raise InventoryError(str(exc)) from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror}") from None
    return loaded


def _check_structure(directory: Path, raw: dict[str, dict[str, Any]]) -> None:
    groups = raw[GROUPS_FILE]
    for file_name in (HOSTS_FILE, GROUPS_FILE):
        kind = "host" if file_name == HOSTS_FILE else "group"
        for name, element in raw[file_name].items():
            where = f"{directory / file_name}: {kind} {name}"
            _check_element(where, element, groups)
            if kind == "host" and not (element or {}).get("hostname"):
                raise InventoryError(f"{where}: no hostname")
    _check_element(f"{directory / DEFAULTS_FILE}", raw[DEFAULTS_FILE], groups, defaults=True)


def _check_element(
    where: str, element: Any, groups: dict[str, Any], defaults: bool = False
) -> None:
    if element is None:
        return
    if not isinstance(element, dict):
        raise InventoryError(f"{where}: expected a mapping, got {type(element).__name__}")
    allowed = _ELEMENT_KEYS - {"groups"} if defaults else _ELEMENT_KEYS
    unknown = set(element) - allowed
    if unknown:
        raise InventoryError(f"{where}: unknown key(s) {', '.join(sorted(map(label, unknown)))}")
    member_of = element.get("groups") or []
    if not isinstance(member_of, list):
        raise InventoryError(f"{where}: groups must be a list")
    for group in member_of:
        if group not in groups:
            raise InventoryError(f"{where}: unknown group {show(group)}")
    if element.get("data") is not None and not isinstance(element["data"], dict):
        raise InventoryError(f"{where}: data must be a mapping")
    extras = ((element.get("connection_options") or {}).get("fleetbr") or {}).get("extras")
    if extras is not None:
        if not isinstance(extras, dict):
            raise InventoryError(f"{where}: connection_options.fleetbr.extras must be a mapping")
        problem = _unknown_extras(extras)
        if problem:
            raise InventoryError(f"{where}: {problem}")


def _unknown_extras(extras: Mapping[str, Any]) -> str:
    """Why ``extras`` is refused (keys fleetbr does not know), or "" when it is not."""
    unknown = set(extras) - _EXTRAS_KEYS
    if not unknown:
        return ""
    return (
        f"unknown fleetbr option(s) {', '.join(sorted(map(label, unknown)))} "
        f"(known: {', '.join(sorted(_EXTRAS_KEYS))})"
    )


def _nornir_inventory(raw: dict[str, dict[str, Any]]) -> Inventory:
    """Build nornir's own objects from the checked dicts, as SimpleInventory.load does.

    Inheritance (host -> groups -> defaults, data and connection options) is then resolved by
    nornir's Host methods. Building from the dicts saves a second parse of every file.
    """
    from nornir.core.inventory import (  # noqa: PLC0415
        Defaults,
        Group,
        Groups,
        Host,
        Hosts,
        Inventory,
        ParentGroups,
    )

    defaults_raw = raw[DEFAULTS_FILE]
    defaults = Defaults(
        **{key: defaults_raw.get(key) for key in _SCALAR_KEYS},
        data=defaults_raw.get("data"),
        connection_options=_connection_options(defaults_raw),
    )
    groups = Groups({name: _element(Group, name, spec or {}, defaults)
                     for name, spec in raw[GROUPS_FILE].items()})  # fmt: skip
    hosts = Hosts({name: _element(Host, name, spec or {}, defaults)
                   for name, spec in raw[HOSTS_FILE].items()})  # fmt: skip
    for file_name, elements in ((GROUPS_FILE, groups), (HOSTS_FILE, hosts)):
        for name, element in elements.items():
            member_of = (raw[file_name][name] or {}).get("groups") or []
            element.groups = ParentGroups([groups[g] for g in member_of])
    return Inventory(hosts=hosts, groups=groups, defaults=defaults)


_SCALAR_KEYS = ("hostname", "port", "username", "password", "platform")
_H = TypeVar("_H", bound="Host")


def _element(kind: type[_H], name: str, spec: dict[str, Any], defaults: Defaults) -> _H:
    return kind(
        name=name,
        **{key: spec.get(key) for key in _SCALAR_KEYS},
        data=spec.get("data"),
        groups=None,  # linked to the Group objects once they all exist
        defaults=defaults,
        connection_options=_connection_options(spec),
    )


def _connection_options(spec: dict[str, Any]) -> dict[str, ConnectionOptions]:
    from nornir.core.inventory import ConnectionOptions  # noqa: PLC0415

    return {
        name: ConnectionOptions(
            **{key: (options or {}).get(key) for key in _SCALAR_KEYS},
            extras=(options or {}).get("extras"),
        )
        for name, options in (spec.get("connection_options") or {}).items()
    }


def _host_spec(directory: Path, host: Host) -> HostSpec:
    try:
        return nornir_host_spec(host)
    except ValidationError as exc:
        raise InventoryError(f"{directory / HOSTS_FILE}: host {host.name}: {exc}") from None


def nornir_host_spec(host: Host) -> HostSpec:
    """The :class:`HostSpec` of a nornir ``Host`` (from any nornir inventory plugin): its
    ``connection_options.fleetbr`` settings, groups and data, checked as fleetbr's own loader
    checks them. Raises :class:`ValidationError` naming the bad field."""
    return spec_from_connection(
        host.name,
        host.get_connection_parameters("fleetbr"),
        groups=tuple(g.name for g in host.extended_groups()),
        data=host.extended_data(),
    )


def spec_from_connection(
    name: str,
    params: ConnectionOptions,
    *,
    groups: tuple[str, ...] = (),
    data: Mapping[str, Any] | None = None,
) -> HostSpec:
    """A :class:`HostSpec` from nornir connection parameters (what nornir hands a connection
    plugin); every value checked, unknown fleetbr options refused (:class:`ValidationError`)."""
    extras = params.extras or {}
    if not isinstance(extras, Mapping):
        raise ValidationError("connection_options.fleetbr.extras must be a mapping")
    unknown = _unknown_extras(extras)
    if unknown:
        raise ValidationError(f"connection_options.fleetbr.extras: {unknown}")
    ssh = _ssh_options(extras)
    port = validate.integer(params.port if params.port is not None else 22, "port", 1, 65535)
    return HostSpec(
        name=name,
        hostname=_hostname(params.hostname, "hostname"),
        port=port,
        username=None if params.username is None else validate.username(params.username),
        password=parse_secret(params.password, "password"),
        groups=groups,
        data=data if data is not None else {},
        ssh=ssh,
    )


def _hostname(value: object, field: str) -> str:
    """A host name or address: no whitespace or control characters, no leading '-'."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if not text or text.startswith("-") or any(not c.isprintable() or c.isspace() for c in text):
        raise ValidationError(f"{field}: {show(value)} is not a host name or address")
    return text


def jump_target(value: str) -> tuple[str, str | None, int]:
    """Split a ``jump_host`` of the form ``[user@]host[:port]`` into (host, user, port)."""
    user, _, rest = value.rpartition("@")
    host, port = rest, 22
    if rest.count(":") == 1:
        host, _, text = rest.partition(":")
        port = validate.integer(int(text) if text.isdigit() else text, "jump_host port", 1, 65535)
    return host, user or None, port


def _jump_host(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"jump_host: expected [user@]host[:port], got {show(value)}")
    host, user, _ = jump_target(value)
    _hostname(host, "jump_host")
    if user is not None:
        validate.username(user, "jump_host user")
    return value


def _path(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValidationError(f"{field}: expected a file path, got {show(value)}")
    return str(Path(value).expanduser())


def _ssh_options(extras: Mapping[str, Any]) -> SSHOptions:
    keys = extras.get("client_keys") or ()
    if isinstance(keys, str):
        keys = (keys,)
    if not isinstance(keys, list | tuple):
        raise ValidationError(f"client_keys: expected a list of paths, got {show(keys)}")
    known_hosts = extras.get("known_hosts")
    return SSHOptions(
        client_keys=tuple(_path(k, "client_keys") for k in keys),
        known_hosts=_path(known_hosts, "known_hosts") if known_hosts else None,
        jump_host=_jump_host(extras.get("jump_host")),
        sudo=validate.boolean(extras.get("sudo", False), "sudo"),
        agent_forwarding=validate.boolean(
            extras.get("agent_forwarding", False), "agent_forwarding"
        ),
        connect_timeout=_seconds(extras, "connect_timeout", 10.0),
        keepalive_interval=_seconds(extras, "keepalive_interval", 2.0),
        keepalive_count_max=validate.integer(
            extras.get("keepalive_count_max", 3), "keepalive_count_max", 1, 100
        ),
        command_timeout=_seconds(extras, "command_timeout", 120.0),
        passphrase=parse_secret(extras.get("passphrase"), "passphrase"),
    )


def _seconds(extras: Mapping[str, Any], key: str, default: float) -> float:
    value = extras.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ValidationError(f"{key}: expected seconds between 0 and 3600, got {show(value)}")
    return float(value)


def _check_unique_endpoints(directory: Path, hosts: Mapping[str, HostSpec]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for spec in hosts.values():
        key = (spec.hostname, spec.port)
        if key in seen:
            raise InventoryError(
                f"{directory / HOSTS_FILE}: host {spec.name}: {spec.hostname}:{spec.port} is "
                f"already used by host {seen[key]}"
            )
        seen[key] = spec.name


def select_hosts(
    hosts: Mapping[str, HostSpec],
    limit: str | None,
    *,
    named: Mapping[str, Collection[str]] | None = None,
) -> list[HostSpec]:
    """Hosts matching ``limit`` (:mod:`fleetbr.selection`: names, groups, globs on either,
    ``!`` exclusion, ``&`` intersection, comma separated; ``named``: the host sets of its
    ``@`` terms, already resolved).

    ``None`` (no ``-l``) or ``all`` selects every host. A term that matches nothing is an error,
    and so is an empty or blank term or a selection that leaves no host: ``-l "$UNSET"`` must
    never mean the whole fleet, nor a typo in an exclusion exclude nothing.
    """
    if limit is None:
        return list(hosts.values())
    groups = {name: spec.groups for name, spec in hosts.items()}
    names = require_some(select_names(groups, limit, unmatched=no_match, named=named), limit)
    return [hosts[name] for name in names]


def check_client_keys(
    directory: Path, hosts: Sequence[HostSpec], key: str | None, known_hosts: str | None = None
) -> None:
    """Every private key the selected hosts will use is a readable private key file (``--key``
    first), and a ``--known-hosts`` file given is readable; every secret is read from its
    source and every encrypted key decrypted (its passphrase asked once on a terminal).

    Checked once, before any host is contacted: a missing key or secret is the operator's error
    (exit 2), not something for every host to retry and report as unreachable.
    """
    if known_hosts:
        problem = unopenable(str(Path(known_hosts).expanduser()))
        if problem:
            raise UsageError(f"--known-hosts {known_hosts}: {problem}")
    _resolve_secrets(directory, hosts)
    if key:
        path = str(Path(key).expanduser())
        problem = key_file_problem(path)
        if problem:
            raise UsageError(f"--key {key}: {problem}")
        passphrases = {spec.ssh.passphrase for spec in hosts}
        shared = passphrases.pop() if len(passphrases) == 1 else None
        unlock_keys([path], shared, "--key")
        return  # --key replaces every host's client_keys
    seen: dict[str, str] = {}
    for spec in hosts:
        where = f"{directory / HOSTS_FILE}: host {spec.name}: client_keys"
        for path in spec.ssh.client_keys:
            if path not in seen:  # one parse per key file, however many hosts share it
                seen[path] = key_file_problem(path)
            problem = seen[path]
            if problem:
                raise InventoryError(f"{where}: {path}: {problem}")
        unlock_keys(spec.ssh.client_keys, spec.ssh.passphrase, where)


def _resolve_secrets(directory: Path, hosts: Sequence[HostSpec]) -> None:
    """Read every ``{env:}``/``{command:}`` secret of ``hosts`` now (each source once)."""
    for spec in hosts:
        try:
            resolve([spec.password, spec.ssh.passphrase])
        except UsageError as exc:
            raise UsageError(f"{directory / HOSTS_FILE}: host {spec.name}: {exc}") from None


def key_problem(spec: HostSpec) -> str:
    """``client_keys: PATH: why`` for the first private key of ``spec`` that cannot be read, or
    "" when every one can (for callers that check one host at a time, as the Nornir tasks do).
    Its secrets are read and its encrypted keys decrypted too, never asking on a terminal."""
    for path in spec.ssh.client_keys:
        problem = key_file_problem(path)
        if problem:
            return f"client_keys: {path}: {problem}"
    try:
        resolve([spec.password, spec.ssh.passphrase])
        unlock_keys(spec.ssh.client_keys, spec.ssh.passphrase, "client_keys", ask=False)
    except UsageError as exc:
        return str(exc)
    return ""


def apply_overrides(
    hosts: Sequence[HostSpec], *, key: str | None, known_hosts: str | None
) -> list[HostSpec]:
    """CLI flags (``--key``, ``--known-hosts``) override the inventory for every host."""
    result = []
    for spec in hosts:
        ssh = spec.ssh
        if key:
            ssh = replace(ssh, client_keys=(str(Path(key).expanduser()),))
        if known_hosts:
            ssh = replace(ssh, known_hosts=str(Path(known_hosts).expanduser()))
        result.append(replace(spec, ssh=ssh))
    return result
