"""Lab tests never pass silently where no lab can be built: under scripts/in-netns (which
promises isolation) they fail the run; elsewhere they are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation import EXPECT_ENV

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.lab]  # root, and unshare: runs where the other lab tests run
ONE_NETNS_TEST = "tests/unit/test_steps_netns.py::test_rollback_twice_is_idempotent"


def pytest_beside_an_uplink(
    tmp_path: Path, *, expect: bool, test: str = "tests/unit/test_steps_netns.py"
) -> subprocess.CompletedProcess[str]:
    """pytest on ``test``, in a fresh namespace with one more link than lo (as in a machine's
    own namespace)."""
    env = {k: v for k, v in os.environ.items() if k != EXPECT_ENV}
    if expect:
        env[EXPECT_ENV] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
            "--basetemp", str(tmp_path / "t"), test]  # fmt: skip
    uplink = 'ip link add fbrup0 type veth peer name fbrup1 && exec "$@"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", uplink, "sh", *argv],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_lab_tests_fail_when_isolation_was_promised_but_is_not_there(tmp_path: Path) -> None:
    done = pytest_beside_an_uplink(tmp_path, expect=True, test=ONE_NETNS_TEST)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "not in an isolated network namespace (found fbrup" in done.stderr
    assert "skipped" not in done.stdout


def test_lab_tests_are_skipped_with_the_reason_otherwise(tmp_path: Path) -> None:
    done = pytest_beside_an_uplink(tmp_path, expect=False, test=ONE_NETNS_TEST)
    assert done.returncode == pytest.ExitCode.OK, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "not in an isolated network namespace (found fbrup" in done.stdout


def test_a_missing_distro_rootfs_fails_saying_what_to_run(tmp_path: Path) -> None:
    """In the isolated namespace no mirror is reachable: the distro tier must not try to build
    its rootfs there (an opaque apt error after retries) but fail at once, naming the fix."""
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, EXPECT_ENV: "1", "FLEETBR_CACHE": str(cache)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "t"),
            "tests/integration/distro/test_distro_lab.py"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    if shutil.which("systemd-nspawn") is None:
        assert "the distro lab needs systemd-nspawn: run scripts/setup" in done.stdout
    else:
        assert "the distro lab's cache is not built" in done.stdout
        assert "run scripts/setup (or scripts/distro-rootfs)" in done.stdout
    assert "skipped" not in done.stdout
    assert list(cache.iterdir()) == []  # no build was attempted


def test_a_parametrize_over_nothing_fails_at_collection(tmp_path: Path) -> None:
    """pyproject's empty_parameter_set_mark: a parameter list that came out empty (a plan with
    no steps, a glob that matched nothing) is a broken test, not a skip."""
    test = tmp_path / "test_empty.py"
    test.write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('k', [])\n"
        "def test_k(k: int) -> None:\n"
        "    pass\n"
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(test)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == pytest.ExitCode.INTERRUPTED, done.stdout + done.stderr
    assert "Empty parameter set in 'test_k'" in done.stdout


def test_a_test_run_shows_no_dependency_import_warnings(tmp_path: Path) -> None:
    """tests/conftest.py must not import fleetbr (it does so lazily): fleetbr filters asyncssh's
    import-time deprecation warnings, and a filter set while conftest loads is reset before the
    test modules import asyncssh, so every run printed them."""
    test = "tests/unit/test_resolver.py::test_min_timeout_leaves_room_to_reconnect_twice_probe_"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "t"), test + "and_disarm"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout
