"""Typed facts about one host, as parsed from the facts script's output.

Everything here is immutable data; parsers build it, the planner and the verifier read it, and
``to_dict`` turns it into JSON for ``--json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetbr.facts.filemeta import FileMeta
from fleetbr.facts.libvirt import Libvirt
from fleetbr.facts.redact import redacted_contents
from fleetbr.facts.topology import TopologyFacts

Family = Literal[4, 6]
_IMMUTABLE = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` makes of ``value``, equal to it but several times faster: the
    facts are trees of frozen dataclasses, tuples, dicts and immutable scalars, which asdict would
    deep-copy one by one (~13 ms a host, the largest per-host cost of ``fleetbr --json facts``)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if kind is tuple or kind is list:
        return kind(plain(item) for item in value)
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    return _asdict_leaf(value)


def _asdict_leaf(value: Any) -> Any:
    """Anything else exactly as asdict treats it (named tuples, other containers: a deep copy)."""
    return dataclasses.asdict(_Leaf(value))["value"]


@dataclass(frozen=True)
class _Leaf:
    value: Any


@dataclass(frozen=True)
class Link:
    """A network interface (``ip -d link``)."""

    name: str
    kind: str  # "ether" for a plain NIC, else the link_info kind: bridge, veth, vlan, bond...
    mac: str | None
    mtu: int
    state: str  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN...
    admin_up: bool  # the UP flag
    master: str | None
    wireless: bool = False
    # IPv6 link-local generation (``ip link set ... addrgenmode``); None: iproute2 did not say.
    # A daemon sets it on the links it takes (networkd's LinkLocalAddressing=no: none) and
    # leaves it when it lets a link go, so a released bond slave needs it back.
    addrgenmode: str | None = None


@dataclass(frozen=True)
class Address:
    """An interface address; ``cidr`` keeps host bits (``198.51.100.10/24``)."""

    dev: str
    family: Family
    cidr: str
    scope: str  # global, link, host
    dynamic: bool = False
    broadcast: str | None = None  # IPv4 broadcast, kept so a moved address is restored exactly
    label: str | None = None  # IPv4 label when it is not the device name (``eth0:1``)
    secondary: bool = False  # IPv4: not the first address of its subnet on the device
    nodad: bool = False  # IPv6: added without duplicate address detection
    noprefixroute: bool = False  # no kernel prefix route (a daemon adds its own, with its metric)


@dataclass(frozen=True)
class Route:
    """A route of any table. ``dst`` is ``default`` or a CIDR.

    The attributes after ``type`` are what a moved route must keep to be restored exactly;
    ``unsupported`` names what iproute2 reported that fleetbr cannot recreate (``nhid``...).
    """

    family: Family
    dst: str
    dev: str
    gateway: str | None = None
    metric: int | None = None
    protocol: str = "boot"
    type: str = "unicast"  # or blackhole, unreachable, prohibit (these have no dev: "")
    table: str = "main"
    src: str | None = None  # preferred source address (iproute2 ``prefsrc``)
    scope: str | None = None  # IPv4: global, link, host...; None: not recorded (IPv6, tasks)
    onlink: bool = False
    pref: str | None = None  # IPv6 router preference when not medium: low, high
    metrics: str = ""  # ``ip route`` metric options, e.g. "mtu 1400 advmss 1360"
    unsupported: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        """True for a unicast default route of the main table."""
        return self.dst == "default" and self.type == "unicast" and self.table == "main"

    @property
    def kernel_made(self) -> bool:
        """The kernel made it from an address (``proto kernel``, no gateway) and makes it again.
        A route with a gateway is someone's even when it says ``proto kernel``: ifupdown2's
        ``gateway`` adds the default route that way."""
        return self.protocol == "kernel" and not self.gateway


@dataclass(frozen=True)
class Rule:
    """A policy routing rule (``ip rule``). ``text`` is every field but the priority, sorted."""

    family: Family
    priority: int
    text: str
    iif: str | None = None
    oif: str | None = None


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge with its settings and ports. ``forward_delay`` is in seconds."""

    name: str
    stp: bool
    forward_delay: int
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    """A network configuration backend: installed (``present``), running or in use (``active``)."""

    name: str  # networkmanager, netplan, systemd-networkd, ifupdown, brctl
    present: bool
    active: bool


# Why fleetbr cannot trust the host's armed marker: "damaged" (it names no transaction fleetbr can
# act on) or "unreadable" (this login cannot read fleetbr's state directory).
MarkerProblem = Literal["", "damaged", "unreadable"]


@dataclass(frozen=True)
class ArmedTransaction:
    """A fleetbr transaction armed on the host and not yet decided (confirmed or rolled back).

    With a ``problem`` it stands for an armed marker fleetbr cannot trust, or cannot see: the host
    is then treated as armed (stale), never as free, so nothing is planned or applied over it.
    """

    txid: str  # "" when the marker names no valid transaction id
    deadline: int  # epoch seconds on the host's clock
    timer_alive: bool  # the dead-man timer is still pending
    same_boot: bool  # the host has not rebooted since the timer was armed
    now: int  # the host's clock when the facts were taken
    problem: MarkerProblem = ""
    detail: str = ""  # what exactly is wrong, for a problem
    # files the boot guard could not put back at this boot (their old content is bind-mounted)
    boot_guard_failed: int = 0

    @classmethod
    def untrusted(
        cls, problem: MarkerProblem, detail: str, now: int, txid: str = ""
    ) -> ArmedTransaction:
        """A marker that is damaged or cannot be read."""
        return cls(txid, 0, timer_alive=False, same_boot=False, now=now, problem=problem,
                   detail=detail)  # fmt: skip

    @property
    def stale(self) -> bool:
        """Armed but nobody will decide it: timer gone, host rebooted, deadline long past, or a
        marker fleetbr cannot trust."""
        return (
            bool(self.problem)
            or not self.timer_alive
            or not self.same_boot
            or self.now > self.deadline + 30
        )

    def describe(self) -> str:
        """One line for reports: what is armed, or what is wrong and how to resolve it."""
        if self.problem == "damaged":
            return (
                f"DAMAGED armed marker {STATE_DIR}/armed ({self.detail}): no transaction can be "
                "armed on this host until it is cleared; `fleetbr rollback` clears it"
            )
        if self.problem == "unreadable":
            return (
                f"cannot read fleetbr's state in {STATE_DIR} ({self.detail}), so whether a "
                "transaction is armed is unknown; connect as root or set sudo: true"
            )
        if self.boot_guard_failed:
            return (
                f"the boot guard could not put back {self.boot_guard_failed} file(s) of "
                f"transaction {self.txid} at this boot (read-only file system?): their old content "
                "is bind-mounted for this boot only and the transaction stays armed; make the "
                "file system writable and reboot, and the guard puts them back"
            )
        kind = "stale" if self.stale else "live"
        return f"a {kind} fleetbr transaction {self.txid} is armed on the host"


@dataclass(frozen=True)
class ConfigFile:
    """A network configuration file on the host and its sha256 (None: it could not be read)."""

    path: str
    sha256: str | None


@dataclass(frozen=True)
class DaemonView:
    """What one network backend says about one interface, in its own words.

    ``state``: networkd's setup state (``configured``, ``configuring``, ``unmanaged``, ``failed``,
    ``pending``...); NetworkManager's device state (``connected``, ``disconnected``,
    ``unavailable``, ``unmanaged``, ``connected (externally)``...); ifupdown ``up`` (in
    ``ifquery --state``) or ``down`` (a stanza, not up); netplan ``defined`` (in a YAML file but
    no renderer runs it). A netplan-generated networkd or NetworkManager file makes the view
    netplan's, with the renderer's state.
    """

    backend: str  # networkd, networkmanager, netplan, ifupdown
    state: str
    files: tuple[ConfigFile, ...] = ()
    claims: bool = False  # the backend configures this interface (it is its manager)


@dataclass(frozen=True)
class InterfaceManager:
    """Which backend manages one interface (a NIC, a bridge), from the daemons' own view."""

    interface: str
    manager: str | None  # ifupdown, networkd, netplan, networkmanager; None: no daemon does
    # the manager's own state word; with no manager, what a daemon that sees it says
    # (NetworkManager: "connected (externally)", networkd: "unmanaged"), else "unmanaged"
    state: str
    files: tuple[ConfigFile, ...]  # the files that hold the manager's configuration of it
    views: tuple[DaemonView, ...] = ()  # every backend that has something to say about it

    @property
    def claimed_by(self) -> tuple[str, ...]:
        """Every backend that configures the interface (more than one: they fight)."""
        return tuple(view.backend for view in self.views if view.claims)


# The largest network configuration file fleetbr reads whole and may rewrite (docs/facts.md).
CONTENT_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NmDhcpIdentity:
    """The DHCP client identity NetworkManager's client presents on one device, as
    ``nmcli -f DHCP4,DHCP6 device show DEV`` reports it (bytes as ``aa:bb:...``; None: not
    reported): the DHCPv4 client id (option 61), the DHCPv6 DUID and the IAID of its IA_NA."""

    client_id: str | None = None
    duid: str | None = None
    iaid: str | None = None


@dataclass(frozen=True)
class Daemons:
    """The network daemons' view of the host (the facts script's ``daemons`` section)."""

    running: tuple[str, ...] = ()  # networkd, networkmanager
    interfaces: dict[str, InterfaceManager] = field(default_factory=dict)
    files: dict[str, str | None] = field(default_factory=dict)  # every config file -> sha256
    netplan: dict[str, tuple[str, ...]] = field(default_factory=dict)  # YAML file -> interfaces
    ifupdown: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> iface stanzas
    # the text of each file the script sent (networkd, netplan, ifupdown; never NetworkManager's),
    # whole: bytes that are not UTF-8 are kept as surrogates ("surrogateescape"), so encoding it
    # the same way gives the file's bytes back exactly
    contents: dict[str, str] = field(default_factory=dict)
    # files larger than CONTENT_MAX_BYTES: their content above is only their start, and fleetbr
    # never rewrites them (fleetbr.plan.persist refuses)
    oversized: tuple[str, ...] = ()
    # NetworkManager: device -> uuid and name of its active connection profile
    nm_active: dict[str, tuple[str, str]] = field(default_factory=dict)
    # NetworkManager: active profile uuid -> ipv4.dns, ipv4.dns-search, ipv6.dns..., and
    # 802-3-ethernet.mtu, ipv4.routing-rules, ipv6.routing-rules (as nmcli -t)
    nm_dns: dict[str, dict[str, str]] = field(default_factory=dict)
    # NetworkManager: device -> the DHCP client identity its client presents (a device with a
    # DHCP client running only)
    nm_dhcp: dict[str, NmDhcpIdentity] = field(default_factory=dict)

    def manager(self, interface: str) -> InterfaceManager:
        """Who manages ``interface``; ``manager`` None (``unmanaged``) when nobody does."""
        found = self.interfaces.get(interface)
        return found or InterfaceManager(interface, None, "unmanaged", ())

    def file_digest(self, path: str) -> str | None:
        """The sha256 of a network configuration file (None: absent or unreadable)."""
        return self.files.get(path)


# Files fleetbr may write; the facts script reports their sha256 so plans can say "unchanged".
MANAGED_FILES: tuple[str, ...] = (
    "/etc/sysctl.d/bridge.conf",
    "/etc/udev/rules.d/99-bridge.rules",
    "/etc/modules-load.d/br_netfilter.conf",
)

# The largest managed file whose text the facts carry (``managed_contents``: --diff's old side).
MANAGED_MAX_BYTES = 65536

# Where fleetbr keeps its per-host transaction state (journal, staged scripts, backups).
STATE_DIR = "/var/lib/fleetbr"

# fleetbr's records of what a bridge was made with (``BRIDGE.json``: what ``addresses: move`` and
# null gateways resolved to). Under /run like the runtime-only bridge itself (persist: none): gone
# after a reboot, together with the bridge. The facts script reports each one's content.
PIN_DIR = "/run/fleetbr/pins"
PIN_MAX_BYTES = 65536


@dataclass(frozen=True)
class HostFacts:
    """Everything fleetbr knows about one host's network at one moment."""

    hostname: str
    kernel: str
    pid1_systemd: bool
    links: tuple[Link, ...]
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    bridges: tuple[Bridge, ...]
    bridge_nf: dict[str, int | None]  # call-iptables/ip6tables/arptables -> value, None if absent
    docker: tuple[str, ...]  # evidence of Docker (empty: none seen)
    backends: tuple[Backend, ...]
    libvirt: bool  # virsh present
    has_modules: bool  # /lib/modules/$(uname -r) exists, so modprobe can work
    has_sysctl: bool  # sysctl(8) present
    managed_files: dict[str, str | None] = field(default_factory=dict)  # path -> sha256 or None
    # the text of each managed file of at most MANAGED_MAX_BYTES (bytes that are not UTF-8 as
    # surrogates); shown by --diff only (fleetbr.diffview), never used to write anything
    managed_contents: dict[str, str] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)  # path in PIN_DIR -> its text (see above)
    probes: dict[str, bool] = field(default_factory=dict)  # gateway -> answered a ping
    armed: ArmedTransaction | None = None
    daemons: Daemons = field(default_factory=Daemons)
    extra: dict[str, Any] = field(default_factory=dict)
    # Older facts scripts reported only the main table and no rules or module state.
    route_tables: Literal["all", "main"] = "all"
    rules: tuple[Rule, ...] | None = None  # None: not reported
    br_netfilter: str | None = None  # loaded (as a module), builtin, absent; None: not reported
    guests: Libvirt | None = None  # libvirt's domains (fleetbr.facts.libvirt); None: no virsh
    # config and managed files: owner, group, mode, symlink (fleetbr.facts.filemeta); None: not
    # reported (a snapshot staged by an older fleetbr)
    file_meta: dict[str, FileMeta] | None = None
    # txid -> managed files someone edited during its window, kept by its rollback (steps.sh.j2)
    kept: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # bonds, VLAN devices, the bridge VLAN table, DHCP leases (fleetbr.facts.topology)
    topology: TopologyFacts = field(default_factory=TopologyFacts)

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None."""
        return next((link for link in self.links if link.name == name), None)

    def manager(self, interface: str) -> InterfaceManager:
        """Which backend manages ``interface`` (the NIC, the bridge), from the daemons' view."""
        return self.daemons.manager(interface)

    def bridge(self, name: str) -> Bridge | None:
        """The bridge called ``name``, or None."""
        return next((br for br in self.bridges if br.name == name), None)

    def addresses_of(self, dev: str, scope: str = "global") -> tuple[Address, ...]:
        """Addresses of ``dev`` with the given scope, in kernel order."""
        return tuple(a for a in self.addresses if a.dev == dev and a.scope == scope)

    def routes_of(self, dev: str) -> tuple[Route, ...]:
        """Routes through ``dev``, of every table."""
        return tuple(r for r in self.routes if r.dev == dev)

    def default_routes(self, family: Family | None = None) -> tuple[Route, ...]:
        """Main-table unicast default routes, optionally of one family."""
        return tuple(
            r for r in self.routes if r.is_default and (family is None or r.family == family)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, for output: secret values in config file contents are redacted
        (:mod:`fleetbr.facts.redact`); this object itself keeps the text the backends rewrite."""
        document: dict[str, Any] = plain(self)
        document["daemons"]["contents"] = redacted_contents(self.daemons.contents)
        return document
