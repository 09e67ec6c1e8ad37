"""The four persistence backends write the same files and run the same host shell as before they
moved behind the Backend interface: byte for byte against goldens captured from the old code
(tests/unit/backend_golden.py says how they were made); and the uplink topologies each backend
writes (topology x backend)."""

from __future__ import annotations

import pytest

from tests.unit.backend_golden import (
    CASES,
    GOLDEN_DIR,
    TOPOLOGY_CASES,
    render_case,
    render_facts_script,
)


@pytest.mark.parametrize("case", CASES + TOPOLOGY_CASES)
def test_plan_files_steps_and_scripts_are_byte_identical(case: str) -> None:
    want = (GOLDEN_DIR / f"{case}.txt").read_text(encoding="utf-8")
    assert render_case(case) == want


def test_the_facts_script_is_byte_identical() -> None:
    assert render_facts_script() == (GOLDEN_DIR / "facts-script.txt").read_text(encoding="utf-8")
