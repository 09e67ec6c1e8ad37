"""Every ```python block of README.md and docs/*.md is checked (issue 15, defect 11): the programs
(README.md, docs/api.md) run against lab hosts in tests/integration/test_api_docs.py; the
signature listings (docs/lab.md, docs/facts.md) must name real functions with exactly their
parameters, in order."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_BY_THE_LAB_TEST = {"README.md", "docs/api.md"}
# the modules a signature listing documents, per block, in the doc's order
LISTINGS = {
    "docs/lab.md": [["fleetbr.lab"], ["fleetbr.lab.distro"]],
    "docs/facts.md": [["fleetbr.facts.script", "fleetbr.facts.parse"]],
}
_CALL = re.compile(r"^(\w+)\((.*?)\)\s*(?:->|$)", re.DOTALL | re.MULTILINE)
_PARAMETER = re.compile(r"(?:^|[(,])\s*(\w+)(?=\s*[:=,)])")


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", doc.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_every_python_block_is_checked_somewhere() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    with_blocks = {str(d.relative_to(REPO)) for d in docs if python_blocks(d)}
    assert with_blocks == RUN_BY_THE_LAB_TEST | set(LISTINGS)
    for doc, modules in LISTINGS.items():
        assert len(python_blocks(REPO / doc)) == len(modules), doc


def _documented(block: str) -> list[tuple[str, list[str]]]:
    """(function name, parameter names) of each signature line of a listing."""
    calls = []
    for name, arguments in _CALL.findall(block):
        text = re.sub(r"#.*", "", f"({arguments})")
        calls.append((name, _PARAMETER.findall(text)))
    return calls


@pytest.mark.parametrize(
    ("doc", "index"), [(doc, i) for doc, blocks in LISTINGS.items() for i in range(len(blocks))]
)
def test_signature_listings_match_the_code(doc: str, index: int) -> None:
    block = python_blocks(REPO / doc)[index]
    modules = [importlib.import_module(name) for name in LISTINGS[doc][index]]
    documented = _documented(block)
    assert documented, block
    for name, parameters in documented:
        [function] = [getattr(m, name) for m in modules if hasattr(m, name)] or [None]
        assert function is not None, f"{doc}: {name} is not in {LISTINGS[doc][index]}"
        assert parameters == list(inspect.signature(function).parameters), f"{doc}: {name}"
