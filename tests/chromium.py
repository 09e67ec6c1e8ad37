"""Debian's chromium, headless, for the tests of the HTML report: the DOM after the page's
scripts ran (``--dump-dom``) and a screenshot. Nothing is downloaded: the browser is the
``chromium`` package (scripts/setup installs it). Without it the test fails under
scripts/in-netns and is skipped elsewhere (tests/isolation.py)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.isolation import unavailable

TIMEOUT = 60.0  # seconds; a report opens in about one


def chromium() -> str:
    """The chromium binary (fails or skips the test when there is none)."""
    found = shutil.which("chromium")
    if found is None:
        unavailable("the HTML report's browser tests need Debian's chromium: run scripts/setup")
    return found


def _run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="fleetbr-chromium-") as profile:
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}",
                   *args, url]  # fmt: skip
        env = {"HOME": profile, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dump_dom(url: str) -> str:
    """The DOM of ``url`` once its scripts ran, as HTML."""
    return _run(url, "--dump-dom").stdout


def screenshot(url: str, out: Path, size: str = "1200,900") -> Path:
    """A PNG of ``url`` at ``size`` pixels."""
    _run(url, f"--screenshot={out}", f"--window-size={size}", "--hide-scrollbars")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{out} is not a PNG"
    return out
