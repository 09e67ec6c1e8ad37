"""Suite-wide: every fleetbr run the tests start (in-process or a subprocess) records its run
history in a temporary file, never in the user's state directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HISTORY_DIR = tempfile.mkdtemp(prefix="fleetbr-test-history-")


def pytest_configure(config: pytest.Config) -> None:
    """Point the history (and the XDG state directory) at a temporary directory."""
    os.environ["FLEETBR_HISTORY"] = str(Path(_HISTORY_DIR) / "history.sqlite3")
    os.environ["XDG_STATE_HOME"] = str(Path(_HISTORY_DIR) / "state")
