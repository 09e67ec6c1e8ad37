"""``pytest --shard I/N``: run only every N-th collected test, starting at the I-th (1-based).

The fast tier (scripts/test --fast) runs the integration tests as N such shards, each one pytest
session with one shared lab: one lab build and one start-up per shard instead of one per test
file, and a long file's tests spread over every shard instead of making one job the longest.
Dealing round-robin in collection order gives each shard about 1/N of every file. The N shards of
one selection together run each selected test exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

import pytest

T = TypeVar("T")

OPTION = "--shard"
_SPEC = re.compile(r"([1-9][0-9]*)/([1-9][0-9]*)")


def parse(spec: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 1 <= I <= N; a usage error otherwise."""
    found = _SPEC.fullmatch(spec)
    if found is None or int(found[1]) > int(found[2]):
        raise pytest.UsageError(f"{OPTION} {spec}: expected I/N with 1 <= I <= N, e.g. 2/5")
    return int(found[1]), int(found[2])


def add_option(parser: pytest.Parser) -> None:
    """Register ``--shard``."""
    parser.addoption(
        OPTION,
        metavar="I/N",
        help="run only the I-th of N round-robin shards of the selected tests",
    )


def dealt(items: Sequence[T], index: int, count: int) -> tuple[list[T], list[T]]:
    """(kept, deselected): the items of shard ``index`` of ``count``, and all others."""
    kept = [item for n, item in enumerate(items) if n % count == index - 1]
    return kept, [item for n, item in enumerate(items) if n % count != index - 1]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only this shard's items, after every other selection (-k, -m)."""
    spec = config.getoption(OPTION)
    if spec is None:
        return
    kept, dropped = dealt(items, *parse(spec))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
