"""The one verdict on a rolled-back transaction, for every path that judges one.

The transaction itself (``protocol``), ``fleetbr rollback`` (``recover``) and ``apply --resume``
(``resume``) all hand :func:`judge_rollback` the same things: the host's state of the transaction
(its decision and how many rollback steps failed), the facts snapshot taken when it was staged,
the scope of what it touched (``fleetbr.plan.scope``, staged as the snapshot's ``touched``
section) and a way to read the host's facts now. So one host state gets one verdict, whichever
path found it: at its snapshot (rolled back), or failed with the problems that say why; with
notes for differences outside the scope (a guest's tap device that came meanwhile), never a
failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetbr.backends import registry
from fleetbr.facts.model import STATE_DIR, HostFacts, InterfaceManager
from fleetbr.plan import restore_check
from fleetbr.plan.scope import Touched
from fleetbr.transaction.hoststate import HostTxState

if TYPE_CHECKING:
    from fleetbr.transaction.protocol import Clock

# How long a rolled-back host's network daemon (or libvirt, bringing an autostarted guest back;
# or a DHCP client, getting a lease back; or a router, advertising its route again) may take to
# settle (after a reboot it is still configuring the NIC when SSH already answers) before its
# view is compared with the snapshot.
SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class RollbackCheck:
    """How a rolled-back host compares with its snapshot: ``problems`` fail it, ``notes`` don't."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScriptOutcome:
    """What a change's own scripts left on the host (``run --deadman``: the command's and the
    undo's exit status and stderr): ``data`` for the result, ``summary`` for its message."""

    data: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True)
class RollbackVerdict:
    """How a rolled-back transaction left the host (see the module docstring)."""

    decision: str  # the host's decision, "rolled_back REASON"
    problems: tuple[str, ...]  # differences in what the transaction touched
    notes: tuple[str, ...]  # differences elsewhere: reported, never a failure
    failed_steps: int  # rollback steps that failed on the host
    kept: tuple[str, ...]  # managed files someone else edited in the window, kept aside
    outcome: ScriptOutcome = field(default_factory=ScriptOutcome)

    @property
    def at_snapshot(self) -> bool:
        """Rolled back: no rollback step failed and what it touched is as before."""
        return not self.problems and not self.failed_steps

    def failures(self, txid: str) -> list[str]:
        """Why the host is not rolled back, failed steps first ([] when it is)."""
        if not self.failed_steps:
            return list(self.problems)
        steps = f"{self.failed_steps} rollback step(s) failed on the host"
        return [f"{steps} (see {STATE_DIR}/tx/{txid}/apply.log)", *self.problems]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``verdict`` of a result's data, the same on every path)."""
        return {
            "at_snapshot": self.at_snapshot,
            "decision": self.decision,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "failed_steps": self.failed_steps,
            "kept": list(self.kept),
        }

    def kept_note(self, txid: str) -> str:
        """``; kept ...`` for a report line when the rollback kept edits, else ``""``."""
        if not self.kept:
            return ""
        return (
            f"; kept what someone else wrote to {', '.join(self.kept)} during the window "
            f"(in {STATE_DIR}/kept/{txid}/) before restoring"
        )


def compare(before: HostFacts, after: HostFacts, touched: Touched | None) -> RollbackCheck:
    """What ``touched`` covers must be back at ``before`` (None: everything); the daemons of a
    persisted change must see its interfaces as before; other differences are notes."""
    check = restore_check(before, after, touched)
    managed = touched.managed if touched is not None else ()
    return RollbackCheck(
        problems=list(check.problems) + daemon_problems(managed, before, after),
        notes=list(check.unrelated),
    )


def daemon_problems(managed: Iterable[str], before: HostFacts, after: HostFacts) -> list[str]:
    """A persisted change: the daemon must see each of ``managed`` as it did before."""
    out = []
    for name in sorted(managed):
        was, now = before.manager(name), after.manager(name)
        if (was.manager, was.state) != (now.manager, now.state) and not _finished(was, now):
            out.append(
                f"{name}: {was.manager or 'no daemon'} {was.state} before, "
                f"{now.manager or 'no daemon'} {now.state} after the rollback"
            )
    return out


def _finished(was: InterfaceManager, now: InterfaceManager) -> bool:
    """The snapshot caught the daemon still at work on the interface (``configuring`` shortly
    after a boot or a reload) and it has finished since, with the same daemon: the rollback gave
    the interface back to it, which is what the snapshot was heading for."""
    return (
        was.manager is not None
        and was.manager == now.manager
        and was.state.startswith(registry.settling_words())
        and registry.is_settled(was.manager, now.state)
    )


def settling(before: HostFacts, after: HostFacts, touched: Touched | None) -> bool:
    """A daemon is still configuring a touched interface, a DHCP client still getting a lease
    back on one, a router advertisement's route not back on one yet, or libvirt still bringing
    back a touched guest (None: any)."""
    names = None if touched is None else tuple(sorted(touched.devs))
    domains = None if touched is None else touched.domains
    return (
        daemons_settling(after, names)
        or leases_settling(before, after, names)
        or adverts_settling(before, after, names)
        or guests_settling(domains, before, after)
    )


def daemons_settling(facts: HostFacts, names: tuple[str, ...] | None = None) -> bool:
    """A network daemon is still configuring an interface (after a boot, a reload): one of
    ``names``, or any when None."""
    found = facts.daemons.interfaces
    # words of a daemon still bringing an interface up or down (Backend.settling): networkd's
    # setup states, NetworkManager's device states; its final word is yet to come
    settling = registry.settling_words()
    managers = found.values() if names is None else [facts.manager(n) for n in names]
    return any(
        word.startswith(settling)
        for manager in managers
        for word in (manager.state, *(view.state for view in manager.views))
    )


def leases_settling(
    before: HostFacts, after: HostFacts, names: tuple[str, ...] | None = None
) -> bool:
    """A DHCP lease the snapshot held on one of ``names`` (None: any interface) is not held on
    it now: its client may still be getting it back. After a reboot the daemons call a link
    configured (networkd) or connected (NetworkManager) once one family has its lease, and SSH
    answers on the IPv4 one, while DHCPv6 waits for a router advertisement: a power cut in the
    window of a NetworkManager bridge was judged with the NIC's IPv6 lease a second away."""
    wanted = {
        (lease.dev, lease.cidr)
        for lease in before.topology.dhcp
        if names is None or lease.dev in names
    }
    return bool(wanted - {(lease.dev, lease.cidr) for lease in after.topology.dhcp})


def adverts_settling(
    before: HostFacts, after: HostFacts, names: tuple[str, ...] | None = None
) -> bool:
    """A route a router advertisement gave one of ``names`` (None: any device) in the snapshot is
    not there now: the next advertisement may bring it (a rolled-back NIC solicits one when it
    comes up, the router answers when it can). Compared by what makes the route: family,
    destination, gateway, device, table and metric."""

    def advertised(facts: HostFacts) -> set[tuple[object, ...]]:
        return {
            (r.family, r.dst, r.gateway, r.dev, r.table, r.metric)
            for r in facts.routes
            if r.protocol == "ra" and (names is None or r.dev in names)
        }

    return bool(advertised(before) - advertised(after))


def guests_settling(domains: Iterable[str] | None, before: HostFacts, after: HostFacts) -> bool:
    """libvirt is still bringing back a guest of ``domains`` (UUIDs; None: any) that ran before
    (after a boot: libvirtd does not answer yet, the autostarted guest does not run yet, or its
    tap is not there yet): its final state is yet to come."""
    if before.guests is None:
        return False
    wanted = None if domains is None else set(domains)
    ran = [d for d in before.guests.domains if d.active and (wanted is None or d.uuid in wanted)]
    if not ran:
        return False
    if after.guests is None or after.guests.error:
        return True
    for domain in ran:
        now = after.guests.by_uuid(domain.uuid)
        if now is None or not now.active:
            return True
        if any(iface.tap and after.link(iface.tap) is None for iface in now.live):
            return True
    return False


Look = Callable[[], Awaitable[HostFacts]]
Compare = Callable[[HostFacts, HostFacts], RollbackCheck]


@dataclass(frozen=True)
class Judged:
    """What the transaction is judged against: the staged snapshot and what it touched."""

    txid: str
    before: HostFacts
    touched: Touched | None  # None: a snapshot without scope, everything is compared


async def judge_rollback(
    judged: Judged,
    state: HostTxState,
    look: Look,
    clock: Clock,
    *,
    outcome: Callable[[], Awaitable[ScriptOutcome]] | None = None,
    check: Compare | None = None,
) -> RollbackVerdict:
    """The verdict on a rolled-back transaction (``state``: decided, rollback finished).

    ``look`` reads the host's facts; while something differs and a daemon or libvirt is still
    settling, the host is looked at again every second, up to :data:`SETTLE_SECONDS`.
    ``outcome`` reads what the change's own scripts left; ``check`` replaces :func:`compare`
    (a change kind's own judgement; the unit tests' seam).
    """

    def judge(after: HostFacts) -> RollbackCheck:
        if check is not None:
            return check(judged.before, after)
        return compare(judged.before, after, judged.touched)

    after = await look()
    found = judge(after)
    give_up = clock.now() + SETTLE_SECONDS
    while found.problems and settling(judged.before, after, judged.touched):
        if clock.now() > give_up:
            break
        await clock.sleep(1)  # read-only: looking again is always safe
        after = await look()
        found = judge(after)
    return RollbackVerdict(
        decision=state.decision_text,
        problems=tuple(found.problems),
        notes=tuple(found.notes),
        failed_steps=state.failed_steps,
        kept=tuple(after.kept.get(judged.txid, ())),
        outcome=await outcome() if outcome is not None else ScriptOutcome(),
    )
