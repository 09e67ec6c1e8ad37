"""The rendered file_write / file_restore steps (templates/steps.sh.j2), run for real with sh on
files in a temp dir: owner, group and mode kept, symlinks written through, and the temporary
file never readable by others, not even before its content is written (issue 20, item 2; issue
14, item 8).

"Before its content": the step runs with ``ulimit -f 0``, so the first byte of content written
kills the shell (SIGXFSZ) and leaves the temporary file exactly as it was before any content:
its mode then is what anyone could have read it with. Deterministic, no timing, no inotify.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fleetbr.plan import step_command
from fleetbr.plan import steps as mk
from fleetbr.plan.model import Step

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")

GROUP = 4242  # a group nobody else uses: kept only if the step copies it
OLD = "# old\niface eth0 inet static\n    wpa-psk 0123456789abcdef\n"
NEW = "# new\nauto br0\niface br0 inet static\n"


def run(
    step: Step, *, limit_size: bool = False, kept: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the step's command with sh under umask 022 (``limit_size``: ulimit -f 0; ``kept``:
    the FLEETBR_KEPT_DIR a transaction script sets)."""
    prefix = "umask 022; " + ("ulimit -f 0; " if limit_size else "")
    env = {**os.environ, "FLEETBR_KEPT_DIR": str(kept)} if kept else None
    return subprocess.run(
        ["sh", "-c", prefix + step_command(step)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def existing(tmp_path: Path, perm: int, gid: int = 0) -> tuple[Path, Path]:
    """An existing config file with ``perm`` and group ``gid``, backed up as the stage does."""
    conf, backups = tmp_path / "etc" / "interfaces", tmp_path / "backups"
    conf.parent.mkdir()
    backups.mkdir()
    conf.write_text(OLD)
    os.chown(conf, 0, gid)
    conf.chmod(perm)
    backup = backups / str(conf).replace("/", "%")
    subprocess.run(["cp", "-p", "--preserve=all", "--", conf, backup], check=True)
    return conf, backups


def write(conf: Path, backups: Path, *, existed: bool = True, **kw: str | bool) -> Step:
    return mk.file_write(str(conf), NEW, existed=existed, backup_dir=str(backups), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("perm", "gid"), [(0o600, 0), (0o640, GROUP)])
def test_temp_file_has_the_old_files_owner_and_mode_before_any_content(
    tmp_path: Path, perm: int, gid: int
) -> None:
    conf, backups = existing(tmp_path, perm, gid)
    got = run(write(conf, backups), limit_size=True)
    assert got.returncode != 0  # killed at the first byte of content
    temp = conf.with_name("interfaces.fleetbr-new")
    info = temp.stat()
    assert (info.st_size, stat.S_IMODE(info.st_mode), info.st_gid) == (0, perm, gid)
    assert conf.read_text() == OLD


@pytest.mark.parametrize("force", [True, False])
def test_new_private_file_is_never_readable_by_others(tmp_path: Path, force: bool) -> None:
    keyfile = tmp_path / "system-connections" / "br0.nmconnection"
    step = mk.file_write(
        str(keyfile), NEW, existed=False, backup_dir=str(tmp_path), mode="0600", force_mode=force
    )
    assert run(step, limit_size=True).returncode != 0
    temp = keyfile.with_name("br0.nmconnection.fleetbr-new")
    assert (temp.stat().st_size, mode(temp)) == (0, 0o600)
    assert run(step).returncode == 0
    assert (keyfile.read_text(), mode(keyfile), temp.exists()) == (NEW, 0o600, False)


def test_rewrite_keeps_owner_group_and_mode(tmp_path: Path) -> None:
    conf, backups = existing(tmp_path, 0o640, GROUP)
    got = run(write(conf, backups, mode="0644"))
    assert got.returncode == 0, got.stderr
    assert (conf.read_text(), mode(conf), conf.stat().st_gid) == (NEW, 0o640, GROUP)


def test_private_mode_is_forced_on_a_file_others_could_read(tmp_path: Path) -> None:
    conf, backups = existing(tmp_path, 0o644, GROUP)
    assert run(write(conf, backups, mode="0600", force_mode=True)).returncode == 0
    assert (conf.read_text(), mode(conf), conf.stat().st_gid) == (NEW, 0o600, GROUP)


def test_restore_puts_back_owner_group_and_mode(tmp_path: Path) -> None:
    conf, backups = existing(tmp_path, 0o600, GROUP)
    step = write(conf, backups)
    assert run(step).returncode == 0
    os.chown(conf, 0, 0)
    conf.chmod(0o644)  # whatever happened to it meanwhile
    assert step.inverse is not None
    got = run(step.inverse)
    assert got.returncode == 0, got.stderr
    assert (conf.read_text(), mode(conf), conf.stat().st_gid) == (OLD, 0o600, GROUP)


def test_a_symlink_is_written_and_restored_through(tmp_path: Path) -> None:
    real, backups = existing(tmp_path, 0o600, GROUP)
    link = tmp_path / "etc" / "interfaces.link"
    link.symlink_to("interfaces")
    step = write(link, backups)
    backup = backups / str(link).replace("/", "%")
    subprocess.run(["cp", "-p", "--preserve=all", "--", link, backup], check=True)  # as staged
    assert run(step).returncode == 0
    assert os.readlink(link) == "interfaces"
    assert (real.read_text(), mode(real), real.stat().st_gid) == (NEW, 0o600, GROUP)
    assert step.inverse is not None and run(step.inverse).returncode == 0
    assert os.readlink(link) == "interfaces"
    assert (real.read_text(), mode(real), real.stat().st_gid) == (OLD, 0o600, GROUP)
    assert sorted(p.name for p in link.parent.iterdir()) == ["interfaces", "interfaces.link"]


EDIT = "\n# added by an operator during the window\niface dummy9 inet manual\n"


def test_an_edit_made_during_the_window_is_kept_before_the_restore(tmp_path: Path) -> None:
    conf, backups = existing(tmp_path, 0o640, GROUP)
    step = write(conf, backups)
    assert run(step).returncode == 0 and step.inverse is not None
    with conf.open("a") as out:
        out.write(EDIT)
    kept = tmp_path / "state" / "kept" / "TXID"
    got = run(step.inverse, kept=kept)
    assert got.returncode == 0, got.stderr
    assert conf.read_text() == OLD  # the old network comes back all the same
    copy = kept / str(conf).replace("/", "%")
    assert copy.read_text() == NEW + EDIT
    assert (mode(copy), copy.stat().st_gid, mode(kept)) == (0o640, GROUP, 0o700)


@pytest.mark.parametrize("wrote", [True, False])
def test_nothing_is_kept_when_nobody_else_wrote_the_file(tmp_path: Path, wrote: bool) -> None:
    conf, backups = existing(tmp_path, 0o600)
    step = write(conf, backups)
    if wrote:  # else: the apply stopped before this step, the file is still the old one
        assert run(step).returncode == 0
    assert step.inverse is not None
    kept = tmp_path / "kept"
    assert run(step.inverse, kept=kept).returncode == 0
    assert (conf.read_text(), kept.exists()) == (OLD, False)


def test_a_file_created_during_the_window_where_fleetbr_removed_one_is_kept(
    tmp_path: Path,
) -> None:
    conf, backups = existing(tmp_path, 0o600)
    step = mk.file_remove(str(conf), str(backups))
    assert run(step).returncode == 0 and not conf.exists()
    conf.write_text(EDIT)
    assert step.inverse is not None
    kept = tmp_path / "kept"
    assert run(step.inverse, kept=kept).returncode == 0
    assert conf.read_text() == OLD
    assert (kept / str(conf).replace("/", "%")).read_text() == EDIT


def test_a_copy_that_fails_still_restores_and_fails_the_step(tmp_path: Path) -> None:
    conf, backups = existing(tmp_path, 0o600)
    step = write(conf, backups)
    assert run(step).returncode == 0 and step.inverse is not None
    with conf.open("a") as out:
        out.write(EDIT)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    got = run(step.inverse, kept=blocker / "kept")
    assert got.returncode != 0
    assert conf.read_text() == OLD
