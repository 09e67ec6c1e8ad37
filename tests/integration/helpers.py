"""Shared helpers for integration tests: inventories derived from the lab's, CLI runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fleetbr.inventory import HostSpec, load_inventory
from fleetbr.lab import Lab


def derived_inventory(
    lab: Lab, dest: Path, edit: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
) -> Path:
    """Copy the lab's inventory to ``dest``; ``edit(hosts, defaults)`` may change it in place."""
    shutil.copytree(lab.inventory_dir, dest)
    hosts = yaml.safe_load((dest / "hosts.yaml").read_text())
    defaults = yaml.safe_load((dest / "defaults.yaml").read_text())
    if edit is not None:
        edit(hosts, defaults)
    (dest / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    (dest / "defaults.yaml").write_text(yaml.safe_dump(defaults))
    return dest


def specs(inventory: Path) -> dict[str, HostSpec]:
    """The hosts of an inventory directory."""
    return load_inventory(inventory)


def fleetbr(*args: str, timeout: float = 300) -> tuple[int, Any, str]:
    """Run the real CLI in a subprocess with --json; returns (exit code, parsed stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleetbr", "--json", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        document = done.stdout
    return done.returncode, document, done.stderr
