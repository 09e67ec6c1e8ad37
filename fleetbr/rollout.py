"""Rollout: apply the changes rendered for every host (fleetbr.core.assemble) in canary and
batches, with bounded concurrency and a failure threshold; resumable, and stoppable with Ctrl-C.

Ctrl-C during an apply: no host starts any more (hosts not started yet, and hosts that staged but
have not armed, are reported ``skipped``), every armed host finishes its transaction (confirm or
rollback), then every host is reported. A second Ctrl-C exits at once: hosts armed then are
confirmed by nobody and roll back by themselves when their timers fire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetbr.batchplan import plan_batches
from fleetbr.core.runner import LocalRunner, Runner
from fleetbr.counts import BatchSize, Share, hosts_of
from fleetbr.history.lease import holders_text
from fleetbr.history.store import HistoryError
from fleetbr.interrupt import Interruption, sigint_handled
from fleetbr.inventory import HostSpec
from fleetbr.observe import Observers, RunObserver, observed
from fleetbr.pacing import WindowPacer
from fleetbr.report import ROLLBACK_SUCCESS, AggregatedResult, HostResult, Status, hosts_text
from fleetbr.resume import Prior, resolve_host
from fleetbr.transaction.change import Change
from fleetbr.transaction.protocol import run_transaction
from fleetbr.transaction.recover import rollback_job

# Outcomes that count against --max-failures.
FAILURES = frozenset({Status.ROLLED_BACK, Status.FAILED, Status.UNREACHABLE})
# A canary passes only confirmed, or unchanged (it already carries the change, proven earlier);
# refused, failed, unreachable or rolled back canaries stop the rollout.
CANARY_PASSED = frozenset({Status.CONFIRMED, Status.UNCHANGED})
INTERRUPTED = "not attempted: interrupted (Ctrl-C)"
NOT_ARMED = "interrupted (Ctrl-C) before arming: staged only, nothing changed"


def not_attempted(interrupt: Interruption) -> str:
    """A host that did not start after ``interrupt`` (Ctrl-C: :data:`INTERRUPTED`; its
    :class:`~fleetbr.interrupt.Stop`: ``not started: REASON; THEN``)."""
    stop = interrupt.stop_not_pressed
    if stop is not None:
        return f"not started: {stop}"
    return f"not attempted: {interrupt.reason}"


def not_armed(interrupt: Interruption) -> str:
    """A host staged, not armed, after ``interrupt`` (Ctrl-C: :data:`NOT_ARMED`)."""
    stop = interrupt.stop_not_pressed
    if stop is not None:
        return f"not armed: {stop.reason}: staged only, nothing changed; {stop.then}"
    return f"{interrupt.reason} before arming: staged only, nothing changed"


class _NotArmed(Exception):
    """Raised from the arm hook after Ctrl-C: the transaction stops before its arm is sent."""


# -- the rollout ------------------------------------------------------------------------------


@dataclass
class _Run:
    """The state of one rollout while it runs."""

    changes: Mapping[str, Change]
    pacer: WindowPacer
    observer: RunObserver
    interrupt: Interruption
    results: dict[str, HostResult]
    notes: dict[str, str]  # host -> how a transaction left by an earlier run was resolved
    runner: Runner
    prior: Prior | None = None

    async def job(self, spec: HostSpec) -> HostResult:
        """One host's transaction, within the pacer's bound; stops before arming after Ctrl-C.
        A resume's host still held by the run it resumes is refused, nothing staged."""
        change = self.changes[spec.name]
        async with self.pacer.slot():
            if self.interrupt.requested:
                return HostResult(spec.name, Status.SKIPPED, not_attempted(self.interrupt))
            refused = await self.still_held(spec.name)
            if refused is not None:
                return refused
            self.observer.started(spec.name)
            began, armed_at = time.monotonic(), 0.0

            def on_armed(host: str) -> None:
                nonlocal armed_at
                if self.interrupt.requested:
                    raise _NotArmed
                armed_at = time.monotonic()
                self.pacer.armed(host, change.timeout)

            def on_staged(txid: str) -> None:
                self.observer.staged(spec.name, txid)

            try:
                result = await run_transaction(spec, change, on_armed=on_armed,
                                               on_staged=on_staged)  # fmt: skip
            except _NotArmed:
                return HostResult(spec.name, Status.SKIPPED, not_armed(self.interrupt))
            self.pacer.decided(spec.name, confirmed=result.status == Status.CONFIRMED)
            ended = time.monotonic()
            phases = {"prepare": (armed_at or ended) - began}  # connect, facts, plan, stage
            if armed_at:
                phases["window"] = ended - armed_at  # arm, apply, reconnect, confirm/rollback
            result.data["phases"] = {k: round(v, 3) for k, v in phases.items()}
            if spec.name in self.notes:
                result.data["resolved"] = self.notes[spec.name]
            return result

    async def still_held(self, host: str) -> HostResult | None:
        """A resume's check right before it resolves or stages ``host``: the result of a host
        the run it resumes still holds after the bounded wait (``refused``; ``skipped`` when
        the history cannot tell), its txid kept for the next resume; None when it is free."""
        prior = self.prior
        if prior is None or prior.held is None:
            return None
        kept = {"txid": prior.resolve[host]} if host in prior.resolve else {}
        try:
            still = await asyncio.to_thread(prior.held, [host])
        except HistoryError as exc:
            return HostResult(host, Status.SKIPPED, "not started: whether the run it resumes "
                              f"still works on it cannot be told ({exc})", kept)  # fmt: skip
        if not still:
            return None
        return HostResult(host, Status.REFUSED, "not started: the run it resumes still works on "
                          f"it ({holders_text(still)})", kept)  # fmt: skip

    def settle(self, result: HostResult) -> None:
        """A host's final result."""
        self.results[result.host] = result
        self.observer.finished(result)

    async def resolve(self, hosts: Sequence[HostSpec], prior: Prior, forks: int) -> None:
        """Resolve the transactions an earlier run left (confirmed meanwhile: done; armed:
        rolled back and verified, then applied again in its batch)."""
        todo = [spec for spec in hosts if spec.name in prior.resolve]

        async def one(spec: HostSpec) -> HostResult:
            txid = prior.resolve[spec.name]
            refused = await self.still_held(spec.name)
            if refused is not None:
                return refused
            self.observer.started(spec.name)
            self.observer.staged(spec.name, txid)
            resolution = await (prior.resolver or resolve_host)(spec, txid, prior.run_id)
            if resolution.final is not None:
                return resolution.final
            return HostResult(spec.name, Status.OK, resolution.note)

        for result in (await self.runner.run("resolve", todo, one, forks=forks)).values():
            if result.status == Status.OK:
                self.notes[result.host] = result.message
            else:
                self.settle(result)


async def rollout_changes(
    hosts: Sequence[HostSpec],
    changes: Mapping[str, Change],
    *,
    forks: int,
    canary: int = 0,
    batch_size: BatchSize | None = None,
    max_failures: int | Share | None = None,
    pacer: WindowPacer | None = None,
    observer: RunObserver | None = None,
    prior: Prior | None = None,
    interrupt: Interruption | None = None,
    runner: Runner | None = None,
) -> AggregatedResult:
    """Apply batch after batch; stop when the canary is not confirmed, failures exceed
    ``max_failures`` or Ctrl-C is pressed. Within a batch, a :class:`WindowPacer` bounds the
    hosts in flight. With ``prior`` (``--resume``), hosts it carries are reported, not touched;
    hosts it left armed are resolved first; a canary batch that passed is not repeated; with its
    ``held`` check, each host still held by the resumed run is refused, not touched.
    ``runner`` runs each batch's jobs (default: this process's event loop)."""
    runner = runner or LocalRunner()
    run = _Run(changes, pacer or runner.pacer(forks), observer or Observers(),
               interrupt or Interruption(), {}, {}, runner, prior)  # fmt: skip
    limit = hosts_of(max_failures, len(hosts))
    planned = plan_batches(hosts, canary, batch_size)
    stop_reason = ""
    lag_watch = asyncio.create_task(run.pacer.watch_lag())
    try:
        with sigint_handled(run.interrupt):
            if prior is not None:
                for result in prior.carried.values():
                    run.settle(result)
                await run.resolve(hosts, prior, forks)
            job = observed(run.job, run.observer, announce=False)
            for index, batch in enumerate(planned):
                todo = [spec for spec in batch if spec.name not in run.results]
                if run.interrupt.requested and not stop_reason:
                    stop_reason = not_attempted(run.interrupt)
                if stop_reason:
                    for spec in todo:
                        run.settle(HostResult(spec.name, Status.SKIPPED, stop_reason))
                    continue
                if todo:
                    run.observer.batch(index, len(planned), [spec.name for spec in todo])
                    done = await run.runner.run("apply", todo, job, forks=len(todo))
                    run.results.update(done.results)
                stop_reason = _stop_reason(
                    run.results, [run.results[spec.name] for spec in batch],
                    is_canary=canary > 0 and index == 0, max_failures=limit,
                )  # fmt: skip
    finally:
        lag_watch.cancel()
        if prior is not None:
            prior.close()
    aggregated = AggregatedResult("apply")
    for spec in hosts:
        aggregated.add(run.results[spec.name])
    return aggregated


def _stop_reason(
    results: Mapping[str, HostResult],
    batch: Sequence[HostResult],
    *,
    is_canary: bool,
    max_failures: int | None,
) -> str:
    if is_canary:
        failed = [r.host for r in batch if r.status not in CANARY_PASSED]
        if failed:
            return f"not attempted: canary {', '.join(failed)} did not end confirmed"
    failed_count = sum(1 for r in results.values() if r.status in FAILURES)
    if max_failures is not None and failed_count > max_failures:
        return (
            f"not attempted: {hosts_text(failed_count)} failed, more than --max-failures "
            f"{max_failures}"
        )
    return ""


async def rollback_hosts(
    hosts: Sequence[HostSpec],
    *,
    forks: int,
    observer: RunObserver | None = None,
    runner: Runner | None = None,
) -> AggregatedResult:
    """``fleetbr rollback`` on ``hosts``: here, rolled back is what was asked for (a success)."""
    job = observed(rollback_job, observer)
    done = await (runner or LocalRunner()).run("rollback", hosts, job, forks=forks)
    done.success = ROLLBACK_SUCCESS
    return done
