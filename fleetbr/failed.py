"""``-l @failed:RUN`` and ``-l @failed:last``: retry what failed (Ansible's retry files, read from
the run history instead of a file).

The term selects the hosts of run RUN that did not end in a success of that run's command
(:func:`fleetbr.report.success_of`): for an apply (and ``run --deadman``) every host that did not
end confirmed or unchanged (rolled back, failed, refused, unreachable, skipped, never started or
never finished); for a ``check``, the drifted hosts and those that could not be checked; for a
``run``, hosts whose command failed or timed out. ``last`` is the newest recorded run that had
hosts, whatever its command. Each term is resolved here, once, before the selection
(:mod:`fleetbr.selection` combines it with the other terms) and before any host is contacted:
every problem is a UsageError (exit 2).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from fleetbr.adhoc.text import fold_hosts
from fleetbr.errors import UsageError
from fleetbr.history.location import HistoryLocation, open_store
from fleetbr.history.record import controller_alive
from fleetbr.history.store import (
    STARTED,
    HistoryError,
    HistoryStore,
    HostRow,
    NoHistoryYet,
    RunRecord,
    RunState,
)
from fleetbr.report import success_of
from fleetbr.selection import NAMED_MARK
from fleetbr.validate import show

PREFIX = NAMED_MARK + "failed:"
LAST = "last"


def named_terms(limit: str) -> list[str]:
    """The ``@`` terms of ``limit``, without their ``!`` or ``&`` (in order, each once)."""
    terms = (term.strip().lstrip("!&").strip() for term in limit.split(","))
    return list(dict.fromkeys(term for term in terms if term.startswith(NAMED_MARK)))


def run_ref(term: str) -> int | None:
    """The run a ``@failed:`` term names (None: ``last``); UsageError for any other ``@`` term."""
    if term.startswith(PREFIX):
        ref = term[len(PREFIX) :]
        if ref == LAST:
            return None
        if ref.isdigit() and ref.isascii() and int(ref) > 0:
            return int(ref)
    raise UsageError(
        f"--limit: {show(term)} is not a run's failed hosts: use @failed:RUN (a run number, see "
        "`fleetbr history`) or @failed:last"
    )


def failed_hosts(run: RunRecord, rows: Sequence[HostRow]) -> list[str]:
    """The hosts of ``run`` whose final status is not a success of its command, in its order (a
    host with no row, or whose result never arrived, did not succeed either)."""
    success = success_of(run.command)
    status = {row.host: row.status for row in rows}
    return [host for host in run.hosts if status.get(host, STARTED) not in success]


def failed_sets(
    limit: str,
    history: HistoryLocation | None,
    *,
    known: Collection[str],
    before: int | None = None,
) -> dict[str, frozenset[str]]:
    """The hosts of each ``@failed:`` term of ``limit``, read from ``history``; every host must
    still be in the inventory (``known``). ``before``: ``last`` looks only at older runs (a
    resumed run's selection means what it meant when that run started)."""
    terms = named_terms(limit)
    refs = {term: run_ref(term) for term in terms}  # a bad term first, with or without history
    if not terms:
        return {}
    if history is None:
        raise UsageError(f"--limit: {show(terms[0])} reads the run history: not with --no-history")
    try:
        store = open_store(history, create=False)
        try:
            return {term: _failed(store, term, ref, known, before) for term, ref in refs.items()}
        finally:
            store.close()
    except NoHistoryYet:
        raise UsageError(f"--limit: {show(terms[0])}: no run history at {history}") from None
    except (HistoryError, sqlite3.Error) as exc:
        raise UsageError(f"--limit: {exc}") from None


def _failed(
    store: HistoryStore, term: str, ref: int | None, known: Collection[str], before: int | None
) -> frozenset[str]:
    run = _run(store, term, ref, before)
    if run.state is RunState.RUNNING and controller_alive(run.controller):
        raise UsageError(f"--limit: {show(term)}: run {run.id} is still running; wait for it")
    hosts = failed_hosts(run, store.hosts_of(run.id))
    if not hosts:
        raise UsageError(
            f"--limit: {show(term)}: every host of run {run.id} ({run.command}) succeeded; "
            "nothing to retry"
        )
    gone = [host for host in hosts if host not in known]
    if gone:
        raise UsageError(
            f"--limit: {show(term)}: run {run.id}'s failed hosts {fold_hosts(gone)} are not in "
            "the inventory any more; name the hosts to retry instead"
        )
    return frozenset(hosts)


def _run(store: HistoryStore, term: str, ref: int | None, before: int | None) -> RunRecord:
    if ref is not None:
        try:
            return store.run(ref)
        except HistoryError:
            raise UsageError(f"--limit: {show(term)}: no run {ref} in {store.location}") from None
    newest = store.latest_run_id() or 0
    for run_id in range(min(newest, before - 1 if before else newest), 0, -1):
        try:
            run = store.run(run_id)
        except HistoryError:  # a number never used
            continue
        if run.hosts:
            return run
    raise UsageError(f"--limit: {show(term)}: no run with hosts in {store.location}")
