"""The rollout's plan: a canary batch, then batches whose sizes come from ``--batch-size`` (one
size, or sizes in turn with the last one repeating). Pure: the rollout (:mod:`fleetbr.rollout`)
runs it, ``--list-hosts`` (:mod:`fleetbr.listhosts`) prints it, nothing is contacted here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fleetbr.counts import BatchSize, batch_sizes
from fleetbr.errors import UsageError

T = TypeVar("T")


def batches(items: Sequence[T], canary: int, size: int | Sequence[int] | None) -> list[list[T]]:
    """Split ``items`` into a canary batch (if any) followed by batches of ``size``: one size,
    or sizes in turn, the last repeating (None, empty or 0: every item left in one batch)."""
    if canary < 0:
        raise UsageError("--canary must be 0 or more")
    groups: list[list[T]] = []
    rest = list(items)
    if canary:
        groups.append(rest[:canary])
        rest = rest[canary:]
    sizes = [size] if isinstance(size, int) else list(size or ())
    start = 0
    while start < len(rest):
        step = sizes[min(len(groups) - bool(canary), len(sizes) - 1)] if sizes else 0
        step = step or len(rest)
        groups.append(rest[start : start + step])
        start += step
    return groups


def plan_batches(items: Sequence[T], canary: int, batch_size: BatchSize | None) -> list[list[T]]:
    """:func:`batches` with ``--batch-size`` as given: percentages of every selected item
    (the canary's too), rounded up."""
    return batches(items, canary, batch_sizes(batch_size, len(items)))
