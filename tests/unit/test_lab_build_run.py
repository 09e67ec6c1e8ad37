"""A cache build script of the lab (the distro layers, the VM image) runs in a private mount
namespace with its output in a log; a failure or a timeout is one LabError naming what was
built and the log's last lines. Needs root (unshare -m), as the lab does."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbr.errors import LabError
from fleetbr.lab.system import run_build

pytestmark = pytest.mark.lab  # root, in an isolated namespace (tests/isolation.py)


def test_a_build_that_succeeds_leaves_its_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    run_build("echo built; mount -t tmpfs none /mnt\n", log, timeout=30, what="a layer")
    assert log.read_text() == "built\n"
    assert not any(" /mnt " in line for line in Path("/proc/mounts").read_text().splitlines()
                   if line.startswith("none "))  # fmt: skip


def test_a_failing_build_names_what_and_the_last_lines_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    script = "".join(f"echo line{i}\n" for i in range(12)) + "exit 3\n"
    with pytest.raises(LabError) as error:
        run_build(script, log, timeout=30, what="the lab's VM image")
    message = str(error.value)
    assert message.startswith(f"building the lab's VM image failed (log {log}): line4 | line5")
    assert message.endswith("line11") and "line3" not in message


def test_a_build_that_outlasts_its_timeout_fails(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="building a layer failed"):
        run_build("echo started; sleep 3\n", tmp_path / "build.log", timeout=0.5, what="a layer")
