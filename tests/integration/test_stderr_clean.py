"""Issue 15: the stderr of every command that connects holds only fleetbr's own lines.

Before: with cryptography 51, asyncssh 2.24 printed ten ``CryptographyDeprecationWarning`` lines
at import, so every command an operator ran started with them (and 23 tests failed on a fresh
machine). This runs the real CLI against real lab hosts with whatever versions are installed:
from the lock in ``scripts/test``, the newest allowed ones in ``scripts/test --latest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetbr.lab import Lab, reset_host
from tests.integration.helpers import task_file

HOST = "hv07"


def _cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "COLUMNS")}
    return subprocess.run(
        [sys.executable, "-m", "fleetbr", "-i", str(lab.inventory_dir), "-l", HOST, *args],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


def test_facts_apply_check_and_run_print_nothing_on_stderr(
    lab: Lab, fresh_host: Any, tmp_path: Path
) -> None:
    fresh_host(HOST)
    task = task_file(tmp_path)
    try:
        for args in (("facts",), ("apply", str(task)), ("check", str(task)), ("run", "--", "true")):
            done = _cli(lab, *args)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            assert done.stderr == "", (args, done.stderr)
    finally:
        reset_host(lab, HOST)
