"""Start-up cost: ``fleetbr facts`` and ``fleetbr run`` import only what they need
(docs/benchmarks.md).

The benchmarks hold ``fleetbr facts`` and ``fleetbr run -- true`` close to bare asyncssh
scripts; every module they import is paid by every run. The engine's assembler, the change
kinds, the transaction and planner stacks, the lab, the demos and rich (people's output;
``--json`` never needs it) belong to other commands (``run`` records its history; ``facts``
does not). A fresh interpreter runs the CLI's handler up to the point where it would connect
(a missing key: exit 2, nothing contacted), renders the facts script each host gets (which
reads the backend registry), and lists what got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Modules (and their sub-modules) `fleetbr --json facts` must not import.
NOT_FOR_FACTS = (
    "fleetbr.core.assemble",
    "fleetbr.core.kinds",
    "fleetbr.core.record",
    "fleetbr.changes",
    "fleetbr.rollout",
    "fleetbr.transaction",
    "fleetbr.plan",
    "fleetbr.history",
    "fleetbr.lab",
    "fleetbr.demo",
    "rich",
)
# A plain `fleetbr run` goes through the engine's assembler (recorded like every run), which
# imports the apply stack (rollout, transaction, resume) only for the commands that use it.
RUN_MAY_IMPORT = (
    "fleetbr.core.record",
    "fleetbr.history",
    "fleetbr.core.assemble",
    "fleetbr.core.kinds",
)
NOT_FOR_RUN = tuple(m for m in NOT_FOR_FACTS if m not in RUN_MAY_IMPORT)

CHILD = """
import sys
from fleetbr.cli import main
from fleetbr.facts.script import facts_script

code = main(["-i", sys.argv[1], "--key", sys.argv[2], "--json", *sys.argv[3:]])
facts_script()
print(code)
print("\\n".join(sorted(sys.modules)))
"""


def imported_by(tmp_path: Path, *command: str) -> tuple[int, set[str]]:
    """Exit code of ``command``'s handler (stopped before connecting) and every module
    imported."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yaml").write_text("hv1:\n  hostname: 198.51.100.10\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(inventory), str(tmp_path / "no-such-key"), *command],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    code, *modules = done.stdout.splitlines()
    return int(code), set(modules)


def matching(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``prefixes``, inside one, or a ``_`` sibling of one
    (``fleetbr.demo_distro`` for ``fleetbr.demo``)."""
    heads = tuple(p + sep for p in prefixes for sep in (".", "_"))
    return sorted(m for m in modules if m in prefixes or m.startswith(heads))


def test_facts_imports_no_engine_transaction_lab_or_rich(tmp_path: Path) -> None:
    code, modules = imported_by(tmp_path, "facts")
    assert code == 2  # the missing key stops it before any host is contacted
    assert {"fleetbr.facts.gather", "fleetbr.runner", "fleetbr.backends.registry"} <= modules
    assert matching(modules, NOT_FOR_FACTS) == []


def test_a_plain_run_imports_no_command_kind_transaction_lab_or_rich(
    tmp_path: Path,
) -> None:
    code, modules = imported_by(tmp_path, "run", "--", "true")
    assert code == 2
    assert {"fleetbr.adhoc.main", "fleetbr.cli_request", "fleetbr.history.record"} <= modules
    assert matching(modules, NOT_FOR_RUN) == []


HISTORY_CHILD = """
import sys
from fleetbr.cli import main

code = main(["-i", sys.argv[1], "--history", sys.argv[2], "--json", "history"])
print(code, file=sys.stderr)
print("\\n".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_history_imports_no_inventory_ssh_or_template_library(tmp_path: Path) -> None:
    # `history` reads the run history only: nornir and ruamel.yaml (the inventory's), asyncssh
    # and jinja2 are paid by the commands that load an inventory, connect or render.
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yaml").write_text("hv1:\n  hostname: 198.51.100.10\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", HISTORY_CHILD, str(inventory), str(tmp_path / "h.sqlite3")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    code, *modules = done.stderr.splitlines()
    assert code == "0"
    assert json.loads(done.stdout) == {"runs": []}
    assert "fleetbr.cli_history" in modules
    assert matching(set(modules), ("nornir", "ruamel", "asyncssh", "jinja2")) == []


def test_matching_takes_sub_modules_and_siblings_not_longer_names() -> None:
    found = {"fleetbr.transaction.protocol", "fleetbr.demo_distro", "rich", "richer", "fleetbr"}
    assert matching(found, ("fleetbr.transaction", "fleetbr.demo", "rich")) == [
        "fleetbr.demo_distro",
        "fleetbr.transaction.protocol",
        "rich",
    ]
