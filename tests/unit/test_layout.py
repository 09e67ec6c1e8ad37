"""Product, lab and demos apart (docs/lab.md, "Product, lab and demos"): no product module imports
the lab side (fleetbr/lab/, with the demos in fleetbr/lab/demos/), except through the one door
the CLI has for ``fleetbr lab`` and ``fleetbr demo``. Read from each module's AST, so an import
inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fleetbr"
LAB = "fleetbr.lab"
# The one registration point: (module, function) allowed to import the lab side, lazily.
DOOR = ("fleetbr.cli", "_lab_command")


def module_name(path: Path) -> str:
    """``fleetbr/plan/diff.py`` -> ``fleetbr.plan.diff``; a package's ``__init__``: the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> list[Path]:
    """Every module of the package that is not on the lab side."""
    lab = PACKAGE / "lab"
    return sorted(p for p in PACKAGE.rglob("*.py") if lab not in p.parents)


def imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The full names an import statement reaches (``from fleetbr import lab`` -> fleetbr.lab)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def lab_imports(source: str, module: str, is_package: bool = False) -> Iterator[tuple[str, str]]:
    """(enclosing function or ``<module>``, imported name) for every import of the lab side."""

    def walk(node: ast.AST, where: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in imported(child, module, is_package):
                    if name == LAB or name.startswith(LAB + "."):
                        yield where, name
            yield from walk(child, inner)

    yield from walk(ast.parse(source), "<module>")


def test_no_product_module_imports_the_lab_or_the_demos() -> None:
    found, doors = [], []
    for path in product_modules():
        module = module_name(path)
        for where, name in lab_imports(path.read_text(), module, path.name == "__init__.py"):
            if (module, where) == DOOR:
                doors.append(name)
            else:
                found.append(f"{path.relative_to(PACKAGE.parent)}: {where} imports {name}")
    assert not found, "the product imports the lab side:\n" + "\n".join(found)
    assert doors == ["fleetbr.lab.cli", "fleetbr.lab.cli.HANDLERS"], "the CLI's one door moved"


def test_the_walk_sees_every_form_of_a_lab_import() -> None:
    source = (
        "import fleetbr.lab.build\n"
        "from fleetbr import lab\n"
        "def f():\n"
        "    from fleetbr.lab.demos.netns import run_demo\n"
        "    from .lab import up\n"
        "from fleetbr import labels, rollout\n"
        "import fleetbr.labx\n"
    )
    assert list(lab_imports(source, "fleetbr.cli")) == [
        ("<module>", "fleetbr.lab.build"),
        ("<module>", "fleetbr.lab"),
        ("f", "fleetbr.lab.demos.netns"),
        ("f", "fleetbr.lab.demos.netns.run_demo"),
        ("f", "fleetbr.lab"),
        ("f", "fleetbr.lab.up"),
    ]
    assert list(lab_imports("from . import lab\n", "fleetbr", is_package=True)) == [
        ("<module>", "fleetbr.lab")
    ]


def test_the_walk_covers_the_product_and_leaves_out_only_the_lab_side() -> None:
    names = {module_name(p) for p in product_modules()}
    assert {"fleetbr", "fleetbr.cli", "fleetbr.transaction.protocol", "fleetbr.render"} <= names
    assert not any(n == LAB or n.startswith(LAB + ".") for n in names)
    assert not (PACKAGE / "demo.py").exists() and not list(PACKAGE.glob("demo_*.py"))


def test_every_folder_of_modules_is_a_package() -> None:
    """A folder without ``__init__.py`` imports as a namespace package but is left out of the
    wheel (setuptools' find): the lab side would vanish from an installed fleetbr."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(
        str(f.relative_to(PACKAGE.parent)) for f in folders if not (f / "__init__.py").exists()
    )
    assert not missing, missing
