"""Every facts fixture parses to the same HostFacts as before the daemons' views moved into the
backends' folders (goldens captured from the old parser: tests/unit/facts_golden.py)."""

from __future__ import annotations

import pytest

from tests.unit.facts_golden import CASES, GOLDEN_DIR, parsed


def test_every_fixture_has_a_golden() -> None:
    assert CASES
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == list(CASES)


@pytest.mark.parametrize("case", CASES)
def test_fixture_parses_as_before(case: str) -> None:
    assert parsed(case) == (GOLDEN_DIR / f"{case}.json").read_text(encoding="utf-8")
