"""Suite-wide: every fleetbr run the tests start (in-process or a subprocess) records its run
history in a temporary file, never in the user's state directory; and tests that need a network
lab (marked ``lab``, and everything under tests/integration) are skipped where no lab can be
built, or fail the run when isolation was promised (tests/isolation.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests import shard
from tests.isolation import EXPECT_ENV, isolation_expected, isolation_problem
from tests.pgserver import (  # noqa: F401 (fixtures: a throw-away PostgreSQL)
    own_pg_server,
    pg_server,
    pg_url,
)
from tests.redisserver import redis_server  # noqa: F401 (fixture: a throw-away redis-server)

_HISTORY_DIR = tempfile.mkdtemp(prefix="fleetbr-test-history-")
_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--shard I/N`` (tests/shard.py)."""
    shard.add_option(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Point the history (and the XDG state directory) at a temporary directory; ``--shard``."""
    config.pluginmanager.register(shard, "fleetbr-shard")
    os.environ["FLEETBR_HISTORY"] = str(Path(_HISTORY_DIR) / "history.sqlite3")
    os.environ["XDG_STATE_HOME"] = str(Path(_HISTORY_DIR) / "state")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab tests where no lab can be built: skipped, or (under scripts/in-netns) a usage error
    naming the reason, so a run that promised them never passes without them."""
    integration = [i for i in items if _INTEGRATION in Path(str(i.path)).parents]
    netns = [i for i in items if i.get_closest_marker("lab") and i not in integration]
    for group, problem in (
        (integration, isolation_problem(sshd=True) if integration else None),
        (netns, isolation_problem() if netns else None),
    ):
        if problem is None:
            continue
        if isolation_expected():
            raise pytest.UsageError(
                f"{len(group)} lab tests cannot run: {problem} ({EXPECT_ENV}=1: scripts/in-netns "
                "promised an isolated namespace, so they fail instead of skipping)"
            )
        marker = pytest.mark.skip(reason=f"{problem}: scripts/in-netns .venv/bin/pytest ...")
        for item in group:
            item.add_marker(marker)
