"""``--batch-size`` and ``--max-failures``: a number of hosts, ``N`` or ``P%`` of the selected
hosts (rounded up); ``--batch-size`` also takes a list of them, ``1,10%,50%`` (:class:`Serial`).
Kept apart from the rollout so the CLI parses them without importing it."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

_COUNT = re.compile(r"[0-9]+")
_PERCENT = re.compile(r"([0-9]+(?:\.[0-9]+)?)%")


@dataclass(frozen=True)
class Share:
    """A number of hosts: ``N``, or ``P%`` of the selected hosts (rounded up)."""

    text: str
    number: Decimal
    percent: bool

    def of(self, total: int) -> int:
        """The number of hosts out of ``total`` (exact decimal arithmetic: 10% of 30 is 3)."""
        if not self.percent:
            return int(self.number)
        return math.ceil(self.number * total / 100)


def parse_share(text: str, *, minimum: int) -> Share:
    """``N`` (at least ``minimum``) or ``P%`` (more than 0 when ``minimum`` is 1, at most 100);
    ValueError with the reason otherwise."""
    value = text.strip()
    if _COUNT.fullmatch(value):
        if int(value) < minimum:
            raise ValueError(f"{text!r} is less than {minimum}")
        return Share(value, Decimal(value), percent=False)
    found = _PERCENT.fullmatch(value)
    if found is None:
        raise ValueError(f"{text!r} is neither a whole number nor a percentage like 10%")
    number = Decimal(found.group(1))
    if number > 100 or (minimum > 0 and number == 0):
        low = "more than 0%" if minimum > 0 else "0%"
        raise ValueError(f"{text!r}: a percentage from {low} to 100%")
    return Share(value, number, percent=True)


@dataclass(frozen=True)
class Serial:
    """``--batch-size 1,10%,50%`` (Ansible's ``serial: [1, "10%", "50%"]``): the batches after
    the canary take these sizes in turn, the last one repeating until every host has its batch."""

    text: str
    sizes: tuple[Share, ...]

    def of(self, total: int) -> tuple[int, ...]:
        """Each size in hosts out of ``total`` (a percentage rounded up, at least 1)."""
        return tuple(max(1, size.of(total)) for size in self.sizes)

    @classmethod
    def counts(cls, numbers: Sequence[int]) -> Serial:
        """Sizes already in hosts (a resumed run's, as its history recorded them)."""
        shares = tuple(Share(str(n), Decimal(n), percent=False) for n in numbers)
        return cls(",".join(share.text for share in shares), shares)


def parse_batch_size(text: str) -> Share | Serial:
    """``N``, ``P%`` (a :class:`Share`) or a comma list of them (a :class:`Serial`); ValueError
    with the reason otherwise (0, a negative number, over 100%, an empty item, garbage)."""
    items = text.split(",")
    if len(items) == 1:
        return parse_share(text, minimum=1)
    sizes = []
    for number, item in enumerate(items, 1):
        if not item.strip():
            raise ValueError(f"{text!r}: size {number} of the list is empty")
        try:
            sizes.append(parse_share(item, minimum=1))
        except ValueError as exc:
            raise ValueError(f"{text!r}: size {number}: {exc}") from None
    return Serial(",".join(size.text for size in sizes), tuple(sizes))


def batch_size_arg(text: str) -> Share | Serial:
    """argparse type of ``--batch-size``: N >= 1 or P% (0 < P <= 100), or a comma list of them."""
    try:
        return parse_batch_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def max_failures_arg(text: str) -> Share:
    """argparse type of ``--max-failures``: N >= 0 or P% (0 <= P <= 100)."""
    try:
        return parse_share(text, minimum=0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def hosts_of(value: int | Share | None, total: int) -> int | None:
    """An option's number of hosts out of ``total`` (None stays None)."""
    return value.of(total) if isinstance(value, Share) else value


BatchSize = int | Share | Serial


def batch_sizes(value: BatchSize | None, total: int) -> tuple[int, ...]:
    """``--batch-size`` as the sizes of the batches after the canary, in hosts out of ``total``
    (the last one repeats; empty: one batch of every host left)."""
    if value is None:
        return ()
    if isinstance(value, Serial):
        return value.of(total)
    return (hosts_of(value, total) or 0,)
