"""Golden parse of every facts fixture (tests/data/facts/*.txt): the HostFacts the parser made of
it, as canonical JSON in tests/data/facts_parsed/. Captured from the parser before the daemons'
views moved into the backends' folders; the new parser must give equal results. Regenerate only
for a change meant to alter what is parsed: ``python -m tests.unit.facts_golden``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fleetbr.errors import FactsError
from fleetbr.facts.parse import parse_facts

DATA = Path(__file__).resolve().parent.parent / "data"
FIXTURES = DATA / "facts"
GOLDEN_DIR = DATA / "facts_parsed"
CASES = tuple(sorted(p.stem for p in FIXTURES.glob("*.txt")))


def canonical(value: Any) -> Any:
    """``value`` as JSON data: dataclasses as dicts named by their class, sets sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__class__": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def parsed(case: str) -> str:
    """The canonical JSON of parsing fixture ``case`` (or the parser's error)."""
    text = (FIXTURES / f"{case}.txt").read_text(encoding="utf-8", errors="surrogateescape")
    try:
        doc: Any = canonical(parse_facts(text))
    except FactsError as exc:
        doc = {"FactsError": str(exc)}
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main() -> None:
    """Write every golden."""
    for case in CASES:
        (GOLDEN_DIR / f"{case}.json").write_text(parsed(case), encoding="utf-8")


if __name__ == "__main__":
    main()
