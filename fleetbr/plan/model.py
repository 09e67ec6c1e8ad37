"""The plan data model: steps with their inverses, the expected end state, the plan itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetbr.backends.carry import PolicyRule
from fleetbr.facts.filemeta import FileMeta
from fleetbr.facts.model import Route
from fleetbr.plan.topology.expect import TopologyExpect

STEP_KINDS: frozenset[str] = frozenset(
    {
        "bridge_add",
        "bridge_set",
        "bridge_del",
        "link_master",
        "link_nomaster",
        "link_up",
        "link_down",
        "addr_add",
        "addr_del",
        "route_add",
        "route_del",
        "sysctl_set",
        "sysctl_load",
        "file_write",
        "file_restore",
        "modprobe",
        "run_staged",
        "module_unload",
        "file_remove",
        "file_guard",
        "backend_mark",
        "backend_apply",
        "backend_release",
        "backend_reapply",
        "backend_hold",
        "backend_unhold",
        "guest_update",
        "bond_add",
        "bond_del",
        "bond_enslave",
        "bond_release",
        "vlan_add",
        "vlan_del",
        "bridge_vlan_set",
        "bridge_vlan_add",
        "bridge_vlan_del",
    }
)


@dataclass(frozen=True)
class Step:
    """One remote change. ``args`` hold only validated str/int/bool/None values."""

    kind: str
    args: Mapping[str, Any]
    description: str
    touches_nic: bool = False
    inverse: Step | None = None

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}")
        for key, value in self.args.items():
            if value is not None and not isinstance(value, str | int | bool):
                raise TypeError(f"step {self.kind}: argument {key} has type {type(value).__name__}")


Value = str | int | bool | None


@dataclass(frozen=True)
class Difference:
    """One way a host differs from what it should be: ``field`` (``bridge.stp``,
    ``addresses.br0``, ``routes``, ``file./etc/sysctl.d/bridge.conf``...), what is wanted and what
    the host has (None: absent), and the same as one line of text."""

    field: str
    want: Value
    have: Value
    text: str

    def to_dict(self) -> dict[str, Value]:
        """A JSON-ready dict."""
        return {"field": self.field, "want": self.want, "have": self.have, "text": self.text}


@dataclass(frozen=True)
class GuestExpect:
    """A moved guest interface: in domain ``uuid`` (called ``name``), the interface with ``mac``
    of the ``live`` or ``config`` definition must be on ``bridge`` (live: its tap a port of it)."""

    uuid: str
    name: str
    mac: str
    scope: str
    bridge: str


@dataclass(frozen=True)
class ExpectedState:
    """What the host must look like after apply; ``confirm`` checks it with ``verify_applied``.

    ``address_dev`` carries ``addresses`` (exactly these global ones, IPv4 ones with ``labels``)
    and ``routes`` (at least these non-kernel routes, of any table, with their attributes): the
    bridge for state present, the NIC for absent.
    """

    bridge: str
    nic: str
    bridge_present: bool
    address_dev: str
    addresses: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # address -> label, if not the dev's
    routes: tuple[Route, ...] = ()
    stp: bool | None = None
    forward_delay: int | None = None
    mac: str | None = None
    ports: tuple[str, ...] = ()
    bridge_nf: Mapping[str, int] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # path -> sha256 of the content
    # persistence (fleetbr.backends): backend configuration files -> sha256 (None: absent),
    # and interface -> the backend that must call it its own
    config_files: Mapping[str, str | None] = field(default_factory=dict)
    managers: Mapping[str, str] = field(default_factory=dict)
    # the backend files fleetbr writes: owner, group, mode and symlink each must then have
    file_meta: Mapping[str, FileMeta] = field(default_factory=dict)
    guests: tuple[GuestExpect, ...] = ()  # libvirt guest interfaces moved onto the bridge
    # what the backend carried from the NIC's configuration (fleetbr.backends.carry): the MTU
    # of the bridge and its port (None: not configured), policy rules that must be in the
    # kernel, and the name servers the daemon must give the bridge (compared where the facts
    # hold the daemon's view: NetworkManager; elsewhere the files' sha256 cover them)
    mtu: int | None = None
    rules: tuple[PolicyRule, ...] = ()
    dns: tuple[str, ...] = ()
    # a topology (fleetbr.plan.topology): the other bridges' and VLAN interfaces' expected
    # states (compared like this one), and the bonds, VLAN devices and VLAN table
    more: tuple[ExpectedState, ...] = ()
    topology: TopologyExpect | None = None


@dataclass(frozen=True)
class Plan:
    """What a transaction runs on one host, whatever the kind of change: the steps, their
    inverses, the files it backs up and the gateways it probes (or why the host refuses)."""

    host: str
    refusal: str | None
    steps: tuple[Step, ...]
    rollback: tuple[Step, ...]
    files: tuple[str, ...]
    probes: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        """True when the host already matches the change: no refusal and nothing to do."""
        return self.refusal is None and not self.steps

    @property
    def guard_required(self) -> bool:
        """The boot guard must be installed (a persisted change a reboot would keep)."""
        return False

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The interfaces the change is about beyond those its steps name (none known: an
        operator's command touches what it touches)."""
        return ()

    @property
    def managed(self) -> tuple[str, ...]:
        """The interfaces a persisting daemon must see after a rollback as it did before."""
        return ()


@dataclass(frozen=True)
class BridgePlan(Plan):
    """The bridge task's plan: the steps that take one host from its facts to the task's state,
    how to undo them, and the state the host must then be in."""

    expected: ExpectedState
    # How the host differs from ``expected`` now (fleetbr.plan.diff): the drift the steps repair.
    differences: tuple[Difference, ...] = ()

    @property
    def guard_required(self) -> bool:
        """A change a network daemon persists (its files) needs the boot guard."""
        return bool(self.expected.managers)

    @property
    def interfaces(self) -> tuple[str, ...]:
        """The NIC and the bridge (a topology: every bridge, port, VLAN interface, bond and
        slave it expects)."""
        exp = self.expected
        if not exp.more and exp.topology is None:
            return (exp.nic, exp.bridge)
        devs = [d for e in (exp, *exp.more) for d in (e.nic, e.bridge, e.address_dev)]
        if exp.topology is not None:
            devs += [b.name for b in exp.topology.bonds]
            devs += [s for b in exp.topology.bonds for s in b.slaves]
            devs += [v.name for v in exp.topology.vlans]
        return tuple(dict.fromkeys(d for d in devs if d))

    @property
    def managed(self) -> tuple[str, ...]:
        """With a persisting backend: the interfaces its daemon manages, and the NIC."""
        managers = self.expected.managers
        if not managers:
            return ()
        return tuple(sorted({*managers, self.expected.nic} - {""}))


def rollback_of(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The inverses of ``steps`` in reverse order (steps without an inverse are skipped)."""
    return tuple(s.inverse for s in reversed(steps) if s.inverse is not None)
