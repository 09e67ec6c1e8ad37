"""``--batch-size`` and ``--max-failures``: a number of hosts, ``N`` or ``P%`` of the selected
hosts (rounded up). Kept apart from the rollout so the CLI parses them without importing it."""

from __future__ import annotations

import argparse
import math
import re
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


def batch_size_arg(text: str) -> Share:
    """argparse type of ``--batch-size``: N >= 1 or P% (0 < P <= 100)."""
    try:
        return parse_share(text, minimum=1)
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
