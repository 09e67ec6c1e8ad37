"""``pytest --shard I/N`` (tests/shard.py), which the fast tier's jobs are made of: the N shards
of a selection run each of its tests exactly once, after -k has selected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import shard

REPO = Path(__file__).resolve().parents[2]
SMALL_FILE = "tests/unit/test_errors.py"  # any file of several quick tests


def collected(*args: str) -> list[str]:
    """The node ids ``pytest --collect-only`` selects with ``args`` on SMALL_FILE."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         SMALL_FILE, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode in (0, pytest.ExitCode.NO_TESTS_COLLECTED), done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith(SMALL_FILE + "::")]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_shards_partition_the_items_round_robin(count: int) -> None:
    items = list(range(10))
    shards = [shard.dealt(items, index, count) for index in range(1, count + 1)]
    kept = [sorted(keep) for keep, _ in shards]
    assert sorted(n for keep in kept for n in keep) == items
    assert all(sorted(keep + drop) == items for keep, drop in shards)
    assert kept[0] == items[::count]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2"])
def test_a_bad_shard_is_a_usage_error(spec: str) -> None:
    with pytest.raises(pytest.UsageError, match="expected I/N"):
        shard.parse(spec)


def test_shards_of_a_real_run_cover_the_k_selection_once() -> None:
    whole = collected("-k", "not planner")
    assert len(whole) == 6, whole  # -k deselected one of the seven
    parts = [collected("-k", "not planner", "--shard", f"{i}/3") for i in (1, 2, 3)]
    assert all(parts), parts
    assert sorted(node for part in parts for node in part) == sorted(whole)
    assert parts[0] == whole[0::3]
