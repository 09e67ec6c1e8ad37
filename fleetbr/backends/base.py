"""The Backend interface: everything fleetbr knows of one persistence backend (a daemon and its
configuration format) in one class, with its host shell in a jinja2 template beside it.

A backend lives in its own folder (``fleetbr/backends/NAME/``: ``backend.py`` with the class,
``templates/shell.sh.j2`` with its shell) and is found through :mod:`fleetbr.backends.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from fleetbr.backends.model import BackendPlan, BackendRefusal, BridgeConfig, TopologyConfig
from fleetbr.facts.model import DaemonView, HostFacts
from fleetbr.facts.views import ViewContext

# The macros a backend's shell template defines (each renders one POSIX sh command line that
# exits 0 on success; ``a`` is the step's arguments: backend, bridge, nic, direction and the
# backend's own ``step_args``):
#   take_bridge(a)  the daemon takes over the bridge the runtime steps built (bridge, or undo an
#                   unbridge), and waits until it has settled
#   take_nic(a)     the daemon takes the NIC (back) as a plain interface, the bridge gone
#   release(a)      rollback, right after the files are restored: the daemon forgets the change
#   prepare(a)      (optional) forward, before the runtime steps: undo what the daemon did to the
#                   interfaces that they rely on (ifupdown2 disables IPv6 on a bridge's ports)
#   hold(a)         (optional) forward, between the runtime steps' address moves and their
#                   enslaves: the daemon leaves ``hold_links`` alone until take_bridge
#   unhold(a)       (with hold) the rollback's undo of hold, which must not reload the daemon
#   boot()          (only with ``boot_shell``) lines of the boot guard after it restored files
SHELL_TEMPLATE = "shell.sh.j2"
# The macros of a backend's facts template (optional; each takes ``b``: name, tool, daemon and
# process of the backend; POSIX sh run by fleetbr/templates/facts.sh.j2, which defines the helper
# functions ``yesno CMD...``, ``has_file_glob GLOB...`` and ``fbr_running PROCESS`` -> yes|no):
#   backends(b)  its line(s) in section ``backends``: ``backend TOOL PRESENT(yes|no) ACTIVE``
#   daemons(b)   its lines in section ``daemons`` (each starts with one of its ``view_words``)
#   files(b)     shell words (globs) of its config files whose sha256 and content are sent
#   hashed(b)    shell words of its files whose sha256 only is sent (secrets, vendor files)
FACTS_TEMPLATE = "facts.sh.j2"


class Backend(ABC):
    """One persistence backend. Subclasses set the class attributes and implement
    :meth:`plan` and :meth:`unplan`; the other methods have defaults most backends keep."""

    name: ClassVar[str]  # the task's word (``persist: NAME``) and the facts' DaemonView.backend
    tool: ClassVar[str]  # its name in the facts' ``backends`` section (installed or not)
    daemon: ClassVar[str | None] = None  # the daemon (facts ``daemons.running``) it needs
    # DaemonView.state words: the daemon has taken the interface over / is still at work on it
    settled: ClassVar[tuple[str, ...]]
    settling: ClassVar[tuple[str, ...]] = ()
    # other spellings of the backend in step arguments (a netplan renderer names its daemon)
    aliases: ClassVar[tuple[str, ...]] = ()
    # step arguments of its own beyond backend/bridge/nic/direction (None when unused): a key
    # ending in ``uuid`` is a UUID, any other is one of the backends' names or aliases (a
    # topology's plan may also pass keys ending in ``links``: space-separated interface names,
    # and ``uuids``: space-separated UUIDs)
    step_args: ClassVar[tuple[str, ...]] = ()
    boot_shell: ClassVar[bool] = False  # its template has a boot() macro for the boot guard
    templates: ClassVar[Path]  # the folder of its shell template (SHELL_TEMPLATE)
    # the facts side: the name of its daemon's process (/proc/PID/comm), which the facts report
    # as ``running DAEMON yes|no``; the words of its lines in section ``daemons``; the order in
    # which the backends read their views (lower first: a daemon's own view before files only);
    # which backend is named the manager when several claim an interface (lower wins)
    process: ClassVar[str | None] = None
    view_words: ClassVar[tuple[str, ...]] = ()
    view_rank: ClassVar[int] = 50
    precedence: ClassVar[int] = 50
    # the uplink topologies its writers can express beyond one NIC into one bridge
    # (fleetbr.changes.bridge.topology.FEATURES); a task needing others is refused before any
    # change (fleetbr.plan.topology.capability; the matrix: docs/topologies.md)
    topologies: ClassVar[frozenset[str]] = frozenset()
    # its topology writer drops the stanza of a VLAN device of the NIC whose addresses move to a
    # VLAN interface of the bridge (``eth0.10`` -> ``br0.10``); others refuse such a move
    rewrites_vlan_sources: ClassVar[bool] = False
    # the backends it replaces: they share its files and commands (ifupdown2 replaces ifupdown:
    # both read /etc/network/interfaces and ship ifup), so a host has one or the other. When its
    # tool is present the facts call them absent and none of their views is read
    # (fleetbr.backends.registry.replaced): detection never has to choose between them.
    replaces: ClassVar[tuple[str, ...]] = ()

    def installed(self, facts: HostFacts) -> bool:
        """Its tool is on the host (facts section ``backends``)."""
        return any(b.name == self.tool and b.present for b in facts.backends)

    def renderer_daemon(self, facts: HostFacts) -> str | None:
        """The daemon that must run for it to apply the files (None: no daemon)."""
        del facts
        return self.daemon

    def detect(self, facts: HostFacts, name: str) -> bool:
        """This backend manages interface ``name`` now (the facts' daemon view)."""
        return facts.manager(name).manager == self.name

    def view(self, facts: HostFacts, name: str) -> DaemonView | None:
        """What its daemon says of interface ``name`` (None: nothing)."""
        return next((v for v in facts.manager(name).views if v.backend == self.name), None)

    def name_servers(self, facts: HostFacts, name: str) -> tuple[str, ...] | None:
        """The name servers its daemon reports for interface ``name`` (confirm and ``check``
        compare them with what the plan carried); None: its view does not report them (the
        files' sha256 cover them)."""
        del facts, name
        return None

    def is_settled(self, state: str) -> bool:
        """``state`` (its DaemonView.state) means the daemon has taken the interface over."""
        return state in self.settled

    def refusals(self, facts: HostFacts, nic: str, bridge: str) -> None:
        """Raise BackendRefusal when the host cannot let this backend persist the bridge."""
        if not facts.pid1_systemd:
            raise BackendRefusal(
                f"persist: {self.name} needs systemd on the host: the boot guard that undoes an "
                "unconfirmed change at boot is a systemd unit"
            )
        if not self.installed(facts):
            raise BackendRefusal(f"persist: {self.name} is not installed on the host")
        daemon = self.renderer_daemon(facts)
        if daemon is not None and daemon not in facts.daemons.running:
            raise BackendRefusal(f"persist: {self.name} needs {daemon}, which is not running")
        for name in (nic, bridge):
            owner = facts.manager(name).manager
            if owner not in (None, self.name):
                raise BackendRefusal(
                    f"{name} is managed by {owner}; persist: {self.name} would make two daemons "
                    f"fight over it (use persist: auto or {owner})"
                )

    @abstractmethod
    def plan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """The files and apply arguments that persist ``config`` (BackendRefusal if unsafe)."""

    def plan_topology(self, config: TopologyConfig, facts: HostFacts) -> BackendPlan:
        """The files and apply arguments that persist an uplink topology (only the features
        :attr:`topologies` declares reach it; BackendRefusal if unsafe)."""
        del config, facts
        raise BackendRefusal(f"persist: {self.name} writes no uplink topology yet")

    @abstractmethod
    def unplan(self, config: BridgeConfig, facts: HostFacts) -> BackendPlan:
        """Unbridge: files that give the NIC its addresses back and remove the bridge
        (``config`` describes the NIC's addresses and routes to be)."""

    def parse_config(self, ctx: ViewContext) -> None:
        """Read its config files (``ctx.contents``) before any view is read: put what the
        Daemons record of them in ``ctx.found``."""
        del ctx

    def parse_view(self, ctx: ViewContext) -> None:
        """Read its lines of section ``daemons`` (``ctx.words(WORD)``) into views
        (``ctx.add``; ``ctx.daemon_view`` names a generated file's generator)."""
        del ctx

    def generates(self, path: str) -> bool:
        """``path`` is a file this backend generated for another daemon to read."""
        del path
        return False

    def generated_view(
        self, ctx: ViewContext, name: str, state: str, paths: Sequence[str], claims: bool
    ) -> DaemonView:
        """The view of interface ``name`` configured by ``paths``, a file it generated first."""
        return DaemonView(self.name, state, ctx.config(paths), claims=claims)

    def facts_args(self) -> dict[str, str | None]:
        """The ``b`` its facts template's macros get."""
        return {
            "name": self.name,
            "tool": self.tool,
            "daemon": self.daemon,
            "process": self.process,
        }

    @classmethod
    def facts_template(cls) -> Path | None:
        """The path of its facts template (None: it has none)."""
        path = cls.templates / FACTS_TEMPLATE
        return path if path.is_file() else None

    @classmethod
    def shell_template(cls) -> Path:
        """The path of its shell template."""
        return cls.templates / SHELL_TEMPLATE
