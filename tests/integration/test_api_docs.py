"""Every ```python example of docs/api.md and of README.md runs as written, in order, against lab
hosts: from a directory holding ``inventory/`` (three lab hosts, also in group ``rack-a``) and
``tasks/``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fleetbr.lab import Lab
from tests.integration.helpers import REPO, derived_inventory, enslaved

DOC = REPO / "docs" / "api.md"
README = REPO / "README.md"
HOSTS = ("hv14", "hv15", "hv16")


def examples(doc: Path = DOC) -> list[str]:
    """The doc's python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", doc.read_text(), flags=re.DOTALL | re.MULTILINE)


def workdir(lab: Lab, root: Path) -> Path:
    """``inventory/`` with HOSTS (groups lab and rack-a) and a copy of ``tasks/``."""

    def edit(hosts: dict[str, Any], defaults: dict[str, Any]) -> None:
        for name in list(hosts):
            if name in HOSTS:
                hosts[name]["groups"] = ["lab", "rack-a"]
            else:
                del hosts[name]

    inventory = derived_inventory(lab, root / "inventory", edit)
    groups = yaml.safe_load((inventory / "groups.yaml").read_text())
    groups["rack-a"] = {}
    (inventory / "groups.yaml").write_text(yaml.safe_dump(groups))
    shutil.copytree(REPO / "tasks", root / "tasks")
    return root


def test_the_doc_has_examples_of_every_face() -> None:
    code = "\n".join(examples())
    for name in ("load_inventory", "fleetbr.facts(", "fleetbr.plan(", "fleetbr.apply(",
                 "fleetbr.status(", "fleetbr.rollback(", "host_facts(", "host_plan(",
                 "status_async(", "InitNornir(", "fleetbr_facts", "fleetbr_apply",
                 "dry_run=True", "close_connections(on_failed=True)"):  # fmt: skip
        assert name in code, name


def test_every_python_example_runs_against_the_lab(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    for name in HOSTS:
        fresh_host(name)
    cwd = workdir(lab, tmp_path)
    outputs = []
    for number, code in enumerate(examples(), 1):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"example {number} failed:\n{code}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        outputs.append(done.stdout)
    text = "\n".join(outputs)
    for name in HOSTS:
        assert f"{name} confirmed confirmed " in text  # the api apply example
        assert f"{name} unchanged already matches the task" in text  # nornir's apply after it
        assert enslaved(lab, name)
        assert f"{name} ['{lab.host(name).nic}" in text  # the custom task over the plugin
    assert text.count("error: ") == 2  # the two errors of the errors example


def test_the_readme_python_example_runs_against_the_lab(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    """Before: its `"options": {...}` raised TypeError as written (issue 15, defect 11)."""
    for name in HOSTS:
        fresh_host(name)
    [code] = examples(README)
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir(lab, tmp_path),
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    counts, nornir = done.stdout.splitlines()
    assert counts == "{'confirmed': 3}"
    assert nornir.startswith("False {") and nornir.count("unchanged") == len(HOSTS), nornir
    assert all(enslaved(lab, name) for name in HOSTS)
