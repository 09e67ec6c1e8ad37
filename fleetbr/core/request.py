"""The typed run request every front door builds (the CLI from its Namespace, the API from its
arguments, the Nornir tasks, watch): which hosts, which change, how to roll it out, where to
record it. Frozen: a resumed run is a new request (:func:`fleetbr.resume.prepare_resume`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbr.counts import BatchSize, Share
from fleetbr.errors import UsageError
from fleetbr.inventory import (
    HostSpec,
    apply_overrides,
    check_client_keys,
    load_inventory,
    select_hosts,
)
from fleetbr.selection import NAMED_MARK

DEFAULT_FORKS = 50
ORIGINS = frozenset({"cli", "api", "nornir", "watch", "schedule", "demo"})

if TYPE_CHECKING:  # `facts` imports this module, and nothing of the history
    from fleetbr.history.location import HistoryLocation


@dataclass(frozen=True)
class Selection:
    """The hosts: an inventory directory and ``-l`` (with the CLI's overrides), or ``hosts``
    already loaded (the API, Nornir), which are then used as given."""

    inventory: Path | None = None
    limit: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    sudo: bool = False  # ``run --sudo``: every host's commands through ``sudo -n``
    hosts: tuple[HostSpec, ...] | None = None

    def resolve(
        self,
        *,
        connecting: bool = True,
        history: HistoryLocation | None = None,
        before: int | None = None,
    ) -> list[HostSpec]:
        """The hosts: loaded from the inventory with ``-l`` and the overrides (with
        ``connecting``, the keys of the hosts to contact are checked), or the hosts given as
        they are. ``-l @failed:RUN`` reads run RUN in ``history`` (``@failed:last``: the newest
        run with hosts older than run ``before``, if given; :mod:`fleetbr.failed`).
        InventoryError/UsageError before any host is contacted."""
        if self.hosts is not None:
            hosts = list(self.hosts)
        elif self.inventory is None:
            raise UsageError("no inventory and no hosts given")
        else:
            inventory = load_inventory(self.inventory)
            named = _named_sets(self.limit, inventory, history, before)
            hosts = select_hosts(inventory, self.limit, named=named)
            if connecting:
                check_client_keys(self.inventory, hosts, self.key, self.known_hosts)
            hosts = apply_overrides(hosts, key=self.key, known_hosts=self.known_hosts)
        if self.sudo:
            hosts = [dataclasses.replace(h, ssh=dataclasses.replace(h.ssh, sudo=True))
                     for h in hosts]  # fmt: skip
        return hosts


def _named_sets(
    limit: str | None,
    inventory: Mapping[str, HostSpec],
    history: HistoryLocation | None,
    before: int | None,
) -> dict[str, frozenset[str]]:
    if limit is None or NAMED_MARK not in limit:
        return {}
    # The history stack only for an @ term: `fleetbr facts` must not import it (start-up).
    from fleetbr.failed import failed_sets  # noqa: PLC0415

    return failed_sets(limit, history, known=inventory.keys(), before=before)


@dataclass(frozen=True)
class ChangeRef:
    """The change: a kind's name (:mod:`fleetbr.core.kinds`) and its source, which the kind
    reads: a task file (``bridge``), a command spec (``command``), an object already loaded."""

    kind: str
    source: Any = None
    label: str = ""  # the change's name in journals and reports (default: the kind's choice)
    recorded_file: Path | None = None  # the file the history records (its sha256 too)


@dataclass(frozen=True)
class RolloutOptions:
    """Concurrency and, for ``apply``, canary, batches and the failure threshold."""

    forks: int = DEFAULT_FORKS
    canary: int | None = None  # None: not given (0 hosts; ``--resume`` takes the run's own)
    batch_size: BatchSize | None = None  # one size, or a Serial (sizes in turn)
    max_failures: int | Share | None = None


@dataclass(frozen=True)
class HistoryOptions:
    """Where the run is recorded (None: not at all) and, for ``apply``, the run it resumes
    (``resume``: a run id, 0 for the newest apply, None for a new run)."""

    path: HistoryLocation | None = None  # a file (SQLite) or a postgresql:// URL
    resume: int | None = None
    resumed_from: int | None = None
    resumed_options: Mapping[str, Any] | None = None  # the resumed run's options, kept as such


@dataclass(frozen=True)
class MetricsOptions:
    """The node_exporter textfile written after the run, with its labels; ``quiet``: no live
    progress (``--json``, ``--stream``)."""

    file: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = True


@dataclass(frozen=True)
class RunRequest:
    """One run: ``command`` (plan, apply, check, status, rollback, ...) on ``selection``."""

    command: str
    selection: Selection
    change: ChangeRef | None = None
    rollout: RolloutOptions = RolloutOptions()
    history: HistoryOptions = HistoryOptions()
    metrics: MetricsOptions = MetricsOptions()
    origin: str = "cli"
    runner: str = "local"
    name: str = ""  # the run's name in the history and metrics (default: command)
    # plan, check: each host's result carries its before/after view (fleetbr.diffview) as
    # ``data["diff"]``, from the kind's ``diff`` (kinds without one: no view)
    diff: bool = False
    recorded: Mapping[str, Any] = field(default_factory=dict)  # more options for the history

    @property
    def recorded_name(self) -> str:
        """The command the history records the run under (``run --deadman`` applies as ``run``)."""
        return self.name or self.command

    def replace(self, **changes: Any) -> RunRequest:
        """A copy with ``changes`` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)
