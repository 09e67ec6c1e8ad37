"""Every third-party package fleetbr imports is declared in pyproject.toml (none by accident)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _top_level_imports() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "fleetbr").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"fleetbr", "__future__"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_a_declared_dependency() -> None:
    """Before: fleetbr/inventory.py imported ruamel, which only came in through nornir."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # the runtime dependencies and the extras fleetbr offers (postgresql), not the dev tools
    offered = [dep for name, deps in project["optional-dependencies"].items() if name != "dev"
               for dep in deps]  # fmt: skip
    declared = {
        _canonical(re.split(r"[<>=!~\[; ]", dep)[0]) for dep in [*project["dependencies"], *offered]
    }
    providers = packages_distributions()
    missing = {
        module: providers.get(module, ["?"])
        for module in _top_level_imports()
        if not {_canonical(d) for d in providers.get(module, [])} & declared
    }
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
